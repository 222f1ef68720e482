"""Model ids -> smolagents models: any LiteLLM model id, or `local` (the bundled SmolLM2).

Every check here runs before an agent is built, so a bad model id, a missing
API key or an unreachable API base is one clear line, not a failed cycle.
"""

from __future__ import annotations

import os
import re
import socket
from urllib.parse import urlsplit

from smolagents import LiteLLMModel

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
    import litellm

    litellm.suppress_debug_info = True
    try:
        litellm.get_llm_provider(model_id)
    except Exception:
        raise ModelError(
            f"unknown model {model_id!r}: LiteLLM cannot tell its provider; prefix the provider, "
            "e.g. openai/..., anthropic/..., gemini/..., ollama/... (or use `local`)"
        ) from None
    return model_id


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
    parts = urlsplit(api_base)
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


def build_model(model_id: str, api_base: str | None, local: LocalModelServer) -> LiteLLMModel:
    """A checked model id -> a LiteLLMModel (the instrumentor traces its calls as LLM spans)."""
    if model_id == LOCAL_MODEL:
        return LiteLLMModel(
            model_id=LOCAL_MODEL_ID,
            api_base=local.ensure(),
            api_key=PLACEHOLDER_KEY,
            flatten_messages_as_text=True,
            max_tokens=LOCAL_MAX_TOKENS,
        )
    api_key = PLACEHOLDER_KEY if api_base and missing_keys(model_id) else None  # None: LiteLLM reads the env
    return LiteLLMModel(model_id=model_id, api_base=api_base, api_key=api_key)
