"""The sandbox's second line, inside the worker's interpreter: the audit hook and the guards on attributes and formats.

`agents/sandbox_worker.py` loads this file by its path (like `agents/walls.py`: the worker runs as a script, where
`agents` is no package) once smolagents' executor is imported, and installs it in two steps:

- `install_interpreter_walls()`, before the executor runs code: smolagents' evaluator refuses attributes that lead
  to frames, code and globals, and format strings (str.format, str.format_map, string.Formatter) whose fields
  reach an attribute starting with `_`, such an attribute or a module;
- `install(AuditWall(...))`, after the kernel's walls: an audit hook (PEP 578) that refuses subprocess, exec, fork,
  spawn, kill and ctypes; files opened for writing only inside the working folder, for reading only there or in
  Python's own install (also through dir_fd and os.stat/lstat/readlink/access, which the hook alone does not see);
  sqlite3 databases and ATTACH only in the folder; sockets only when the network is allowed; and no import of os,
  ctypes, subprocess and the like unless authorized. The worker arms it (`AuditWall.armed`) just before it says
  it is ready.

Code that leaves smolagents' evaluator (a pickle) can switch this line off; the kernel's walls do not depend on it.
"""

from __future__ import annotations

import _string  # the parser str.format itself uses
import ast
import functools
import os
import string
import sys
import threading
import types
from typing import Any

from smolagents import local_python_executor as lpe

# attributes that lead from any object to frames, code and globals: refused in code and in format fields
INTROSPECTION = frozenset(
    "gi_frame gi_code gi_yieldfrom cr_frame cr_code cr_await ag_frame ag_code ag_await tb_frame tb_next "
    "f_back f_globals f_locals f_builtins f_code f_trace func_globals func_code mro".split()
)

# first-time imports refused outside an authorized import, whatever the agent authorized at top level
DANGEROUS_MODULES = frozenset(
    "_ctypes ctypes _socket socket _ssl ssl subprocess _posixsubprocess multiprocessing _multiprocessing "
    "_posixshmem pty posix os nt _winapi importlib _imp marshal".split()
)

REFUSED_EVENTS = frozenset(
    "subprocess.Popen os.system os.exec os.execv os.execve os.posix_spawn os.posix_spawnp os.spawn os.fork "
    "os.forkpty os.kill os.killpg os.pidfd_open signal.pthread_kill os.startfile pty.spawn "
    "sys.addaudithook sys.settrace sys.setprofile sys.remote_exec os.setuid os.setgid os.chroot "
    "cpython.remove_audit_hooks cpython.run_command cpython.run_module cpython.run_file "
    "webbrowser.open".split()
)

# (event, indexes of its path arguments) for calls that change the file system
WRITE_EVENTS = {
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.link": (0, 1),
    "os.symlink": (1,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.chflags": (0,),
    "os.truncate": (0,),
    "os.utime": (0,),
    "os.setxattr": (0,),
    "os.removexattr": (0,),
    "os.mkfifo": (0,),
    "os.mknod": (0,),
    "shutil.rmtree": (0,),
    "shutil.copyfile": (1,),
    "shutil.copytree": (1,),
    "shutil.move": (1,),
    "shutil.chown": (0,),
}
READ_EVENTS = {"os.listdir": (0,), "os.scandir": (0,), "glob.glob": (0,), "os.chdir": (0,), "os.listxattr": (0,)}


class Refused(PermissionError):
    """What the sandbox says when code tries to go through one of its walls."""


# -- walls inside the interpreter ---------------------------------------------------------------------------
def check_attribute(name: str, *, in_format: bool = False) -> None:
    if name in INTROSPECTION:
        raise lpe.InterpreterError(f"Forbidden access to attribute: {name} (the sandbox refuses introspection)")
    if in_format and name.startswith("_"):
        raise lpe.InterpreterError(
            f"Forbidden format field: attribute {name!r} starts with '_' (the sandbox refuses to traverse it)"
        )


def check_format(template: Any, depth: int = 0) -> None:
    """Refuse a format template whose fields reach `_`-prefixed or introspection attributes."""
    if not isinstance(template, str) or depth > 4:
        return
    try:
        parsed = list(_string.formatter_parser(template))
    except ValueError:
        return  # str.format will raise the same error itself
    for _literal, field, spec, _conversion in parsed:
        if field is None:
            continue
        _first, rest = _string.formatter_field_name_split(field)
        for is_attribute, key in rest:
            if is_attribute:
                check_attribute(str(key), in_format=True)
        if spec:
            check_format(spec, depth + 1)


def checked_field(field_name: str, first: Any, rest: Any) -> Any:
    """The object a format field names, walked one step at a time: no `_` or introspection attribute, and no
    step may reach a module (`'{0.sys.modules[__main__]}'.format(datetime)` is refused)."""
    obj = first
    for is_attribute, key in rest:
        if is_attribute:
            check_attribute(str(key), in_format=True)
            obj = getattr(obj, key)
        else:
            obj = obj[key]
        if isinstance(obj, types.ModuleType):
            raise lpe.InterpreterError(
                f"Forbidden format field {field_name!r}: it reaches the module {obj.__name__} "
                "(the sandbox refuses to traverse modules)"
            )
    return obj


def guarded_format(method: Any, template: Any = None) -> Any:
    """str.format / str.format_map as the code sees them: bound (`"...".format`) or not (`str.format`); the
    fields are looked up by string.Formatter with checked_field, one step at a time."""
    is_map = getattr(method, "__name__", "") == "format_map"

    def checked(*args: Any, **kwargs: Any) -> Any:
        text, rest = (template, args) if template is not None else (args[0] if args else None, args[1:])
        if not isinstance(text, str):
            return method(*args, **kwargs)
        check_format(text)
        if is_map:
            return string.Formatter().vformat(text, (), rest[0] if rest else {})
        return string.Formatter().vformat(text, rest, kwargs)

    checked.__name__ = getattr(method, "__name__", "format")
    return checked


def guard_value(obj: Any, name: str, value: Any) -> Any:
    if name in ("format", "format_map"):
        if isinstance(obj, str):
            return guarded_format(value, obj)
        if isinstance(obj, type) and issubclass(obj, str):
            return guarded_format(value)
    return value


_original_evaluate_attribute = lpe.evaluate_attribute
_original_evaluate_call = lpe.evaluate_call
_original_evaluate_import = lpe.evaluate_import
IMPORTING = threading.local()


def evaluate_attribute(expression: Any, state: Any, static_tools: Any, custom_tools: Any, authorized: Any) -> Any:
    check_attribute(expression.attr)
    if expression.attr.startswith("__") and expression.attr.endswith("__"):
        return _original_evaluate_attribute(expression, state, static_tools, custom_tools, authorized)
    obj = lpe.evaluate_ast(expression.value, state, static_tools, custom_tools, authorized)
    return guard_value(obj, expression.attr, getattr(obj, expression.attr))


def evaluate_call(call: Any, state: Any, static_tools: Any, custom_tools: Any, authorized: Any) -> Any:
    func = call.func
    if isinstance(func, ast.Attribute):
        check_attribute(func.attr)
        if func.attr in ("format", "format_map"):
            # evaluate `obj.format` through our attribute guard, then call it like smolagents would
            holder = f"_sandbox_callee_{id(call)}"
            state[holder] = evaluate_attribute(func, state, static_tools, custom_tools, authorized)
            try:
                replaced = ast.Call(func=ast.Name(id=holder, ctx=ast.Load()), args=call.args, keywords=call.keywords)
                return _original_evaluate_call(replaced, state, static_tools, custom_tools, authorized)
            finally:
                state.pop(holder, None)
    return _original_evaluate_call(call, state, static_tools, custom_tools, authorized)


def evaluate_import(expression: Any, state: Any, authorized: Any) -> Any:
    IMPORTING.active = True  # smolagents checked the name against the allow-list: its own imports may follow
    try:
        return _original_evaluate_import(expression, state, authorized)
    finally:
        IMPORTING.active = False
        fence_sqlite()


def guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    check_attribute(str(name))
    value = lpe.nodunder_getattr(obj, name, *default[:1])
    return guard_value(obj, str(name), value)


def get_field(self: Any, field_name: str, args: Any, kwargs: Any) -> Any:
    first, rest = _string.formatter_field_name_split(field_name)
    return checked_field(field_name, self.get_value(first, args, kwargs), rest), first


def install_interpreter_walls() -> None:
    lpe.evaluate_attribute = evaluate_attribute
    lpe.evaluate_call = evaluate_call
    lpe.evaluate_import = evaluate_import
    # a patch of the class, for every Formatter (str.format's own lookup is refused by check_format first)
    string.Formatter.get_field = get_field  # type: ignore[method-assign]


class AuditWall:
    """The audit hook (PEP 578): a second line behind Landlock and seccomp, refusing what no code step may do."""

    def __init__(self, workdir: str, *, read: list[str], authorized: list[str], network: bool) -> None:
        """`read`: what the code may read besides the working folder (the worker's `read_paths`)."""
        self.write_roots = tuple({os.path.realpath(workdir), workdir, "/dev/null"})
        reads = {*self.write_roots, *read}
        self.read_roots = tuple(sorted(reads))
        self.authorized = list(authorized)
        self.network = network
        self.armed = False
        self.internal = False  # the worker's own calls (raising the CPU limit)

    def may_read(self, path: str) -> bool:
        """Whether `path` (resolved) lies where the code may read."""
        return self._inside(os.path.realpath(path), self.read_roots)

    @staticmethod
    def _inside(path: str, roots: tuple[str, ...]) -> bool:
        return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)

    def _resolve(self, path: Any, *, follow: bool = True) -> str | None:
        """The real path (`follow=False`: of its folder, the last part kept as named, as lstat sees it)."""
        if isinstance(path, int) or path is None:
            return None  # an open descriptor: the OS already decided about it
        name: str = os.fsdecode(os.fspath(path))
        previous = getattr(CHECKING, "active", False)
        CHECKING.active = True  # realpath's own lstat/readlink calls are not checked again
        try:
            if follow:
                return os.path.realpath(name)
            head, tail = os.path.split(os.path.abspath(name))
            return os.path.join(os.path.realpath(head), tail)
        except OSError:
            return os.path.abspath(name)
        finally:
            CHECKING.active = previous

    def _check_path(self, event: str, path: Any, roots: tuple[str, ...], what: str, *, follow: bool = True) -> None:
        resolved = self._resolve(path, follow=follow)
        if resolved is not None and not self._inside(resolved, roots):
            raise Refused(f"the sandbox refuses to {what} {str(path)!r} ({event}): outside the working folder")

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed:
            return
        if event in REFUSED_EVENTS or event.startswith(("ctypes.", "subprocess.", "os.exec", "os.spawn")):
            raise Refused(f"the sandbox refuses {event}")
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writing = bool(flags and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
            writing = writing or any(c in str(mode or "") for c in "wax+")
            if writing:
                self._check_path(event, path, self.write_roots, "write")
            else:
                self._check_path(event, path, self.read_roots, "read")
        elif event in WRITE_EVENTS:
            for index in WRITE_EVENTS[event]:
                if index < len(args):
                    self._check_path(event, args[index], self.write_roots, "change")
        elif event in READ_EVENTS:
            if args and args[0] is not None:
                self._check_path(event, args[0], self.read_roots, "read")
        elif event == "resource.setrlimit" and not self.internal:
            raise Refused("the sandbox refuses resource.setrlimit")
        elif event.startswith("socket.") and not self.network:
            raise Refused(f"the sandbox refuses network access ({event}): this agent's code runs without network")
        elif event.startswith("sqlite3."):
            self._check_sqlite(event, args)
        elif event == "import":
            self._check_import(str(args[0]))

    def check_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """os functions without an audit event of their own (stat, readlink, access), and any `dir_fd`."""
        paths = [a for a in args[:2] if isinstance(a, str | bytes | os.PathLike)]
        for key in ("dir_fd", "src_dir_fd", "dst_dir_fd"):
            if kwargs.get(key) is not None and any(not os.path.isabs(os.fsdecode(os.fspath(p))) for p in paths):
                raise Refused(f"the sandbox refuses os.{name}() with {key}: a path relative to a descriptor")
        if name in METADATA_FUNCTIONS and paths:
            follow = name in ("stat", "access") and kwargs.get("follow_symlinks", True)
            self._check_path(f"os.{name}", paths[0], self.read_roots, "look at", follow=bool(follow))

    def _check_sqlite(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "sqlite3.connect" and args:
            self._check_database(event, args[0])

    def _check_database(self, event: str, target: Any) -> None:
        """A database name or URI (`file:/path?mode=ro`), in-memory ones aside, must be in the working folder."""
        name = os.fsdecode(os.fspath(target)) if isinstance(target, str | bytes | os.PathLike) else str(target)
        if name.startswith("file:"):
            path, _, query = name[5:].partition("?")
            if "mode=memory" in query:
                return
            name = path.removeprefix("//localhost") if path.startswith("//localhost/") else path
        if name not in ("", ":memory:"):
            self._check_path(event, name, self.write_roots, "open the database")

    def _sqlite_authorizer(self, action: int, arg1: Any, *_rest: Any) -> int:
        if action == SQLITE_ATTACH and self.armed:
            try:
                self._check_database("sqlite3 ATTACH", arg1 or "")
            except Refused:
                return SQLITE_DENY
        return SQLITE_OK

    def _check_import(self, name: str) -> None:
        """Only modules that reach past the interpreter (ctypes, os, subprocess, ...): what a library loads for its
        own use (pandas loading pyarrow.pandas_compat) is left to the kernel's walls, which hold whatever it is."""
        if getattr(IMPORTING, "active", False) or lpe.check_import_authorized(name, self.authorized):
            return
        if name.split(".")[0] not in DANGEROUS_MODULES:
            return
        frame: types.FrameType | None = sys._getframe(2)
        while frame is not None:  # nested in an import already allowed: that module needs it
            if frame.f_code.co_name == "_find_and_load":
                return
            frame = frame.f_back
        raise Refused(f"the sandbox refuses to import {name}: it is not among this agent's authorized imports")


SQLITE_OK, SQLITE_DENY, SQLITE_ATTACH = 0, 1, 24
METADATA_FUNCTIONS = ("stat", "lstat", "readlink", "access")
# os functions that take a dir_fd, or tell about a path without an audit event
FENCED_FUNCTIONS = (
    "open stat lstat access chmod chown mkdir mkfifo mknod readlink rename replace rmdir symlink unlink remove "
    "utime link".split()
)
CHECKING = threading.local()


def fenced(name: str, original: Any) -> Any:
    """`original` (an os function) behind AuditWall.check_call while the hook is armed."""

    def call(*args: Any, **kwargs: Any) -> Any:
        audit = AUDIT
        if audit is not None and audit.armed and not getattr(CHECKING, "active", False):
            CHECKING.active = True  # the check itself calls os.lstat (realpath)
            try:
                audit.check_call(name, args, kwargs)
            finally:
                CHECKING.active = False
        return original(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = original.__doc__
    return call


def fence_sqlite() -> None:
    """sqlite3.connect, once sqlite3 is loaded, answers connections whose ATTACH is checked by the hook
    (the connection cannot take an authorizer earlier: the hook's handle event comes before its __init__)."""
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is None or hasattr(sqlite3.connect, "__wrapped__"):  # not loaded, or fenced already
        return
    original = sqlite3.connect

    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        connection = original(*args, **kwargs)
        if AUDIT is not None:
            connection.set_authorizer(AUDIT._sqlite_authorizer)
        return connection

    vars(sqlite3)["connect"] = connect
    dbapi2 = sys.modules.get("sqlite3.dbapi2")
    if dbapi2 is not None:
        vars(dbapi2)["connect"] = connect


def fence_os_functions() -> None:
    """Put the os (and posix) functions of FENCED_FUNCTIONS behind the hook's checks. Libraries that test
    `os.open in os.supports_dir_fd` then take their path-based code (shutil.rmtree too)."""
    import posix

    for name in FENCED_FUNCTIONS:
        original = getattr(posix, name, None) or getattr(os, name, None)
        if original is None:
            continue
        wrapper = fenced(name, original)
        for module in (os, posix):
            if hasattr(module, name):
                setattr(module, name, wrapper)
    shutil = sys.modules.get("shutil")
    if shutil is not None:
        vars(shutil)["_use_fd_functions"] = False


AUDIT: AuditWall | None = None


def install(audit: AuditWall) -> None:
    """Make `audit` the hook: the os functions and sqlite3.connect behind its checks, then sys.addaudithook
    (which cannot be undone). It refuses nothing until the worker sets `audit.armed`."""
    global AUDIT
    AUDIT = audit
    fence_os_functions()
    fence_sqlite()
    sys.addaudithook(audit)
