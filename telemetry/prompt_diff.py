"""Where a replayed model call's prompt first differs from the recorded one, with a short diff a person can read.

The prompts compared are the whole ones (`steps.whole_prompts` rebuilds them from compact traces), message for
message as smolagents gave them to the model: `[{"role", "content"}, ...]`. The diff is difflib's, of the first
message that differs, a few lines at most, each cut around where it changes, secrets blanked before anything is cut
(so no secret is cut in half and missed).

smolagents gives a tool call it parses from the model's text a new random id (uuid4) on every run, and writes it into
the next prompt (the `tool-call` message, and `Call id: ...` in the `tool-response`). Those ids are smolagents' own,
not an input of the agent: in those two roles the comparison reads each id as its place in the prompt ("<call id 1>").
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass

from .redaction import redact

DIFF_LINES = 6  # changed lines shown
LINE_CHARS = 160  # of each, around where it changes
LEAD_CHARS = 40  # shown before the change when a line must be cut
UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
CALL_ID_ROLES = ("tool-call", "tool-response")  # where smolagents writes the ids it gives tool calls


@dataclass(frozen=True)
class PromptDifference:
    """The first input message (0-based) that differs, its role (recorded, else the replay's), both texts, the diff."""

    message: int
    role: str
    recorded: str
    replay: str
    diff: tuple[str, ...]


def _text(messages: list[dict[str, str]], index: int) -> tuple[str | None, str]:
    """(role, content) of message `index`, (None, "") when the prompt has fewer messages."""
    if index >= len(messages):
        return None, ""
    message = messages[index]
    return str(message.get("role", "")), str(message.get("content", ""))


def numbered_call_ids(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The prompt with each id in its tool-call and tool-response messages replaced by its place: `<call id N>`."""
    seen: dict[str, str] = {}

    def place(match: re.Match[str]) -> str:
        return seen.setdefault(match.group(0).lower(), f"<call id {len(seen) + 1}>")

    return [
        {**m, "content": UUID.sub(place, str(m.get("content", "")))} if m.get("role") in CALL_ID_ROLES else m
        for m in messages
    ]


def prompt_difference(recorded: list[dict[str, str]], replay: list[dict[str, str]]) -> PromptDifference | None:
    """The first message where the two prompts differ (role, text, or one prompt ends), or None when they match."""
    recorded, replay = numbered_call_ids(recorded), numbered_call_ids(replay)
    for index in range(max(len(recorded), len(replay))):
        (role_a, a), (role_b, b) = _text(recorded, index), _text(replay, index)
        if (role_a, a) == (role_b, b):
            continue
        a, b = redact(a), redact(b)
        lines: list[str] = []
        if role_a != role_b:
            lines += [f"- role: {role_a or '(no such message)'}", f"+ role: {role_b or '(no such message)'}"]
        if a != b:
            lines += short_diff(a, b)
        return PromptDifference(index, role_a or role_b or "", a, b, tuple(lines[: DIFF_LINES + 1]))
    return None


def short_diff(a: str, b: str, *, limit: int = DIFF_LINES) -> list[str]:
    """The lines that differ between `a` and `b` ("- " recorded, "+ " replay), at most `limit`, each cut to
    LINE_CHARS around its first change; a last line says how many more there are."""
    changed: list[tuple[str, str]] = []
    old, new = a.splitlines() or [""], b.splitlines() or [""]
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        removed, added = old[i1:i2], new[j1:j2]
        for k, line in enumerate(removed):
            changed.append(("-", _cut(line, _change_at(line, added[k] if k < len(added) else ""))))
        for k, line in enumerate(added):
            changed.append(("+", _cut(line, _change_at(line, removed[k] if k < len(removed) else ""))))
    lines = [f"{sign} {text}" for sign, text in changed[:limit]]
    if len(changed) > limit:
        lines.append(f"… {len(changed) - limit} more changed line{'s' if len(changed) - limit != 1 else ''}")
    return lines


def excerpts(a: str, b: str, *, width: int = 300) -> tuple[str, str]:
    """Both texts cut to `width` characters from a little before where they first differ, each marked where cut."""
    at = _change_at(a, b)
    start = max(0, at - LEAD_CHARS)

    def cut(text: str) -> str:
        end = start + width
        return ("…" if start else "") + text[start:end] + (f"... ({len(text)} chars)" if end < len(text) else "")

    return cut(a), cut(b)


def _change_at(line: str, other: str) -> int:
    """Where `line` stops matching `other` (their common prefix's length)."""
    return len(os.path.commonprefix([line, other]))


def _cut(line: str, at: int) -> str:
    """`line` cut to LINE_CHARS, keeping what is around position `at` (where it changes) in view."""
    if len(line) <= LINE_CHARS:
        return line
    start = 0 if at < LINE_CHARS - LEAD_CHARS else at - LEAD_CHARS
    end = start + LINE_CHARS
    return ("…" if start else "") + line[start:end] + ("…" if end < len(line) else "")
