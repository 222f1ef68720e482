"""Every cycle names the state it started from, and every re-run runs on a scratch copy of it (ui/cycle_state.py).

The pure tests run a cycle under an in-memory exporter with cogscope's own ReplayModel (recorded outputs, no LLM).
The e2e tests record real cycles of the three built-in agents through the scripted LLM and a real Phoenix, then
replay and fork them, roll the live store back and forward, and give each bad input once; the live memory store is
read with sqlite3 before and after, table by table."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from cogscope.telemetry import Cycle, CycleSpec, setup_tracing
from cogscope.telemetry.tracing import uninstrument

from .conftest import _environ

DONE = {"role": "assistant", "content": 'Thought: done.\n<code>\nfinal_answer("ok")\n</code>'}


def _one_cycle(checkpoint: Any) -> tuple[Any, dict[str, Any]]:
    """(the result, the root span's attributes) of a one-step cycle run with `checkpoint`."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from smolagents import CodeAgent
    from smolagents.monitoring import LogLevel

    from cogscope.telemetry.replay import ReplayModel

    exporter = InMemorySpanExporter()
    tracing = setup_tracing(endpoint="http://127.0.0.1:1/v1/traces", project_name="t", batch=False, exporter=exporter)
    try:
        agent = CodeAgent(tools=[], model=ReplayModel([DONE], tracing=tracing), verbosity_level=LogLevel.OFF)
        result = Cycle(agent, "Decide.", spec=CycleSpec("heartbeat"), tracing=tracing, checkpoint=checkpoint).run()
        (root,) = [span for span in exporter.get_finished_spans() if span.parent is None]
    finally:
        uninstrument()
        tracing.provider.shutdown()
    return result, dict(root.attributes or {})


def test_the_checkpoint_names_the_state_on_the_root_span_and_a_failing_one_costs_only_the_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[tuple[str, str]] = []

    def keep(cycle_id: str) -> str:
        calls.append((cycle_id, threading.current_thread().name))
        return "m0123abcd.7"

    result, root = _one_cycle(keep)
    assert result.status == "ok" and result.state == "m0123abcd.7"
    assert root["cogscope.state"] == "m0123abcd.7"
    assert calls == [(result.cycle_id, f"cycle-{result.cycle_id[:8]}")]  # once, in the cycle's worker thread

    def locked(cycle_id: str) -> str:
        raise RuntimeError("cannot write the memory store: database is locked")

    with caplog.at_level(logging.WARNING, logger="cogscope.state"):
        result, root = _one_cycle(locked)
    assert result.status == "ok" and result.final_answer == "ok" and result.state is None
    assert "cogscope.state" not in root
    (warning,) = [r for r in caplog.records if r.name == "cogscope.state"]
    assert "was not kept" in warning.getMessage() and "database is locked" in warning.getMessage()


# -- end to end: the three built-in agents, a real Phoenix, the scripted LLM ---------------------------------------
HISTORY = ("state_log", "state_points", "state_meta")  # the store's own history (agents/state_log.py)


def _memory(env: dict[str, str]) -> Path:
    return Path(env["COGSCOPE_DATA_DIR"]) / "memory.sqlite"


def _tables(path: Path, *, history: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the memory store at `path` (its full-text index and, unless `history` is False, its own
    history included), row by row, read through a connection of the test's own."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {
            name: db.execute(f'SELECT * FROM "{name}"').fetchall()
            for name in names
            if history or not name.startswith(HISTORY)
        }
    finally:
        db.close()


def _tracked(tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """The agent's own tables (not the full-text index, whose pages a delete and re-insert reshuffle, nor the
    history and its sequence counter)."""
    return {name: rows for name, rows in tables.items() if not name.startswith(("memories_fts", "sqlite_", *HISTORY))}


def _texts(path: Path, like: str) -> list[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("SELECT text FROM memories WHERE text LIKE ? ORDER BY id", (like,))]
    finally:
        db.close()


def _prompt(cogscope: Any, trace_id: str, step: int = 1) -> list[dict[str, str]]:
    shown = cogscope("show", trace_id, "--step", str(step), "--format", "json")
    assert shown.code == 0, shown.out + shown.err
    return list(json.loads(shown.out)["steps"][0]["input_messages"])


NOTE = (
    'Thought: recall, then note.\n<code>\nprint(recall_memory(query="note", limit=20))\n'
    'print(remember(text="note {n}"))\n</code>'
)
NOTED = 'Thought: done.\n<code>\nfinal_answer("noted {n}")\n</code>'
MARKER = "Thought: keep it.\n<code>\nprint(remember(text='replay-marker-42'))\n</code>"
DONE_REPLY = "Thought: done.\n<code>\nfinal_answer('done')\n</code>"


def _heartbeat_session(env: dict[str, str], llm: Any, count: int) -> list[str]:
    """The trace ids of `count` heartbeat cycles in one session, run by the loop `cogscope heartbeat` and the Run tab
    run (ui.heartbeat_loop), in the test's process."""
    from cogscope.ui.config import Settings
    from cogscope.ui.heartbeat_loop import heartbeat_cycles
    from cogscope.ui.runtime import Runtime

    with _environ(env):
        runtime = Runtime.start(Settings.from_env())
        try:
            loop = heartbeat_cycles(
                runtime, cycles=count, interval=0, stop=threading.Event(), agent="heartbeat",
                task="Run one OODA cycle.", models={"default": "openai/scripted"}, api_base=llm.api_base,
                session_id="heartbeat-session",
            )  # fmt: skip
            results = [cycle.run() for _, cycle in loop]
        finally:
            runtime.close()
    assert [r.status for r in results] == ["ok"] * count, results
    return [r.trace_id for r in results]


def test_heartbeat_replays_touch_nothing_and_rollback_goes_back_and_forth(
    cogscope, record, llm, env, read_trace, monkeypatch
):
    model = ("--model", "openai/scripted", "--api-base", llm.api_base)
    for n in range(1, 11):
        llm.enqueue(NOTE.format(n=n))
        llm.enqueue(NOTED.format(n=n))
    cycles = _heartbeat_session(env, llm, 10)
    llm.enqueue(MARKER)
    llm.enqueue(DONE_REPLY)
    run = cogscope("run", "--agent", "heartbeat", "--task", "Remember the marker.", *model, process=True)
    assert run.code == 0 and "Remembered #" in run.out, run.out + run.err
    assert re.search(r"^State:    m[0-9a-f]{8}\.\d+ ", run.out, re.MULTILINE), run.out
    third = cycles[2]
    for trace_id in (third, run.trace_id):
        read_trace(trace_id, min_spans=7)
    memory = _memory(env)
    before = _tables(memory)
    calls = len(llm.requests)

    # the walk-through: the replay remembers the marker again, on a copy: reproduced, the marker stored once
    replay = cogscope("replay", run.trace_id)
    assert replay.code == 0, replay.out + replay.err
    assert "Reproduced the recording" in replay.out and "State:    on a scratch copy of state m" in replay.out
    assert _texts(memory, "replay-marker-42") == ["replay-marker-42"]

    # cycle 3 of 10, replayed after cycle 10: the same tool results and the same prompt (the notes of cycles 1-2 only)
    replay = cogscope("replay", third)
    assert replay.code == 0, replay.out + replay.err
    assert "Reproduced the recording" in replay.out
    recorded_prompt = _prompt(cogscope, third)
    assert _prompt(cogscope, replay.trace_id) == recorded_prompt
    assert "note 2" in json.dumps(recorded_prompt) and "note 3" not in json.dumps(recorded_prompt)
    edited = Path(env["COGSCOPE_DATA_DIR"]).parent / "fork.txt"
    edited.write_text("Thought: other.\n<code>\nprint(remember(text='forked note'))\nfinal_answer('forked')\n</code>")
    fork = cogscope("replay", third, "--fork-at", "2", "--output-file", str(edited))
    assert fork.code == 0 and "Fork finished." in fork.out, fork.out + fork.err
    stubbed = cogscope("replay", third, "--stub-tools")
    assert stubbed.code == 0 and "Reproduced the recording" in stubbed.out, stubbed.out + stubbed.err
    assert _tables(memory) == before  # every table, the store's own history included: nothing was written
    assert len(llm.requests) == calls  # zero LLM calls
    assert not list(Path(tempfile.gettempdir()).glob("cogscope-state-*"))  # the scratch copies are gone

    shown = cogscope("show", third)
    state = re.search(r"^State: (m[0-9a-f]{8}\.\d+) ", shown.out, re.MULTILINE)
    assert state, shown.out
    assert json.loads(cogscope("show", third, "--format", "json").out)["cycle"]["state"] == state.group(1)

    # rollback: asks (no terminal and no --yes: one line, nothing changed), then goes back to cycle 3's start
    assert "add --yes" in cogscope("state", "rollback", third).error_line()
    assert _tables(memory) == before
    back = cogscope("state", "rollback", third, "--yes")
    assert back.code == 0, back.out + back.err
    assert re.search(r"^  memories: 9 removed$", back.out, re.MULTILINE), back.out  # notes 3-10 and the marker
    assert _texts(memory, "note %") == ["note 1", "note 2"] and not _texts(memory, "replay-marker-42")
    forward = re.search(r"^  (cogscope state rollback --point (m[0-9a-f]{8}\.\d+))$", back.out, re.MULTILINE)
    assert forward, back.out
    again = cogscope("state", "rollback", "--point", forward.group(2), "--yes")
    assert again.code == 0, again.out + again.err
    assert _tracked(_tables(memory)) == _tracked(before)  # rolled forward: as it was
    listed = cogscope("state", "list")
    assert listed.code == 0 and "before rollback" in listed.out and forward.group(2) in listed.out, listed.out

    # --live-state: on the live store, and the report says so (cycle 3's recall now finds ten notes: it diverges)
    live = cogscope("replay", third, "--live-state")
    assert "State:    against the current live state (--live-state)" in live.out, live.out + live.err
    assert live.code == 1 and "diverged at step 1" in live.out
    assert _texts(memory, "note 3") == ["note 3", "note 3"]  # its tool wrote to the live store

    # bad inputs: one line each, exit 2, the store unchanged. A cycle recorded before states were kept ...
    llm.enqueue(DONE_REPLY)
    with monkeypatch.context() as patched:
        patched.setattr("cogscope.ui.runtime.cycle_checkpoint", lambda agent, options: None)
        old = record("An old cycle", api_base=llm.api_base)
    read_trace(old, min_spans=4)
    now = _tables(memory)
    line = cogscope("replay", old).error_line()
    assert f"trace {old} names no starting state" in line and "--live-state" in line
    assert "State: none kept" in cogscope("show", old).out
    # ... a locked store ...
    holder = sqlite3.connect(memory, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert "locked" in cogscope("state", "rollback", "--point", state.group(1), "--yes").error_line()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _tables(memory) == now
    # ... a state that fails its checksum (a change log row altered since) ...
    with sqlite3.connect(memory) as db:
        (seq,) = db.execute("SELECT max(seq) FROM state_log WHERE tbl = 'memories' AND op = 'D'").fetchone()
        db.execute("UPDATE state_log SET v1 = 'tampered' WHERE seq = ?", (seq,))
    db.close()
    now = _tables(memory)
    assert "fails its checksum" in cogscope("replay", cycles[1]).error_line()
    assert _tables(memory) == now
    # ... and a pruned state (a heartbeat prunes when it starts, and says how many)
    llm.enqueue(DONE_REPLY)
    pruned = cogscope("heartbeat", "--cycles", "1", "--interval", "0", *model, COGSCOPE_STATE_DAYS="0.000001")
    assert pruned.code == 0, pruned.out + pruned.err
    assert re.search(r"^State:    pruned \d+ points older than 1e-06 days", pruned.out, re.MULTILINE), pruned.out
    line = cogscope("replay", cycles[0]).error_line()
    assert "was pruned" in line and "--live-state" in line


DELEGATE = 'Thought: ask metacognition.\n<code>\nprint(metacognition(task="{task}"))\n</code>'
REVISE = (
    'Thought: revise.\n<code>\nprint(revise_model(model="user_routine", error={error}, failed_basins=["{basin}"]'
    '{new}))\nfinal_answer("revised {basin}")\n</code>'
)


def test_consciousness_and_revision_replays_and_forks_leave_the_live_store_as_it_was(
    cogscope, record, llm, env, read_trace, tmp_path
):
    llm.enqueue(DELEGATE.format(task="Revise user_routine: evening_fatigue failed"))
    llm.enqueue(REVISE.format(error=0.7, basin="evening_fatigue", new=""))  # metacognition's step
    llm.enqueue(DONE_REPLY)
    managed = record("Run one cycle", agent="consciousness", api_base=llm.api_base)
    llm.enqueue(REVISE.format(error=0.8, basin="social_recharge", new=', new_basin="weekend_reset"'))
    revised = record("Revise the routine model", agent="revision", api_base=llm.api_base)
    read_trace(managed, min_spans=12)
    read_trace(revised, min_spans=5)
    memory = _memory(env)
    before = _tables(memory)
    assert any(row[2] == "weekend_reset" for row in before["basins"])  # the recorded cycles wrote

    forks = {  # an edited output at step 1 whose tools write again
        managed: DELEGATE.format(task="Revise it again"),  # metacognition then replays its recorded revision
        revised: REVISE.format(error=0.9, basin="morning_focus", new=', new_basin="forked_basin"'),
    }
    for trace_id, output in forks.items():
        replay = cogscope("replay", trace_id)
        assert replay.code == 0 and "Reproduced the recording" in replay.out, replay.out + replay.err
        assert "State:    on a scratch copy of state m" in replay.out
        edited = tmp_path / f"{trace_id}.txt"
        edited.write_text(output)
        fork = cogscope("replay", trace_id, "--fork-at", "1", "--output-file", str(edited))
        assert fork.code == 0 and "Fork finished." in fork.out, fork.out + fork.err
    assert _tables(memory) == before  # every table: the revisions happened on scratch copies only
