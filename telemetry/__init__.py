"""cogscope telemetry: tracing set-up, the embedded Phoenix, the spool, and the three tables every view reads.

Never imports `agents`: whatever needs an agent receives it (or a factory) as an argument. `ui` imports only the
names below (tests/test_packages.py pins this).

Where things are (every module, one line each; tests/test_packages.py checks that none is missing):

What a cycle is and how it runs
- `attributes`: every `cogscope.*` span attribute, the cycle statuses, the span-name rules
- `cycle_spec`: a cycle's spec (what its root span records) and its status, for cogscope's cycles and an app's
- `cycle_runner`: `Cycle`, running one agent cycle under its root span and streaming its steps to the caller
- `recorder`: the one-line recorder (`record`, `stop`): an app's smolagents runs become cogscope cycles
- `roles`: which role (managed agent) and step an LLM call belongs to, written on its span as it starts
- `replay`: deterministic replay and fork of a recorded cycle, from its trace alone
- `bundle`: the reproduction bundle file (a cycle's spans, starting state and manifest): written, read and checked
- `prompt_diff`: where a replayed call's prompt first differs from the recorded one, and a short diff of it
- `uncaptured`: whether a replay's difference looks like an input cogscope did not capture (the clock, random numbers)
- `state_protocol`: how a user's own agent hands cogscope its state (`state_dir`, snapshot()/restore()) and gets it back
- `state_blobs`: the kept starting states of users' own agents, one file per distinct state, named by its SHA-256

Getting spans out (tracing, redaction, the spool, Phoenix)
- `tracing`: the set-up: one TracerProvider, the instrumentor, the exporters in their order
- `instrumentor`: the smolagents instrumentor (OpenInference's, with lighter wrappers)
- `context_guard`: keeps CPython < 3.12 from crashing on a garbage collection inside a context-variable set
- `writer`: takes each span off the agent's thread as it ends and exports it from a thread of its own
- `compact`: compact LLM spans (only what is new in a prompt), and the whole prompt rebuilt
- `redaction`: the rules that find secrets, and the `Redactor` that blanks them in any text
- `secret_forms`: the forms a known secret takes in text (hex, base64, spelt out...), for `redaction`
- `redacted_output`: redaction in the way out: the span exporter wrapper and the CLI's stdout/stderr
- `signing`: which cycles this installation recorded (an HMAC over the root span's replay attributes)
- `sealing`: the content seal over what replay takes from every span of a cycle
- `spool`: the on-disk queue every span waits in until Phoenix has stored it, and the exporter that fills it
- `sender`: the thread that sends spooled spans to Phoenix in batches and confirms they are stored
- `phoenix_server`: the embedded Phoenix process: reuse one that answers, or start `phoenix serve` on loopback
- `database_url`: the PostgreSQL URL Phoenix may store in: its check, the connection probe, its password blanked
- `host_guard`: refuses what a page of another site sends to a local server (loaded by Phoenix too)
- `children`: child servers that never outlive cogscope, however it ends
- `errors`: the telemetry errors (`TelemetryError` and the Phoenix ones)

Reading cycles back and what they cost
- `phoenix_spans`: reading spans back from Phoenix with its own client; trace links
- `span_transfer`: a trace's spans out of one Phoenix and into another, in Phoenix's own span shape
- `frames`: in-process spans as a frame in the layout of Phoenix's own
- `tables`: spans -> the cycles, steps and calls tables, and the one pricing function (`price`)
- `cycle_list`: the cycles and calls read back from Phoenix (only the columns needed); the Traces list
- `steps`: what happened in each step (the step-through)
- `prices`: the prices per model (LiteLLM's map and the prices file), and `usd`, how amounts are written
- `phoenix_prices`: the prices file's models registered in Phoenix, so that Phoenix's own cost is cogscope's
- `figures`: the Dashboard's and `cogscope cost`'s statistics and breakdowns
- `projection`: a cycle's cost per day and per month, and the what-if
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and readers see; at run time each name loads on first use (below)
    from .attributes import ERROR, FAILED, MAX_STEPS, OK, STATUSES, STEP_ERRORS
    from .bundle import (
        BUNDLE_SUFFIX,
        Bundle,
        BundleError,
        Manifest,
        bundle_prices_entry,
        file_sha256,
        read_bundle,
        write_bundle,
    )
    from .children import spawn_tied
    from .cycle_list import CycleFilter, cycle_records, list_cycles
    from .cycle_runner import Cycle, CycleResult
    from .cycle_spec import CycleSpec
    from .database_url import check_database_url
    from .errors import (
        AgentStateError,
        PhoenixError,
        PhoenixPortTaken,
        PhoenixStartFailed,
        PhoenixUnreachable,
        TelemetryError,
    )
    from .figures import CycleFigures, Scope, breakdown, per_cycle, select, summary
    from .frames import spans_to_frame
    from .host_guard import HostGuard, HostRules, is_loopback_name, plain_answer
    from .phoenix_prices import register_prices
    from .phoenix_server import PhoenixServer, connect_phoenix, ensure_phoenix, free_port, port_in_use
    from .phoenix_spans import TRACE_ID, phoenix_client, trace_spans, trace_url, wait_for_trace
    from .prices import Prices, PricesError, counted, load_prices, price_map_models, usd
    from .projection import Projection, measured_interval, project, what_if
    from .recorder import record, stop
    from .redacted_output import redacted_stdio
    from .redaction import clean_text, clean_value, default_redactor, redact, redact_value
    from .replay import Recording, Replay, ReplayError, prepare_replay
    from .sender import otlp_headers
    from .signing import Signer
    from .span_transfer import SpanTransferError, log_trace_spans, trace_projects, trace_span_records
    from .spool import Spool
    from .state_blobs import StateBlobs
    from .state_protocol import FILES, SNAPSHOT, parse_state_id, restore_into, state_checkpoint, warn_unused_methods
    from .steps import StepView, ToolCall, model_messages, step_record
    from .tables import CycleTotals, TraceTables, trace_tables
    from .tracing import DEFAULT_PROJECT, Tracing, setup_tracing

_EXPORTS: dict[str, str] = {  # name -> the submodule that defines it
    "ERROR": "attributes",
    "FAILED": "attributes",
    "MAX_STEPS": "attributes",
    "OK": "attributes",
    "STATUSES": "attributes",
    "STEP_ERRORS": "attributes",
    "BUNDLE_SUFFIX": "bundle",
    "Bundle": "bundle",
    "BundleError": "bundle",
    "Manifest": "bundle",
    "bundle_prices_entry": "bundle",
    "file_sha256": "bundle",
    "read_bundle": "bundle",
    "write_bundle": "bundle",
    "spawn_tied": "children",
    "Cycle": "cycle_runner",
    "CycleResult": "cycle_runner",
    "CycleSpec": "cycle_spec",
    "CycleFilter": "cycle_list",
    "cycle_records": "cycle_list",
    "list_cycles": "cycle_list",
    "AgentStateError": "errors",
    "PhoenixError": "errors",
    "PhoenixPortTaken": "errors",
    "PhoenixStartFailed": "errors",
    "PhoenixUnreachable": "errors",
    "TelemetryError": "errors",
    "CycleFigures": "figures",
    "Scope": "figures",
    "breakdown": "figures",
    "per_cycle": "figures",
    "select": "figures",
    "summary": "figures",
    "spans_to_frame": "frames",
    "HostGuard": "host_guard",
    "HostRules": "host_guard",
    "is_loopback_name": "host_guard",
    "plain_answer": "host_guard",
    "register_prices": "phoenix_prices",
    "PhoenixServer": "phoenix_server",
    "check_database_url": "database_url",
    "connect_phoenix": "phoenix_server",
    "ensure_phoenix": "phoenix_server",
    "free_port": "phoenix_server",
    "port_in_use": "phoenix_server",
    "TRACE_ID": "phoenix_spans",
    "phoenix_client": "phoenix_spans",
    "trace_spans": "phoenix_spans",
    "trace_url": "phoenix_spans",
    "wait_for_trace": "phoenix_spans",
    "Prices": "prices",
    "PricesError": "prices",
    "counted": "prices",
    "load_prices": "prices",
    "price_map_models": "prices",
    "usd": "prices",
    "Projection": "projection",
    "measured_interval": "projection",
    "project": "projection",
    "what_if": "projection",
    "record": "recorder",
    "stop": "recorder",
    "clean_text": "redaction",
    "clean_value": "redaction",
    "default_redactor": "redaction",
    "redact": "redaction",
    "redact_value": "redaction",
    "redacted_stdio": "redacted_output",
    "Recording": "replay",
    "Replay": "replay",
    "ReplayError": "replay",
    "prepare_replay": "replay",
    "Signer": "signing",
    "SpanTransferError": "span_transfer",
    "log_trace_spans": "span_transfer",
    "trace_projects": "span_transfer",
    "trace_span_records": "span_transfer",
    "StateBlobs": "state_blobs",
    "FILES": "state_protocol",
    "SNAPSHOT": "state_protocol",
    "parse_state_id": "state_protocol",
    "restore_into": "state_protocol",
    "state_checkpoint": "state_protocol",
    "warn_unused_methods": "state_protocol",
    "Spool": "spool",
    "otlp_headers": "sender",
    "StepView": "steps",
    "ToolCall": "steps",
    "model_messages": "steps",
    "step_record": "steps",
    "CycleTotals": "tables",
    "TraceTables": "tables",
    "trace_tables": "tables",
    "DEFAULT_PROJECT": "tracing",
    "Tracing": "tracing",
    "setup_tracing": "tracing",
}


def __getattr__(name: str) -> Any:
    """Load an export's submodule on first use (PEP 562): `cogscope traces` needs the tables, not smolagents,
    OpenInference or the OTLP exporter, and every import is start-up time of every command."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "AgentStateError",
    "BUNDLE_SUFFIX",
    "Bundle",
    "BundleError",
    "Cycle",
    "CycleFigures",
    "CycleFilter",
    "CycleResult",
    "CycleSpec",
    "CycleTotals",
    "DEFAULT_PROJECT",
    "ERROR",
    "FAILED",
    "FILES",
    "HostGuard",
    "HostRules",
    "MAX_STEPS",
    "Manifest",
    "OK",
    "PhoenixError",
    "PhoenixPortTaken",
    "PhoenixServer",
    "PhoenixStartFailed",
    "PhoenixUnreachable",
    "Prices",
    "PricesError",
    "Projection",
    "Recording",
    "Replay",
    "ReplayError",
    "SNAPSHOT",
    "STATUSES",
    "STEP_ERRORS",
    "Scope",
    "Signer",
    "SpanTransferError",
    "Spool",
    "StateBlobs",
    "StepView",
    "TRACE_ID",
    "TelemetryError",
    "ToolCall",
    "TraceTables",
    "Tracing",
    "breakdown",
    "bundle_prices_entry",
    "check_database_url",
    "clean_text",
    "clean_value",
    "connect_phoenix",
    "counted",
    "cycle_records",
    "default_redactor",
    "ensure_phoenix",
    "file_sha256",
    "free_port",
    "is_loopback_name",
    "list_cycles",
    "load_prices",
    "log_trace_spans",
    "measured_interval",
    "model_messages",
    "otlp_headers",
    "parse_state_id",
    "per_cycle",
    "phoenix_client",
    "plain_answer",
    "port_in_use",
    "prepare_replay",
    "price_map_models",
    "project",
    "read_bundle",
    "record",
    "redact",
    "redact_value",
    "redacted_stdio",
    "register_prices",
    "restore_into",
    "select",
    "setup_tracing",
    "spans_to_frame",
    "spawn_tied",
    "state_checkpoint",
    "step_record",
    "stop",
    "summary",
    "trace_projects",
    "trace_span_records",
    "trace_spans",
    "trace_tables",
    "trace_url",
    "usd",
    "wait_for_trace",
    "warn_unused_methods",
    "what_if",
    "write_bundle",
]
