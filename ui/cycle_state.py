"""The state a cycle starts from: kept before every cycle, restored into a scratch copy for every re-run, rolled back
on the operator's word, pruned after COGSCOPE_STATE_DAYS.

A built-in agent (heartbeat, consciousness, revision) keeps its state in a memory store: the file its option
`memory` names, else the data dir's memory.sqlite (`agents.open_store`). Before each of its cycles the store keeps a
point (`MemoryStore.checkpoint`), whose id the cycle's root span records (`cogscope.state`). A replay, fork or stub
run builds the agent on a scratch copy of that point (`MemoryStore.restore_copy` into a temporary folder, removed when
the re-run ends): the live store is never written. `live=True` (`--live-state`, the Traces tab's checkbox) runs it on
the live store instead, and its report says so. Other agents keep no state cogscope knows of: they re-run as they are
(so does another app's cycle, rebuilt with the factory and options the operator names).
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cogscope import agents, defaults

from .errors import UsageError
from .state_files import copy_imported_state

MEMORY_OPTION = "memory"  # the option that names a built-in agent's memory store file
LIVE_FLAG = "--live-state"
LIVE_BOX = "Against the current live state"  # the Traces tab's checkbox


def keeps_state(agent: str) -> bool:
    """Whether cogscope keeps this agent's state: the built-in agents', in their memory store."""
    return agent in agents.BUILTIN


def memory_path(options: Mapping[str, Any]) -> Path:
    """The memory store file an agent built with `options` uses (the data dir's memory.sqlite unless named)."""
    named = options.get(MEMORY_OPTION)
    return Path(str(named)).expanduser() if named else defaults.data_dir() / defaults.MEMORY_FILE


def live_store(options: Mapping[str, Any]) -> Any:
    """The memory store an agent built with `options` uses: the very object its tools write through (UsageError for
    a store that cannot be opened: corrupt, newer, locked, read-only)."""
    try:
        return agents.open_store(options.get(MEMORY_OPTION) or None)
    except agents.AgentsError as e:
        raise UsageError(str(e)) from None


def checkpointer(store: Any) -> Callable[[str], str | None]:
    """A cycle's checkpoint (telemetry `Cycle(checkpoint=...)`): keeps the store's state, labelled with the cycle id."""

    def checkpoint(cycle_id: str) -> str | None:
        return str(store.checkpoint(cycle_id).id)

    return checkpoint


def cycle_checkpoint(agent: str, options: Mapping[str, Any]) -> Callable[[str], str | None] | None:
    """The checkpoint of a cycle of `agent` built with `options` (None: an agent whose state cogscope does not keep)."""
    return checkpointer(live_store(options)) if keeps_state(agent) else None


def no_state_message(trace_id: str) -> str:
    return (
        f"trace {trace_id} names no starting state (it was recorded before cogscope kept each cycle's state, or its "
        f"state could not be kept): replay it against the current live state with {LIVE_FLAG} (Traces tab: tick "
        f'"{LIVE_BOX}")'
    )


@dataclass(frozen=True)
class RerunState:
    """Where a re-run's agent keeps its state, and what its report says about it."""

    memory: str | None = None  # the `memory` option the re-run's agent is built with (None: the recorded options)
    checkpoint: Callable[[str], str | None] | None = None  # names the state the re-run starts from
    note: str | None = None  # one line for the report (None: an agent without state)

    def options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options to build the re-run's agent with: the recorded ones, on the scratch copy when there is one."""
        return {**options, MEMORY_OPTION: self.memory} if self.memory else dict(options)

    def build(self, spec: Any, models: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
        """The re-run's agent: `spec` (an agents.AgentSpec) built with `options`, on the scratch copy if any."""
        return spec.build(models, self.options(options))


def rerun_state(recording: Any, *, live: bool, stack: ExitStack) -> RerunState:
    """The state a re-run of `recording` (a telemetry Recording) runs on: a scratch copy of the state the cycle
    started from, removed when `stack` closes (the re-run's end); or, `live`, the live store. UsageError, with
    nothing made, when that state cannot be had: none recorded, pruned, another store's, corrupt, or a store that
    cannot be opened."""
    if recording.factory_named or not keeps_state(recording.agent):
        return RerunState()  # another app's cycle, rebuilt with what the operator named: no state of cogscope's
    if live:
        return RerunState(
            checkpoint=checkpointer(live_store(recording.options)),
            note=f"against the current live state ({LIVE_FLAG}): tools write to the live memory store",
        )
    if not recording.state:
        raise UsageError(no_state_message(recording.trace_id))
    folder = Path(tempfile.mkdtemp(prefix="cogscope-state-"))
    scratch = folder / defaults.MEMORY_FILE
    try:
        restore_state_copy(recording, scratch)
    except BaseException as e:
        _remove_scratch(folder, scratch)
        if isinstance(e, agents.AgentsError):
            raise UsageError(str(e)) from None
        raise
    stack.callback(_remove_scratch, folder, scratch)
    state = str(recording.state)
    return RerunState(
        memory=str(scratch),
        checkpoint=lambda _cycle_id: state,
        note=f"on a scratch copy of state {state}, the one the cycle started from (the live store is not touched)",
    )


def restore_state_copy(recording: Any, scratch: Path) -> None:
    """The state the cycle started from, at `scratch`: restored from the live memory store it ran on, else the one a
    bundle brought when the cycle was imported (ui.state_files), else the live store's word on why it is not kept."""
    state = str(recording.state)
    path = memory_path(recording.options)
    if path.exists():
        try:
            live_store(recording.options).restore_copy(state, scratch)
        except agents.StateNotKept:
            if not copy_imported_state(state, scratch):
                raise
        return
    if not copy_imported_state(state, scratch):
        raise UsageError(
            f"the memory store {path} that trace {recording.trace_id} ran on is gone, and the state {state} "
            f"with it: replay it against the current live state with {LIVE_FLAG}"
        )


def _remove_scratch(folder: Path, scratch: Path) -> None:
    agents.close_store(str(scratch))
    shutil.rmtree(folder, ignore_errors=True)


# -- rollback and retention ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RollbackPlan:
    """Moving the live store to one of its points: what would change, before anything does."""

    store: Any  # the MemoryStore
    state: str  # the point's id
    lines: list[str]  # what would change, for a person (StateChange.lines())
    unchanged: bool  # the live store is already in that state

    @classmethod
    def of(cls, store: Any, state: str) -> RollbackPlan:
        """UsageError when the point is not kept (pruned, unknown, another store's), corrupt, or unreadable."""
        try:
            store.point(state)
            change = store.diff_to(state)
        except agents.AgentsError as e:
            raise UsageError(str(e)) from None
        moved = any(any(counts) for counts in change.tables.values()) or change.energy[0] != change.energy[1]
        return cls(store, state, list(change.lines()), not moved)

    def apply(self) -> Any:
        """Roll the live store back; returns the point kept just before (roll forward: roll back to it)."""
        try:
            return self.store.rollback(self.state)
        except agents.AgentsError as e:
            raise UsageError(str(e)) from None


def trace_rollback(recording: Any) -> RollbackPlan:
    """The rollback of the live store to the state the recorded cycle started from; UsageError when there is none to
    roll back to, or the trace is not one this installation recorded (its `memory` option could name any file)."""
    if not keeps_state(recording.agent):
        whose = (
            "which keeps its own state (cogscope keeps each cycle's, for replays, but does not roll it back)"
            if recording.state
            else "whose state cogscope does not keep"
        )
        raise UsageError(
            f"trace {recording.trace_id} ran agent {recording.agent!r}, {whose}; only the built-in agents' memory "
            f"store ({', '.join(agents.BUILTIN)}) can be rolled back"
        )
    if not recording.recorded_here:
        raise UsageError(
            f"trace {recording.trace_id} was not recorded by this installation (or was changed since): cogscope rolls "
            "the memory store back only to states of cycles it recorded"
        )
    if not recording.state:
        raise UsageError(
            f"trace {recording.trace_id} names no starting state (it was recorded before cogscope kept each cycle's "
            "state, or its state could not be kept): there is nothing to roll back to"
        )
    path = memory_path(recording.options)
    if not path.exists():
        raise UsageError(
            f"the memory store {path} that trace {recording.trace_id} ran on is gone: nothing to roll back"
        )
    return RollbackPlan.of(live_store(recording.options), recording.state)


def roll_forward_command(kept: Any, options: Mapping[str, Any]) -> str:
    """The command that moves the live store back to `kept` (the point a rollback kept just before it)."""
    named = options.get(MEMORY_OPTION)
    memory = f" --memory {shlex.quote(str(named))}" if named else ""
    return f"cogscope state rollback --point {kept.id}{memory}"


def prune_line(memory: str | None, days: float) -> str | None:
    """Prune the points of the memory store `memory` (default: the data dir's) older than `days`; the line that says
    how many went (None when none did, or there is no store yet)."""
    options = {MEMORY_OPTION: memory} if memory else {}
    path = memory_path(options)
    if not path.exists():
        return None
    try:
        pruned = int(live_store(options).prune(days))
    except (UsageError, agents.AgentsError) as e:
        return f"cogscope: could not prune old states of the memory store {path}: {e}"
    if not pruned:
        return None
    points = f"{pruned} point{'s' if pruned != 1 else ''}"
    return f"State:    pruned {points} older than {days:g} days from {path} (COGSCOPE_STATE_DAYS)"
