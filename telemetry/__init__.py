"""cogscope telemetry: tracing set-up, the embedded Phoenix, the spool, and the three tables every view reads.

Never imports `agents`: whatever needs an agent receives it (or a factory) as an argument. `ui` imports only the
names below (tests/test_packages.py pins this).

Where things are:
- `attributes`: every `cogscope.*` span attribute, the cycle statuses, the span-name rules
- `tables`: spans -> the cycles, steps and calls tables, and the one pricing function (`price`)
- `cycles`: reading those tables back from Phoenix; the Traces list
- `figures`: the Dashboard's and `cogscope cost`'s statistics and breakdowns
- `projection`: a cycle's cost per day and per month, and the what-if
- `prices`: the prices per model (LiteLLM's map and the prices file), and `usd`, how amounts are written
- `steps`: what happened in each step (the step-through); `replay`: deterministic replay and fork
- `cycle`: running one cycle under its root span; `tracing`, `spool`, `redaction`, `signing`: getting spans out
"""

from .attributes import ERROR, FAILED, MAX_STEPS, OK, STATUSES, STEP_ERRORS
from .children import spawn_tied
from .cycle import Cycle, CycleResult, CycleSpec
from .cycles import CycleFilter, cycle_records, list_cycles
from .errors import PhoenixError, PhoenixPortTaken, PhoenixStartFailed, PhoenixUnreachable, TelemetryError
from .figures import CycleFigures, Scope, breakdown, per_cycle, select, summary
from .frames import spans_to_frame
from .phoenix_server import (
    PhoenixServer,
    check_database_url,
    connect_phoenix,
    ensure_phoenix,
    free_port,
    port_in_use,
)
from .phoenix_spans import TRACE_ID, phoenix_client, trace_spans, trace_url, wait_for_trace
from .prices import Prices, PricesError, counted, load_prices, price_map_models, usd
from .projection import Projection, measured_interval, project, what_if
from .redaction import clean_text, clean_value, default_redactor, redact, redact_value, redacted_stdio
from .replay import Recording, Replay, ReplayError, prepare_replay
from .signing import Signer
from .spool import Spool, otlp_headers
from .steps import StepView, ToolCall
from .tables import CycleTotals, TraceTables, trace_tables
from .tracing import DEFAULT_PROJECT, Tracing, setup_tracing

__all__ = [
    "DEFAULT_PROJECT",
    "ERROR",
    "FAILED",
    "MAX_STEPS",
    "OK",
    "STATUSES",
    "STEP_ERRORS",
    "TRACE_ID",
    "Cycle",
    "CycleFigures",
    "CycleFilter",
    "CycleResult",
    "CycleSpec",
    "CycleTotals",
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
    "Scope",
    "Signer",
    "Spool",
    "StepView",
    "TelemetryError",
    "ToolCall",
    "TraceTables",
    "Tracing",
    "breakdown",
    "check_database_url",
    "clean_text",
    "clean_value",
    "connect_phoenix",
    "cycle_records",
    "default_redactor",
    "ensure_phoenix",
    "free_port",
    "list_cycles",
    "load_prices",
    "measured_interval",
    "otlp_headers",
    "per_cycle",
    "phoenix_client",
    "port_in_use",
    "prepare_replay",
    "price_map_models",
    "project",
    "redact",
    "redact_value",
    "redacted_stdio",
    "select",
    "setup_tracing",
    "spans_to_frame",
    "spawn_tied",
    "summary",
    "trace_spans",
    "trace_tables",
    "trace_url",
    "counted",
    "usd",
    "wait_for_trace",
    "what_if",
]
