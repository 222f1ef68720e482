"""Where the state of a user's own agent lives: its live folder for cycles, a scratch folder for re-runs.

The protocol is telemetry.state_protocol's (README "Your own agent's state"): a factory that takes `state_dir` keeps
its state in the folder it is given. A live cycle's agent is given its live folder: the option `state_dir` when the
user names one, else `<data dir>/agent-state/<agent>-<8 hex>/`; its state is kept before the cycle (checkpoint). A
re-run's agent is given a new scratch folder (`cogscope-state-*` in the temporary folder, removed when the re-run
ends), filled with the state the cycle started from: never the live folder. `--live-state` gives it the live folder
instead, and its report says so. A factory without `state_dir` is built and re-run as before.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cogscope import defaults
from cogscope.telemetry import (
    FILES,
    SNAPSHOT,
    AgentStateError,
    ReplayError,
    StateBlobs,
    parse_state_id,
    restore_into,
    state_checkpoint,
    warn_unused_methods,
)

from .cycle_state import LIVE_FLAG, no_state_message
from .errors import UsageError

STATE_DIR = defaults.STATE_DIR_OPTION


def takes_state_dir(spec: Any) -> bool:
    """Whether the agent's factory takes the `state_dir` argument (an agents.AgentSpec): the protocol's one sign."""
    return STATE_DIR in spec.options


def live_folder(agent: str, options: Mapping[str, Any]) -> Path:
    """The live state folder of `agent` built with `options`: the `state_dir` option, else one of the data dir's."""
    named = options.get(STATE_DIR)
    if named:
        return Path(str(named)).expanduser()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(agent.replace(":", ".")).name).strip("-.")[:60] or "agent"
    return defaults.data_dir() / defaults.AGENT_STATE_FOLDER / f"{slug}-{hashlib.sha1(agent.encode()).hexdigest()[:8]}"


def _made(folder: Path) -> Path:
    """`folder`, made when missing (UsageError when it cannot be: a file there, no permission)."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise UsageError(f"cannot use {folder} as the agent's {STATE_DIR}: {e.strerror or e}; name another") from None
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder; name a folder as the agent's {STATE_DIR}")
    return folder


def live_options(spec: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options a live cycle's factory is called with: `state_dir` set to the live folder when it takes one. The
    cycle records the options as the user gave them."""
    if not takes_state_dir(spec):
        return dict(options)
    return {**options, STATE_DIR: str(_made(live_folder(spec.name, options)))}


def live_checkpoint(spec: Any, options: Mapping[str, Any], agent: Any) -> Callable[[str], str | None] | None:
    """The checkpoint of a live cycle of a user's agent (None: its factory takes no `state_dir`)."""
    if not takes_state_dir(spec):
        warn_unused_methods(agent, spec.name)
        return None
    return state_checkpoint(agent, live_folder(spec.name, options), StateBlobs.in_dir())


@dataclass
class UserRerun:
    """The state a re-run of a user agent's cycle runs on, decided when its factory is known (`build`). What goes
    wrong is a ReplayError (the runtime says it as one line); what it made is removed when `stack` closes."""

    recording: Any  # the telemetry Recording
    live: bool  # --live-state: the live folder
    stack: ExitStack
    state: str | None = None  # the state the re-run starts from (its `cogscope.state`)
    note: str | None = None  # one line for the report (None: an agent without state)
    _live_checkpoint: Callable[[str], str | None] | None = None

    def checkpoint(self, cycle_id: str) -> str | None:
        return self._live_checkpoint(cycle_id) if self._live_checkpoint else self.state

    def build(self, spec: Any, models: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
        """The re-run's agent: `spec` (an agents.AgentSpec) built with `options`, on a scratch folder holding the
        state the cycle started from when its factory takes `state_dir` (on the live folder, `live`)."""
        if not takes_state_dir(spec):
            if parse_state_id(self.recording.state):
                self.note = f"the agent's factory takes no {STATE_DIR} now: it ran without the state it started from"
            return spec.build(models, options)
        if self.live:
            folder = _made(live_folder(spec.name, options))
            agent = spec.build(models, {**options, STATE_DIR: str(folder)})
            self._live_checkpoint = state_checkpoint(agent, folder, StateBlobs.in_dir())
            self.note = f"against the current live state ({LIVE_FLAG}): tools write to the live state folder {folder}"
            return agent
        state = self.recording.state
        if not state and not self.recording.factory_named:
            raise ReplayError(no_state_message(self.recording.trace_id))
        folder = Path(tempfile.mkdtemp(prefix="cogscope-state-"))
        self.stack.callback(shutil.rmtree, folder, ignore_errors=True)
        if not state:  # another app's cycle, with the factory the operator named: it kept no state of cogscope's
            self.note = (
                "on an empty scratch state folder: the cycle names no starting state (the live one is untouched)"
            )
            return spec.build(models, {**options, STATE_DIR: str(folder)})
        agent = self._restored(state, folder, spec, models, options)
        self.state = state
        self.note = f"on a scratch copy of state {state}, the one the cycle started from (the live state is untouched)"
        return agent

    @staticmethod
    def _restored(state: str, folder: Path, spec: Any, models: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
        """The agent built on `folder`, the kept `state` given back to it (ReplayError, one line, when it cannot be)."""
        try:
            given_back = restore_into(state, StateBlobs.in_dir(), folder)
        except AgentStateError as e:
            raise ReplayError(str(e)) from None
        agent = spec.build(models, {**options, STATE_DIR: str(folder)})
        try:
            given_back(agent)
        except AgentStateError as e:
            raise ReplayError(str(e)) from None
        except Exception as e:
            raise ReplayError(
                f"the agent's restore() raised {type(e).__name__}: {' '.join(str(e).split())[:300]}; fix it, or "
                f"replay against the current live state with {LIVE_FLAG}"
            ) from e
        return agent


def state_origin(state: str) -> str:
    """Where a cycle's starting state `state` came from, for a person (`run`, `show`)."""
    how = (parse_state_id(state) or ("", ""))[0]
    if how == FILES:
        return "the files of the agent's state folder as the cycle started"
    if how == SNAPSHOT:
        return "what the agent's snapshot() gave as the cycle started"
    return "the memory store's state the cycle started from"


def prune_line(days: float) -> str | None:
    """Prune the kept states of users' agents not used for `days`; the line that says how many went (None: none)."""
    blobs = StateBlobs.in_dir()
    try:
        pruned = blobs.prune(days)
    except OSError as e:
        return f"cogscope: could not prune old agent states in {blobs.folder}: {e.strerror or e}"
    if not pruned:
        return None
    states = f"{pruned} agent state{'s' if pruned != 1 else ''}"
    return f"State:    pruned {states} unused for {days:g} days from {blobs.folder} (COGSCOPE_STATE_DAYS)"
