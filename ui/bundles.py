"""Reproduction bundles on this installation: a cycle of its Phoenix exported into one file, a file imported into it.

Export: the cycle's spans as Phoenix holds them (telemetry.span_transfer), its starting state as a store file of its
own, scrubbed of secrets (ui.state_files), and a manifest of what rebuilds its agent and of the prices its models were
priced at (telemetry.bundle). Secrets are blanked once more in all of it: the spans were redacted when they were
recorded, and this process may know secrets the recording one did not.

Import: the file is read and checked whole before anything is written (`open_bundle`); the trace must be new to this
Phoenix; then its starting state is kept where re-runs find it, and its spans are logged into the project with their
own trace and span ids (`load_bundle`). Its root span was signed with another installation's key: the cycle shows
"not recorded here", and replaying it follows the rules for recorded code (ui.trust) as for any such trace.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cogscope import agents, defaults
from cogscope.telemetry import (
    BUNDLE_SUFFIX,
    Bundle,
    BundleError,
    Manifest,
    PhoenixUnreachable,
    Prices,
    Recording,
    ReplayError,
    SpanTransferError,
    bundle_prices_entry,
    log_trace_spans,
    parse_state_id,
    phoenix_client,
    read_bundle,
    redact,
    redact_value,
    trace_projects,
    trace_span_records,
    trace_tables,
    wait_for_trace,
    write_bundle,
)

from .cycle_state import restore_state_copy
from .errors import UsageError
from .state_files import check_state_file, keep_imported_state, scrub_state_file
from .trust import PATH_OPTION

if TYPE_CHECKING:
    from .runtime import Runtime

LAND_WAIT_S = 60.0  # how long an import waits for Phoenix to show the spans it queued


def bundle_name(trace_id: str) -> str:
    """The file name an export takes unless told: `cycle-<first 12 digits of the trace id>.cogscope`."""
    return f"cycle-{trace_id[:12]}{BUNDLE_SUFFIX}"


# -- export ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Exported:
    path: Path
    manifest: Manifest
    scrubbed: int  # values of the starting state whose secrets were blanked
    state_left_out: str | None  # why the starting state the cycle names is not in the bundle (None: it is, or none)


def check_destination(dest: Path) -> None:
    """UsageError, before anything is read, for an output file that exists or a folder that does not."""
    if dest.exists():
        raise UsageError(f"{dest} exists already; remove it or name another file with -o")
    if not dest.parent.is_dir():
        raise UsageError(f"the folder {dest.parent} does not exist; create it or name another file with -o")


def export_bundle(
    runtime: Runtime,
    trace_id: str,
    dest: Path,
    *,
    project: str | None = None,
    with_state: bool = True,
    state_or_none: bool = False,
) -> Exported:
    """Write the bundle of one cycle of `project` (default: the settings') at `dest` (UsageError on bad input).

    A starting state that is not kept (pruned, or its store gone) is a UsageError, unless `state_or_none`: then the
    bundle leaves without it, and says why. For someone who may not name files (a shared app's remote user:
    `runtime.policy`), a cycle that ran on a memory store file the operator named leaves without its state: the trace
    shows what the agent read of it, the store file itself is the operator's."""
    check_destination(dest)
    project = project or runtime.settings.project
    frame = runtime.trace_frame(trace_id, project)
    trace_id = trace_id.strip().lower()
    spans = [_redacted(span) for span in trace_span_records(runtime.phoenix.url, project=project, trace_id=trace_id)]
    if not spans:
        raise UsageError(f"no trace {trace_id} in Phoenix project {project!r}; list cycles with `cogscope traces`")
    try:
        recording: Recording | None = Recording.from_frame(frame, trace_id, prices=runtime.settings.prices)
    except ReplayError:
        recording = None  # another app's cycle (its replay names a factory): no agent reference, no state
    manifest = _manifest(runtime.settings.prices, frame, recording, trace_id, project, len(spans))
    named_file = recording is not None and any(PATH_OPTION.search(k) for k in recording.options)
    left_out = None
    if manifest.state is not None and not with_state:
        left_out = "--without-state"
    elif manifest.state is not None and named_file and not runtime.policy.runs_anything:
        left_out = "it comes from a memory store file the operator named: only the operator exports it"
    with tempfile.TemporaryDirectory(prefix="cogscope-export-") as scratch:
        state_file, scrubbed = None, 0
        if recording is not None and manifest.state is not None and left_out is None:
            try:
                state_file = _starting_state(recording, Path(scratch) / "state.sqlite")
            except UsageError as e:
                if not state_or_none:
                    raise UsageError(f"{e} (to export the cycle without its starting state: --without-state)") from None
                left_out = str(e)
            if state_file is not None:
                scrubbed = scrub_state_file(state_file)
        if left_out is not None:
            manifest = replace(manifest, state=None)
        try:
            write_bundle(dest, manifest, spans, state_file)
        except BundleError as e:
            raise UsageError(str(e)) from None
    return Exported(dest, manifest, scrubbed, state_left_out=left_out)


def _redacted(span: dict[str, Any]) -> dict[str, Any]:
    """A span with secrets blanked in what it says (its name, attributes, events, status), never in its ids or times."""
    said = ("name", "attributes", "events", "status_message")
    return {key: redact_value(value) if key in said else value for key, value in span.items()}


def _starting_state(recording: Recording, dest: Path) -> Path:
    """The cycle's starting state as a store file at `dest` (as a re-run would get it: ui.cycle_state); UsageError
    when it is not kept, or is a user's own agent's (its files may hold anything: cogscope cannot scrub them)."""
    if parse_state_id(recording.state) is not None:
        raise UsageError(
            f"cycle {recording.trace_id} started from its own agent's state ({str(recording.state)[:20]}…), which "
            "cogscope cannot clear of secrets; export it with --without-state"
        )
    try:
        restore_state_copy(recording, dest)
    except agents.AgentsError as e:
        raise UsageError(str(e)) from None
    return dest


def _manifest(
    prices: Prices, frame: pd.DataFrame, recording: Recording | None, trace_id: str, project: str, count: int
) -> Manifest:
    """What the manifest says of the cycle: read as replay reads it (another app's cycle: from its tables)."""
    tables = trace_tables(frame, prices)
    cycle = tables.cycle
    models = dict(recording.models) if recording is not None else {}
    called = {str(m) for m in tables.calls["model"] if isinstance(m, str) and m}
    task = recording.task if recording is not None else (cycle["task"] if cycle is not None else "")
    return Manifest(
        trace_id=trace_id,
        agent=recording.agent if recording is not None else None,
        options=redact_value(dict(recording.options)) if recording is not None else {},
        models=models,
        mcp=list(recording.mcp) if recording is not None else [],
        task=redact(str(task or "")),
        status=str(cycle["status"]) if cycle is not None and isinstance(cycle["status"], str) else None,
        state=recording.state if recording is not None else None,
        prices={m: bundle_prices_entry(prices.per_million(m)) for m in sorted(called | set(models.values()))},
        project=project,
        spans=count,
        exported_by=f"cogscope {_version()}",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cogscope")
    except PackageNotFoundError:
        return "(unknown version)"


# -- import ----------------------------------------------------------------------------------------------------------
def open_bundle(source: Path, scratch: Path, *, name: str | None = None) -> Bundle:
    """Read and check a bundle whole (its starting state unpacked into `scratch`, a folder the caller removes), before
    anything else happens: UsageError, one line, for anything that is not a whole bundle this cogscope reads."""
    where = name or str(source)
    try:
        bundle = read_bundle(
            source,
            scratch,
            max_bytes=defaults.BUNDLE_MAX_MB * 1_000_000,
            max_unpacked=defaults.BUNDLE_UNPACKED_MAX_MB * 1_000_000,
            name=where,
        )
    except BundleError as e:
        raise UsageError(str(e)) from None
    if bundle.state_file is not None:
        check_state_file(bundle.state_file, where)
    return bundle


@dataclass(frozen=True)
class Imported:
    manifest: Manifest
    project: str
    state_path: Path | None  # where its starting state is kept (None: the bundle had none)
    landed: int  # spans Phoenix shows already (the rest land a moment later)
    cost_then: float | None  # the cycle's cost at the bundle's prices (None or NaN: unknown)
    cost_here: float | None  # at this installation's prices


def load_bundle(runtime: Runtime, bundle: Bundle, *, project: str | None = None) -> Imported:
    """Load a checked bundle into this Phoenix's `project` (default: the settings') and keep its starting state:
    UsageError, with nothing changed, when the trace is in this Phoenix already or Phoenix refuses its spans."""
    manifest, url = bundle.manifest, runtime.phoenix.url
    project = project or runtime.settings.project
    trace_id = manifest.trace_id
    holders = trace_projects(url, trace_id)
    if holders:
        raise UsageError(
            f"trace {trace_id} is in this Phoenix already (project {holders[0]!r}); nothing imported: "
            f"step through it with `cogscope show {trace_id}`"
            + ("" if holders[0] == project else f" --project {holders[0]}")
        )
    kept, written = None, False
    if bundle.state_file is not None and manifest.state is not None:
        kept, written = keep_imported_state(manifest.state, bundle.state_file, runtime.settings.data_dir)
    try:
        log_trace_spans(url, project=project, spans=bundle.spans)
    except (SpanTransferError, PhoenixUnreachable) as e:
        if written and kept is not None:
            kept.unlink(missing_ok=True)
        raise UsageError(str(e)) from None
    frame = wait_for_trace(
        phoenix_client(url), project=project, trace_id=trace_id, min_spans=manifest.spans, timeout=LAND_WAIT_S
    )
    return Imported(
        manifest,
        project,
        kept,
        len(frame),
        _cost(frame, _bundle_prices(manifest)),
        _cost(frame, runtime.settings.prices),
    )


def _bundle_prices(manifest: Manifest) -> Prices:
    known = {m: (p[0], p[1]) for m, p in manifest.prices.items() if p[0] is not None and p[1] is not None}
    return Prices(overrides=known)


def _cost(frame: pd.DataFrame, prices: Prices) -> float | None:
    if frame.empty:
        return None
    cost = trace_tables(frame, prices).totals
    return None if cost is None or cost.cost_usd is None or math.isnan(cost.cost_usd) else cost.cost_usd


def describe_manifest(manifest: Manifest) -> str:
    """One line about the cycle a bundle holds."""
    agent = manifest.agent or "another app's agent"
    state = f"starting state {manifest.state}" if manifest.state else "no starting state"
    return f"trace {manifest.trace_id}: {agent}, status {manifest.status or 'unknown'}, {manifest.spans} spans, {state}"


def import_lines(result: Imported, *, commands: bool = True) -> list[str]:
    """What `cogscope import` prints, and the Traces tab shows (without the `commands` to go on with), once a bundle
    is in."""
    from cogscope.telemetry import usd

    m = result.manifest
    lines = [f"Imported {describe_manifest(m)}, into Phoenix project {result.project!r} (not recorded here)."]
    if result.state_path is not None:
        lines.append(f"Starting state kept at {result.state_path}; re-runs start from it.")
    else:
        lines.append("The bundle holds no starting state: a replay runs against the current live state.")
    if result.landed < m.spans:
        lines.append(f"Phoenix shows {result.landed} of its {m.spans} spans so far; the rest land in a moment.")
    lines.append(f"Cost when recorded: {usd(result.cost_then)} at the bundle's prices; {usd(result.cost_here)} here.")
    if commands:
        lines.append(f"Step through it: cogscope show {m.trace_id}   Replay it: cogscope replay {m.trace_id}")
    return lines


def export_lines(result: Exported, *, shown_path: str | None = None) -> list[str]:
    """What `cogscope export` prints, and the Traces tab shows (`shown_path`: the file's name), once a bundle is
    written."""
    size = result.path.stat().st_size
    lines = [f"Wrote {shown_path or result.path} ({size / 1000:,.1f} kB): {describe_manifest(result.manifest)}."]
    if result.state_left_out:
        lines.append(
            f"Its starting state was left out ({result.state_left_out}): a replay there runs on the current state."
        )
    if result.scrubbed:
        lines.append(
            f"{result.scrubbed} value(s) of its starting state held secrets, blanked in the bundle: a replay that "
            "reads them may differ there."
        )
    return lines
