"""Finding a secret in text that left the process, by decoding the text (the redactor encodes the secret instead).

`leaks(text, value)` names every way `value` can still be read from `text`: as is or in another letter case,
reversed, spelt out (whitespace and punctuation between its characters), after Unicode normalisation (full-width
letters, no-break spaces, zero-width characters), and after undoing ROT13, URL encoding, JSON escaping (twice),
hex, base64 (at every alignment, standard or URL-safe) or a list of code points. The decoders are written here
from the standard library, independently of telemetry.secret_forms, so a test that uses them is a second source.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import string
import unicodedata
from collections.abc import Iterator
from urllib.parse import unquote_plus

_SEPARATORS = (string.whitespace + string.punctuation).encode()
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def squeeze(text: str) -> str:
    """Lower case, without ASCII whitespace and punctuation: a spelt-out secret (`s k - t e s t`) becomes plain."""
    raw = text.lower().encode("utf-8", "backslashreplace").translate(None, _SEPARATORS)
    return raw.decode("utf-8", "replace")


def _unescape(text: str) -> str:
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    return re.sub(r"\\([\"\\/bfnrt])", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)


def _normalised(text: str) -> str:
    """NFKC; zero-width (format) characters dropped; Unicode punctuation and spaces as ASCII spaces."""
    text = unicodedata.normalize("NFKC", text)
    kinds = {c: unicodedata.category(c)[0] + unicodedata.category(c) for c in set(text) if not c.isascii()}
    return "".join(c if c.isascii() else "" if "Cf" in kinds[c] else " " if kinds[c][0] in "PZ" else c for c in text)


def _hex_decoded(text: str) -> Iterator[str]:
    for run in re.findall(r"[0-9a-f]{8,}", squeeze(text)):
        for start in (0, 1):
            piece = run[start : start + (len(run) - start) // 2 * 2]
            yield binascii.unhexlify(piece).decode("utf-8", "replace")


def _base64_decoded(text: str) -> Iterator[str]:
    runs = re.findall(r"[A-Za-z0-9+/_\-]{6,}", text) + re.findall(r"[A-Za-z0-9+/_\-]{6,}", re.sub(r"\s+", "", text))
    for run in runs:  # as written, and with line breaks removed (base64 wrapped at 76 columns)
        run = run.replace("-", "+").replace("_", "/")
        for start in range(4):
            piece = run[start : start + (len(run) - start) // 4 * 4]
            try:
                yield base64.b64decode(piece).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                continue


def _code_points(text: str) -> str:
    return "".join(chr(n) if 32 <= n < 0x110000 else "\0" for n in map(int, re.findall(r"\d+", text)))


def views(text: str) -> Iterator[tuple[str, str]]:
    """(how, text decoded that way) for every decoding the tests undo."""
    yield "as is", text
    yield "normalised (NFKC, no zero-width)", _normalised(text)
    yield "ROT13", codecs.encode(text, "rot13")
    yield "URL-decoded", unquote_plus(text)
    yield "JSON-unescaped", _unescape(text)
    yield "JSON-unescaped twice", _unescape(_unescape(text))
    yield "code points", _code_points(text)
    for decoded in _hex_decoded(text):
        yield "hex", decoded
    for decoded in _base64_decoded(text):
        yield "base64", decoded


def decoded(text: str) -> list[tuple[str, str, str]]:
    """(how, lower-cased, squeezed) for every decoding of `text`: made once, then searched for every value."""
    return [(how, d.lower(), squeeze(d)) for how, d in views(text)]


def leaks(text: str | list[tuple[str, str, str]], value: str) -> list[str]:
    """How `value` can still be read from `text` (empty: it cannot, by any decoding above); `text` may be what
    `decoded` made of it, when many values are looked for in one text."""
    found = []
    plain, bare = value.lower(), squeeze(value)
    for how, lower, squeezed in decoded(text) if isinstance(text, str) else text:
        for form, label in ((plain, "as is"), (plain[::-1], "reversed")):
            if form in lower:
                found.append(f"{how}, {label}")
        if len(bare) >= 6:
            for form, label in ((bare, "spelt out"), (bare[::-1], "reversed and spelt out")):
                if form in squeezed:
                    found.append(f"{how}, {label}")
    return found
