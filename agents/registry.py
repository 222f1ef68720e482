"""The agent registry: names and references -> factories.

A factory is `factory(models: dict[str, Model], **options) -> MultiStepAgent`.
A plain model arrives under the key `default`, a per-role model under the
role's name. A factory may declare the roles it understands with a `roles`
attribute (a tuple of names); without one it understands `default` only.

An agent reference is one of:
- a registry name (`heartbeat`, `consciousness`, `revision`),
- `path/to/file.py:factory` (a file anywhere on disk),
- `package.module:factory` (an importable module),
- the name of an installed entry point in the group `cogscope.agents`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smolagents import Model, MultiStepAgent

from .errors import AgentFactoryError, AgentsError, UnknownAgentError

Factory = Callable[..., MultiStepAgent]
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
        try:
            agent = self.factory(dict(models), **options)
        except AgentsError:  # our own errors already say what to do (e.g. a corrupt memory store)
            raise
        except Exception as e:
            raise AgentFactoryError(
                f"agent factory {self.name!r} raised {type(e).__name__}: {e}; fix the factory or its options"
            ) from e
        if not isinstance(agent, MultiStepAgent):
            raise AgentFactoryError(
                f"agent factory {self.name!r} returned {type(agent).__name__}, not a smolagents agent; "
                "it must return a MultiStepAgent (CodeAgent, ToolCallingAgent, ...)"
            )
        return agent


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


def check_options(spec: AgentSpec, options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(spec.options))
    if unknown and not _takes_any_option(spec.factory):
        known = ", ".join(spec.options) or "none"
        raise AgentFactoryError(f"agent {spec.name!r} has no option {unknown[0]!r}; its options: {known}")


def spec_for(name: str, factory: Any, summary: str | None = None) -> AgentSpec:
    if not callable(factory):
        raise AgentFactoryError(f"{name!r} is a {type(factory).__name__}, not a factory function; point at a callable")
    roles = tuple(getattr(factory, "roles", ("default",)))
    doc = (inspect.getdoc(factory) or "").strip().splitlines()
    return AgentSpec(
        name=name,
        factory=factory,
        summary=summary or (doc[0] if doc else name),
        roles=roles,
        options=_options_of(factory),
    )


def _builtin() -> dict[str, AgentSpec]:
    from . import consciousness, heartbeat, revision

    return {
        "heartbeat": spec_for("heartbeat", heartbeat.build),
        "consciousness": spec_for("consciousness", consciousness.build),
        "revision": spec_for("revision", revision.build),
    }


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Registry names and installed entry points, for pickers."""
    return [*_builtin(), *sorted(set(_entry_points()) - set(_builtin()))]


def describe() -> dict[str, str]:
    out = {name: spec.summary for name, spec in _builtin().items()}
    for name in _entry_points():
        out.setdefault(name, f"entry point in {ENTRY_POINT_GROUP}")
    return out


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
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(module_name, None)
        raise AgentFactoryError(f"importing {path} raised {type(e).__name__}: {e}") from e
    if not hasattr(module, attribute):
        raise AgentFactoryError(f"{path} has no {attribute!r}; name a function defined in it")
    return getattr(module, attribute)


def _load_module(module_name: str, attribute: str) -> Any:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise AgentFactoryError(f"cannot import {module_name!r} ({e}); is it installed or on PYTHONPATH?") from e
    except Exception as e:
        raise AgentFactoryError(f"importing {module_name!r} raised {type(e).__name__}: {e}") from e
    if not hasattr(module, attribute):
        raise AgentFactoryError(f"module {module_name!r} has no {attribute!r}; name a function defined in it")
    return getattr(module, attribute)


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
        try:
            factory = entry_points[reference].load()
        except Exception as e:
            raise AgentFactoryError(
                f"entry point {reference!r} ({entry_points[reference].value}) raised {type(e).__name__}: {e}"
            ) from e
        return spec_for(reference, factory)
    known = names()
    close = difflib.get_close_matches(reference, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownAgentError(
        f"unknown agent {reference!r}; known agents: {', '.join(known)}, or a reference like "
        f"path/to/file.py:factory or package.module:factory.{hint}"
    )
