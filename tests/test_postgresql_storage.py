"""COGSCOPE_DATABASE_URL: the Phoenix cogscope starts stores in PostgreSQL; a bad URL is one line, never the password.

The trace of a `cogscope run` lands in the session's PostgreSQL cluster (rows counted with psql), in the same database
as the session's PostgreSQL Phoenix, which then serves it too: two Phoenix servers sharing one database.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from cogscope.telemetry import free_port, phoenix_client, wait_for_trace
from cogscope.telemetry.database_url import check_database_url, shown_database_url
from cogscope.telemetry.phoenix_server import phoenix_version

from .conftest import SECRET
from .helpers import wait_until

ANSWER = 'Thought: I know enough to decide.\n<code>\nfinal_answer("Rest for ten minutes, then review goals.")\n</code>'


def _run_args(llm) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        "run",
        "--agent",
        "heartbeat",
        "--task",
        "Decide.",
        "--model",
        "openai/scripted",
        "--api-base",
        llm.api_base,
    ]


def _pids_with_env(name: str, value: str) -> list[int]:
    """Processes whose environment holds name=value (the Phoenix a `cogscope run` started and left running)."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if wanted in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _stop(pids: list[int], timeout: float = 60) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            continue

    def running() -> list[int]:
        return [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]

    try:
        wait_until(lambda: not running(), timeout=timeout, interval=0.3, what=f"{pids} still run after SIGINT")
    except AssertionError:
        for pid in running():
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_cogscope_starts_its_own_phoenix_on_postgresql(cogscope, llm, postgres, phoenix_postgresql, tmp_path):
    """`cogscope run` with COGSCOPE_DATABASE_URL and no Phoenix running: it starts Phoenix on that database."""
    database_url = postgres.url("phoenix")  # the database of the session's PostgreSQL Phoenix: a second server on it
    data_dir = tmp_path / "own"
    port = free_port()
    llm.enqueue(ANSWER, prompt_tokens=300, completion_tokens=20)
    try:
        result = cogscope(
            *_run_args(llm),
            PHOENIX_COLLECTOR_ENDPOINT=None,
            COGSCOPE_PHOENIX_PORT=str(port),
            COGSCOPE_DATA_DIR=str(data_dir),
            COGSCOPE_DATABASE_URL=database_url,
            COGSCOPE_PROJECT="own-phoenix-on-pg",
        )
        assert result.code == 0, result.out + result.err
        assert f"Started Phoenix at http://127.0.0.1:{port}" in result.out
        trace_id = result.trace_id
        query = (
            "SELECT count(*) FROM spans JOIN traces ON spans.trace_rowid = traces.id "
            f"WHERE traces.trace_id = '{trace_id}'"
        )
        # Phoenix acknowledges spans before it writes them
        wait_until(
            lambda: postgres.scalar("phoenix", query) >= 2,
            timeout=30,
            interval=0.5,
            what=lambda: f"PostgreSQL holds {postgres.scalar('phoenix', query)} spans of trace {trace_id}",
        )
        rows = postgres.scalar("phoenix", query)
        assert not (data_dir / "phoenix" / "phoenix.db").exists(), "Phoenix wrote SQLite too"
        # the other Phoenix on the same database serves the trace as well
        frame = wait_for_trace(
            phoenix_client(phoenix_postgresql.url), project="own-phoenix-on-pg", trace_id=trace_id, timeout=30
        )
        assert len(frame) == rows
        log = (data_dir / "phoenix" / "phoenix.log").read_text(errors="replace")
        for text in (result.out, result.err, log):
            assert postgres.password not in text
        assert SECRET not in result.out + result.err
    finally:
        _stop(_pids_with_env("PHOENIX_WORKING_DIR", str(data_dir / "phoenix")))
    assert phoenix_version(f"http://127.0.0.1:{port}", timeout=1) is None


@pytest.mark.parametrize("case", ["not-postgresql", "no-database", "unreachable", "wrong-password", "no-such-db"])
def test_a_bad_database_url_is_one_line_without_the_password(cogscope, llm, postgres, tmp_path, case):
    closed = free_port()
    url, expected = {
        "not-postgresql": ("sqlite:////tmp/phoenix.db", "Phoenix stores in PostgreSQL only"),
        "no-database": (f"postgresql://cogscope:{postgres.password}@127.0.0.1:{postgres.port}", "names no database"),
        "unreachable": (f"postgresql://cogscope:{postgres.password}@127.0.0.1:{closed}/phoenix", "cannot reach"),
        "wrong-password": (postgres.url("postgres").replace(postgres.password, "not-the-password"), "refused the pass"),
        "no-such-db": (postgres.url("nowhere"), "has no database 'nowhere'"),
    }[case]
    result = cogscope(
        *_run_args(llm),
        PHOENIX_COLLECTOR_ENDPOINT=None,
        COGSCOPE_PHOENIX_PORT=str(free_port()),
        COGSCOPE_DATABASE_URL=url,
    )
    line = result.error_line()
    assert expected in line
    assert "COGSCOPE_DATABASE_URL" in line
    assert postgres.password not in result.out + result.err
    assert "not-the-password" not in result.out + result.err
    assert llm.requests == []


def test_a_sqlite_phoenix_on_the_port_is_not_taken_for_the_database(cogscope, llm, postgres, phoenix):
    """A Phoenix already answering on COGSCOPE_PHOENIX_PORT (say, one an earlier `cogscope run` left) is reused,
    unless COGSCOPE_DATABASE_URL is set and that Phoenix stores in SQLite: then one line says so."""
    result = cogscope(
        *_run_args(llm),
        PHOENIX_COLLECTOR_ENDPOINT=None,
        COGSCOPE_PHOENIX_PORT=phoenix.url.rsplit(":", 1)[1],
        COGSCOPE_DATABASE_URL=postgres.url("phoenix"),
    )
    line = result.error_line()
    assert "stores in SQLite" in line and "COGSCOPE_PHOENIX_PORT" in line
    assert llm.requests == []


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://u:s3cret-pw@db:5432/x", "postgresql://u:[REDACTED]@db:5432/x"),
        ("postgres://u:p%40ss@db/x?sslmode=require", "postgres://u:[REDACTED]@db/x?sslmode=require"),
        ("postgresql://u@db/x?password=s3cret-pw", "postgresql://u@db/x?password=[REDACTED]"),
        ("postgresql://db/x", "postgresql://db/x"),
    ],
    ids=["in-userinfo", "percent-encoded", "in-query", "none"],
)
def test_a_shown_database_url_never_holds_the_password(url, shown):
    assert shown_database_url(url) == shown


def test_postgres_scheme_is_spelt_as_phoenix_needs_it():
    assert check_database_url(" postgres://u:pw@db:5432/x ") == "postgresql://u:pw@db:5432/x"
    assert check_database_url("postgresql+asyncpg://u:pw@db/x") == "postgresql://u:pw@db/x"
    for bad in ("mysql://u:pw@db/x", "u:pw@db/x", "postgresql://u:pw@db:port/x", "postgresql://u:pw@db:5432/"):
        with pytest.raises(ValueError) as raised:
            check_database_url(bad)
        assert "pw" not in str(raised.value).replace("PASSWORD", "")
