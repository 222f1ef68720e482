"""Settings from the environment: one place that names every variable cogscope reads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from cogscope import defaults
from cogscope.telemetry import Prices, PricesError, check_database_url, load_prices

from .errors import UsageError
from .local_llm import MODEL_ID as LOCAL_MODEL_ID

LOCAL_MODEL = defaults.LOCAL_MODEL


def _positive(environ: Mapping[str, str], name: str, default: float, *, most: float, unit: str, example: str) -> float:
    """A positive number from the environment, at most `most` (nan and inf refused); one line when it is not."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= most:  # also refuses nan and inf
        raise UsageError(f"{name}={raw!r} is not a number of {unit}; use a positive number such as {example}")
    return value


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    return _positive(environ, name, default, most=10**7, unit="seconds", example="60")


def _days(environ: Mapping[str, str], name: str, default: float) -> float:
    return _positive(environ, name, default, most=36_500, unit="days", example="30")


def _megabytes(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 64) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not minimum <= int(raw) <= 1_048_576:
        raise UsageError(f"{name}={raw!r} is not a size in MB; use a whole number from {minimum} to 1048576")
    return int(raw)


def _database_url(environ: Mapping[str, str], name: str) -> str | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return check_database_url(raw)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _project(environ: Mapping[str, str], where: str = "COGSCOPE_PROJECT") -> str:
    raw = environ.get("COGSCOPE_PROJECT", "").strip() or defaults.PROJECT
    if len(raw) > 200 or any(c in raw for c in "/?#") or not raw.isprintable():
        raise UsageError(
            f"{where}{'=' if where.isupper() else ' '}{raw[:60]!r} cannot name a Phoenix project (no / ? # or "
            "control characters, at most 200); use a name such as my-agents"
        )
    return raw


def load_prices_file(path: str | None, where: str = "COGSCOPE_PRICES") -> Prices:
    """The prices every view uses: LiteLLM's price map, the prices file at `path` over it, the bundled model free."""
    try:
        return load_prices(path.strip() or None if path else None, free=frozenset({LOCAL_MODEL_ID}))
    except PricesError as e:
        raise UsageError(f"{where}: {e}") from None


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise UsageError(f"{name}={raw!r} is not a yes/no value; use 1 or 0")


def _count(environ: Mapping[str, str], name: str, default: int, what: str) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise UsageError(f"{name}={raw!r} is not a number of {what}; use a whole number from 1 to 1000")
    return int(raw)


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
    # bounds (README "Security"): each ends the cycle with a status and a step error that name it
    llm_timeout: float = defaults.LLM_TIMEOUT_S  # seconds one LLM call may take
    step_timeout: float = defaults.STEP_TIMEOUT_S  # wall-clock and CPU seconds one code step may take in the sandbox
    cycle_timeout: float = defaults.CYCLE_TIMEOUT_S  # wall-clock seconds one whole cycle may take
    sandbox_memory_mb: int = defaults.SANDBOX_MEMORY_MB  # address space of the worker running model code
    sandbox_network: bool = False  # may model-written code open network connections?
    sandbox_disk_mb: int = defaults.SANDBOX_DISK_MB  # all the files of one sandbox worker's folder together
    sandbox_weak: bool = False  # COGSCOPE_SANDBOX_WEAK=1: run model code without Landlock/seccomp (weaker)
    allowed_mcp: tuple[str, ...] = ()  # COGSCOPE_ALLOW_MCP: MCP commands trusted for remote users and replays
    # COGSCOPE_DATABASE_URL: the PostgreSQL the Phoenix cogscope starts stores in (else SQLite in phoenix_dir);
    # it holds a password: kept out of repr, shown only through telemetry.database_url.shown_database_url
    database_url: str | None = field(default=None, repr=False)
    # the span spool (telemetry.spool): spans wait on disk until Phoenix has stored them
    spool_mb: int = defaults.SPOOL_MB  # the most the spool may hold; beyond it new spans are dropped, with a warning
    drain_timeout: float = defaults.DRAIN_TIMEOUT_S  # seconds an ending command waits for its spool
    # COGSCOPE_PRICES: the prices file (TOML) every view reads, over LiteLLM's price map; --prices overrides it
    prices: Prices = field(default_factory=lambda: load_prices_file(None))
    # COGSCOPE_FULL_PROMPTS=1: every LLM span keeps its whole prompt (Phoenix's playground); else only what is new
    full_prompts: bool = False
    project_named: bool = False  # the project was named on the command line (--project): it must exist
    # a shared app (ui.slots): how many cycles run side by side; the rest wait in line, their place shown
    max_cycles: int = defaults.MAX_CYCLES  # COGSCOPE_MAX_CYCLES: cycles on API models (they mostly wait on the network)
    max_local_cycles: int = defaults.MAX_LOCAL_CYCLES  # COGSCOPE_MAX_LOCAL_CYCLES: cycles on the bundled CPU model only
    public_url: str | None = None  # COGSCOPE_PUBLIC_URL: the address people open behind a reverse proxy
    # COGSCOPE_STATE_DAYS: how long the memory store keeps the state each cycle started from (older points pruned)
    state_days: float = defaults.STATE_DAYS

    def with_project(self, name: str) -> Settings:
        """These settings reading another Phoenix project (a command's --project), checked as COGSCOPE_PROJECT is."""
        return replace(self, project=_project({"COGSCOPE_PROJECT": name}, "--project"), project_named=True)

    def with_prices(self, path: str) -> Settings:
        """These settings with the prices file at `path` (a command's --prices)."""
        return replace(self, prices=load_prices_file(path, "--prices"))

    @property
    def phoenix_dir(self) -> Path:
        return self.data_dir / defaults.PHOENIX_FOLDER

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            data_dir=defaults.data_dir(env),
            host=env.get("COGSCOPE_HOST", "").strip() or defaults.HOST,
            port=_port(env, "COGSCOPE_PORT", defaults.APP_PORT),
            phoenix_port=_port(env, "COGSCOPE_PHOENIX_PORT", defaults.PHOENIX_PORT),
            phoenix_endpoint=env.get("PHOENIX_COLLECTOR_ENDPOINT", "").strip() or None,
            project=_project(env),
            model=env.get("COGSCOPE_MODEL", "").strip() or LOCAL_MODEL,
            api_base=env.get("COGSCOPE_API_BASE", "").strip() or None,
            llm_port=_port(env, "COGSCOPE_LLM_PORT", defaults.LLM_PORT),
            llm_timeout=_seconds(env, "COGSCOPE_LLM_TIMEOUT", defaults.LLM_TIMEOUT_S),
            step_timeout=_seconds(env, "COGSCOPE_STEP_TIMEOUT", defaults.STEP_TIMEOUT_S),
            cycle_timeout=_seconds(env, "COGSCOPE_CYCLE_TIMEOUT", defaults.CYCLE_TIMEOUT_S),
            sandbox_memory_mb=_megabytes(env, "COGSCOPE_SANDBOX_MEMORY_MB", defaults.SANDBOX_MEMORY_MB),
            sandbox_network=_flag(env, "COGSCOPE_SANDBOX_NETWORK"),
            sandbox_disk_mb=_megabytes(env, "COGSCOPE_SANDBOX_DISK_MB", defaults.SANDBOX_DISK_MB, minimum=1),
            sandbox_weak=_flag(env, "COGSCOPE_SANDBOX_WEAK"),
            allowed_mcp=tuple(line.strip() for line in env.get("COGSCOPE_ALLOW_MCP", "").splitlines() if line.strip()),
            database_url=_database_url(env, "COGSCOPE_DATABASE_URL"),
            spool_mb=_megabytes(env, "COGSCOPE_SPOOL_MB", defaults.SPOOL_MB, minimum=1),
            drain_timeout=_seconds(env, "COGSCOPE_DRAIN_TIMEOUT", defaults.DRAIN_TIMEOUT_S),
            prices=load_prices_file(env.get("COGSCOPE_PRICES")),
            full_prompts=_flag(env, "COGSCOPE_FULL_PROMPTS"),
            max_cycles=_count(env, "COGSCOPE_MAX_CYCLES", defaults.MAX_CYCLES, "cycles"),
            max_local_cycles=_count(env, "COGSCOPE_MAX_LOCAL_CYCLES", defaults.MAX_LOCAL_CYCLES, "cycles"),
            public_url=env.get("COGSCOPE_PUBLIC_URL", "").strip() or None,
            state_days=_days(env, "COGSCOPE_STATE_DAYS", defaults.STATE_DAYS),
        )
