#!/usr/bin/env bash
# Runs third-party engines over the golden vectors.
#
#   Tools/engines/run_adapters.sh [--vectors DIR] [--output DIR] [--precisions "float64 float32"]
#                                 [--install-only] ENGINE...
#
# PRECISIONS: any of float64, float32, tf32, float16, bfloat16 (default "float64 float32"). An
# adapter whose engine cannot compute a precision at all on CPU says so in one line and exits 3;
# that (engine, precision) pair is skipped, not failed, and writes no results file.
#
# ENGINE is pytorch, jax or onnxruntime. For each engine this creates (once) a virtual environment
# outside the repository, ${CNNREF_VENV_DIR:-$HOME/.cache/cnnref-venvs}/<engine>-<sha256 of
# requirements-<engine>.txt>, installs the pinned requirements into it, and then runs
# adapter_<engine>.py once per precision, writing OUTPUT/<engine>-<precision>.json. A venv is reused
# as long as its requirements file is unchanged; editing the file gives a new venv.
#
# Environment: CNNREF_VENV_DIR (where venvs live), CNNREF_PYTHON (the interpreter the venvs are made
# from; default python3, which must be CPython 3.11 for the pinned wheels).
# Exit status: 0 when every engine installed and every adapter run finished, 1 otherwise, with one
# line on standard error that names what failed. Arguments are checked before anything is installed.

set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
vectors="$repo/Vectors"
output=""
precisions="float64 float32"
install_only=0
python=${CNNREF_PYTHON:-python3}
venv_root=${CNNREF_VENV_DIR:-$HOME/.cache/cnnref-venvs}
engines=()

fail() { echo "run_adapters: $*" >&2; exit 1; }
usage() { echo "usage: run_adapters.sh [--vectors DIR] [--output DIR] [--precisions \"float64 float32 tf32 float16 bfloat16\"] [--install-only] ENGINE... (pytorch, jax, onnxruntime)" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --vectors) [ $# -ge 2 ] || usage; vectors=$2; shift 2 ;;
        --output) [ $# -ge 2 ] || usage; output=$2; shift 2 ;;
        --precisions) [ $# -ge 2 ] || usage; precisions=$2; shift 2 ;;
        --install-only) install_only=1; shift ;;
        -h|--help) usage ;;
        -*) fail "unknown option $1 (see --help)" ;;
        *) engines+=("$1"); shift ;;
    esac
done

[ ${#engines[@]} -gt 0 ] || usage
for engine in "${engines[@]}"; do
    case "$engine" in
        pytorch|jax|onnxruntime) ;;
        *) fail "unknown engine '$engine'; expected pytorch, jax or onnxruntime" ;;
    esac
done
for p in $precisions; do
    case "$p" in
        float64|float32|tf32|float16|bfloat16) ;;
        *) fail "unknown precision '$p'; expected float64, float32, tf32, float16 or bfloat16" ;;
    esac
done
if [ $install_only -eq 0 ]; then
    [ -n "$output" ] || fail "--output DIR is required (where the results files go)"
    [ -d "$vectors" ] || fail "vectors directory $vectors does not exist"
    mkdir -p "$output" || fail "cannot create the output directory $output"
    output=$(cd "$output" && pwd)
    vectors=$(cd "$vectors" && pwd)
fi
command -v "$python" >/dev/null || fail "no Python interpreter '$python' (set CNNREF_PYTHON)"
py_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') \
    || fail "'$python' does not run"
[ "$py_version" = "3.11" ] \
    || echo "run_adapters: warning: $python is Python $py_version; the pins were chosen for 3.11" >&2
mkdir -p "$venv_root" || fail "cannot create $venv_root (set CNNREF_VENV_DIR)"

# Prints the path of a ready venv for $1, creating and installing it first if needed.
ensure_venv() {
    local engine=$1 requirements="$here/requirements-$1.txt" hash venv log started seconds
    [ -f "$requirements" ] || fail "$engine: missing $requirements"
    hash=$(sha256sum "$requirements" | cut -d' ' -f1)
    venv="$venv_root/$engine-$hash"
    log="$venv_root/$engine-$hash.install.log"
    # The marker is written last, so a venv whose install was interrupted is rebuilt from scratch.
    if [ -f "$venv/.cnnref-complete" ] && "$venv/bin/python" -c '' 2>/dev/null; then
        echo "run_adapters: $engine: reusing $venv" >&2
        echo "$venv"
        return
    fi
    rm -rf "$venv"
    echo "run_adapters: $engine: installing into $venv (log: $log)" >&2
    started=$(date +%s)
    {
        "$python" -m venv "$venv" &&
        "$venv/bin/python" -m pip install --only-binary=:all: -r "$requirements"
    } >"$log" 2>&1
    local status=$?
    if [ $status -ne 0 ]; then
        local last
        last=$(grep -E 'ERROR|Error' "$log" | tail -n 1)
        [ -n "$last" ] || last=$(tail -n 1 "$log")
        rm -rf "$venv"
        fail "$engine: installing requirements-$engine.txt failed (exit $status): $last (full log: $log)"
    fi
    seconds=$(( $(date +%s) - started ))
    touch "$venv/.cnnref-complete"
    echo "run_adapters: $engine: installed in ${seconds}s, $(du -sh "$venv" | cut -f1) on disk" >&2
    echo "$venv"
}

for engine in "${engines[@]}"; do
    venv=$(ensure_venv "$engine") || exit 1
    [ $install_only -eq 1 ] && continue
    for p in $precisions; do
        result="$output/$engine-$p.json"
        started=$(date +%s%N)
        "$venv/bin/python" "$here/adapter_$engine.py" --vectors "$vectors" --precision "$p" --output "$result"
        status=$?
        tenths=$(( ($(date +%s%N) - started) / 100000000 ))
        seconds="$((tenths / 10)).$((tenths % 10))"
        if [ $status -eq 3 ]; then  # the adapter said in one line why the engine cannot compute $p
            rm -f "$result"  # a results file from an earlier run would pass for this one
            echo "run_adapters: $engine: skipped $p (not supported by the engine on CPU)" >&2
            continue
        fi
        [ $status -eq 0 ] || fail "$engine: adapter_$engine.py --precision $p failed (exit $status)"
        echo "run_adapters: $engine: wrote $result in ${seconds}s" >&2
    done
done
