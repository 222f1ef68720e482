"""Settings from the environment: one place that names every variable cogscope reads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

LOCAL_MODEL = "local"


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise UsageError(f"{name}={raw!r} is not a port number; use a number from 1 to 65535")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str
    port: int
    phoenix_port: int
    phoenix_endpoint: str | None  # a Phoenix to use instead of starting one
    project: str
    model: str
    api_base: str | None
    llm_port: int

    @property
    def phoenix_dir(self) -> Path:
        return self.data_dir / "phoenix"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("COGSCOPE_DATA_DIR") or Path.home() / ".local" / "share" / "cogscope").expanduser()
        return cls(
            data_dir=data_dir,
            host=env.get("COGSCOPE_HOST", "").strip() or "127.0.0.1",
            port=_port(env, "COGSCOPE_PORT", 7860),
            phoenix_port=_port(env, "COGSCOPE_PHOENIX_PORT", 6006),
            phoenix_endpoint=env.get("PHOENIX_COLLECTOR_ENDPOINT", "").strip() or None,
            project=env.get("COGSCOPE_PROJECT", "").strip() or "cogscope",
            model=env.get("COGSCOPE_MODEL", "").strip() or LOCAL_MODEL,
            api_base=env.get("COGSCOPE_API_BASE", "").strip() or None,
            llm_port=_port(env, "COGSCOPE_LLM_PORT", 8765),
        )
