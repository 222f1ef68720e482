"""Cognitive tools: smolagents Tools that read and change the memory store.

Each tool takes the store and, optionally, an EnergyLedger: with a ledger the tool first pays
its cost (agents.energy.ENERGY_COSTS, under the tool's name) and, when the energy left cannot
pay, returns the ledger's refusal instead of acting. `cognitive_tools` builds all ten.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from smolagents import ChatMessage, MessageRole, Model, Tool

from .energy import ENERGY_COSTS, EnergyLedger
from .errors import MentalModelError
from .mental_models import Revision
from .store import MAX_MEMORY_CHARS, MEMORY_KINDS, MemoryStore, clip

NO_CYCLE = "manual"
"""The cycle id logged for energy changes made by a tool that has no ledger."""

STOPWORDS = frozenset(
    "a an the and or but of to in on at for with by from as is are was were be been will would it its this that".split()
)


def _cost(name: str) -> str:
    return f"Costs {ENERGY_COSTS[name]:g} energy."


class _CognitiveTool(Tool):  # type: ignore[misc]  # smolagents has no py.typed: its classes are Any
    """A tool over a MemoryStore that pays for itself through an optional EnergyLedger."""

    def __init__(self, store: MemoryStore, ledger: EnergyLedger | None = None) -> None:
        super().__init__()
        self.store = store
        self.ledger = ledger

    def _refusal(self) -> str | None:
        """Charge this tool's cost; the refusal text when the energy left cannot pay it."""
        return self.ledger.charge(self.name) if self.ledger is not None else None

    @property
    def _cycle_id(self) -> str:
        return self.ledger.cycle_id if self.ledger is not None else NO_CYCLE


class RecallMemoryTool(_CognitiveTool):
    name = "recall_memory"
    description = (
        "Search long-term memory by full text. Returns up to `limit` memories that share words with "
        "`query`, best match first, one per line as '[kind, salience] text'. Returns 'No memories match.' "
        "when nothing matches: then try other words. " + _cost("recall_memory")
    )
    inputs = {
        "query": {"type": "string", "description": "Words to look for, e.g. 'energy sleep'."},
        "limit": {"type": "integer", "description": "How many memories at most (default 5).", "nullable": True},
    }
    output_type = "string"

    def forward(self, query: str, limit: int | None = 5) -> str:
        if refused := self._refusal():
            return refused
        memories = self.store.recall(query, limit or 5)
        if not memories:
            return "No memories match."
        return "\n".join(m.line() for m in memories)


class RememberTool(_CognitiveTool):
    name = "remember"
    description = (
        f"Store one memory (at most {MAX_MEMORY_CHARS:,} characters) in long-term memory so later cycles can "
        "recall it. Use it for something worth keeping: what happened (kind 'episodic'), a fact about the user "
        "or the world ('semantic'), a how-to that worked ('procedural') or a conclusion ('reflection'). "
        "Returns 'Remembered #<id>.' " + _cost("remember")
    )
    inputs = {
        "text": {"type": "string", "description": "The memory, one self-contained sentence."},
        "kind": {
            "type": "string",
            "description": "One of episodic, semantic, procedural, reflection (default episodic).",
            "nullable": True,
        },
    }
    output_type = "string"

    def forward(self, text: str, kind: str | None = None) -> str:
        kind = (kind or "episodic").strip().lower()
        if kind not in MEMORY_KINDS:
            return f"Unknown kind {kind!r}: use one of {', '.join(MEMORY_KINDS)}. Nothing was stored."
        if not text.strip():
            return "Nothing to remember: give the memory as a sentence."
        if len(text.strip()) > MAX_MEMORY_CHARS:
            return (
                f"That memory is {len(text.strip()):,} characters; one memory holds at most {MAX_MEMORY_CHARS:,}. "
                "Nothing was stored: remember a short summary instead."
            )
        if refused := self._refusal():
            return refused
        return f"Remembered #{self.store.remember(text, kind=kind)}."


class ReviewGoalsTool(_CognitiveTool):
    name = "review_goals"
    description = (
        "List the active goals, highest priority first, one per line as '#<id> [priority N] text' "
        "(priority 5 is the most important). Use it to orient before deciding what to do. " + _cost("review_goals")
    )
    inputs: dict[str, Any] = {}
    output_type = "string"

    def forward(self) -> str:
        if refused := self._refusal():
            return refused
        goals = self.store.goals("active")
        if not goals:
            return "No active goals."
        return "\n".join(f"#{g.id} [priority {g.priority}] {g.text}" for g in goals)


class ObserveTool(_CognitiveTool):
    name = "observe"
    description = (
        "Observe your own state: energy left out of the maximum, the active goals and the five most recent "
        "actions with what they cost. Cheap; use it first in a cycle. " + _cost("observe")
    )
    inputs: dict[str, Any] = {}
    output_type = "string"

    def forward(self) -> str:
        if refused := self._refusal():
            return refused
        energy = self.store.energy()
        goals = [f"- [priority {g.priority}] {g.text}" for g in self.store.goals("active")]
        actions = [
            f"- {a.action} (cost {a.cost:g}, energy after {a.energy_after:g}, cycle {a.cycle_id})"
            for a in self.store.recent_actions(5)
        ]
        return "\n".join(
            [
                f"Energy: {energy.current:g}/{energy.max:g} (regenerates {energy.regen_per_cycle:g} per cycle).",
                "Active goals:",
                *(goals or ["- none"]),
                "Recent actions (newest first):",
                *(actions or ["- none"]),
            ]
        )


class ReflectTool(_CognitiveTool):
    name = "reflect"
    description = (
        "Reflect on a topic: recalls up to five memories about it and stores a new 'reflection' memory that "
        "summarizes them (how many, the most salient one, the tags they share). Returns the reflection. "
        "If memory holds nothing on the topic it says so and stores nothing. " + _cost("reflect")
    )
    inputs = {"topic": {"type": "string", "description": "What to reflect on, in a few words, e.g. 'sleep energy'."}}
    output_type = "string"

    def forward(self, topic: str) -> str:
        if refused := self._refusal():
            return refused
        memories = [m for m in self.store.recall(topic, limit=10) if m.kind != "reflection"][:5]
        if not memories:
            return f"Nothing in memory about {topic!r}; no reflection was written. Try other words."
        salient = max(memories, key=lambda m: m.salience)  # first of the best-recalled on ties
        counts = Counter(tag for m in memories for tag in {t.strip() for t in m.tags.split(",") if t.strip()})
        common = sorted((tag for tag, n in counts.items() if n >= 2), key=lambda tag: (-counts[tag], tag))
        text = (
            f"Reflection on {clip(topic.strip(), 200)}: {len(memories)} memories; "
            f"most salient: {clip(salient.text, 1_000).rstrip('.')}; "
            f"common tags: {', '.join(common) or 'none shared'}."
        )
        self.store.remember(text, kind="reflection", tags=",".join(["reflection", *common]), salience=salient.salience)
        return text


class SynthesizeTool(_CognitiveTool):
    name = "synthesize"
    description = (
        "Turn a list of items (facts, goals, ideas) into a plan: 'Plan:' followed by numbered steps, one per "
        "distinct item, in the order given. Use it after recalling or reviewing goals, before you decide. "
        + _cost("synthesize")
    )
    inputs = {
        "items": {
            "type": "array",
            "description": "The items to plan from, as a list of strings.",
            "items": {"type": "string"},
        },
    }
    output_type = "string"

    def forward(self, items: list[str]) -> str:
        if refused := self._refusal():
            return refused
        if isinstance(items, str):
            items = items.splitlines()
        steps: list[str] = []
        seen: set[str] = set()
        for item in items or []:
            step = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", str(item)).strip()
            if step and step.lower() not in seen:
                seen.add(step.lower())
                steps.append(step[0].upper() + step[1:])
        if not steps:
            return "Nothing to synthesize: give a list with at least one non-empty item."
        return "Plan:\n" + "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))


class UpdateEnergyTool(_CognitiveTool):
    name = "update_energy"
    description = (
        "Change your energy by `delta` (positive: rest or recovery, negative: strain), kept between 0 and the "
        "maximum, and log why. Returns 'Energy now X/Y.' " + _cost("update_energy")
    )
    inputs = {
        "delta": {"type": "number", "description": "How much energy to add (negative to remove)."},
        "reason": {"type": "string", "description": "Why, in a few words; it goes into the action log."},
    }
    output_type = "string"

    def forward(self, delta: float, reason: str) -> str:
        if refused := self._refusal():
            return refused
        energy = self.store.adjust_energy(float(delta), reason.strip() or "no reason given", self._cycle_id)
        return f"Energy now {energy.current:g}/{energy.max:g}."


class GetBasinsTool(_CognitiveTool):
    name = "get_basins"
    description = (
        "Show a mental model: each basin (a pattern of behaviour you expect) with its strength and threshold "
        "(0..1), and under it the predictors that follow from it with their confidence (0..1). Use it before "
        "predicting or revising. An unknown model name returns the known ones. " + _cost("get_basins")
    )
    inputs = {"model": {"type": "string", "description": "The mental model's name, e.g. 'user_routine'."}}
    output_type = "string"

    def forward(self, model: str) -> str:
        if refused := self._refusal():
            return refused
        basins = self.store.basins(model)
        if not basins:
            return self.store.unknown_model_message(model)
        predictors = self.store.predictors(model)
        lines = [f"Mental model {model} ({len(basins)} basins):"]
        for basin in basins:
            lines.append(f"- {basin.name}: strength {basin.strength:.3f}, threshold {basin.threshold:.3f}")
            own = [p for p in predictors if p.basin_id == basin.id]
            lines += [f"  - predictor #{p.id} (confidence {p.confidence:.3f}): {p.text}" for p in own]
            if not own:
                lines.append("  - no predictors")
        return "\n".join(lines)


def _stems(text: str) -> set[str]:
    words = (w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in STOPWORDS)
    return {w[:-1] if w.endswith("s") and len(w) > 3 else w for w in words}


def lexical_error(prediction: str, observation: str) -> float:
    """How far `observation` is from `prediction` in words: 1 - Jaccard similarity of their stems.

    Stems are the lowercase words minus STOPWORDS, with one trailing 's' stripped from words longer than
    three letters. error = 1 - |P & O| / |P | O|; identical texts -> 0.0, no shared stem -> 1.0 (two empty
    texts -> 0.0).

    Worked examples:

    - "The user will skip the workout" vs "The user went running":
      P = {user, skip, workout} ('the' and 'will' are stopwords);
      O = {user, went, running}; shared {user}: 1 of 5 stems -> error 1 - 1/5 = 0.800.
    - "Energy drops after lunch" vs "Energy dropped after a long lunch":
      P = {energy, drop, after, lunch}; O = {energy, dropped, after, long, lunch};
      shared {energy, after, lunch}: 3 of 6 stems -> error 1 - 3/6 = 0.500.
    """
    p, o = _stems(prediction), _stems(observation)
    if not p and not o:
        return 0.0
    return 1.0 - len(p & o) / len(p | o)


_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")

JUDGE_PROMPT = """How wrong was this prediction, given what was observed?
Answer with one number between 0 and 1: 0 means the observation fully confirms the prediction,
1 means it completely contradicts it. Answer with the number only.

Prediction: {prediction}
Observation: {observation}"""


def _text_of(message: ChatMessage) -> str:
    content = message.content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return content or ""


class SemanticErrorTool(_CognitiveTool):
    name = "semantic_error"
    description = (
        "Measure the prediction error: how far an observation is from what was predicted, as a number from "
        "0.000 (the observation confirms the prediction) to 1.000 (it contradicts it or shares nothing with "
        "it). Returns the number first; pass it to revise_model as `error`. " + _cost("semantic_error")
    )
    inputs = {
        "prediction": {"type": "string", "description": "What was expected, e.g. 'the user will skip the workout'."},
        "observation": {"type": "string", "description": "What actually happened, e.g. 'the user went running'."},
    }
    output_type = "string"

    def __init__(self, store: MemoryStore, ledger: EnergyLedger | None = None, judge: Model | None = None) -> None:
        super().__init__(store, ledger)
        self.judge = judge

    def forward(self, prediction: str, observation: str) -> str:
        if refused := self._refusal():
            return refused
        lexical = lexical_error(prediction, observation)
        if self.judge is None:
            return f"{lexical:.3f}"
        prompt = JUDGE_PROMPT.format(prediction=prediction.strip(), observation=observation.strip())
        try:
            answer = _text_of(
                self.judge.generate([ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": prompt}])])
            )
        except Exception as e:  # the judge is optional: a failing one must not end the cycle
            return f"{lexical:.3f} (lexical measure: the judge model failed: {type(e).__name__}: {e})"
        match = _NUMBER.search(answer)
        if match and 0.0 <= float(match.group()) <= 1.0:
            return f"{float(match.group()):.3f}"
        shown = " ".join(answer.split())[:80]
        return f"{lexical:.3f} (lexical measure: the judge's answer {shown!r} had no number between 0 and 1)"


def revision_summary(revision: Revision) -> str:
    """The human-readable account of exactly what `MemoryStore.revise_model` changed (old -> new)."""
    lines = [f"Revised {revision.model} with error {revision.error:.3f}:"]
    for name, change in revision.changes.items():
        (old_s, new_s), (old_t, new_t) = change["strength"], change["threshold"]
        if change.get("added"):
            lines.append(f"- added basin {name}: strength {new_s:.3f}, threshold {new_t:.3f}")
            continue
        lines.append(f"- {name}: strength {old_s:.3f} -> {new_s:.3f}, threshold {old_t:.3f} -> {new_t:.3f}")
        for p in change["predictors"]:
            old_c, new_c = p["confidence"]
            lines.append(f"  - predictor #{p['id']} confidence {old_c:.3f} -> {new_c:.3f}: {p['text']}")
    lines.append(f"Recorded as prediction #{revision.prediction_id}, resolution #{revision.resolution_id}.")
    return "\n".join(lines)


class ReviseModelTool(_CognitiveTool):
    name = "revise_model"
    description = (
        "Restructure a mental model after a prediction failed. Each failed basin loses strength "
        "(strength * (1 - 0.5*error)), gets a higher threshold (+0.1*error, at most 1) and its predictors lose "
        "confidence (confidence * (1 - error)); `new_basin`, if given, is added with strength = error. The "
        "change is saved and returned as old -> new numbers. Use after semantic_error gave a high error. "
        + _cost("revise_model")
    )
    inputs = {
        "model": {"type": "string", "description": "The mental model's name, e.g. 'user_routine'."},
        "error": {"type": "number", "description": "The prediction error from semantic_error, 0 to 1."},
        "failed_basins": {
            "type": "array",
            "description": "Names of the basins whose prediction failed, e.g. ['evening_fatigue'].",
            "items": {"type": "string"},
        },
        "new_basin": {
            "type": "string",
            "description": "Name of a new basin that explains the observation, or null.",
            "nullable": True,
        },
    }
    output_type = "string"

    def forward(self, model: str, error: float, failed_basins: list[str], new_basin: str | None = None) -> str:
        if refused := self._refusal():
            return refused
        if isinstance(failed_basins, str):
            failed_basins = failed_basins.split(",")
        try:
            error = float(error)
        except (TypeError, ValueError):
            return f"error must be a number between 0 and 1, got {error!r}. Nothing changed."
        try:
            revision = self.store.revise_model(model, error, failed_basins or [], new_basin)
        except MentalModelError as e:
            return str(e)
        return revision_summary(revision)


TOOL_CLASSES: tuple[type[_CognitiveTool], ...] = (
    RecallMemoryTool,
    RememberTool,
    ReviewGoalsTool,
    ObserveTool,
    ReflectTool,
    SynthesizeTool,
    UpdateEnergyTool,
    GetBasinsTool,
    SemanticErrorTool,
    ReviseModelTool,
)


def cognitive_tools(
    store: MemoryStore, *, ledger: EnergyLedger | None = None, judge: Model | None = None
) -> dict[str, Tool]:
    """All ten cognitive tools over `store`, by name; `judge` (a smolagents Model) makes semantic_error ask it."""
    tools: dict[str, Tool] = {}
    for cls in TOOL_CLASSES:
        tool = SemanticErrorTool(store, ledger, judge) if cls is SemanticErrorTool else cls(store, ledger)
        tools[tool.name] = tool
    return tools
