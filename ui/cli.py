"""The `cogscope` command: `ui` (default) starts the app, `run` runs one cycle headless."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from smolagents import ActionStep, FinalAnswerStep, PlanningStep  # noqa: E402

import agents  # noqa: E402
from telemetry import TelemetryError  # noqa: E402

from .config import Settings  # noqa: E402
from .errors import UiError, UsageError  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cogscope",
        description="Run smolagents cognitive agents, watch every step, trace them into Phoenix.",
    )
    sub = parser.add_subparsers(dest="command")
    ui = sub.add_parser("ui", help="start the app (default): Phoenix, the local model and the browser UI")
    ui.add_argument("--host", help="interface to bind (default 127.0.0.1, or $COGSCOPE_HOST)")
    ui.add_argument("--port", type=int, help="port of the app (default 7860, or $COGSCOPE_PORT)")
    run = sub.add_parser("run", help="run one cycle headless and print its steps and totals")
    run.add_argument("--agent", required=True, help=f"registry name ({', '.join(agents.names())})")
    run.add_argument("--task", required=True, help="what the agent should do")
    run.add_argument("--model", help="LiteLLM model id, or `local` (default: $COGSCOPE_MODEL or local)")
    run.add_argument("--api-base", help="OpenAI-compatible API base URL for the model")
    run.add_argument("--session", help="session id shared by related cycles (Phoenix sessions)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "run":
            return run_command(args, settings)
        return ui_command(args, settings)
    except (UiError, agents.AgentsError, TelemetryError) as e:
        print(f"cogscope: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


# -- cogscope run ----------------------------------------------------------------------
def _duration(step: Any) -> str:
    duration = getattr(getattr(step, "timing", None), "duration", None)
    return f"{duration:.2f} s" if duration else "-"


def _tokens(step: Any) -> str:
    usage = getattr(step, "token_usage", None)
    return f"{usage.input_tokens:,} in / {usage.output_tokens:,} out tokens" if usage else "no token count"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in str(text).strip().splitlines())


def format_step(step: Any) -> str:
    """One step as terminal text: header with duration and tokens, then thought, code, observations, error."""
    if isinstance(step, FinalAnswerStep):
        return f"Final answer: {step.output}"
    if isinstance(step, PlanningStep):
        return f"── Plan ── {_duration(step)} · {_tokens(step)}\n{_indent(step.plan)}"
    if not isinstance(step, ActionStep):
        return str(step)
    lines = [f"── Step {step.step_number} ── {_duration(step)} · {_tokens(step)}"]
    if step.model_output:
        lines += ["  model output:", _indent(step.model_output if isinstance(step.model_output, str) else str(step.model_output))]
    if step.code_action:
        lines += ["  code:", _indent(step.code_action)]
    elif step.tool_calls:
        lines += ["  tool calls:"] + [f"    {c.name}({c.arguments})" for c in step.tool_calls]
    if step.observations:
        lines += ["  observations:", _indent(step.observations)]
    if step.error is not None:
        lines += [f"  error: {step.error}"]
    return "\n".join(lines)


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    from .runtime import Runtime

    if not args.task.strip():
        raise UsageError("the task is empty; give one with --task")
    agents.get(args.agent)  # unknown agent: fail before Phoenix starts
    from .models import check_model

    model_id = args.model or settings.model
    api_base = args.api_base or (None if args.model else settings.api_base)
    check_model(model_id, api_base)
    runtime = Runtime.start(settings)
    try:
        if runtime.phoenix.started_here:
            runtime.phoenix.process = None  # keep it running after this command, so the trace link works
            print(f"Started Phoenix at {runtime.phoenix.url} (log {runtime.phoenix.log_path}); it keeps running.")
        cycle = runtime.prepare_cycle(
            agent=args.agent,
            task=args.task,
            models={"default": model_id},
            api_base=api_base,
            session_id=args.session,
        )
        print(f"Running {args.agent} with {model_id}: {args.task.strip()}", flush=True)
        for step in cycle:
            print(format_step(step), flush=True)
        result = cycle.result
        assert result is not None
        t = result.totals
        print()
        print(f"Status:   {result.status}" + (f" ({result.error})" if result.error else ""))
        print(f"Trace:    {result.trace_id}  {runtime.trace_url(result.trace_id)}")
        print(
            f"Totals:   {t.steps} steps, {t.llm_calls} LLM calls, {t.total_tokens:,} tokens "
            f"({t.prompt_tokens:,} prompt + {t.completion_tokens:,} completion), {t.duration_s:.2f} s"
        )
        return EXIT_FAILED if result.failed else EXIT_OK
    finally:
        runtime.close()


# -- cogscope ui -----------------------------------------------------------------------
def ui_command(args: argparse.Namespace, settings: Settings) -> int:
    from .app import build_app
    from .config import LOCAL_MODEL
    from .runtime import Runtime

    host = getattr(args, "host", None) or settings.host
    port = getattr(args, "port", None) or settings.port
    runtime = Runtime.start(settings)
    stop = threading.Event()
    demo = None
    try:
        if settings.model == LOCAL_MODEL:
            print("Starting the bundled local model (SmolLM2-135M) ...", flush=True)
            runtime.local.ensure()
        demo = build_app(runtime)
        demo.queue(default_concurrency_limit=4)
        demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, show_error=True)
        print(f"Phoenix:  {runtime.phoenix.url}" + ("" if runtime.phoenix.started_here else " (reused)"))
        print(f"cogscope: http://{host}:{port}   (Ctrl-C stops what cogscope started)", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping ...", flush=True)
        if demo is not None:
            demo.close()
        runtime.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
