#!/usr/bin/env bash
# The speed figures: builds cnnref in release mode and runs `cnnref bench`, timing
# torch.autograd.gradcheck in the same run when the PyTorch adapter's venv exists
# (bash Tools/engines/run_adapters.sh --install-only pytorch makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
flock /tmp/swift.lock swift build -c release --product cnnref >&2  # one Swift build at a time on this machine
venvs=${CNNREF_VENV_DIR:-$HOME/.cache/cnnref-venvs}
torch=$(ls -t "$venvs"/pytorch-*/bin/python 2>/dev/null | head -n 1 || true)
if [ -n "$torch" ]; then
    exec .build/release/cnnref bench --torch-python "$torch" "$@"
fi
echo "bench: no PyTorch venv under $venvs; torch's gradcheck is not timed" >&2
exec .build/release/cnnref bench "$@"
