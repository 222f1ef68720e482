"""`cogscope export` and `cogscope import`: one cycle in one file (a reproduction bundle), and back into a Phoenix."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from cogscope.defaults import EXIT_OK
from cogscope.telemetry import TRACE_ID

from .bundles import bundle_name, check_destination, export_bundle, export_lines, import_lines, load_bundle, open_bundle
from .config import Settings
from .errors import UsageError
from .traces_cli import reading_runtime


def export_command(args: argparse.Namespace, settings: Settings) -> int:
    trace_id = (args.trace_id or "").strip().lower()
    if not TRACE_ID.match(trace_id):  # before Phoenix starts
        raise UsageError(
            f"{args.trace_id[:80]!r} is not a trace id (32 hex digits); list cycles with `cogscope traces`"
        )
    dest = Path(args.output or bundle_name(trace_id)).expanduser()
    check_destination(dest)  # before Phoenix starts
    runtime = reading_runtime(settings, project_must_exist=True)
    try:
        result = export_bundle(runtime, trace_id, dest, with_state=not args.without_state)
    finally:
        runtime.close()
    for line in export_lines(result):
        print(line)
    return EXIT_OK


def import_command(args: argparse.Namespace, settings: Settings) -> int:
    with tempfile.TemporaryDirectory(prefix="cogscope-import-") as scratch:
        bundle = open_bundle(Path(args.file).expanduser(), Path(scratch), name=args.file)  # before Phoenix starts
        runtime = reading_runtime(settings, project_must_exist=False)
        try:
            result = load_bundle(runtime, bundle)
        finally:
            runtime.close()
    for line in import_lines(result):
        print(line)
    return EXIT_OK
