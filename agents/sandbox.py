"""The sandbox: every CodeAgent's model-written code runs in a worker process of its own, behind walls.

    sandbox = Sandbox(agent, limits=SandboxLimits(step_seconds=60), workdir=data_dir / "sandbox" / uid,
                      on_limit=cycle.stop)
    ... agent.run(task) ...      # each code step runs in agents/sandbox_worker.py
    sandbox.close()              # kills the workers, removes the working folder

`Sandbox` puts a `SandboxExecutor` in place of the `python_executor` of the agent and of every CodeAgent
among its managed agents (recursively). A ToolCallingAgent has no executor: its tools run in-process as
they always did (it runs no model-written code, only tool calls the model names).

Each executor starts its worker when smolagents sends it the tools (at the start of a run), so the worker
is warm by the first code step, and keeps it for the rest of the cycle: variables live on from step to
step as with smolagents' LocalPythonExecutor. The worker runs the code with that same LocalPythonExecutor
(import allow-list, dunder checks) plus the walls described in `sandbox_worker`. Tools never enter the
worker: it holds proxies that ask this process, in JSON, to call the real tool or managed agent, which runs
here, in the thread that runs the agent, so its trace spans nest under the step exactly as before.

A limit (wall clock, CPU, memory, the folder's disk where the app measures it) or a worker that dies ends the
cycle: the executor raises an exception whose message is one line naming the limit (smolagents makes it the
step's error), calls `on_limit(reason)` once, and no executor of this sandbox starts a worker again.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

from smolagents import CodeAgent, MultiStepAgent
from smolagents.local_python_executor import CodeOutput, InterpreterError, PythonExecutor

from .errors import AgentsError
from .walls import real_root

WORKER = Path(__file__).with_name("sandbox_worker.py")
NOBODY = 65534
MAX_MESSAGE = 32 * 1024 * 1024  # bytes of one JSON line from the worker
START_TIMEOUT_S = 60.0  # a worker that is not ready by then is broken
WALL_GRACE_S = 1.5  # the CPU limit is in whole seconds: past it, so a busy loop is told as CPU, a sleep as time
MEMORY_EXIT = 86  # the worker's exit code after a MemoryError it could not report
DISK_POLL_S = 0.05  # how often the folder is measured where no size-limited file system holds it


class SandboxError(AgentsError):
    """The sandbox could not run a code step; the message says why."""


class SandboxLimit(SandboxError):
    """A limit ended the cycle (or the worker died): `reason` is the one line that says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SandboxLimits:
    step_seconds: float = 60.0  # wall clock and CPU of one code step (COGSCOPE_STEP_TIMEOUT)
    cycle_cpu_seconds: float = 900.0  # CPU of one worker over the whole cycle (COGSCOPE_CYCLE_TIMEOUT)
    memory_mb: int = 1024  # address space of a worker (COGSCOPE_SANDBOX_MEMORY_MB)
    network: bool = False  # may the code open sockets? (COGSCOPE_SANDBOX_NETWORK)
    file_mb: int = 64  # the largest file the code may write
    open_files: int = 64  # descriptors the worker may hold
    disk_mb: int = 256  # all the files of a working folder together (COGSCOPE_SANDBOX_DISK_MB)
    weak: bool = False  # run without Landlock and seccomp where the kernel has none (COGSCOPE_SANDBOX_WEAK)


def valid_text(text: str) -> str:
    """Text that is valid UTF-8: a lone surrogate becomes its escape (\\ud800)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _valid(value: Any) -> Any:
    """What the (hostile) worker sent, with every string made valid text."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [_valid(v) for v in value]
    if isinstance(value, dict):
        return _valid_message(value)
    return value


def _valid_message(message: dict[Any, Any]) -> dict[str, Any]:
    return {valid_text(str(k)): _valid(v) for k, v in message.items()}


def _to_json(value: Any) -> Any:
    """A tool's result as JSON data for the worker; anything else as its str()."""
    try:
        json.dumps(value, ensure_ascii=True)
        return value
    except (TypeError, ValueError, RecursionError):
        return valid_text(str(value))


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


def folder_bytes(folder: Path) -> int:
    """The disk space the files under `folder` take (allocated blocks; links not followed)."""
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def agent_tree(agent: MultiStepAgent) -> Iterator[MultiStepAgent]:
    """The agent and its managed agents, recursively, each once."""
    seen: set[int] = set()
    stack = [agent]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(getattr(current, "managed_agents", {}).values())


class _Malformed(Exception):
    pass


class _Worker:
    """One worker process and the JSON-lines pipe to it."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.stderr: IO[bytes] = tempfile.TemporaryFile()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "LC_ALL": os.environ.get("LC_ALL", "C.UTF-8"),
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            cwd=workdir,
            env=env,
            close_fds=True,
            start_new_session=True,  # Ctrl-C in the terminal is the app's, not the worker's
        )
        self.started = time.monotonic()
        self.buffer = bytearray()
        self.ready = False
        self.walls: dict[str, Any] = {}
        self.cpu_soft = self.cpu_hard = 0
        self.killed_reason: str | None = None
        self.send(config)

    def send(self, message: Mapping[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message, ensure_ascii=True).encode("ascii") + b"\n")
        self.proc.stdin.flush()

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next message, None at end of file; TimeoutError past `deadline`, _Malformed on garbage."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            newline = self.buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self.buffer[:newline])
                del self.buffer[: newline + 1]
                try:
                    message = json.loads(line)
                except (ValueError, RecursionError):
                    raise _Malformed from None
                if not isinstance(message, dict):
                    raise _Malformed
                return _valid_message(message)
            if len(self.buffer) > MAX_MESSAGE:
                raise _Malformed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            readable, _, _ = select.select([fd], [], [], min(remaining, 3600.0))
            if not readable:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            self.buffer += chunk

    def last_words(self) -> str:
        """The last line the worker wrote to stderr (a crash message), shortened."""
        try:
            self.stderr.seek(0, os.SEEK_END)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - 2000))
            tail = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return tail[-1][:200] if tail else ""

    def kill(self, reason: str | None = None) -> None:
        if reason and self.killed_reason is None:
            self.killed_reason = reason
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        self.kill()
        for stream in (self.proc.stdin, self.proc.stdout, self.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


class SandboxExecutor(PythonExecutor):  # type: ignore[misc]  # smolagents has no py.typed: its classes are Any
    """smolagents' PythonExecutor for one CodeAgent, running each code step in the sandbox's worker."""

    def __init__(self, sandbox: Sandbox, agent: CodeAgent, *, label: str = "") -> None:
        self.sandbox = sandbox
        self.agent = agent
        self.label = label  # ' of reasoning' for a managed agent, '' for the top agent
        self.authorized_imports = list(getattr(agent, "authorized_imports", []))
        self.max_print_outputs_length = getattr(agent, "max_print_outputs_length", None)
        self.state: dict[str, Any] = {"_print_outputs": ""}  # smolagents shows these logs when a step fails
        self._tools: dict[str, Any] = {}
        self._variables: dict[str, Any] = {}
        self._worker: _Worker | None = None
        self._steps = 0

    # -- smolagents' PythonExecutor -----------------------------------------------------------------------
    def send_variables(self, variables: dict[str, Any]) -> None:
        fresh = {str(k): _to_json(v) for k, v in variables.items()}
        self._variables.update(fresh)
        if self._worker is not None and self._usable(self._worker):
            self._send(self._worker, {"op": "vars", "variables": fresh})

    def send_tools(self, tools: dict[str, Any]) -> None:
        self._tools = dict(tools)
        if self._worker is not None and self._usable(self._worker):
            self._send(self._worker, {"op": "tools", "tools": sorted(self._tools)})
        elif self.sandbox.stopped is None and not self.sandbox.closed:
            self._start()

    def __call__(self, code_action: str) -> CodeOutput:
        self._steps += 1
        step = f"code step {getattr(self.agent, 'step_number', None) or self._steps}{self.label}"
        self.state["_print_outputs"] = ""
        worker = self._worker_for(step)
        self._send(worker, {"op": "run", "code": code_action}, step)
        deadline = time.monotonic() + self.sandbox.limits.step_seconds + WALL_GRACE_S
        final_answer: list[Any] = []
        while True:
            message = self._receive(worker, deadline, step)
            op = message.get("op")
            if op == "started":
                worker.cpu_soft, worker.cpu_hard = _int(message.get("cpu_soft")), _int(message.get("cpu_hard"))
            elif op == "call":
                # time spent in the tool is the tool's, not the code's
                deadline += self._answer_call(worker, message, final_answer, step)
            elif op == "done":
                output = final_answer[-1] if message.get("is_final_answer") and final_answer else message.get("output")
                return CodeOutput(
                    output=output,
                    logs=str(message.get("logs", "")),
                    is_final_answer=bool(message.get("is_final_answer")),
                )
            elif op == "error":
                self.state["_print_outputs"] = str(message.get("logs", ""))
                raise InterpreterError(str(message.get("error", "the code failed")))
            elif op == "limit" and message.get("kind") == "memory":
                self.state["_print_outputs"] = str(message.get("logs", ""))
                self._limit(worker, self._memory_reason(step))
            else:
                self._limit(worker, f"the sandbox worker sent a malformed message during {step}; it was killed")

    def cleanup(self) -> None:
        """CodeAgent.cleanup(): stop the worker (the sandbox's close() also does it)."""
        if self._worker is not None:
            self._worker.close()

    # -- inside -------------------------------------------------------------------------------------------
    def _start(self) -> _Worker:
        limits = self.sandbox.limits
        config = {
            "op": "init",
            "workdir": str(self.sandbox.workdir),
            "parent_pid": os.getpid(),
            "authorized_imports": self.authorized_imports,
            "max_print_outputs_length": self.max_print_outputs_length,
            "tools": sorted(self._tools),
            "variables": self._variables,
            "limits": {
                "step_seconds": limits.step_seconds,
                "cycle_cpu_seconds": limits.cycle_cpu_seconds,
                "memory_mb": limits.memory_mb,
                "network": limits.network,
                "file_mb": limits.file_mb,
                "open_files": limits.open_files,
                "disk_mb": limits.disk_mb,
                "weak": limits.weak,
            },
        }
        if self._worker is not None:
            self._worker.close()
        self._worker = self.sandbox._spawn(config)
        return self._worker

    def _usable(self, worker: _Worker) -> bool:
        return worker.killed_reason is None and worker.proc.poll() is None

    def _send(self, worker: _Worker, message: Mapping[str, Any], step: str = "") -> None:
        try:
            worker.send(message)
        except (BrokenPipeError, OSError, ValueError):
            if step:
                self._limit(worker, self._death(worker, f"during {step}"))

    def _worker_for(self, step: str) -> _Worker:
        """The worker, ready to run `step`: started again if it died between steps (after it was told why)."""
        if self.sandbox.stopped is not None:
            raise SandboxLimit(self.sandbox.stopped)
        if self.sandbox.closed:
            raise SandboxError("the sandbox is closed: this cycle has ended")
        worker = self._worker if self._worker is not None and self._usable(self._worker) else None
        if worker is None:
            if self._worker is not None:  # it died between steps
                self._limit(self._worker, self._death(self._worker, f"before {step}"))
            worker = self._start()
        self._wait_ready(worker)
        return worker

    def _receive(self, worker: _Worker, deadline: float, step: str) -> dict[str, Any]:
        """The worker's next message during `step`; past the deadline, on garbage or at its death, the limit."""
        limits = self.sandbox.limits
        try:
            message = worker.read(deadline)
        except TimeoutError:
            self._limit(
                worker,
                f"{step} ran past its {limits.step_seconds:g} s wall-clock limit (COGSCOPE_STEP_TIMEOUT); "
                "the sandbox worker was killed",
            )
        except _Malformed:
            self._limit(worker, f"the sandbox worker sent a malformed message during {step}; it was killed")
        if message is None:
            self._limit(worker, self._death(worker, f"during {step}"))
        return message

    def _answer_call(self, worker: _Worker, message: dict[str, Any], final_answer: list[Any], step: str) -> float:
        """Run the tool the code called and send the worker its reply; returns the seconds the tool took."""
        began = time.monotonic()
        try:
            reply = self._call(message, final_answer)
        except BaseException:  # Ctrl-C, or the agent's own stop: the worker waits for nobody
            worker.kill("the sandbox worker was killed: a tool call was interrupted")
            raise
        spent = time.monotonic() - began
        if self.sandbox.stopped is not None:  # e.g. a managed agent hit a limit: the cycle ends
            worker.kill(self.sandbox.stopped)
            raise SandboxLimit(self.sandbox.stopped)
        self._send(worker, reply, step)
        return spent

    def _wait_ready(self, worker: _Worker) -> None:
        deadline = worker.started + START_TIMEOUT_S
        while not worker.ready:
            try:
                message = worker.read(deadline)
            except TimeoutError:
                message = {"op": "fatal", "error": f"it was not ready within {START_TIMEOUT_S:g} s"}
            except _Malformed:
                message = {"op": "fatal", "error": "it sent a malformed message"}
            if message is None:
                worker.proc.wait()
                message = {"op": "fatal", "error": f"it exited with code {worker.proc.returncode}"}
            if message.get("op") == "ready":
                worker.ready = True
                worker.walls = dict(message.get("walls") or {})
                self.sandbox.walls = self.sandbox.walls or worker.walls
                if worker.walls.get("disk") == "watched":  # no file system of its own: measure the folder
                    self.sandbox._watch_disk()
            elif message.get("op") == "fatal":
                error = str(message.get("error", ""))
                words = worker.last_words()
                if message.get("memory"):
                    reason = (
                        f"the sandbox worker cannot start within the {self.sandbox.limits.memory_mb} MB memory limit "
                        f"(COGSCOPE_SANDBOX_MEMORY_MB): {error}"
                    )
                else:
                    reason = f"the sandbox worker could not start: {error}" + (f" ({words})" if words else "")
                self._limit(worker, reason)

    def _call(self, message: dict[str, Any], final_answer: list[Any]) -> dict[str, Any]:
        """Run the tool or managed agent the code called, here, in the agent's thread."""
        name, args, kwargs = message.get("call"), message.get("args", []), message.get("kwargs", {})
        if not isinstance(name, str) or not isinstance(args, list) or not isinstance(kwargs, dict):
            return {"op": "reply", "ok": False, "error_type": "TypeError", "error": "malformed tool call"}
        tool = self._tools.get(name)
        if tool is None:
            return {"op": "reply", "ok": False, "error_type": "NameError", "error": f"no tool named {name!r}"}
        if self.sandbox.stopped is not None:
            return {"op": "reply", "ok": False, "error_type": "RuntimeError", "error": self.sandbox.stopped}
        try:
            result = tool(*args, **kwargs)
        except Exception as e:
            return {"op": "reply", "ok": False, "error_type": type(e).__name__, "error": valid_text(str(e))}
        if name == "final_answer":
            final_answer.append(result)
        return {"op": "reply", "ok": True, "value": _to_json(result)}

    def _memory_reason(self, step: str) -> str:
        return (
            f"{step} went over the {self.sandbox.limits.memory_mb} MB memory limit (COGSCOPE_SANDBOX_MEMORY_MB); "
            "the sandbox worker was killed"
        )

    def _death(self, worker: _Worker, when: str) -> str:
        """Why the worker is gone, in one line."""
        worker.kill()
        if worker.killed_reason:
            return worker.killed_reason
        code = worker.proc.returncode
        limits = self.sandbox.limits
        step = when.removeprefix("during ").removeprefix("before ")
        cycle_cpu = worker.cpu_hard and worker.cpu_soft >= worker.cpu_hard
        if code == MEMORY_EXIT:
            return self._memory_reason(step)
        if code == -signal.SIGXCPU or (code == -signal.SIGKILL and cycle_cpu):
            if cycle_cpu:
                return (
                    f"{step} used up the cycle's {limits.cycle_cpu_seconds:g} s of sandbox CPU "
                    "(COGSCOPE_CYCLE_TIMEOUT); the sandbox worker was killed"
                )
            return (
                f"{step} used more than {limits.step_seconds:g} s of CPU (COGSCOPE_STEP_TIMEOUT); "
                "the sandbox worker was killed"
            )
        words = worker.last_words()
        words = f" ({words})" if words else ""
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the sandbox worker was killed by {name} {when}{words}"
        return f"the sandbox worker exited with code {code} {when}{words}"

    def _limit(self, worker: _Worker, reason: str) -> NoReturn:
        worker.kill(reason)
        self.sandbox._stop(reason)
        raise SandboxLimit(reason)


class Sandbox:
    """Installs a SandboxExecutor in every CodeAgent of an agent tree; `close()` when the cycle ends."""

    def __init__(
        self,
        agent: MultiStepAgent,
        *,
        limits: SandboxLimits,
        workdir: Path,
        on_limit: Callable[[str], None] | None = None,
    ) -> None:
        self.limits = limits
        self.workdir = Path(workdir)
        self.on_limit = on_limit
        self.stopped: str | None = None  # the reason, once a limit (or kill) ended the cycle
        self.closed = False
        self.walls: dict[str, Any] = {}  # what the first worker reported: uid, netns, mountns, audit, ...
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if real_root():
            os.chown(self.workdir, NOBODY, NOBODY)
        self.executors: list[SandboxExecutor] = []
        for member in agent_tree(agent):
            if isinstance(member, CodeAgent):
                label = "" if member is agent else f" of {member.name}"
                executor = SandboxExecutor(self, member, label=label)
                member.python_executor = executor
                self.executors.append(executor)

    def _spawn(self, config: dict[str, Any]) -> _Worker:
        with self._lock:
            if self.closed or self.stopped is not None:
                raise SandboxLimit(self.stopped or "the sandbox is closed: this cycle has ended")
            worker = _Worker(config, self.workdir)
            self._workers.append(worker)
            return worker

    def _stop(self, reason: str) -> None:
        with self._lock:
            first = self.stopped is None
            if first:
                self.stopped = reason
        if first and self.on_limit is not None:
            try:
                self.on_limit(reason)
            except Exception:  # the limit must still end the step
                pass

    def _watch_disk(self) -> None:
        """Where a worker has no size-limited file system (no namespace could be made): a thread measures the
        folder every DISK_POLL_S and ends the cycle past the limit. A burst can overshoot by what the disk writes
        in that time."""
        with self._lock:
            if self._watcher is not None:
                return
            self._watcher = threading.Thread(target=self._watch, name="sandbox-disk", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        limit = self.limits.disk_mb * 1_048_576
        while not self.closed and self.stopped is None:
            if folder_bytes(self.workdir) > limit:
                reason = (
                    f"the sandbox's working folder went over its {self.limits.disk_mb} MB disk limit "
                    "(COGSCOPE_SANDBOX_DISK_MB); the sandbox worker was killed"
                )
                self._stop(reason)
                self.kill(reason)
                return
            time.sleep(DISK_POLL_S)

    def kill(self, reason: str | None = None) -> None:
        """Kill the running workers now (the cycle's watchdog); no worker starts after this."""
        reason = reason or "the sandbox worker was killed: the cycle was stopped"
        with self._lock:
            if self.stopped is None:
                self.stopped = reason
            workers = list(self._workers)
        for worker in workers:
            worker.kill(reason)

    def close(self) -> None:
        """Kill the workers and remove the working folder; safe to call twice."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.kill("the sandbox was closed: this cycle has ended")
            worker.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
