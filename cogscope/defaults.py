"""Every default and repeated constant of cogscope, in one dependency-free module.

`cogscope.ui` (settings, the CLI), `cogscope.telemetry` (tracing, the recorder) and `cogscope.agents` (the memory
file) read these names; nothing here imports anything of cogscope's, so every package may read it. A setting's
environment variable is named beside its default; `cogscope.ui.config.Settings` reads the variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# -- where cogscope keeps its files -------------------------------------------------------------------------------


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """cogscope's data folder: $COGSCOPE_DATA_DIR, else $XDG_DATA_HOME/cogscope, else ~/.local/share/cogscope.

    The app, the recorder and the agents' memory file all use this one rule, so a cycle recorded by an app is
    found by the UI and a leftover spool is sent by whichever starts next."""
    env = os.environ if environ is None else environ
    chosen = env.get("COGSCOPE_DATA_DIR", "").strip()
    if chosen:
        return Path(chosen).expanduser()
    xdg = Path(env.get("XDG_DATA_HOME", "").strip()).expanduser()
    if xdg.is_absolute():  # the XDG spec: a relative path is invalid and ignored
        return xdg / "cogscope"
    home = env.get("HOME", "").strip()
    return (Path(home) if home else Path.home()) / ".local" / "share" / "cogscope"


MEMORY_FILE = "memory.sqlite"  # the agents' memory store, in the data folder
PHOENIX_FOLDER = "phoenix"  # the embedded Phoenix's working folder (its SQLite), in the data folder
STATES_FOLDER = "states"  # the starting states imported with bundles (ui.state_files), in the data folder

# -- addresses -------------------------------------------------------------------------------------------------------
HOST = "127.0.0.1"  # COGSCOPE_HOST: the app binds to loopback unless told otherwise
APP_PORT = 7860  # COGSCOPE_PORT
PHOENIX_PORT = 6006  # COGSCOPE_PHOENIX_PORT
PHOENIX_ENDPOINT = f"http://{HOST}:{PHOENIX_PORT}"  # the recorder's Phoenix unless $PHOENIX_COLLECTOR_ENDPOINT
LLM_PORT = 8765  # COGSCOPE_LLM_PORT: the bundled model's server
PROJECT = "cogscope"  # COGSCOPE_PROJECT: the Phoenix project cycles are traced into
LOCAL_MODEL = "local"  # COGSCOPE_MODEL: the bundled model

# -- bounds (README "Security") --------------------------------------------------------------------------------------
LLM_TIMEOUT_S = 120.0  # COGSCOPE_LLM_TIMEOUT: one LLM call
STEP_TIMEOUT_S = 60.0  # COGSCOPE_STEP_TIMEOUT: one code step in the sandbox (wall clock and CPU)
CYCLE_TIMEOUT_S = 900.0  # COGSCOPE_CYCLE_TIMEOUT: one whole cycle
SANDBOX_MEMORY_MB = 1024  # COGSCOPE_SANDBOX_MEMORY_MB: address space of the sandbox worker
SANDBOX_DISK_MB = 256  # COGSCOPE_SANDBOX_DISK_MB: all files of one sandbox worker's folder
SPOOL_MB = 512  # COGSCOPE_SPOOL_MB: the most the span spool may hold
DRAIN_TIMEOUT_S = 10.0  # COGSCOPE_DRAIN_TIMEOUT: how long an ending command waits for its spooled spans
MAX_CYCLES = 64  # COGSCOPE_MAX_CYCLES: cycles on API models side by side in one app
MAX_LOCAL_CYCLES = 4  # COGSCOPE_MAX_LOCAL_CYCLES: cycles on the bundled CPU model side by side

# -- the state of users' own agents (telemetry.state_protocol, README "Your own agent's state") ---------------------
STATE_DIR_OPTION = "state_dir"  # a factory that takes this option keeps its state in the folder cogscope gives it
AGENT_STATE_FOLDER = "agent-state"  # live state folders of agents not given a state_dir, in the data folder
STATE_BLOBS_FOLDER = "state-blobs"  # their kept starting states, one file per distinct state, in the data folder
STATE_SNAPSHOT_MAX_MB = 256  # the largest starting state kept for one cycle (larger: the cycle runs, none kept)

# -- the memory store's history ----------------------------------------------------------------------------------
STATE_DAYS = 30  # COGSCOPE_STATE_DAYS: how long each cycle's starting state is kept (MemoryStore.prune)

# -- reproduction bundles (telemetry.bundle) --------------------------------------------------------------------------
BUNDLE_MAX_MB = 100  # the largest bundle file `cogscope import` and the Traces tab's upload take
BUNDLE_UNPACKED_MAX_MB = 1000  # the most one bundle may unpack to (its state and spans together)

# -- what views show -------------------------------------------------------------------------------------------------
LINK_WAIT_S = 3.0  # how long a finished cycle waits for its spans to reach Phoenix before its link says "pending"
VALUE_LIMIT = 2000  # characters of one value shown in a step, unless the reader asks for long values whole

# -- exit codes of every command -------------------------------------------------------------------------------------
EXIT_OK = 0
EXIT_FAILED = 1  # the cycle failed; `cost --budget` was exceeded; a replay diverged
EXIT_USAGE = 2  # bad input: the one line printed says what is wrong and what to do
