"""Reproduction bundles: one cycle exported from one data dir and Phoenix, imported into a fresh data dir and another
Phoenix, where it lists, shows and replays with zero LLM calls on the state it started from; every bad bundle is one
line, exit 2, and changes nothing on disk.

The bad bundles are made here from a whole one (`write_bundle` of a real memory store file) and given to
`cogscope import` in this process: each fails before Phoenix would be reached. The e2e test records a heartbeat
cycle through the scripted LLM into the session's Phoenix and imports it into a second one (conftest's
`phoenix_other`)."""

from __future__ import annotations

import json
import os
import sqlite3
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cogscope.telemetry import Manifest, write_bundle

from .conftest import SECRET, _environ, _in_process

TRACE = "0123456789abcdef0123456789abcdef"
STATE = "m0a1b2c3d.5"


def _span(span_id: str, parent: str | None, name: str) -> dict[str, object]:
    return {
        "name": name,
        "context": {"trace_id": TRACE, "span_id": span_id},
        "span_kind": "AGENT" if parent is None else "CHAIN",
        "parent_id": parent,
        "start_time": "2026-01-01T00:00:00+00:00",
        "end_time": "2026-01-01T00:00:01+00:00",
        "status_code": "OK",
        "status_message": "",
        "attributes": {"cogscope.agent": "heartbeat", "input.value": "Decide."},
        "events": [],
    }


SPANS = [_span("00000000000000a1", None, "heartbeat.cycle"), _span("00000000000000a2", "00000000000000a1", "Step 1")]


def _manifest(**changes: object) -> Manifest:
    fields: dict[str, object] = dict(
        trace_id=TRACE, agent="heartbeat", options={}, models={"default": "openai/scripted"}, mcp=[], task="Decide.",
        status="ok", state=STATE, prices={"openai/scripted": [None, None]}, project="cogscope", spans=len(SPANS),
    )  # fmt: skip
    fields.update(changes)
    return Manifest(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    """A real memory store file, as a bundle carries one."""
    from cogscope import agents

    path = tmp_path / "state-src" / "memory.sqlite"
    path.parent.mkdir()
    store = agents.MemoryStore(path)
    store.remember("the meeting moved to Tuesday")
    store.close()
    return path


def _rewritten(good: Path, dest: Path, change: Callable[[str, bytes], tuple[str, bytes] | None]) -> Path:
    """`good` with each member passed through `change(name, data)` -> (name, data), or None to leave it out."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            changed = change(info.filename, src.read(info))
            if changed is not None:
                out.writestr(changed[0], changed[1])
    return dest


def _newer(name: str, data: bytes) -> tuple[str, bytes]:
    if name != "manifest.json":
        return name, data
    document = json.loads(data)
    document["version"] = 2
    return name, json.dumps(document).encode()


def _other_state(name: str, data: bytes) -> tuple[str, bytes]:
    return (name, data[:-1] + bytes([data[-1] ^ 0xFF])) if name == "state.sqlite" else (name, data)


def _bad_bundles(good: Path, folder: Path) -> Iterator[tuple[str, Path, str]]:
    """(what is wrong, the file, what its one line says)."""
    data = good.read_bytes()
    text = folder / "notes.cogscope"
    text.write_text("not a bundle at all\n")
    yield "foreign file", text, "not a cogscope bundle, or it is truncated or damaged"
    truncated = folder / "truncated.cogscope"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    yield "truncated", truncated, "truncated or damaged"
    corrupt = folder / "corrupt.cogscope"
    middle = data.index(b"spans.json") + 200  # inside the spans' compressed bytes
    corrupt.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    yield "corrupt", corrupt, "damaged"
    yield "newer format", _rewritten(good, folder / "newer.cogscope", _newer), "newer than this cogscope reads (1)"
    yield (
        "state fails its checksum",
        _rewritten(good, folder / "state.cogscope", _other_state),
        "fails its checksum",
    )
    foreign = folder / "foreign.cogscope"
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("report.txt", "hello")
    yield "foreign zip", foreign, "holds a member named 'report.txt'"
    traversal = _rewritten(good, folder / "traversal.cogscope", lambda n, d: (n, d))
    with zipfile.ZipFile(traversal, "a") as z:
        z.writestr("../../escaped.txt", "x")
    yield "path in a member name", traversal, "holds a member named '../../escaped.txt'"
    bomb = _rewritten(
        good, folder / "bomb.cogscope", lambda n, d: (n, d) if n != "state.sqlite" else (n, bytes(4 << 20))
    )
    yield "zip bomb", bomb, "times larger than it is packed (a zip bomb?)"
    yield "missing", folder / "nowhere.cogscope", "cannot read"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_bad_bundles_are_one_line_exit_2_and_change_nothing(tmp_path: Path, store_file: Path) -> None:
    good = write_bundle(tmp_path / "good.cogscope", _manifest(), SPANS, store_file)
    data_dir = tmp_path / "data"
    (data_dir / "states").mkdir(parents=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COGSCOPE_", "PHOENIX_"))},
        "COGSCOPE_DATA_DIR": str(data_dir),
        "PHOENIX_COLLECTOR_ENDPOINT": "http://127.0.0.1:9",  # never reached: each fails before Phoenix would be
    }
    folder = tmp_path / "bad"
    folder.mkdir()
    for what, bad, says in _bad_bundles(good, folder):
        before = _tree(tmp_path)
        done = _in_process(["import", str(bad)], env)
        line = done.error_line()
        assert says in line, (what, line)
        assert str(bad) in line or bad.name in line, (what, line)
        assert _tree(tmp_path) == before, f"{what}: something changed on disk"


def test_a_whole_bundle_reads_back_and_its_member_names_are_fixed(tmp_path: Path, store_file: Path) -> None:
    from cogscope.telemetry import read_bundle

    good = write_bundle(tmp_path / "good.cogscope", _manifest(), SPANS, store_file)
    with zipfile.ZipFile(good) as z:
        assert sorted(z.namelist()) == ["manifest.json", "spans.json", "state.sqlite"]
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["format"] == "cogscope-bundle" and manifest["version"] == 1 and manifest["state"] == STATE
    assert manifest["files"]["state.sqlite"]["bytes"] == store_file.stat().st_size
    (tmp_path / "scratch").mkdir()
    bundle = read_bundle(good, tmp_path / "scratch", max_bytes=10**8, max_unpacked=10**9)
    assert bundle.spans == SPANS and bundle.manifest.state == STATE
    assert bundle.state_file is not None and bundle.state_file.read_bytes() == store_file.read_bytes()


def test_a_state_leaves_scrubbed_of_secrets(tmp_path: Path, store_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cogscope import agents
    from cogscope.ui.state_files import scrub_state_file

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    store = agents.MemoryStore(store_file)
    store.remember(f"the provider key is {SECRET}, keep it safe")
    store.close()
    assert SECRET.encode() in store_file.read_bytes()
    assert scrub_state_file(store_file) >= 1
    left = store_file.read_bytes()
    assert SECRET.encode() not in left  # nor in free pages or the change log
    assert b"4f1c9e2b7a" not in left.lower()  # nor any word of it in the full-text index
    db = sqlite3.connect(store_file)
    texts = [t for (t,) in db.execute("SELECT text FROM memories")]
    found = db.execute("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'Tuesday'").fetchone()[0]
    db.close()
    assert any("the provider key is" in t and "keep it safe" in t for t in texts)
    assert found == 1  # the word index was rebuilt, not emptied


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def test_a_cycle_exported_here_replays_on_another_phoenix_with_zero_llm_calls(
    cogscope, record, llm, read_trace, env, phoenix_other, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from cogscope import agents

    with _environ(env):  # the state the cycle starts from holds a secret, which the bundle must not
        agents.open_store().remember(f"the provider key is {SECRET}")
    llm.enqueue('Thought: remember.\n<code>\nprint(remember(text="replay-marker-42"))\n</code>')
    llm.enqueue('Thought: done.\n<code>\nfinal_answer("done")\n</code>')
    trace_id = record("Decide what to keep.", model="openai/scripted", api_base=llm.api_base)
    read_trace(trace_id, min_spans=8)
    llm.stop()  # from here on, any LLM call would fail

    bundle = tmp_path / "cycle.cogscope"
    exported = cogscope("export", trace_id, "-o", str(bundle))
    assert exported.code == 0, exported.err
    assert f"trace {trace_id}: heartbeat, status ok" in exported.out and "starting state m" in exported.out
    assert "value(s) of its starting state held secrets" in exported.out
    members = _members(bundle)
    assert sorted(members) == ["manifest.json", "spans.json", "state.sqlite"]
    assert not any(SECRET.encode() in data for data in [bundle.read_bytes(), *members.values()])
    again = cogscope("export", trace_id, "-o", str(bundle))
    assert "exists already" in again.error_line()

    elsewhere = {"COGSCOPE_DATA_DIR": str(tmp_path / "elsewhere"), "PHOENIX_COLLECTOR_ENDPOINT": phoenix_other.url}
    imported = cogscope("import", str(bundle), **elsewhere)
    assert imported.code == 0, imported.err
    state_id = json.loads(members["manifest.json"])["state"]
    kept = tmp_path / "elsewhere" / "states" / f"{state_id}.sqlite"
    assert f"Starting state kept at {kept}" in imported.out and kept.read_bytes() == members["state.sqlite"]

    listed = cogscope("traces", **elsewhere)
    assert trace_id in listed.out and "(not recorded here)" in listed.out
    shown = cogscope("show", trace_id, **elsewhere)
    assert shown.code == 0 and "Not recorded by this cogscope installation" in shown.out
    assert "replay-marker-42" in shown.out
    replay = cogscope("replay", trace_id, **elsewhere)
    assert replay.code == 0, replay.out + replay.err
    assert "Reproduced the recording" in replay.out  # the same memory ids: it ran on the state the cycle saw
    assert "2 outputs replayed, 0 LLM calls" in replay.out
    assert not (tmp_path / "elsewhere" / "memory.sqlite").exists()  # the replay ran on a scratch copy

    before = _tree(tmp_path / "elsewhere" / "states")
    twice = cogscope("import", str(bundle), **elsewhere)
    assert f"trace {trace_id} is in this Phoenix already" in twice.error_line()
    assert _tree(tmp_path / "elsewhere" / "states") == before
    same_phoenix = cogscope("import", str(bundle))  # where it was recorded: it is there
    assert "is in this Phoenix already" in same_phoenix.error_line()

    # exported again from there: its state comes from where the import kept it; elsewhere, it is not there at all
    again = cogscope("export", trace_id, "-o", str(tmp_path / "again.cogscope"), **elsewhere)
    assert again.code == 0 and _members(tmp_path / "again.cogscope")["state.sqlite"] == members["state.sqlite"]
    nowhere = {**elsewhere, "COGSCOPE_DATA_DIR": str(tmp_path / "third")}
    missing = cogscope("export", trace_id, "-o", str(tmp_path / "third.cogscope"), **nowhere).error_line()
    assert f"state {state_id}" in missing and "--without-state" in missing
    assert not (tmp_path / "third.cogscope").exists()
    bare = cogscope("export", trace_id, "-o", str(tmp_path / "third.cogscope"), "--without-state", **nowhere)
    assert bare.code == 0 and "starting state was left out (--without-state)" in bare.out, bare.out + bare.err
    assert sorted(_members(tmp_path / "third.cogscope")) == ["manifest.json", "spans.json"]
