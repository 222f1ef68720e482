"""`cogscope state rollback` and `cogscope state list`: the memory store's kept states, from the terminal.

Rolling back says what will change, asks (y/N on a terminal; `--yes` to skip; without a terminal `--yes` is
required), keeps the current state as a point first, and prints the command that rolls forward to it again.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cogscope.defaults import EXIT_OK

from .config import Settings
from .cycle_state import MEMORY_OPTION, RollbackPlan, live_store, memory_path, roll_forward_command, trace_rollback
from .errors import UsageError


def _confirmed(args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    try:
        answer = input("Roll the live memory store back? [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def _check(args: argparse.Namespace) -> None:
    """What was asked makes sense, and can be asked for (before anything starts)."""
    if args.point and args.trace_id:
        raise UsageError("give a trace id or --point ID, not both")
    if not args.point and not args.trace_id:
        raise UsageError("name the cycle whose starting state to roll back to (a trace id), or a point with --point ID")
    if args.memory and not args.point:
        raise UsageError("--memory goes with --point: a trace names its own memory store")
    if not args.yes and not sys.stdin.isatty():
        raise UsageError(
            "cogscope state rollback asks before it changes the memory store: add --yes to roll back without a terminal"
        )


def _plan(args: argparse.Namespace, settings: Settings) -> tuple[RollbackPlan, dict[str, Any], str]:
    """(the rollback, the options naming its store, what it rolls back to, for a person)."""
    if args.point:
        options = {MEMORY_OPTION: args.memory} if args.memory else {}
        if not memory_path(options).exists():
            raise UsageError(
                f"no memory store at {memory_path(options)}; name the one the point belongs to with --memory"
            )
        return RollbackPlan.of(live_store(options), args.point), options, f"point {args.point}"
    from .runtime import Runtime

    runtime = Runtime.start(settings)
    try:
        if settings.project_named:
            runtime.check_project()
        recording = runtime.recording(args.trace_id)
    finally:
        runtime.close()
    plan = trace_rollback(recording)
    return plan, dict(recording.options), f"state {plan.state}, the one cycle {recording.trace_id} started from"


def rollback_command(args: argparse.Namespace, settings: Settings) -> int:
    _check(args)
    plan, options, target = _plan(args, settings)
    path = memory_path(options)
    if plan.unchanged:
        print(f"The memory store {path} is already in {target}: nothing to roll back.")
        return EXIT_OK
    print(f"Rolling the memory store {path} back to {target} changes:")
    for line in plan.lines:
        print(f"  {line}")
    if not _confirmed(args):
        print("Nothing changed.")
        return EXIT_OK
    kept = plan.apply()
    print(f"Rolled back. The state before the rollback is kept as point {kept.id}; to roll forward again:")
    print(f"  {roll_forward_command(kept, options)}")
    return EXIT_OK


def list_command(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 <= args.limit <= 10_000:
        raise UsageError(f"--limit {args.limit} must be from 1 to 10000")
    options = {MEMORY_OPTION: args.memory} if args.memory else {}
    path = memory_path(options)
    if not path.exists():
        print(f"No memory store at {path} yet: it is made by the first cycle of a built-in agent.")
        return EXIT_OK
    points = live_store(options).points(args.limit)
    if not points:
        print(f"No states kept in {path} (none yet, or all older than COGSCOPE_STATE_DAYS were pruned).")
        return EXIT_OK
    print(f"States kept in {path}, newest first (kept {settings.state_days:g} days, COGSCOPE_STATE_DAYS):")
    width = max(len(p.id) for p in points)
    for point in points:
        print(f"  {point.id:<{width}}  {point.created}  {point.label}")
    return EXIT_OK
