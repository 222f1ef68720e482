"""`cogscope ui`: starts or reuses Phoenix and the local model, prints both URLs, and on Ctrl-C stops
what it started and nothing else."""

from __future__ import annotations

import re
import signal
import subprocess
from urllib.parse import urlsplit

import httpx

from cogscope.telemetry import free_port
from cogscope.telemetry.phoenix_server import phoenix_version, port_in_use

from .helpers import Lines, start_cogscope


def _start(environ: dict[str, str]) -> tuple[Lines, list[str]]:
    """`cogscope ui`, once it has printed its link; and the lines it printed so far."""
    app = start_cogscope(environ, "ui")
    try:
        app.wait_for(r"^cogscope: http://", timeout=180)
    except AssertionError:
        app.proc.kill()
        raise
    return app, [line.rstrip() for line in app.lines]


def _link(lines: list[str], port: int) -> str:
    """The link `cogscope ui` printed: the app's loopback URL with its operator token."""
    line = next(line for line in lines if line.startswith("cogscope: http://"))
    printed = rf"cogscope: (http://127\.0\.0\.1:{port}/\?token=[\w-]{{32,}})   \(Ctrl-C stops what cogscope started\)"
    found = re.fullmatch(printed, line)
    assert found, line
    return found.group(1)


def _interrupt(app: Lines) -> str:
    app.proc.send_signal(signal.SIGINT)
    try:
        return app.wait(timeout=60)
    except subprocess.TimeoutExpired:
        app.proc.kill()  # a failed test leaves no app behind
        raise AssertionError(f"cogscope ui still ran 60 s after Ctrl-C:\n{app.wait(timeout=30)}") from None


def test_ui_starts_phoenix_and_local_model_and_ctrl_c_stops_both(env):
    phoenix_port, llm_port, app_port = free_port(), free_port(), free_port()
    environ = dict(
        env, COGSCOPE_PHOENIX_PORT=str(phoenix_port), COGSCOPE_LLM_PORT=str(llm_port), COGSCOPE_PORT=str(app_port)
    )
    environ.pop("PHOENIX_COLLECTOR_ENDPOINT")
    ui, lines = _start(environ)
    try:
        assert f"Phoenix:  http://127.0.0.1:{phoenix_port}" in lines
        link = _link(lines, app_port)
        assert phoenix_version(f"http://127.0.0.1:{phoenix_port}") is not None
        assert httpx.get(f"http://127.0.0.1:{llm_port}/v1/models").json()["data"][0]["id"] == "smollm2-135m"
        assert httpx.get(link, follow_redirects=True).status_code == 200  # the link opens the app
        assert httpx.get(f"http://127.0.0.1:{app_port}").status_code == 401  # without it: refused
    finally:
        out = _interrupt(ui)
    assert ui.proc.returncode == 0, out
    for port in (phoenix_port, llm_port, app_port):
        assert not port_in_use("127.0.0.1", port), f"port {port} still answers after Ctrl-C"


def test_ui_reuses_a_running_phoenix_and_leaves_it_running(env, phoenix, llm):
    app_port = free_port()
    environ = dict(
        env,
        COGSCOPE_PHOENIX_PORT=str(urlsplit(phoenix.url).port),
        COGSCOPE_PORT=str(app_port),
        COGSCOPE_MODEL="openai/scripted",
        COGSCOPE_API_BASE=llm.api_base,
    )
    environ.pop("PHOENIX_COLLECTOR_ENDPOINT")
    ui, lines = _start(environ)
    _interrupt(ui)
    assert f"Phoenix:  {phoenix.url} (reused)" in lines
    assert ui.proc.returncode == 0
    assert phoenix_version(phoenix.url) is not None  # still up: cogscope did not start it
    assert not port_in_use("127.0.0.1", app_port)


STUCK_AGENT = """
import threading, time

from cogscope.agents.heartbeat import build


def make(models, **options):
    # an operator's agent with a bug: a thread that never ends, and not a daemon, so Python would wait for it
    threading.Thread(target=time.sleep, args=(3600,), name="never-ends", daemon=False).start()
    return build(models)
"""


def test_ctrl_c_ends_the_app_even_when_a_thread_of_its_agent_never_does(env, llm, tmp_path):
    from gradio_client import Client

    agent_file = tmp_path / "stuck.py"
    agent_file.write_text(STUCK_AGENT)
    llm.enqueue("Thought: done.\n<code>\nfinal_answer('ok')\n</code>")
    app_port = free_port()
    environ = dict(
        env,
        COGSCOPE_PORT=str(app_port),
        COGSCOPE_MODEL="openai/scripted",
        COGSCOPE_API_BASE=llm.api_base,
        COGSCOPE_DRAIN_TIMEOUT="1",  # the deadline is the drain plus 15 s
    )
    ui, lines = _start(environ)
    try:
        token = _link(lines, app_port).partition("?token=")[2]
        client = Client(f"http://127.0.0.1:{app_port}", verbose=False, headers={"Authorization": f"token {token}"})
        _chat, status, _totals, _state = client.predict(
            f"{agent_file}:make", "openai/scripted", "", "", "", llm.api_base, "", "", "Decide.",
            api_name="/run_cycle",
        )  # fmt: skip
        assert "Cycle finished" in status, status
        client.close()
    finally:
        out = _interrupt(ui)  # fails if the app is still there 60 s after Ctrl-C
    assert ui.proc.returncode == 0, out
    assert "stopping took more than 16 s; ending now (spans not yet in Phoenix stay in the spool" in out
    assert not port_in_use("127.0.0.1", app_port)
