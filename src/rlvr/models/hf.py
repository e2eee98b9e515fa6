"""The transformers backend: batched KV-cache sampling and per-token log-probabilities of a causal LM.

Generation is a lean loop over ``model.forward`` with a ``DynamicCache``:

* prompts are left-padded and prefilled once; the ``n`` samples of a prompt share that prefill (the
  cache rows are repeated afterwards), which matters on CPU where prefill costs as much as decoding;
* finished sequences (EOS, stop string) are dropped from the batch as soon as they finish;
* sampling (inverse CDF, one random number per token) draws from a private ``torch.Generator``, so a
  seed reproduces the samples exactly;
* the log-probability of each sampled token under the distribution it was drawn from (after
  temperature and top-p) comes for free and is returned with each completion.

``sequence_logprobs`` scores given completions in one forward pass (optionally with gradients, for the
trainer), computing the vocabulary projection only at completion positions, chunk by chunk in fp32.
"""

from __future__ import annotations

import copy
import inspect
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from rlvr.models.base import Generation, SamplingParams, chat_prompt_text, encode_prompt

Prompt = list[dict[str, str]] | str

# Logits (positions x vocabulary) per chunk of the vocabulary projection: at most 64 MiB of fp32 at a time.
_LOGITS_CHUNK_ELEMENTS = 2**24


class _Scorer(torch.nn.Module):
    """``HFBackend._score`` behind ``nn.Module.__call__``: what a data-parallel wrapper wraps.

    Its parameters are the policy's (``self.model``), so DDP's gradient hooks or FSDP2's sharding
    see exactly the trained weights, while one call covers every pass of a micro-batch.
    """

    def __init__(self, backend: HFBackend):
        super().__init__()
        self.model = backend.model
        self._score = backend._score

    def forward(self, *args: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._score(*args)


class HFBackend:
    """A `transformers` causal LM and its tokenizer behind the `Backend` interface.

    ``model`` is the ordinary torch module (trainable: the trainer owns ``.train()`` / optimisers);
    ``tokenizer`` its tokenizer; ``name`` what it was loaded from.
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str, seed: int | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.eos_token_ids: set[int] = _eos_token_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_token_id: int = pad if pad is not None else min(self.eos_token_ids, default=0)
        self._generator = torch.Generator(device=self.device)
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(seed)
        params = inspect.signature(model.forward).parameters
        # transformers >= 5.2x names the KV cache argument `cache`; earlier versions `past_key_values`.
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._can_keep_last_logits = "logits_to_keep" in params
        decoder_params = inspect.signature(model.get_decoder().forward).parameters
        self._decoder_cache_arg = "cache" if "cache" in decoder_params else "past_key_values"
        # Score the completions of a repeated prompt against one shared prompt pass (see _score_shared).
        self.share_prompts = True
        self._sampler: Any = None  # a lower-precision copy of the model that generate() samples from
        # The scoring passes as one module call, so DDP / FSDP2 can wrap them (rlvr.train.distributed).
        self.scorer: torch.nn.Module = _Scorer(self)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # ------------------------------------------------------------------ prompts

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        """The model's chat prompt for ``messages`` (see `chat_prompt_text`)."""
        return chat_prompt_text(self.tokenizer, messages)

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt (see `rlvr.models.base.encode_prompt`)."""
        return encode_prompt(self.tokenizer, prompt)

    # ------------------------------------------------------------------ generation

    def set_sampling_dtype(self, dtype: torch.dtype | None, *, copy_always: bool = False) -> None:
        """Sample from a copy of the weights cast to ``dtype`` (None: from the model itself).

        Decoding on CPU reads every weight once per token, so bf16 weights decode about twice as fast
        as fp32 ones, while the trained weights and the optimizer stay fp32 (as with an inference
        engine beside the trainer). Only parameters are cast; buffers such as rotary frequencies keep
        their precision. Call `sync_sampler` after changing the model's weights. ``copy_always`` keeps
        a separate copy even at the model's own dtype (sharded training, sampling during an update).
        """
        dtype = dtype or (self.dtype if copy_always else None)
        if dtype is None or (dtype == self.dtype and not copy_always):
            self._sampler = None
            return
        if self._sampler is not None and self.sampling_dtype == dtype:  # already there: refresh it
            self.sync_sampler()
            return
        sampler = copy.deepcopy(self.model)
        for p in sampler.parameters():
            p.requires_grad_(False)
            p.data = p.data.to(dtype)
        self._sampler = sampler.eval()

    @property
    def has_sampling_copy(self) -> bool:
        """Whether generate() samples from a copy of the weights rather than the model itself."""
        return self._sampler is not None

    @property
    def sampling_dtype(self) -> torch.dtype:
        model = self._sampler if self._sampler is not None else self.model
        return next(model.parameters()).dtype

    @torch.no_grad()
    def sync_sampler(self) -> None:
        """Copy the model's current weights into the sampling copy (a no-op without one)."""
        if self._sampler is not None:
            for dst, src in zip(self._sampler.parameters(), self.model.parameters(), strict=True):
                # A sharded (FSDP2) parameter is gathered whole first.
                dst.copy_(src.full_tensor() if hasattr(src, "full_tensor") else src)

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, *, micro_batch: int | None = None
    ) -> list[Generation]:
        """Sample ``params.n`` completions of every prompt; results are prompt-major (prompt 0's n first).

        ``micro_batch`` caps how many sequences are decoded together (memory); the default decodes all
        at once. The same seed, prompts and micro-batch size give the same samples.
        """
        _check_params(params)
        if micro_batch is not None and micro_batch < 1:
            raise ValueError(f"micro_batch must be >= 1, got {micro_batch}")
        prompt_ids = [self.encode_prompt(p) for p in prompts]
        if params.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(params.seed)
        else:
            generator = self._generator
        rows = [i for i in range(len(prompt_ids)) for _ in range(params.n)]  # sequence -> prompt index
        step = micro_batch or max(len(rows), 1)
        out: list[Generation] = []
        model = self._sampler if self._sampler is not None else self.model
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(rows), step):
                chunk = rows[start : start + step]
                for i, (ids, logps, finish) in zip(
                    chunk, self._sample(model, prompt_ids, chunk, params, generator), strict=True
                ):
                    out.append(self._finish(i, prompt_ids[i], ids, logps, finish, params.stop))
        finally:
            self.model.train(was_training)
        return out

    @torch.inference_mode()
    def _sample(
        self,
        model: Any,
        prompt_ids: list[list[int]],
        rows: list[int],
        params: SamplingParams,
        generator: torch.Generator,
    ) -> list[tuple[list[int], list[float], str]]:
        """Decode one micro-batch: ``rows[k]`` is the prompt index of sequence k.

        Returns per sequence its token ids, their sampling log-probabilities and why it ended
        (``"eos"``, ``"stop"`` or ``"length"``).
        """
        from transformers import DynamicCache

        device = self.device
        unique = sorted(set(rows))
        width = max(len(prompt_ids[i]) for i in unique)
        input_ids = torch.full((len(unique), width), self.pad_token_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(unique), width), dtype=torch.long, device=device)
        for r, i in enumerate(unique):
            ids = prompt_ids[i]
            input_ids[r, width - len(ids) :] = torch.tensor(ids, device=device)
            mask[r, width - len(ids) :] = 1

        cache = DynamicCache(config=model.config)
        logits = self._forward(model, input_ids, mask, cache)
        # Give each sample its own copy of its prompt's cache row.
        src = torch.tensor([unique.index(i) for i in rows], device=device)
        if len(rows) != len(unique) or unique != rows:
            cache.batch_select_indices(src)
            logits, mask = logits[src], mask[src]

        tokens: list[list[int]] = [[] for _ in rows]
        logps: list[list[float]] = [[] for _ in rows]
        finish = ["length"] * len(rows)
        active = list(range(len(rows)))  # batch position -> sequence index
        stop_window = max((len(s) for s in params.stop), default=0) + 8  # tokens to decode per stop check
        for step in range(params.max_new_tokens):
            next_tokens, next_logps = _pick(logits, params.temperature, params.top_p, generator)
            keep = []
            for k, (seq, tok, lp) in enumerate(
                zip(active, next_tokens.tolist(), next_logps.tolist(), strict=True)
            ):
                tokens[seq].append(tok)
                logps[seq].append(lp)
                if tok in self.eos_token_ids:
                    finish[seq] = "eos"
                elif params.stop and self._has_stop(tokens[seq][-stop_window:], params.stop):
                    finish[seq] = "stop"
                else:
                    keep.append(k)
            if not keep or step == params.max_new_tokens - 1:
                break
            if len(keep) < len(active):  # drop finished sequences from the batch
                idx = torch.tensor(keep, device=device)
                cache.batch_select_indices(idx)
                mask, next_tokens = mask[idx], next_tokens[idx]
                active = [active[k] for k in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            logits = self._forward(model, next_tokens[:, None], mask, cache)
        return list(zip(tokens, logps, finish, strict=True))

    def _forward(self, model: Any, input_ids: torch.Tensor, mask: torch.Tensor, cache: Any) -> torch.Tensor:
        """One cached forward step; returns the logits of the last position, ``[B, V]``."""
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)[:, -input_ids.shape[1] :]
        kwargs: dict[str, Any] = {self._cache_arg: cache, "use_cache": True}
        if self._can_keep_last_logits:
            kwargs["logits_to_keep"] = 1
        out = model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, **kwargs)
        return out.logits[:, -1, :]

    def _has_stop(self, tail_ids: list[int], stop: list[str]) -> bool:
        text = self.tokenizer.decode(tail_ids, skip_special_tokens=True)
        return any(s in text for s in stop)

    def _finish(
        self,
        index: int,
        prompt_ids: list[int],
        ids: list[int],
        logps: list[float],
        finish: str,
        stop: list[str],
    ) -> Generation:
        """Build the Generation: text without EOS, and cut at the first stop string (text and ids)."""
        body = ids[:-1] if finish == "eos" else ids
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        cut = min((p for p in (text.find(s) for s in stop) if p >= 0), default=-1)
        if cut >= 0:
            # Keep the tokens up to the one that completed the stop string: what the policy sampled.
            n_keep = self._tokens_until_stop(body, stop)
            return Generation(
                index, text[:cut], list(prompt_ids), body[:n_keep], logps[:n_keep], truncated=False
            )
        return Generation(index, text, list(prompt_ids), list(ids), list(logps), truncated=finish == "length")

    def _tokens_until_stop(self, ids: list[int], stop: list[str]) -> int:
        """The smallest k such that the text of ``ids[:k]`` contains a stop string (binary search)."""
        lo, hi = 1, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._has_stop(ids[:mid], stop):
                hi = mid
            else:
                lo = mid + 1
        return lo

    # ------------------------------------------------------------------ scoring

    def sequence_logprobs(
        self,
        prompt_ids: Sequence[Sequence[int]],
        completion_ids: Sequence[Sequence[int]],
        *,
        grad: bool = False,
        temperature: float = 1.0,
        return_entropy: bool = False,
        micro_batch: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Log-probabilities of each completion token given its prompt and the completion so far.

        Returns ``(logp, mask, entropy)``, each ``[B, Tc]`` with ``Tc`` the longest completion:
        ``logp`` in fp32 (0 at padding), ``mask`` 1.0 at real tokens, ``entropy`` of the full next-token
        distribution at each position (or None). ``temperature`` divides the logits first, to score
        under the distribution samples were drawn from. With ``grad=True`` the result is differentiable
        w.r.t. the model parameters; ``micro_batch`` splits the forward passes (with gradients it
        bounds only the logits, since every micro-batch's activations stay alive until backward).
        """
        if len(prompt_ids) != len(completion_ids):
            raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 to score, got {temperature}")
        if any(len(p) == 0 for p in prompt_ids):
            raise ValueError("every prompt needs at least one token")
        if micro_batch is not None and micro_batch < 1:
            raise ValueError(f"micro_batch must be >= 1, got {micro_batch}")
        n = len(prompt_ids)
        width = max((len(c) for c in completion_ids), default=0)
        device = self.device
        mask = torch.zeros((n, width), dtype=torch.float32, device=device)
        for r, c in enumerate(completion_ids):
            mask[r, : len(c)] = 1.0
        step = micro_batch or max(n, 1)
        logps, entropies = [], []
        with torch.enable_grad() if grad else torch.no_grad():
            for start in range(0, n, step):
                lp, ent = self.scorer(
                    prompt_ids[start : start + step], completion_ids[start : start + step], width, temperature,
                    return_entropy, grad,
                )  # fmt: skip
                logps.append(lp)
                entropies.append(ent)
        if n == 0:
            empty = torch.zeros((0, width), device=device)
            return empty, mask, (empty.clone() if return_entropy else None)
        logp = torch.cat(logps)
        entropy = torch.cat(entropies) if return_entropy else None
        return logp, mask, entropy

    def _score(
        self,
        prompts: Sequence[Sequence[int]],
        completions: Sequence[Sequence[int]],
        width: int,
        temperature: float,
        return_entropy: bool,
        grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One forward pass over ``[left-padded prompt | right-padded completion]`` rows.

        Putting every completion's first token in the same column lets one slice pick the positions
        that predict completion tokens, whatever the prompt lengths.
        """
        if self.share_prompts and len({tuple(p) for p in prompts}) < len(prompts):
            return self._score_shared(prompts, completions, width, temperature, return_entropy, grad)
        device = self.device
        b, p_width = len(prompts), max(len(p) for p in prompts)
        c_width = max((len(c) for c in completions), default=0)
        input_ids = torch.full((b, p_width + c_width), self.pad_token_id, dtype=torch.long, device=device)
        attn = torch.zeros_like(input_ids)
        valid = torch.zeros((b, c_width), dtype=torch.bool, device=device)
        for r, (p, c) in enumerate(zip(prompts, completions, strict=True)):
            input_ids[r, p_width - len(p) : p_width + len(c)] = torch.tensor([*p, *c], device=device)
            attn[r, p_width - len(p) : p_width + len(c)] = 1
            valid[r, : len(c)] = True
        logp = torch.zeros((b, width), dtype=torch.float32, device=device)
        entropy = torch.zeros((b, width), dtype=torch.float32, device=device) if return_entropy else None
        if c_width == 0:
            return logp, entropy
        position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
        decoder = self.model.get_decoder()
        hidden = decoder(
            input_ids=input_ids, attention_mask=attn, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        hidden = hidden[:, p_width - 1 : p_width + c_width - 1][valid]  # [N, H]: positions predicting a token
        targets = input_ids[:, p_width:][valid]  # [N]
        lp, ent = self._token_logprobs(hidden, targets, temperature, return_entropy, grad)
        where = valid.nonzero(as_tuple=True)
        logp = logp.index_put(where, lp)
        if entropy is not None:
            entropy = entropy.index_put(where, ent)
        return logp, entropy

    def _score_shared(
        self,
        prompts: Sequence[Sequence[int]],
        completions: Sequence[Sequence[int]],
        width: int,
        temperature: float,
        return_entropy: bool,
        grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``_score`` with each distinct prompt run once: its KV cache is shared by its completions.

        A GRPO batch holds every prompt ``group_size`` times, and on CPU the prompt (system text, a
        worked example) is often several times longer than the answer: running it once per group
        and letting the completions attend to its cached keys and values cuts the forward and
        backward work by up to that factor. Gradients flow through the shared cache into the prompt
        pass, so the result equals ``_score``'s up to floating-point rounding.
        """
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        device = self.device
        index: dict[tuple[int, ...], int] = {}
        src = torch.tensor([index.setdefault(tuple(p), len(index)) for p in prompts], device=device)
        unique = list(index)
        b, p_width = len(prompts), max(len(p) for p in unique)
        c_width = max((len(c) for c in completions), default=0)
        logp = torch.zeros((b, width), dtype=torch.float32, device=device)
        entropy = torch.zeros((b, width), dtype=torch.float32, device=device) if return_entropy else None
        if c_width == 0:
            return logp, entropy
        p_ids = torch.full((len(unique), p_width), self.pad_token_id, dtype=torch.long, device=device)
        p_attn = torch.zeros_like(p_ids)
        for r, p in enumerate(unique):
            p_ids[r, p_width - len(p) :] = torch.tensor(p, device=device)
            p_attn[r, p_width - len(p) :] = 1
        c_ids = torch.full((b, c_width), self.pad_token_id, dtype=torch.long, device=device)
        valid = torch.zeros((b, c_width), dtype=torch.bool, device=device)
        for r, c in enumerate(completions):
            c_ids[r, : len(c)] = torch.tensor(list(c), device=device)
            valid[r, : len(c)] = True

        decoder = self.model.get_decoder()
        cache = DynamicCache(config=self.model.config)
        p_pos = (p_attn.cumsum(-1) - 1).clamp(min=0)
        p_out = decoder(
            input_ids=p_ids,
            attention_mask=p_attn,
            position_ids=p_pos,
            use_cache=True,
            **{self._decoder_cache_arg: cache},
        ).last_hidden_state
        lengths = [len(c) for c in completions]
        plain = all(type(layer) is DynamicLayer for layer in cache.layers)
        nonempty = [r for r in range(b) if lengths[r]]  # empty completions have nothing to score
        buckets = _length_buckets(lengths, nonempty) if plain else [nonempty]
        prefix = [(layer.keys, layer.values) for layer in cache.layers] if plain else None
        for rows in buckets:
            idx = torch.tensor(rows, device=device)
            w = max(lengths[r] for r in rows)
            if prefix is None:
                cache.batch_select_indices(src[idx])  # one bucket: each row gets its prompt's keys and values
                row_cache = cache
            else:  # a fresh cache per bucket, holding the rows' prompts' keys and values
                row_cache = DynamicCache(ddp_cache_data=[(k[src[idx]], v[src[idx]]) for k, v in prefix])
            attn = torch.cat([p_attn[src[idx]], valid[idx, :w].long()], dim=1)
            c_pos = (attn.cumsum(-1) - 1).clamp(min=0)[:, p_width:]
            c_out = decoder(
                input_ids=c_ids[idx, :w],
                attention_mask=attn,
                position_ids=c_pos,
                use_cache=True,
                **{self._decoder_cache_arg: row_cache},
            ).last_hidden_state
            # The prompt's last position predicts the first completion token; completion position t the next.
            v = valid[idx, :w]
            hidden = torch.cat([p_out[src[idx], -1:], c_out[:, :-1]], dim=1)[v]
            lp, ent = self._token_logprobs(hidden, c_ids[idx, :w][v], temperature, return_entropy, grad)
            where = (idx[:, None].expand(-1, w)[v], torch.arange(w, device=device).expand(len(rows), -1)[v])
            logp = logp.index_put(where, lp)
            if entropy is not None:
                entropy = entropy.index_put(where, ent)
        return logp, entropy

    def _token_logprobs(
        self,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        temperature: float,
        return_entropy: bool,
        grad: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """fp32 log p(target) and entropy from hidden states, a chunk of positions at a time.

        With gradients each chunk is checkpointed: only the hidden states are kept, and the chunk's
        logits are recomputed in backward, so memory never holds more than one chunk of logits.
        """
        head = self.model.get_output_embeddings()
        softcap = getattr(self.model.config, "final_logit_softcapping", None)

        def chunk_fn(h: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = head(h).float()
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            logits = logits / temperature
            logz = torch.logsumexp(logits, dim=-1)
            lp = logits.gather(-1, t[:, None]).squeeze(-1) - logz
            if not return_entropy:
                return lp, lp.new_zeros(())
            ent = logz - (torch.softmax(logits, dim=-1) * logits).sum(-1)
            return lp, ent

        size = max(1, _LOGITS_CHUNK_ELEMENTS // head.weight.shape[0])
        lps, ents = [], []
        for start in range(0, hidden.shape[0], size):
            h, t = hidden[start : start + size], targets[start : start + size]
            lp, ent = checkpoint(chunk_fn, h, t, use_reentrant=False) if grad else chunk_fn(h, t)
            lps.append(lp)
            ents.append(ent)
        return torch.cat(lps), (torch.cat(ents) if return_entropy else hidden.new_zeros(0))

    def logprobs(self, prompt_ids: list[list[int]], completion_ids: list[list[int]]) -> list[list[float]]:
        """Per-token log-probabilities of each completion (temperature 1, no gradients)."""
        logp, _, _ = self.sequence_logprobs(prompt_ids, completion_ids)
        return [row[: len(c)] for row, c in zip(logp.tolist(), completion_ids, strict=True)]

    # ------------------------------------------------------------------ weights

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A detached copy of the model's weights (safe to keep as a snapshot while training goes on)."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_weights(self, state_dict: dict[str, Any]) -> None:
        """Copy weights into the model in place; every parameter must be present with the same shape."""
        self.model.load_state_dict(state_dict, strict=True)
        self.sync_sampler()

    def save(self, path: str | os.PathLike, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write model + tokenizer + generation config with ``save_pretrained``, replacing ``path`` atomically.

        The checkpoint is written to a temporary sibling folder and renamed into place, so an
        interrupted save never leaves a half-written checkpoint at ``path``.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
        try:
            self.model.save_pretrained(tmp, state_dict=state_dict)
            self.tokenizer.save_pretrained(tmp)
            if path.exists():
                old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
                os.replace(path, old / path.name)
                os.replace(tmp, path)
                shutil.rmtree(old)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def __repr__(self) -> str:
        n_params = sum(p.numel() for p in self.model.parameters())
        return f"HFBackend({self.name!r}, {n_params / 1e6:.1f}M params, {self.dtype}, {self.device})"


def _length_buckets(
    lengths: list[int], rows: list[int] | None = None, max_waste: float = 0.25, min_rows: int = 4
) -> list[list[int]]:
    """``rows`` (default: all) grouped by length, longest first, so padding stays under ``max_waste``.

    A new bucket starts when a row is shorter than ``1 - max_waste`` of the bucket's longest row and
    the bucket already has ``min_rows`` rows (tiny buckets cost more in per-call overhead than padding).
    """
    order = sorted(range(len(lengths)) if rows is None else rows, key=lambda r: -lengths[r])
    buckets: list[list[int]] = []
    for r in order:
        if buckets and (
            len(buckets[-1]) < min_rows or lengths[r] >= (1 - max_waste) * lengths[buckets[-1][0]]
        ):
            buckets[-1].append(r)
        else:
            buckets.append([r])
    return buckets


def _pick(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the next token per row; return it and its log-probability under the sampling distribution.

    Greedy (temperature 0) reports the log-probability under the untempered distribution.
    """
    logits = logits.float()
    if temperature == 0:
        logp = torch.log_softmax(logits, dim=-1)
        tokens = logp.argmax(dim=-1)
    else:
        logits = logits / temperature
        if top_p < 1.0:
            logits = _top_p_filter(logits, top_p)
        logp = torch.log_softmax(logits, dim=-1)
        tokens = _draw(logp.exp(), generator)
    return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)


def _draw(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One token per row by inverse-CDF sampling: one uniform number per row.

    ``torch.multinomial`` draws one random number per vocabulary entry instead, which on CPU costs
    ~25x more than the whole rest of the sampling step (49k-token vocabulary).
    """
    cdf = probs.cumsum(dim=-1)
    u = torch.rand((probs.shape[0], 1), generator=generator, device=probs.device, dtype=cdf.dtype)
    tokens = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(-1).clamp_(max=probs.shape[-1] - 1)
    # u * total rounding up to the total would land on the last entry, possibly a zero-probability one.
    impossible = probs.gather(-1, tokens[:, None]).squeeze(-1) == 0
    if impossible.any():
        tokens = torch.where(impossible, probs.argmax(dim=-1), tokens)
    return tokens


def _top_p_filter(logits: torch.Tensor, top_p: float, candidates: int = 256) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches ``top_p`` (nucleus).

    The nucleus is looked for among the ``candidates`` most likely tokens first (a top-k is ~20x
    cheaper than sorting the whole vocabulary); only when they hold less than ``top_p`` of the mass
    is everything sorted. Either way the result is exact.
    """
    probs = logits.softmax(dim=-1)
    top, order = probs.topk(min(candidates, probs.shape[-1]), dim=-1)
    if (top.sum(dim=-1) < top_p).any():
        top, order = probs.sort(dim=-1, descending=True)
    keep_sorted = top.cumsum(dim=-1) - top < top_p  # the mass before this token is not yet enough
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def _check_params(params: SamplingParams) -> None:
    if params.n < 1:
        raise ValueError(f"SamplingParams.n must be >= 1, got {params.n}")
    if params.temperature < 0:
        raise ValueError(f"SamplingParams.temperature must be >= 0, got {params.temperature}")
    if not 0 < params.top_p <= 1:
        raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {params.top_p}")
    if params.max_new_tokens < 1:
        raise ValueError(f"SamplingParams.max_new_tokens must be >= 1, got {params.max_new_tokens}")
    if any(not s for s in params.stop):
        raise ValueError("SamplingParams.stop strings must be non-empty")


def _eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """EOS ids from the generation config (may be a list, e.g. chat models' end-of-turn) and the tokenizer."""
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    for source in (getattr(gen, "eos_token_id", None), getattr(model.config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif source is not None:
            ids.update(int(i) for i in source)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids
