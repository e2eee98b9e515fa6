"""Build a tiny random Llama-style chat model on disk, for tests that need a real `transformers` model.

The model (2 layers, hidden 64, ~300-token byte-level BPE vocabulary) is random, so its text is noise,
but it loads through the same code path as a hub checkpoint: ``load_backend(make_tiny_model(tmp_path))``.
It takes well under a second to build. Run it with ``torch.set_num_threads(1)``: at this size threads
only add overhead, and on a busy machine they make every step many times slower.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2 as in SmolLM2

# ChatML, the template SmolLM2-Instruct uses.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "What is 2+3? The answer is 5.",
    "Solve for x: 3x + 4 = 19. So x = 5. The final answer is \\boxed{5}.",
    "Let me think step by step. First add the numbers, then divide by two.",
    "def add(a, b):\n    return a + b\n",
    "Answer: 42\nQuestion: how many apples are left if you eat 3 of 10?",
    "Write your answer in lowercase letters only, in at most three sentences.",
    "<think> reasoning goes here </think> <answer> 7 </answer>",
    "0123456789 + - * / = ( ) [ ] { } , . ; : ! ? ' \" \\ # $ % & @ ^ _ ` | ~ < >",
]


def make_tiny_tokenizer(vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (any text round-trips) with ChatML special tokens and chat template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
        unk_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=512,
    )


def make_tiny_model(path: str | Path, seed: int = 0, *, hidden_size: int = 64, num_layers: int = 2) -> Path:
    """Write a tiny random causal LM + tokenizer + generation config to ``path``; return ``path``."""
    path = Path(path)
    tokenizer = make_tiny_tokenizer()
    eos, pad, bos = tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=bos, eos_token_id=eos, pad_token_id=pad)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def parity_run_config(model: str | Path, rollout: dict, **train: object):
    """A 2-step GRPO run config on a task graded by completion-length parity (reward signal even for a
    random model), with the truncated-IS weight logged; ``rollout`` is the config's rollout section."""
    from rlvr.data import register_task
    from rlvr.records import Sample, Verdict
    from rlvr.train.config import build_config
    from rlvr.verify import register_verifier

    def parity(items, **_):
        odd = [len(it["completion"]) % 2 for it in items]
        return [Verdict(float(k), "correct" if k else "incorrect") for k in odd]

    def task(n=None, seed=0, split="train", **_):
        return [
            Sample(id=str(i), prompt=f"Say {i}.", verifier="length_parity_test", gold="")
            for i in range(n or 8)
        ]

    register_verifier("length_parity_test", parity)
    register_task("length_parity_test", "completion-length parity (tests only)", task)
    return build_config(
        {
            "model": {"name": str(model)},
            "data": {"task": "length_parity_test", "n": 8},
            "sampling": {"group_size": 2, "max_new_tokens": 6},
            "algo": {"recipe": "grpo", "tis_cap": 10.0},
            "train": {"steps": 2, "lr": 3e-2, "prompts_per_step": 2, "verify_workers": 1, **train},
            "rollout": rollout,
            "log": {"tensorboard": False, "progress": False},
        }
    )
