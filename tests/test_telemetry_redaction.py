"""Secrets are blanked before any exporter sees a span; which names are secret (exactly as the README says),
and the encodings of a known secret value that are blanked (and those the README admits are not)."""

from __future__ import annotations

import base64
import codecs
import json
import random
import textwrap
from urllib.parse import quote, quote_plus

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cogscope.telemetry import setup_tracing
from cogscope.telemetry.redaction import (
    NOT_SECRET_NAMES,
    NOT_SECRET_SUFFIXES,
    ORDINARY_WORDS,
    REDACTED,
    SECRET_NAME_PARTS,
    Redactor,
    is_secret_name,
    secret_values,
)
from cogscope.telemetry.tracing import uninstrument

from .helpers import ISSUE_NAMES, readme_name_rules
from .secret_leaks import leaks


def test_secret_values_come_from_secret_looking_variables():
    env = {"OPENAI_API_KEY": "sk-abcdefgh123", "HF_TOKEN": "hf_zzzzzzzz", "HOME": "/root", "SHORT_TOKEN": "x"}
    assert set(secret_values(env)) == {"sk-abcdefgh123", "hf_zzzzzzzz"}


def test_secrets_are_redacted_in_attributes_events_and_status(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", "topsecret-value-123")
    exporter = InMemorySpanExporter()
    tracing = setup_tracing(endpoint="http://127.0.0.1:1/v1/traces", project_name="t", batch=False, exporter=exporter)
    try:
        with tracing.tracer().start_as_current_span("s", attributes={"input.value": "key=topsecret-value-123"}) as span:
            span.add_event("e", {"detail": "topsecret-value-123 leaked", "n": 3})
            span.set_attribute("list", ["a", "topsecret-value-123"])
        (exported,) = exporter.get_finished_spans()
    finally:
        uninstrument()
        tracing.provider.shutdown()
    assert exported.attributes["input.value"] == f"key={REDACTED}"
    assert exported.attributes["list"] == ("a", REDACTED)
    assert exported.events[0].attributes == {"detail": f"{REDACTED} leaked", "n": 3}


# -- by name: exactly what the README says ----------------------------------------------------------------
def test_the_readme_lists_the_rules_the_code_applies() -> None:
    rules = readme_name_rules()
    assert rules["examples"] == ISSUE_NAMES
    assert tuple(rules["parts"]) == SECRET_NAME_PARTS
    assert set(rules["names"]) == NOT_SECRET_NAMES
    assert tuple(rules["suffixes"]) == NOT_SECRET_SUFFIXES
    assert tuple(rules["words"]) == ORDINARY_WORDS


def test_every_name_the_readme_lists_is_secret_name_by_name() -> None:
    rules = readme_name_rules()
    assert {"KEY", "COOKIE", "PASS", "PAT", "DSN", "AUTH", "PRIVATE", "JWT", "DATABASE_URL"} <= set(rules["parts"])
    names = list(ISSUE_NAMES)
    for part in rules["parts"]:
        forms = (part, f"MY{part}", f"{part}S", f"APP_{part}_V2", f"x{part.lower()}y", part.title())
        names += [n for n in forms if n.upper() not in rules["names"]]  # `PWD` itself is the shell's directory
    assert [n for n in names if not is_secret_name(n)] == []
    env = {name: f"canary-{i:03d}-{name.lower()}-value" for i, name in enumerate(names)}
    assert set(secret_values(env)) == set(env.values())
    redactor = Redactor(environ=env)
    for name, value in env.items():
        assert redactor.redact(f"{name}={value}") == f"{name}={REDACTED}", name


def test_the_readme_exceptions_are_not_secret() -> None:
    rules = readme_name_rules()
    plain = list(rules["names"])
    plain += ["PATH", "PYTHONPATH", "MANPATH", "LD_LIBRARY_PATH", "HOME", "TOKENIZERS_PARALLELISM"]
    plain += [f"GITHUB_TOKEN{suffix}" for suffix in rules["suffixes"]]  # a path to the token, not the token
    plain += [f"GIT_{word}_MODE" for word in rules["words"]]  # GIT_AUTHOR_MODE, GIT_KEYBOARD_MODE, ...
    assert [n for n in plain if is_secret_name(n)] == []
    # an ordinary word does not hide a part elsewhere in the name, and AUTHORIZATION is not AUTHOR
    for name in ("PATH_TOKEN", "KEYBOARD_PASS", "HTTP_AUTHORIZATION", "OAUTH_AUTHORISE_SECRET", "AUTHORIZE_URL"):
        assert is_secret_name(name), name


# -- by value: the encodings of a known secret ------------------------------------------------------------
PLAIN = "hunter2-Canary-77"  # a value of letters, digits and a dash
SPECIAL = 'p@ss"w\\rd/ä 7Q-x'  # quotes, a backslash, a slash, a space and a non-ASCII letter


def _b64(data: bytes, urlsafe: bool = False) -> str:
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()


def encodings(v: str) -> dict[str, str]:
    """Every encoding the README says is caught, made with the standard library."""
    data = v.encode()
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in v)
    run_input = json.dumps({"input.value": json.dumps({"task": f"log in\nwith {v}\n", "additional_args": {}})})
    out = {
        "title case": v.title(),
        "upper case": v.upper(),
        "swapped case": v.swapcase(),
        "reversed upper": v[::-1].upper(),
        "rot13": codecs.encode(v, "rot13"),
        "json": json.dumps(v),
        "json in json (run input)": run_input,
        "json, not ascii": json.dumps({"a": v}, ensure_ascii=False),
        "url quote": quote(v, safe=""),
        "url quote_plus": quote_plus(v),
        "every byte %XX": "".join(f"%{b:02X}" for b in data),
        "hex": data.hex(),
        "HEX": data.hex().upper(),
        "hex spaced": " ".join(f"{b:02x}" for b in data),
        "code points": str([ord(c) for c in v]),
        "zero-width spaces": "\u200b".join(v),
        "word joiners and BOMs": "\u2060\ufeff".join(v),
        "zero-width (non-)joiners": "\u200c\u200d".join(v),
        "no-break spaces": "\u00a0".join(v),
        "ideographic and narrow spaces": "\u3000\u202f".join(v),
        "em dashes": "\u2014".join(v),
        "full-width letters": full_width,
        "16 separators": ("-" * 16).join(c for c in v if c.isalnum()),
    }
    for offset in range(4):
        for urlsafe in (False, True):
            blob = _b64(b"\x00\xfb\xff"[:offset] + data + b"\xfe tail of the blob", urlsafe)
            out[f"base64 at offset {offset}{' (url-safe)' if urlsafe else ''}"] = blob
    out["base64 wrapped at 8"] = "\n".join(textwrap.wrap(_b64(b"head" + data), 8))
    return out


@pytest.mark.parametrize("value", [PLAIN, SPECIAL], ids=["plain", "special"])
def test_each_encoding_of_a_known_secret_is_blanked(value: str) -> None:
    redactor = Redactor(environ={"DBPASS": value})
    missed = {}
    for how, encoded in encodings(value).items():
        assert leaks(encoded, value), f"the test's own encoding {how!r} is not found by the test's decoders"
        text = f"before {encoded} after"
        out = redactor.redact(text)
        if leaks(out, value) or REDACTED not in out:
            missed[how] = (out, leaks(out, value))
        else:
            assert out.startswith("before") and out.endswith("after"), (how, out)
    assert missed == {}


def test_a_short_value_after_a_json_escape_is_blanked() -> None:
    redactor = Redactor(environ={"DBPASS": "hunt3r"})
    run_input = json.dumps({"input.value": json.dumps({"task": "log in\nhunt3r\tnow"})})
    out = redactor.redact(run_input)
    assert "hunt3r" not in out and REDACTED in out, out
    assert redactor.redact("shunt3rs and hunt3rx") == "shunt3rs and hunt3rx"  # inside a word: another word


def test_what_the_readme_admits_is_not_caught_is_indeed_not_caught() -> None:
    """Keeps the README's "Not caught" list exactly true: if one of these gets caught, move it up there."""
    v = PLAIN
    redactor = Redactor(environ={"DBPASS": v})
    admitted = {
        "17 separators": ("-" * 17).join(v),
        "a letter between characters": "x".join(v),
        "hex with a prefix per byte": ", ".join(f"0x{b:02x}" for b in v.encode()),
        "code points another way": " + ".join(f"chr({ord(c)})" for c in v),
        "base64 of the reversed value": _b64(v[::-1].encode()),
        "hex of the base64": _b64(v.encode()).encode().hex(),
        "look-alike letters": v.replace("a", "\u0430"),
        "split across two texts": v[:8],
    }
    caught = [how for how, text in admitted.items() if redactor.redact(text) != text]
    assert caught == []


BLOB = random.Random(7).randbytes(512)


def test_ordinary_text_and_blobs_are_left_alone_with_secrets_set() -> None:
    redactor = Redactor(environ={"DBPASS": PLAIN, "APIKEY": SPECIAL, "SHORTPAT": "abcd"})
    texts = [
        "The prompt has 1234 tokens; trace 4bf92f3577b34da6a3ce929d0e0e4736, span 00f067aa0ba902b7.",
        _b64(BLOB),  # base64 and hex of something else
        BLOB.hex(),
        str(random.Random(7).sample(range(32, 127), 60)),  # code points of something else
        "Ｆｕｌｌ－ｗｉｄｔｈ ｔｅｘｔ\u00a0with\u200bspecial\u3000spaces — and “quotes”.",
        "abcdef abcde abc-d",  # the short secret inside longer words
    ]
    for text in texts:
        assert redactor.redact(text) == text


def test_the_length_limits_the_readme_gives() -> None:
    """Spelt out from 6 letters and digits; hex and code points from 4 characters; base64 from 6 (7 inside a
    longer base64 text); fewer than 4 characters: not a secret at all."""
    four, six, seven = "q7Zk", "q7Zk2m", "q7Zk2mX"
    assert Redactor(environ={"APIKEY": "q7Z"}).secrets == ()
    for value in (four, six, seven):
        r = Redactor(environ={"APIKEY": value})
        assert REDACTED in r.redact(f"hex {value.encode().hex()} end"), value
        assert REDACTED in r.redact(f"code points {[ord(c) for c in value]} end"), value
    assert Redactor(environ={"APIKEY": four}).redact(" ".join(four)) == " ".join(four)  # too short to spell out
    assert Redactor(environ={"APIKEY": six}).redact(" ".join(six)) == REDACTED
    assert REDACTED in Redactor(environ={"APIKEY": six}).redact(_b64(six.encode() + b"tail"))
    r = Redactor(environ={"APIKEY": seven})
    for offset in (1, 2):
        assert REDACTED in r.redact(_b64(b"\x00\xff"[:offset] + seven.encode() + b"tail")), offset
