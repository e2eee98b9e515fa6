#!/usr/bin/env bash
# Run the main job: `rlvr demo` on the embedded SmolLM2-135M-Instruct (sets itself up first).
# Extra arguments go to `rlvr demo`, e.g. `bash scripts/demo.sh --control`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/rlvr demo "$@"
