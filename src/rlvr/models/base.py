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


@runtime_checkable
class Backend(Protocol):
    """generate / logprobs / load-save weights. Prompts are chat messages or already-templated text."""

    def generate(
        self, prompts: list[list[dict[str, str]] | str], params: SamplingParams
    ) -> list[Generation]: ...

    def logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[list[float]]: ...

    def load_weights(self, state_dict: dict[str, Any]) -> None: ...

    def save(self, path: str) -> None: ...
