"""Each reference agent completes a scripted cycle through `cogscope run`, and its trace in Phoenix
has the right nesting; factories from outside the repo; MCP both ways; the heartbeat loop."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from cogscope.agents import MemoryStore

from .conftest import cogscope_command

FIXTURES = Path(__file__).parent / "fixtures"


def _store(env: dict[str, str]) -> MemoryStore:
    return MemoryStore(Path(env["COGSCOPE_DATA_DIR"]) / "memory.sqlite")


def _root(spans):  # type: ignore[no-untyped-def]
    return spans[spans["parent_id"].isna()].iloc[0]


def _descendants(spans, span_id: str):  # type: ignore[no-untyped-def]
    found, frontier = [], [span_id]
    while frontier:
        children = spans[spans["parent_id"].isin(frontier)]
        found.append(children)
        frontier = children["context.span_id"].tolist()
    import pandas as pd

    return pd.concat(found) if found else spans.iloc[0:0]


def test_heartbeat_spends_energy_and_logs_its_actions(cogscope, llm, env, read_trace):
    llm.enqueue('Thought: look.\n<code>\nprint(observe())\nprint(recall_memory(query="energy"))\n</code>')
    llm.enqueue(
        'Thought: keep it.\n<code>\nremember(text="Walked at noon; energy up", kind="episodic")\n'
        'final_answer("walk at noon")\n</code>'
    )
    result = cogscope(
        "run", "--agent", "heartbeat", "--task", "What now?", "--model", "openai/scripted", "--api-base", llm.api_base
    )
    assert result.code == 0, result.out + result.err
    assert "Energy: 99.5/100" in result.out  # observe() paid its 0.5 first, then looked
    store = _store(env)
    # 2 steps x 2 + observe 0.5 + recall 1 + remember 2 = 7.5
    assert store.energy().current == 100 - 7.5
    actions = store.recent_actions(10)
    assert [a.action for a in reversed(actions)] == ["observe", "recall_memory", "step", "remember", "step"]
    assert len({a.cycle_id for a in actions}) == 1
    assert store.recall("walked noon")[0].text == "Walked at noon; energy up"
    spans = read_trace(result.trace_id, min_spans=10)
    assert sorted(spans[spans["span_kind"] == "TOOL"]["attributes.tool.name"]) == [
        "final_answer",
        "observe",
        "recall_memory",
        "remember",
    ]


def test_energy_exhausted_is_a_clean_failed_cycle(cogscope, llm, env, read_trace):
    store = _store(env)
    store.seed_example()
    store.set_energy(current=0, regen_per_cycle=1)
    result = cogscope(
        "run", "--agent", "heartbeat", "--task", "What now?", "--model", "openai/scripted", "--api-base", llm.api_base
    )
    assert result.code == 1, result.out + result.err
    assert "Traceback" not in result.out + result.err
    assert "Status:   error (EnergyExhausted: energy exhausted: 1/100 left, a step needs 3" in result.out
    assert llm.requests == []
    root = _root(read_trace(result.trace_id))
    assert root["attributes.cogscope.cycle.status"] == "error" and root["status_code"] == "ERROR"
    assert _store(env).energy().current == 1  # regenerated, nothing spent


def test_consciousness_delegates_with_one_model_per_role(cogscope, llm, env, read_trace):
    llm.enqueue(
        'Thought: ask perception.\n<code>\nseen = perception(task="Observe the state")\nprint(seen)\n</code>',
        prompt_tokens=500,
        completion_tokens=50,
    )
    llm.enqueue('{"name": "observe", "arguments": {}}', prompt_tokens=200, completion_tokens=10)
    llm.enqueue(
        '{"name": "final_answer", "arguments": {"answer": "Energy is full."}}', prompt_tokens=210, completion_tokens=12
    )
    llm.enqueue(
        'Thought: ask reasoning.\n<code>\nplan = reasoning(task="Reflect on energy")\nprint(plan)\n</code>',
        prompt_tokens=600,
        completion_tokens=40,
    )
    llm.enqueue(
        'Thought: reflect.\n<code>\nfinal_answer(reflect(topic="energy"))\n</code>',
        prompt_tokens=300,
        completion_tokens=20,
    )
    llm.enqueue(
        'Thought: decide.\n<code>\nfinal_answer("Walk, then outline the course.")\n</code>',
        prompt_tokens=700,
        completion_tokens=30,
    )

    result = cogscope(
        "run",
        "--agent",
        "consciousness",
        "--task",
        "Run one cycle",
        "--model",
        "openai/deep",
        "--model",
        "perception=openai/fast",
        "--api-base",
        llm.api_base,
    )

    assert result.code == 0, result.out + result.err
    assert [r["model"] for r in llm.requests] == ["deep", "fast", "fast", "deep", "deep", "deep"]
    spans = read_trace(result.trace_id, min_spans=20)
    root = _root(spans)
    assert json.loads(root["attributes.cogscope.model"]) == {"default": "openai/deep", "perception": "openai/fast"}
    agents_ = spans[spans["span_kind"] == "AGENT"]
    assert sorted(agents_["name"]) == ["consciousness.cycle", "consciousness.run", "perception.run", "reasoning.run"]
    manager_run = agents_[agents_["name"] == "consciousness.run"].iloc[0]
    # manager AGENT > manager step > managed AGENT > its steps
    for member, model in (("perception", "openai/fast"), ("reasoning", "openai/deep")):
        run = agents_[agents_["name"] == f"{member}.run"].iloc[0]
        step = spans[spans["context.span_id"] == run["parent_id"]].iloc[0]
        assert step["name"].startswith("Step ") and step["parent_id"] == manager_run["context.span_id"]
        inner = _descendants(spans, run["context.span_id"])
        assert set(inner[inner["span_kind"] == "LLM"]["attributes.llm.model_name"]) == {model}
    tools = spans[spans["span_kind"] == "TOOL"]
    assert {"observe", "reflect"} <= set(tools["attributes.tool.name"])
    # the step-through nests the managed agents' steps under the manager's step that called them
    from cogscope.telemetry.steps import steps_from_frame

    steps = [(v.agent, v.local_number, v.depth) for v in steps_from_frame(spans)]
    assert steps == [
        ("consciousness", 1, 0), ("perception", 1, 1), ("perception", 2, 1),
        ("consciousness", 2, 0), ("reasoning", 1, 1), ("consciousness", 3, 0),
    ]  # fmt: skip
    memories = [m.text for m in _store(env).recent(3)]
    assert any(m.startswith("Reflection on energy") for m in memories)


def test_revision_agent_restructures_the_mental_model(cogscope, llm, env, read_trace):
    llm.enqueue(
        'Thought: measure.\n<code>\nprint(get_basins(model="user_routine"))\n'
        'e = semantic_error(prediction="The user will skip the workout", observation="The user went running")\n'
        "print(e)\n</code>"
    )
    llm.enqueue(
        'Thought: revise.\n<code>\nprint(revise_model(model="user_routine", error=0.8, '
        'failed_basins=["evening_fatigue"]))\nfinal_answer("revised evening_fatigue")\n</code>'
    )
    store = _store(env)
    store.seed_example()
    old = {b.name: b for b in store.basins("user_routine")}["evening_fatigue"]
    store.close()
    result = cogscope(
        "run",
        "--agent",
        "revision",
        "--task",
        "Revise the routine model",
        "--model",
        "openai/scripted",
        "--api-base",
        llm.api_base,
        "--option",
        "prediction=The user will skip it",
    )
    assert result.code == 0, result.out + result.err
    assert "0.800" in result.out  # the lexical error of that pair
    new = {b.name: b for b in _store(env).basins("user_routine")}["evening_fatigue"]
    assert abs(new.strength - old.strength * (1 - 0.5 * 0.8)) < 1e-9
    assert abs(new.threshold - min(1.0, old.threshold + 0.08)) < 1e-9
    root = _root(read_trace(result.trace_id))
    assert json.loads(root["attributes.cogscope.agent.options"]) == {"prediction": "The user will skip it"}


def test_factory_from_a_file_outside_the_repo(cogscope, llm, tmp_path, read_trace):
    path = tmp_path / "elsewhere" / "my_agent.py"
    path.parent.mkdir()
    shutil.copy(FIXTURES / "outside_agent.py", path)
    llm.enqueue('Thought: shout.\n<code>\nfinal_answer(shout(text="hi"))\n</code>')
    result = cogscope(
        "run",
        "--agent",
        f"{path}:make",
        "--task",
        "Greet",
        "--model",
        "openai/scripted",
        "--api-base",
        llm.api_base,
        "--option",
        "greeting=hey",
        "--option",
        "max_steps=2",
    )
    assert result.code == 0, result.out + result.err
    assert "Final answer: HI!" in result.out
    root = _root(read_trace(result.trace_id, min_spans=4))
    assert root["attributes.cogscope.agent"] == f"{path}:make"
    assert json.loads(root["attributes.cogscope.agent.options"]) == {"greeting": "hey", "max_steps": 2}
    assert root["name"] == "make.cycle"


def _error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.code == 2, result.out + result.err
    assert "Traceback" not in result.err
    (line,) = [line for line in result.err.splitlines() if line.strip()]
    return line


def test_bad_factories_are_one_clear_line(cogscope, llm, tmp_path):
    path = tmp_path / "agent.py"
    shutil.copy(FIXTURES / "outside_agent.py", path)
    common = ["--task", "x", "--model", "openai/scripted", "--api-base", llm.api_base]
    cases = {
        f"{tmp_path}/missing.py:make": f"agent file {tmp_path}/missing.py does not exist",
        f"{path}:broken": f"agent factory '{path}:broken' raised RuntimeError: the database is down",
        f"{path}:not_an_agent": "returned str, not a smolagents agent",
        f"{path}:nothing_here": f"{path} has no 'nothing_here'",
        "no_such_package_xyz.agents:make": "cannot import 'no_such_package_xyz.agents'",
    }
    for reference, expected in cases.items():
        line = _error_line(cogscope("run", "--agent", reference, *common))
        assert expected in line, line
    line = _error_line(cogscope("run", "--agent", "consciousness", *common, "--model", "vision=openai/x"))
    assert (
        "agent 'consciousness' has no role 'vision'; its roles: default, perception, reasoning, metacognition" in line
    )
    line = _error_line(cogscope("run", "--agent", "heartbeat", *common, "--option", "colour=red"))
    assert "agent 'heartbeat' has no option 'colour'; its options: memory, max_steps" in line
    line = _error_line(cogscope("run", "--agent", "heartbeat", *common, "--option", "oops"))
    assert "option 'oops' is not KEY=VALUE" in line
    assert llm.requests == []


def test_corrupt_or_unwritable_store_is_a_clear_error_and_untouched(cogscope, llm, env):
    data = Path(env["COGSCOPE_DATA_DIR"])
    data.mkdir(parents=True)
    (data / "memory.sqlite").write_bytes(b"garbage" * 500)
    line = _error_line(
        cogscope("run", "--agent", "heartbeat", "--task", "x", "--model", "openai/scripted", "--api-base", llm.api_base)
    )
    assert "cannot open the memory store" in line and "left untouched" in line
    assert (data / "memory.sqlite").read_bytes() == b"garbage" * 500
    line = _error_line(
        cogscope(
            "run",
            "--agent",
            "heartbeat",
            "--task",
            "x",
            "--model",
            "openai/scripted",
            "--api-base",
            llm.api_base,
            "--option",
            "memory=/proc/cogscope/memory.sqlite",
        )
    )
    assert "memory store" in line


def test_heartbeat_uses_tools_from_cogscope_mcp_serve(cogscope, llm, tmp_path, env, read_trace):
    other = tmp_path / "shared-memory.sqlite"
    serve = " ".join([*cogscope_command(), "mcp-serve", "--memory", str(other)])
    llm.enqueue(
        'Thought: note it.\n<code>\nprint(remember(text="Shared through MCP", kind="semantic"))\n'
        'final_answer("noted")\n</code>'
    )
    result = cogscope(
        "run",
        "--agent",
        "heartbeat",
        "--task",
        "Note something",
        "--model",
        "openai/scripted",
        "--api-base",
        llm.api_base,
        "--mcp",
        serve,
    )
    assert result.code == 0, result.out + result.err
    assert MemoryStore(other).recall("shared MCP")[0].text == "Shared through MCP"  # written by the MCP server
    assert not _store(env).recall("shared MCP")  # not by the agent's own store
    spans = read_trace(result.trace_id, min_spans=6)
    remember = spans[(spans["span_kind"] == "TOOL") & (spans["attributes.tool.name"] == "remember")].iloc[0]
    assert remember["name"] == "McpTool" and "Remembered" in remember["attributes.output.value"]
    assert json.loads(_root(spans)["attributes.cogscope.mcp"]) == [serve]


def test_mcp_server_that_fails_to_start_or_dies(cogscope, llm, read_trace):
    line = _error_line(
        cogscope(
            "run",
            "--agent",
            "heartbeat",
            "--task",
            "x",
            "--model",
            "openai/scripted",
            "--api-base",
            llm.api_base,
            "--mcp",
            "no-such-mcp-command-xyz --flag",
        )
    )
    assert "MCP server 'no-such-mcp-command-xyz --flag' failed to start" in line
    dying = f"{sys.executable} {FIXTURES / 'dying_mcp_server.py'}"
    llm.enqueue('Thought: ping.\n<code>\nprint(ping(text="hi"))\n</code>')
    llm.enqueue('Thought: the server died, answer anyway.\n<code>\nfinal_answer("no ping")\n</code>')
    result = cogscope(
        "run",
        "--agent",
        "heartbeat",
        "--task",
        "Ping",
        "--model",
        "openai/scripted",
        "--api-base",
        llm.api_base,
        "--mcp",
        dying,
        timeout=300,
    )
    assert result.code == 0, result.out + result.err
    assert "Status:   step_errors" in result.out
    assert re.search(r"error: .*MCP server .*dying_mcp_server.py.* failed on ping", result.out), result.out
    read_trace(result.trace_id, min_spans=5)


def test_heartbeat_loop_is_three_traces_in_one_session(cogscope, llm, phoenix, project):
    for n in range(3):
        llm.enqueue(f'Thought: beat {n}.\n<code>\nfinal_answer("beat {n}")\n</code>')
    result = cogscope(
        "heartbeat",
        "--interval",
        "0.5",
        "--cycles",
        "3",
        "--model",
        "openai/scripted",
        "--api-base",
        llm.api_base,
        "--session",
        "loop-7",
    )
    assert result.code == 0, result.out + result.err
    traces = re.findall(r"^Trace:\s+([0-9a-f]{32})", result.out, re.MULTILINE)
    assert len(set(traces)) == 3
    assert result.out.count("**Energy**") == 3  # state after each cycle
    from cogscope.telemetry import phoenix_client, wait_for_trace

    client = phoenix_client(phoenix.url)
    for trace_id in traces:
        spans = wait_for_trace(client, project=project, trace_id=trace_id, min_spans=4)
        assert set(spans["attributes.session.id"]) == {"loop-7"}


def test_seed_memory_command(cogscope, env):
    result = cogscope("seed-memory")
    assert result.code == 0, result.err
    assert "20 memories, 4 active goals, mental models: user_routine" in result.out
    assert _store(env).count() == 20


def test_the_readme_factory_example_runs(cogscope, llm, tmp_path):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("### Your own agent") :]
    code = section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]
    path = tmp_path / "my_agent.py"
    path.write_text(code)
    llm.enqueue('Thought: shout.\n<code>\nfinal_answer(shout(text="hey"))\n</code>')
    result = cogscope(
        "run",
        "--agent",
        f"{path}:make",
        "--option",
        "greeting=hey",
        "--task",
        "Greet me",
        "--model",
        "openai/scripted",
        "--api-base",
        llm.api_base,
    )
    assert result.code == 0, result.out + result.err
    assert "Final answer: HEY!" in result.out


def test_an_installed_entry_point_is_an_agent(cogscope, llm, tmp_path, env, read_trace):
    site = tmp_path / "site"
    (site / "teamagents").mkdir(parents=True)
    shutil.copy(FIXTURES / "outside_agent.py", site / "teamagents" / "__init__.py")
    dist = site / "teamagents-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: teamagents\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[cogscope.agents]\nshouter = teamagents:make\n")
    llm.enqueue('Thought: shout.\n<code>\nfinal_answer(shout(text="team"))\n</code>')
    pythonpath = f"{site}:{env.get('PYTHONPATH', '')}"
    result = cogscope(
        "run",
        "--agent",
        "shouter",
        "--task",
        "Greet",
        "--model",
        "openai/scripted",
        "--api-base",
        llm.api_base,
        PYTHONPATH=pythonpath,
        process=True,  # a new Python finds the entry point on its PYTHONPATH
    )
    assert result.code == 0, result.out + result.err
    assert "Final answer: TEAM!" in result.out
    assert _root(read_trace(result.trace_id))["attributes.cogscope.agent"] == "shouter"
    unknown = cogscope("run", "--agent", "shoutr", "--task", "x", PYTHONPATH=pythonpath, process=True)
    assert "known agents: heartbeat, consciousness, revision, shouter" in unknown.err


def test_ctrl_c_ends_the_heartbeat_loop_after_the_current_cycle(env, llm):
    import signal
    import subprocess

    for n in range(5):
        llm.enqueue(f'Thought: beat.\n<code>\nfinal_answer("beat {n}")\n</code>', delay_s=1.0)
    proc = subprocess.Popen(
        [
            *cogscope_command(),
            "heartbeat",
            "--cycles",
            "5",
            "--interval",
            "1",
            "--model",
            "openai/scripted",
            "--api-base",
            llm.api_base,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("=== Cycle 1/5"):
            proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    out = "".join(lines)
    assert "Stopping after this cycle" in out
    assert out.count("Status:   ok") == 1 and "=== Cycle 2/5" not in out  # cycle 1 finished whole, no more began
    assert len(llm.requests) == 1
    assert proc.returncode == 0
