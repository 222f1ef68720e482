"""Secrets stay secret: redaction by name and by value wherever text leaves the process; model calls are bounded.

Unit tests cover each key format, the environment's secret values (exact, reversed, spelt out), lone surrogates,
the redacting stream and the model wrapper. The end-to-end tests put canary secrets of several formats into the
environment, run a real cycle of an agent whose tool dumps the environment (plus reversed and spelt-out copies of
keys) through the real `cogscope run` and the real app, and look for the canaries in everything that left: the CLI's
output, every span in Phoenix, every request the (scripted) LLM received, and the page.
"""

from __future__ import annotations

import io
import json
import textwrap
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from smolagents import ChatMessage

from cogscope.telemetry import setup_tracing
from cogscope.telemetry.redacted_output import RedactingStream
from cogscope.telemetry.redaction import REDACTED, Redactor, is_secret_name, redact_formats
from cogscope.telemetry.tracing import uninstrument
from cogscope.ui.errors import ModelError
from cogscope.ui.models import PLACEHOLDER_KEY, BoundedRetrying, build_model

from .conftest import SECRET, running_app
from .helpers import ISSUE_NAMES, readme_name_rules
from .listener import Listener
from .scripted_llm import ScriptedLLM
from .secret_leaks import decoded, leaks

# -- canaries (built from pieces, so no scanner mistakes this file for a leak) --------------------------
PEM_BODY = ["MIIEpQIBAAKCAQEAcanaryPEMline1xyzABCDEFGHIJ", "Q2FuYXJ5UEVNbGluZTJxd2VydHl1aW9wYXNkZmdo"]
PEM = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(PEM_BODY) + "\n-----END RSA PRIVATE KEY-----"
CANARIES = {
    "OPENAI_API_KEY": SECRET,  # the env fixture's key
    "DB_PASSWD": "hunter2x",  # short
    "DATABASE_URL": "postgresql://app:" + "pw-canary-9" + "@db/x",
    "GITHUB_PAT": "ghp_" + "Cnry7" * 7 + "x",
    "AWS_ACCESS_KEY_ID": "AKIA" + "CANARY7EXAMPLE42",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYCANARYKEY1",
    "SESSION_JWT": "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiJjYW5hcnkifQ." + "c2lnLWNhbmFyeS0x",
    "DEPLOY_PRIVATE_KEY": PEM,
    "MY_SERVICE_TOKEN": "tok-" + "canary-31415",
}
# secret by name only (no known format): the issue's names, and one name for each part the README lists
BY_NAME = ISSUE_NAMES + [f"CANARY{part}X" for part in readme_name_rules()["parts"]]
CANARIES.update({name: f"v{i:02d}-{name.lower()[:6]}-" + "q7Zk" + "m3Wp" for i, name in enumerate(BY_NAME)})
# what must never be seen: each value (a PEM by its lines), and the URL's password on its own
LEAKS = [v for k, v in CANARIES.items() if k not in ("DEPLOY_PRIVATE_KEY",)] + PEM_BODY + ["pw-canary-9"]


def assert_no_canary(text: str, where: str) -> None:
    """No canary can be read from `text`, as is or by any decoding of tests/secret_leaks.py."""
    views = decoded(text)
    for value in LEAKS:
        found = leaks(views, value)
        assert not found, f"canary {value[:12]}... leaked in {where} ({'; '.join(sorted(set(found)))})"


AGENT_FILE = textwrap.dedent(
    '''
    """An agent whose one tool prints the whole environment, keys reversed and spelt out, and encoded."""

    import base64
    import codecs
    import json
    import os
    from urllib.parse import quote_plus

    from smolagents import ToolCallingAgent, tool

    BY_NAME = NAMES


    @tool
    def environment() -> str:
        """Everything in this process's environment."""
        env = dict(os.environ)
        lines = [repr(env)]
        for name in ("OPENAI_API_KEY", "GITHUB_PAT", "MY_SERVICE_TOKEN", "DB_PASSWD", "AWS_SECRET_ACCESS_KEY"):
            value = env.get(name, "")
            lines += [
                f"{name} reversed: {value[::-1]}",
                f"{name} spaced: {' '.join(value)}",
                f"{name} dashed: {'-'.join(value)}",
                f"{name} listed: {list(value)}",
                f"{name} reversed and spaced: {' '.join(value[::-1])}",
            ]
        for name in BY_NAME:  # secret by name only, in every encoding the README says is caught
            value = env.get(name, "")
            data = value.encode()
            lines += [
                f"{name} title: {value.title()} upper: {value.upper()} rot13: {codecs.encode(value, 'rot13')}",
                f"{name} run input: {json.dumps({'input': json.dumps({'task': 'x' + chr(10) + value})})}",
                f"{name} hex: {data.hex()} %XX: {''.join('%%%02X' % b for b in data)} url: {quote_plus(value)}",
                f"{name} code points: {[ord(c) for c in value]}",
                f"{name} base64: {base64.b64encode(b'ab' + data + b'cd').decode()}",
                f"{name} url-safe base64: {base64.urlsafe_b64encode(b'?' + data).decode()}",
                f"{name} zero-width: {chr(0x200b).join(value)} no-break: {chr(0xa0).join(value)}",
                f"{name} full-width: {''.join(chr(ord(c) + 0xFEE0) if '!' <= c <= '~' else c for c in value)}",
            ]
        if os.environ.get("ENV_AGENT_SURROGATE"):
            lines.append("a lone surrogate: \\ud800 (end)")
        return "\\n".join(lines)


    def make(models, *, max_steps: int = 3):
        return ToolCallingAgent(tools=[environment], model=models["default"], max_steps=max_steps)
    '''
)
CALL_TOOL = '{"name": "environment", "arguments": {}}'
FINISH = '{"name": "final_answer", "arguments": {"answer": "I looked at the environment."}}'


@pytest.fixture
def canaries(env: dict[str, str]) -> dict[str, str]:
    """The canary secrets, in the environment of every cogscope process the test starts."""
    env.update(CANARIES)
    return CANARIES


@pytest.fixture
def agent_file(tmp_path: Path) -> str:
    path = tmp_path / "env_agent.py"
    path.write_text(AGENT_FILE.replace("NAMES", repr(BY_NAME)))
    return f"{path}:make"


# -- unit: key formats -----------------------------------------------------------------------------
FORMAT_EXAMPLES = {
    "openai": "sk-" + "A1b2C3d4" * 4,
    "openai project": "sk-proj-" + "Zz9_Yy8-" * 6,
    "anthropic": "sk-ant-api03-" + "Q1w2E3r4" * 5,
    "github classic": "ghp_" + "a1B2c3D4e5F6" * 3,
    "github oauth": "gho_" + "a1B2c3D4e5F6" * 3,
    "github fine-grained": "github_pat_" + "11ABCDEFG0" * 5,
    "slack bot": "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKl",
    "slack user": "xoxp-" + "123456789012-1234567890123-AbCdEfGhIjKl",
    "aws access key id": "AKIA" + "IOSFODNN7EXAMPL2",
    "aws temporary key id": "ASIA" + "IOSFODNN7EXAMPL3",
    "google": "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "dozjgNryP4J3jVmNHl0w5N",
}


@pytest.mark.parametrize("name", list(FORMAT_EXAMPLES))
def test_each_key_format_is_blanked_wherever_it_appears(name: str) -> None:
    key = FORMAT_EXAMPLES[name]
    for text in (key, f"my key is {key}.", f'{{"key": "{key}"}}', f"export X={key}\nnext line", f"({key})"):
        out = redact_formats(text)
        assert key not in out and REDACTED in out, (name, text, out)
        assert out.replace(REDACTED, key) == text  # nothing around the key is touched


def test_aws_secret_access_key_values_are_blanked_by_their_label() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    for text in (
        f"aws_secret_access_key = {secret}",
        f'"AWS_SECRET_ACCESS_KEY": "{secret}"',
        f"SecretAccessKey: {secret}",
    ):
        out = redact_formats(text)
        assert secret not in out and REDACTED in out, out


def test_a_pem_private_key_block_is_blanked_whole_even_when_escaped_or_cut() -> None:
    out = redact_formats(f"key:\n{PEM}\ndone")
    assert out == f"key:\n{REDACTED}\ndone"
    escaped = json.dumps(PEM)  # one line with \n escapes, as in a span's JSON
    assert all(line not in redact_formats(escaped) for line in PEM_BODY)
    cut = PEM[:80]  # a long value cut before its END line
    assert PEM_BODY[0][:30] not in redact_formats(cut)


def test_a_url_keeps_scheme_user_and_host_and_loses_its_password() -> None:
    assert redact_formats("db at postgresql://app:pw-x-9@db.internal:5432/x ok") == (
        f"db at postgresql://app:{REDACTED}@db.internal:5432/x ok"
    )
    assert redact_formats("redis://:s3cr3t@cache:6379/0") == f"redis://:{REDACTED}@cache:6379/0"
    assert redact_formats("https://user:p%40ss@example.com/") == f"https://user:{REDACTED}@example.com/"
    # no password, a port, an @ in the path: left alone
    for text in ("https://example.com:8080/a@b", "http://127.0.0.1:8765/v1", "mailto:a@b.c", "ssh://git@github.com/x"):
        assert redact_formats(text) == text


def test_bearer_tokens_and_password_pairs_are_blanked_but_code_is_not() -> None:
    assert redact_formats("Authorization: Bearer abcDEF1234567890xyz") == f"Authorization: Bearer {REDACTED}"
    assert redact_formats('password = "letmein1"') == f'password = "{REDACTED}"'
    assert redact_formats("DB_PASSWORD=hunter22 next") == f"DB_PASSWORD={REDACTED} next"
    for code in ("api_key=api_key,", "password=get_password()", "token = next_token", "secret: str"):
        assert redact_formats(code) == code


def test_ordinary_text_is_left_alone() -> None:
    redactor = Redactor(environ={"PWD": "/work/main", "HOME": "/root", "TOKENIZERS_PARALLELISM": "false"})
    for text in (
        "prompt_tokens: 1234, completion_tokens: 56",
        "risk-management-framework-for-everyone-in-2025",
        f"Bearer {PLACEHOLDER_KEY}",
        "/work/main/tests and /root",
        "Thought: recall first.\n<code>\nprint(recall_memory(query='energy', limit=2))\n</code>",
        "ghost_writer gh_pages AKIA AIza eyJ",
        "false true none",
    ):
        assert redactor.redact(text) == text


# -- unit: the environment's secret values -------------------------------------------------------------
def test_names_that_look_secret() -> None:
    secret = [
        "OPENAI_API_KEY",
        "DB_PASSWD",
        "PGPASSWORD",
        "GITHUB_PAT",
        "MY_SERVICE_TOKEN",
        "HF_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "DATABASE_URL",
        "SENTRY_DSN",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "BASIC_AUTH",
        "SSH_PRIVATE",
        "MYSQL_PWD",
        "SMTP_PASS",
        "SESSION_JWT",
        "DEPLOY_PRIVATE_KEY",
    ]
    plain = ["PATH", "PWD", "OLDPWD", "HOME", "TOKENIZERS_PARALLELISM", "SSH_AUTH_SOCK", "KEYBOARD", "HF_TOKEN_PATH"]
    assert [n for n in secret if not is_secret_name(n)] == []
    assert [n for n in plain if is_secret_name(n)] == []


def test_secret_values_are_blanked_exact_reversed_and_spelt_out() -> None:
    env = {
        "DB_PASSWD": "hunter2x",
        "MY_SERVICE_TOKEN": "tok-canary-31415",
        "OPENAI_API_KEY": "sk-test-abc",  # too plain for its format: found by its name
        "SHORT_TOKEN": "x",
        "FEATURE_AUTH": "true",
        "APP_URL": "https://svc:url-pass-7@api.example.com/v1",  # not secret by name; its password is
    }
    r = Redactor(environ=env)
    key = "sk-test-abc"
    cases = {
        f"key={key};": f"key={REDACTED};",
        "pw: hunter2x.": f"pw: {REDACTED}.",
        key[::-1]: REDACTED,
        " ".join(key): REDACTED,
        "-".join(key): REDACTED,
        str(list(key)): f"['{REDACTED}']",
        json.dumps(list("tok-canary-31415")): f'["{REDACTED}"]',
        " ".join("tok-canary-31415"[::-1]): REDACTED,
        "the url-pass-7 leaked": f"the {REDACTED} leaked",
        "x true 1": "x true 1",
    }
    for text, expected in cases.items():
        assert r.redact(text) == expected, text
    assert "hunter2x" not in r.redact("xhunter2xy")  # 8+ characters: blanked even inside a word


def test_patterns_follow_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    r = Redactor()
    monkeypatch.setenv("COGSCOPE_TEST_PASSWORD", "later-set-pw-42")
    assert r.redact("pw later-set-pw-42") == f"pw {REDACTED}"
    monkeypatch.setenv("COGSCOPE_TEST_PASSWORD", "changed-pw-43")
    assert r.redact("later-set-pw-42 changed-pw-43") == f"later-set-pw-42 {REDACTED}"
    monkeypatch.delenv("COGSCOPE_TEST_PASSWORD")
    assert r.redact("changed-pw-43") == "changed-pw-43"


def test_a_multiline_secret_is_blanked_line_by_line() -> None:
    r = Redactor(environ={"DEPLOY_PRIVATE_KEY": PEM})
    for text in (repr(PEM), PEM_BODY[1], PEM_BODY[0][::-1], "\\n".join(PEM_BODY)):
        out = r.redact(text)
        assert all(line not in out and line[::-1] not in out for line in PEM_BODY), out


# -- unit: spans, surrogates, streams ------------------------------------------------------------------
def test_spans_are_redacted_and_lone_surrogates_never_lose_a_span(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWD", "hunter2x")
    exporter = InMemorySpanExporter()
    tracing = setup_tracing(endpoint="http://127.0.0.1:1/v1/traces", project_name="t", batch=False, exporter=exporter)
    try:
        with tracing.tracer().start_as_current_span("s\ud800", attributes={"a": "pw hunter2x \udc00 end"}) as span:
            span.set_attribute("keys", ["x", FORMAT_EXAMPLES["github classic"], " ".join("hunter2x")])
            span.add_event("e", {"detail": "bad \ud83d"})
        (exported,) = exporter.get_finished_spans()
    finally:
        uninstrument()
        tracing.provider.shutdown()
    assert exported.name == "s\\ud800"
    assert exported.attributes["a"] == f"pw {REDACTED} \\udc00 end"
    assert exported.attributes["keys"] == ("x", REDACTED, REDACTED)
    assert exported.events[0].attributes["detail"] == "bad \\ud83d"
    assert encode_spans([exported]).SerializeToString()  # OTLP can encode it


def test_the_redacting_stream_sees_a_line_written_in_pieces() -> None:
    inner = io.StringIO()
    stream = RedactingStream(inner, Redactor(environ={"DB_PASSWD": "hunter2x"}))
    print(*"hunter2x", file=stream)  # one write per character
    print("pw:", "hunter", end="", file=stream)
    print("2x", file=stream)
    stream.write("no newline hunter2x")
    stream.flush()
    assert inner.getvalue() == f"{REDACTED}\npw: {REDACTED}\nno newline {REDACTED}"


def test_what_the_page_and_show_print_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    from smolagents import ActionStep
    from smolagents.monitoring import Timing

    from cogscope.telemetry.steps import StepView, ToolCall
    from cogscope.ui.render import step_messages, step_text, truncate

    monkeypatch.setenv("DB_PASSWD", "hunter2x")
    key = FORMAT_EXAMPLES["openai"]
    cut = truncate("x" * 19 + " " + key, 30)  # the limit falls inside the key: redacted before cutting
    assert cut.startswith("x" * 19 + " [REDACTED]") and key[:8] not in cut
    step = ActionStep(step_number=1, timing=Timing(start_time=0.0, end_time=1.0), observations_images=None)
    step.model_output = f"Thought: the key is {key}"
    step.observations = "pw " + " ".join("hunter2x")
    shown = json.dumps(list(step_messages(step)))
    assert key not in shown and "h u n t" not in shown and REDACTED in shown
    view = StepView(
        number=1, agent="a", local_number=1, depth=0, span_id="s", status="error", duration_s=1.0,
        input_messages=[{"role": "user", "content": f"use {key}"}], model_output="hunter2x"[::-1],
        tool_calls=[ToolCall("t", {"password": "hunter2x"}, "hunter2x", None)], error=f"failed with {key}",
    )  # fmt: skip
    for full in (False, True):
        text = step_text(view, full=full)
        assert key not in text and "x2retnuh" not in text and "hunter2x" not in text and "[REDACTED]" in text


# -- unit: the model ------------------------------------------------------------------------------------
def test_the_model_sends_no_secret_and_returns_clean_text(llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("DB_PASSWD", "hunter2x")
    llm.enqueue("an answer with a lone surrogate \ud800 in it")
    model = build_model("openai/scripted", llm.api_base, None, timeout=30)  # type: ignore[arg-type]
    messages = [
        ChatMessage(role="system", content=[{"type": "text", "text": "You are careful."}]),
        ChatMessage(role="user", content=[{"type": "text", "text": f"env: {SECRET} {' '.join('hunter2x')} \udc00"}]),
    ]
    answer = model.generate(messages)
    assert answer.content == "an answer with a lone surrogate \\ud800 in it"
    body = json.dumps(llm.requests[-1])
    assert SECRET not in body and "h u n t e r" not in body and REDACTED in body and "\\\\udc00" in body
    assert messages[1].content[0]["text"].startswith(f"env: {SECRET}")  # the agent's own memory is untouched


def test_a_typed_api_base_gets_the_placeholder_key_not_the_operators(
    llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    llm.enqueue("one")
    llm.enqueue("two")
    build_model("openai/scripted", llm.api_base, None).generate([ChatMessage(role="user", content="hi")])  # type: ignore[arg-type]
    assert llm.headers[-1]["authorization"] == f"Bearer {PLACEHOLDER_KEY}"
    # the operator's own base (send_key=True) does get the key: the test above would see it
    build_model("openai/scripted", llm.api_base, None, send_key=True).generate(  # type: ignore[arg-type]
        [ChatMessage(role="user", content="hi")]
    )
    assert llm.headers[-1]["authorization"] == f"Bearer {SECRET}"


def test_providers_that_sign_with_environment_credentials_refuse_a_typed_base() -> None:
    with pytest.raises(ModelError, match="credentials from the environment"):
        build_model("bedrock/anthropic.claude-3", "http://127.0.0.1:9/v1", None)  # type: ignore[arg-type]


def test_rate_limit_retries_stay_within_twice_the_timeout() -> None:
    calls: list[float] = []

    def rate_limited(**kwargs: object) -> None:
        calls.append(float(kwargs["timeout"]))  # type: ignore[arg-type]
        raise RuntimeError("Error code: 429 - rate limit reached")

    start = time.monotonic()
    with pytest.raises(RuntimeError, match="429"):
        BoundedRetrying(timeout=1.0)(rate_limited)
    assert time.monotonic() - start < 2.5 and 1 <= len(calls) <= 3 and all(t <= 1.0 for t in calls)

    def broken(**kwargs: object) -> None:
        calls.append(0)
        raise RuntimeError("bad request")

    calls.clear()
    with pytest.raises(RuntimeError, match="bad request"):
        BoundedRetrying(timeout=60.0)(broken)
    assert len(calls) == 1  # only rate limits are retried


# -- end to end --------------------------------------------------------------------------------------------
def test_no_canary_leaves_a_real_cycle_through_the_cli(canaries, agent_file, cogscope, llm, read_trace) -> None:  # type: ignore[no-untyped-def]
    llm.enqueue(CALL_TOOL)
    llm.enqueue(FINISH)
    result = cogscope(
        "run", "--agent", agent_file, "--task", "Look at the environment.", "--model", "openai/scripted",
        "--api-base", llm.api_base, process=True,  # everything the process writes, whoever writes it
    )  # fmt: skip
    assert result.code == 0, result.out + result.err
    assert "DB_PASSWD" in result.out and REDACTED in result.out  # the tool did print the environment
    assert_no_canary(result.out, "the CLI's stdout")
    assert_no_canary(result.err, "the CLI's stderr")

    assert len(llm.requests) == 2
    second = json.dumps(llm.requests[1], ensure_ascii=False)
    assert "DB_PASSWD" in second  # the observation reached the model
    assert_no_canary(second, "the prompt sent to the LLM")
    assert_no_canary(json.dumps(llm.requests, ensure_ascii=False), "the LLM requests")

    spans = read_trace(result.trace_id, min_spans=5)
    everything = spans.to_json(date_format="iso", force_ascii=False, default_handler=str)
    assert "DB_PASSWD" in everything and REDACTED in everything
    assert_no_canary(everything, "the spans in Phoenix")


def test_a_lone_surrogate_in_a_tool_output_loses_no_span(agent_file, cogscope, llm, read_trace) -> None:  # type: ignore[no-untyped-def]
    llm.enqueue(CALL_TOOL)
    llm.enqueue(FINISH)
    result = cogscope(
        "run", "--agent", agent_file, "--task", "Look at the environment.", "--model", "openai/scripted",
        "--api-base", llm.api_base, ENV_AGENT_SURROGATE="1", timeout=60,
    )  # fmt: skip
    assert result.code == 0, result.out + result.err
    assert "a lone surrogate: \\ud800 (end)" in result.out
    assert "lone surrogate: \\\\ud800" in json.dumps(llm.requests[1], ensure_ascii=False)
    spans = read_trace(result.trace_id, min_spans=7)  # root, run, 2 steps, 2 LLM calls, the tool
    tool = spans[(spans["span_kind"] == "TOOL") & (spans["name"] != "FinalAnswerTool")]
    assert not tool.empty and "\\ud800 (end)" in str(tool.iloc[0]["attributes.output.value"])


def test_no_canary_reaches_the_page(canaries, agent_file, app, page, llm) -> None:  # type: ignore[no-untyped-def]
    llm.enqueue(CALL_TOOL)
    llm.enqueue(FINISH)
    page.goto(app.link)
    agent = page.locator("#run-agent input")
    agent.fill(agent_file)
    agent.press("Enter")
    page.get_by_label("Task").fill("Look at the environment.")
    page.locator("#run-button").click()
    chat = page.locator("#run-chat")
    chat.get_by_text("Final answer:").wait_for(timeout=90_000)
    page.locator("#run-totals").get_by_text("Open this trace in Phoenix").wait_for()
    text = chat.inner_text()
    assert "DB_PASSWD" in text and REDACTED in text  # the observation is on the page, blanked
    assert_no_canary(page.inner_text("body"), "the page's text")
    assert_no_canary(page.content(), "the page's HTML")
    assert_no_canary(json.dumps(llm.requests, ensure_ascii=False), "the LLM requests of the app")


def test_an_api_base_typed_in_the_browser_gets_no_provider_key(app, llm) -> None:  # type: ignore[no-untyped-def]
    from gradio_client import Client

    typed = ScriptedLLM().start()  # another server: a base the operator never named
    try:
        typed.enqueue('Thought: done.\n<code>\nfinal_answer("ok")\n</code>')
        client = Client(app, verbose=False, headers=app.headers)
        chat, status, totals, _ = client.predict(
            "heartbeat", "openai/scripted", "", "", "", typed.api_base, "", "", "Decide.", api_name="/run_cycle"
        )
        assert typed.requests, f"the typed API base was not called: {status}"
        auth = typed.headers[0].get("authorization", "")
        assert SECRET not in auth and SECRET not in json.dumps(typed.headers)
        assert auth == f"Bearer {PLACEHOLDER_KEY}"
    finally:
        typed.stop()


def test_a_hung_llm_ends_the_cycle_with_a_timeout_error(cogscope, llm) -> None:  # type: ignore[no-untyped-def]
    # the reply is held until the test lets it go: the cycle must end on its own 2 s timeout while it still hangs
    llm.enqueue('Thought: done.\n<code>\nfinal_answer("late")\n</code>', held=True)
    result = cogscope(
        "run", "--agent", "heartbeat", "--task", "Decide.", "--model", "openai/scripted", "--api-base", llm.api_base,
        COGSCOPE_LLM_TIMEOUT="2", process=True,  # a hang must not hang the test
    )  # fmt: skip
    assert result.code == 1, result.out + result.err
    assert "Status:   error" in result.out
    assert "LLM timeout of 2 s" in result.out and "COGSCOPE_LLM_TIMEOUT" in result.out
    assert len(llm.requests) == 1  # no hidden retry of the hung call
    llm.release()  # only now: the cycle above had ended without its reply


# -- where a model id or an API base may make the server go ------------------------------------------
def test_a_remote_user_may_send_model_requests_only_to_api_bases_the_operator_allowed(env, llm, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gradio_client import Client

    auth = tmp_path / "users.txt"
    auth.write_text("alice:correct-horse-battery\n")
    auth.chmod(0o600)
    allowed, target = ScriptedLLM().start(), Listener()
    try:
        args = ("--host", "0.0.0.0", "--auth-file", str(auth), "--allow-api-base", allowed.api_base)
        with running_app(env, llm, *args) as url:
            client = Client(url, auth=("alice", "correct-horse-battery"), verbose=False)

            def run(api_base: str) -> str:
                *_, status, _totals, _state = client.predict(
                    "heartbeat", "openai/scripted", "", "", "", api_base, "", "", "Decide.", api_name="/run_cycle"
                )
                return str(status)

            port = target.url.split(":")[2].split("/")[0]
            for typed in (
                target.url,
                target.url + "/",
                f"http://localhost:{port}/anything",
                f"http://127.0.0.1:{port}",
            ):
                status = run(typed)
                assert "is not one the operator allowed" in status and "--allow-api-base" in status, status
            assert (target.accepted, target.received) == (0, b"")  # not even the reachability probe
            allowed.enqueue('Thought: done.\n<code>\nfinal_answer("rested")\n</code>')
            assert "Cycle finished" in run(allowed.api_base + "/")
            assert allowed.requests and SECRET in allowed.headers[0].get("authorization", "")  # allowed: the key too
    finally:
        target.stop()
        allowed.stop()


def test_a_provider_that_signs_in_interactively_is_refused_before_litellm_looks(cogscope, tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir()
    for model in ("github_copilot/gpt-4o", "chatgpt/gpt-5", "GitHub_Copilot/x"):
        start = time.monotonic()
        result = cogscope(
            "run", "--agent", "heartbeat", "--task", "Decide.", "--model", model,
            HOME=str(home), GITHUB_COPILOT_TOKEN_DIR=None, CHATGPT_TOKEN_DIR=None,
        )  # fmt: skip
        line = result.error_line()
        assert "signs in through a browser" in line and model in line, line
        assert time.monotonic() - start < 10  # no device flow waited for
    assert list(home.rglob("*")) == []  # no token folder made, no token file read or written


def test_only_a_remote_user_is_held_to_the_allowed_api_bases() -> None:
    from cogscope.ui.errors import UsageError
    from cogscope.ui.trust import OPERATOR, Policy

    allowed = "http://10.0.0.5:8000/v1"
    remote = Policy.for_app(host="0.0.0.0", allowed_api_bases=[allowed + "/"])
    for base in (None, "", "  ", allowed, allowed + "/", f" {allowed} "):
        remote.check_api_base(base)
    for base in ("http://127.0.0.1:6379", "http://169.254.169.254/latest", "http://10.0.0.5:8000/v2", "file:///etc"):
        with pytest.raises(UsageError, match="not one the operator allowed.*--allow-api-base"):
            remote.check_api_base(base)
    for free in (OPERATOR, Policy.for_app(host="127.0.0.1"), Policy.for_app(host="0.0.0.0", allow_commands=True)):
        free.check_api_base("http://127.0.0.1:6379")  # the operator, or a remote user who may run anything anyway
