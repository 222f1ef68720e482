"""Whether a replay's difference looks like an input cogscope did not capture: the clock, or random numbers.

A replay gives back what the cycle recorded: model outputs, the starting state, and the clock readings and seed
of `cogscope.agents.cycle_inputs`. A tool that reads `time.time()` or `random` itself gets new values on every
run, and its result (or a prompt built from it) differs in those values alone. `uncaptured(recorded, replay)`
reads the two texts as words and values (dates, times of day, Unix times, numbers): when they differ only in
values, it names what the values look like and the input they most likely come from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*\.?,?"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s?[AaPp]\.?[Mm]\.?)?"
VALUES = re.compile(
    "|".join(
        (
            rf"(?P<datetime>\d{{4}}-\d{{2}}-\d{{2}}[T ]{_CLOCK}(?:Z|[+-]\d{{2}}:?\d{{2}})?"
            rf"|{_DAY}\s+{_MONTH}\s+\d{{1,2}},?\s+{_CLOCK}(?:\s+\d{{4}})?)",
            rf"(?P<date>\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}}/\d{{2,4}}|\d{{1,2}}\s+{_MONTH}\s+\d{{4}}"
            rf"|{_MONTH}\s+\d{{1,2}},?\s+\d{{4}})",
            rf"(?P<time>(?<![\w.]){_CLOCK}(?!\d))",
            r"(?P<unix>(?<![\w.])1\d{9}(?:\.\d+)?(?![\w.])|(?<![\w.])1\d{12}(?![\w.]))",
            r"(?P<uuid>(?<![\w-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-]))",
            r"(?P<number>(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w]))",
        )
    )
)
LOOKS_LIKE = {
    "datetime": "a date and time",
    "date": "a date",
    "time": "a time of day",
    "unix": "a clock reading (a Unix time)",
    "uuid": "a random id (a UUID)",
    "number": "numbers",
}
CLOCK_KINDS = ("datetime", "date", "time", "unix")


@dataclass(frozen=True)
class Uncaptured:
    """What a difference looks like (`looks_like`), and the input it most likely comes from (`source`)."""

    looks_like: str
    source: str  # "the clock" | "random numbers"

    def line(self) -> str:
        if self.source == "the clock":
            return (
                f"differs only in what looks like {self.looks_like}: an input cogscope did not capture (the clock); "
                "read the time with cogscope.agents.cycle_inputs.now() to have it recorded and given back"
            )
        return (
            f"differs only in {self.looks_like}: maybe an input cogscope did not capture (random numbers, the clock), "
            "or a starting state other than the recorded one; draw random numbers with "
            "cogscope.agents.cycle_inputs.rng() and read the time with now() to have them recorded and given back"
        )

    def record(self) -> dict[str, str]:
        return {"looks_like": self.looks_like, "input": self.source, "line": self.line()}


def _values(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(the text with every value replaced by its kind, the values as (kind, text) in order)."""
    found: list[tuple[str, str]] = []

    def mark(match: re.Match[str]) -> str:
        kind = match.lastgroup or "number"
        found.append((kind, match.group(0)))
        return f"\x00{kind}\x00"

    return VALUES.sub(mark, text), found


def uncaptured(recorded: str, replay: str) -> Uncaptured | None:
    """What the difference between two texts looks like, when they differ only in dates, times or numbers."""
    if recorded == replay:
        return None
    shape_a, values_a = _values(recorded)
    shape_b, values_b = _values(replay)
    if shape_a != shape_b:
        return None
    kinds = [kind for (kind, a), (_, b) in zip(values_a, values_b, strict=True) if a != b]
    if not kinds:
        return None
    clock = [kind for kind in kinds if kind in CLOCK_KINDS]
    if len(clock) == len(kinds):
        return Uncaptured(LOOKS_LIKE[clock[0]], "the clock")
    drawn = [kind for kind in kinds if kind not in CLOCK_KINDS]
    return Uncaptured(LOOKS_LIKE["uuid" if all(kind == "uuid" for kind in drawn) else "number"], "random numbers")
