"""LLM answer backends: any OpenAI-compatible server, or a local GGUF through llama-cpp-python.

Both build the same messages from prompts/ (a system prompt that keeps the model to the
numbered passages and makes it cite them, then the passages and the question), stream the
answer token by token, and turn every failure into a BackendError that says what went wrong:
the server is down, too slow, or refused; the model file is missing or unreadable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

from retrieval.answer.base import BackendError
from retrieval.answer.passages import answer_messages
from retrieval.models import Hit

# A base (non-chat) model tends to go on with a made-up next question; stop it there.
STOP = ["\nQuestion:", "\n\nQuestion"]


class _ChatBackend:
    """What both backends do with their own `_chat(messages, max_tokens=None)`: answer from the
    prompt's messages, and complete a short one (the follow-up rewrite)."""

    def stream(self, question: str, passages: Sequence[Hit]) -> Iterator[str]:
        yield from self._chat(answer_messages(question, passages))

    def complete(self, messages: list[dict], *, max_tokens: int = 64) -> str:
        return "".join(self._chat(messages, max_tokens=max_tokens))

    def _chat(self, messages: list[dict], *, max_tokens: int | None = None) -> Iterator[str]:
        raise NotImplementedError


class OpenAIBackend(_ChatBackend):
    """Any OpenAI-compatible chat endpoint: vLLM, Ollama, llama.cpp's server, OpenAI itself."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None,
        model: str,
        api_key: str | None,
        timeout: float,
        max_tokens: int,
        temperature: float,
    ):
        import openai

        self._openai = openai
        self.base_url = base_url or "https://api.openai.com/v1"
        self.model = model
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.temperature = temperature
        # Local servers need no key, but the client insists on one.
        self.client = openai.OpenAI(base_url=self.base_url, api_key=api_key or "unused", timeout=timeout, max_retries=0)

    @classmethod
    def from_settings(cls, settings, embedder) -> "OpenAIBackend":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return cls(
            base_url=settings.openai_base_url,
            model=settings.openai_model,
            api_key=key,
            timeout=settings.llm_timeout,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
        )

    def _chat(self, messages: list[dict], *, max_tokens: int | None = None) -> Iterator[str]:
        openai = self._openai
        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=messages,
                stream=True,
                max_tokens=max_tokens or self.max_tokens,
                temperature=self.temperature,
                stop=STOP,
            )
            for event in response:
                if event.choices and event.choices[0].delta.content:
                    yield event.choices[0].delta.content
        except openai.APITimeoutError:
            raise BackendError(f"the LLM server at {self.base_url} did not answer within {self.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            raise BackendError(
                f"cannot reach the LLM server at {self.base_url} ({exc.__cause__ or exc}); is it running?"
            ) from None
        except openai.APIStatusError as exc:
            raise BackendError(
                f"the LLM server at {self.base_url} refused the request (HTTP {exc.status_code}: {_short(exc.message)})"
            ) from None
        except openai.OpenAIError as exc:
            raise BackendError(f"the LLM server at {self.base_url} failed: {_short(str(exc))}") from None


class LlamaCppBackend(_ChatBackend):
    """A local GGUF model run in-process by llama-cpp-python."""

    name = "llamacpp"

    def __init__(self, *, model_path: Path | None, context_tokens: int, max_tokens: int, temperature: float):
        if model_path is None:
            raise BackendError("the llamacpp backend needs a GGUF file: set DOCENT_LLAMACPP_MODEL to its path")
        path = Path(model_path)
        if not path.is_file():
            raise BackendError(f"no GGUF model file at {path}; set DOCENT_LLAMACPP_MODEL to an existing .gguf file")
        try:
            from llama_cpp import Llama
        except ImportError:
            raise BackendError("the llamacpp backend needs llama-cpp-python: pip install llama-cpp-python") from None
        try:
            self.llm = Llama(model_path=str(path), n_ctx=context_tokens, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"cannot load the GGUF model {path}: {exc}") from None
        self.max_tokens = max_tokens
        self.temperature = temperature

    @classmethod
    def from_settings(cls, settings, embedder) -> "LlamaCppBackend":
        return cls(
            model_path=settings.llamacpp_model,
            context_tokens=settings.llm_context_tokens,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
        )

    def _chat(self, messages: list[dict], *, max_tokens: int | None = None) -> Iterator[str]:
        try:
            for event in self.llm.create_chat_completion(
                messages, stream=True, max_tokens=max_tokens or self.max_tokens, temperature=self.temperature, stop=STOP
            ):
                content = event["choices"][0]["delta"].get("content")
                if content:
                    yield content
        except (ValueError, RuntimeError) as exc:  # e.g. the prompt does not fit the context
            raise BackendError(f"the local model failed: {_short(str(exc))}") from None


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
