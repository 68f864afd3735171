#!/usr/bin/env bash
# The main job: installs what is missing, builds cnnref in release mode and
# runs it (with no arguments: the built-in gradient-check matrix over every layer).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Tools/setup.sh
swift build -c release --product cnnref >&2
if [ $# -eq 0 ]; then set -- gradcheck; fi
exec .build/release/cnnref "$@"
