"""The bundled model's server: llama-cpp-python's OpenAI-compatible server, plus the token usage its streams lack.

    python -m ui.local_llm_server --model FILE.gguf ...     (the arguments of `python -m llama_cpp.server`)

llama-cpp-python 0.3 reports `usage` only for a reply that is not streamed. cogscope streams the model's words
to the Run tab and the terminal, and a trace must still count tokens exactly, as OpenAI's
`stream_options={"include_usage": true}` does. So this server counts, by the rule of a reply not streamed:

- prompt tokens: the tokens `Llama.generate` is given (the whole prompt, cached prefix included);
- completion tokens: each token it produces that does not end the generation (the tokens llama.cpp's own
  `completion_tokens` list gets);

and ends every streamed chat completion with one more chunk, `{"choices": [], "usage": {...}}`, as OpenAI does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, cast

import llama_cpp
from llama_cpp.llama_types import CreateChatCompletionStreamResponse
from llama_cpp.server.__main__ import main

_generate = llama_cpp.Llama.generate
_chat = llama_cpp.Llama.create_chat_completion


def _counting_generate(self: llama_cpp.Llama, tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
    counts = [len(tokens), 0]
    self._cogscope_counts = counts  # type: ignore[attr-defined]  # the server runs one generation at a time
    for token in _generate(self, tokens, *args, **kwargs):
        if not llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
            counts[1] += 1
        yield token


def _chat_with_usage(self: llama_cpp.Llama, *args: Any, **kwargs: Any) -> Any:
    self._cogscope_counts = None  # type: ignore[attr-defined]
    result = _chat(self, *args, **kwargs)
    if not kwargs.get("stream"):
        return result
    stream = cast(Iterator[CreateChatCompletionStreamResponse], result)  # what stream=True returns

    def chunks() -> Iterator[Mapping[str, Any]]:
        last: CreateChatCompletionStreamResponse | None = None
        for chunk in stream:
            last = chunk
            yield chunk
        counts = getattr(self, "_cogscope_counts", None)
        if last is not None and counts is not None:
            prompt, completion = counts
            yield {
                "id": last.get("id"),
                "object": "chat.completion.chunk",
                "created": last.get("created"),
                "model": last.get("model"),
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }

    return chunks()


# the wrapper takes the original's arguments as *args/**kwargs, which mypy cannot match to its long signature
llama_cpp.Llama.generate = _counting_generate  # type: ignore[method-assign,assignment]
llama_cpp.Llama.create_chat_completion = _chat_with_usage  # type: ignore[method-assign]

if __name__ == "__main__":
    main()  # type: ignore[no-untyped-call]  # llama-cpp-python's server entry point has no annotations
