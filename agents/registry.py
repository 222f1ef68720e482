"""The agent registry: names and references -> factories.

A factory is `factory(models: dict[str, Model], **options) -> MultiStepAgent`.
A plain model arrives under the key `default`, a per-role model under the
role's name. A factory may declare the roles it understands with a `roles`
attribute (a tuple of names); without one it understands `default` only. A
factory that takes a `state_dir` argument keeps its state in the folder it is
given (cogscope.telemetry.state_protocol: each cycle's starting state is kept,
and re-runs get a scratch folder holding it).

An agent reference is one of:
- a registry name (`heartbeat`, `consciousness`, `revision`),
- `path/to/file.py:factory` (a file anywhere on disk),
- `package.module:factory` (an importable module),
- the name of an installed entry point in the group `cogscope.agents`.

Loading an agent file or module and calling a factory run the user's code in cogscope's process: whatever it
raises, `SystemExit`, `KeyboardInterrupt` and `GeneratorExit` included, becomes an AgentFactoryError with one
line, and `os._exit`/`os.abort` raise (agents.exit_guard). A factory must be a function or class the user
defined: a built-in or C function (`sys:exit`, `os:_exit`) or one from Python's standard library is refused
before it is called.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import signal
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import exit_guard, speedups
from .errors import AgentFactoryError, AgentsError, UnknownAgentError

if TYPE_CHECKING:
    from smolagents import Model, MultiStepAgent

Factory = Callable[..., "MultiStepAgent"]
ENTRY_POINT_GROUP = "cogscope.agents"


@dataclass(frozen=True)
class AgentSpec:
    name: str  # what is recorded on the root span, enough to load it again
    factory: Factory
    summary: str
    roles: tuple[str, ...] = ("default",)
    options: Mapping[str, Any] = field(default_factory=dict)  # option name -> default, for forms and help

    def build(self, models: Mapping[str, Model], options: Mapping[str, Any] | None = None) -> MultiStepAgent:
        """Call the factory; every way it can go wrong is an AgentFactoryError with one clear line."""
        options = dict(options or {})
        check_options(self, options)
        with _user_code(
            f"agent factory {self.name!r}",
            error_hint="fix the factory or its options",
            exit_hint="a factory must not exit: raise an exception that says what is wrong",
        ):
            agent = self.factory(dict(models), **options)
        from smolagents import MultiStepAgent

        if not isinstance(agent, MultiStepAgent):
            raise AgentFactoryError(
                f"agent factory {self.name!r} returned {type(agent).__name__}, not a smolagents agent; "
                "it must return a MultiStepAgent (CodeAgent, ToolCallingAgent, ...)"
            )
        return agent


# -- running the user's code --------------------------------------------------------------
def _one_line(text: object, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit] + " ..."


def _exit_repr(e: BaseException) -> str:
    """SystemExit(3), KeyboardInterrupt(), ...: what was raised, as the user would have written it."""
    return _one_line(f"{type(e).__name__}({', '.join(repr(a) for a in e.args)})", 200)


class _SigintSeen:
    """On the main thread, notes whether a real SIGINT (Ctrl-C) arrived, so it is not mistaken for user code's."""

    def __init__(self) -> None:
        self.seen = False
        self._previous: Any = None

    def __enter__(self) -> _SigintSeen:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if callable(previous):
                self._previous = previous

                def note(signum: int, frame: Any) -> Any:
                    self.seen = True
                    return previous(signum, frame)

                signal.signal(signal.SIGINT, note)
        return self

    def __exit__(self, *_: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@contextmanager
def _user_code(what: str, *, error_hint: str = "", exit_hint: str) -> Iterator[None]:
    """Run the user's code: anything it raises becomes an AgentFactoryError that starts with `what raised`."""
    exit_guard.install()
    speedups.install()  # smolagents compiles its prompts once and parses streamed words only if shown
    with _SigintSeen() as sigint:
        try:
            yield
        except AgentsError:  # our own errors already say what to do (e.g. a corrupt memory store)
            raise
        except Exception as e:
            hint = f"; {error_hint}" if error_hint else ""
            raise AgentFactoryError(f"{what} raised {type(e).__name__}: {_one_line(e)}{hint}") from e
        except BaseException as e:  # noqa: B036 SystemExit, KeyboardInterrupt, GeneratorExit from the user's code
            if isinstance(e, KeyboardInterrupt) and sigint.seen:
                raise  # a real Ctrl-C: the command ends as a Ctrl-C does
            raise AgentFactoryError(f"{what} raised {_exit_repr(e)}; {exit_hint}") from e


# -- what may be a factory ----------------------------------------------------------------
_STDLIB = tuple(
    {str(Path(p).resolve()) for p in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]) if p}
)


def _in_stdlib(filename: str | None) -> bool:
    if not filename:
        return False
    if filename.startswith("<frozen "):
        return True
    if filename.startswith("<"):
        return False  # code compiled from a string: the user's
    parts = Path(filename).parts
    if "site-packages" in parts or "dist-packages" in parts:
        return False
    resolved = str(Path(filename).resolve())
    return any(resolved == root or resolved.startswith(root + "/") for root in _STDLIB)


def _not_user_defined(factory: Any) -> str | None:
    """Why `factory` is not a function or class the user defined (None when it is one)."""
    target = factory
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.ismethod(target):
        target = target.__func__
    try:
        target = inspect.unwrap(target)  # through decorators, and through exit_guard's os._exit to the real one
    except ValueError:  # a __wrapped__ cycle
        pass
    if inspect.isfunction(target):
        filename: str | None = target.__code__.co_filename
    elif inspect.isclass(target):
        try:
            filename = inspect.getfile(target)
        except TypeError:  # a class implemented in C
            return f"a built-in class ({target.__module__}.{target.__qualname__})"
    elif inspect.isfunction(call := inspect.getattr_static(type(target), "__call__", None)):  # a Python instance
        filename = call.__code__.co_filename
    else:
        name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or type(target).__name__
        module = getattr(target, "__module__", None) or getattr(getattr(target, "__self__", None), "__name__", None)
        where = f"{module}.{name}" if module else name
        if inspect.isbuiltin(target):
            return f"a built-in function ({where})"
        return f"a {type(target).__name__} implemented in C ({where})"
    if _in_stdlib(filename):
        module = getattr(target, "__module__", "")
        name = getattr(target, "__qualname__", type(target).__name__)
        return f"{module}.{name} from Python's standard library"
    return None


def _options_of(factory: Factory) -> dict[str, Any]:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in parameters
        if p.kind is inspect.Parameter.KEYWORD_ONLY
        or (p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.name != "models")
    }


def _takes_any_option(factory: Factory) -> bool:
    try:
        return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return True


def _is_step_budget(name: str) -> bool:
    """`max_steps`, `member_max_steps`, ...: smolagents' step budgets, a whole number of steps, 1 or more."""
    return name == "max_steps" or name.endswith("_max_steps")


def check_options(spec: AgentSpec, options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(spec.options))
    if unknown and not _takes_any_option(spec.factory):
        known = ", ".join(spec.options) or "none"
        raise AgentFactoryError(f"agent {spec.name!r} has no option {unknown[0]!r}; its options: {known}")
    for name, value in options.items():
        if _is_step_budget(name) and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise AgentFactoryError(
                f"option {name}={_one_line(repr(value), 80)} is not a step budget; give a whole number of steps, "
                f"1 or more, e.g. {name}=3"
            )


def spec_for(name: str, factory: Any, summary: str | None = None) -> AgentSpec:
    if not callable(factory):
        raise AgentFactoryError(f"{name!r} is a {type(factory).__name__}, not a factory function; point at a callable")
    why = _not_user_defined(factory)
    if why is not None:
        raise AgentFactoryError(
            f"{name!r} is {why}, not an agent factory; point at a function or class defined in your agent "
            "file or package, e.g. path/to/agent.py:make"
        )
    roles = tuple(getattr(factory, "roles", ("default",)))
    doc = (inspect.getdoc(factory) or "").strip().splitlines()
    return AgentSpec(
        name=name,
        factory=factory,
        summary=summary or (doc[0] if doc else name),
        roles=roles,
        options=_options_of(factory),
    )


BUILTIN = ("heartbeat", "consciousness", "revision")  # the registry's own agents (modules of this package), in order


def _builtin() -> dict[str, AgentSpec]:
    """The built-in agents, loaded: each name in BUILTIN is a module here with a `build` factory."""
    return {name: spec_for(name, importlib.import_module(f".{name}", __package__).build) for name in BUILTIN}


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Registry names and installed entry points, for pickers."""
    return [*BUILTIN, *sorted(set(_entry_points()) - set(BUILTIN))]


def _load_file(path_text: str, attribute: str) -> Any:
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise AgentFactoryError(f"agent file {path} does not exist; give a path like path/to/agent.py:factory")
    module_name = f"cogscope_agent_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise AgentFactoryError(f"cannot load {path} as Python; it must be a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with _user_code(f"importing {path}", exit_hint="an agent file must not exit"):
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    with _user_code(f"reading {attribute!r} from {path}", exit_hint="an agent file must not exit"):
        found = hasattr(module, attribute)
        value = getattr(module, attribute, None)
    if not found:
        raise AgentFactoryError(f"{path} has no {attribute!r}; name a function defined in it")
    return value


def _load_module(module_name: str, attribute: str) -> Any:
    with _user_code(f"importing {module_name!r}", exit_hint="an agent module must not exit"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            raise AgentFactoryError(f"cannot import {module_name!r} ({e}); is it installed or on PYTHONPATH?") from e
        found = hasattr(module, attribute)
        value = getattr(module, attribute, None)
    if not found:
        raise AgentFactoryError(f"module {module_name!r} has no {attribute!r}; name a function defined in it")
    return value


def get(reference: str) -> AgentSpec:
    """The agent behind `reference` (see the module docstring), or an error that says what to fix."""
    reference = (reference or "").strip()
    builtin = _builtin()
    if reference in builtin:
        return builtin[reference]
    if ":" in reference:
        target, _, attribute = reference.rpartition(":")
        if not target or not attribute.isidentifier():
            raise AgentFactoryError(f"agent reference {reference!r} must end in :factory_name")
        if target.endswith(".py") or "/" in target or "\\" in target:
            path = str(Path(target).expanduser().resolve())
            return spec_for(f"{path}:{attribute}", _load_file(target, attribute))
        return spec_for(reference, _load_module(target, attribute))
    entry_points = _entry_points()
    if reference in entry_points:
        with _user_code(
            f"entry point {reference!r} ({entry_points[reference].value})", exit_hint="an agent module must not exit"
        ):
            factory = entry_points[reference].load()
        return spec_for(reference, factory)
    known = names()
    close = difflib.get_close_matches(reference, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownAgentError(
        f"unknown agent {reference!r}; known agents: {', '.join(known)}, or a reference like "
        f"path/to/file.py:factory or package.module:factory.{hint}"
    )
