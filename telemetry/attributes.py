"""Every span attribute cogscope writes or reads, the cycle statuses, and the span-name rules: one place.

A cycle's trace nests: root AGENT `<agent>.cycle` > AGENT `<role>.run` > CHAIN `Step n` > LLM, and a managed
agent's run sits under a step of its manager. OpenInference's own keys come from its semantic conventions
(`SpanAttributes`); the `cogscope.*` keys below are cogscope's, written on the root span of each cycle
(what replay needs to rebuild the agent), on LLM spans (their role and step) and on a replay's stand-in spans.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes

# -- OpenInference keys cogscope reads ----------------------------------------------------------------------
KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
SESSION = SpanAttributes.SESSION_ID
INPUT = SpanAttributes.INPUT_VALUE
OUTPUT = SpanAttributes.OUTPUT_VALUE
MODEL_NAME = SpanAttributes.LLM_MODEL_NAME
PROMPT_TOKENS = SpanAttributes.LLM_TOKEN_COUNT_PROMPT
COMPLETION_TOKENS = SpanAttributes.LLM_TOKEN_COUNT_COMPLETION
TOOL_NAME = SpanAttributes.TOOL_NAME
AGENT_KIND, CHAIN_KIND, LLM_KIND, TOOL_KIND = (
    OpenInferenceSpanKindValues.AGENT.value,
    OpenInferenceSpanKindValues.CHAIN.value,
    OpenInferenceSpanKindValues.LLM.value,
    OpenInferenceSpanKindValues.TOOL.value,
)

# -- on the root span of a cycle -----------------------------------------------------------------------------
ATTR_AGENT = "cogscope.agent"  # registry name or import path
ATTR_OPTIONS = "cogscope.agent.options"  # JSON of the factory options
ATTR_MODEL = "cogscope.model"  # JSON: role -> model id
ATTR_CYCLE_ID = "cogscope.cycle.id"
ATTR_STATUS = "cogscope.cycle.status"  # one of STATUSES
ATTR_TOOL_S = "cogscope.cycle.tool_s"  # seconds spent in TOOL spans during the cycle
ATTR_STEPS = "cogscope.cycle.steps"  # how many `Step n` spans the cycle has (managed agents' included)
ATTR_REPLAY_OF = "cogscope.replay_of"  # on a replay or fork: the trace id it replays
ATTR_MCP = "cogscope.mcp"  # JSON list of the MCP server commands whose tools the agent had
ATTR_SIGNATURE = "cogscope.signature"  # HMAC of SIGNED (telemetry.signing)
ATTR_SEAL = "cogscope.seal"  # HMAC over what replay takes from every span of the cycle (telemetry.sealing)
ATTR_SESSION = SESSION
ATTR_USER = SpanAttributes.USER_ID  # who started the cycle on a shared cogscope (its log-in name)
ATTR_STATE = "cogscope.state"  # the id of the agent state the cycle started from (a memory store's point)
# JSON {"clock": ISO start, "seed": int, "readings": [microseconds from the start, ...]}: what the cycle read of the
# clock and random numbers (agents.cycle_inputs), given back on replay; written when the cycle ends
ATTR_INPUTS = "cogscope.inputs"

# the root attributes a replay rebuilds the agent from: the signature covers exactly these
SIGNED = (ATTR_AGENT, ATTR_OPTIONS, ATTR_MODEL, ATTR_MCP, ATTR_CYCLE_ID)
# what a listing of cycles reads from each root span, besides its ids and times
ROOT_ATTRIBUTES = (ATTR_AGENT, ATTR_MODEL, ATTR_STATUS, ATTR_REPLAY_OF, ATTR_SESSION, ATTR_USER)

# -- on LLM spans: where in the cycle the call was made (telemetry.roles.CallAnnotator) ----------------------
ATTR_ROLE = "cogscope.role"
ATTR_STEP = "cogscope.step"

# -- on compact LLM spans (telemetry.compact): the prompt starts with an earlier call's first messages ---------
INPUT_MESSAGES = SpanAttributes.LLM_INPUT_MESSAGES
LLM_TOOLS = SpanAttributes.LLM_TOOLS
ATTR_PREFIX_FROM = "cogscope.llm.prefix_from"  # span id (16 hex digits) of the earlier call of the same agent
ATTR_PREFIX_LEN = "cogscope.llm.prefix_len"  # how many of that call's first messages come before this span's own
ATTR_TOOLS_FROM = "cogscope.llm.tools_from"  # span id of the earlier call that stores the `llm.tools` this one had

# -- on a replay's stand-in span for an LLM call (telemetry.replay) ------------------------------------------
REPLAYED = "cogscope.replayed_output"
ATTR_REPLAY_CALL = "cogscope.replay.call"
ATTR_REPLAY_FORKED = "cogscope.replay.forked"

# -- cycle statuses ------------------------------------------------------------------------------------------
OK, STEP_ERRORS, MAX_STEPS, ERROR = "ok", "step_errors", "max_steps", "error"
STATUSES = (OK, STEP_ERRORS, MAX_STEPS, ERROR)
FAILED = (STEP_ERRORS, MAX_STEPS, ERROR)  # a "failed decision"

# -- span names ----------------------------------------------------------------------------------------------
NO_ROLE = "agent"  # the role of a call outside any `<role>.run` span
STEP_NAME = re.compile(r"^Step (\d+)$")


def cycle_span_name(agent: str) -> str:
    """The root span's name: `heartbeat` -> `heartbeat.cycle`, `path/to/file.py:make` -> `make.cycle`."""
    return f"{agent.rsplit(':', 1)[-1].rsplit('/', 1)[-1]}.cycle"


def role_of(kind: object, name: object) -> str | None:
    """`heartbeat.run` (an AGENT span) -> 'heartbeat'; anything else -> None."""
    name = str(name)
    return name[: -len(".run")] if kind == AGENT_KIND and name.endswith(".run") else None


def app_agent(name: object) -> str:
    """What another app's cycle ran, from its root span: `CodeAgent.run` (or `<the agent's name>.run`, as the
    OpenInference instrumentor names an agent's run) -> 'CodeAgent'."""
    name = "" if name is None or name != name else str(name)
    return name.removesuffix(".run") or "(unnamed)"


def app_task(raw: object) -> str:
    """The task of a cycle another app recorded: OpenInference records the run's arguments as JSON
    (`{"task": "What is 6*7?", "stream": false, ...}`); any other text is the task as it is."""
    if raw is None or raw != raw:
        return ""
    text = str(raw)
    if text.startswith("{"):
        try:
            arguments = json.loads(text)
        except ValueError:
            return text
        task = arguments.get("task") if isinstance(arguments, dict) else None
        if isinstance(task, str):
            return task
    return text


def step_of(kind: object, name: object) -> int | None:
    """`Step 3` (a CHAIN span) -> 3; anything else -> None."""
    match = STEP_NAME.match(str(name)) if kind == CHAIN_KIND else None
    return int(match.group(1)) if match else None


def root_attributes(
    *,
    agent: str,
    options: Mapping[str, Any],
    models: Mapping[str, str],
    cycle_id: str,
    task: str,
    session_id: str | None = None,
    replay_of: str | None = None,
    mcp: tuple[str, ...] = (),
    user: str | None = None,
    state: str | None = None,
) -> Iterator[tuple[str, Any]]:
    """The attributes a cycle's root span starts with, as (key, value) pairs; `state`: the id of the state the
    cycle starts from (None: none was kept)."""
    yield KIND, AGENT_KIND
    yield INPUT, task
    yield SpanAttributes.INPUT_MIME_TYPE, "text/plain"
    yield ATTR_AGENT, agent
    yield ATTR_OPTIONS, json.dumps(dict(options), sort_keys=True, default=str)
    yield ATTR_MODEL, json.dumps(dict(models), sort_keys=True)
    yield ATTR_CYCLE_ID, cycle_id
    if session_id:
        yield ATTR_SESSION, session_id
    if replay_of:
        yield ATTR_REPLAY_OF, replay_of
    if mcp:
        yield ATTR_MCP, json.dumps(list(mcp))
    if user:
        yield ATTR_USER, user
    if state:
        yield ATTR_STATE, state


def output_attributes(final_answer: Any) -> Iterator[tuple[str, Any]]:
    """The root span's output: the final answer, as plain text."""
    if final_answer is not None:
        yield OUTPUT, str(final_answer)
        yield SpanAttributes.OUTPUT_MIME_TYPE, "text/plain"


def replayed_attributes(call: int, output: str, *, forked: bool) -> Iterator[tuple[str, Any]]:
    """A replay's stand-in span for recorded LLM call number `call`."""
    yield KIND, CHAIN_KIND
    yield REPLAYED, True
    yield ATTR_REPLAY_CALL, call
    yield OUTPUT, output
    yield SpanAttributes.OUTPUT_MIME_TYPE, "application/json"
    if forked:
        yield ATTR_REPLAY_FORKED, True
