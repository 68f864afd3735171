#!/usr/bin/env bash
# Runs PyTorch, JAX and ONNX Runtime over Vectors/ (run_adapters.sh) at every precision each computes
# on this CPU, judges every results file with `cnnref validate`, prints one row per engine and
# precision, and fails when the failing cases (and networks) differ from known-failures.txt. It also
# runs PyTorch in float32 with oneDNN's bfloat16 mode on (a file that still claims float32) and prints
# what `cnnref validate --precision auto` makes of it, and runs PyTorch's networks with one wrong node
# (adapter_networks.WRONG_NODES), requiring validate to fail them and name that node.
# Usage: validate_engines.sh [CNNREF_BINARY]   (default .build/debug/cnnref)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cnnref=${1:-$repo/.build/debug/cnnref}
[ -x "$cnnref" ] || { echo "validate_engines: $cnnref is not built (swift build --product cnnref)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run=(bash "$here/run_adapters.sh" --vectors "$repo/Vectors" --output "$out")

"${run[@]}" --install-only pytorch jax onnxruntime
# JAX spends its time compiling each small op on one core: its four precisions run as two
# processes beside PyTorch and ONNX Runtime. (JAX's TF32 switch changes nothing on a CPU: not run.)
"${run[@]}" --precisions "float64 float16" jax > "$out/jax-a.log" 2>&1 & a=$!
"${run[@]}" --precisions "float32 bfloat16" jax > "$out/jax-b.log" 2>&1 & b=$!
"${run[@]}" --precisions "float64 float32 tf32 float16 bfloat16" pytorch onnxruntime
torch_python=$(echo "${CNNREF_VENV_DIR:-$HOME/.cache/cnnref-venvs}"/pytorch-"$(sha256sum "$here/requirements-pytorch.txt" | cut -d' ' -f1)"/bin/python)
CNNREF_TORCH_FP32_PRECISION=bf16 "$torch_python" "$here/adapter_pytorch.py" --vectors "$repo/Vectors" --precision float32 \
    --output "$out/mismatch-pytorch-float32-mkldnn-bf16.json"
wait $a || { cat "$out/jax-a.log" >&2; exit 1; }
wait $b || { cat "$out/jax-b.log" >&2; exit 1; }
cat "$out/jax-a.log" "$out/jax-b.log" >&2

# networks: passed/failed/skipped/not applicable/partial; worst error/bound over the networks node by
# node and end to end.
printf '%-12s %-9s %7s %7s %8s %15s %8s %12s  %-11s %s\n' engine precision passed failed skipped not-applicable partial conventions networks "worst (nodes, end to end)"
failing=$(mktemp)
for results in "$out"/*.json; do
    case "$(basename "$results")" in mismatch-*|wrong-node-*) continue ;; esac
    # validate exits 1 when something failed; the comparison with the known list decides.
    "$cnnref" validate "$results" --vectors "$repo/Vectors" --format json > "$results.report" || [ $? -eq 1 ]
    python3 - "$results.report" "$failing" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
engine = r["engine"].split()[0]
conventions = sum(1 for c in r["cases"] for t in c["tensors"] if t["status"] == "convention")
nets = r.get("networks", [])
counts = "/".join(str(r.get(f"networks_{k}", 0)) for k in ("passed", "failed", "skipped", "not_applicable", "partial"))
def worst(tensors):
    return max([t["ratio"] for t in tensors if t.get("ratio") is not None] or [0.0])
nodes = max([worst(u["tensors"]) for n in nets for u in n["nodes"]] or [0.0])
ends = max([worst(n["end_to_end"]["tensors"]) for n in nets] or [0.0])
judged = f"{nodes:.2g}, {ends:.2g}" if nets and any(n["status"] != "skipped" for n in nets) else "-"
print(f'{engine:<12} {r["precision"]:<9} {r["passed"]:>7} {r["failed"]:>7} {r["skipped"]:>8} {r["not_applicable"]:>15} {r["partial"]:>8} {conventions:>12}  {counts:<11} {judged}')
with open(sys.argv[2], "a") as f:
    for c in r["cases"] + nets:
        if c["status"] == "failed":
            f.write(f'{engine} {r["precision"]} {c["id"]}\n')
PY
done
# The precision mismatch: judged as it claims (float32), and fingerprinted. oneDNN computes float32
# convolutions and matrix products in bfloat16 only on a CPU with AMX (measured: with AMX it fails
# float32 and is named bfloat16; on a CPU with avx512_bf16 and no AMX the mode changes a few values,
# all within float32's bound): the check follows the CPU.
mismatch="$out/mismatch-pytorch-float32-mkldnn-bf16.json"
"$cnnref" validate "$mismatch" --vectors "$repo/Vectors" --precision auto > "$mismatch.auto" || [ $? -eq 1 ]
echo "pytorch float32 with oneDNN's bf16 mode, claiming float32:"
grep -A6 '^fingerprint:' "$mismatch.auto" | sed 's/^/  /'
if grep -q -w amx_bf16 /proc/cpuinfo 2>/dev/null; then
    grep -q '^consistent with.*The results claim float32, which fails float32.*consistent with bfloat16' "$mismatch.auto" \
        || { echo "validate_engines: the fingerprint did not catch PyTorch's bf16 mode claiming float32" >&2; exit 1; }
else
    echo "  this CPU has no AMX: oneDNN's bf16 mode does not compute in bfloat16 here, and the fingerprint must say float32"
    grep -q '^consistent with float32' "$mismatch.auto" \
        || { echo "validate_engines: PyTorch's float32 results (bf16 mode, no AMX) were not fingerprinted float32" >&2; exit 1; }
fi

# Precisions told apart on networks: PyTorch's and JAX's float32 networks judged as float64 must all fail.
for engine in pytorch jax; do
    "$cnnref" validate "$out/$engine-float32.json" --vectors "$repo/Vectors" --precision float64 --format json \
        > "$out/$engine-float32.as-float64.report" || [ $? -eq 1 ]
    python3 - "$out/$engine-float32.as-float64.report" "$engine" <<'PY'
import json, sys
nets = json.load(open(sys.argv[1]))["networks"]
passing = [n["id"] for n in nets if n["status"] != "failed"]
if not nets or passing:
    sys.exit(f"validate_engines: {sys.argv[2]}'s float32 networks judged as float64 did not all fail: {passing or 'no networks'}")
ratios = [max([t["ratio"] for t in n["end_to_end"]["tensors"] if t.get("ratio") is not None] or [0]) for n in nets]
print(f"{sys.argv[2]} float32 networks judged as float64: all {len(nets)} fail (end to end worst error/bound {min(ratios):.2g} to {max(ratios):.2g})")
PY
done

# One wrong node (a batch norm with the unbiased variance, an LRN with alpha·size, the residual added
# after the ReLU), at float64: every network with a node the change reaches must fail and
# name its first such node, with intermediates; with the network's output and the input and parameter
# gradients only (end to end) it must still fail; every other network must pass.
echo "pytorch networks with one wrong node:"
for kind in $("$torch_python" -c "import sys; sys.path.insert(0, '$here'); from adapter_networks import WRONG_NODES; print(*WRONG_NODES)"); do
    for precision in float64; do   # float32 engines with a wrong node: NetworkValidationTests (CI time)
        wrong="$out/wrong-node-$kind-$precision.json"
        "$torch_python" "$here/adapter_pytorch.py" --vectors "$repo/Vectors" --precision "$precision" --networks-only \
            --wrong-node "$kind" --output "$wrong" 2>/dev/null
        python3 - "$wrong" "$wrong.end-to-end.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for block in r["networks"].values():   # the end-to-end view: the last node's output, no output gradients
    last = list(block["outputs"])[-1]
    block["outputs"] = {last: block["outputs"][last]}
    block.pop("output_gradients")
json.dump(r, open(sys.argv[2], "w"))
PY
        for view in "$wrong" "$wrong.end-to-end.json"; do
            status=0
            "$cnnref" validate "$view" --vectors "$repo/Vectors" --format json > "$view.report" || status=$?
            [ $status -eq 1 ] || { echo "validate_engines: validate exited $status on $view (PyTorch with a wrong node: $kind), expected 1" >&2; exit 1; }
        done
        "$torch_python" - "$here" "$repo/Vectors" "$kind" "$precision" "$wrong.report" "$wrong.end-to-end.json.report" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
from adapter_networks import first_wrong_node
from cnnref_vectors import iter_networks
vectors, kind, precision = sys.argv[2:5]
nodes, ends = ({n["id"]: n for n in json.load(open(p))["networks"]} for p in sys.argv[5:7])
named = []
for net in iter_networks(vectors):
    net_id, wrong = f"networks/{net['id']}", first_wrong_node(net, kind)
    got, end = nodes[net_id], ends[net_id]
    if wrong is None:
        ok = got["status"] == end["status"] == "passed"
    else:
        ok = got["status"] == end["status"] == "failed" and got["failing_node"] == wrong
        named.append(f"{net['id']}→{got['failing_node']}")
    if not ok:
        sys.exit(f"validate_engines: PyTorch {precision} with a wrong node ({kind}): {net_id} is {got['status']} "
                 f"(failing node {got['failing_node']}), end to end {end['status']}; expected "
                 + (f"failed at {wrong}" if wrong else "passed"))
print(f"  {kind:<22} {precision}: {', '.join(named)}; the other networks pass")
PY
    done
done

# A line whose engine starts with `~` is CPU-dependent: it may fail or pass (see its explanation),
# and is left out of the comparison either way.
expected=$(grep -v '^#' "$here/known-failures.txt" | awk 'NF && $1 !~ /^~/ {print $1, $2, $3}' | sort)
optional=$(grep -v '^#' "$here/known-failures.txt" | awk 'NF && $1 ~ /^~/ {print substr($1, 2), $2, $3}' | sort)
actual=$(sort "$failing" | comm -23 - <(echo "$optional"))
echo "CPU-dependent lines in known-failures.txt: $(echo "$optional" | grep -c . || true), of which $(sort "$failing" | comm -12 - <(echo "$optional") | grep -c . || true) failed on this CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs))"
rm -f "$failing"
if [ "$expected" != "$actual" ]; then
    echo "validate_engines: the failing cases differ from Tools/engines/known-failures.txt:" >&2
    diff <(echo "$expected") <(echo "$actual") >&2 || true
    echo "engines: 0 passed, $(ls "$out"/*.json | grep -v /wrong-node- | wc -l) failed"
    exit 1
fi
echo "every failing case is a known, explained one ($(echo "$expected" | grep -c . || true) listed in known-failures.txt)"
echo "engines: $(ls "$out"/*.json | grep -v /wrong-node- | wc -l) passed, 0 failed"
