"""The smolagents instrumentor: OpenInference's, with wrappers that record the same spans for less.

OpenInference's `SmolagentsInstrumentor` wraps an agent's runs, steps, tools and model calls. cogscope installs it,
keeps its context-keeping executor, its helpers and its semantic conventions, and replaces its four wrappers:

- **model calls** (`generate`, `generate_stream`). OpenInference records the whole prompt on every call, twice:
  every message as `llm.input_messages.*`, and `input.value` as the JSON of the call's arguments, where each
  message is the `repr` of a `ChatMessage`. `output.value` holds a deep copy of LiteLLM's whole raw response. All
  of it is made on the agent's thread, and a cycle's cost grows with the square of its steps. cogscope writes the
  call's LLM span compact from the start (`Compactor.at_source`, the rules of telemetry.compact): the messages that
  are new since the agent's previous call in the trace, a reference to that call, the tools once, `input.value`
  without the messages and `output.value` without the raw response. The span is what compacting OpenInference's
  span at export gave, and `rebuild_prompts` rebuilds every prompt as before.
- **agent runs** (`MultiStepAgent.run`). For a streamed run, OpenInference keeps the `str` of every item the run
  yields, each step with its whole prompt, to store their concatenation as the run's output. cogscope keeps the
  final answer's step, which is what compacting that output kept. A run that raised keeps its ERROR status
  (OpenInference sets OK over it).
- **steps and tools**: the same spans, without binding each call's arguments through `inspect` anew.

Every span starts on OpenTelemetry's own tracer unless an OPENINFERENCE_HIDE_* setting asks for OpenInference's
masking tracer, which sets every attribute twice. With `full_prompts` (COGSCOPE_FULL_PROMPTS) model calls keep
OpenInference's own wrappers, whole prompts and all. tests/test_telemetry_instrumentor.py holds the spans equal to
OpenInference's, compacted.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable, Generator, Iterator, Mapping
from contextvars import Token
from enum import Enum
from typing import Any

import wrapt
from openinference.instrumentation import (
    OITracer,
    TraceConfig,
    get_attributes_from_context,
    infer_llm_provider_from_host,
    infer_llm_system_from_model_name,
    safe_json_dumps,
)
from openinference.instrumentation.smolagents import SmolagentsInstrumentor
from openinference.instrumentation.smolagents import _wrappers as oi
from openinference.semconv.trace import MessageAttributes, MessageContentAttributes
from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context import Context

from . import context_guard
from .attributes import ATTR_ROLE, INPUT, INPUT_MESSAGES, KIND, LLM_KIND, OUTPUT
from .compact import Compactor, Message

log = logging.getLogger("cogscope.instrumentor")

_MESSAGE_PREFIX = f"{INPUT_MESSAGES}.0."
# what the wrappers below use of OpenInference's own: if a release of it lacks any, its own wrappers stay
_REQUIRED = (
    "AGENT CHAIN TOOL JSON INPUT_MIME_TYPE OUTPUT_MIME_TYPE LLM_MODEL_NAME LLM_PROVIDER LLM_SYSTEM "
    "LLM_TOKEN_COUNT_PROMPT LLM_TOKEN_COUNT_COMPLETION LLM_TOKEN_COUNT_TOTAL _finalize_step_span _flatten "
    "_has_active_llm_parent_span _llm_input_messages _llm_invocation_parameters _llm_output_messages _llm_tools "
    "_output_value_and_mime_type _output_value_and_mime_type_for_tool_span _smolagent_run_attributes _tools "
    "extract_llm_endpoint_from_sdk_instance infer_llm_provider_from_class_name"
).split()
_SAVED = (
    "_tracer _original_run_method _original_tool_call_method _original_step_stream_methods "
    "_original_model_generate_methods _original_model_generate_stream_methods"
).split()
_SIGNATURES: dict[Any, tuple[inspect.Signature, tuple[str, ...] | None, str | None]] = {}  # function -> `_binder`
_PK, _KO, _VK = (
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
    inspect.Parameter.VAR_KEYWORD,
)


def _binder(wrapped: Callable[..., Any]) -> tuple[inspect.Signature, tuple[str, ...] | None, str | None]:
    """The call's signature; its parameter names when a call can be bound by position and name alone (no *args,
    no positional-only parameters), and the name of its **kwargs."""
    key = getattr(wrapped, "__func__", wrapped)
    found = _SIGNATURES.get(key)
    if found is None:
        signature = inspect.signature(wrapped)
        kinds = [p.kind for p in signature.parameters.values()]
        simple = all(k in (_PK, _KO, _VK) for k in kinds)
        names = tuple(n for n, p in signature.parameters.items() if p.kind != _VK) if simple else None
        var = next((n for n, p in signature.parameters.items() if p.kind == _VK), None)
        found = _SIGNATURES[key] = (signature, names, var)
    return found


def _arguments(wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The call's arguments by name, defaults included, as OpenInference binds them (`Signature.bind` and
    `apply_defaults`), without their cost for the common signature."""
    signature, names, var = _binder(wrapped)
    params = signature.parameters
    if names is not None and len(args) <= len(names) and all(params[n].kind == _PK for n in names[: len(args)]):
        bound = dict(zip(names, args, strict=False))
        extra = {}
        for name, value in kwargs.items():
            if name in params and params[name].kind != _VK and name not in bound:
                bound[name] = value
            elif var is not None and name not in params:
                extra[name] = value
            else:
                break
        else:
            missing = [n for n in names if n not in bound and params[n].default is inspect.Parameter.empty]
            if not missing:
                arguments = {n: bound[n] if n in bound else params[n].default for n in names}
                if var is not None:
                    arguments[var] = extra
                return {k: v for k, v in arguments.items() if k not in ("self", "cls")}
    bound_args = signature.bind(*args, **kwargs)  # anything else, and a wrong call raises as it would have
    bound_args.apply_defaults()
    return {k: v for k, v in bound_args.arguments.items() if k not in ("self", "cls")}


_ROLE, _CONTENT = MessageAttributes.MESSAGE_ROLE, MessageAttributes.MESSAGE_CONTENT
_PART = (
    f"{MessageAttributes.MESSAGE_CONTENTS}.{{}}.{MessageContentAttributes.MESSAGE_CONTENT_TYPE}",
    f"{MessageAttributes.MESSAGE_CONTENTS}.{{}}.{MessageContentAttributes.MESSAGE_CONTENT_TEXT}",
)
_ONE_TYPE, _ONE_TEXT = _PART[0].format(0), _PART[1].format(0)


def prompt_message(message: Any) -> Message:
    """One input message as OpenInference records it: its (key suffix, value) pairs in key order; () for a message
    it skips (no role, or no text). Text is read here; anything else (images) by OpenInference's own code."""
    if isinstance(message, Mapping):
        role, content = message.get("role"), message.get("content")
    else:
        role, content = getattr(message, "role", None), getattr(message, "content", None)
    if isinstance(role, Enum):
        role = role.value
    if not role:
        return ()
    if isinstance(content, str):
        return ((_CONTENT, content), (_ROLE, role))
    if isinstance(content, list) and len(content) == 1 and isinstance(part := content[0], dict):
        if part.get("type") == "text" and (text := part.get("text")):  # what smolagents sends: one text part
            return ((_ONE_TEXT, text), (_ONE_TYPE, "text"), (_ROLE, role))
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        pairs: list[tuple[str, Any]] = [(_ROLE, role)]
        for index, text in enumerate(t for p in content if (t := p.get("text"))):
            pairs += ((_PART[0].format(index), "text"), (_PART[1].format(index), text))
        return tuple(sorted(pairs))
    attributes = oi._llm_input_messages({"messages": [{"role": role, "content": content}]})
    return tuple(sorted((key[len(_MESSAGE_PREFIX) :], value) for key, value in attributes))


def _prompt(arguments: Mapping[str, Any]) -> list[Message]:
    if isinstance(prompt := arguments.get("prompt"), str):
        return [prompt_message({"role": "user", "content": prompt})]
    messages = arguments.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in map(prompt_message, messages) if m]


def _plain(value: Any) -> Any:
    """`dataclasses.asdict` without its deep copy (of LiteLLM's raw response, among others)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _output_value(output: Any) -> str:
    """The call's output as OpenInference's JSON of it, without LiteLLM's raw response (replay reads the rest)."""
    if dataclasses.is_dataclass(output) and not isinstance(output, type):  # a smolagents ChatMessage
        fields = dataclasses.fields(output)
        return safe_json_dumps({f.name: _plain(getattr(output, f.name)) for f in fields if f.name != "raw"})
    return str(dict(oi._output_value_and_mime_type(output))[OUTPUT])  # JSON text already: str() narrows Any


def _masks_nothing(config: TraceConfig) -> bool:
    """Whether OpenInference's settings (OPENINFERENCE_HIDE_* and the like) are all at their defaults."""
    for f in dataclasses.fields(config):
        if "default_value" in f.metadata and getattr(config, f.name) != f.metadata["default_value"]:
            return False
    return getattr(config, "blob_uploader", None) is None


class _Wrapper:
    """Starts spans as OpenInference's tracer does. With its default settings (no OPENINFERENCE_HIDE_* masking),
    straight on OpenTelemetry's tracer, which costs a third of the time: OpenInference's sets every attribute twice,
    each through its masking."""

    def __init__(self, tracer: trace_api.Tracer | OITracer) -> None:
        self._tracer = tracer
        config = getattr(tracer, "_self_config", None)
        plain = config is None or _masks_nothing(config)
        self._plain: trace_api.Tracer | None = getattr(tracer, "__wrapped__", None) if plain else None

    def start_span(self, name: str, attributes: dict[str, Any]) -> trace_api.Span:
        """The span, with the session, user and other attributes of the context (as OpenInference's tracer adds)."""
        if self._plain is None:
            return self._tracer.start_span(name, attributes=attributes)
        return self._plain.start_span(name, attributes={**attributes, **dict(get_attributes_from_context())})


class _CompactCall(_Wrapper):
    """What the two model-call wrappers share: the span's attributes at the start and at the end."""

    def __init__(self, tracer: trace_api.Tracer | OITracer, compactor: Compactor) -> None:
        super().__init__(tracer)
        self._compactor = compactor

    def start(self, instance: Any, name: str, arguments: dict[str, Any]) -> trace_api.Span:
        others = {k: v for k, v in arguments.items() if k not in ("messages", "prompt")}
        span = self.start_span(
            f"{instance.__class__.__name__}.{name}",
            {
                KIND: LLM_KIND,
                oi.INPUT_MIME_TYPE: oi.JSON,
                INPUT: safe_json_dumps(others),
                **dict(oi._llm_invocation_parameters(instance, arguments)),
            },
        )
        context = span.get_span_context()
        # the role: set on the span as it started, from its live ancestors (telemetry.roles.CallAnnotator)
        role = str((getattr(span, "attributes", None) or {}).get(ATTR_ROLE, ""))
        tools = tuple(sorted(oi._llm_tools(arguments.get("tools_to_call_from") or [])))
        span.set_attributes(
            self._compactor.at_source(context.trace_id, context.span_id, role, _prompt(arguments), tools)
        )
        return span

    @staticmethod
    def finish(span: trace_api.Span, model: Any, output: Any) -> None:
        span.set_status(trace_api.StatusCode.OK)
        usage = getattr(output, "token_usage", None)
        if usage:
            tokens_in, tokens_out, total = usage.input_tokens, usage.output_tokens, usage.total_tokens
        else:
            tokens_in, tokens_out = model.last_input_token_count, model.last_output_token_count
            total = tokens_in + tokens_out
        span.set_attribute(oi.LLM_TOKEN_COUNT_PROMPT, tokens_in)
        span.set_attribute(oi.LLM_TOKEN_COUNT_COMPLETION, tokens_out)
        span.set_attribute(oi.LLM_TOKEN_COUNT_TOTAL, total)
        span.set_attribute(oi.LLM_MODEL_NAME, model.model_id)
        provider = oi.infer_llm_provider_from_class_name(model)
        if provider is None and (host := oi.extract_llm_endpoint_from_sdk_instance(model)):
            provider = infer_llm_provider_from_host(host)
        if provider:
            span.set_attribute(oi.LLM_PROVIDER, provider.value)
        if system := infer_llm_system_from_model_name(model.model_id):
            span.set_attribute(oi.LLM_SYSTEM, system.value)
        span.set_attributes(oi._llm_output_messages(output))
        span.set_attribute(oi.OUTPUT_MIME_TYPE, oi.JSON)
        span.set_attribute(OUTPUT, _output_value(output))


def _traced() -> bool:
    """Whether a model call gets a span: not when tracing is suppressed, nor inside another model call's span."""
    return not context_api.get_value(context_api._SUPPRESS_INSTRUMENTATION_KEY) and not oi._has_active_llm_parent_span()


class _ModelWrapper(_CompactCall):
    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        if not _traced():
            return wrapped(*args, **kwargs)
        span = self.start(instance, "generate", _arguments(wrapped, args, kwargs))
        with trace_api.use_span(span, end_on_exit=True):  # records an exception and ends the span
            output = wrapped(*args, **kwargs)
            self.finish(span, instance, output)
        return output


class _ModelStreamWrapper(_CompactCall):
    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        if not _traced():
            return wrapped(*args, **kwargs)
        arguments = _arguments(wrapped, args, kwargs)

        def stream() -> Generator[Any, None, None]:
            from smolagents.models import agglomerate_stream_deltas

            deltas: list[Any] = []
            span = self.start(instance, "generate_stream", arguments)
            try:
                with trace_api.use_span(span, end_on_exit=False):
                    output_stream = iter(wrapped(*args, **kwargs))
                while True:
                    with trace_api.use_span(span, end_on_exit=False):
                        try:
                            delta = next(output_stream)
                        except StopIteration:
                            break
                    deltas.append(delta)
                    yield delta
            except GeneratorExit:
                if close := getattr(output_stream, "close", None):
                    close()
                self.finish(span, instance, agglomerate_stream_deltas(deltas))
                raise
            except Exception as e:
                span.record_exception(e)
                span.set_status(trace_api.StatusCode.ERROR)
                raise
            else:
                self.finish(span, instance, agglomerate_stream_deltas(deltas))
            finally:
                span.end()

        return stream()


class _StepWrapper(_Wrapper):
    """A step as OpenInference records it (`Step n`, its memory step as input, its observations as output)."""

    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        if context_api.get_value(context_api._SUPPRESS_INSTRUMENTATION_KEY):
            yield from wrapped(*args, **kwargs)
            return
        span = self.start_span(
            f"Step {instance.step_number}",
            {
                KIND: oi.CHAIN,
                INPUT: safe_json_dumps(_arguments(wrapped, args, kwargs)),
            },
        )
        # as OpenInference's: an exception is recorded by both, and the status names it (steps read that)
        with trace_api.use_span(span, end_on_exit=True):
            try:
                yield from wrapped(*args, **kwargs)
            except Exception as e:
                span.record_exception(e)
                span.set_status(trace_api.StatusCode.ERROR)
                raise
            finally:
                if args:
                    oi._finalize_step_span(span, args[0])


class _ToolWrapper(_Wrapper):
    """A tool call as OpenInference records it."""

    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        if context_api.get_value(context_api._SUPPRESS_INSTRUMENTATION_KEY):
            return wrapped(*args, **kwargs)
        span = self.start_span(
            instance.__class__.__name__,
            {
                KIND: oi.TOOL,
                INPUT: safe_json_dumps(_arguments(wrapped, args, kwargs)),
                **dict(oi._tools(instance)),
            },
        )
        with trace_api.use_span(span, end_on_exit=True):
            response = wrapped(*args, **kwargs)
            span.set_status(trace_api.StatusCode.OK)
            span.set_attributes(dict(oi._output_value_and_mime_type_for_tool_span(response, instance.output_type)))
        return response


class _RunWrapper(_Wrapper):
    """An agent's run as OpenInference records it, but a streamed run's output is its final answer's step alone."""

    def __call__(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        if context_api.get_value(context_api._SUPPRESS_INSTRUMENTATION_KEY):
            return wrapped(*args, **kwargs)
        agent = instance
        arguments = _arguments(wrapped, args, kwargs)
        span = self.start_span(
            f"{getattr(agent, 'name', None) or agent.__class__.__name__}.run",
            dict(
                oi._flatten(
                    {
                        KIND: oi.AGENT,
                        INPUT: safe_json_dumps(arguments),
                        **dict(oi._smolagent_run_attributes(agent, arguments)),
                    }
                )
            ),
        )
        token = context_api.attach(trace_api.set_span_in_context(span))
        try:
            output = wrapped(*args, **kwargs)
        except Exception as e:
            span.record_exception(e)
            span.set_status(trace_api.StatusCode.ERROR)
            span.end()
            context_api.detach(token)
            raise
        if not isinstance(output, Generator):
            try:
                span.set_attribute(OUTPUT, str(output))
                _set_run_tokens(span, agent)
                return output
            finally:
                span.set_status(trace_api.StatusCode.OK)
                span.end()
                context_api.detach(token)
        return self._stream(output, span, agent, token)

    @staticmethod
    def _stream(
        items: Iterator[Any], span: trace_api.Span, agent: Any, token: Token[Context]
    ) -> Generator[Any, None, None]:
        from smolagents import FinalAnswerStep

        final, failed = None, False
        try:
            for item in items:
                if isinstance(item, FinalAnswerStep):
                    final = item
                yield item
        except Exception as e:
            failed = True
            span.record_exception(e)
            span.set_status(trace_api.StatusCode.ERROR)
            raise
        finally:
            if final is not None:
                span.set_attribute(OUTPUT, str(final))
            _set_run_tokens(span, agent)
            if not failed:
                span.set_status(trace_api.StatusCode.OK)
            span.end()
            context_api.detach(token)


def _set_run_tokens(span: trace_api.Span, agent: Any) -> None:
    tokens_in, tokens_out = agent.monitor.total_input_token_count, agent.monitor.total_output_token_count
    span.set_attribute(oi.LLM_TOKEN_COUNT_PROMPT, tokens_in)
    span.set_attribute(oi.LLM_TOKEN_COUNT_COMPLETION, tokens_out)
    span.set_attribute(oi.LLM_TOKEN_COUNT_TOTAL, tokens_in + tokens_out)


def _unwrapped(method: Any) -> Any:
    """The function under any wrapt wrappers (a subclass that inherits `generate` was saved with its parent's)."""
    while isinstance(method, wrapt.ObjectProxy):
        method = method.__wrapped__
    return method


class Instrumentor(SmolagentsInstrumentor):
    """OpenInference's smolagents instrumentor with cogscope's wrappers (module docstring); model calls keep
    OpenInference's when `compactor` keeps full prompts.

    Instrumentor().instrument(tracer_provider=provider, compactor=compactor)
    """

    _instance = None  # BaseInstrumentor keeps one instance per class; without this it would be OpenInference's
    _is_instrumented_by_opentelemetry = False

    def _instrument(self, **kwargs: Any) -> None:
        compactor = kwargs.pop("compactor", None) or Compactor()
        context_guard.install()  # the spans below are made current across generators' yields
        super()._instrument(**kwargs)
        from smolagents import MultiStepAgent, Tool

        missing = [n for n in _REQUIRED if not hasattr(oi, n)] + [n for n in _SAVED if not hasattr(self, n)]
        if missing:  # spans are still recorded (OpenInference's wrappers), and compacted when exported
            log.warning(
                "cogscope: this OpenInference release lacks %s; its own smolagents wrappers are used, which cost "
                "more per step (cogscope's were written against openinference-instrumentation-smolagents 0.1.43)",
                ", ".join(missing),
            )
            return

        # OpenInference restores what it saved when it uninstruments: the wrappers below replace only its own
        # OpenInference keeps the smolagents classes it saved typed as plain `type`: the attributes set on them
        # below are smolagents' own methods (hence the attr-defined ignores)
        tracer = self._tracer
        MultiStepAgent.run = wrapt.FunctionWrapper(_unwrapped(self._original_run_method), _RunWrapper(tracer))
        Tool.__call__ = wrapt.FunctionWrapper(_unwrapped(self._original_tool_call_method), _ToolWrapper(tracer))
        for step_class, method in (self._original_step_stream_methods or {}).items():
            if method is not None:
                wrapper = wrapt.FunctionWrapper(_unwrapped(method), _StepWrapper(tracer))
                step_class._step_stream = wrapper  # type: ignore[attr-defined]  # a MultiStepAgent subclass
        if compactor.full_prompts:
            return
        for model_class, method in (self._original_model_generate_methods or {}).items():
            wrapper = wrapt.FunctionWrapper(_unwrapped(method), _ModelWrapper(tracer, compactor))
            model_class.generate = wrapper  # type: ignore[attr-defined]  # a smolagents Model subclass
        for model_class, method in (self._original_model_generate_stream_methods or {}).items():
            wrapper = wrapt.FunctionWrapper(_unwrapped(method), _ModelStreamWrapper(tracer, compactor))
            model_class.generate_stream = wrapper  # type: ignore[attr-defined]  # a smolagents Model subclass
