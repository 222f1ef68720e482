"""The forms a known secret takes in text, and the view of a text they are searched in.

A secret value (a secret-named variable's value, a URL's password, an extra secret) is looked for as itself and as:

- reversed, ROT13, and in any letter case (`Hunter2x`, `HUNTER2X`);
- JSON-escaped once and twice (a password inside OpenInference's run input, which is JSON inside JSON);
- URL-encoded (`p%40ss`, `+` for a space) and hex (`68756e...`, any case, `%68%75...`, `68 75 ...`);
- a list of its code points (`[104, 117, ...]`);
- base64 (standard or URL-safe), also inside a longer base64 text: the value is encoded at the three byte
  offsets and the characters that depend on its neighbours are dropped;
- with separators between its characters: ASCII whitespace and punctuation, and any non-ASCII character that is
  not a letter or digit (no-break and other Unicode spaces, dashes), up to `MAX_GAP` of them; zero-width
  characters (U+200B..U+200D, U+2060, U+FEFF, soft hyphen) are ignored; full-width and other compatibility
  letters (`ｈｕｎｔｅｒ`) count as their plain letters (NFKC).

`squeeze` is the cheap first search: a text lower-cased and NFKC-normalised, with everything but ASCII letters and
digits deleted; a form can be in a text only if its own squeezed form is a substring of it. `view` is the text the
regular expressions run on when it is: lower-cased (so they need no IGNORECASE, which would cost them their fast
literal prefix search), each non-ASCII character normalised on its own, with a map back to the original's positions.
"""

from __future__ import annotations

import base64
import codecs
import functools
import json
import re
import string
import sys
import unicodedata
from collections.abc import Sequence
from urllib.parse import quote, quote_plus

MAX_GAP = 16  # separators allowed between two characters of a spelt-out secret (`\", \"-\", \"` is 12)
MIN_DERIVED = 8  # letters and digits an encoded form (hex, base64, code points) needs: shorter ones match words

SEPARATORS = string.whitespace + string.punctuation
_DROP = (SEPARATORS + "".join(map(chr, range(128, 256)))).encode("latin-1")  # bytes the cheap search deletes
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def squeeze(text: str) -> bytes:
    """`text` as the cheap search sees it: NFKC, lower case, only ASCII letters and digits."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return text.lower().encode("utf-8", "surrogatepass").translate(None, _DROP)


@functools.lru_cache(maxsize=4096)
def _view_char(c: str) -> str:
    """One non-ASCII character as the patterns see it: a compatibility letter as its plain letter(s), a letter as
    itself, an invisible format character as nothing, anything else as a space (a separator); lower case."""
    normal = unicodedata.normalize("NFKC", c)
    if normal.isascii() or c.isalnum():
        return normal.lower()
    return "" if unicodedata.category(c) == "Cf" else " "


def view(text: str) -> tuple[str, list[int] | None]:
    """`text` lower-cased, each non-ASCII character replaced by `_view_char`, and the map from each position of
    the view to the original's (None: the text is ASCII, and its view has the same positions)."""
    if text.isascii():
        return text.lower(), None
    parts: list[str] = []
    index: list[int] = []
    pos = 0
    for m in _NON_ASCII.finditer(text):
        parts.append(text[pos : m.start()].lower())
        index.extend(range(pos, m.start()))
        for i in range(m.start(), m.end()):
            shown = _view_char(text[i])
            parts.append(shown)
            index.extend([i] * len(shown))
        pos = m.end()
    parts.append(text[pos:].lower())
    index.extend(range(pos, len(text)))
    return "".join(parts), index


def _base64_pieces(data: bytes) -> list[str]:
    """The base64 characters that encode `data` alone, at each of the three byte offsets it may start at."""
    pieces = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode("ascii")
        first = -(-8 * offset // 6)  # the first character made of `data`'s bits only
        last = 8 * (offset + len(data)) // 6  # past the last one
        pieces.append(encoded[first:last])
    return pieces


def forms(value: str) -> tuple[list[str], list[str]]:
    """The forms of a secret value to look for: (plain forms, encoded forms).

    Plain forms follow the value's own length rules (a short value must stand alone); encoded forms are searched
    inside longer words too, and only those with `MIN_DERIVED` letters and digits or more are kept.
    """
    once = json.dumps(value)[1:-1]
    plain = [
        value,
        value[::-1],
        codecs.encode(value, "rot13"),
        once,
        json.dumps(value, ensure_ascii=False)[1:-1],
        json.dumps(once)[1:-1],
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
    ]
    data = value.encode("utf-8", "surrogatepass")
    encoded = [data.hex(), "".join(str(ord(c)) for c in value), *_base64_pieces(data)]
    encoded = [form for form in encoded if len(squeeze(form)) >= MIN_DERIVED]
    return list(dict.fromkeys(plain)), list(dict.fromkeys(encoded))


class NeedleSet:
    """Which of many needles (squeezed forms) a squeezed text contains, in about one pass over the text.

    A needle of `2 * BLOCK - 1` bytes or more contains a whole `BLOCK`-byte block of the text at a position that is
    a multiple of `BLOCK`, wherever it occurs; so the text's aligned blocks go into one set of integers (a
    memoryview cast, no Python loop) are looked up among the needles' grams, and only needles one of whose grams is
    there are searched for. Shorter needles are searched for one by one. With 75 needles (9 secrets) this costs
    about as much as 25 substring searches (bench/bench_redaction.py).
    """

    BLOCK = 8

    def __init__(self, needles: Sequence[bytes]) -> None:
        self.needles = tuple(needles)
        self.short: list[int] = []
        self.grams: dict[int, list[int]] = {}
        for i, needle in enumerate(self.needles):
            if len(needle) < 2 * self.BLOCK - 1:
                self.short.append(i)
                continue
            for j in range(self.BLOCK):
                gram = int.from_bytes(needle[j : j + self.BLOCK], sys.byteorder)
                self.grams.setdefault(gram, []).append(i)
        self.gramset = frozenset(self.grams)

    def found(self, hay: bytes) -> list[int]:
        """The indices of the needles that are substrings of `hay`, in order."""
        hits = {i for i in self.short if self.needles[i] in hay}
        if self.grams and len(hay) >= self.BLOCK:
            blocks = memoryview(hay)[: len(hay) // self.BLOCK * self.BLOCK].cast("Q")
            if self.gramset.isdisjoint(blocks):  # the common case: no set of the text's blocks is built
                return sorted(hits)
            for gram in self.gramset.intersection(blocks):
                hits.update(i for i in self.grams[gram] if i not in hits and self.needles[i] in hay)
        return sorted(hits)
