"""Fixtures: a real Phoenix (once per session and backend), the scripted LLM server, and the `cogscope` command.

Phoenix stores in SQLite. A test or module marked `both_backends` (`pytestmark = pytest.mark.both_backends`) runs twice:
`[sqlite]` and `[postgresql]`, the second against a Phoenix that stores in a throwaway PostgreSQL cluster on
loopback (tests/postgres.py), started once per session when first needed. `-k "not postgresql"` skips those runs.

Tests that start real servers are marked `e2e` (see SERVER_FIXTURES); `pytest -m "not e2e"` runs the pure tests
alone, in one process, in well under a minute, and fails any of them that listens on a socket or starts a process.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402

from cogscope.telemetry import PhoenixServer, ensure_phoenix, free_port, phoenix_client, wait_for_trace  # noqa: E402

from .postgres import PostgresMissing, TempPostgres, _alive  # noqa: E402
from .scripted_llm import ScriptedLLM  # noqa: E402

_T = TypeVar("_T")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


def screenshot(name: str) -> str:
    """Where a browser test saves a picture: test-artifacts/, or docs/ (the README's) with COGSCOPE_SCREENSHOTS=docs,
    so that a test run leaves the work tree as it found it."""
    folder = ROOT / "docs" if os.environ.get("COGSCOPE_SCREENSHOTS") == "docs" else ARTIFACTS
    folder.mkdir(exist_ok=True)
    return str(folder / name)


SECRET = "sk-test-SECRET-4f1c9e2b7a-never-in-a-span"
TRACE_LINE = re.compile(r"^Trace:\s+([0-9a-f]{32})\s", re.MULTILINE)


BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_backends` that use Phoenix run once per backend."""
    if metafunc.definition.get_closest_marker("both_backends") and "phoenix" in metafunc.fixturenames:
        metafunc.parametrize("phoenix", BACKENDS, indirect=True)


# -- servers shared by the xdist workers of one run --------------------------------------------------
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ... under `pytest -n N`; None in a plain run


def _shared(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    start: Callable[[], tuple[_T, dict[str, Any]]],
    attach: Callable[[dict[str, Any]], _T],
    stop: Callable[[_T], None],
) -> Iterator[_T]:
    """One server for the whole run, however many xdist workers it has (pytest-xdist's FileLock recipe).

    The first worker that needs it starts it and owns it (its lifeline: the server dies with its owner, however the
    run ends); the others attach to it from what the owner wrote under the run's temporary folder. At the end of its
    session the owner waits until every worker that attached has let go (or died), then stops the server. Without
    xdist this is an ordinary session fixture."""
    if WORKER is None:
        server, _ = start()
        yield server
        stop(server)
        return
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent
    state_path = root / f"shared-{name}.json"
    lock = FileLock(str(root / f"shared-{name}.lock"))
    me = os.getpid()

    def read() -> dict[str, Any] | None:
        try:
            return dict(json.loads(state_path.read_text()))
        except (OSError, ValueError):
            return None

    with lock:
        state = read()
        if state is not None and _alive(state["owner"]):
            state["users"].append(me)
            state_path.write_text(json.dumps(state))
            owner, server = False, attach(state["info"])
        else:
            server, info = start()
            state_path.write_text(json.dumps({"owner": me, "users": [me], "info": info}))
            owner = True
    try:
        yield server
    finally:
        with lock:
            state = read() or {"users": []}
            state["users"] = [pid for pid in state["users"] if pid != me]
            state_path.write_text(json.dumps(state))
        if owner:  # stopped once every session fixture of this worker has let go (no worker waits on another's)
            _OWNED.append(lambda: _stop_when_unused(lock, read, state_path, lambda: stop(server)))


_OWNED: list[Callable[[], None]] = []
STOP_WAIT_S = 1200.0  # how long a worker whose session has ended keeps a shared server for the others


def _stop_when_unused(
    lock: Any, read: Callable[[], dict[str, Any] | None], state_path: Path, stop: Callable[[], None]
) -> None:
    deadline = time.monotonic() + STOP_WAIT_S
    while True:
        with lock:
            state = read() or {"users": []}
            users = [pid for pid in state["users"] if _alive(pid)]
            if not users or time.monotonic() > deadline:
                state_path.unlink(missing_ok=True)  # a worker that comes later starts a server of its own
                break
        time.sleep(0.5)
    if users:  # a worker stuck for that long fails on its own; the run must still end
        print(
            f"conftest: stopping a shared server that workers {users} still hold after {STOP_WAIT_S:g} s",
            file=sys.stderr,
        )
    stop()


@pytest.hookimpl(trylast=True)  # after the session's fixtures have ended
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker: stop the shared servers it owns, in the order their fixtures ended (Phoenix before its PostgreSQL).
    The xdist controller, once every worker has ended: stop whatever a worker that was killed could not."""
    while _OWNED:
        _OWNED.pop(0)()
    if WORKER is None and session.config.pluginmanager.has_plugin("dsession"):
        _sweep(session.config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]


def _sweep(root: Path) -> None:
    for state_path in sorted(root.glob("shared-phoenix-*.json")) + sorted(root.glob("shared-postgres.json")):
        try:
            info = json.loads(state_path.read_text())["info"]
        except (OSError, ValueError, KeyError):
            continue
        if "url" in info:  # a Phoenix: its own process group (start_new_session)
            pid = int(info["pid"])
            for sig, wait in ((signal.SIGINT, 15.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, sig)
                deadline = time.monotonic() + wait
                while _alive(pid) and time.monotonic() < deadline:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)
                    time.sleep(0.2)
        else:
            cluster = TempPostgres.attach(info)
            cluster._attached, cluster._running = False, True
            cluster.stop()
        state_path.unlink(missing_ok=True)


# Tests that mostly wait (a 60 s Phoenix outage, a 1,000-cycle burst, the bundled model, their own Phoenix) or run
# many `cogscope` commands in a row: handed to the xdist workers first, so that they overlap with everything else
# instead of ending the run alone. Everything else keeps its order.
SLOW_FIRST = (
    "tests/test_spool.py::test_heartbeat_through_a_60_s_phoenix_outage",
    "tests/test_spool.py::test_a_burst_faster_than_phoenix_ingests_all_arrives",
    "tests/test_local_model.py::test_real_cycle_with_the_bundled_model_is_fully_traced",
    "tests/test_trust.py::test_a_forged_trace_is_marked_and_replay_runs_nothing_it_names",
    "tests/test_cost.py::test_cycle_cost_matches_hand_computation_and_phoenix",
    "tests/test_one_record.py::",
    "tests/test_replay.py::",
    "tests/test_cycle_state.py::test_heartbeat_replays_touch_nothing_and_rollback_goes_back_and_forth",
    "tests/test_bounds.py::test_sigkill_of_cogscope_ui_takes_its_phoenix_and_model_server",
    "tests/test_bounds.py::test_cogscope_run_leaves_the_phoenix_it_started_running",
    "tests/test_browser_traces_tab.py::",
    "tests/test_browser_dashboard_tab.py::",
    "tests/test_cost.py::",
    "tests/test_spool.py::",
    "tests/test_postgresql_storage.py::test_cogscope_starts_its_own_phoenix_on_postgresql",
    "tests/test_agents_cycles.py::test_bad_factories_are_one_clear_line",
    "tests/test_cli_bad_input.py::test_mcp_server_that_never_answers",
)


def _slow_rank(item: pytest.Item) -> int:
    return next((i for i, prefix in enumerate(SLOW_FIRST) if item.nodeid.startswith(prefix)), len(SLOW_FIRST))


# -- the fast tier: `pytest -m "not e2e"` ------------------------------------------------------------
# A test that starts a real server (Phoenix, PostgreSQL, the scripted LLM, Chromium, a `cogscope` app) is marked
# `e2e`: at collection when it uses one of these fixtures (directly or through another: `env`, `cogscope`, `record`,
# `app` all stand on Phoenix), and by `pytestmark = pytest.mark.e2e` in the files whose tests start one inline.
SERVER_FIXTURES = frozenset(
    {"phoenix", "phoenix_sqlite", "phoenix_postgresql", "postgres", "llm", "llm_server", "page"}
)  # `phoenix` picks its backend at run time: name it, not only the two it stands for


def _leaves_out_e2e(markexpr: str) -> bool:
    """Whether `-m markexpr` selects no e2e test, however else a test is marked (`not e2e`, `not e2e and not x`)."""
    if not markexpr.strip():
        return False
    try:
        from _pytest.mark.expression import Expression

        expression = Expression.compile(markexpr)
    except (ImportError, AttributeError):  # pytest's parser moved: only the plain form
        return markexpr.split() == ["not", "e2e"]
    except (SyntaxError, pytest.UsageError):  # pytest says what is wrong with it
        return False

    def marks(others: bool) -> Callable[..., bool]:  # a test marked e2e, and marked (or not) with every other name
        return lambda name, /, **kwargs: name == "e2e" or others

    return not expression.evaluate(marks(False)) and not expression.evaluate(marks(True))


def pytest_configure(config: pytest.Config) -> None:
    """`-m "not e2e"` runs in this process: the pure tests take ~20 s, and 4 xdist workers would spend more than that
    each importing what the suite imports. `-n N` on the command line still decides."""
    asked = [*config.invocation_params.args, *os.environ.get("PYTEST_ADDOPTS", "").split()]
    if _leaves_out_e2e(config.option.markexpr or "") and not any(
        arg.startswith(("-n", "--numprocesses", "--dist", "--tx")) for arg in asked
    ):
        config.option.numprocesses, config.option.dist, config.option.tx = 0, "no", []


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
    if WORKER is not None:  # every worker sorts the same way (xdist checks that they collected the same list)
        items.sort(key=_slow_rank)  # stable: the rest keeps its order


def pytest_collection_finish(session: pytest.Session) -> None:
    global _PURE_RUN
    _PURE_RUN = bool(session.items) and not any(item.get_closest_marker("e2e") for item in session.items)


# In a run without e2e tests (`-m "not e2e"`, or files of pure tests only), a test that starts a server anyway
# (listens on a socket, starts a process) fails at once with its name: a missing marker cannot go unnoticed.
_PURE_RUN = False
_SPAWNERS = (
    (subprocess.Popen, "_execute_child"),  # subprocess, asyncio's subprocesses, Playwright's Chromium
    (os, "fork"),
    (os, "forkpty"),
    (os, "posix_spawn"),
    (os, "posix_spawnp"),
    (os, "system"),
)


@contextlib.contextmanager
def _no_servers(item: pytest.Item) -> Iterator[None]:
    """While `item` sets up, runs and tears down (its module's and session's fixtures too): listening on a socket or
    starting a process fails the test at once, with its name."""
    import multiprocessing.util
    import socket

    def refuse(what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            pytest.fail(f"{item.nodeid} is not marked e2e but {what}: mark it e2e (tests/conftest.py, SERVER_FIXTURES)")

        return refused

    patched = [*_SPAWNERS, (socket.socket, "listen"), (multiprocessing.util, "spawnv_passfds")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in patched if hasattr(owner, name)]
    for owner, name, _ in saved:
        setattr(owner, name, refuse("listens on a socket" if name == "listen" else f"starts a process ({name})"))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _no_servers(item) if _PURE_RUN else contextlib.nullcontext():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _no_servers(item) if _PURE_RUN else contextlib.nullcontext():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    with _no_servers(item) if _PURE_RUN else contextlib.nullcontext():
        yield


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TempPostgres]:
    """A PostgreSQL cluster of the run's own on 127.0.0.1 (initdb in a temporary folder); stopped and removed
    at the end of the run."""

    def start() -> tuple[TempPostgres, dict[str, Any]]:
        try:
            cluster = TempPostgres().start()
        except PostgresMissing as e:
            pytest.fail(str(e))
        return cluster, cluster.attachment()

    yield from _shared(tmp_path_factory, "postgres", start, TempPostgres.attach, TempPostgres.stop)


def _phoenix_info(server: PhoenixServer) -> dict[str, Any]:
    return {"url": server.url, "version": server.version, "pid": server.pid, "log_path": str(server.log_path)}


def _attach_phoenix(info: dict[str, Any]) -> PhoenixServer:
    """The Phoenix another worker started: same URL, pid and log; `stop()` leaves it to its owner."""
    server = PhoenixServer(url=info["url"], version=info["version"], log_path=Path(info["log_path"]))
    server.pid = info["pid"]
    return server


@pytest.fixture(scope="session")
def phoenix_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    """A real `phoenix serve` on free loopback ports with its SQLite in a temporary folder."""

    def start() -> tuple[PhoenixServer, dict[str, Any]]:
        server = ensure_phoenix(working_dir=tmp_path_factory.mktemp("phoenix"), port=free_port())
        assert server.started_here
        return server, _phoenix_info(server)

    yield from _shared(tmp_path_factory, "phoenix-sqlite", start, _attach_phoenix, PhoenixServer.stop)


@pytest.fixture(scope="session")
def phoenix_postgresql(tmp_path_factory: pytest.TempPathFactory, postgres: TempPostgres) -> Iterator[PhoenixServer]:
    """A real `phoenix serve` on free loopback ports that stores in a database of the run's PostgreSQL."""

    def start() -> tuple[PhoenixServer, dict[str, Any]]:
        database_url = postgres.create_database("phoenix")
        server = ensure_phoenix(
            working_dir=tmp_path_factory.mktemp("phoenix-pg"), port=free_port(), database_url=database_url
        )
        assert server.started_here
        return server, _phoenix_info(server)

    yield from _shared(tmp_path_factory, "phoenix-postgresql", start, _attach_phoenix, PhoenixServer.stop)


@pytest.fixture(scope="module")
def phoenix(request: pytest.FixtureRequest) -> PhoenixServer:
    """The session's Phoenix on SQLite; for tests marked `both_backends`, also the one on PostgreSQL (param)."""
    backend = getattr(request, "param", "sqlite")
    return request.getfixturevalue(f"phoenix_{backend}")


@pytest.fixture(scope="session")
def llm_server() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    """A scripted LLM of the test's own: a process another test left behind cannot take its replies."""
    server = ScriptedLLM().start()
    yield server
    server.reset()
    server.stop()


@pytest.fixture
def project() -> str:
    """A Phoenix project of its own for each test, so traces never mix."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def env(tmp_path: Path, phoenix: PhoenixServer, project: str) -> dict[str, str]:
    """The environment a user would have: cogscope pointed at the test Phoenix, an API key set."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("COGSCOPE_", "PHOENIX_"))}
    environ.update(
        COGSCOPE_DATA_DIR=str(tmp_path / "data"),
        PHOENIX_COLLECTOR_ENDPOINT=phoenix.url,
        COGSCOPE_PROJECT=project,
        COGSCOPE_LLM_PORT=str(free_port()),
        OPENAI_API_KEY=SECRET,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        GRADIO_ANALYTICS_ENABLED="False",
        PYTHONUNBUFFERED="1",
    )
    return environ


def cogscope_command() -> list[str]:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).parent / "cogscope"
    if script.exists():
        return [str(script)]
    found = shutil.which("cogscope")
    return [found] if found else [sys.executable, "-m", "cogscope.ui.cli"]


@dataclass
class Completed:
    code: int
    out: str
    err: str

    def error_line(self) -> str:
        """The one line a bad input gets: exit 2, `cogscope: error: ...` on stderr, no traceback."""
        assert self.code == 2, self.out + self.err
        assert "Traceback" not in self.err + self.out
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1, self.err
        assert lines[0].startswith("cogscope: error: ")
        return lines[0]

    @property
    def trace_id(self) -> str:
        match = TRACE_LINE.search(self.out)
        assert match, f"no trace id in output:\n{self.out}\n{self.err}"
        return match.group(1)


IN_PROCESS = frozenset({"run", "heartbeat", "traces", "show", "cost", "replay", "seed-memory"})


def _in_process(args: Sequence[str], environ: dict[str, str]) -> Completed:
    """`cogscope ARGS` through the command's own `main()` in this process: the same argparse, checks, runtime and
    output, without the ~3-10 CPU-s a new Python spends importing LiteLLM, smolagents and pandas."""
    from cogscope.ui import cli

    out, err = io.StringIO(), io.StringIO()
    with _environ(environ), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as e:  # argparse's --help and usage errors
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return Completed(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cogscope(env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Run `cogscope ARGS` with the test's environment (overrides: VAR=value, VAR=None to unset).

    The commands that end on their own (IN_PROCESS) run through `ui.cli.main` in the test's process; `process=True`,
    and `ui`/`mcp-serve`, start the installed console script as a user does. Tests of what only a process shows
    (exit guards, signals, fd-level output, command time limits, start-up) use a process; test_cli_run.py runs the
    commands as processes."""

    def run(*args: str, timeout: float = 240, process: bool = False, **overrides: str | None) -> Completed:
        environ = dict(env)
        for key, value in overrides.items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        if not process and args and args[0] in IN_PROCESS:
            return _in_process(args, environ)
        proc = subprocess.run(
            [*cogscope_command(), *args],
            env=environ,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        return Completed(proc.returncode, proc.stdout, proc.stderr)

    return run


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """os.environ as `env` for a while (the environment a `cogscope` command would get), then as it was."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def record(env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Record one cycle as `cogscope run` does (its Runtime: the same checks, agent, tracing, spool and signing key,
    in the test's data dir and project), but in the test's own process; returns its trace id.

    For tests about what comes after a cycle (traces, show, replay, cost, the tabs): a `cogscope run` command spends
    ~10 CPU-s loading LiteLLM and smolagents before its first step, and the suite shares two cores. The command
    itself is tested as a command (test_cli_run.py, test_agents_cycles.py and others)."""
    from cogscope.ui.config import Settings
    from cogscope.ui.runtime import Runtime

    def run(
        task: str,
        *,
        agent: str = "heartbeat",
        model: str = "openai/scripted",
        api_base: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> str:
        with _environ(env):
            runtime = Runtime.start(Settings.from_env())
            try:
                cycle = runtime.prepare_cycle(
                    agent=agent, task=task, models={"default": model}, api_base=api_base, options=options
                )
                result = cycle.run()
            finally:
                runtime.close()  # delivers the spool and uninstruments smolagents, as the command does at its end
        assert result.trace_id, result
        return str(result.trace_id)

    return run


@pytest.fixture
def read_trace(phoenix: PhoenixServer, project: str):  # type: ignore[no-untyped-def]
    client = phoenix_client(phoenix.url)

    def read(trace_id: str, min_spans: int = 1):  # type: ignore[no-untyped-def]
        frame = wait_for_trace(client, project=project, trace_id=trace_id, min_spans=min_spans, timeout=30)
        assert len(frame) >= min_spans, f"Phoenix has {len(frame)} spans of trace {trace_id}, expected {min_spans}"
        return frame

    return read


# -- the app in a real headless Chromium ------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


APP_LINE = re.compile(r"^cogscope: (https?://\S+)", re.MULTILINE)


class App(str):
    """A running `cogscope ui`: the string is its base URL (`http://127.0.0.1:PORT`); `link` is the link it printed
    (with its operator token, `?token=...`, when the app has no log-ins), which a browser opens first, as a user
    does; `headers` is what an HTTP client sends instead of the cookie that link sets."""

    link: str
    token: str

    def __new__(cls, base: str, printed: str) -> App:
        """`printed`: the URL `cogscope ui` printed (the public URL behind a proxy, 0.0.0.0 for a wide bind): its path
        and query, on `base`, are the link."""
        from urllib.parse import urlsplit

        parts = urlsplit(printed)
        app = super().__new__(cls, base)
        app.link = base + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        app.token = parts.query.partition("token=")[2] if parts.query.startswith("token=") else ""
        return app

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}


def wait_for_app(
    base: str,
    proc: subprocess.Popen,  # type: ignore[type-arg]
    log: Path,
    timeout: float = 90,
) -> App | None:
    """Wait until `cogscope ui` has printed its link and the app answers it (the App), or `timeout` passes (None);
    fails at once if `proc` ends, with what it wrote to `log`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"cogscope ui exited with {proc.returncode}: {log.read_text()}"
        found = APP_LINE.search(log.read_text())
        if found is None:
            time.sleep(0.3)
            continue
        app = App(base, found.group(1))
        try:
            if httpx.get(app.link, timeout=5, follow_redirects=True).status_code == 200:
                return app
        except httpx.HTTPError:
            time.sleep(0.3)
    return None


@contextlib.contextmanager
def running_app(env: dict[str, str], llm, *args: str) -> Iterator[App]:  # type: ignore[no-untyped-def]
    """`cogscope ui ARGS` started as a user starts it, on a free port; yields the App (its loopback URL, and the
    link it printed)."""
    port = free_port()
    environ = dict(env, COGSCOPE_PORT=str(port), COGSCOPE_MODEL="openai/scripted", COGSCOPE_API_BASE=llm.api_base)
    log_path = Path(env["COGSCOPE_DATA_DIR"]).parent / "ui.log"
    log = open(log_path, "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [*cogscope_command(), "ui", *args], env=environ, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    try:
        app = wait_for_app(f"http://127.0.0.1:{port}", proc, log_path)
        if app is None:
            pytest.fail(f"cogscope ui did not answer: {log_path.read_text()}")
        yield app
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert SECRET not in log_path.read_text()


@pytest.fixture
def app(env: dict[str, str], llm) -> Iterator[App]:  # type: ignore[no-untyped-def]
    with running_app(env, llm) as url:
        yield url


@pytest.fixture
def page() -> Iterator:  # type: ignore[type-arg]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)  # a first cycle on 2 busy cores
        yield page
        browser.close()
