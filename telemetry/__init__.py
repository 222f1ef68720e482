"""cogscope telemetry: tracing set-up, the embedded Phoenix, span queries and cycles.

Never imports `agents`: whatever needs an agent receives it (or a factory) as an argument.
"""

from .cycle import (
    ERROR,
    FAILED,
    MAX_STEPS,
    OK,
    STEP_ERRORS,
    Cycle,
    CycleResult,
    CycleSpec,
)
from .errors import PhoenixError, PhoenixPortTaken, PhoenixStartFailed, PhoenixUnreachable, TelemetryError
from .frames import CycleTotals, cycle_totals, spans_to_frame
from .phoenix_server import PhoenixServer, connect_phoenix, ensure_phoenix, free_port
from .phoenix_spans import TRACE_ID, phoenix_client, trace_spans, trace_url, wait_for_trace
from .tracing import DEFAULT_PROJECT, Tracing, setup_tracing

__all__ = [
    "TRACE_ID",
    "DEFAULT_PROJECT",
    "ERROR",
    "FAILED",
    "MAX_STEPS",
    "OK",
    "STEP_ERRORS",
    "Cycle",
    "CycleResult",
    "CycleSpec",
    "CycleTotals",
    "PhoenixError",
    "PhoenixPortTaken",
    "PhoenixServer",
    "PhoenixStartFailed",
    "PhoenixUnreachable",
    "TelemetryError",
    "Tracing",
    "connect_phoenix",
    "cycle_totals",
    "ensure_phoenix",
    "free_port",
    "phoenix_client",
    "setup_tracing",
    "spans_to_frame",
    "trace_spans",
    "trace_url",
    "wait_for_trace",
]
