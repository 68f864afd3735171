#!/usr/bin/env bash
# The test command: installs what is missing, runs every Swift test, then validates PyTorch, JAX and
# ONNX Runtime over Vectors/ (skip that part with CNNREF_SKIP_ENGINES=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/setup.sh
swift test "$@"
python3 Tools/python/cnnref_vectors.py Vectors
if [ "${CNNREF_SKIP_ENGINES:-0}" != 1 ]; then
    swift build --product cnnref >/dev/null
    bash Tools/engines/validate_engines.sh .build/debug/cnnref
fi
