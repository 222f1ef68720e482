"""Mental models and how they are revised when a prediction fails.

A mental model is a named set of basins: patterns of behaviour the agent expects, each with a
strength, a threshold and predictors (statements with a confidence). Predictions are made from a
model; when one fails with an error e (0: it held, 1: completely wrong), the basins it relied on
lose strength, raise their threshold and their predictors lose confidence (`revise_basin`), and a
new basin may be added to explain the observation (`plan_revision`).

This module holds the records, the rules and the maths, with no SQL: `store.MemoryStore` reads
and writes them in one SQLite file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import MentalModelError

NEW_BASIN_THRESHOLD = 0.5

EXAMPLE_MODEL = "user_routine"
EXAMPLE_BASINS: list[tuple[str, float, float, list[tuple[str, float]]]] = [
    (
        "morning_focus",
        0.8,
        0.4,
        [
            ("The user starts deep work before 9 on weekdays.", 0.85),
            ("Check-ins sent before 10 are answered within minutes.", 0.7),
        ],
    ),
    ("evening_fatigue", 0.6, 0.5, [("After 21:00 the user declines long reviews.", 0.75)]),
    (
        "social_recharge",
        0.5,
        0.6,
        [
            ("After meeting friends the user reports more energy the next morning.", 0.65),
            ("A week without social plans lowers the user's motivation by Friday.", 0.5),
        ],
    ),
]


@dataclass(frozen=True)
class Basin:
    id: int
    model: str
    name: str
    strength: float
    threshold: float


@dataclass(frozen=True)
class Predictor:
    id: int
    basin_id: int
    text: str
    confidence: float


@dataclass(frozen=True)
class Prediction:
    id: int
    model: str
    text: str
    created: str


@dataclass(frozen=True)
class Resolution:
    id: int
    prediction_id: int | None
    observation: str
    error: float
    basins_changed: dict[str, Any] = field(hash=False)
    created: str = ""


@dataclass(frozen=True)
class Revision:
    """What `MemoryStore.revise_model` changed: `changes` is the JSON stored in the resolution."""

    model: str
    error: float
    prediction_id: int
    resolution_id: int
    changes: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class RevisionPlan:
    """What a revision will write: the failed basins and their predictors with their new values,
    the basin to add (if any), and `changes` (old -> new, the JSON stored in the resolution)."""

    basins: list[Basin]
    predictors: list[Predictor]
    new_basin: Basin | None
    changes: dict[str, Any] = field(hash=False)


def revise_basin(
    strength: float, threshold: float, confidences: Sequence[float], error: float
) -> tuple[float, float, list[float]]:
    """The new (strength, threshold, predictor confidences) of a basin whose prediction failed with `error`.

    With `error` e in 0..1 (0: the prediction held, 1: it was completely wrong):

        strength'   = strength * (1 - 0.5 * e)       i.e. strength - 0.5 * e * strength
        threshold'  = min(1, threshold + 0.1 * e)
        confidence' = confidence * (1 - e)           for each predictor of the basin

    e.g. strength 0.8, threshold 0.4, confidence 0.85 with e = 0.5 -> 0.6, 0.45, 0.425.
    A basin added because of the surprise starts at strength e and threshold NEW_BASIN_THRESHOLD (0.5).
    """
    if not 0.0 <= error <= 1.0:
        raise ValueError(f"error must be between 0 and 1, got {error}")
    return (
        strength * (1.0 - 0.5 * error),
        min(1.0, threshold + 0.1 * error),
        [c * (1.0 - error) for c in confidences],
    )


def unknown_model_message(model: str, known: Sequence[str]) -> str:
    return f"No mental model named {model!r}. Known models: {', '.join(known) or 'none'}."


def revision_request(
    error: float, failed_basins: Sequence[str], new_basin: str | None
) -> tuple[float, list[str], str | None]:
    """Check and tidy what a revision was asked for, before any model is read: (error, failed, new_basin).

    Failed basin names are stripped, blanks dropped and repeats kept once, in order; a blank
    `new_basin` is None. Raises MentalModelError for `error` outside 0..1 or nothing to revise.
    """
    error = float(error)
    if not 0.0 <= error <= 1.0:
        raise MentalModelError(f"error must be between 0 and 1, got {error:g}. Nothing changed.")
    failed = list(dict.fromkeys(name.strip() for name in failed_basins if name and name.strip()))
    new = new_basin.strip() if new_basin and new_basin.strip() else None
    if not failed and not new:
        raise MentalModelError("nothing to revise: name at least one failed basin or a new basin")
    return error, failed, new


def plan_revision(
    model: str,
    basins: Sequence[Basin],
    predictors: Sequence[Predictor],
    error: float,
    failed: Sequence[str],
    new_basin: str | None,
) -> RevisionPlan:
    """Revise `model` (its non-empty `basins` and their `predictors`), as `revision_request` tidied it.

    Each failed basin and its predictors change as `revise_basin` documents; `new_basin`, when
    given, is added with strength `error` and threshold NEW_BASIN_THRESHOLD (its id is 0: not
    stored yet). Raises MentalModelError for a failed basin the model lacks or a `new_basin` it has.
    """
    by_name = {basin.name: basin for basin in basins}
    unknown = [name for name in failed if name not in by_name]
    if unknown:
        raise MentalModelError(
            f"Model {model!r} has no basin named {', '.join(map(repr, unknown))}. "
            f"Its basins: {', '.join(by_name)}. Nothing changed."
        )
    if new_basin in by_name:
        raise MentalModelError(
            f"Model {model!r} already has a basin named {new_basin!r}; pick another name. Nothing changed."
        )
    revised_basins: list[Basin] = []
    revised_predictors: list[Predictor] = []
    changes: dict[str, Any] = {}
    for name in failed:
        basin = by_name[name]
        own = [p for p in predictors if p.basin_id == basin.id]
        strength, threshold, confidences = revise_basin(
            basin.strength, basin.threshold, [p.confidence for p in own], error
        )
        revised_basins.append(Basin(basin.id, basin.model, basin.name, strength, threshold))
        revised_predictors += [Predictor(p.id, p.basin_id, p.text, c) for p, c in zip(own, confidences, strict=True)]
        changes[name] = {
            "strength": [basin.strength, strength],
            "threshold": [basin.threshold, threshold],
            "predictors": [
                {"id": p.id, "text": p.text, "confidence": [p.confidence, c]}
                for p, c in zip(own, confidences, strict=True)
            ],
        }
    added = None
    if new_basin:
        added = Basin(0, model, new_basin, error, NEW_BASIN_THRESHOLD)
        changes[new_basin] = {
            "added": True,
            "strength": [None, error],
            "threshold": [None, NEW_BASIN_THRESHOLD],
            "predictors": [],
        }
    return RevisionPlan(revised_basins, revised_predictors, added, changes)
