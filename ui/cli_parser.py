"""The `cogscope` command line: every subcommand, its flags and help, and the function that runs it
(`set_defaults(func=...)`; ui.cli parses, then calls `args.func(args, settings)`)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from cogscope import agents
from cogscope.defaults import EXIT_USAGE

from .app_cli import ui_command
from .config import Settings
from .cost_cli import cost_command
from .cycle_cli import heartbeat_command, mcp_serve_command, run_command, seed_command
from .errors import UsageError


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


class CogscopeParser(argparse.ArgumentParser):
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


# `traces`, `show` and `replay` read Phoenix with pandas: imported when one of them runs, not for every command
def _traces_command(args: argparse.Namespace, settings: Settings) -> int:
    from .traces_cli import traces_command

    return traces_command(args, settings)


def _show_command(args: argparse.Namespace, settings: Settings) -> int:
    from .traces_cli import show_command

    return show_command(args, settings)


def _replay_command(args: argparse.Namespace, settings: Settings) -> int:
    from .traces_cli import replay_command

    return replay_command(args, settings)


def _export_command(args: argparse.Namespace, settings: Settings) -> int:
    from .bundle_cli import export_command

    return export_command(args, settings)


def _import_command(args: argparse.Namespace, settings: Settings) -> int:
    from .bundle_cli import import_command

    return import_command(args, settings)


def _add_bundles(
    sub: argparse._SubParsersAction[CogscopeParser],
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    export = sub.add_parser(
        "export", help="write one cycle into a reproduction bundle: its spans, starting state and agent reference"
    )
    export.set_defaults(func=_export_command)
    export.add_argument("trace_id")
    export.add_argument("-o", "--output", metavar="FILE", help="the bundle to write (default cycle-TRACE.cogscope)")
    export.add_argument(
        "--without-state",
        action="store_true",
        help="leave the starting state out (a cycle whose state was pruned; a replay there runs on the current state)",
    )
    imported = sub.add_parser(
        "import", help="load a reproduction bundle into the local Phoenix, to show and replay it (zero LLM calls)"
    )
    imported.set_defaults(func=_import_command)
    imported.add_argument("file", help="a .cogscope file written by `cogscope export`")
    return export, imported


def _add_ui(sub: argparse._SubParsersAction[CogscopeParser]) -> argparse.ArgumentParser:
    ui = sub.add_parser("ui", help="start the app (default): Phoenix, the local model and the browser UI")
    ui.set_defaults(func=ui_command)
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
    return ui


def _add_run_and_heartbeat(
    sub: argparse._SubParsersAction[CogscopeParser],
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    run = sub.add_parser("run", help="run one cycle headless and print its steps and totals")
    run.set_defaults(func=run_command)
    _add_cycle_arguments(run, task_required=True)
    beat = sub.add_parser("heartbeat", help="run N cycles at an interval in one session")
    beat.set_defaults(func=heartbeat_command)
    _add_cycle_arguments(beat, task_required=False)
    beat.add_argument(
        "--interval", type=_arg_interval, default=5.0, help="seconds from one cycle's start to the next (default 5)"
    )
    beat.add_argument("--cycles", type=_arg_cycles, default=3, help="how many cycles, 1 to 1000 (default 3)")
    return run, beat


def _add_traces_and_show(
    sub: argparse._SubParsersAction[CogscopeParser],
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    traces = sub.add_parser("traces", help="list recent cycles from Phoenix, newest first")
    traces.set_defaults(func=_traces_command)
    traces.add_argument("--failed", action="store_true", help="only failed cycles (error, max_steps, step_errors)")
    traces.add_argument("--agent", help="only this agent")
    traces.add_argument("--text", help="only cycles whose task contains this text")
    traces.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    traces.add_argument("--format", choices=["table", "json"], default="table")
    show = sub.add_parser("show", help="step through one cycle: what the model saw and wrote at each step")
    show.set_defaults(func=_show_command)
    show.add_argument("trace_id")
    show.add_argument("--step", type=int, help="show this step in full (input messages included)")
    show.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="json: the cycle and its steps, with each call's whole prompt (schema in the README)",
    )
    return traces, show


def _add_replay(sub: argparse._SubParsersAction[CogscopeParser]) -> argparse.ArgumentParser:
    replay = sub.add_parser("replay", help="replay a cycle with zero LLM calls, or fork it from a step")
    replay.set_defaults(func=_replay_command)
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
        "--live-state",
        action="store_true",
        help="run against the current live state (the memory store, or an own agent's state_dir; tools write to it) "
        "instead of a scratch copy of the state the cycle started from",
    )
    replay.add_argument(
        "--trust-recorded-code",
        action="store_true",
        help="run the agent file/module and MCP commands this trace names even though they are not registered "
        "or allowed (what would run is printed when this is needed)",
    )
    replay.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="json: one object at the end, the first divergence as a structured field (schema in the README)",
    )
    return replay


def _state_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from .state_cli import rollback_command

    return rollback_command(args, settings)


def _state_list(args: argparse.Namespace, settings: Settings) -> int:
    from .state_cli import list_command

    return list_command(args, settings)


def _add_state(sub: argparse._SubParsersAction[CogscopeParser]) -> argparse.ArgumentParser:
    state = sub.add_parser("state", help="the memory store's kept states: roll back to one, or list them")
    actions = state.add_subparsers(dest="state_command", required=True, metavar="{rollback,list}")
    rollback = actions.add_parser(
        "rollback",
        help="roll the live memory store back to the state a cycle started from (says what changes, then asks)",
    )
    rollback.set_defaults(func=_state_rollback)
    rollback.add_argument("trace_id", nargs="?", help="the cycle whose starting state to roll back to")
    rollback.add_argument(
        "--point", metavar="ID", help="roll back (or forward) to this kept point instead, e.g. the one a rollback kept"
    )
    rollback.add_argument(
        "--memory", help="with --point: the memory store file (default $COGSCOPE_DATA_DIR/memory.sqlite)"
    )
    rollback.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    rollback.add_argument("--project", help="the Phoenix project of the trace (default $COGSCOPE_PROJECT or cogscope)")
    listing = actions.add_parser("list", help="the memory store's kept states, newest first")
    listing.set_defaults(func=_state_list)
    listing.add_argument("--memory", help="memory store file (default $COGSCOPE_DATA_DIR/memory.sqlite)")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    return state


def _add_cost(sub: argparse._SubParsersAction[CogscopeParser]) -> argparse.ArgumentParser:
    cost = sub.add_parser("cost", help="what one cycle costs and the monthly projection; --budget gates a rollout")
    cost.set_defaults(func=cost_command)
    cost.add_argument("--since", default="24h", help="window, e.g. 1h, 24h, 7d (default 24h)")
    cost.add_argument("--agent", help="only this agent")
    cost.add_argument("--session", help="only this session (e.g. one heartbeat loop)")
    cost.add_argument(
        "--interval",
        help="seconds between cycles for the projection, e.g. 5s (default: the session's measured interval, else 5s)",
    )
    cost.add_argument(
        "--what-if",
        action="append",
        default=[],
        metavar="ROLE=MODEL",
        help="re-price a role's recorded tokens with another model (MODEL alone: every role)",
    )
    _add_prices_argument(cost)
    cost.add_argument("--budget", help="USD per month; exit 1 when the projection exceeds it")
    cost.add_argument("--format", choices=["table", "json", "csv"], default="table")
    return cost


def _add_reading_arguments(
    traces: argparse.ArgumentParser,
    show: argparse.ArgumentParser,
    replay: argparse.ArgumentParser,
    cost: argparse.ArgumentParser,
) -> None:
    """--project for every command that reads Phoenix; --source and --user for those that list cycles."""
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


def build_parser() -> argparse.ArgumentParser:
    """The whole `cogscope` command line; each subcommand's `func` runs it (`ui` when none is named)."""
    parser = CogscopeParser(
        prog="cogscope",
        description="Run smolagents cognitive agents, watch every step, trace them into Phoenix.",
    )
    parser.set_defaults(func=ui_command)
    sub = parser.add_subparsers(dest="command")
    ui = _add_ui(sub)
    run, beat = _add_run_and_heartbeat(sub)
    serve = sub.add_parser("mcp-serve", help="serve the cognitive tools over MCP (stdio)")
    serve.set_defaults(func=mcp_serve_command)
    serve.add_argument("--memory", help="memory store file (default $COGSCOPE_DATA_DIR/memory.sqlite)")
    traces, show = _add_traces_and_show(sub)
    replay = _add_replay(sub)
    for command in (ui, run, beat, traces, show, replay):
        _add_prices_argument(command)
    cost = _add_cost(sub)
    _add_reading_arguments(traces, show, replay, cost)
    _add_state(sub)
    export, imported = _add_bundles(sub)
    export.add_argument("--project", help="the Phoenix project the cycle is in (default $COGSCOPE_PROJECT or cogscope)")
    imported.add_argument(
        "--project", help="the Phoenix project to load it into (default $COGSCOPE_PROJECT or cogscope; made if new)"
    )
    seed = sub.add_parser("seed-memory", help="fill an empty memory store with a small example")
    seed.set_defaults(func=seed_command)
    seed.add_argument("--memory", help="memory store file (default $COGSCOPE_DATA_DIR/memory.sqlite)")
    return parser
