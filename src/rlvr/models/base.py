"""The narrow interface every generation/training backend implements (transformers now, vLLM later)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class SamplingParams:
    n: int = 1  # completions per prompt
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class Generation:
    """One completion of one prompt."""

    prompt_index: int
    text: str
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float] | None = None  # per completion token, from the sampling distribution
    truncated: bool = False  # stopped by max_new_tokens rather than EOS/stop string


def chat_prompt_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The model's chat prompt for ``messages``, ending where the assistant's reply begins.

    A tokenizer without a chat template gets the message contents joined by blank lines.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in messages) + "\n\n"


def encode_prompt(tokenizer: Any, prompt: list[dict[str, str]] | str) -> list[int]:
    """Token ids of a prompt: chat messages go through the chat template, a string is used as is.

    With a chat template the text already holds every special token the model expects, so none
    are added; without one, the tokenizer adds its usual ones (e.g. BOS).
    """
    text = chat_prompt_text(tokenizer, prompt) if isinstance(prompt, list) else prompt
    if not isinstance(text, str):
        raise TypeError(f"a prompt is a list of chat messages or a string, not {type(prompt).__name__}")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    ids = tokenizer(text, add_special_tokens=not has_template)["input_ids"]
    if not ids:
        raise ValueError("empty prompt: it encodes to no tokens")
    return list(ids)


@runtime_checkable
class Backend(Protocol):
    """generate / logprobs / load-save weights. Prompts are chat messages or already-templated text."""

    def generate(
        self, prompts: list[list[dict[str, str]] | str], params: SamplingParams
    ) -> list[Generation]: ...

    def logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[list[float]]: ...

    def load_weights(self, state_dict: dict[str, Any]) -> None: ...

    def save(self, path: str) -> None: ...
