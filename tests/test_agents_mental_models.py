"""Mental models and their revision maths (`agents/mental_models.py`), on hand-built basins: no SQLite.

Every expected number is worked out by hand from the rules in `revise_basin`'s docstring:
strength * (1 - 0.5 e), min(1, threshold + 0.1 e), confidence * (1 - e).
"""

from __future__ import annotations

import pytest

from cogscope.agents.errors import MentalModelError
from cogscope.agents.mental_models import (
    NEW_BASIN_THRESHOLD,
    Basin,
    Predictor,
    plan_revision,
    revise_basin,
    revision_request,
    unknown_model_message,
)

FOCUS = Basin(1, "routine", "focus", 0.8, 0.4)
FATIGUE = Basin(2, "routine", "fatigue", 0.6, 0.5)
SOCIAL = Basin(3, "routine", "social", 0.5, 0.6)
BASINS = [FOCUS, FATIGUE, SOCIAL]
PREDICTORS = [
    Predictor(10, FOCUS.id, "Deep work starts before 9.", 0.9),
    Predictor(11, FOCUS.id, "Morning check-ins are answered at once.", 0.5),
    Predictor(12, FATIGUE.id, "Long reviews after 21:00 are declined.", 0.75),
]  # SOCIAL has no predictor


# -- revise_basin: one basin's new numbers ------------------------------------------------
def test_revise_basin_worked_example_of_the_docstring():
    # e = 0.5: strength 0.8 * 0.75 = 0.6, threshold 0.4 + 0.05 = 0.45, confidences * 0.5
    strength, threshold, confidences = revise_basin(0.8, 0.4, [0.85, 0.7], 0.5)
    assert strength == pytest.approx(0.6)
    assert threshold == pytest.approx(0.45)
    assert confidences == pytest.approx([0.425, 0.35])


def test_a_completely_wrong_prediction_halves_strength_and_zeroes_confidence():
    strength, threshold, confidences = revise_basin(0.6, 0.5, [0.75, 0.2], 1.0)
    assert strength == pytest.approx(0.3)
    assert threshold == pytest.approx(0.6)
    assert confidences == [0.0, 0.0]


def test_a_prediction_that_held_changes_nothing():
    assert revise_basin(0.5, 0.5, [0.9], 0.0) == (0.5, 0.5, [0.9])


def test_the_threshold_never_passes_1():
    assert revise_basin(0.5, 0.95, [0.3], 1.0) == (0.25, 1.0, [0.0])  # 0.95 + 0.1 would be 1.05


def test_a_basin_without_predictors_still_loses_strength():
    strength, threshold, confidences = revise_basin(0.4, 0.2, [], 0.25)
    assert (strength, threshold, confidences) == (pytest.approx(0.35), pytest.approx(0.225), [])  # 0.4 * 0.875


def test_two_failures_in_a_row_compound():
    # e = 0.5 twice: strength 0.8 -> 0.6 -> 0.45, threshold 0.4 -> 0.45 -> 0.5, confidence 0.8 -> 0.4 -> 0.2
    strength, threshold, (confidence,) = revise_basin(0.8, 0.4, [0.8], 0.5)
    strength, threshold, (confidence,) = revise_basin(strength, threshold, [confidence], 0.5)
    assert (strength, threshold, confidence) == pytest.approx((0.45, 0.5, 0.2))


@pytest.mark.parametrize("error", [-0.1, 1.5])
def test_an_error_outside_0_to_1_is_refused(error):
    with pytest.raises(ValueError, match=f"error must be between 0 and 1, got {error}"):
        revise_basin(0.5, 0.5, [0.5], error)


# -- revision_request: what was asked for, tidied ---------------------------------------------
def test_revision_request_tidies_names():
    assert revision_request(0.3, [" focus ", "", "focus", "  ", "fatigue"], "  late ") == (
        0.3,
        ["focus", "fatigue"],
        "late",
    )
    assert revision_request(1, ["focus"], "   ") == (1.0, ["focus"], None)
    assert revision_request(0.25, [], "late") == (0.25, [], "late")


def test_revision_request_refuses_a_bad_error_before_anything_else():
    with pytest.raises(MentalModelError, match=r"^error must be between 0 and 1, got 2\. Nothing changed\.$"):
        revision_request(2, [], None)


def test_revision_request_refuses_nothing_to_revise():
    with pytest.raises(MentalModelError, match="nothing to revise: name at least one failed basin or a new basin"):
        revision_request(0.5, ["", "  "], " ")


# -- plan_revision: the whole model's change ---------------------------------------------------
def test_plan_revises_the_failed_basin_and_its_predictors_only():
    plan = plan_revision("routine", BASINS, PREDICTORS, 0.4, ["focus"], None)

    # e = 0.4: strength 0.8 * 0.8 = 0.64, threshold 0.4 + 0.04 = 0.44, confidence * 0.6
    (focus,) = plan.basins
    assert (focus.id, focus.model, focus.name) == (1, "routine", "focus")
    assert (focus.strength, focus.threshold) == pytest.approx((0.64, 0.44))
    assert [(p.id, p.basin_id, p.text) for p in plan.predictors] == [
        (10, 1, PREDICTORS[0].text),
        (11, 1, PREDICTORS[1].text),
    ]
    assert [p.confidence for p in plan.predictors] == pytest.approx([0.54, 0.3])
    assert plan.new_basin is None

    assert list(plan.changes) == ["focus"]
    change = plan.changes["focus"]
    assert change["strength"] == pytest.approx([0.8, 0.64])
    assert change["threshold"] == pytest.approx([0.4, 0.44])
    assert [(p["id"], p["text"]) for p in change["predictors"]] == [(10, PREDICTORS[0].text), (11, PREDICTORS[1].text)]
    assert [p["confidence"] for p in change["predictors"]] == [pytest.approx([0.9, 0.54]), pytest.approx([0.5, 0.3])]


def test_plan_adds_a_new_basin_at_strength_error_and_threshold_one_half():
    plan = plan_revision("routine", BASINS, PREDICTORS, 0.7, ["social", "fatigue"], "late_nights")

    assert [b.name for b in plan.basins] == ["social", "fatigue"]  # in the order they were named
    social, fatigue = plan.basins
    assert (social.strength, social.threshold) == pytest.approx((0.325, 0.67))  # 0.5 * 0.65, 0.6 + 0.07
    assert (fatigue.strength, fatigue.threshold) == pytest.approx((0.39, 0.57))  # 0.6 * 0.65, 0.5 + 0.07
    assert [(p.id, p.confidence) for p in plan.predictors] == [(12, pytest.approx(0.225))]  # 0.75 * 0.3
    assert plan.new_basin == Basin(0, "routine", "late_nights", 0.7, 0.5) and NEW_BASIN_THRESHOLD == 0.5

    assert list(plan.changes) == ["social", "fatigue", "late_nights"]
    assert plan.changes["social"]["predictors"] == []
    assert plan.changes["late_nights"] == {
        "added": True,
        "strength": [None, 0.7],
        "threshold": [None, 0.5],
        "predictors": [],
    }


def test_plan_with_only_a_new_basin_changes_no_existing_basin():
    plan = plan_revision("routine", BASINS, PREDICTORS, 0.2, [], "weekend")
    assert plan.basins == [] and plan.predictors == []
    assert list(plan.changes) == ["weekend"] and plan.new_basin == Basin(0, "routine", "weekend", 0.2, 0.5)


def test_plan_refuses_basins_the_model_does_not_have_naming_its_own():
    with pytest.raises(MentalModelError) as refused:
        plan_revision("routine", BASINS, PREDICTORS, 0.5, ["focus", "night_owl", "dreams"], None)
    assert str(refused.value) == (
        "Model 'routine' has no basin named 'night_owl', 'dreams'. Its basins: focus, fatigue, social. Nothing changed."
    )


def test_plan_refuses_a_new_basin_that_already_exists():
    with pytest.raises(MentalModelError) as refused:
        plan_revision("routine", BASINS, PREDICTORS, 0.5, ["focus"], "social")
    assert str(refused.value) == (
        "Model 'routine' already has a basin named 'social'; pick another name. Nothing changed."
    )


def test_unknown_model_message_names_the_known_ones():
    assert unknown_model_message("weather", ["user_routine", "work"]) == (
        "No mental model named 'weather'. Known models: user_routine, work."
    )
    assert unknown_model_message("weather", []) == "No mental model named 'weather'. Known models: none."
