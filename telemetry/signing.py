"""Which cycles this installation recorded: an HMAC over the root span's replay attributes.

Phoenix accepts spans from anyone who can reach its collector, so a trace in the project
may be forged. cogscope signs every root span it writes with a key kept in the data dir
(`trace.key`, mode 0600, made on first use); a trace whose signature checks out was recorded
here, with exactly the agent, options, models and MCP commands it shows. Anything else is
marked "not recorded here" in the Traces list and in `cogscope show`. The same key seals what replay
takes from every span of the cycle (telemetry.sealing): a signed trace whose spans no longer match
is marked "changed after recording".

The signature says where a trace came from, not that its code is safe: replay still runs a
recorded agent file or MCP command only when the operator trusts it (ui/trust.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .attributes import ATTR_SIGNATURE, SIGNED

KEY_FILE = "trace.key"


def _message(trace_id: str, attributes: Mapping[str, Any]) -> bytes:
    fields = {key: _plain(attributes.get(key)) for key in SIGNED}
    return json.dumps([trace_id.lower(), fields], sort_keys=True, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    """One spelling of a value however a reader returns it: None for missing or empty (None, NaN, '{}', []),
    JSON text in canonical form (Phoenix may hand back '{}' as None and JSON text as objects)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if hasattr(value, "tolist"):  # numpy arrays from a frame
        value = value.tolist()
    if value in ({}, [], "", None):
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class Signer:
    """Signs and checks root spans with one secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a signing key needs at least 16 bytes")
        self._key = key

    @classmethod
    def from_dir(cls, data_dir: Path) -> Signer:
        """The key in `data_dir/trace.key`, made (0600) when missing."""
        path = data_dir / KEY_FILE
        try:
            key = bytes.fromhex(path.read_text().strip())
        except (OSError, ValueError):
            key = b""
        if len(key) < 16:
            data_dir.mkdir(parents=True, exist_ok=True)
            key = secrets.token_bytes(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(key.hex())
        return cls(key)

    def sign(self, trace_id: str, attributes: Mapping[str, Any]) -> str:
        return hmac.new(self._key, _message(trace_id, attributes), hashlib.sha256).hexdigest()

    def verify(self, trace_id: str, attributes: Mapping[str, Any]) -> bool:
        """Was this root span written by this installation, with these very attributes?"""
        signature = attributes.get(ATTR_SIGNATURE)
        if not isinstance(signature, str):
            return False
        return hmac.compare_digest(signature, self.sign(trace_id, attributes))

    def seal(self, trace_id: str, content_digest: str) -> str:
        """The seal of a trace's content (telemetry.sealing): an HMAC over its id and the digest of its spans."""
        message = json.dumps(["seal", trace_id.lower(), content_digest], separators=(",", ":")).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def check_seal(self, trace_id: str, content_digest: str, seal: str) -> bool:
        return hmac.compare_digest(seal, self.seal(trace_id, content_digest))

    def __repr__(self) -> str:  # never print the key
        return "Signer(<key>)"
