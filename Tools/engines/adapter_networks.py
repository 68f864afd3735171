"""Whole networks through an engine: each node of a cnnref-network-1 file runs through the engine
adapter's function for its layer (adapter_pytorch.LAYERS, adapter_jax.LAYERS: the conventions of
the per-layer vectors), on the engine's own values of its inputs, so the engine's rounding
accumulates as in any run of the network.

run_pytorch(net, dtype, layers) and run_jax(net, dtype, layers) return the results file's block
for a network: {"outputs": {node: array}, "output_gradients": {node: array}, "gradients": {input
name or node.param: array}} (Vectors/SCHEMA.md, "Networks in a results file"). PyTorch's
intermediate gradients are retain_grad(); JAX's are the gradients of a zero added to every node's
output. `net` is a network as cnnref_vectors.parse_network returns it, or its JSON (tensors as
{"shape", "data"}).

wrong_node(kind, layers) makes one layer wrong, in the engine's own arithmetic, for the check
that a wrong node fails and is named (validate_engines.sh). WRONG_NODES maps each kind to the
nodes it changes.
"""

import numpy as np

from adapter_common import BUFFERS, LOSSES


def _array(t):
    if hasattr(t, "numpy"):
        return t.numpy(np.float64)
    return np.array(t["data"], dtype=np.float64).reshape(t["shape"])


def _input(net):
    return _array({"shape": net["input"]["shape"], "data": net["input"]["data"]})


def data_input_names(node, count):
    """The case-format names of a node's data inputs: x (scores for a loss), or x0, x1, ... for
    add and concat."""
    if count == 1 and node["layer"] not in ("add", "concat"):
        return ["scores" if node["layer"] in LOSSES else "x"]
    return [f"x{k}" for k in range(count)]


class _Shape:
    """What the adapters' layer functions read from a case's input tensors: the shape."""

    def __init__(self, shape):
        self.shape = tuple(shape)


def node_case(node, t):
    """A node as the adapters' layer functions see a case: id, layer, config, input shapes, labels."""
    return {"id": node["id"], "layer": node["layer"], "config": node.get("config", {}),
            "inputs": {n: _Shape(v.shape) for n, v in t.items()}, "labels": node.get("labels")}


def run_pytorch(net, dtype, layers):
    import torch
    dtype = {np.float64: torch.float64, np.float32: torch.float32}[dtype]

    def tensor(a, grad=False):
        return torch.tensor(a, dtype=dtype).requires_grad_(grad)

    name = net["input"].get("name", "x")
    x = tensor(_input(net), grad=True)
    values = {name: x}
    outputs, parameters = {}, {}
    for node in net["nodes"]:
        ins = [values[n] for n in node["inputs"]]
        t = dict(zip(data_input_names(node, len(ins)), ins))
        for p, data in node.get("tensors", {}).items():
            buffer = p in BUFFERS.get(node["layer"], set())
            t[p] = tensor(_array(data), grad=not buffer)
            if not buffer:
                parameters[f"{node['id']}.{p}"] = t[p]
        y = layers[node["layer"]](node_case(node, t), t)
        if isinstance(y, tuple):   # batch norm in training: the updated statistics are not the network's
            y = y[0]
        y.retain_grad()
        values[node["id"]] = outputs[node["id"]] = y
    last = outputs[net["nodes"][-1]["id"]]
    last.backward(tensor(_array(net["upstream"])) if "upstream" in net else torch.ones((), dtype=dtype))
    grads = {name: x.grad}
    grads.update({n: p.grad for n, p in parameters.items()})
    # float64 for the results file: exact from either precision.
    as_numpy = lambda v: v.detach().to(torch.float64).numpy()
    return {"outputs": {k: as_numpy(v) for k, v in outputs.items()},
            "output_gradients": {k: as_numpy(v.grad) for k, v in outputs.items()},
            "gradients": {k: as_numpy(v) for k, v in grads.items()}}


def run_jax(net, dtype, layers):
    import jax
    import jax.numpy as jnp
    name = net["input"].get("name", "x")
    nodes = net["nodes"]
    tensors = {f"{n['id']}.{p}": (n["layer"], p, d) for n in nodes for p, d in n.get("tensors", {}).items()}
    params = {k: jnp.asarray(_array(d), dtype=dtype) for k, (layer, p, d) in tensors.items()
              if p not in BUFFERS.get(layer, set())}
    buffers = {k: jnp.asarray(_array(d), dtype=dtype) for k, (layer, p, d) in tensors.items()
               if p in BUFFERS.get(layer, set())}
    x = jnp.asarray(_input(net), dtype=dtype)

    def forward(x, params, probes):
        values, outputs = {name: x}, {}
        for node in nodes:
            ins = [values[n] for n in node["inputs"]]
            t = dict(zip(data_input_names(node, len(ins)), ins))
            for p in node.get("tensors", {}):
                key = f"{node['id']}.{p}"
                t[p] = params[key] if key in params else buffers[key]
            y = layers[node["layer"]](node_case(node, t), t)
            if isinstance(y, tuple):
                y = y[0]
            y = y + probes[node["id"]]   # a zero whose gradient is dL/d(node output)
            values[node["id"]] = outputs[node["id"]] = y
        return outputs[nodes[-1]["id"]], outputs

    shapes = jax.eval_shape(lambda x, p: forward(x, p, {n["id"]: jnp.zeros((), dtype) for n in nodes})[1], x, params)
    probes = {k: jnp.zeros(v.shape, dtype) for k, v in shapes.items()}
    _, pullback, outputs = jax.vjp(forward, x, params, probes, has_aux=True)
    upstream = jnp.asarray(_array(net["upstream"]), dtype) if "upstream" in net else jnp.ones((), dtype)
    dx, dparams, dprobes = pullback(upstream)
    as_numpy = lambda v: np.asarray(v, dtype=np.float64)
    grads = {name: as_numpy(dx)}
    grads.update({k: as_numpy(v) for k, v in dparams.items()})
    return {"outputs": {k: as_numpy(v) for k, v in outputs.items()},
            "output_gradients": {k: as_numpy(v) for k, v in dprobes.items()},
            "gradients": grads}


# ---- One wrong node ----

def _bn_unbiased_variance(right):
    # Training-mode batch norm normalising with the unbiased batch variance v·m/(m−1) (m = N·H·W)
    # instead of the biased v: (x−μ)/√(v·m/(m−1) + ε)·γ + β = (x−μ)/√(v + ε')·γ' + β with
    # ε' = ε(m−1)/m and γ' = γ√((m−1)/m), so the engine's own batch norm computes it.
    def bn(case, t):
        if not case["config"].get("training"):
            return right(case, t)
        n, _, h, w = t["x"].shape
        m = n * h * w
        c = dict(case, config=dict(case["config"], eps=case["config"]["eps"] * (m - 1) / m))
        return right(c, dict(t, weight=t["weight"] * ((m - 1) / m) ** 0.5))
    return bn


def _lrn_alpha(right):
    # TensorFlow's alpha (not divided by size) given the case format's: alpha·size.
    def lrn(case, t):
        c = dict(case, config=dict(case["config"], alpha=case["config"]["alpha"] * case["config"]["size"]))
        return right(c, t)
    return lrn


def _add_after_relu(add, relu):
    # The residual added after a ReLU of the branch, not before the block's ReLU.
    def late(case, t):
        return add(case, dict(t, x0=relu(case, {"x": t["x0"]})))
    return late


# kind: (layer replaced, which nodes of that layer it changes)
WRONG_NODES = {
    "bn-unbiased-variance": ("batchnorm2d", lambda node: bool(node.get("config", {}).get("training"))),
    "lrn-alpha": ("lrn", lambda node: True),
    "add-after-relu": ("add", lambda node: True),
}


def wrong_node(kind, layers):
    """The adapter's layers with the one WRONG_NODES[kind] names made wrong."""
    layers = dict(layers)
    if kind == "bn-unbiased-variance":
        layers["batchnorm2d"] = _bn_unbiased_variance(layers["batchnorm2d"])
    elif kind == "lrn-alpha":
        layers["lrn"] = _lrn_alpha(layers["lrn"])
    elif kind == "add-after-relu":
        layers["add"] = _add_after_relu(layers["add"], layers["relu"])
    else:
        raise ValueError(f"unknown wrong node {kind!r}; expected one of {', '.join(WRONG_NODES)}")
    return layers


def first_wrong_node(net, kind):
    """The id of the first node `kind` changes (the node validate must name), or None."""
    layer, changes = WRONG_NODES[kind]
    return next((n["id"] for n in net["nodes"] if n["layer"] == layer and changes(n)), None)
