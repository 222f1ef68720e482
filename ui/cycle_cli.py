"""`cogscope run`, `heartbeat`, `seed-memory` and `mcp-serve`: cycles headless, their steps printed as they come."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from cogscope import agents
from cogscope.agents import check_options
from cogscope.defaults import EXIT_FAILED, EXIT_OK, LINK_WAIT_S

from .config import Settings
from .errors import UsageError
from .inputs import parse_models, parse_options
from .interrupts import STOPPING, on_interrupt, set_later


# -- cogscope run / heartbeat ------------------------------------------------------------
def _cycle_inputs(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Everything `Runtime.prepare_cycle` needs, checked before Phoenix or a model server starts."""
    from .models import check_model

    spec = agents.get(args.agent)
    models = parse_models(args.model)
    models.setdefault("default", settings.model)
    api_base = args.api_base or (None if args.model else settings.api_base)
    unknown = sorted(set(models) - set(spec.roles))
    if unknown:
        raise UsageError(f"agent {spec.name!r} has no role {unknown[0]!r}; its roles: {', '.join(spec.roles)}")
    options = parse_options(args.option)
    check_options(spec, options)
    for model_id in models.values():  # last: LiteLLM, which knows the model ids, takes seconds to load
        check_model(model_id, api_base)
    return {"agent": args.agent, "models": models, "api_base": api_base, "options": options, "mcp": list(args.mcp)}


def _start_runtime(settings: Settings) -> Any:
    from .runtime import Runtime

    runtime = Runtime.start(settings)
    if runtime.phoenix.started_here:
        runtime.phoenix.detach()  # keep it running after this command, so the trace link works
        print(f"Started Phoenix at {runtime.phoenix.url} (log {runtime.phoenix.log_path}); it keeps running.")
    return runtime


def _report_landed(runtime: Any, pending: list[str]) -> None:
    """Give the link of each trace that was "pending upload" and has landed since; keep the others."""
    for trace_id in list(pending):
        url, _ = runtime.trace_link(trace_id)
        if url is not None:
            pending.remove(trace_id)
            print(f"Trace:    {trace_id}  uploaded: {url}", flush=True)


def _close(runtime: Any, pending: list[str]) -> None:
    """End the command: wait (bounded) for the spool, then give the links that landed."""
    if not pending:
        runtime.close()
        return
    print(f"Waiting up to {runtime.settings.drain_timeout:g} s for spooled spans to reach Phoenix ...", flush=True)
    runtime.tracing.drain(runtime.settings.drain_timeout)
    _report_landed(runtime, pending)
    runtime.close(drain_timeout=0.0)


LIVE_PREFIX = "  model> "  # the model's words as they come, before its step is printed whole


def _print_live(words: Any, *, complete: bool = False) -> None:
    text = words.new_text(complete=complete)
    if not text:
        return
    at_line_start = len(words.printed) == len(text) or words.printed[: -len(text)].endswith("\n")
    head, newline = (text[:-1], "\n") if text.endswith("\n") else (text, "")  # the next words get the prefix
    body = head.replace("\n", "\n" + LIVE_PREFIX) + newline
    print((LIVE_PREFIX if at_line_start else "") + body, end="", flush=True)


def _print_cycle(runtime: Any, cycle: Any) -> Any:
    from smolagents import ChatMessageStreamDelta

    from .render import LiveWords, live_step_text, totals_text

    words = LiveWords()
    for item in cycle:
        if isinstance(item, ChatMessageStreamDelta):
            words.add(item)
            _print_live(words)
            continue
        if words.started:  # the step is done: the rest of its words, then the step itself
            _print_live(words, complete=True)
            print("" if words.printed.endswith("\n") else "\n", end="")
            words = LiveWords()
        print(live_step_text(item), flush=True)
    result = cycle.result
    print()
    print(f"Status:   {result.status}" + (f" ({result.error})" if result.error else ""))
    url, link = runtime.trace_link(result.trace_id, wait=LINK_WAIT_S) if result.trace_id else (None, "no trace")
    print(f"Trace:    {result.trace_id}  {link}")
    if result.state:
        from .user_state import state_origin

        print(f"State:    {result.state} ({state_origin(result.state)})")
    print(f"Totals:   {totals_text(result.totals, sep=', ')}", flush=True)
    return result


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    if not args.task.strip():
        raise UsageError("the task is empty; give one with --task")
    inputs = _cycle_inputs(args, settings)  # bad input fails before Phoenix starts
    signal.signal(signal.SIGINT, on_interrupt)
    runtime = _start_runtime(settings)
    pending: list[str] = []  # traces said to be "pending upload"
    try:
        cycle = runtime.prepare_cycle(task=args.task, session_id=args.session, **inputs)
        models = ", ".join(f"{role}={m}" if role != "default" else m for role, m in inputs["models"].items())
        print(f"Running {args.agent} with {models}: {args.task.strip()}", flush=True)
        result = _print_cycle(runtime, cycle)
        if result.trace_id and runtime.tracing.pending(result.trace_id):
            pending.append(result.trace_id)
        return EXIT_FAILED if result.failed else EXIT_OK
    finally:
        STOPPING.set()
        _close(runtime, pending)


def heartbeat_command(args: argparse.Namespace, settings: Settings) -> int:
    import uuid

    from .heartbeat_loop import heartbeat_cycles

    task = (args.task or "").strip() or agents.DEFAULT_TASK
    inputs = _cycle_inputs(args, settings)
    session = args.session or f"heartbeat-{uuid.uuid4().hex[:8]}"
    stop = threading.Event()

    def stop_after_this_cycle(*_: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        set_later(stop)
        print("\nStopping after this cycle (Ctrl-C again to abort) ...", flush=True)

    from .cycle_state import keeps_state, prune_line
    from .user_state import prune_line as prune_agent_states

    pruned = prune_line(inputs["options"].get("memory"), settings.state_days) if keeps_state(args.agent) else None
    for line in (pruned, prune_agent_states(settings.state_days)):
        if line:
            print(line, flush=True)
    runtime = _start_runtime(settings)
    previous = signal.signal(signal.SIGINT, stop_after_this_cycle)
    failed = 0
    pending: list[str] = []  # traces said to be "pending upload"
    try:
        print(f"Heartbeat: {args.cycles} cycles every {args.interval:g} s, session {session}", flush=True)
        for number, cycle in heartbeat_cycles(
            runtime, cycles=args.cycles, interval=args.interval, stop=stop, task=task, session_id=session, **inputs
        ):
            _report_landed(runtime, pending)
            print(f"\n=== Cycle {number}/{args.cycles} ===", flush=True)
            result = _print_cycle(runtime, cycle)
            if result.trace_id and runtime.tracing.pending(result.trace_id):
                pending.append(result.trace_id)
            failed += result.failed
            store = agents.open_store(inputs["options"].get("memory"))
            print(agents.state_markdown(store), flush=True)
        return EXIT_FAILED if failed else EXIT_OK
    finally:
        signal.signal(signal.SIGINT, previous)
        _close(runtime, pending)


def seed_command(args: argparse.Namespace, settings: Settings) -> int:
    store = agents.open_store(args.memory)  # opening seeds an empty store
    print(
        f"Memory store {store.path}: {store.count()} memories, {len(store.goals())} active goals, "
        f"mental models: {', '.join(store.models()) or 'none'}."
    )
    return EXIT_OK


def mcp_serve_command(args: argparse.Namespace, settings: Settings) -> int:
    agents.serve_mcp(args.memory)
    return EXIT_OK
