"""The sandbox worker: runs one CodeAgent's model-written code steps in a process of its own, behind walls.

`agents.sandbox` starts it as `python -I agents/sandbox_worker.py` (by file path, so neither the working
folder nor another distribution's top-level `agents` package can shadow anything) and talks to it in
newline-delimited JSON: parent -> worker on stdin, worker -> parent on stdout. Nothing is ever pickled:
this process runs hostile code, the parent parses what it says as untrusted data.

Inside, smolagents' own LocalPythonExecutor evaluates the code (its import allow-list and dunder checks),
with these walls added around it, in this order at start-up:

- the environment is already scrubbed by the parent (PATH, LANG/LC_ALL, HOME, TMPDIR only);
- as root: private mount and network namespaces; a tmpfs of COGSCOPE_SANDBOX_DISK_MB mounted over /tmp is the
  working folder (reachable after the uid drop whatever the permissions of its real parents; the real /tmp is
  out of sight); then setgroups([]), setgid/setuid to nobody (65534);
  not root (root of a user namespace included): a user, mount and network namespace when the kernel allows it,
  with the same tmpfs mounted over the working folder; where it does not, the app measures the folder;
- PR_SET_PDEATHSIG=SIGKILL (after the uid change, which clears it), and the worker also exits when its stdin
  closes;
- rlimits: core 0, file size, open files, processes (as nobody), CPU (soft = this step's budget, raised
  before each step; hard = the cycle's), address space last (after every import);
- the kernel's walls (agents/walls.py), while the process has a single thread: PR_SET_NO_NEW_PRIVS, Landlock
  (read Python's install and the system libraries, read/write the working folder, no TCP, no signal out of its
  domain) and a seccomp filter (no fork, exec, setsid, kill of others, ptrace, mount, socket...). Without them
  the worker refuses to start unless the operator set COGSCOPE_SANDBOX_WEAK=1. Authorized modules are imported
  only after this, so that every thread they start is walled in too;
- a second line in the interpreter (agents/sandbox_audit.py, loaded by its path too), which code that leaves
  smolagents' evaluator (a pickle) can switch off but the walls above do not depend on: an audit hook (no
  subprocess, exec, fork, spawn, kill, ctypes; files opened for writing only inside the working folder, for
  reading only there or in Python's own install, also through dir_fd and os.stat/lstat/readlink/access; sqlite3
  databases and ATTACH only in the folder; no sockets unless the network is allowed; no import of os, ctypes,
  subprocess and the like unless authorized); format strings whose fields reach an attribute starting with `_`,
  a frame/code attribute or a module are refused, in str.format, str.format_map and string.Formatter.

Tools are proxies: calling one sends {"op": "call", "call": name, "args": [...], "kwargs": {...}} to the
parent, which runs the real tool and answers with its JSON result or its error.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import queue
import resource
import signal
import sys
import sysconfig
import threading
import time
from typing import TYPE_CHECKING, Any


def _executor_only() -> None:
    """Make `import smolagents.local_python_executor` load that module and smolagents.utils only.

    The package's __init__ imports all of smolagents (agents, models, Hugging Face Hub, rich, PIL, requests):
    about 0.85 CPU-s in every worker, one per cycle, which is most of what a cycle costs a shared app's CPU. The
    executor needs none of it: it takes `Tool` from smolagents.tools only for type hints (the worker's tools are
    proxies, never Tool objects). So the package is entered without running its __init__, and smolagents.tools is
    a stand-in that holds a `Tool` class. Measured: 0.18 s to import instead of 1.0 s."""
    import importlib.util
    import types

    if "smolagents" in sys.modules:
        return
    spec = importlib.util.find_spec("smolagents")
    if spec is None or not spec.submodule_search_locations:
        return
    package = types.ModuleType("smolagents")
    package.__path__ = list(spec.submodule_search_locations)
    tools = types.ModuleType("smolagents.tools")

    class Tool:
        """Stand-in for smolagents.tools.Tool (type hints only)."""

    vars(tools)["Tool"] = Tool
    sys.modules["smolagents"], sys.modules["smolagents.tools"] = package, tools


_executor_only()
from smolagents import local_python_executor as lpe  # noqa: E402

HERE = os.path.dirname(os.path.realpath(__file__))


def _load_sibling(name: str) -> Any:
    """agents/NAME.py, loaded by its path (this file runs as a script: `agents` is not a package here)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"cogscope_{name}", os.path.join(HERE, f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:  # what the type checker sees: the same files, as the package's modules
    from . import sandbox_audit as AUDITING
    from . import walls as WALLS
else:
    WALLS = _load_sibling("walls")  # the kernel's walls
    AUDITING = _load_sibling("sandbox_audit")  # the interpreter's: the audit hook, attribute and format guards
# the folder of this script is no import root for model code (an authorized `tools` must not be agents/tools.py)
sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != HERE]

NOBODY = 65534
MAX_MESSAGE = 32 * 1024 * 1024  # bytes of one JSON line either way
MEMORY_EXIT = 86  # the exit code after a MemoryError (agents.sandbox reads it as the memory limit)
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
MS_REC, MS_PRIVATE, MS_BIND, MS_NOSUID, MS_NODEV = 0x4000, 0x40000, 0x1000, 0x2, 0x4
MS_RDONLY, MS_REMOUNT = 0x1, 0x20
PR_SET_PDEATHSIG = 1
# read-only for the code besides Python's own directories: the C libraries, time zones, randomness, CPU counts
SYSTEM_READ = (
    "/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/etc/localtime", "/dev/urandom", "/dev/random",
    "/dev/zero", "/sys/devices/system/cpu",
)  # fmt: skip
NETWORK_READ = (  # with COGSCOPE_SANDBOX_NETWORK=1: name resolution and certificates
    "/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf",
    "/etc/gai.conf", "/etc/host.conf", "/etc/services", "/etc/protocols",
)  # fmt: skip
WEAK_HINT = (
    "set COGSCOPE_SANDBOX_WEAK=1 to run model code behind the interpreter's walls only "
    "(weaker: see the README's Security section)"
)


# -- talking to the parent ----------------------------------------------------------------------------------
class Channel:
    """JSON lines to the parent on a private copy of stdout; a thread reads the parent's lines from stdin.

    The reader exits the process when stdin closes: the parent is gone or done with this worker.
    """

    def __init__(self) -> None:
        self._out = os.fdopen(os.dup(1), "wb", buffering=0)
        self._in = os.fdopen(os.dup(0), "rb", buffering=0)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(2, 1)  # stray writes to stdout go to stderr, never into the protocol
        os.close(devnull)
        sys.stdout = sys.stderr
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Lock()

    def first(self) -> dict[str, Any]:
        line = self._in.readline(MAX_MESSAGE)
        if not line:
            os._exit(0)
        config = json.loads(line)
        if not isinstance(config, dict):
            raise ValueError("the parent's first message is not a JSON object")
        return config

    def start_reader(self) -> None:
        threading.Thread(target=self._read, name="sandbox-reader", daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self._in:
                self.inbox.put(json.loads(line))
        except BaseException:  # noqa: B036 anything wrong with the pipe ends the worker
            pass
        os._exit(0)

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, ensure_ascii=True).encode("ascii") + b"\n"
        if len(data) > MAX_MESSAGE:
            raise ValueError(f"a value of {len(data) // 1_048_576} MB is too big to leave the sandbox (32 MB at most)")
        with self._lock:
            self._out.write(data)


CHANNEL: Channel | None = None


def valid_text(text: str) -> str:
    """Text that is valid UTF-8: a lone surrogate becomes its escape (\\ud800)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class NotJSON(Exception):
    pass


def to_json(value: Any, depth: int = 0) -> Any:
    """`value` as plain JSON data with valid text, or NotJSON."""
    if depth > 100:
        raise NotJSON
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        if value.bit_length() > 4000:  # Python refuses to print ints past 4300 digits
            raise NotJSON
        return int(value)
    if isinstance(value, str):
        return valid_text(str(value))
    if isinstance(value, list | tuple):
        return [to_json(v, depth + 1) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {valid_text(str(k)): to_json(v, depth + 1) for k, v in value.items()}
    raise NotJSON


def describe(value: Any) -> str:
    try:
        text = repr(value)
    except BaseException as e:  # noqa: B036 a hostile __repr__ must not break the worker
        text = f"<{type(value).__name__} that cannot be shown: {type(e).__name__}>"
    return valid_text(text)


def json_or_text(value: Any, fallback: Any = describe) -> Any:
    try:
        return to_json(value)
    except (NotJSON, RecursionError, ValueError):
        return fallback(value)


_error_types: dict[str, type[Exception]] = {}


def error_from(name: str, text: str) -> Exception:
    """An exception like the one the parent's tool raised: the same builtin type, or a look-alike by name."""
    builtin: type | None = lpe.ERRORS.get(name)
    if builtin is not None and issubclass(builtin, Exception):
        try:
            return builtin(text)
        except Exception:
            pass
    if not name.isidentifier():
        name = "ToolError"
    if name not in _error_types:
        _error_types[name] = type(name, (Exception,), {"__module__": "sandbox"})
    return _error_types[name](text)


def tool_proxy(name: str) -> Any:
    """A plain function standing for a tool or managed agent that lives in the parent: it holds nothing."""

    def proxy(*args: Any, **kwargs: Any) -> Any:
        assert CHANNEL is not None
        message = {
            "op": "call",
            "call": name,
            "args": [json_or_text(a, str) for a in args],
            "kwargs": {valid_text(str(k)): json_or_text(v, str) for k, v in kwargs.items()},
        }
        CHANNEL.send(message)
        reply = CHANNEL.inbox.get()
        if reply.get("op") != "reply":
            os._exit(70)  # the parent never does this: nothing sane is left to do
        if not reply.get("ok"):
            raise error_from(str(reply.get("error_type", "ToolError")), str(reply.get("error", "")))
        return reply.get("value")

    proxy.__name__ = proxy.__qualname__ = name
    return proxy


# -- walls from the operating system ------------------------------------------------------------------------
def libc() -> Any:
    lib = ctypes.CDLL(None, use_errno=True)
    lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    return lib


def python_paths(authorized: list[str] | None = None) -> list[str]:
    """The directories Python reads from: its install, the venv, the sys.path entries inside them, and wherever
    an authorized module lives. Not the app's checkout (an editable install), nor anything else on sys.path."""
    import importlib.util

    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, *sysconfig.get_paths().values()}
    prefixes = {os.path.realpath(p) for p in prefixes if p and os.path.isdir(p)}
    found = set(prefixes)
    for entry in sys.path:
        real = os.path.realpath(entry) if entry else ""
        if real and os.path.isdir(real) and any(real == p or real.startswith(p + "/") for p in prefixes):
            found.add(real)
    for name in authorized or []:
        top = name.split(".")[0]
        if top in ("*", "") or top in sys.builtin_module_names:
            continue
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.submodule_search_locations:
            found.update(os.path.realpath(p) for p in spec.submodule_search_locations)
        elif spec is not None and spec.origin and os.path.isfile(spec.origin):
            found.add(os.path.realpath(spec.origin))
    return sorted(found)


def read_paths(authorized: list[str], network: bool) -> list[str]:
    """Everything the code may read, besides its working folder."""
    own = f"/proc/{os.getpid()}/status"  # the worker's own memory figures (vm_size_mb)
    return [*python_paths(authorized), *SYSTEM_READ, own, *(NETWORK_READ if network else ())]


def hidden_from_others(path: str) -> str | None:
    """The outermost ancestor of `path` that others may not search (so nobody cannot reach `path`)."""
    current = "/"
    for part in path.strip("/").split("/"):
        current = os.path.join(current, part)
        try:
            if not os.stat(current).st_mode & 0o001:
                return current
        except OSError:
            return None
    return None


def _outermost(paths: list[str]) -> list[str]:
    return [p for p in paths if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in paths)]


def bind_back(lib: Any, kept: dict[str, int], walls: dict[str, Any]) -> None:
    """Python's own directories under /tmp (a venv or a checkout there), which the working folder's tmpfs now covers:
    bound back at their places, read-only, from descriptors taken before the tmpfs went up."""
    for path, fd in kept.items():
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        for folder in _parents_below_tmp(parent):
            os.chmod(folder, 0o755)  # searchable for nobody; root owns them, so the code cannot change them
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            open(path, "ab").close()  # noqa: SIM115 (a mount point for one file)
        source = f"/proc/self/fd/{fd}".encode()
        bound = lib.mount(source, path.encode(), None, MS_BIND | MS_REC, None) == 0
        if not bound or lib.mount(None, path.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None) != 0:
            walls["revealed"] = False


def _parents_below_tmp(folder: str) -> list[str]:
    parts = folder[len("/tmp/") :].split("/") if folder.startswith("/tmp/") else []
    return ["/tmp/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def reveal(lib: Any, paths: list[str], walls: dict[str, Any]) -> None:
    """In our mount namespace, make Python's own directories reachable for nobody.

    A directory such as /root (0700) that hides one of them is covered by an empty tmpfs in which only
    those directories are bind-mounted back: the rest of it (a home folder, the data dir) stays out of sight.
    """
    outermost = _outermost(paths)
    covers: dict[str, list[str]] = {}
    for path in outermost:
        blocker = hidden_from_others(path)
        if blocker is not None and not blocker.startswith("/tmp"):
            covers.setdefault(blocker, []).append(path)
    fds = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for group in covers.values() for path in group}
    for blocker, group in covers.items():
        if lib.mount(b"tmpfs", blocker.encode(), b"tmpfs", 0, b"mode=755,size=1m") != 0:
            walls["revealed"] = False
            continue
        for path in group:
            os.makedirs(path, mode=0o755, exist_ok=True)
            source = f"/proc/self/fd/{fds[path]}".encode()
            if lib.mount(source, path.encode(), None, MS_BIND | MS_REC, None) != 0:
                walls["revealed"] = False
    for fd in fds.values():
        os.close(fd)
    walls["covered"] = sorted(covers)


def isolate(config: dict[str, Any], walls: dict[str, Any]) -> str:
    """Namespaces, the bounded working folder and the uid drop; returns the working folder as seen from here."""
    lib = libc()
    workdir = os.path.realpath(config["workdir"])
    limits = config["limits"]
    net = 0 if limits["network"] else CLONE_NEWNET
    disk = f"size={int(limits.get('disk_mb', 256))}m,mode=0700"
    walls.update(netns=False, mountns=False, userns=False, uid=os.getuid(), disk="watched")
    if WALLS.real_root():
        authorized = list(config.get("authorized_imports", []))
        workdir = isolate_root(lib, workdir, net, disk, walls, python_paths(authorized))
    else:
        workdir = isolate_user(lib, workdir, net, disk, walls)
    os.environ.update(HOME=workdir, TMPDIR=workdir)
    lib.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(config["parent_pid"]):
        os._exit(0)  # the parent died before PDEATHSIG was set
    return workdir


def isolate_root(lib: Any, workdir: str, net: int, disk: str, walls: dict[str, Any], paths: list[str]) -> str:
    """As root: private mount and network namespaces, a size-limited tmpfs as the working folder (at /tmp, so the
    real /tmp is out of sight), Python's directories revealed, then the user nobody."""
    if lib.unshare(CLONE_NEWNS | net) == 0:
        walls["mountns"], walls["netns"] = True, bool(net)
        if lib.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0:
            options = f"{disk},uid={NOBODY},gid={NOBODY}".encode()
            kept = {p: os.open(p, os.O_PATH) for p in _outermost(paths) if p.startswith("/tmp/")}
            if lib.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, options) == 0:
                os.chdir("/tmp")
                workdir, walls["disk"] = "/tmp", "tmpfs"
                bind_back(lib, kept, walls)
            for fd in kept.values():
                os.close(fd)
            reveal(lib, [p for p in paths if not p.startswith("/tmp/")], walls)
    elif net and lib.unshare(net) == 0:
        walls["netns"] = True
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    walls["uid"], walls["dropped"] = NOBODY, True
    return workdir


def isolate_user(lib: Any, workdir: str, net: int, disk: str, walls: dict[str, Any]) -> str:
    """Not root: a user, mount and network namespace where the kernel allows one, with a size-limited tmpfs as the
    working folder. Where it does not (a user namespace with no mapping), the app watches the folder instead."""
    uid, gid = os.getuid(), os.getgid()
    if lib.unshare(CLONE_NEWUSER | CLONE_NEWNS | net) != 0:
        return workdir
    walls.update(userns=True, mountns=True, netns=bool(net))
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError:
        return workdir
    if lib.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return workdir
    if lib.mount(b"tmpfs", workdir.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, disk.encode()) == 0:
        os.chdir(workdir)  # onto the new file system
        walls["disk"] = "tmpfs"
    return workdir


def build_walls(config: dict[str, Any], workdir: str, walls: dict[str, Any]) -> None:
    """Landlock and seccomp, while this process has one thread: irreversible, and inherited by every later one.

    Without them the worker refuses to run code (WallError), unless the operator set COGSCOPE_SANDBOX_WEAK=1."""
    network = bool(config["limits"]["network"])
    authorized = list(config.get("authorized_imports", []))
    failed: list[str] = []
    WALLS.no_new_privs()
    try:
        threads = len(os.listdir("/proc/self/task"))
        if threads != 1:
            raise WALLS.WallError(f"the worker has {threads} threads before its walls are up; it must have one")
        read = read_paths(authorized, network)
        ruleset, report = WALLS.landlock_ruleset(read=read, write=[workdir, "/dev/null"], network=network)
        WALLS.landlock_restrict(ruleset)
        walls.update(report)
    except WALLS.WallError as e:
        failed.append(str(e))
    try:
        walls["seccomp"] = WALLS.seccomp_filter(network=network)
    except WALLS.WallError as e:
        failed.append(str(e))
    if failed and not config["limits"].get("weak"):
        raise WALLS.WallError(f"{failed[0]}; {WEAK_HINT}")
    if failed:
        walls["weak"] = "; ".join(failed)


def cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def set_limits(config: dict[str, Any], walls: dict[str, Any]) -> None:
    limits = config["limits"]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    file_bytes = min(int(limits.get("file_mb", 64)), int(limits.get("disk_mb", 256))) * 1_048_576
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    files = int(limits.get("open_files", 64))
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
    if walls.get("dropped"):  # counts every process of the uid: only when this worker became nobody (as root)
        resource.setrlimit(resource.RLIMIT_NPROC, (128, 128))
    hard = max(1, int(cpu_used() + float(limits["cycle_cpu_seconds"]) + 1))
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
    walls["cpu_hard"] = hard


def vm_size_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# -- running steps ------------------------------------------------------------------------------------------
def memory_hit(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, MemoryError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


# the hook once installed: also reachable as __main__.AUDIT, which code out of the interpreter (a pickle) can find
# and switch off; the escape tests do exactly that, to show the kernel's walls hold without it
AUDIT: AUDITING.AuditWall | None = None


def main() -> None:
    global CHANNEL
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = CHANNEL = Channel()
    try:
        config = channel.first()
        executor, audit = start(channel, config)
    except WALLS.WallError as e:
        channel.send({"op": "fatal", "error": valid_text(str(e))})
        os._exit(1)
    except Exception as e:
        channel.send({"op": "fatal", "error": valid_text(f"{type(e).__name__}: {e}")})
        os._exit(1)
    serve(channel, executor, float(config["limits"]["step_seconds"]), audit)


def start(channel: Channel, config: dict[str, Any]) -> tuple[Any, AUDITING.AuditWall]:
    """Everything before the first step, in order: the namespaces and the uid, rlimits, the kernel's walls, the
    authorized imports, smolagents' executor with the interpreter's walls, the audit hook, the memory limit;
    then "ready" to the parent. Returns the executor and the (armed) hook."""
    global AUDIT
    sysconfig.get_paths()  # loads its data module now, while everything is still readable
    import _strptime  # noqa: F401  likewise

    walls: dict[str, Any] = {}
    began = time.perf_counter()
    workdir = isolate(config, walls)
    set_limits(config, walls)
    build_walls(config, workdir, walls)
    walls["walls_ms"] = round((time.perf_counter() - began) * 1000, 1)
    authorized = list(config.get("authorized_imports", []))
    import_authorized(authorized)  # after the walls, so that every thread they start is walled in too
    executor = lpe.LocalPythonExecutor(
        authorized,
        max_print_outputs_length=config.get("max_print_outputs_length"),
        additional_functions={"getattr": AUDITING.guarded_getattr},
        timeout_seconds=None,  # the parent keeps the clock and kills: a thread cannot be interrupted
    )
    AUDITING.install_interpreter_walls()
    executor.send_variables(config.get("variables") or {})
    executor.send_tools({name: tool_proxy(name) for name in config.get("tools", [])})
    network = bool(config["limits"]["network"])
    audit = AUDITING.AuditWall(workdir, read=read_paths(authorized, network), authorized=authorized, network=network)
    sys.path[:] = [p for p in sys.path if p and audit.may_read(p)]
    AUDITING.install(audit)
    AUDIT = audit
    walls["audit"] = True
    channel.start_reader()
    set_memory_limit(channel, int(config["limits"]["memory_mb"]), walls)
    audit.armed = True
    channel.send({"op": "ready", "walls": walls})
    return executor, audit


def import_authorized(authorized: list[str]) -> None:
    """Import the modules the agent authorized by name (not the `pkg.*` patterns): a missing one is not an error."""
    for module in authorized:
        if module != "*" and not module.endswith("*"):
            try:
                __import__(module)
            except Exception:
                pass


def set_memory_limit(channel: Channel, memory_mb: int, walls: dict[str, Any]) -> None:
    """The address-space limit, last (after every import); a worker that already needs more says so and exits."""
    memory = memory_mb * 1_048_576
    needed = vm_size_mb()
    if needed * 1_048_576 + 16 * 1_048_576 > memory:
        channel.send({"op": "fatal", "error": f"it needs about {needed:.0f} MB just to start", "memory": True})
        os._exit(1)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    walls["start_mb"] = round(needed)


def raise_cpu_limit(step_seconds: float, audit: AUDITING.AuditWall) -> tuple[int, int]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = min(hard, math.ceil(cpu_used() + step_seconds))  # whole seconds: at most 1 s more than the step's
    audit.internal = True
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    finally:
        audit.internal = False
    return soft, hard


def serve(channel: Channel, executor: Any, step_seconds: float, audit: AUDITING.AuditWall) -> None:
    while True:
        message = channel.inbox.get()
        op = message.get("op")
        if op == "tools":
            executor.send_tools({name: tool_proxy(name) for name in message.get("tools", [])})
        elif op == "vars":
            executor.send_variables(message.get("variables") or {})
        elif op == "run":
            run_step(channel, executor, str(message.get("code", "")), step_seconds, audit)
        else:
            os._exit(0)


def run_step(channel: Channel, executor: Any, code: str, step_seconds: float, audit: AUDITING.AuditWall) -> None:
    soft, hard = raise_cpu_limit(step_seconds, audit)
    channel.send({"op": "started", "cpu_soft": soft, "cpu_hard": hard, "cpu_used": cpu_used()})
    try:
        result = executor(code)
    except BaseException as e:  # noqa: B036 SystemExit and KeyboardInterrupt raised by the code are step errors
        logs = valid_text(str(executor.state.get("_print_outputs", "")))
        if memory_hit(e):
            try:
                channel.send({"op": "limit", "kind": "memory", "logs": logs[-20_000:]})
            finally:
                os._exit(MEMORY_EXIT)
        try:
            text = str(e) if isinstance(e, lpe.InterpreterError) else f"{type(e).__name__}: {e}"
        except BaseException:  # noqa: B036 an exception whose __str__ raises
            text = f"{type(e).__name__} (its message cannot be shown)"
        channel.send({"op": "error", "error": valid_text(text), "logs": logs})
        return
    try:
        output = to_json(result.output)
        shown = False
    except (NotJSON, RecursionError, ValueError):
        output, shown = describe(result.output), True
    reply = {
        "op": "done",
        "output": output,
        "repr": shown,
        "logs": valid_text(str(result.logs)),
        "is_final_answer": bool(result.is_final_answer),
    }
    try:
        channel.send(reply)
    except ValueError as e:  # too big to cross
        channel.send({"op": "error", "error": str(e), "logs": reply["logs"][-20_000:]})
    except MemoryError:
        os._exit(MEMORY_EXIT)


if __name__ == "__main__":
    main()
