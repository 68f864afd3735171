"""Builds each network from its cnnref-network-1 file in PyTorch or JAX and compares it with the
reference node by node: every node's output, the gradient reaching it, every parameter's
gradient and the input's.

    python network_engines.py --engine pytorch|jax --cnnref .build/debug/cnnref [--precision float64|float32] [--seed S] FILE...

Run it with the engine's venv's python (Tools/engines/run_adapters.sh --install-only makes them).

A file whose tensors have no data (an architecture description, e.g. Sources/GoldenVectors/Networks/blocks/*.json)
is filled with seeded values first: signed uniform parameters and input, running variances in
[0.5, 1.5), a signed uniform upstream of the output's shape (from `cnnref arch --format json`).
The reference is `cnnref evaluate` of that file. Each node runs through the engine adapter's
function for its layer (adapter_pytorch.LAYERS or adapter_jax.LAYERS: the same conventions as
the per-layer vectors), on the engine's own values of its inputs, so the engine's errors
accumulate as in any float run. PyTorch's intermediate gradients are retain_grad(); JAX's are the
gradients of a zero added to every node's output.

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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adapter_common import BUFFERS, LOSSES  # noqa: E402

DTYPES = ["float32", "float64"]


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


class Node:
    """A node as the adapters' layer functions see a case: its id, layer, config, input shapes, labels."""

    def __init__(self, node, t):
        self.id, self.layer = node["id"], node["layer"]
        self.case = {"id": self.id, "layer": self.layer, "config": node.get("config", {}),
                     "inputs": {n: Shape(v.shape) for n, v in t.items()}, "labels": node.get("labels")}


def data_input_names(node, count):
    if count == 1 and node["layer"] not in ("add", "concat"):
        return ["scores" if node["layer"] in LOSSES else "x"]
    return [f"x{k}" for k in range(count)]


def array(t):
    return np.array(t["data"], dtype=np.float64).reshape(t["shape"])


def run_pytorch(reference, precision, layers):
    """The engine's node outputs, their gradients, and the gradients of the input and parameters."""
    import torch
    dtype = {"float64": torch.float64, "float32": torch.float32}[precision]

    def tensor(t, grad=False):
        return torch.tensor(array(t), dtype=dtype).requires_grad_(grad)

    name = reference["input"].get("name", "x")
    x = tensor({"shape": reference["input"]["shape"], "data": reference["input"]["data"]}, grad=True)
    values = {name: x}
    outputs, parameters = {}, {}
    for node in reference["nodes"]:
        ins = [values[n] for n in node["inputs"]]
        t = dict(zip(data_input_names(node, len(ins)), ins))
        for p, data in node.get("tensors", {}).items():
            buffer = p in BUFFERS.get(node["layer"], set())
            t[p] = tensor(data, grad=not buffer)
            if not buffer:
                parameters[f"{node['id']}.{p}"] = t[p]
        y = layers[node["layer"]](Node(node, t).case, t)
        if isinstance(y, tuple):   # batch norm in training: the updated statistics are not the network's
            y = y[0]
        y.retain_grad()
        values[node["id"]] = outputs[node["id"]] = y
    last = outputs[reference["nodes"][-1]["id"]]
    last.backward(tensor(reference["upstream"]) if "upstream" in reference else torch.ones((), dtype=dtype))
    grads = {name: x.grad}
    grads.update({n: p.grad for n, p in parameters.items()})
    as_numpy = lambda v: v.detach().to(torch.float64).numpy()
    return ({k: as_numpy(v) for k, v in outputs.items()}, {k: as_numpy(v.grad) for k, v in outputs.items()},
            {k: as_numpy(v) for k, v in grads.items()})


def run_jax(reference, precision, layers):
    import jax
    import jax.numpy as jnp
    dtype = {"float64": jnp.float64, "float32": jnp.float32}[precision]
    name = reference["input"].get("name", "x")
    nodes = reference["nodes"]
    params = {f"{n['id']}.{p}": jnp.asarray(array(d), dtype=dtype) for n in nodes for p, d in n.get("tensors", {}).items()
              if p not in BUFFERS.get(n["layer"], set())}
    buffers = {f"{n['id']}.{p}": jnp.asarray(array(d), dtype=dtype) for n in nodes for p, d in n.get("tensors", {}).items()
               if p in BUFFERS.get(n["layer"], set())}
    x = jnp.asarray(array({"shape": reference["input"]["shape"], "data": reference["input"]["data"]}), dtype=dtype)

    def forward(x, params, probes):
        values, outputs = {name: x}, {}
        for node in nodes:
            ins = [values[n] for n in node["inputs"]]
            t = dict(zip(data_input_names(node, len(ins)), ins))
            for p in node.get("tensors", {}):
                key = f"{node['id']}.{p}"
                t[p] = params[key] if key in params else buffers[key]
            y = layers[node["layer"]](Node(node, t).case, t)
            if isinstance(y, tuple):
                y = y[0]
            y = y + probes[node["id"]]   # a zero whose gradient is dL/d(node output)
            values[node["id"]] = outputs[node["id"]] = y
        return outputs[nodes[-1]["id"]], outputs

    shapes = jax.eval_shape(lambda x, p: forward(x, p, {n["id"]: jnp.zeros((), dtype) for n in nodes})[1], x, params)
    probes = {k: jnp.zeros(v.shape, dtype) for k, v in shapes.items()}
    y, pullback, outputs = jax.vjp(forward, x, params, probes, has_aux=True)
    upstream = jnp.asarray(array(reference["upstream"]), dtype) if "upstream" in reference else jnp.ones((), dtype)
    dx, dparams, dprobes = pullback(upstream)
    as_numpy = lambda v: np.asarray(v, dtype=np.float64)
    grads = {name: as_numpy(dx)}
    grads.update({k: as_numpy(v) for k, v in dparams.items()})
    return {k: as_numpy(v) for k, v in outputs.items()}, {k: as_numpy(v) for k, v in dprobes.items()}, grads


ENGINES = {"pytorch": run_pytorch, "jax": run_jax}


def engine_layers(engine):
    if engine == "pytorch":
        import torch
        from adapter_pytorch import LAYERS
        return f"pytorch {torch.__version__}", LAYERS
    import jax
    from adapter_jax import LAYERS
    return f"jax {jax.__version__}", LAYERS


def wrong_node(kind, layers):
    """The adapter's layers with one made wrong (for --wrong-node), in the engine's own arithmetic."""
    layers = dict(layers)
    if kind == "lrn-alpha":
        # TensorFlow's alpha (not divided by size) given the case format's: alpha·size.
        right = layers["lrn"]
        def lrn(case, t):
            c = dict(case, config=dict(case["config"], alpha=case["config"]["alpha"] * case["config"]["size"]))
            return right(c, t)
        layers["lrn"] = lrn
    elif kind == "add-after-relu":
        # The residual added after a ReLU of the branch, not before the block's ReLU.
        relu, add = layers["relu"], layers["add"]
        def late(case, t):
            return add(case, dict(t, x0=relu(case, {"x": t["x0"]})))
        layers["add"] = late
    return layers


WRONG = ["add-after-relu", "lrn-alpha"]


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
    parser.add_argument("--wrong-node", choices=WRONG, help="run one layer wrongly, to see where the error enters")
    args = parser.parse_args()
    version, layers = engine_layers(args.engine)
    if args.wrong_node:
        layers = wrong_node(args.wrong_node, layers)
    print(f"{version}, {args.precision}: max |engine - reference| / max |reference| per tensor")
    for path in args.files:
        with open(path) as f:
            network = json.load(f)
        reference = evaluate(fill(network, args.cnnref, random.Random(args.seed)), args.cnnref)
        outputs, output_grads, grads = ENGINES[args.engine](reference, args.precision, layers)
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
