"""Bounds that hold: user code cannot end cogscope, odd text cannot hang a cycle, child servers die with cogscope.

- An agent file, a factory or a tool that exits (`sys.exit`, `SystemExit`, `KeyboardInterrupt`, `os._exit`)
  is one clear line in the CLI and a status in the app, which keeps answering.
- An agent reference to a built-in (`sys:exit`) is refused before it is called.
- A lone surrogate in the task, in the model's output or in a tool's output never hangs a cycle: it ends
  and its trace reaches Phoenix.
- Whatever signal `cogscope` gets, the bundled model server and a Phoenix it started (and did not leave
  running on purpose) die with it; Phoenix listens on loopback only, HTTP and gRPC.

All real: the `cogscope` command as a user runs it, a real Phoenix, the real llama.cpp server; the scripted
LLM server is the only double. No timing is asserted: every wait is bounded and polls.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from cogscope.telemetry import free_port, phoenix_client
from cogscope.telemetry.phoenix_server import phoenix_version
from cogscope.ui.local_llm import LocalModelServer, serves_local_model

from .conftest import ROOT, App, SharedApp, cogscope_command
from .helpers import wait_until
from .postgres import _alive

# -- an agent file whose tool fails in the way the model asks ---------------------------------------
AGENT = '''
import os
import sys

from smolagents import CodeAgent, ToolCallingAgent, tool


@tool
def act(how: str) -> str:
    """Do what is asked, however odd.

    Args:
        how: exit, interrupt, os_exit, surrogate or anything else
    """
    if how == "exit":
        sys.exit(4)
    if how == "interrupt":
        raise KeyboardInterrupt
    if how == "os_exit":
        os._exit(7)
    if how == "surrogate":
        return "odd \\ud800 output"
    return "done"


def make(models, *, kind: str = "code", max_steps: int = 3):
    """A tiny agent with one odd tool."""
    cls = CodeAgent if kind == "code" else ToolCallingAgent
    return cls(tools=[act], model=models["default"], max_steps=max_steps)


def make_exiting(models):
    raise SystemExit(5)


def make_sleeping(models):
    import time

    time.sleep(600)
'''

CALL = 'Thought: do it.\n<code>\nprint(act("{how}"))\n</code>'
ANSWER = 'Thought: done.\n<code>\nfinal_answer("all done")\n</code>'
TOOL_CALL = '{{"name": "act", "arguments": {{"how": "{how}"}}}}'  # a ToolCallingAgent's call, as JSON text
TOOL_ANSWER = '{"name": "final_answer", "arguments": {"answer": "all done"}}'


@pytest.fixture
def agent_file(tmp_path: Path) -> Path:
    path = tmp_path / "odd_agent.py"
    path.write_text(AGENT)
    return path


def _one_line(result) -> str:  # type: ignore[no-untyped-def]
    return str(result.error_line())


def _run(cogscope, llm, agent: str, *options: str, task: str = "Act.", timeout: float = 180):  # type: ignore[no-untyped-def]
    extra = [item for option in options for item in ("--option", option)]
    return cogscope(
        "run", "--agent", agent, "--task", task, "--model", "openai/scripted", "--api-base", llm.api_base, *extra,
        timeout=timeout, process=True,  # exits: what the process does
    )  # fmt: skip


# -- exits: the CLI ------------------------------------------------------------------------------------
def test_agent_file_that_exits_on_import_is_one_line(cogscope, llm, tmp_path):
    path = tmp_path / "exits.py"
    path.write_text("import sys\nsys.exit(3)\n\ndef make(models):\n    pass\n")
    line = _one_line(_run(cogscope, llm, f"{path}:make"))
    assert f"importing {path} raised SystemExit(3); an agent file must not exit" in line
    assert llm.requests == []


def test_agent_file_that_calls_os_exit_on_import_is_one_line(cogscope, llm, tmp_path):
    path = tmp_path / "hard_exit.py"
    path.write_text("import os\nos._exit(9)\n")
    line = _one_line(_run(cogscope, llm, f"{path}:make"))
    assert f"importing {path} raised ExitRefused: os._exit(9) was refused" in line


def test_factory_raising_system_exit_is_one_line(cogscope, llm, agent_file):
    line = _one_line(_run(cogscope, llm, f"{agent_file}:make_exiting"))
    assert f"agent factory '{agent_file}:make_exiting' raised SystemExit(5); a factory must not exit" in line
    assert llm.requests == []


@pytest.mark.parametrize(
    ("reference", "what"),
    [("sys:exit", "a built-in function (sys.exit)"), ("os:_exit", "a built-in function (posix._exit)")],
)
def test_builtin_reference_is_refused_not_called(cogscope, llm, reference, what):
    line = _one_line(_run(cogscope, llm, reference))
    assert f"{reference!r} is {what}, not an agent factory" in line


@pytest.mark.parametrize(("how", "raised"), [("exit", "SystemExit"), ("interrupt", "KeyboardInterrupt")])
def test_tool_raising_an_exit_ends_the_cycle_as_an_error(cogscope, llm, agent_file, read_trace, how, raised):
    llm.enqueue(CALL.format(how=how))
    result = _run(cogscope, llm, f"{agent_file}:make")
    assert result.code == 1, result.out + result.err
    assert "Traceback" not in result.err
    status = re.search(r"^Status:\s+(.*)$", result.out, re.MULTILINE)
    assert status and status.group(1).startswith("error") and raised in status.group(1), result.out
    spans = read_trace(result.trace_id)
    root = spans[spans["parent_id"].isna()].iloc[0]
    assert root["attributes.cogscope.cycle.status"] == "error"


def test_tool_calling_os_exit_is_refused_and_the_cycle_goes_on(cogscope, llm, agent_file, read_trace):
    llm.enqueue(CALL.format(how="os_exit"))
    llm.enqueue(ANSWER)
    result = _run(cogscope, llm, f"{agent_file}:make")
    assert result.code == 0, result.out + result.err  # not 7: the process did not end
    assert "os._exit(7) was refused: it would end cogscope's process" in result.out
    assert "Final answer: all done" in result.out
    assert "Status:   step_errors" in result.out
    read_trace(result.trace_id)


# -- exits and odd text: the app keeps answering -------------------------------------------------------
def _run_in_app(app: App, llm, agent: str, task: str = "Act.", options: str = "") -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """One Run-tab cycle through Gradio's HTTP API, sent as a browser sends it: JSON with \\u escapes."""
    data = [agent, "openai/scripted", "", "", "", llm.api_base, options, "", task]
    body = json.dumps({"data": data}, ensure_ascii=True).encode()
    headers = {"Content-Type": "application/json", **app.headers}
    response = httpx.post(f"{app}/gradio_api/call/run_cycle", content=body, headers=headers, timeout=30)
    response.raise_for_status()
    event_id = response.json()["event_id"]
    event, last = "", None
    with httpx.stream("GET", f"{app}/gradio_api/call/run_cycle/{event_id}", headers=app.headers, timeout=180) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: ") and event in ("generating", "complete"):
                last = json.loads(line[6:])
            elif line.startswith("data: ") and event == "error":
                raise AssertionError(f"the app answered with an error: {line}")
            if event == "complete" and last is not None:
                break
    assert event == "complete" and last is not None, f"no complete event (last event {event!r})"
    _chat, status, totals, _state = last
    return str(status), str(totals)


def _app_still_runs_cycles(app: App, llm) -> None:  # type: ignore[no-untyped-def]
    llm.enqueue(ANSWER)
    status, totals = _run_in_app(app, llm, "heartbeat", "Decide.")
    assert "Cycle finished" in status, status
    # the trace's link, or (Phoenix busy ingesting at that moment) the honest "pending upload" that becomes the link
    assert "Open this trace in Phoenix" in totals or "trace pending upload" in totals, totals


@pytest.mark.xdist_group("bounds-app")  # one app for both (conftest's shared_app)
def test_app_survives_agents_that_exit(shared_app: SharedApp, agent_file, tmp_path) -> None:
    app, llm = shared_app.app, shared_app.llm
    exits_on_import = tmp_path / "exits.py"
    exits_on_import.write_text("import sys\nsys.exit(3)\n")

    status, _ = _run_in_app(app, llm, "sys:exit")
    assert "'sys:exit' is a built-in function (sys.exit), not an agent factory" in status
    status, _ = _run_in_app(app, llm, f"{exits_on_import}:make")
    assert "raised SystemExit(3); an agent file must not exit" in status
    status, _ = _run_in_app(app, llm, f"{agent_file}:make_exiting")
    assert "raised SystemExit(5); a factory must not exit" in status
    for how, raised in (("exit", "SystemExit"), ("interrupt", "KeyboardInterrupt")):
        llm.enqueue(CALL.format(how=how))
        status, totals = _run_in_app(app, llm, f"{agent_file}:make")
        assert "Cycle failed" in status and raised in totals, (status, totals)
    llm.enqueue(CALL.format(how="os_exit"))
    llm.enqueue(ANSWER)
    status, totals = _run_in_app(app, llm, f"{agent_file}:make")
    assert "Cycle finished" in status, (status, totals)
    assert llm.remaining == 0
    _app_still_runs_cycles(app, llm)


@pytest.mark.xdist_group("bounds-app")
def test_app_survives_lone_surrogates(shared_app: SharedApp, agent_file) -> None:
    app, llm = shared_app.app, shared_app.llm
    # more runs than the app's concurrency limit (4): a hung one would leave the next queued for ever
    for _ in range(5):
        llm.enqueue(ANSWER)
        status, _ = _run_in_app(app, llm, "heartbeat", "Decide \ud800 now.")
        assert "Cycle finished" in status, status
    llm.enqueue('Thought: odd \ud800 text.\n<code>\nfinal_answer("x \ud800 y")\n</code>')
    status, _ = _run_in_app(app, llm, "heartbeat", "Decide.")
    assert "Cycle finished" in status, status
    llm.enqueue(TOOL_CALL.format(how="surrogate"))
    llm.enqueue(TOOL_ANSWER)
    status, _ = _run_in_app(app, llm, f"{agent_file}:make", options="kind=tool")
    assert "Cycle finished" in status, status
    _app_still_runs_cycles(app, llm)


# -- odd text: the CLI -----------------------------------------------------------------------------
def test_lone_surrogate_in_the_task_ends_the_cycle(cogscope, llm, read_trace):
    llm.enqueue(ANSWER)
    # what a shell passes for $'\ud800': bytes ED A0 80, which Python reads as \udced\udca0\udc80
    result = _run(cogscope, llm, "heartbeat", task="Decide \udced\udca0\udc80 now.", timeout=120)
    assert result.code == 0, result.out + result.err
    assert "Final answer: all done" in result.out
    spans = read_trace(result.trace_id)
    root = spans[spans["parent_id"].isna()].iloc[0]
    assert root["attributes.input.value"].startswith("Decide ") and root["attributes.input.value"].endswith(" now.")


def test_lone_surrogate_in_the_model_output_ends_the_cycle(cogscope, llm, read_trace):
    llm.enqueue('Thought: odd \ud800 text.\n<code>\nfinal_answer("x \ud800 y")\n</code>')  # sent as "\\ud800"
    result = _run(cogscope, llm, "heartbeat", timeout=120)
    assert result.code == 0, result.out + result.err
    assert "Final answer: x" in result.out
    spans = read_trace(result.trace_id, min_spans=3)
    assert (spans["span_kind"] == "LLM").sum() == 1


def test_lone_surrogate_in_a_tool_output_ends_the_cycle(cogscope, llm, agent_file, read_trace):
    llm.enqueue(TOOL_CALL.format(how="surrogate"))
    llm.enqueue(TOOL_ANSWER)
    result = _run(cogscope, llm, f"{agent_file}:make", "kind=tool", timeout=120)
    assert result.code == 0, result.out + result.err
    assert "Final answer: all done" in result.out
    spans = read_trace(result.trace_id, min_spans=4)
    outputs = spans[spans["span_kind"] == "TOOL"]["attributes.output.value"].astype(str)
    assert any("odd" in output and "output" in output for output in outputs), list(outputs)
    assert "\ud800" not in str(llm.requests[1])  # what reached the model is valid UTF-8


# -- sockets and processes, read from /proc -----------------------------------------------------------
def _listening() -> list[tuple[str, int, str]]:
    """(address, port, socket inode) of every listening TCP socket."""
    found = []
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            hex_address, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_address)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            address = ipaddress.ip_address(raw) if width == 4 else ipaddress.IPv6Address(raw)
            found.append((str(address), int(hex_port, 16), fields[9]))
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _listeners_of(pid: int) -> list[tuple[str, int]]:
    inodes = _socket_inodes(pid)
    return [(address, port) for address, port, inode in _listening() if inode in inodes]


def _pid_listening_on(port: int) -> int | None:
    inodes = {inode for _, p, inode in _listening() if p == port}
    if not inodes:
        return None
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _socket_inodes(int(entry)) & inodes:
            return int(entry)
    return None


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _assert_loopback_only(pid: int, name: str, expected: int = 1) -> list[tuple[str, int]]:
    listeners = _listeners_of(pid)
    assert len(listeners) >= expected, f"{name} listens on {listeners}"
    wide = [(a, p) for a, p in listeners if not _loopback(a)]
    assert not wide, f"{name} (pid {pid}) listens beyond loopback: {wide}"
    return listeners


def test_phoenix_listens_on_loopback_only_http_and_grpc(phoenix):
    pid = phoenix.pid
    assert pid is not None and _alive(pid)
    listeners = _assert_loopback_only(pid, "Phoenix", expected=2)
    http_port = int(phoenix.url.rsplit(":", 1)[1])
    assert http_port in {p for _, p in listeners}
    assert {p for _, p in listeners} - {http_port}, f"no gRPC listener among {listeners}"


# -- child servers die with cogscope -------------------------------------------------------------------
def _wait_for_model_server(port: int, proc: subprocess.Popen[bytes], timeout: float = 300) -> int:
    def up() -> bool:
        assert proc.poll() is None, f"cogscope exited with {proc.returncode} before the model server answered"
        return serves_local_model(f"http://127.0.0.1:{port}/v1", timeout=2)

    wait_until(up, timeout=timeout, what="the bundled model server did not answer")
    pid = _pid_listening_on(port)
    assert pid is not None and pid != proc.pid
    return pid


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_signal_to_cogscope_run_leaves_no_model_server(env, agent_file, tmp_path, signum):
    port = int(env["COGSCOPE_LLM_PORT"])
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [*cogscope_command(), "run", "--agent", f"{agent_file}:make_sleeping", "--task", "Act.", "--model", "local"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        # as from a terminal: a suite started under `nohup` would hand its SIGHUP-ignored state down to cogscope
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
    )  # fmt: skip
    try:
        server = _wait_for_model_server(port, proc)
        _assert_loopback_only(server, "the bundled model server")
        proc.send_signal(signum)  # cogscope is inside the (sleeping) factory, the model server is up
        code = proc.wait(timeout=60)
        assert code == (130 if signum == signal.SIGINT else -signum)  # Ctrl-C is not mistaken for the factory's
        wait_until(lambda: not _alive(server), timeout=60, what=f"the model server (pid {server}) outlived cogscope")
        wait_until(lambda: _pid_listening_on(port) is None, timeout=30, what=f"port {port} still listens")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert "Traceback" not in (tmp_path / "run.log").read_text(errors="replace")


@pytest.mark.e2e  # starts the bundled model's server
def test_model_server_started_by_a_thread_that_ends_lives_on(tmp_path):
    """Gradio starts the model server from a pooled worker thread that ends when idle: the server must not
    die with that thread (PR_SET_PDEATHSIG follows the thread that forked the child)."""
    local = LocalModelServer(port=free_port(), log_path=tmp_path / "model.log")
    started: list[str] = []
    worker = threading.Thread(target=lambda: started.append(local.ensure(timeout=300)))
    worker.start()
    worker.join()
    try:
        assert started, "the model server did not start"
        assert local.process is not None
        pid = local.process.pid
        for _ in range(10):  # the thread has ended; the server keeps answering
            assert serves_local_model(local.api_base, timeout=5), "the model server died with the thread"
            assert _alive(pid)
            time.sleep(0.3)
    finally:
        local.stop()
    assert not _alive(pid)


def _start_ui(environ: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen([*cogscope_command(), "ui"], env=environ, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    log.close()
    url = f"http://127.0.0.1:{environ['COGSCOPE_PORT']}"

    def up() -> bool:
        assert proc.poll() is None, f"cogscope ui exited: {log_path.read_text(errors='replace')}"
        try:
            return httpx.get(url, timeout=1).status_code == 401  # up: it asks for the link it printed
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout=300, what="cogscope ui did not answer")
    except BaseException:
        proc.kill()
        raise
    return proc


def test_sigkill_of_cogscope_ui_takes_its_phoenix_and_model_server(env, tmp_path):
    phoenix_port, llm_port, app_port = free_port(), free_port(), free_port()
    environ = dict(
        env, COGSCOPE_PHOENIX_PORT=str(phoenix_port), COGSCOPE_LLM_PORT=str(llm_port), COGSCOPE_PORT=str(app_port)
    )
    environ.pop("PHOENIX_COLLECTOR_ENDPOINT")
    proc = _start_ui(environ, tmp_path / "ui.log")
    try:
        assert phoenix_version(f"http://127.0.0.1:{phoenix_port}") is not None
        phoenix_pid = _pid_listening_on(phoenix_port)
        model_pid = _pid_listening_on(llm_port)
        assert phoenix_pid and model_pid
        _assert_loopback_only(phoenix_pid, "the Phoenix cogscope ui started", expected=2)
        _assert_loopback_only(model_pid, "the bundled model server")
        _assert_loopback_only(proc.pid, "cogscope ui")
    finally:
        proc.kill()
        proc.wait(timeout=30)
    wait_until(lambda: not _alive(model_pid), timeout=60, what="the model server outlived a SIGKILLed cogscope ui")
    wait_until(lambda: not _alive(phoenix_pid), timeout=90, what="Phoenix outlived a SIGKILLed cogscope ui")
    for port in (phoenix_port, llm_port, app_port):
        assert _pid_listening_on(port) is None, f"port {port} still listens"


def test_cogscope_run_leaves_the_phoenix_it_started_running(env, llm, tmp_path):
    phoenix_port = free_port()
    environ = dict(env, COGSCOPE_PHOENIX_PORT=str(phoenix_port))
    environ.pop("PHOENIX_COLLECTOR_ENDPOINT")
    llm.enqueue(ANSWER)
    proc = subprocess.run(
        [*cogscope_command(), "run", "--agent", "heartbeat", "--task", "Decide.", "--model", "openai/scripted",
         "--api-base", llm.api_base],
        env=environ, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    phoenix_pid = _pid_listening_on(phoenix_port)
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"Started Phoenix at http://127.0.0.1:{phoenix_port}" in proc.stdout
        assert phoenix_pid is not None, "the Phoenix `cogscope run` started did not keep running"
        trace_id = re.search(r"^Trace:\s+([0-9a-f]{32})", proc.stdout, re.MULTILINE).group(1)  # type: ignore[union-attr]
        time.sleep(5)  # the command has ended; its Phoenix still answers and serves the trace link
        assert phoenix_version(f"http://127.0.0.1:{phoenix_port}") is not None
        link = f"http://127.0.0.1:{phoenix_port}/redirects/traces/{trace_id}"
        response = httpx.get(link, timeout=10, follow_redirects=True)
        assert response.status_code == 200, f"{link} answered {response.status_code} at {response.url}"
        # Phoenix answers its app page for any id there (the redirect is made in the browser): the trace it names
        # must be in Phoenix, in the project the command used, or the page says there is no such trace
        root = phoenix_client(f"http://127.0.0.1:{phoenix_port}").spans.get_spans(
            project_identifier=environ["COGSCOPE_PROJECT"], trace_ids=[trace_id], parent_id="null", timeout=30
        )
        assert [span["name"] for span in root] == ["heartbeat.cycle"]  # and Phoenix serves the trace itself
        _assert_loopback_only(phoenix_pid, "the Phoenix cogscope run started", expected=2)
    finally:
        if phoenix_pid is not None and _alive(phoenix_pid):
            os.kill(phoenix_pid, signal.SIGINT)  # it was started for this test: stop it
            wait_until(lambda: not _alive(phoenix_pid), timeout=60, what="Phoenix did not stop on SIGINT")


@pytest.mark.e2e  # starts a Python process
def test_a_crashed_process_not_yet_reaped_counts_as_gone():
    # how the tests' shared servers know a worker has let go: an xdist worker that crashed stays a zombie until the
    # run ends, and the server's owner waiting for it would hang the run
    child = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    wait_until(lambda: " Z " in Path(f"/proc/{child.pid}/stat").read_text(), timeout=30, what="the child did not end")
    assert not _alive(child.pid)
    child.wait()
    assert not _alive(child.pid)
    assert _alive(os.getpid())
