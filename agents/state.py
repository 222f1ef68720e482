"""What the memory store holds now, written for a person: energy, goals, mental models, recent actions."""

from __future__ import annotations

from .store import MemoryStore


def state_markdown(store: MemoryStore, *, actions: int = 5) -> str:
    energy = store.energy()
    lines = [f"**Energy** {energy.current:g}/{energy.max:g} (regenerates {energy.regen_per_cycle:g} per cycle)", ""]
    lines.append("**Active goals**")
    lines += [f"- [p{g.priority}] {g.text}" for g in store.goals()] or ["- (none)"]
    for model in store.models():
        lines += ["", f"**Mental model `{model}`**", "", "| basin | strength | threshold |", "| --- | --- | --- |"]
        lines += [f"| {b.name} | {b.strength:.3f} | {b.threshold:.3f} |" for b in store.basins(model)]
    recent = store.recent_actions(actions)
    if recent:
        lines += ["", "**Recent actions**"]
        lines += [f"- {a.action} (cost {a.cost:g}, energy after {a.energy_after:g})" for a in recent]
    return "\n".join(lines)
