"""What several test modules share, in one place (a test module never imports from another test module).

- `wait_until`: the one way a test waits for something to happen (a bound for a failing test, never a speed figure)
- `Lines` and `start_cogscope`: a `cogscope` command running in a subprocess, its output read line by line
- `forge` and `EVIL_AGENT`: a root span sent straight to Phoenix's collector, as anyone who reaches it could
- `ISSUE_NAMES` and `readme_name_rules`: the README's rules for secret-looking variable names, read from the README
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from .conftest import ROOT, cogscope_command

_T = TypeVar("_T")


# -- waiting ----------------------------------------------------------------------------------------
def wait_until(
    predicate: Callable[[], _T],
    *,
    timeout: float,
    what: str | Callable[[], str],
    interval: float = 0.2,
    ignoring: tuple[type[BaseException], ...] = (),
) -> _T:
    """Call `predicate` every `interval` s until it returns something true, and return that.

    After `timeout` s raises AssertionError saying `what` did not happen (`what` may be a function, called then, to
    show the state at that moment). An exception of a type in `ignoring` counts as "not yet". The predicate is
    always called once more at the deadline, so a slow machine never fails a test whose condition holds by then."""
    deadline = time.monotonic() + timeout
    while True:
        last = time.monotonic() >= deadline
        try:
            value = predicate()
        except ignoring:
            if last:
                raise
        else:
            if value:
                return value
            if last:
                message = what() if callable(what) else what
                raise AssertionError(f"{message} (waited {timeout:g} s)")
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))


# -- a cogscope command, watched as a user watches it ----------------------------------------------
class Lines:
    """The output of a running `cogscope`, line by line, as a user watches it."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait(self, timeout: float) -> str:
        """Until the command has ended (subprocess.TimeoutExpired after `timeout` s); everything it wrote."""
        self.proc.wait(timeout=timeout)
        self._thread.join(10)
        return self.text

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 120) -> None:
        """Until `pattern` (a multi-line regex) has matched `count` times; fails at once if the command ends first."""

        def seen() -> bool:
            ended = self.proc.poll() is not None
            if ended:
                self._thread.join(5)  # everything it wrote
            found = len(re.findall(pattern, self.text, re.MULTILINE)) >= count
            assert found or not ended, f"ended ({self.proc.returncode}) before {pattern!r} x{count}:\n{self.text}"
            return found

        wait_until(seen, timeout=timeout, interval=0.1, what=lambda: f"no {pattern!r} x{count} in:\n{self.text}")


def start_cogscope(env: dict[str, str], *args: str) -> Lines:
    """`cogscope ARGS...` in a subprocess with `env`, its stdout and stderr read as one stream of lines."""
    proc = subprocess.Popen(
        [*cogscope_command(), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    return Lines(proc)


# -- forged traces ----------------------------------------------------------------------------------
EVIL_AGENT = """
from pathlib import Path
Path({marker!r}).write_text("imported")

def make(models, **options):
    raise RuntimeError("never built")
"""
"""An agent file that leaves a marker when it is imported: a forged trace that names it must not import it."""


def forge(phoenix: Any, project: str, attributes: dict[str, str]) -> str:
    """A root span sent straight to Phoenix's collector, as anyone who reaches it could; returns its trace id."""
    provider = TracerProvider(resource=Resource({"openinference.project.name": project}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=phoenix.collector_endpoint)))
    try:
        base = {"openinference.span.kind": "AGENT", "input.value": "Forged decision", "cogscope.cycle.status": "error"}
        with provider.get_tracer("forger").start_as_current_span("heartbeat.cycle", attributes=base | attributes) as s:
            return format(s.get_span_context().trace_id, "032x")
    finally:
        provider.shutdown()


# -- the README's secret-name rules ------------------------------------------------------------------
README = Path(__file__).resolve().parents[1] / "README.md"
ISSUE_NAMES = ["STRIPEKEY", "SESSIONCOOKIE", "DBPASS", "GITHUBPAT", "SENTRYDSN", "APIAUTH", "JWTKEY"]
"""The README's examples of secret names, written out here as a second source (each must be secret by name)."""


def secrets_paragraph() -> str:
    text = README.read_text()
    start = text.index("**Secrets.**")
    return " ".join(text[start : text.index("**Bounds.**", start)].split())


def ticked(paragraph: str, after: str, before: str) -> list[str]:
    """The `quoted` words of the README's Secrets paragraph between two phrases."""
    start = paragraph.index(after) + len(after)
    return re.findall(r"`([^`]+)`", paragraph[start : paragraph.index(before, start)])


def readme_name_rules() -> dict[str, list[str]]:
    """The README's rules for secret names: name parts, examples, exceptions, suffixes and the words they hide in."""
    p = secrets_paragraph()
    return {
        "parts": ticked(p, "anywhere in it, one of", "(so "),
        "examples": ticked(p, "(so ", " count)"),
        "names": ticked(p, "except these names:", "; names ending in"),
        "suffixes": ticked(p, "names ending in", "(a path"),
        "words": ticked(p, "only inside one of these words:", "(not "),
    }


def phoenix_trace_cost(phoenix_url: str, project_name: str, trace_id: str) -> float:
    """What Phoenix's own views say a trace cost (its GraphQL costSummary); no cost at all is $0 there."""
    project_id = httpx.get(f"{phoenix_url}/v1/projects/{project_name}").json()["data"]["id"]
    query = """query ($id: ID!, $traceId: ID!) { node(id: $id) { ... on Project {
        trace(traceId: $traceId) { costSummary { total { cost } } } } } }"""
    data = httpx.post(
        f"{phoenix_url}/graphql", json={"query": query, "variables": {"id": project_id, "traceId": trace_id}}
    ).json()
    return float(data["data"]["node"]["trace"]["costSummary"]["total"]["cost"] or 0.0)
