"""The `cogscope` command: `ui` (default) starts the app; `run` and `heartbeat` run cycles headless;
`mcp-serve` serves the cognitive tools over MCP; `seed-memory` fills the memory store with an example; `state`
rolls the memory store back to a cycle's starting state.

ui.cli_parser builds the command line and names each subcommand's function; this module parses, reads the
settings, checks what must hold before anything starts, runs the command and turns its errors into exit codes.
The commands: ui.app_cli (`ui`), ui.cycle_cli (`run`, `heartbeat`, `mcp-serve`, `seed-memory`), ui.traces_cli
(`traces`, `show`, `replay`), ui.cost_cli (`cost`), ui.state_cli (`state rollback`, `state list`), ui.bundle_cli
(`export`, `import`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from cogscope import agents  # noqa: E402
from cogscope.defaults import EXIT_OK, EXIT_USAGE  # noqa: E402
from cogscope.telemetry import TelemetryError  # noqa: E402

from .cli_parser import build_parser  # noqa: E402
from .config import Settings  # noqa: E402
from .errors import UiError  # noqa: E402
from .interrupts import STOPPING  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    from cogscope.telemetry import redacted_stdio

    with redacted_stdio():  # secrets are blanked in everything the command prints (telemetry.redaction)
        return _command(argv)


def _command(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if getattr(args, "prices", None) is not None:
            settings = settings.with_prices(args.prices)
        if getattr(args, "project", None) is not None:
            settings = settings.with_project(args.project)
        _preflight(args, settings)
        return int(args.func(args, settings))
    except (UiError, agents.AgentsError, TelemetryError) as e:
        print(f"cogscope: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        STOPPING.set()
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


if __name__ == "__main__":
    sys.exit(main())
