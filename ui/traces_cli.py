"""`cogscope traces`, `cogscope show` and `cogscope replay`: failed decisions from the terminal."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cogscope.defaults import EXIT_FAILED, EXIT_OK, LINK_WAIT_S
from cogscope.telemetry import CycleFilter, counted, cycle_records, list_cycles, trace_tables, usd

from .config import Settings
from .errors import UsageError
from .inputs import parse_options
from .render import live_step_text, step_text, totals_text

if TYPE_CHECKING:
    from cogscope.telemetry import Recording

EXIT_DIVERGED = EXIT_FAILED  # a replay that did not reproduce its recording
REPLAY_SCHEMA = 1  # of `replay --format json`: fields are added, never renamed or dropped without a new number
NOT_HERE = "(not recorded here)"
CHANGED = "(changed after recording)"
FOREIGN_NOTE = (
    "Not recorded by this cogscope installation (no valid signature): it may be forged; "
    "replay runs its agent file or MCP commands only with --trust-recorded-code."
)
CHANGED_NOTE = (
    "Changed after recording: this installation recorded the cycle, but spans were added to its trace or changed "
    "since (they no longer match its seal); replay runs it only with --trust-recorded-code."
)


def trust_marker(recorded_here: bool, changed: bool) -> str:
    """What the list adds after a cycle's agent: nothing for a cycle recorded here, else which doubt."""
    return "" if recorded_here else f" {CHANGED}" if changed else f" {NOT_HERE}"


def reading_runtime(settings: Settings, *, project_must_exist: bool = True) -> Any:
    """Phoenix and tracing as the reading commands start them; a project named with --project must exist unless
    `project_must_exist` is false (an import makes it)."""
    from .runtime import Runtime

    runtime = Runtime.start(settings)
    if settings.project_named and project_must_exist:
        try:
            runtime.check_project()
        except BaseException:
            runtime.close()
            raise
    return runtime


def traces_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit {args.limit} must be at least 1")
    runtime = reading_runtime(settings)
    try:
        cycles = list_cycles(
            runtime.client(),
            project=settings.project,
            prices=settings.prices,
            filter=CycleFilter(
                failed_only=args.failed, agent=args.agent, text=args.text, source=args.source, user=args.user
            ),
            limit=args.limit,
            signer=runtime.tracing.signer,
        )
    finally:
        runtime.close()
    if args.format == "json":
        print(json.dumps(cycle_records(cycles), indent=2, allow_nan=False))
        return EXIT_OK
    if cycles.empty:
        narrowed = args.failed or args.agent or args.text or args.source != "all" or args.user
        print("No cycles match." if narrowed else f"No cycles yet in project {settings.project!r}.")
        return EXIT_OK
    table = cycles.assign(
        time=cycles["start_time"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        agent=cycles["agent"]
        + cycles["replay_of"].map(lambda r: " (replay)" if isinstance(r, str) else "")
        + [trust_marker(h, c) for h, c in zip(cycles["recorded_here"], cycles["changed"], strict=True)],
        duration=cycles["duration_s"].map(lambda s: f"{s:.1f}s"),
        cost=cycles["cost_usd"].map(usd),
        task=cycles["task"].str.slice(0, 40),
    )[["trace_id", "time", "agent", "status", "steps", "llm_calls", "tokens", "duration", "cost", "task"]]
    print(table.to_string(index=False))
    return EXIT_OK


def state_text(recording: Recording) -> str | None:
    """What `show` says about the state the cycle started from (None: an agent whose state cogscope does not keep)."""
    from .cycle_state import keeps_state
    from .user_state import state_origin

    if recording.state:
        return f"{recording.state} ({state_origin(recording.state)})"
    if keeps_state(recording.agent):
        return "none kept (recorded before cogscope kept each cycle's state, or it could not be kept)"
    return None


def show_command(args: argparse.Namespace, settings: Settings) -> int:
    from cogscope.telemetry import (  # smolagents: only `show` and `replay` rebuild a recorded agent
        Recording,
        ReplayError,
    )

    runtime = reading_runtime(settings)
    try:
        frame = runtime.trace_frame(args.trace_id)
        trace_id = args.trace_id.strip().lower()
        url = runtime.trace_url(trace_id)
    finally:
        runtime.close()
    tables = trace_tables(frame, settings.prices)
    steps = tables.steps
    read_only = None
    try:
        recording: Recording | None = Recording.from_frame(
            frame, trace_id, signer=runtime.tracing.signer, prices=settings.prices
        )
    except ReplayError as e:
        recording, read_only = None, str(e)
    if args.step is not None and not 1 <= args.step <= len(steps):
        raise UsageError(f"--step {args.step} is outside this cycle's steps 1..{len(steps)}")
    if getattr(args, "format", "text") == "json":
        record = show_record(tables, recording, trace_id, url, read_only, step=args.step)
        print(json.dumps(record, indent=2, allow_nan=False))
        return EXIT_OK
    if read_only is not None:
        print(f"Read-only: {read_only}")
    if tables.cycle is not None:
        print(f"Cycle {tables.cycle['trace_id']}: {tables.cycle['agent']}, status {tables.cycle['status']}")
        print(f"Totals: {totals_text(tables.totals, sep=', ')}")
    if recording is not None:
        if recording.changed:
            print(CHANGED_NOTE)
        elif not recording.recorded_here:
            print(FOREIGN_NOTE)
        if recording.mcp:
            print(f"MCP commands: {'; '.join(recording.mcp)}")
        state = state_text(recording)
        if state:
            print(f"State: {state}")
        print(f"Task: {recording.task}")
    print(f"Phoenix: {url}")
    if args.step is not None:
        print(step_text(steps[args.step - 1], full=True))
        return EXIT_OK
    for view in steps:
        print(step_text(view))
    if recording is not None and recording.final_answer:
        print(f"Final answer: {recording.final_answer}")
    return EXIT_OK


SHOW_SCHEMA = 1  # `cogscope show --format json`: bumped when a field changes meaning or goes (README)


def show_record(
    tables: Any,
    recording: Recording | None,
    trace_id: str,
    url: str,
    read_only: str | None,
    *,
    step: int | None = None,
) -> dict[str, Any]:
    """The document `cogscope show TRACE --format json` prints; its fields are listed in the README."""
    import pandas as pd

    from cogscope.telemetry import step_record

    cycle = None
    if tables.cycle is not None:
        cycle = cycle_records(pd.DataFrame([tables.cycle]))[0]
        cycle.update(
            task=recording.task if recording is not None else cycle.get("task"),
            final_answer=recording.final_answer if recording is not None else None,
            recorded_here=recording.recorded_here if recording is not None else False,
            changed=recording.changed if recording is not None else False,
            state=recording.state if recording is not None else None,
            replayable=recording is not None,
            read_only_reason=read_only,
        )
    views = tables.steps if step is None else [tables.steps[step - 1]]
    return {
        "schema": SHOW_SCHEMA,
        "trace_id": trace_id,
        "phoenix_url": url,
        "cycle": cycle,
        "steps": [step_record(v) for v in views],
    }


def replay_command(args: argparse.Namespace, settings: Settings) -> int:
    if (args.output_file or args.model) and args.fork_at is None:
        raise UsageError("--output-file and --model go with --fork-at K")
    if args.fork_at is not None and not (args.output_file or args.model):
        raise UsageError(
            "--fork-at K needs --output-file F (an edited output for step K) or --model ID (live from K on)"
        )
    substitute = None
    if args.output_file:
        path = Path(args.output_file)
        try:
            substitute = path.read_text()
        except OSError as e:
            raise UsageError(f"cannot read --output-file {path}: {e.strerror}") from None
    if args.option and not args.agent:
        raise UsageError("--option goes with --agent REF (the factory for another app's cycle)")
    runtime = reading_runtime(settings)
    as_json = args.format == "json"
    try:
        # with --format json, stdout holds the report alone: what the agent prints goes to stderr
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            replay = runtime.prepare_replay(
                args.trace_id,
                stub=args.stub_tools,
                fork_at=args.fork_at,
                substitute=substitute,
                live_model=args.model,
                api_base=args.api_base,
                trust=args.trust_recorded_code,
                factory=args.agent,
                options=parse_options(args.option) if args.agent else None,
                live_state=args.live_state,
            )
            if not as_json:
                print(replay_heading(replay, args.fork_at))
            for step in replay.cycle:
                if not as_json:
                    print(live_step_text(step), flush=True)
            reproduced, divergence = replay.report()
        if as_json:
            print(json.dumps(replay_record(runtime, replay, reproduced, divergence), indent=2, ensure_ascii=False))
        else:
            print_replay_report(runtime, replay, reproduced, divergence)
        return EXIT_OK if reproduced else EXIT_DIVERGED
    finally:
        runtime.close()


def replay_heading(replay: Any, fork_at: int | None) -> str:
    kind = f"Fork at step {fork_at}" if fork_at else "Replay"
    heading = (
        f"{kind} of {replay.recording.trace_id} ({replay.recording.agent}, "
        f"{len(replay.recording.steps)} recorded steps, tools {'stubbed' if replay.stubbed else 'run for real'})"
    )
    return heading + (f"\nState:    {replay.state_note}" if replay.state_note else "")


def print_replay_report(runtime: Any, replay: Any, reproduced: bool, divergence: Any) -> None:
    """What `cogscope replay` prints once the replay has run: status, trace, model calls, the verdict."""
    result = replay.cycle.result
    print()
    print(f"Status:   {result.status}" + (f" ({result.error})" if result.error else ""))
    print(f"Trace:    {result.trace_id}  {runtime.trace_link(result.trace_id, wait=LINK_WAIT_S)[1]}")
    replayed, calls = counted(replay.model.replayed, "output"), counted(result.totals.llm_calls, "LLM call")
    print(f"Model:    {replayed} replayed, {calls}")
    if replay.fork_at:
        print(side_by_side(replay.recording, replay))
    if divergence is not None:
        print(divergence.line())
    elif replay.fork_at:
        print("Fork finished." if reproduced else "The fork did not reach a final answer.")
    else:
        print("Reproduced the recording: same prompts, code, tool calls, observations and errors at every step.")


def replay_record(runtime: Any, replay: Any, reproduced: bool, divergence: Any) -> dict[str, Any]:
    """The document `cogscope replay --format json` prints; its fields are listed in the README."""
    result = replay.cycle.result
    url, _ = runtime.trace_link(result.trace_id, wait=LINK_WAIT_S)
    return {
        "schema": REPLAY_SCHEMA,
        "trace_id": replay.recording.trace_id,
        "replay_trace_id": result.trace_id,
        "phoenix_url": url,
        "kind": "replay" if replay.fork_at is None else "fork",
        "fork_at": replay.fork_at,
        "tools": "stubbed" if replay.stubbed else "run",
        "state": replay.recording.state,  # the state the cycle started from (None: recorded before states were kept)
        "state_note": replay.state_note,  # what the re-run ran on: a scratch copy of that state, or the live store
        "status": result.status,
        "error": result.error,
        "final_answer": result.final_answer,
        "reproduced": reproduced,
        "replayed_outputs": replay.model.replayed,
        "llm_calls": result.totals.llm_calls,
        "divergence": None if divergence is None else divergence.record(),
    }


def side_by_side(recording: Recording, replay: Any) -> str:
    result = replay.cycle.result
    rec, fork = recording.totals, result.totals
    rows = [
        ("", "original", "fork"),
        ("steps", str(len(recording.steps)), str(fork.steps)),
        ("status", str(recording.status), result.status),
        ("final answer", str(recording.final_answer)[:60], str(result.final_answer)[:60]),
        ("LLM calls", str(rec.llm_calls) if rec else "?", str(fork.llm_calls)),
        ("tokens", f"{rec.total_tokens:,}" if rec else "?", f"{fork.total_tokens:,}"),
        ("cost", usd(rec.cost_usd) if rec else "?", usd(fork.cost_usd)),
    ]
    width = max(len(r[1]) for r in rows) + 2
    return "\n".join(f"  {a:<14}{b:<{width}}{c}" for a, b, c in rows)
