"""Builds each network from its cnnref-network-1 file in PyTorch and compares it with the
reference node by node: every node's output, the gradient reaching it, every parameter's
gradient and the input's.

    python network_pytorch.py --cnnref .build/debug/cnnref [--precision float64|float32] [--seed S] FILE...

A file whose tensors have no data (an architecture description, e.g. Tools/engines/networks/*.json)
is filled with seeded values first: signed uniform parameters and input, running variances in
[0.5, 1.5), a signed uniform upstream of the output's shape (from `cnnref arch --format json`).
The reference is `cnnref evaluate` of that file. Each node runs through the PyTorch adapter's
function for its layer (adapter_pytorch.LAYERS: the same conventions as the per-layer vectors), on
the engine's own values of its inputs, so the engine's errors accumulate as in any float run.

Prints, per node, the largest |engine - reference| over each tensor divided by the tensor's
largest |reference| value. This is a measurement, not a verdict: the per-element bounds of
`cnnref validate` are per layer, and a bound propagated through a network is not built yet.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adapter_common import BUFFERS, LOSSES  # noqa: E402
from adapter_pytorch import LAYERS  # noqa: E402

DTYPES = {"float64": torch.float64, "float32": torch.float32}


class Shape:
    """What the adapter's functions read from a case's input tensors: the shape."""

    def __init__(self, shape):
        self.shape = tuple(shape)


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


def tensor(t, dtype, grad=False):
    return torch.tensor(np.array(t["data"], dtype=np.float64).reshape(t["shape"]), dtype=dtype).requires_grad_(grad)


def run(reference, dtype):
    """The engine's node outputs, their gradients, and the gradients of the input and parameters."""
    x = tensor({"shape": reference["input"]["shape"], "data": reference["input"]["data"]}, dtype, grad=True)
    values = {reference["input"].get("name", "x"): x}
    outputs, parameters = {}, {}
    for node in reference["nodes"]:
        spec = node["layer"]
        ins = [values[name] for name in node["inputs"]]
        if len(ins) == 1 and spec not in ("add", "concat"):
            names = ["scores" if spec in LOSSES else "x"]
        else:
            names = [f"x{k}" for k in range(len(ins))]
        t = dict(zip(names, ins))
        for name, data in node.get("tensors", {}).items():
            buffer = name in BUFFERS.get(spec, set())
            t[name] = tensor(data, dtype, grad=not buffer)
            if not buffer:
                parameters[f"{node['id']}.{name}"] = t[name]
        case = {"id": node["id"], "layer": spec, "config": node.get("config", {}), "inputs": {n: Shape(v.shape) for n, v in t.items()},
                "labels": node.get("labels")}
        y = LAYERS[spec](case, t)
        if isinstance(y, tuple):   # batch norm in training: the updated statistics are not the network's
            y = y[0]
        y.retain_grad()
        values[node["id"]] = outputs[node["id"]] = y
    last = outputs[reference["nodes"][-1]["id"]]
    upstream = tensor(reference["upstream"], dtype) if "upstream" in reference else torch.ones((), dtype=dtype)
    last.backward(upstream)
    grads = {reference["input"].get("name", "x"): x.grad}
    grads.update({name: p.grad for name, p in parameters.items()})
    return outputs, {k: v.grad for k, v in outputs.items()}, grads


def _lrn_alpha_undivided(case, t):
    # TensorFlow's alpha (not divided by size) given PyTorch's: alpha*size into F.local_response_norm.
    size = case["config"]["size"]
    return torch.nn.functional.local_response_norm(t["x"], size, alpha=float(case["config"]["alpha"]) * size,
                                                   beta=float(case["config"]["beta"]), k=float(case["config"]["k"]))


def _add_after_relu(case, t):
    # A residual added after the ReLU of the branch instead of before the block's ReLU.
    xs = [t[f"x{k}"] for k in range(len(t))]
    return torch.relu(xs[0]) + sum(xs[1:])


WRONG = {"lrn-alpha": ("lrn", _lrn_alpha_undivided), "add-after-relu": ("add", _add_after_relu)}


def error(engine, ref):
    r = np.array(ref["data"], dtype=np.float64)
    e = engine.detach().to(torch.float64).numpy().ravel()
    scale = np.abs(r).max() if r.size else 0.0
    return float(np.abs(e - r).max() / scale) if scale > 0 else float(np.abs(e - r).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--cnnref", required=True)
    parser.add_argument("--precision", choices=sorted(DTYPES), default="float64")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--wrong-node", choices=sorted(WRONG), help="run one layer wrongly, to see where the error enters")
    args = parser.parse_args()
    if args.wrong_node:
        layer, function = WRONG[args.wrong_node]
        LAYERS[layer] = function
    print(f"pytorch {torch.__version__}, {args.precision}: max |engine - reference| / max |reference| per tensor")
    for path in args.files:
        with open(path) as f:
            network = json.load(f)
        reference = evaluate(fill(network, args.cnnref, random.Random(args.seed)), args.cnnref)
        outputs, output_grads, grads = run(reference, DTYPES[args.precision])
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
