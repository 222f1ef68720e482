"""Errors raised by cogscope's telemetry package.

TelemetryError              base: every message says what is wrong and what to do
└── PhoenixError            Phoenix cannot be started, reused or reached
    ├── PhoenixPortTaken    the port answers, but not as Phoenix
    ├── PhoenixStartFailed  `phoenix serve` exited or did not answer in time
    └── PhoenixUnreachable  a configured (remote) Phoenix does not answer
└── AgentStateError         a user agent's state cannot be taken, kept or given back (telemetry.state_protocol)
    ├── StateBlobMissing    (state_blobs) not kept here: pruned, or kept on another data dir
    ├── StateBlobCorrupt    (state_blobs) fails its checksum
    └── StateProtocolError  (state_protocol) what the agent or its folder gave is not a state cogscope keeps
"""

from __future__ import annotations


class TelemetryError(Exception):
    """Base class; str(error) is one line a user can act on."""


class PhoenixError(TelemetryError):
    pass


class PhoenixPortTaken(PhoenixError):
    pass


class PhoenixStartFailed(PhoenixError):
    pass


class PhoenixUnreachable(PhoenixError):
    pass


class AgentStateError(TelemetryError):
    """A user agent's state that cannot be taken, kept or given back (telemetry.state_protocol, state_blobs)."""
