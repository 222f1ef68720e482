"""Model ids -> smolagents models: any LiteLLM model id, or `local` (the bundled SmolLM2).

Every check here runs before an agent is built, so a bad model id, a missing
API key or an unreachable API base is one clear line, not a failed cycle.

Every model built here is a `SafeLiteLLMModel`: what it sends has secrets blanked (telemetry.redaction) and no
lone surrogates; what it returns has no lone surrogates; each call ends within its timeout (no hidden retries of a
hung call), and rate-limit retries stay within twice that; and a provider key from the environment goes to an API
base only when the caller says so (`send_key`).
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import socket
import time
from collections.abc import Callable, Generator
from typing import Any
from urllib.parse import urlsplit

from smolagents import ChatMessage, LiteLLMModel
from smolagents.models import ChatMessageStreamDelta, is_rate_limit_error

from cogscope.telemetry import clean_text, clean_value, default_redactor

from .config import LOCAL_MODEL
from .errors import ModelError
from .local_llm import MODEL_ID as LOCAL_MODEL_ID
from .local_llm import LocalModelServer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price map at import

SUGGESTED_MODELS = [
    LOCAL_MODEL,
    "openai/gpt-4o-mini",
    "openai/gpt-4.1-mini",
    "anthropic/claude-3-5-haiku-latest",
    "anthropic/claude-sonnet-4-5",
    "gemini/gemini-2.0-flash",
    "ollama/llama3.1",
]
PLACEHOLDER_KEY = "sk-no-key-required"  # for OpenAI-compatible servers that need none; not a secret
MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.\-:@]*(/[\w.\-:@]+)*$")
LOCAL_MAX_TOKENS = 256  # keep the tiny model's cycles short (and inside its 8,192-token context)
DEFAULT_TIMEOUT = 120.0  # seconds one LLM call may take (Settings.llm_timeout, COGSCOPE_LLM_TIMEOUT)
RATE_LIMIT_ATTEMPTS = 3  # calls in all when the provider answers "rate limited" (smolagents' own figure)
# providers that sign requests with credentials of their own from the environment (not an api_key we can replace)
ENV_CREDENTIAL_PROVIDERS = ("bedrock", "sagemaker", "vertex_ai", "vertex_ai_beta", "watsonx")
# providers whose mere lookup (litellm.get_llm_provider) reads a token file under ~/.config/litellm and, without
# one, starts an OAuth device flow that waits for someone to sign in; LiteLLM's own list is added when it has one
INTERACTIVE_PROVIDERS = ("github_copilot", "chatgpt")


def check_model_id(model_id: str) -> str:
    model_id = (model_id or "").strip()
    if not model_id:
        raise ModelError(
            "no model given; use `local` for the bundled offline model or a LiteLLM id like openai/gpt-4o-mini"
        )
    if model_id == LOCAL_MODEL:
        return model_id
    if not MODEL_ID.match(model_id):
        raise ModelError(
            f"malformed model id {model_id!r}; write it as LiteLLM does, provider/name, e.g. openai/gpt-4o-mini"
        )
    litellm = quiet_litellm()
    check_not_interactive(model_id, litellm)
    try:
        litellm.get_llm_provider(model_id)
    except Exception:
        raise ModelError(
            f"unknown model {model_id!r}: LiteLLM cannot tell its provider; prefix the provider, "
            "e.g. openai/..., anthropic/..., gemini/..., ollama/... (or use `local`)"
        ) from None
    return model_id


def check_not_interactive(model_id: str, litellm: Any) -> None:
    """Refuse a provider that signs in interactively, before LiteLLM is asked anything about the id."""
    provider = model_id.split("/", 1)[0].lower() if "/" in model_id else ""
    constants = getattr(litellm, "constants", None)
    interactive = {*INTERACTIVE_PROVIDERS, *getattr(constants, "PROVIDERS_THAT_AUTHENTICATE_ON_PROVIDER_INFO", ())}
    if provider in interactive:
        raise ModelError(
            f"model {model_id!r}: the {provider} provider signs in through a browser (an OAuth device flow) and "
            "reads a token file under ~/.config/litellm; cogscope does not use such providers: choose one with an "
            "API key (openai/..., anthropic/...), an OpenAI-compatible server (--api-base), or `local`"
        )


def quiet_litellm() -> Any:
    """LiteLLM, imported, with its debug hints and its streaming logger off; returns the module.

    For every streamed chunk LiteLLM hands its success logger to a thread pool that starts an asyncio event loop
    of its own. cogscope registers no LiteLLM callback (tokens come from the stream's usage chunk, costs from the
    spans), so that is pure overhead: with it, a 4-call cycle cost a shared app about 0.2 CPU-s (bench/bench_team.py).
    """
    import litellm

    litellm.suppress_debug_info = True
    litellm.disable_streaming_logging = True
    return litellm


def preload() -> None:
    """Load LiteLLM now, so that a long-running app's first Run does not pay for the import (~6 CPU-s).

    The reading commands never need it; `cogscope ui` calls this in a background thread once it is up.
    """
    quiet_litellm()


def missing_keys(model_id: str) -> list[str]:
    import litellm

    try:
        return list(litellm.validate_environment(model=model_id).get("missing_keys") or [])
    except Exception:
        return []


def check_api_key(model_id: str, api_base: str | None) -> None:
    """A hosted model needs its key in the environment; a custom API base may need none."""
    if model_id == LOCAL_MODEL or api_base:
        return
    keys = missing_keys(model_id)
    if keys:
        raise ModelError(
            f"model {model_id} needs {' and '.join(keys)}; export {keys[0]}=... before starting cogscope, "
            "or choose `local` (offline)"
        )


def check_api_base(api_base: str | None, timeout: float = 3.0) -> str | None:
    if not api_base or not api_base.strip():
        return None
    api_base = api_base.strip().rstrip("/")
    try:
        parts = urlsplit(api_base)
    except ValueError as e:  # e.g. "Invalid IPv6 URL" for http://[::1/v1
        raise ModelError(
            f"API base {api_base!r} is not a valid URL ({e}); write it like http://127.0.0.1:8000/v1 "
            "(an IPv6 address goes in brackets: http://[::1]:8000/v1)"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelError(f"API base {api_base!r} is not an http(s) URL; write it like http://127.0.0.1:8000/v1")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ModelError(f"API base {api_base!r} has a bad port; write it like http://127.0.0.1:8000/v1") from None
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ModelError(
            f"cannot reach the API base {api_base} ({reason}); start the server there or fix the API base"
        ) from None
    return api_base


def check_model(model_id: str, api_base: str | None) -> tuple[str, str | None]:
    """All checks that need no LLM call; returns the cleaned (model_id, api_base)."""
    model_id = check_model_id(model_id)
    api_base = None if model_id == LOCAL_MODEL else check_api_base(api_base)
    check_api_key(model_id, api_base)
    return model_id, api_base


# -- the model ------------------------------------------------------------------------------------------
class LLMTimeoutError(TimeoutError):
    """One LLM call took longer than its timeout."""


class BoundedRetrying:
    """smolagents' retry on rate limits (`ApiModel.retryer`), bounded in time.

    smolagents waits 120-240 s, then 240-960 s, between its 3 attempts, and the OpenAI client under LiteLLM
    retries a timed-out call twice more on its own; so one call could take many times its timeout. Here each
    attempt gets the call's `timeout` (or what is left), LiteLLM's own retries are off (`num_retries=0`), only
    rate-limit errors are retried, and all attempts and waits end within `2 * timeout`.
    """

    def __init__(self, timeout: float, attempts: int = RATE_LIMIT_ATTEMPTS) -> None:
        self.timeout = timeout
        self.attempts = attempts
        self.budget = 2 * timeout

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self.budget
        delay = min(30.0, self.timeout / 4)
        for attempt in range(1, self.attempts + 1):
            kwargs["timeout"] = max(1.0, min(self.timeout, deadline - time.monotonic()))
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                wait = min(delay * (1 + random.random()), deadline - time.monotonic() - self.timeout / 4)
                if attempt >= self.attempts or not is_rate_limit_error(e) or wait <= 0:
                    raise
            time.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")


def _clean_content(content: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(content, str):
        return clean(content)
    if isinstance(content, list):
        return [
            {**part, "text": clean(part["text"])}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    return content


def _clean_tool_calls(tool_calls: Any, clean: Callable[[Any], Any]) -> Any:
    if not tool_calls:
        return tool_calls
    out = []
    for call in tool_calls:
        if isinstance(call, dict):
            function = dict(call.get("function") or {})
            if "arguments" in function:
                function["arguments"] = clean(function["arguments"])
            out.append({**call, "function": function})
        elif getattr(call, "function", None) is not None:
            function = dataclasses.replace(call.function, arguments=clean(call.function.arguments))
            out.append(dataclasses.replace(call, function=function))
        else:
            out.append(call)
    return out


def redact_messages(messages: list[ChatMessage | dict[str, Any]]) -> list[ChatMessage | dict[str, Any]]:
    """Copies of chat messages with secrets blanked and lone surrogates escaped in their text and tool calls."""
    redactor = default_redactor()
    out: list[ChatMessage | dict[str, Any]] = []
    for m in messages:
        if isinstance(m, dict):
            m = dict(m)
            if "content" in m:
                m["content"] = _clean_content(m["content"], redactor.redact)
            if m.get("tool_calls"):
                m["tool_calls"] = _clean_tool_calls(m["tool_calls"], redactor.redact_value)
            out.append(m)
        else:
            out.append(
                dataclasses.replace(
                    m,
                    content=_clean_content(m.content, redactor.redact),
                    tool_calls=_clean_tool_calls(m.tool_calls, redactor.redact_value),
                )
            )
    return out


def clean_output(message: ChatMessage) -> ChatMessage:
    """The model's answer with lone surrogates escaped (its content is not redacted: it may be code to run)."""
    message.content = _clean_content(message.content, clean_text)
    message.tool_calls = _clean_tool_calls(message.tool_calls, clean_value)
    return message


class SafeLiteLLMModel(LiteLLMModel):  # type: ignore[misc]  # smolagents has no py.typed: its classes are Any
    """A LiteLLMModel whose prompts carry no secrets and whose calls end in time.

    `generate` calls `super().generate`, which the OpenInference instrumentor wraps, so the LLM span is
    recorded as usual (with the redacted input messages).
    """

    def __init__(self, *args: Any, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(*args, timeout=timeout, num_retries=0, **kwargs)  # kwargs go to every completion call
        quiet_litellm()
        self.timeout = timeout
        self.retryer = BoundedRetrying(timeout)

    def _timed_out(self, e: Exception) -> LLMTimeoutError | None:
        from litellm.exceptions import Timeout

        if isinstance(e, Timeout) or "timed out" in str(e).lower() or "timeout" in type(e).__name__.lower():
            return LLMTimeoutError(
                f"the model {self.model_id} did not answer within the LLM timeout of {self.timeout:g} s "
                "(COGSCOPE_LLM_TIMEOUT); raise it or check the model server"
            )
        return None

    def generate(self, messages: list[ChatMessage | dict[str, Any]], *args: Any, **kwargs: Any) -> ChatMessage:
        try:
            answer = super().generate(redact_messages(messages), *args, **kwargs)
        except Exception as e:
            timeout = self._timed_out(e)
            if timeout is not None:
                raise timeout from e
            raise
        return clean_output(answer)

    def generate_stream(
        self, messages: list[ChatMessage | dict[str, Any]], *args: Any, **kwargs: Any
    ) -> Generator[ChatMessageStreamDelta]:
        try:
            for delta in super().generate_stream(redact_messages(messages), *args, **kwargs):
                if isinstance(delta.content, str):
                    delta.content = clean_text(delta.content)
                yield delta
        except Exception as e:
            timeout = self._timed_out(e)
            if timeout is not None:
                raise timeout from e
            raise


def build_model(
    model_id: str,
    api_base: str | None,
    local: LocalModelServer,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    send_key: bool = False,
) -> SafeLiteLLMModel:
    """A checked model id -> a SafeLiteLLMModel (the instrumentor traces its calls as LLM spans).

    Args:
        timeout: seconds one LLM call may take (Settings.llm_timeout).
        send_key: may the provider key from the environment go to `api_base`? Only for a base the operator
            chose (COGSCOPE_API_BASE, `--api-base`, `cogscope ui --allow-api-base`); a base typed in the browser
            gets the placeholder key, so LiteLLM never reads OPENAI_API_KEY & co. for it.
    """
    if model_id == LOCAL_MODEL:
        return SafeLiteLLMModel(
            model_id=LOCAL_MODEL_ID,
            api_base=local.ensure(),
            api_key=PLACEHOLDER_KEY,
            flatten_messages_as_text=True,
            max_tokens=LOCAL_MAX_TOKENS,
            timeout=timeout,
        )
    if api_base and not send_key:
        provider = model_id.split("/", 1)[0]
        if provider in ENV_CREDENTIAL_PROVIDERS:
            raise ModelError(
                f"model {model_id} signs its requests with credentials from the environment; it cannot be sent to "
                f"the API base {api_base} (the operator may allow it with `cogscope ui --allow-api-base URL`)"
            )
        api_key: str | None = PLACEHOLDER_KEY
    else:
        api_key = PLACEHOLDER_KEY if api_base and missing_keys(model_id) else None  # None: LiteLLM reads the env
    return SafeLiteLLMModel(model_id=model_id, api_base=api_base, api_key=api_key, timeout=timeout)
