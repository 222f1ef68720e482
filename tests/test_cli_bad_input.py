"""Each bad input of `cogscope run` is one clear line on stderr, exit 2, no traceback, no LLM call."""

from __future__ import annotations

import http.server
import threading

import pytest

from cogscope.telemetry import free_port


def _one_clear_line(result) -> str:  # type: ignore[no-untyped-def]
    return str(result.error_line())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--agent", "hartbeat"], "unknown agent 'hartbeat'; known agents: heartbeat, consciousness, revision"),
        (["--model", "gpt 4o mini!"], "malformed model id 'gpt 4o mini!'"),
        (["--model", "nosuchprovider-model"], "unknown model 'nosuchprovider-model': LiteLLM cannot tell its provider"),
        (["--task", "   "], "the task is empty"),
        (["--api-base", "not a url"], "is not an http(s) URL"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cogscope, llm, args, expected):
    base = {"--agent": "heartbeat", "--task": "decide", "--model": "openai/scripted", "--api-base": llm.api_base}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = [item for pair in base.items() for item in pair]
    line = _one_clear_line(cogscope("run", *argv))
    assert expected in line
    assert llm.requests == []


def test_missing_api_key_names_the_variable(cogscope):
    line = _one_clear_line(
        cogscope(
            "run",
            "--agent",
            "heartbeat",
            "--task",
            "decide",
            "--model",
            "anthropic/claude-3-5-haiku-latest",
            ANTHROPIC_API_KEY=None,
            process=True,  # LiteLLM's check, as the command meets it
        )
    )
    assert "needs ANTHROPIC_API_KEY; export ANTHROPIC_API_KEY=..." in line


def test_unreachable_api_base(cogscope):
    port = free_port()  # nothing listens there
    line = _one_clear_line(
        cogscope(
            "run",
            "--agent",
            "heartbeat",
            "--task",
            "decide",
            "--model",
            "openai/scripted",
            "--api-base",
            f"http://127.0.0.1:{port}/v1",
            process=True,
        )
    )
    assert f"cannot reach the API base http://127.0.0.1:{port}/v1" in line
    assert "start the server there or fix the API base" in line


class _NotPhoenix(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the command's stderr is what the test reads
        pass


def test_phoenix_port_taken_by_something_else(cogscope, llm, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotPhoenix)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        line = _one_clear_line(
            cogscope(
                "run",
                "--agent",
                "heartbeat",
                "--task",
                "decide",
                "--model",
                "openai/scripted",
                "--api-base",
                llm.api_base,
                PHOENIX_COLLECTOR_ENDPOINT=None,
                COGSCOPE_PHOENIX_PORT=str(port),
            )
        )
    finally:
        server.shutdown()
        server.server_close()
    assert f"port {port} on 127.0.0.1 is taken by something that is not Phoenix" in line
    assert "COGSCOPE_PHOENIX_PORT" in line
    assert llm.requests == []


def test_unreachable_remote_phoenix(cogscope, llm):
    line = _one_clear_line(
        cogscope(
            "run",
            "--agent",
            "heartbeat",
            "--task",
            "decide",
            "--model",
            "openai/scripted",
            "--api-base",
            llm.api_base,
            PHOENIX_COLLECTOR_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        )
    )
    assert "no Phoenix answers at" in line


def test_a_phoenix_endpoint_that_is_not_a_url_is_one_line(cogscope):
    line = _one_clear_line(
        cogscope("run", "--agent", "heartbeat", "--task", "x", PHOENIX_COLLECTOR_ENDPOINT="http://[::1:6006")
    )
    assert "Phoenix endpoint 'http://[::1:6006' is not a valid URL" in line


def test_bad_port_setting(cogscope):
    line = _one_clear_line(cogscope("run", "--agent", "heartbeat", "--task", "x", COGSCOPE_PORT="seventy"))
    assert "COGSCOPE_PORT='seventy' is not a port number" in line


def test_bad_limit_settings(cogscope):
    for name, value, message in (
        ("COGSCOPE_STEP_TIMEOUT", "nan", "is not a number of seconds"),
        ("COGSCOPE_CYCLE_TIMEOUT", "-5", "is not a number of seconds"),
        ("COGSCOPE_LLM_TIMEOUT", "inf", "is not a number of seconds"),
        ("COGSCOPE_SANDBOX_MEMORY_MB", "lots", "is not a size in MB"),
        ("COGSCOPE_SANDBOX_NETWORK", "maybe", "is not a yes/no value"),
        ("COGSCOPE_SANDBOX_DISK_MB", "0", "is not a size in MB"),
        ("COGSCOPE_SANDBOX_DISK_MB", "much", "is not a size in MB"),
        ("COGSCOPE_SANDBOX_WEAK", "perhaps", "is not a yes/no value"),
        ("COGSCOPE_SPOOL_MB", "0", "is not a size in MB"),
        ("COGSCOPE_DRAIN_TIMEOUT", "forever", "is not a number of seconds"),
        ("COGSCOPE_PROJECT", "team/agents", "cannot name a Phoenix project"),
        ("COGSCOPE_MAX_CYCLES", "0", "is not a number of cycles"),
        ("COGSCOPE_MAX_LOCAL_CYCLES", "many", "is not a number of cycles"),
        ("COGSCOPE_STATE_DAYS", "0", "is not a number of days"),
        ("COGSCOPE_STATE_DAYS", "forever", "is not a number of days"),
    ):
        line = _one_clear_line(cogscope("run", "--agent", "heartbeat", "--task", "x", **{name: value}))
        assert f"{name}={value!r} {message}" in line


def test_bad_max_cycles_for_the_app_is_one_line(cogscope):
    for value in ("0", "lots", "5000"):
        line = _one_clear_line(cogscope("ui", "--max-cycles", value))
        assert f"{value!r} is not a number of cycles; use a whole number from 1 to 1000" in line


# -- more bad inputs: each one line, exit 2, nothing started that should not be ----------------------------
def _run_args(llm, *extra: str) -> list[str]:  # type: ignore[no-untyped-def]
    return ["run", "--agent", "heartbeat", "--task", "decide", "--model", "openai/scripted", "--api-base",
            llm.api_base, *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--api-base", "http://[::1/v1"], "API base 'http://[::1/v1' is not a valid URL (Invalid IPv6 URL)"),
        (["--model", ""], "--model '' names no model; give a LiteLLM id"),
        (["--model", "  "], "--model '  ' names no model"),
        (["--option", "max_steps=-1"], "option max_steps=-1 is not a step budget; give a whole number of steps"),
        (["--option", "max_steps=0"], "option max_steps=0 is not a step budget"),
        (["--option", "max_steps=two"], "option max_steps='two' is not a step budget"),
    ],
)
def test_bad_api_base_model_or_step_budget(cogscope, llm, extra, expected):
    line = _one_clear_line(cogscope(*_run_args(llm), *extra))  # a later --api-base/--agent wins
    assert expected in line
    assert "energy exhausted" not in line
    assert llm.requests == []


@pytest.mark.parametrize("interval", ["inf", "nan", "-1", "1e400"])
def test_heartbeat_interval_must_be_seconds_from_0_to_a_day(cogscope, llm, interval):
    result = cogscope("heartbeat", "--cycles", "2", "--interval", interval, "--model", "openai/scripted",
                      "--api-base", llm.api_base)  # fmt: skip
    line = _one_clear_line(result)
    assert f"argument --interval: {interval!r} is not a number of seconds from 0 to 86400 (a day)" in line
    assert "Cycle 1" not in result.out
    assert llm.requests == []


def test_the_ui_heartbeat_loop_refuses_a_nan_or_infinite_interval_before_any_cycle():
    """The Run tab's loop goes through `heartbeat_cycles` too (its own check lets nan through: nan < 0 is False)."""
    import threading

    from cogscope.ui.errors import UsageError
    from cogscope.ui.heartbeat_loop import heartbeat_cycles

    for interval in (float("nan"), float("inf"), -1.0):
        loop = heartbeat_cycles(None, cycles=2, interval=interval, stop=threading.Event())  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="is not a number of seconds from 0 to 86400"):
            next(loop)  # fails before the runtime (None here) is ever used


def test_cost_since_too_long(cogscope):
    line = _one_clear_line(cogscope("cost", "--since", "99999999999999999999d"))
    assert "--since '99999999999999999999d' is too long; give at most 36500d (100 years)" in line


def test_ui_on_a_port_in_use_is_one_line_and_the_running_app_still_serves_a_huge_trace_id(cogscope, env, llm):
    """A second `cogscope ui` on the first one's port; then a 1 MB trace id typed into the Traces tab's Open
    (the function the Open button calls, through the app's own API): a short ❌ line, and the app still serves."""
    import json

    import httpx

    from .conftest import running_app

    with running_app(env, llm) as url:
        port = url.rsplit(":", 1)[1]
        line = _one_clear_line(cogscope("ui", "--port", port, timeout=60))
        assert f"port {port} on 127.0.0.1 is already in use; stop what listens there, or pick another with --port" in (
            line
        )
        huge = "f" * 1_000_000
        with httpx.Client(base_url=url, headers=url.headers, timeout=60) as http:
            event = http.post("/gradio_api/call/open_trace", json={"data": [huge, False, ""]}).json()["event_id"]
            stream = http.get(f"/gradio_api/call/open_trace/{event}").text
            assert "event: complete" in stream, stream[:500]
            data = json.loads(stream.split("data: ", 1)[1].splitlines()[0])
            assert data[0].startswith("❌ "), data[0][:300]
            assert "is not a trace id (32 hex digits)" in data[0]
            assert "(1,000,000 characters)" in data[0]
            assert len(data[0]) < 300
            assert http.get("/").status_code == 200  # still serving


@pytest.mark.parametrize("command", ["show", "replay"])
def test_a_huge_trace_id_is_not_echoed_back(cogscope, command):
    huge = "f" * 100_000  # a single argument may be at most 128 KiB on Linux (MAX_ARG_STRLEN)
    line = _one_clear_line(cogscope(command, huge))
    assert "is not a trace id (32 hex digits)" in line
    assert "(100,000 characters)" in line
    assert len(line) < 300


def test_traces_json_is_valid_json_with_null_for_an_unknown_cost(cogscope, record, llm, read_trace):
    import json

    llm.enqueue("Thought: done.\n<code>\nfinal_answer('rested')\n</code>", prompt_tokens=120, completion_tokens=12)
    trace_id = record("Rest?", api_base=llm.api_base)  # openai/scripted has no price: its cost is unknown
    read_trace(trace_id, min_spans=2)
    out = cogscope("traces", "--format", "json").out

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    rows = {row["trace_id"]: row for row in json.loads(out, parse_constant=refuse)}
    assert rows[trace_id]["cost_usd"] is None
    assert rows[trace_id]["prompt_tokens"] == 120


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import sys\nsys.exit(3)\n", "importing {path} raised SystemExit(3); an agent file must not exit"),
        (
            "def make(models, **options):\n    raise SystemExit(5)\n",
            "agent factory '{path}:make' raised SystemExit(5); a factory must not exit",
        ),
    ],
)
def test_an_agent_file_or_factory_that_exits_is_one_line(cogscope, llm, tmp_path, source, expected):
    path = tmp_path / "exits.py"
    path.write_text(source)
    line = _one_clear_line(cogscope(*_run_args(llm), "--agent", f"{path}:make"))
    assert expected.format(path=path) in line
    assert llm.requests == []


def test_mcp_server_that_never_answers_fails_within_its_30_s_and_is_stopped(cogscope, llm):
    import subprocess

    command = "sleep 317.5"  # never speaks MCP; its odd length tells it from any other sleep
    # before the fix the command ended only after the sleep itself (317.5 s), since the never-stopped server held
    # its stderr open: the 200 s limit on the command tells the two apart, with room for a loaded machine
    line = _one_clear_line(cogscope(*_run_args(llm), "--mcp", command, timeout=200, process=True))
    assert f"MCP server {command!r} did not answer within 30 s" in line
    assert subprocess.run(["pgrep", "-f", command], capture_output=True).returncode == 1, "the MCP server survived"
    assert llm.requests == []


# -- the data dir: checked before anything starts -------------------------------------------------------
def test_read_only_data_dir_without_phoenix_is_one_line(env, llm, tmp_path):
    """A real read-only mount (root ignores file modes, so chmod would prove nothing), no Phoenix running:
    without the check cogscope would start Phoenix there and fail with `OSError: [Errno 30]`."""
    import shutil
    import subprocess

    from .conftest import ROOT, Completed, cogscope_command

    mount = tmp_path / "ro"
    mount.mkdir()
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
    if (
        shutil.which("unshare") is None
        or subprocess.run(
            ["unshare", "-m", "sh", "-c", script, "sh", str(mount), "true"], capture_output=True
        ).returncode
    ):
        pytest.skip("needs a mount namespace for a read-only mount (unshare -m, CAP_SYS_ADMIN)")
    data_dir = mount / "data"
    environ = {k: v for k, v in env.items() if k != "PHOENIX_COLLECTOR_ENDPOINT"}
    environ.update(COGSCOPE_DATA_DIR=str(data_dir), COGSCOPE_PHOENIX_PORT=str(free_port()))
    for target, reason in ((data_dir, "cannot be created"), (mount, "is not writable")):
        environ["COGSCOPE_DATA_DIR"] = str(target)
        proc = subprocess.run(
            ["unshare", "-m", "sh", "-c", script, "sh", str(mount), *cogscope_command(), *_run_args(llm)],
            env=environ, capture_output=True, text=True, timeout=120, cwd=ROOT,
        )  # fmt: skip
        line = _one_clear_line(Completed(proc.returncode, proc.stdout, proc.stderr))
        assert f"data dir {target} {reason} (Read-only file system); set COGSCOPE_DATA_DIR to a writable folder" in (
            line
        )
    assert llm.requests == []
    assert not data_dir.exists()


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("/proc/self/cogscope-data", "cannot be created (No such file or directory)"),  # even root cannot
        ("file", "is not a folder (it is a file)"),
    ],
)
def test_data_dir_that_cannot_be_made_is_one_line(cogscope, llm, tmp_path, where, expected):
    if where == "file":
        where = str(tmp_path / "a-file")
        (tmp_path / "a-file").write_text("not a folder")
    line = _one_clear_line(cogscope(*_run_args(llm), COGSCOPE_DATA_DIR=where, PHOENIX_COLLECTOR_ENDPOINT=None,
                                    COGSCOPE_PHOENIX_PORT=str(free_port())))  # fmt: skip
    assert f"data dir {where} {expected}; set COGSCOPE_DATA_DIR to a writable folder" in line
    assert llm.requests == []
