"""Users' own stateful agents (telemetry.state_protocol, ui.user_state): an agent file, or an app with the one-line
recorder, whose factory takes `state_dir` has each cycle's starting state kept, and its re-runs run on a scratch
folder holding that state; the live state is never touched. An agent file without the protocol runs as before.

The agents live outside the repository (written into tmp_path; the first is the README's example) and keep a counter
in their own SQLite file; the counter is read with sqlite3 before and after, and the live folder's bytes compared."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from cogscope.telemetry.errors import AgentStateError
from cogscope.telemetry.state_blobs import StateBlobs
from cogscope.telemetry.state_protocol import pack_folder, unpack_folder

from .conftest import ROOT, _environ

COUNTER_TOOL = '''
import sqlite3
from pathlib import Path

from smolagents import CodeAgent, tool


def open_counter(state_dir):
    path = Path(state_dir) / "counter.sqlite"
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE IF NOT EXISTS counter (n INTEGER)")
        if db.execute("SELECT count(*) FROM counter").fetchone()[0] == 0:
            db.execute("INSERT INTO counter VALUES (0)")
    db.close()
    return path


def counter_tool(path):
    @tool
    def bump() -> str:
        """Add one to the counter kept in the agent's own SQLite file, and say its new value."""
        db = sqlite3.connect(path)
        with db:
            (n,) = db.execute("SELECT n FROM counter").fetchone()
            db.execute("UPDATE counter SET n = ?", (n + 1,))
        db.close()
        return f"counter is {n + 1}"

    return bump
'''


def readme_counter_agent() -> str:
    """The README's counter agent (section "Your own agent's state"): the example the first test runs."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("**Your own agent's state.**") :].split("```python\n", 1)[1]
    return block.split("```", 1)[0]


PLAIN_AGENT = '''
from smolagents import CodeAgent, tool


@tool
def greet(name: str) -> str:
    """Greet someone.

    Args:
        name: who
    """
    return f"hello {name}"


def make(models, *, max_steps=3):
    return CodeAgent(tools=[greet], model=models["default"], max_steps=max_steps, verbosity_level=0)
'''
RECORDED_APP = (
    COUNTER_TOOL
    + '''

class CounterAgent(CodeAgent):
    """Takes its state itself: the counter's value as bytes."""

    def __init__(self, path, **kwargs):
        super().__init__(**kwargs)
        self.counter_path = path

    def snapshot(self) -> bytes:
        db = sqlite3.connect(self.counter_path)
        (n,) = db.execute("SELECT n FROM counter").fetchone()
        db.close()
        return str(n).encode()

    def restore(self, data: bytes) -> None:
        db = sqlite3.connect(self.counter_path)
        with db:
            db.execute("UPDATE counter SET n = ?", (int(data),))
        db.close()


def build(models, *, state_dir, max_steps=3):
    path = open_counter(state_dir)
    return CounterAgent(path, tools=[counter_tool(path)], model=models["default"], max_steps=max_steps,
                        verbosity_level=0)


if __name__ == "__main__":
    import sys

    from smolagents import LiteLLMModel

    from cogscope.telemetry import record, stop

    phoenix_url, project, api_base, data_dir, state_dir = sys.argv[1:6]
    record(f"{__file__}:build", options={"state_dir": state_dir}, project=project, endpoint=phoenix_url,
           data_dir=data_dir)
    agent = build({"default": LiteLLMModel("openai/gpt-4o-mini", api_base=api_base, api_key="sk-unused")},
                  state_dir=state_dir)
    for _ in range(2):
        print(agent.run("Bump the counter."))
    print(f"spooled: {stop()}")
'''
)
BUMP = "Thought: bump it.\n<code>\nprint(bump())\n</code>"
DONE = 'Thought: done.\n<code>\nfinal_answer("bumped")\n</code>'
TRUST = "--trust-recorded-code"  # an agent file is code a trace names: the operator confirms it


def _counter(folder: Path) -> int:
    db = sqlite3.connect(f"file:{folder / 'counter.sqlite'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT n FROM counter").fetchone()[0])
    finally:
        db.close()


def _files(folder: Path) -> dict[str, str]:
    """Every file under `folder`, by its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _state(cogscope: Any, trace_id: str) -> str | None:
    shown = cogscope("show", trace_id, "--format", "json")
    assert shown.code == 0, shown.out + shown.err
    return json.loads(shown.out)["cycle"]["state"]  # type: ignore[no-any-return]


def _scratch_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("cogscope-state-*")}


@pytest.mark.e2e
def test_an_agent_files_counter_replays_from_the_state_each_cycle_started_from_and_the_live_file_is_untouched(
    cogscope, record, llm, env, read_trace, tmp_path
):
    agent_file = tmp_path / "elsewhere" / "counter_agent.py"
    agent_file.parent.mkdir()
    agent_file.write_text(readme_counter_agent())  # the README's example, as a user saves it
    live = tmp_path / "live-state"
    agent, options = f"{agent_file}:make", {"state_dir": str(live)}
    traces = []
    for _ in range(3):
        llm.enqueue(BUMP)
        llm.enqueue(DONE)
        traces.append(record("Bump the counter.", agent=agent, api_base=llm.api_base, options=options))
    assert _counter(live) == 3
    for trace_id in traces:
        read_trace(trace_id, min_spans=6)
    states = [_state(cogscope, t) for t in traces]
    assert all(re.fullmatch(r"files-[0-9a-f]{64}", str(s)) for s in states) and len(set(states)) == 3, states
    blobs = Path(env["COGSCOPE_DATA_DIR"]) / "state-blobs"
    assert sorted(p.name for p in blobs.iterdir()) == sorted(str(s).removeprefix("files-") for s in states)
    second = traces[1]
    assert "counter is 2" in cogscope("show", second).out
    assert f"State: {states[1]} (the files of the agent's state folder" in cogscope("show", second).out
    before, scratch, calls = _files(live), _scratch_folders(), len(llm.requests)

    # cycle 2, replayed after cycle 3: its tool sees the counter cycle 2 saw, on a scratch folder
    replay = cogscope("replay", second, TRUST)
    assert replay.code == 0, replay.out + replay.err
    assert "Reproduced the recording" in replay.out
    assert f"State:    on a scratch copy of state {states[1]}" in replay.out
    read_trace(replay.trace_id, min_spans=6)
    shown = cogscope("show", replay.trace_id)
    assert "counter is 2" in shown.out and "counter is 4" not in shown.out, shown.out
    assert _state(cogscope, replay.trace_id) == states[1]
    stubbed = cogscope("replay", second, TRUST, "--stub-tools")
    assert stubbed.code == 0 and "Reproduced the recording" in stubbed.out, stubbed.out + stubbed.err
    assert _files(live) == before and _counter(live) == 3  # the live counter file, byte for byte
    assert _scratch_folders() <= scratch  # the scratch folders are gone
    assert len(llm.requests) == calls  # zero LLM calls

    # --live-state: on the live folder, and the report says so (the counter moves on: it diverges)
    live_run = cogscope("replay", second, TRUST, "--live-state")
    assert live_run.code == 1 and "diverged at step 1" in live_run.out, live_run.out + live_run.err
    assert f"State:    against the current live state (--live-state): tools write to the live state folder {live}" in (
        live_run.out
    )
    assert _counter(live) == 4

    # a state not kept here (removed, as pruning or another data dir leaves it), then one that fails its checksum
    kept = blobs / str(states[0]).removeprefix("files-")
    data = kept.read_bytes()
    kept.unlink()
    now = _files(live)
    line = cogscope("replay", traces[0], TRUST).error_line()
    assert f"the state {states[0]} is not kept" in line and "--live-state" in line
    kept.write_bytes(data[:-10])
    line = cogscope("replay", traces[0], TRUST).error_line()
    assert f"the state {states[0]} fails its checksum" in line
    assert _files(live) == now


@pytest.mark.e2e
def test_an_app_with_the_recorder_hands_its_state_through_snapshot_and_an_agent_without_the_protocol_runs_as_before(
    cogscope, record, llm, env, phoenix, project, read_trace, tmp_path
):
    # an agent file without the protocol: no state kept or named, and it replays as before
    plain = tmp_path / "plain_agent.py"
    plain.write_text(PLAIN_AGENT)
    llm.enqueue('Thought: greet.\n<code>\nprint(greet(name="Ada"))\n</code>')
    llm.enqueue(DONE)
    trace_id = record("Greet Ada.", agent=f"{plain}:make", api_base=llm.api_base)
    read_trace(trace_id, min_spans=6)
    assert _state(cogscope, trace_id) is None and "State:" not in cogscope("show", trace_id).out
    replay = cogscope("replay", trace_id, TRUST)
    assert replay.code == 0 and "Reproduced the recording" in replay.out, replay.out + replay.err
    assert "State:" not in replay.out
    assert not (Path(env["COGSCOPE_DATA_DIR"]) / "state-blobs").exists()

    # an app recording its runs with the one-line recorder; its agent takes its state with snapshot()/restore()
    app = tmp_path / "counter_app.py"
    app.write_text(RECORDED_APP)
    live = tmp_path / "app-state"
    live.mkdir()
    for _ in range(2):
        llm.enqueue(BUMP)
        llm.enqueue(DONE)
    argv = [str(app), phoenix.url, project, llm.api_base, env["COGSCOPE_DATA_DIR"], str(live)]
    proc = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "spooled: 0", proc.stdout + proc.stderr
    assert _counter(live) == 2
    rows = json.loads(cogscope("traces", "--format", "json", "--agent", f"{app}:build").out)
    (second,) = [r["trace_id"] for r in rows if not r.get("replay_of")][:1]  # newest first: the app's second run
    read_trace(second, min_spans=6)
    state = _state(cogscope, second)
    assert re.fullmatch(r"snapshot-[0-9a-f]{64}", str(state)), state
    assert (Path(env["COGSCOPE_DATA_DIR"]) / "state-blobs" / str(state).removeprefix("snapshot-")).read_bytes() == b"1"
    before = _files(live)
    replay = cogscope("replay", second, TRUST)
    assert replay.code == 0 and "Reproduced the recording" in replay.out, replay.out + replay.err
    read_trace(replay.trace_id, min_spans=6)
    assert "counter is 2" in cogscope("show", replay.trace_id).out
    assert _files(live) == before and _counter(live) == 2


def test_a_folder_state_is_the_same_bytes_for_the_same_files_kept_once_pruned_when_unused_and_unpacked_safely(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "state"
    (folder / "notes").mkdir(parents=True)
    db = sqlite3.connect(folder / "counter.sqlite")
    with db:
        db.execute("CREATE TABLE counter (n INTEGER)")
        db.execute("INSERT INTO counter VALUES (7)")
    db.close()
    (folder / "notes" / "a.txt").write_text("kept")
    (folder / "counter.sqlite-shm").write_bytes(b"\0" * 64)  # SQLite rebuilds it: left out
    (folder / "link").symlink_to(tmp_path)  # a link could point anywhere: left out
    first = pack_folder(folder)
    os.utime(folder / "notes" / "a.txt", (1, 1))  # times are not part of the state
    assert pack_folder(folder) == first
    blobs = StateBlobs(tmp_path / "blobs")
    digest = blobs.put(first)
    os.utime(blobs.path(digest), (time.time() - 10 * 86400,) * 2)
    assert blobs.put(pack_folder(folder)) == digest and len(list(blobs.folder.iterdir())) == 1  # kept once ...
    assert blobs.prune(5) == 0  # ... and used again just now: not pruned
    restored = tmp_path / "scratch"
    restored.mkdir()
    unpack_folder(blobs.get(digest), restored, state_id=f"files-{digest}")
    assert sorted(_files(restored)) == ["counter.sqlite", "notes/a.txt"] and _counter(restored) == 7
    (folder / "notes" / "a.txt").write_text("changed")
    other = blobs.put(pack_folder(folder))
    assert other != digest
    os.utime(blobs.path(other), (time.time() - 10 * 86400,) * 2)
    assert blobs.prune(5) == 1 and [p.name for p in blobs.folder.iterdir()] == [digest]

    raw = io.BytesIO()  # a state that would write outside its folder is refused, nothing written
    with tarfile.open(fileobj=raw, mode="w") as archive:
        entry = tarfile.TarInfo("../escaped.txt")
        entry.size = 2
        archive.addfile(entry, io.BytesIO(b"hi"))
    evil = tmp_path / "evil"
    evil.mkdir()
    with pytest.raises(AgentStateError, match="is not a state folder"):
        unpack_folder(gzip.compress(raw.getvalue()), evil, state_id="files-x")
    assert not (tmp_path / "escaped.txt").exists() and not list(evil.iterdir())
    with _environ({**os.environ, "COGSCOPE_DATA_DIR": str(tmp_path / "data")}):
        from cogscope.ui.user_state import prune_line

        (tmp_path / "data").mkdir()
        StateBlobs.in_dir().put(b"old")
        old = next(StateBlobs.in_dir().folder.iterdir())
        os.utime(old, (time.time() - 40 * 86400,) * 2)
        assert prune_line(30) == (
            f"State:    pruned 1 agent state unused for 30 days from {tmp_path / 'data' / 'state-blobs'} "
            "(COGSCOPE_STATE_DAYS)"
        )
