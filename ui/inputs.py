"""Parsing what a user types (CLI flags, form fields) into models per role and factory options."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from .errors import UsageError
from .trust import shorten

TIME_WINDOWS = {
    "last hour": timedelta(hours=1),
    "last 24 hours": timedelta(days=1),
    "last 7 days": timedelta(days=7),
    "last 30 days": timedelta(days=30),
    "all time": None,
}

ROLE = re.compile(r"^[A-Za-z_][\w\-]*$")
KEY = re.compile(r"^[A-Za-z_]\w*$")


def parse_models(values: Iterable[str], flag: str = "--model") -> dict[str, str]:
    """`ID` -> {"default": ID}; `ROLE=ID` -> {ROLE: ID} (repeatable; model ids never contain '=').

    An empty value is refused (it would otherwise fall back to the default model without a word)."""
    models: dict[str, str] = {}
    for raw in values:
        value = (raw or "").strip()
        if not value:
            raise UsageError(
                f"{flag} {raw!r} names no model; give a LiteLLM id like openai/gpt-4o-mini, or `local` "
                "(leave the flag out to use the default model)"
            )
        role, sep, model_id = value.partition("=")
        if not sep:
            role, model_id = "default", value
        role, model_id = role.strip(), model_id.strip()
        if not ROLE.match(role):
            raise UsageError(
                f"{flag} {value!r}: {role!r} is not a role name; write ROLE=MODEL_ID, e.g. reasoning=openai/gpt-4o"
            )
        if not model_id:
            raise UsageError(f"{flag} {value!r} names no model; write ROLE=MODEL_ID")
        if role in models:
            raise UsageError(f"the model of role {role!r} is given twice; give each role once")
        models[role] = model_id
    return models


MAX_OPTION_DEPTH = 100  # lists and objects nested deeper than this in one option's JSON value are refused
MAX_LOOP_CYCLES = 1000  # the most cycles one heartbeat loop may run (the UI's and `cogscope heartbeat --cycles`)


def _depth(text: str) -> int:
    """How deep `[` and `{` nest in `text` (outside JSON strings), counted without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _value(key: str, text: str) -> Any:
    """JSON when it parses (numbers, true/false, lists), else the text itself. JSON nested deeper than
    MAX_OPTION_DEPTH is refused (Python's parser would stop at its recursion limit with a traceback)."""
    if text[:1] in "[{" and _depth(text) > MAX_OPTION_DEPTH:
        raise UsageError(
            f"option {key!r}: its JSON value nests lists or objects more than {MAX_OPTION_DEPTH} deep; "
            "give a flatter value"
        )
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_options(values: Iterable[str]) -> dict[str, Any]:
    """`KEY=VALUE` items (CLI `--option`, or one per line in the UI) -> factory keyword options."""
    options: dict[str, Any] = {}
    for raw in values:
        for line in (raw or "").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or not KEY.match(key):
                raise UsageError(f"option {line!r} is not KEY=VALUE; write it like max_steps=3")
            options[key] = _value(key, value.strip())
    return options


def parse_lines(text: str | None) -> list[str]:
    """A multi-line form field -> its non-empty lines (e.g. one MCP command per line)."""
    return [line.strip() for line in (text or "").splitlines() if line.strip() and not line.strip().startswith("#")]


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION_S = 36500 * 86400.0  # 100 years: further back than any trace, and dates stay in range
MAX_INTERVAL_S = 86400.0  # a heartbeat loop's interval: at most a day between two cycles


def parse_duration(text: str, flag: str) -> float:
    """'5s', '15m', '24h', '7d', '2w' (a bare number is seconds) -> seconds; UsageError otherwise."""
    match = DURATION.match(text or "")
    if not match or float(match.group(1)) <= 0:
        raise UsageError(f"{flag} {shorten(text, 80)!r} is not a duration; write it like 5s, 15m, 24h or 7d")
    seconds = float(match.group(1)) * UNIT_SECONDS[match.group(2) or "s"]
    if not seconds <= MAX_DURATION_S:  # also inf (a number too long for a float)
        raise UsageError(f"{flag} {shorten(text, 80)!r} is too long; give at most 36500d (100 years)")
    return seconds


def check_interval(seconds: float, flag: str = "--interval") -> float:
    """The seconds between two heartbeat cycles: a number from 0 to a day (not nan, not inf)."""
    if not 0 <= seconds <= MAX_INTERVAL_S:  # False for nan
        raise UsageError(
            f"{flag} {seconds:g} is not a number of seconds from 0 to {MAX_INTERVAL_S:g} (a day); give one like 5"
        )
    return float(seconds)


def check_cycles(value: Any, flag: str = "--cycles") -> int:
    """A heartbeat loop's number of cycles: a whole number from 1 to MAX_LOOP_CYCLES; UsageError otherwise."""
    try:
        count = float(str(value).strip())
    except ValueError:
        count = float("nan")
    if not (count.is_integer() and 1 <= count <= MAX_LOOP_CYCLES):  # also nan and inf
        raise UsageError(
            f"{flag} {shorten(str(value), 40)!r} is not a number of cycles; give a whole number from 1 to "
            f"{MAX_LOOP_CYCLES:,}"
        )
    return int(count)


def parse_money(text: str, flag: str) -> float:
    try:
        value = float(str(text).strip().lstrip("$").replace(",", ""))
    except ValueError:
        value = float("inf")
    if value == float("inf"):
        raise UsageError(f"{flag} {shorten(text, 80)!r} is not an amount in USD; write it like 250 or 1500.50")
    if not value >= 0:  # also nan
        raise UsageError(f"{flag} {shorten(text, 80)!r} must be 0 or more (USD per month)")
    return value
