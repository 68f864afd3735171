"""Builds each network from its cnnref-network-1 file in PyTorch or JAX and compares it with the
reference node by node: every node's output, the gradient reaching it, every parameter's
gradient and the input's.

    python network_engines.py --engine pytorch|jax --cnnref .build/debug/cnnref [--precision float64|float32] [--seed S] FILE...

Run it with the engine's venv's python (Tools/engines/run_adapters.sh --install-only makes them).

A file whose tensors have no data (an architecture description, e.g. Sources/GoldenVectors/Networks/blocks/*.json)
is filled with seeded values first: signed uniform parameters and input, running variances in
[0.5, 1.5), a signed uniform upstream of the output's shape (from `cnnref arch --format json`).
The reference is `cnnref evaluate` of that file; the engine runs it as adapter_networks.py does
(the adapters' --networks-only runs the shipped network vectors the same way, into a results file
that `cnnref validate` judges).

Prints, per node, the largest |engine - reference| over each tensor divided by the tensor's
largest |reference| value: a measurement, for any architecture file, not a verdict.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adapter_common import LOSSES  # noqa: E402
from adapter_networks import WRONG_NODES, run_jax, run_pytorch, wrong_node  # noqa: E402

DTYPES = {"float32": np.float32, "float64": np.float64}


def fill(network, cnnref, rng):
    """The network with seeded data in every tensor, the input and the upstream."""
    def uniform(shape, low=-1.0, high=1.0):
        return {"shape": shape, "data": [rng.uniform(low, high) for _ in range(int(np.prod(shape)) if shape else 1)]}

    for node in network["nodes"]:
        for name, t in node.get("tensors", {}).items():
            if "data" not in t:
                node["tensors"][name] = uniform(t["shape"], 0.5, 1.5) if name == "running_var" else uniform(t["shape"])
    network["input"]["data"] = uniform(network["input"]["shape"])["data"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(network, f)
    arch = json.loads(subprocess.run([cnnref, "arch", f.name, "--format", "json"], check=True, capture_output=True, text=True).stdout)
    os.unlink(f.name)
    out = arch["nodes"][-1]["output_shape"]
    if network["nodes"][-1]["layer"] not in LOSSES:
        network["upstream"] = uniform(out)
    return network


def evaluate(network, cnnref):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(network, f)
    try:
        run = subprocess.run([cnnref, "evaluate", f.name], capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(run.stderr.strip())
        return json.loads(run.stdout)
    finally:
        os.unlink(f.name)


ENGINES = {"pytorch": run_pytorch, "jax": run_jax}


def engine_layers(engine):
    if engine == "pytorch":
        import torch
        from adapter_pytorch import LAYERS
        return f"pytorch {torch.__version__}", LAYERS
    import jax
    from adapter_jax import LAYERS
    return f"jax {jax.__version__}", LAYERS


def error(engine, ref):
    r = np.array(ref["data"], dtype=np.float64)
    e = np.asarray(engine, dtype=np.float64).ravel()
    scale = np.abs(r).max() if r.size else 0.0
    return float(np.abs(e - r).max() / scale) if scale > 0 else float(np.abs(e - r).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--cnnref", required=True)
    parser.add_argument("--engine", choices=sorted(ENGINES), default="pytorch")
    parser.add_argument("--precision", choices=DTYPES, default="float64")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--wrong-node", choices=sorted(WRONG_NODES), help="run one layer wrongly, to see where the error enters")
    args = parser.parse_args()
    version, layers = engine_layers(args.engine)
    if args.wrong_node:
        layers = wrong_node(args.wrong_node, layers)
    print(f"{version}, {args.precision}: max |engine - reference| / max |reference| per tensor")
    for path in args.files:
        with open(path) as f:
            network = json.load(f)
        reference = evaluate(fill(network, args.cnnref, random.Random(args.seed)), args.cnnref)
        block = ENGINES[args.engine](reference, DTYPES[args.precision], layers)
        outputs, output_grads, grads = block["outputs"], block["output_gradients"], block["gradients"]
        expected = reference["expected"]
        print(f"{reference['id']}:")
        worst = 0.0
        for node in reference["nodes"]:
            i = node["id"]
            row = [error(outputs[i], expected["outputs"][i]), error(output_grads[i], expected["output_gradients"][i])]
            params = [(n, error(g, expected["gradients"][n])) for n, g in grads.items() if n.startswith(i + ".")]
            worst = max([worst] + row + [e for _, e in params])
            extra = "".join(f"  d/d{n.rsplit('.', 1)[1]} {e:.2e}" for n, e in params)
            print(f"  {i:22s} {node['layer']:12s} output {row[0]:.2e}  dL/doutput {row[1]:.2e}{extra}")
        name = reference["input"].get("name", "x")
        dx = error(grads[name], expected["gradients"][name])
        print(f"  {'input ' + name:22s} {'':12s} dL/d{name} {dx:.2e}   worst of the network {max(worst, dx):.2e}")


if __name__ == "__main__":
    main()
