"""A real cycle with the bundled offline model (SmolLM2-135M via llama-cpp-python's server).

The model is tiny and may well fail the task; a failed cycle is still a cycle,
and the trace must record every step of it.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.e2e  # the bundled model's server


def test_real_cycle_with_the_bundled_model_is_fully_traced(cogscope, read_trace):
    result = cogscope(
        "run",
        "--agent",
        "heartbeat",
        "--task",
        "Recall what you know about energy, then give your final answer.",
        "--model",
        "local",
        "--option",
        # each step of the tiny model on 2 cores is CPU-bound; one step (and the final answer smolagents asks for
        # when the steps run out) proves the path as well as eight
        "max_steps=1",
        timeout=900,
        process=True,
        # the suite's other workers share the two cores with llama.cpp: a call that takes 60 s alone can pass the
        # default 120 s; this test proves the path, not the speed
        COGSCOPE_LLM_TIMEOUT="360",
        # llama.cpp's OpenMP threads spin while they wait for each other; on cores the other workers share, that
        # spinning takes turns from the work (bench: a 6,400-token prompt beside two busy processes, 223 s -> 133 s)
        OMP_WAIT_POLICY="PASSIVE",
    )
    assert result.code in (0, 1), result.out + result.err
    totals = re.search(r"Totals:\s+(\d+) steps?, (\d+) LLM calls?, ([\d,]+) tokens", result.out)
    assert totals, result.out
    steps, llm_calls = int(totals.group(1)), int(totals.group(2))
    status = re.search(r"Status:\s+(\w+)", result.out).group(1)
    assert steps >= 1 and llm_calls >= steps

    spans = read_trace(result.trace_id, min_spans=1 + 1 + steps + llm_calls)
    root = spans[spans["parent_id"].isna()].iloc[0]
    assert root["attributes.cogscope.agent"] == "heartbeat"
    assert root["attributes.cogscope.model"] == '{"default": "local"}'
    assert root["attributes.cogscope.cycle.status"] == status
    assert len(spans[spans["name"].str.fullmatch(r"Step \d+")]) == steps
    llm = spans[spans["span_kind"] == "LLM"]
    assert len(llm) == llm_calls
    # a call that timed out on a busy machine has no answer, so no model name or tokens: check the answered ones
    answered = llm[llm["status_code"] == "OK"]
    assert len(answered) >= 1, result.out
    assert set(answered["attributes.llm.model_name"]) == {"openai/smollm2-135m"}
    assert (answered["attributes.llm.token_count.prompt"].astype(int) > 0).all()
    # the agent's steps stream, and the bundled server's streams carry the usage llama-cpp-python leaves out
    # (ui/local_llm_server); a tool that asks the model itself (reflect's judge) does not stream
    streamed = answered[answered["name"].str.endswith(".generate_stream")]
    assert len(streamed) >= 1, answered["name"].tolist()
    assert (streamed["attributes.llm.token_count.completion"].astype(int) > 0).all()
    assert "  model> " in result.out  # the model's words, shown as they came
    for n in range(1, steps + 1):
        assert f"── Step {n} ──" in result.out


def test_a_second_cycle_shares_the_busy_model_server_instead_of_killing_it(tmp_path):
    """llama.cpp answers one request at a time: while it writes a reply it may not answer a probe."""
    import threading
    import time

    import httpx

    from cogscope.telemetry import free_port
    from cogscope.ui.local_llm import ALIAS, LocalModelServer

    server = LocalModelServer(port=free_port(), log_path=tmp_path / "local-model.log")
    try:
        api_base = server.ensure(timeout=120)
        pid = server.process.pid
        body = {
            "model": ALIAS,
            "max_tokens": 200,
            "stream": True,
            "messages": [{"role": "user", "content": "Tell a long story."}],
        }
        statuses: list[int] = []
        chunks: list[tuple[float, str]] = []  # when each streamed line came, and the line
        writing = threading.Event()

        def first_cycle() -> None:
            with httpx.stream("POST", f"{api_base}/chat/completions", json=body, timeout=300) as reply:
                statuses.append(reply.status_code)
                for line in reply.iter_lines():
                    if line.startswith("data: "):
                        chunks.append((time.monotonic(), line))
                        writing.set()
            writing.set()

        busy = threading.Thread(target=first_cycle)
        busy.start()
        assert writing.wait(timeout=300) and chunks, f"the first reply never started: {statuses}"
        second_started = time.monotonic()
        assert server.ensure() == api_base  # a second cycle starts while the first one's reply is written
        busy.join(timeout=300)
        assert statuses == [200] and chunks[-1][1] == "data: [DONE]", (statuses, chunks[-3:])
        # the busy case really happened: the first reply had begun before the second cycle's check and ended after
        assert chunks[0][0] < second_started < chunks[-1][0], "the first reply was not being written during the check"
        assert server.process.pid == pid and server.process.poll() is None
    finally:
        server.stop()
