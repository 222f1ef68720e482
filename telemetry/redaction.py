"""Secrets never leave the process: one redactor for every text that does (spans, page, CLI output, prompts).

Redaction is by value as well as by name:

- well-known key formats wherever they appear: OpenAI/Anthropic `sk-...`, GitHub `ghp_...`/`github_pat_...`,
  Slack `xox?-...`, AWS access key ids and `aws_secret_access_key=...` values, Google `AIza...`, JWTs,
  PEM private key blocks, `Bearer ...` tokens, `password=...`-style pairs, and the password of a
  `scheme://user:PASSWORD@host` URL (scheme, user and host are kept);
- the value of every environment variable whose name contains one of `SECRET_NAME_PARTS` (a substring, any case:
  STRIPEKEY, DBPASS, GITHUBPAT), but for the listed exceptions (`NOT_SECRET_NAMES`, `NOT_SECRET_SUFFIXES`,
  `ORDINARY_WORDS`); values of 4 characters or more, not `true`/`none`/...; the password inside any variable's URL;
  each line of a multi-line value; each of them in every form of `telemetry.secret_forms` (any case, reversed,
  ROT13, JSON-escaped, URL-encoded, hex, code points, base64, spelt out with separators).

The patterns are built once per environment snapshot and rebuilt when `os.environ` changes (a dict
comparison per call). Texts are first searched cheaply (`secret_forms.squeeze`: lower-cased, letters and digits
only, each form's squeezed needle a substring test); the regular expressions run only on texts that contain a
candidate. `bench/bench_redaction.py` prints the figures.

Every text is also made encodable: lone surrogates (`'\\ud800'`) become their escape (`\\ud800`), so a span or a
prompt is never lost to an encoding error.

This module holds the rules and the `Redactor` that applies them; `telemetry.redacted_output` puts it in the way of
what leaves the process (the span exporter, the CLI's stdout and stderr).
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .secret_forms import MAX_GAP, SEPARATORS, NeedleSet, forms, squeeze, view

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4  # of a secret-named variable's value; "1" or "on" would blank ordinary text
MIN_SPACED_LENGTH = 6  # letters and digits a value needs before its spelt-out forms are searched for
MIN_LINE_LENGTH = 8  # each line of a multi-line value (a PEM body) this long is a secret of its own
EXACT_ONLY_BELOW = 8  # values shorter than this must stand alone (not inside a longer word) to be blanked

# -- which variables are secret by name ---------------------------------------------------------------
# A name is secret when it contains one of these (any case, anywhere: STRIPEKEY, DBPASS, GITHUBPAT, APIAUTH) ...
SECRET_NAME_PARTS = (
    "KEY", "TOKEN", "SECRET", "PASS", "PWD", "PAT", "AUTH", "CREDENTIAL", "CREDS", "PRIVATE", "DSN", "JWT",
    "COOKIE", "SALT", "BEARER", "SIGNATURE", "DATABASE_URL", "CONNECTION_STRING",
)  # fmt: skip
# ... unless it is one of these, which hold a directory, a socket or a file name (the shell's own variables) ...
NOT_SECRET_NAMES = frozenset({"PWD", "OLDPWD", "XAUTHORITY", "SSH_AUTH_SOCK", "GPG_AGENT_INFO"})
# ... or ends in one of these (a path, an address, a user name: not the secret itself) ...
NOT_SECRET_SUFFIXES = ("PATH", "_FILE", "_DIR", "_SOCK", "_SOCKET", "_HOST", "_PORT", "_USER", "_USERNAME")
# ... or contains a part only inside one of these ordinary words (AUTHOR, but not AUTHORIZATION or AUTHORISE).
ORDINARY_WORDS = (
    "PATH", "PATTERN", "PATCH", "COMPAT", "SPATIAL", "PATIENT", "KEYBOARD", "KEYWORD", "KEYMAP", "MONKEY",
    "TOKENIZER", "BYPASS", "COMPASS", "PASSENGER", "PASSTHROUGH", "AUTHOR",
)  # fmt: skip
_ORDINARY = re.compile("|".join(w + ("(?!I[SZ])" if w == "AUTHOR" else "") for w in ORDINARY_WORDS))
_NOT_SECRET_VALUES = frozenset(
    "true false none null nil yes no on off enabled disabled enable disable default auto unset empty".split()
)


def is_secret_name(name: str) -> bool:
    """Does an environment variable's name say its value is a secret? (The README's list, exactly.)"""
    upper = name.upper()
    if upper in NOT_SECRET_NAMES or upper.endswith(NOT_SECRET_SUFFIXES):
        return False
    rest = _ORDINARY.sub("_", upper)
    return any(part in rest for part in SECRET_NAME_PARTS)


def _is_secret_value(value: str) -> bool:
    value = value.strip()
    return len(value) >= MIN_SECRET_LENGTH and value.lower() not in _NOT_SECRET_VALUES


# `scheme://user:PASSWORD@host`: starts at "://" (a literal, so the search is fast); the scheme is kept anyway
_URL_PASSWORD = re.compile(r"://(?<=[A-Za-z0-9]://)[^\s/@:'\"]*:([^\s/@'\"]+)@")


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret values of an environment: values of secret-named variables, and passwords in URLs."""
    environ = os.environ if environ is None else environ
    values: set[str] = set()
    for name, value in environ.items():
        if is_secret_name(name) and _is_secret_value(value):
            values.add(value.strip())
        if "://" in value:
            for password in _URL_PASSWORD.findall(value):
                for form in {password, unquote(password)}:
                    if _is_secret_value(form):
                        values.add(form)
    return sorted(values, key=len, reverse=True)  # longest first, so a key that contains another is blanked whole


# -- values: in every form of telemetry.secret_forms --------------------------------------------------
_SEP_CLASS = r"[\t-\r !-/:-@\[-`{-~]"  # the same characters as SEPARATORS, as ranges
_GAP = _SEP_CLASS + "{0,%d}" % MAX_GAP
# a short value stands alone: no letter or digit next to it, except the letter of a JSON escape (`\nhunter2`)
_LEFT = r"(?:(?<![A-Za-z0-9])|(?<=\\[nrtbf])|(?<=\\u[0-9A-Fa-f]{4}))"
_RIGHT = r"(?![A-Za-z0-9])"
NEEDLE_BYTES = 32  # the cheap search looks for this much of a form (longer needles search no faster)


@dataclass(frozen=True)
class _ValuePattern:
    """The patterns of the forms whose squeezed needle is `needle` (compiled when first needed: most never are)."""

    needle: bytes  # a form squeezed (secret_forms.squeeze): in a squeezed text, or no pattern here can match
    sources: tuple[str, ...]  # regular expressions over the text's view (secret_forms.view: lower case)

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("|".join(f"(?:{s})" for s in self.sources))


def _form_pattern(form: str, alone: bool) -> tuple[bytes, str]:
    shown = view(form)[0]
    chars = [c for c in shown if c not in SEPARATORS]
    if len(chars) >= MIN_SPACED_LENGTH:
        pattern = _GAP.join(re.escape(c) for c in chars)
    else:
        pattern = re.escape(shown)
    if alone:
        pattern = f"{_LEFT}(?:{pattern}){_RIGHT}"
    return squeeze(form)[:NEEDLE_BYTES], pattern  # b"" (no letter or digit): always searched


@functools.lru_cache(maxsize=1024)  # an environment that changes rebuilds only its new values
def _value_patterns(value: str) -> tuple[_ValuePattern, ...]:
    """The patterns that find `value` in each of its forms, exactly or spelt out, in any case; one per needle."""
    plain, encoded = forms(value)
    found = [_form_pattern(form, alone=len(form) < EXACT_ONLY_BELOW) for form in plain]
    found += [_form_pattern(form, alone=False) for form in encoded]
    by_needle: dict[bytes, dict[str, None]] = {}
    for needle, source in found:
        by_needle.setdefault(needle, {})[source] = None
    return tuple(_ValuePattern(needle, tuple(sources)) for needle, sources in by_needle.items())


def _spans(text: str, patterns: Iterable[_ValuePattern]) -> list[tuple[int, int]]:
    """Where in `text` the patterns match (positions of `text`, merged where they overlap)."""
    shown, index = view(text)
    found = sorted(m.span() for p in patterns for m in p.pattern.finditer(shown) if m.end() > m.start())
    if index is not None:
        found = [(index[start], index[end - 1] + 1) for start, end in found]
        found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def blank_spans(text: str, spans: Sequence[tuple[int, int]]) -> str:
    out, pos = [], 0
    for start, end in spans:
        out += [text[pos:start], REDACTED]
        pos = end
    out.append(text[pos:])
    return "".join(out)


# -- well-known formats ---------------------------------------------------------------------------------
def _blank_group(group: str | int) -> Callable[[re.Match[str]], str]:
    """Keep the match but blank one named group (the password of a URL, the value of key=value)."""

    def replace(m: re.Match[str]) -> str:
        start, end = m.span(group)
        return m.string[m.start() : start] + REDACTED + m.string[end : m.end()]

    return replace


_NAME_LIKE = re.compile(r"[A-Za-z_][A-Za-z_]*(?:\.[A-Za-z_][A-Za-z_]*)*")


def _looks_like_code(value: str) -> bool:
    """`api_key=api_key`, `password=self.password`: a name, not a secret (no digits, and `_`, `.` or short)."""
    return bool(_NAME_LIKE.fullmatch(value)) and ("_" in value or "." in value or len(value) < 12)


def _blank_password_pair(m: re.Match[str]) -> str:
    if m.group("q") is not None:
        start, end = m.span("qval")
    else:
        if _looks_like_code(m.group("val")):
            return m.group(0)
        start, end = m.span("val")
    if m.string[start:end] == REDACTED:
        return m.group(0)
    return m.string[m.start() : start] + REDACTED + m.string[end : m.end()]


@dataclass(frozen=True)
class KeyFormat:
    """One well-known secret format: `pattern` finds it, `replace` blanks it.

    A pattern that starts with a literal is searched as fast as a substring, so it runs over the whole text
    (`anchors` empty). A case-insensitive one would try every position, so it is only tried where it can start:
    at each occurrence of one of its lower-case `anchors` in the lower-cased text, or up to `back` characters
    before it (`api_` before `key`).
    """

    name: str
    pattern: re.Pattern[str]
    anchors: tuple[str, ...] = ()
    back: int = 0
    replace: Callable[[re.Match[str]], str] | str = REDACTED

    def sub(self, text: str, lower: str) -> str:
        if not self.anchors:
            return self.pattern.sub(self.replace, text)
        if len(lower) != len(text):  # lower-casing moved the positions (rare non-ASCII): search the whole text
            return self.pattern.sub(self.replace, text) if any(a in lower for a in self.anchors) else text
        matches: list[re.Match[str]] = []
        for anchor in self.anchors:
            at = lower.find(anchor)
            while at != -1:
                for start in range(at, max(-1, at - self.back - 1), -1):
                    m = self.pattern.match(text, start)
                    if m:
                        matches.append(m)
                        break
                at = lower.find(anchor, at + 1)
        if not matches:
            return text
        out, end = [], 0
        for m in sorted(matches, key=lambda m: m.start()):
            if m.start() < end:  # overlaps one already blanked (`secret_key` is found from both anchors)
                continue
            out += [text[end : m.start()], self.replace(m) if callable(self.replace) else self.replace]
            end = m.end()
        out.append(text[end:])
        return "".join(out)


def _key(prefix: str, body: str) -> re.Pattern[str]:
    """`prefix` (a literal, searched fast) starting a word, then `body`."""
    return re.compile(f"{prefix}(?<![A-Za-z0-9_\\-]{prefix})(?:{body})")


KEY_FORMATS: tuple[KeyFormat, ...] = (
    KeyFormat("anthropic", _key("sk-ant-", r"[A-Za-z0-9_\-]{16,}")),
    KeyFormat("openai", _key("sk-", r"(?:proj-|svcacct-|admin-)?(?=[\w\-]*\d)[A-Za-z0-9_\-]{20,}")),
    KeyFormat("github", _key("gh", r"[pousr]_[A-Za-z0-9]{20,}")),
    KeyFormat("github_fine_grained", _key("github_pat_", r"\w{20,}")),
    KeyFormat("slack", _key("xox", r"[abposr]-[A-Za-z0-9\-]{8,}")),
    KeyFormat("slack_app", _key("xapp-", r"[A-Za-z0-9\-]{10,}")),
    KeyFormat(
        "aws_access_key_id",
        re.compile(r"A(?:KIA|SIA|BIA|CCA)(?<![A-Z0-9]A...)[A-Z0-9]{16}(?![A-Z0-9])"),
    ),
    KeyFormat(
        "aws_secret_access_key",
        re.compile(
            r"(?i:aws_?secret_?access_?key|secret_?access_?key|aws_?secret)[\"']?\s*[:=]\s*[\"']?"
            r"(?P<val>[A-Za-z0-9/+=]{16,})"
        ),
        anchors=("secret",),
        back=4,  # aws_
        replace=_blank_group("val"),
    ),
    KeyFormat("google", _key("AIza", r"[0-9A-Za-z_\-]{35}")),
    KeyFormat("jwt", _key("eyJ", r"[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*")),
    KeyFormat(
        "pem_private_key",
        re.compile(
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----"
            r"(?:[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY-----|(?:[A-Za-z0-9+/=\s]|\\[nrt])*)"  # cut short: to its end
        ),
    ),
    KeyFormat("url_password", _URL_PASSWORD, replace=_blank_group(1)),
    KeyFormat(
        "bearer",
        re.compile(r"(?i:\b(?:bearer|basic)\s+)(?P<val>(?=[A-Za-z0-9._~+/\-]*\d)[A-Za-z0-9._~+/\-]{16,}=*)"),
        anchors=("bearer", "basic"),
        replace=_blank_group("val"),
    ),
    KeyFormat(
        "password_pair",
        re.compile(
            r"(?i:password|passwd|passphrase|secret|(?:api|access|secret|private|auth|client)[_\-]?key"
            r"|(?:auth|access|refresh|bearer|session|api)[_\-]?token)"
            r"[\"']?\s*[:=]\s*(?:(?P<q>[\"'])(?P<qval>[^\"'\n]{4,})[\"']"
            r"|(?P<val>[^\s\"',;&()\[\]{}<>]{4,}(?=[\s\"',;&)\]}>]|$)))"
        ),
        anchors=("pass", "secret", "key", "token"),
        back=8,  # private_, refresh_
        replace=_blank_password_pair,
    ),
)


def redact_formats(text: str) -> str:
    """Blank the well-known key formats in `text` (no environment needed)."""
    lower = ""
    for fmt in KEY_FORMATS:
        if fmt.anchors and not lower:
            lower = text.lower()
        redacted = fmt.sub(text, lower)
        if redacted != text:
            text, lower = redacted, ""
    return text


# -- surrogates ------------------------------------------------------------------------------------------
def clean_text(text: str) -> str:
    """`text` with lone surrogates replaced by their escapes, so it always encodes as UTF-8."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def clean_value(value: Any) -> Any:
    """`clean_text` through dicts, lists and tuples (keys too): options, tool-call arguments."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_value(k): clean_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(clean_value(v) for v in value)
    return value


# -- the redactor ----------------------------------------------------------------------------------------
class Redactor:
    """Blanks secrets in text: key formats, and the secret values of an environment (default `os.environ`).

    With `environ=None` the patterns follow `os.environ`: they are rebuilt when it changed since the last call.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, extra_secrets: Iterable[str] = ()) -> None:
        self._environ = environ
        self._extra = tuple(s for s in extra_secrets if _is_secret_value(s))
        self._lock = threading.Lock()
        self._snapshot: dict[Any, Any] | None = None
        self._patterns: tuple[tuple[_ValuePattern, ...], NeedleSet] = ((), NeedleSet(()))
        self._secrets: tuple[str, ...] = ()

    # the environment snapshot
    def _source(self) -> Mapping[Any, Any]:
        if self._environ is not None:
            return self._environ
        return getattr(os.environ, "_data", os.environ)  # the raw dict: compared without decoding

    def _current(self) -> tuple[tuple[_ValuePattern, ...], NeedleSet]:
        source = self._source()
        if self._snapshot is not None and source == self._snapshot:
            return self._patterns
        with self._lock:
            if self._snapshot is None or source != self._snapshot:
                snapshot = dict(source)
                environ = self._environ if self._environ is not None else dict(os.environ)
                secrets = set(secret_values(environ)) | set(self._extra)
                for value in list(secrets):
                    if "\n" in value:
                        secrets.update(
                            line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_LINE_LENGTH
                        )
                ordered = sorted(secrets, key=len, reverse=True)
                patterns = [p for value in ordered for p in _value_patterns(value)]
                self._secrets = tuple(ordered)
                self._patterns = (tuple(patterns), NeedleSet([p.needle for p in patterns]))
                self._snapshot = snapshot
        return self._patterns

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values currently blanked (longest first); for tests and diagnostics."""
        self._current()
        return self._secrets

    # text
    def redact(self, text: str) -> str:
        """`text` with every secret blanked and lone surrogates escaped."""
        if not text:
            return text
        text = clean_text(text)
        if len(text) < MIN_SECRET_LENGTH:
            return text
        patterns, needles = self._current()
        if patterns:
            hits = [patterns[i] for i in needles.found(squeeze(text))]
            if hits:
                text = blank_spans(text, _spans(text, hits))
        return redact_formats(text)

    def redact_value(self, value: Any) -> Any:
        """Strings, and strings inside lists, tuples and dicts (keys too), redacted; anything else as is."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, (list, tuple)):
            return type(value)(self.redact_value(v) for v in value)
        if isinstance(value, dict):
            return {self.redact_value(k): self.redact_value(v) for k, v in value.items()}
        return value

    __call__ = redact


_default = Redactor()


def default_redactor() -> Redactor:
    """The process-wide redactor (follows `os.environ`)."""
    return _default


def redact(text: str) -> str:
    """`text` with secrets blanked (the process-wide redactor)."""
    return _default.redact(text)


def redact_value(value: Any) -> Any:
    return _default.redact_value(value)
