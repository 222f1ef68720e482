"""What the memory store holds now, written for a person: energy, goals, mental models, recent actions."""

from __future__ import annotations

import re

from .store import MemoryStore

MARKUP = re.compile(r"([\\`*\[\]<>!|&#~$])")  # what could make a heading, link, image, table cell or HTML of a text


def _text(value: object) -> str:
    """Text an agent wrote (a goal, a basin's name, a reason in the action log), on one line and with the characters
    markdown acts on backslash-escaped: the page shows it as written."""
    return MARKUP.sub(r"\\\1", " ".join(str(value).splitlines()))


def state_markdown(store: MemoryStore, *, actions: int = 5) -> str:
    """The store's state as markdown (the Run tab's Memory state, `cogscope heartbeat`); the agents' texts in it
    are escaped (`_text`)."""
    energy = store.energy()
    lines = [f"**Energy** {energy.current:g}/{energy.max:g} (regenerates {energy.regen_per_cycle:g} per cycle)", ""]
    lines.append("**Active goals**")
    lines += [f"- [p{g.priority}] {_text(g.text)}" for g in store.goals()] or ["- (none)"]
    for model in store.models():
        lines += ["", f"**Mental model {_text(model)}**", "", "| basin | strength | threshold |", "| --- | --- | --- |"]
        lines += [f"| {_text(b.name)} | {b.strength:.3f} | {b.threshold:.3f} |" for b in store.basins(model)]
    recent = store.recent_actions(actions)
    if recent:
        lines += ["", "**Recent actions**"]
        lines += [f"- {_text(a.action)} (cost {a.cost:g}, energy after {a.energy_after:g})" for a in recent]
    return "\n".join(lines)
