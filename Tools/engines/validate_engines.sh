#!/usr/bin/env bash
# Runs PyTorch, JAX and ONNX Runtime over Vectors/ (run_adapters.sh), judges every results file with
# `cnnref validate`, prints one row per engine and precision, and fails when the failing cases differ
# from known-failures.txt. Usage: validate_engines.sh [CNNREF_BINARY]   (default .build/debug/cnnref)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cnnref=${1:-$repo/.build/debug/cnnref}
[ -x "$cnnref" ] || { echo "validate_engines: $cnnref is not built (swift build --product cnnref)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

bash "$here/run_adapters.sh" --vectors "$repo/Vectors" --output "$out" pytorch jax onnxruntime

printf '%-12s %-8s %7s %7s %8s %15s %12s\n' engine precision passed failed skipped not-applicable conventions
failing=$(mktemp)
for results in "$out"/*.json; do
    # validate exits 1 when something failed; the comparison with the known list decides.
    "$cnnref" validate "$results" --vectors "$repo/Vectors" --format json > "$results.report" || [ $? -eq 1 ]
    python3 - "$results.report" "$failing" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
engine = r["engine"].split()[0]
conventions = sum(1 for c in r["cases"] for t in c["tensors"] if t["status"] == "convention")
print(f'{engine:<12} {r["precision"]:<8} {r["passed"]:>7} {r["failed"]:>7} {r["skipped"]:>8} {r["not_applicable"]:>15} {conventions:>12}')
with open(sys.argv[2], "a") as f:
    for c in r["cases"]:
        if c["status"] == "failed":
            f.write(f'{engine} {r["precision"]} {c["id"]}\n')
PY
done
expected=$(grep -v '^#' "$here/known-failures.txt" | awk 'NF {print $1, $2, $3}' | sort)
actual=$(sort "$failing")
rm -f "$failing"
if [ "$expected" != "$actual" ]; then
    echo "validate_engines: the failing cases differ from Tools/engines/known-failures.txt:" >&2
    diff <(echo "$expected") <(echo "$actual") >&2 || true
    echo "engines: 0 passed, $(ls "$out"/*.json | wc -l) failed"
    exit 1
fi
echo "every failing case is a known, explained one ($(echo "$expected" | grep -c . || true) listed in known-failures.txt)"
echo "engines: $(ls "$out"/*.json | wc -l) passed, 0 failed"
