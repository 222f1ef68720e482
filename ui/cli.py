"""The `cogscope` command: `ui` (default) starts the app; `run` and `heartbeat` run cycles headless;
`mcp-serve` serves the cognitive tools over MCP; `seed-memory` fills the memory store with an example."""

from __future__ import annotations

import _thread
import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NoReturn

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from cogscope import agents  # noqa: E402
from cogscope.agents import check_options  # noqa: E402
from cogscope.telemetry import TelemetryError  # noqa: E402

from .config import Settings  # noqa: E402
from .errors import UiError, UsageError  # noqa: E402
from .inputs import parse_models, parse_options  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _add_cycle_arguments(parser: argparse.ArgumentParser, *, task_required: bool) -> None:
    parser.add_argument(
        "--agent",
        required=task_required,
        default=None if task_required else "heartbeat",
        help=f"registry name ({', '.join(agents.names())}), path/to/file.py:factory or package.module:factory",
    )
    parser.add_argument("--task", required=task_required, help="what the agent should do")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="ID | ROLE=ID",
        help="LiteLLM model id or `local` (default $COGSCOPE_MODEL or local); "
        "ROLE=ID sets one role's model; repeatable",
    )
    parser.add_argument("--api-base", help="OpenAI-compatible API base URL for the model(s)")
    parser.add_argument("--session", help="session id shared by related cycles (Phoenix sessions)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="factory option, e.g. max_steps=3 (values parse as JSON when they can); repeatable",
    )
    parser.add_argument(
        "--mcp",
        action="append",
        default=[],
        metavar="COMMAND",
        help="add the tools of a stdio MCP server, e.g. --mcp 'cogscope mcp-serve'; repeatable",
    )


def _add_prices_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prices",
        metavar="FILE",
        help="TOML prices file (model -> input/output USD per million tokens) for this command; "
        "default $COGSCOPE_PRICES, over LiteLLM's price map",
    )


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad flag reported as every other bad input is: one line on stderr, exit 2."""

    def error(self, message: str) -> NoReturn:
        from .trust import shorten

        self.exit(EXIT_USAGE, f"cogscope: error: {shorten(message, 300)} (see `{self.prog} --help`)\n")


def _arg_port(text: str) -> int:
    if not text.strip().isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number; use a number from 1 to 65535")
    return int(text)


def _arg_count(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of cycles; use a whole number from 1 to 1000")
    return int(text)


def _arg_cycles(text: str) -> int:
    from .inputs import check_cycles

    try:
        return check_cycles(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--cycles ")) from None


def _arg_interval(text: str) -> float:
    from .inputs import check_interval

    try:
        return check_interval(float(text))
    except (ValueError, UsageError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds from 0 to 86400 (a day); give one like 5"
        ) from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cogscope",
        description="Run smolagents cognitive agents, watch every step, trace them into Phoenix.",
    )
    sub = parser.add_subparsers(dest="command")
    ui = sub.add_parser("ui", help="start the app (default): Phoenix, the local model and the browser UI")
    ui.add_argument("--host", help="interface to bind (default 127.0.0.1, or $COGSCOPE_HOST)")
    ui.add_argument("--port", type=_arg_port, help="port of the app (default 7860, or $COGSCOPE_PORT)")
    ui.add_argument(
        "--auth-file",
        metavar="FILE",
        help="log-in required: one user:password per line in FILE (needed to bind anything but loopback)",
    )
    ui.add_argument(
        "--auth-env", metavar="VAR", help="log-in required: the environment variable VAR holds user:password"
    )
    ui.add_argument(
        "--public-url",
        metavar="URL",
        help="the address people open, behind a reverse proxy (https://NAME); needs log-ins (or $COGSCOPE_PUBLIC_URL)",
    )
    ui.add_argument(
        "--allow-mcp",
        action="append",
        default=[],
        metavar="COMMAND",
        help="an MCP server command users who log in may start (repeatable; cogscope mcp-serve always may)",
    )
    ui.add_argument(
        "--allow-api-base",
        action="append",
        default=[],
        metavar="URL",
        help="an API base typed in the browser that may receive your provider key (repeatable)",
    )
    ui.add_argument(
        "--allow-browser-commands",
        action="store_true",
        help="let users who log in import any agent file or module and start any MCP command (as you)",
    )
    ui.add_argument(
        "--max-cycles",
        type=_arg_count,
        metavar="N",
        help="cycles on API models that run side by side; more wait in line (default 64, or $COGSCOPE_MAX_CYCLES)",
    )
    run = sub.add_parser("run", help="run one cycle headless and print its steps and totals")
    _add_cycle_arguments(run, task_required=True)
    beat = sub.add_parser("heartbeat", help="run N cycles at an interval in one session")
    _add_cycle_arguments(beat, task_required=False)
    beat.add_argument(
        "--interval", type=_arg_interval, default=5.0, help="seconds from one cycle's start to the next (default 5)"
    )
    beat.add_argument("--cycles", type=_arg_cycles, default=3, help="how many cycles, 1 to 1000 (default 3)")
    serve = sub.add_parser("mcp-serve", help="serve the cognitive tools over MCP (stdio)")
    serve.add_argument("--memory", help="memory store file (default $COGSCOPE_DATA_DIR/memory.sqlite)")
    traces = sub.add_parser("traces", help="list recent cycles from Phoenix, newest first")
    traces.add_argument("--failed", action="store_true", help="only failed cycles (error, max_steps, step_errors)")
    traces.add_argument("--agent", help="only this agent")
    traces.add_argument("--text", help="only cycles whose task contains this text")
    traces.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    traces.add_argument("--format", choices=["table", "json"], default="table")
    show = sub.add_parser("show", help="step through one cycle: what the model saw and wrote at each step")
    show.add_argument("trace_id")
    show.add_argument("--step", type=int, help="show this step in full (input messages included)")
    show.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="json: the cycle and its steps, with each call's whole prompt (schema in the README)",
    )
    replay = sub.add_parser("replay", help="replay a cycle with zero LLM calls, or fork it from a step")
    replay.add_argument("trace_id")
    replay.add_argument(
        "--stub-tools", action="store_true", help="return the recorded tool outputs instead of running tools"
    )
    replay.add_argument("--fork-at", type=int, metavar="K", help="replay up to step K, then fork")
    fork = replay.add_mutually_exclusive_group()
    fork.add_argument("--output-file", metavar="F", help="with --fork-at: the edited model output for step K")
    fork.add_argument("--model", help="with --fork-at: a live model from step K on")
    replay.add_argument("--api-base", help="API base for the live model")
    replay.add_argument(
        "--agent",
        metavar="REF",
        help="for another app's cycle: the factory that builds the same agent (package.module:function or "
        "path/file.py:function, called as function(models, **options))",
    )
    replay.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="with --agent: an option for the factory"
    )
    replay.add_argument(
        "--trust-recorded-code",
        action="store_true",
        help="run the agent file/module and MCP commands this trace names even though they are not registered "
        "or allowed (what would run is printed when this is needed)",
    )
    for command in (ui, run, beat, traces, show, replay):
        _add_prices_argument(command)
    cost = sub.add_parser("cost", help="what one cycle costs and the monthly projection; --budget gates a rollout")
    from .cost_cli import add_arguments

    add_arguments(cost)
    for command in (traces, show, replay, cost):
        command.add_argument(
            "--project", help="the Phoenix project to read (default $COGSCOPE_PROJECT or cogscope); any app's project"
        )
    for command in (traces, cost):
        command.add_argument(
            "--source",
            choices=["all", "cogscope", "other"],
            default="all",
            help="cycles run in cogscope, from other apps (traced with OpenInference), or all (default)",
        )
        command.add_argument("--user", help="only the cycles this user started on a shared cogscope (its log-in)")
    seed = sub.add_parser("seed-memory", help="fill an empty memory store with a small example")
    seed.add_argument("--memory", help="memory store file (default $COGSCOPE_DATA_DIR/memory.sqlite)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from cogscope.telemetry import redacted_stdio

    with redacted_stdio():  # secrets are blanked in everything the command prints (telemetry.redaction)
        return _command(argv)


def _command(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if getattr(args, "prices", None) is not None:
            settings = settings.with_prices(args.prices)
        if getattr(args, "project", None) is not None:
            settings = settings.with_project(args.project)
        _preflight(args, settings)
        if args.command == "run":
            return run_command(args, settings)
        if args.command == "heartbeat":
            return heartbeat_command(args, settings)
        if args.command == "mcp-serve":
            agents.serve_mcp(args.memory)
            return EXIT_OK
        if args.command == "seed-memory":
            return seed_command(args)
        if args.command == "cost":
            from .cost_cli import cost_command

            return cost_command(args, settings)
        if args.command in ("traces", "show", "replay"):
            from . import traces_cli

            return int(getattr(traces_cli, f"{args.command}_command")(args, settings))
        return ui_command(args, settings)
    except (UiError, agents.AgentsError, TelemetryError) as e:
        print(f"cogscope: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _STOPPING.set()
        return 130
    except BrokenPipeError:  # e.g. `cogscope show ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _preflight(args: argparse.Namespace, settings: Settings) -> None:
    """Before anything starts: the data dir can be written, and `ui`'s port is free (one line each, exit 2)."""
    from .preflight import check_data_dir, check_port_free, needs_data_dir

    if needs_data_dir(args.command, getattr(args, "memory", None)):
        check_data_dir(settings.data_dir)
    if args.command in (None, "ui"):
        check_port_free(getattr(args, "host", None) or settings.host, getattr(args, "port", None) or settings.port)


_STOPPING = threading.Event()  # set once a command has begun to stop (its KeyboardInterrupt arrived)


def _on_interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C as KeyboardInterrupt, also when a shell started us in the background with SIGINT ignored.

    Python swallows an exception raised while it runs a weakref callback ("Exception ignored in ..."), which is
    where a signal lands now and then during imports; so if nothing has begun to stop 2 s later, interrupt again."""
    if not _STOPPING.is_set():
        timer = threading.Timer(2.0, lambda: None if _STOPPING.is_set() else _thread.interrupt_main())
        timer.daemon = True
        timer.start()
    raise KeyboardInterrupt


def _set_later(event: threading.Event) -> None:
    """Set `event` from a signal handler: from another thread, since the main thread may be inside
    `event.wait()` holding the event's lock, and setting it there would deadlock (SIGTERM then never stops us)."""
    threading.Thread(target=event.set, name="signal-stop", daemon=True).start()


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


LINK_WAIT_S = 3.0  # how long a finished cycle waits for its spans to reach Phoenix before saying "pending"


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
    print(f"Totals:   {totals_text(result.totals, sep=', ')}", flush=True)
    return result


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    if not args.task.strip():
        raise UsageError("the task is empty; give one with --task")
    inputs = _cycle_inputs(args, settings)  # bad input fails before Phoenix starts
    signal.signal(signal.SIGINT, _on_interrupt)
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
        _STOPPING.set()
        _close(runtime, pending)


def heartbeat_command(args: argparse.Namespace, settings: Settings) -> int:
    import uuid

    from .heartbeat_loop import heartbeat_cycles

    task = (args.task or "").strip() or agents.DEFAULT_TASK
    inputs = _cycle_inputs(args, settings)
    session = args.session or f"heartbeat-{uuid.uuid4().hex[:8]}"
    stop = threading.Event()

    def on_interrupt(*_: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        _set_later(stop)
        print("\nStopping after this cycle (Ctrl-C again to abort) ...", flush=True)

    runtime = _start_runtime(settings)
    previous = signal.signal(signal.SIGINT, on_interrupt)
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


def seed_command(args: argparse.Namespace) -> int:
    store = agents.open_store(args.memory)  # opening seeds an empty store
    print(
        f"Memory store {store.path}: {store.count()} memories, {len(store.goals())} active goals, "
        f"mental models: {', '.join(store.models()) or 'none'}."
    )
    return EXIT_OK


# -- cogscope ui -----------------------------------------------------------------------
def _preload() -> None:
    from .models import preload

    try:
        preload()
        agents.get(agents.names()[0])  # loads the built-ins (and smolagents' agent classes)
    except Exception:  # a broken install shows itself, with its one line, on the first Run instead
        pass


def _app_access(args: argparse.Namespace, settings: Settings, host: str, port: int) -> tuple[Any, ...]:
    """Who may reach the app and do what (ui.web_access, ui.auth, ui.trust): (policy, credentials, operator token
    or None, the app's middleware, public URL or None); UsageError for a set-up that would let anyone in."""
    from starlette.middleware import Middleware

    from .auth import LimitLogins, RequireLogin, load_credentials
    from .headers import ContentSecurityPolicy
    from .trust import Policy, is_loopback
    from .web_access import OperatorToken, app_middleware, check_public_url

    public_url = check_public_url(getattr(args, "public_url", None) or settings.public_url)
    credentials = load_credentials(file=getattr(args, "auth_file", None), env_var=getattr(args, "auth_env", None))
    if not is_loopback(host) and credentials is None:
        raise UsageError(
            f"--host {host} would let anyone on the network run agents as you; give log-ins with "
            "--auth-file FILE (one user:password per line) or --auth-env VAR, or bind 127.0.0.1"
        )
    if public_url and credentials is None:
        raise UsageError(
            f"--public-url {public_url}: behind a reverse proxy everyone reaches cogscope from loopback, so it asks "
            "for log-ins; give them with --auth-file FILE (one user:password per line) or --auth-env VAR"
        )
    policy = Policy.for_app(
        host=host,
        public_url=public_url,
        allow_commands=getattr(args, "allow_browser_commands", False),
        allowed_mcp=[*settings.allowed_mcp, *getattr(args, "allow_mcp", [])],
        allowed_api_bases=[b for b in [settings.api_base, *getattr(args, "allow_api_base", [])] if b],
    )
    token = OperatorToken(port) if credentials is None else None
    middleware = app_middleware(host=host, port=port, public_url=public_url, token=token)
    if credentials is not None:
        middleware += [Middleware(LimitLogins), Middleware(RequireLogin)]
    middleware.append(Middleware(ContentSecurityPolicy))
    return policy, credentials, token, middleware, public_url


def ui_command(args: argparse.Namespace, settings: Settings) -> int:
    from .app import build_app
    from .config import LOCAL_MODEL
    from .run_tab import cycle_events_limit
    from .runtime import Runtime

    host = getattr(args, "host", None) or settings.host
    port = getattr(args, "port", None) or settings.port
    policy, credentials, token, middleware, public_url = _app_access(args, settings, host, port)
    if getattr(args, "max_cycles", None):
        settings = replace(settings, max_cycles=args.max_cycles)
    runtime = Runtime.start(settings)
    runtime.policy = policy
    runtime.signed_in = credentials is not None
    stop = threading.Event()
    demo = None
    try:
        if settings.model == LOCAL_MODEL:
            print("Starting the bundled local model (SmolLM2-135M) ...", flush=True)
            runtime.local.ensure()
        demo = build_app(runtime)
        # every other event (the Traces tab, replays, the Dashboard) has a group of its own, so another user's
        # running cycle never blocks it; each event holds a worker thread while it runs
        demo.queue(default_concurrency_limit=16)
        demo.launch(
            max_threads=cycle_events_limit(runtime) + 40,
            server_name=host,
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            show_error=True,
            auth=credentials.check if credentials else None,
            app_kwargs={"middleware": middleware},
            auth_message="cogscope: log in with the user and password the operator gave you",
        )
        # the first Run would otherwise import LiteLLM and the built-in agents itself: do it while nobody waits
        threading.Thread(target=_preload, name="cogscope-preload", daemon=True).start()
        # explicit handlers, set before we say we are up: a Ctrl-C right after that line must not land as a
        # KeyboardInterrupt that Python may swallow (inside a weakref callback); and a shell that starts cogscope
        # in the background sets SIGINT to "ignore"
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda *_: _set_later(stop))
        print(f"Phoenix:  {runtime.phoenix.url}" + ("" if runtime.phoenix.started_here else " (reused)"))
        shown = public_url + "/" if public_url else f"http://{host}:{port}"
        print(f"cogscope: {token.link(shown) if token else shown}   (Ctrl-C stops what cogscope started)", flush=True)
        if not policy.operator:
            print(
                f"Log-in required ({len(credentials.users) if credentials else 0} user(s)); users may run "
                + (
                    "any agent file and MCP command (--allow-browser-commands)."
                    if policy.allow_commands
                    else "registered agents and allowed MCP servers only."
                ),
                flush=True,
            )
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping ...", flush=True)
        _end_anyway_after(runtime.settings.drain_timeout + STOP_GRACE_S)
        if demo is not None:
            demo.close()
        runtime.close()
    return EXIT_OK


STOP_GRACE_S = 15.0  # past the spool's drain: Gradio's server (up to 5 s) and what cogscope started


def _end_anyway_after(seconds: float) -> None:
    """Stopping must end: if the app is still here `seconds` from now (a Phoenix too busy to answer the last
    sends, a request handler or a thread that does not return), say so and end the process. Nothing is lost:
    spans not yet in Phoenix stay in the spool for the next cogscope on this data dir, and the Phoenix and the
    model server cogscope started end with it (they die with their parent)."""

    def end() -> None:
        print(
            f"cogscope: stopping took more than {seconds:g} s; ending now (spans not yet in Phoenix stay in the "
            "spool and are sent by the next cogscope on this data dir)",
            file=sys.stderr,
            flush=True,
        )
        agents.exit_now(EXIT_OK)

    timer = threading.Timer(seconds, end)
    timer.daemon = True  # runs on while Python waits for other threads at exit
    timer.start()


if __name__ == "__main__":
    sys.exit(main())
