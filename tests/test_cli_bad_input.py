"""Each bad input of `cogscope run` is one clear line on stderr, exit 2, no traceback, no LLM call."""

from __future__ import annotations

import http.server
import threading

import pytest

from telemetry import free_port


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
        )
    )
    assert f"cannot reach the API base http://127.0.0.1:{port}/v1" in line
    assert "start the server there or fix the API base" in line


def test_phoenix_port_taken_by_something_else(cogscope, llm, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
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
    ):
        line = _one_clear_line(cogscope("run", "--agent", "heartbeat", "--task", "x", **{name: value}))
        assert f"{name}={value!r} {message}" in line
