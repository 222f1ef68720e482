"""What one memory may hold and what a heartbeat prompt takes from the store are bounded; the store's file and
Phoenix's database are the user's alone (mode 600)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cogscope.agents.heartbeat import PROMPT_STORE_CHARS
from cogscope.agents.store import MAX_MEMORY_CHARS, MemoryStore

HUGE = 3_000_000


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_3_mb_memory_never_reaches_a_later_heartbeat_prompt(record, llm, env):
    # the model tries to remember 3 MB: refused with a line it reads; another writer (older code, a factory of
    # the user's) stores 3 MB straight into the store: cut to MAX_MEMORY_CHARS
    code = f'r = remember(text="x" * {HUGE}, kind="episodic")\nfinal_answer(r)'
    llm.enqueue(f"Thought: keep it all.\n<code>\n{code}\n</code>")
    record("Remember everything", api_base=llm.api_base)
    store = MemoryStore(Path(env["COGSCOPE_DATA_DIR"]) / "memory.sqlite")
    assert max(len(m.text) for m in store.recent(50)) <= MAX_MEMORY_CHARS + 40
    store.remember("y" * HUGE)
    assert max(len(m.text) for m in store.recent(50)) <= MAX_MEMORY_CHARS + 40
    store.close()

    llm.enqueue('Thought: next beat.\n<code>\nfinal_answer("rested")\n</code>')
    record("The next heartbeat", api_base=llm.api_base)
    request = json.dumps(llm.requests[-1])
    assert "x" * 1000 not in request and "y" * 1000 not in request
    system = llm.requests[-1]["messages"][0]["content"]
    system = system if isinstance(system, str) else " ".join(part.get("text", "") for part in system)
    recent = system.split("Most recent memories:", 1)[1]
    assert len(recent) <= PROMPT_STORE_CHARS + 100
    assert "more characters]" in recent  # cut, and saying so


def test_the_model_reads_why_a_memory_too_long_was_not_stored(record, llm):
    llm.enqueue(f'Thought: keep it all.\n<code>\nr = remember(text="x" * {HUGE})\nprint(r)\n</code>')
    llm.enqueue('Thought: done.\n<code>\nfinal_answer("ok")\n</code>')
    record("Remember everything", api_base=llm.api_base)
    observed = json.dumps(llm.requests[-1])  # the second call carries the first step's observation
    assert f"That memory is {HUGE:,} characters; one memory holds at most {MAX_MEMORY_CHARS:,}" in observed
    assert "Nothing was stored" in observed


def test_the_memory_store_and_its_folder_are_created_for_the_user_only(tmp_path):
    path = tmp_path / "new" / "memory.sqlite"
    store = MemoryStore(path)
    store.remember("a private thought")
    store.close()
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700


def test_phoenix_db_is_created_for_the_user_only(phoenix):
    db = Path(phoenix.log_path).parent / "phoenix.db"
    assert db.exists()
    assert _mode(db) == 0o600, oct(_mode(db))
    assert _mode(db.parent) == 0o700, oct(_mode(db.parent))
