"""Who may start what: log-in beyond loopback, remote users, and traces that are data, not code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from .conftest import SECRET, running_app
from .helpers import EVIL_AGENT, forge
from .scripted_llm import ScriptedLLM


def _one_line(result) -> str:  # type: ignore[no-untyped-def]
    return str(result.error_line())


# -- binding beyond loopback ----------------------------------------------------------------------
def test_a_wide_bind_without_a_log_in_is_refused(cogscope, tmp_path):
    refused = cogscope("ui", "--host", "0.0.0.0", timeout=60)
    assert refused.code == 2
    assert "--host 0.0.0.0 would let anyone on the network run agents as you" in _one_line(refused)
    assert "--auth-file" in refused.err

    short = tmp_path / "short.txt"
    short.write_text("alice:123\n")
    result = cogscope("ui", "--host", "0.0.0.0", "--auth-file", str(short), timeout=60)
    assert result.code == 2 and "shorter than 8 characters" in _one_line(result)
    assert "123" not in result.err  # a password is never echoed


def test_bad_log_in_files_and_variables_say_what_to_fix(tmp_path, monkeypatch):
    from cogscope.ui.auth import load_credentials
    from cogscope.ui.errors import UsageError

    malformed = tmp_path / "malformed.txt"
    malformed.write_text("just-a-name\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody\n")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    cases = {
        ("file", str(tmp_path / "missing.txt")): "cannot read --auth-file",
        ("file", str(malformed)): "line 1 is not user:password",
        ("file", str(empty)): "holds no user:password line",
        ("file", str(binary)): "is not text",
        ("env_var", "COGSCOPE_TEST_UNSET_VAR"): "the variable is not set",
    }
    for (kind, value), message in cases.items():
        with pytest.raises(UsageError, match=message):
            load_credentials(**{kind: value})
    with pytest.raises(UsageError, match="not both"):
        load_credentials(file=str(empty), env_var="X")
    monkeypatch.setenv("COGSCOPE_TEST_USERS", "alice:correct-horse\nbob:battery-staple")
    users = load_credentials(env_var="COGSCOPE_TEST_USERS")
    assert users is not None and users.users == ["alice", "bob"]
    assert users.check("bob", "battery-staple") and not users.check("bob", "correct-horse")
    assert not users.check("carol", "") and "battery" not in repr(users)


@pytest.fixture
def shared_app(env: dict[str, str], llm: ScriptedLLM, tmp_path: Path):  # type: ignore[no-untyped-def]
    """`cogscope ui` bound beyond loopback with a log-in, as an operator would share it."""
    auth = tmp_path / "users.txt"
    auth.write_text("alice:correct-horse-battery\n")
    auth.chmod(0o600)
    with running_app(env, llm, "--host", "0.0.0.0", "--auth-file", str(auth)) as url:
        yield url
    assert "correct-horse-battery" not in (Path(env["COGSCOPE_DATA_DIR"]).parent / "ui.log").read_text()


def test_with_a_log_in_every_route_needs_it_and_remote_users_run_only_what_the_operator_allows(
    shared_app: str, llm: ScriptedLLM, tmp_path: Path
):
    routes = [
        ("GET", "/config"),
        ("GET", "/gradio_api/info"),
        ("GET", "/gradio_api/openapi.json"),
        ("POST", "/gradio_api/queue/join"),
        ("POST", "/gradio_api/call/run_cycle"),
        ("POST", "/gradio_api/run/run_cycle"),
        ("POST", "/gradio_api/cancel"),
        ("POST", "/gradio_api/reset"),
        ("GET", "/gradio_api/queue/data?session_hash=x"),
        ("GET", "/gradio_api/file=/etc/passwd"),
        ("POST", "/gradio_api/upload"),
        ("GET", "/monitoring"),
    ]
    for method, path in routes:
        response = httpx.request(method, shared_app + path, json={}, timeout=10)
        assert response.status_code == 401, (method, path, response.status_code, response.text[:200])
        assert "root:" not in response.text
    assert httpx.post(shared_app + "/login", data={"username": "alice", "password": "wrong"}).status_code == 400

    from gradio_client import Client

    client = Client(shared_app, auth=("alice", "correct-horse-battery"), verbose=False)
    shown = {component.get("props", {}).get("elem_id") for component in client.config["components"]}
    assert "trace-summary" in shown and "state-rollback" not in shown  # rolling the store back: the operator's only
    marker = tmp_path / "marker"
    agent_file = tmp_path / "evil.py"
    agent_file.write_text(EVIL_AGENT.format(marker=str(marker)))

    def run(agent: str = "heartbeat", options: str = "", mcp: str = "", api_base: str = "") -> str:
        *_, status, _totals, _state = client.predict(
            agent, "openai/scripted", "", "", "", api_base, options, mcp, "Decide.", api_name="/run_cycle"
        )
        return str(status)

    assert "is not registered; on a shared cogscope only registered agents run" in run(f"{agent_file}:make")
    assert "is not registered" in run("os:system")
    assert "is not one the operator allowed" in run(mcp=f"sh -c 'touch {marker}'")
    assert "names a file, which only the operator may choose" in run(options=f"memory={tmp_path}/x.sqlite")
    assert not marker.exists() and not (tmp_path / "x.sqlite").exists()

    # a registered agent runs; a base URL the operator did not allow is refused (tests/test_secrets.py goes further)
    other = ScriptedLLM().start()
    try:
        assert "is not one the operator allowed" in run(api_base=other.api_base)
        assert not other.requests and all(SECRET not in json.dumps(h) for h in other.headers)
        llm.enqueue('Thought: done.\n<code>\nfinal_answer("rested")\n</code>')
        assert "Cycle finished" in run(api_base=llm.api_base)  # the operator's own COGSCOPE_API_BASE: the key
        assert any(SECRET in h.get("authorization", "") for h in llm.headers)
    finally:
        other.stop()


# -- a trace is data, not code ----------------------------------------------------------------------
def test_a_forged_trace_is_marked_and_replay_runs_nothing_it_names(
    cogscope, record, llm, phoenix, project, read_trace, tmp_path
):
    marker = tmp_path / "marker"
    agent_file = tmp_path / "evil.py"
    agent_file.write_text(EVIL_AGENT.format(marker=str(marker)))
    mcp_marker = tmp_path / "mcp-marker"
    file_agent = forge(phoenix, project, {"cogscope.agent": f"{agent_file}:make"})
    command = f"sh -c 'touch {mcp_marker}'"
    mcp_agent = forge(phoenix, project, {"cogscope.agent": "heartbeat", "cogscope.mcp": json.dumps([command])})
    db = tmp_path / "elsewhere.sqlite"
    path_agent = forge(
        phoenix, project, {"cogscope.agent": "heartbeat", "cogscope.agent.options": json.dumps({"memory": str(db)})}
    )
    # a real cycle, recorded (and signed) here; a signature copied from it does not vouch for a forged trace
    llm.enqueue('Thought: done.\n<code>\nfinal_answer("ok")\n</code>')
    real = record("Real", api_base=llm.api_base)
    real_root = read_trace(real, min_spans=4)
    real_root = real_root[real_root["parent_id"].isna()].iloc[0]
    copied = forge(
        phoenix,
        project,
        {key: str(real_root[f"attributes.{key}"]) for key in (
            "cogscope.agent", "cogscope.agent.options", "cogscope.model", "cogscope.cycle.id", "cogscope.signature"
        )},
    )  # fmt: skip
    for trace_id in (file_agent, mcp_agent, path_agent, copied):
        read_trace(trace_id)

    listed = {r["trace_id"]: r for r in json.loads(cogscope("traces", "--format", "json").out)}
    assert listed[real]["recorded_here"] is True
    assert not any(listed[t]["recorded_here"] for t in (file_agent, mcp_agent, path_agent, copied))
    table = cogscope("traces").out
    assert table.count("(not recorded here)") == 4
    shown = cogscope("show", mcp_agent)
    assert shown.code == 0 and "Not recorded by this cogscope installation" in shown.out and command in shown.out

    for trace_id, what in (
        (file_agent, f"import agent file {agent_file}:make"),
        (mcp_agent, f"start MCP command {command!r}"),
        (path_agent, f"open file {str(db)!r} (option memory)"),
    ):
        refused = cogscope("replay", trace_id)
        assert refused.code == 2, refused.out + refused.err
        line = _one_line(refused)
        assert what in line and "NOT recorded by this installation" in line and "--trust-recorded-code" in line
    assert not marker.exists() and not mcp_marker.exists() and not db.exists()

    # the operator looked and trusts it: now it runs (and this file's factory refuses to build)
    trusted = cogscope("replay", file_agent, "--trust-recorded-code")
    assert trusted.code == 2 and "no longer loads" in trusted.err
    assert marker.read_text() == "imported"
    assert os.environ.get("COGSCOPE_ALLOW_MCP") is None


# -- every entry point that builds an agent goes through one policy check, before anything is built -------------
def _forge_app_cycle(phoenix, project: str) -> str:  # type: ignore[no-untyped-def]
    """Another app's one-step cycle (plain OpenInference spans: an agent run, a step, a model call), sent straight
    to Phoenix's collector."""
    provider = TracerProvider(resource=Resource({"openinference.project.name": project}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=phoenix.collector_endpoint)))
    tracer = provider.get_tracer("app")
    output = json.dumps({"role": "assistant", "content": 'Thought: done.\n<code>\nfinal_answer("ok")\n</code>'})
    try:
        run = {"openinference.span.kind": "AGENT", "input.value": json.dumps({"task": "Decide."})}
        with tracer.start_as_current_span("CodeAgent.run", attributes=run) as root:
            with tracer.start_as_current_span("Step 1", attributes={"openinference.span.kind": "CHAIN"}):
                call = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "output.value": output}
                tracer.start_span("LiteLLMModel.generate", attributes=call).end()
            return format(root.get_span_context().trace_id, "032x")
    finally:
        provider.shutdown()


def test_a_remote_user_cannot_point_any_entry_point_at_a_file(  # type: ignore[no-untyped-def]
    shared_app: str, phoenix, project, read_trace, tmp_path: Path
):
    from gradio_client import Client

    trace_id = _forge_app_cycle(phoenix, project)
    read_trace(trace_id, min_spans=3)
    client = Client(shared_app, auth=("alice", "correct-horse-battery"), verbose=False)
    refused = "names a file, which only the operator may choose on a shared cogscope"
    for api in ("/replay", "/fork_edit", "/fork_live"):
        db = tmp_path / api.strip("/") / "deep" / "x.sqlite"
        report, *_ = client.predict(
            trace_id, False, None, "Thought: edited.\n<code>\nfinal_answer(1)\n</code>", "openai/scripted", False,
            "heartbeat", f"memory={db}", "", api_name=api,
        )  # fmt: skip
        assert refused in str(report), (api, report)
        assert not db.parent.parent.exists(), f"{api} made {db.parent.parent} before refusing"
    for api in ("/run_cycle", "/heartbeat_loop"):
        db = tmp_path / api.strip("/") / "deep" / "x.sqlite"
        fields = ["heartbeat", "openai/scripted", "", "", "", "", f"memory={db}", "", "Decide."]
        _messages, status, *_ = client.predict(*fields, *([1, 0] if api == "/heartbeat_loop" else []), api_name=api)
        assert refused in str(status), (api, status)
        assert not db.parent.parent.exists()


def test_the_operator_still_replays_another_apps_cycle_into_a_file_they_name(  # type: ignore[no-untyped-def]
    cogscope, phoenix, project, read_trace, tmp_path: Path
):
    trace_id = _forge_app_cycle(phoenix, project)
    read_trace(trace_id, min_spans=3)
    db = tmp_path / "mine" / "x.sqlite"
    replay = cogscope("replay", trace_id, "--agent", "heartbeat", "--option", f"memory={db}", "--stub-tools")
    assert db.exists(), replay.out + replay.err  # built with the operator's file (the replay itself may diverge)
