"""cogscope.defaults: one data folder rule for the app, the recorder and the agents' memory file.

Before, the recorder alone read $XDG_DATA_HOME: with it set, an app's recorded cycles showed as "not recorded here"
in the UI and its leftover spool was never sent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cogscope import defaults
from cogscope.ui.config import Settings

# what each reader of the data folder says, in a fresh process with only `env`
_PROBE = """
import json, sys
from cogscope import record, stop
from cogscope.agents.heartbeat import default_memory_path
from cogscope.ui.config import Settings
recorder = record("probe:build", endpoint="http://127.0.0.1:9")
spool = recorder.tracing.spool.path
stop(0.1)
print(json.dumps({"app": str(Settings.from_env().data_dir), "memory": str(default_memory_path().parent),
                  "recorder": str(spool.parent)}))
"""


def _readers(env: dict[str, str], cwd: Path) -> dict[str, str]:
    import json

    base = {k: v for k, v in os.environ.items() if k not in ("COGSCOPE_DATA_DIR", "XDG_DATA_HOME", "HOME")}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**base, **env}, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.e2e  # a fresh Python process each
@pytest.mark.parametrize("setting", ["COGSCOPE_DATA_DIR", "XDG_DATA_HOME", "HOME only"])
def test_the_app_the_recorder_and_the_memory_file_use_one_data_folder(tmp_path: Path, setting: str) -> None:
    home = tmp_path / "home"
    env = {"HOME": str(home)}
    expected = home / ".local" / "share" / "cogscope"
    if setting == "COGSCOPE_DATA_DIR":
        env |= {"COGSCOPE_DATA_DIR": str(tmp_path / "mine"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
        expected = tmp_path / "mine"
    elif setting == "XDG_DATA_HOME":
        env |= {"XDG_DATA_HOME": str(tmp_path / "xdg")}
        expected = tmp_path / "xdg" / "cogscope"
    readers = _readers(env, tmp_path)
    assert readers == {"app": str(expected), "memory": str(expected), "recorder": str(expected)}


def test_a_relative_xdg_data_home_is_ignored_as_the_xdg_spec_says(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": "relative/dir"}
    assert defaults.data_dir(env) == tmp_path / ".local" / "share" / "cogscope"
    assert Settings.from_env(env).data_dir == defaults.data_dir(env)
