"""Runs the golden vectors through ONNX Runtime (CPU execution provider), forward only.

    python adapter_onnxruntime.py --vectors DIR --precision float64|float32|float16 --output results.json

Each case becomes a small ONNX model (one node where ONNX has the operator), built with the onnx
package at opset OPSET, with every tensor of the case fed as a graph input of the precision's
type. ONNX Runtime has no autodiff for inference sessions, so results carry "outputs" only.
A case whose operator has no CPU kernel for the type (ONNX Runtime registers many operators for
float only) is listed as unsupported with the operator's name. float16 runs where the CPU
provider has float16 kernels; bfloat16 and tf32 it cannot compute at all (UNSUPPORTED_PRECISIONS).
"""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from adapter_common import LOSSES, PoolGeometry, Unsupported, config, inputs, is_float32_exact, labels, main, output_name

OPSET = 22

# Precisions the CPU execution provider cannot compute at all (checked on ONNX Runtime 1.32).
UNSUPPORTED_PRECISIONS = {
    "bfloat16": "ONNX Runtime's CPU provider has no bfloat16 kernel for any operator these layers use "
                "(Conv, Gemm, MatMul, Relu, Softmax, MaxPool, ...), and its Python API takes no numpy bfloat16 feeds",
    "tf32": "ONNX Runtime's CPU provider has no TF32 mode (its only reduced-precision GEMM option, "
            "mlas.enable_gemm_fastmath_arm64_bfloat16, is bfloat16 on ARM64)",
}


# ---- Conventions: case format -> ONNX ----
# Each function returns (nodes, feeds): ONNX nodes reading graph inputs named as in `feeds` and
# writing the tensor "out". The case format's padding [top, left, bottom, right] is ONNX's pads
# [x1_begin, x2_begin, x1_end, x2_end] for NCHW: the same order.

def _window_attributes(case, kernel):
    return dict(kernel_shape=list(kernel), strides=list(config(case, "stride")),
                pads=list(config(case, "padding")), dilations=list(config(case, "dilation")))


def conv2d(case, t):
    names = ["x", "weight"] + (["bias"] if "bias" in t else [])
    node = helper.make_node("Conv", names, ["out"], group=config(case, "groups"),
                            **_window_attributes(case, t["weight"].shape[2:]))
    return [node], {n: t[n] for n in names}


def maxpool2d(case, t):
    # ONNX MaxPool: padded cells never win, ceil_mode drops a window starting in the end padding
    # (opset >= 19 wording). Ties do not matter forward; NaN and all -inf windows are where
    # ONNX Runtime's results can differ (the case format: a NaN wins, -inf stays -inf).
    g = PoolGeometry(case)
    node = helper.make_node("MaxPool", ["x"], ["out"], ceil_mode=int(g.ceil_mode),
                            **_window_attributes(case, g.kernel))
    return [node], {"x": t["x"]}


def avgpool2d(case, t):
    # ONNX AveragePool's count_include_pad has the case format's meaning. Whether the divisor also
    # leaves out the ceil-mode overhang is onnx/onnx#5276; ONNX Runtime 1.32 leaves it out, as the
    # case format does.
    g = PoolGeometry(case)
    node = helper.make_node("AveragePool", ["x"], ["out"], ceil_mode=int(g.ceil_mode),
                            count_include_pad=int(bool(config(case, "count_include_pad"))),
                            **_window_attributes(case, g.kernel))
    return [node], {"x": t["x"]}


# ONNX float attributes are float32: in a float64 run a config value that float32 cannot hold
# would be rounded, so such a case is listed as unsupported (checked once the session exists, so
# a missing float64 kernel is reported first).
FLOAT_ATTRIBUTES = {"leaky_relu": ["slope"], "elu": ["alpha"], "batchnorm2d": ["eps", "momentum"],
                    "lrn": ["alpha", "beta", "k"]}


def leaky_relu(case, t):
    # LeakyRelu: alpha*x for x < 0 (x at 0 is 0 either way).
    return [helper.make_node("LeakyRelu", ["x"], ["out"], alpha=float(config(case, "slope")))], {"x": t["x"]}


def elu(case, t):
    return [helper.make_node("Elu", ["x"], ["out"], alpha=float(config(case, "alpha")))], {"x": t["x"]}


def prelu(case, t):
    # ONNX PRelu broadcasts the slope numpy-style from the last axis: a per-channel slope [C] of an
    # [N, C, ...] input must be given as [C, 1, ..., 1].
    x, slope = t["x"], t["slope"]
    if slope.shape[0] != 1 and x.ndim > 2:
        slope = slope.reshape((-1,) + (1,) * (x.ndim - 2))
    return [helper.make_node("PRelu", ["x", "slope"], ["out"])], {"x": x, "slope": slope}


def swish(case, t):
    # ONNX Swish (opset 24) takes beta as a float32 attribute; composed with beta as a tensor.
    nodes = [helper.make_node("Mul", ["beta", "x"], ["bx"]),
             helper.make_node("Sigmoid", ["bx"], ["sig"]),
             helper.make_node("Mul", ["x", "sig"], ["out"])]
    return nodes, {"x": t["x"], "beta": t["beta"]}


def maxout(case, t):
    # No Maxout op: x [N, D] times W^T per piece ([k, D, M] by Transpose) -> [k, N, M], plus b as
    # [k, 1, M], then ReduceMax over the pieces.
    nodes = [helper.make_node("Transpose", ["weight"], ["wt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["x", "wt"], ["z0"]),
             helper.make_node("Unsqueeze", ["bias", "axis1"], ["b1"]),
             helper.make_node("Add", ["z0", "b1"], ["z"]),
             helper.make_node("ReduceMax", ["z", "axis0"], ["out"], keepdims=0)]
    feeds = {"x": t["x"], "weight": t["weight"], "bias": t["bias"],
             "axis0": np.array([0], dtype=np.int64), "axis1": np.array([1], dtype=np.int64)}
    return nodes, feeds


def linear(case, t):
    # Gemm with transB: x W^T + b, weight [M, D].
    return [helper.make_node("Gemm", ["x", "weight", "bias"], ["out"], transB=1)], dict(t)


def softmax(op):
    def build(case, t):
        return [helper.make_node(op, ["x"], ["out"], axis=config(case, "axis"))], {"x": t["x"]}
    return build


def softmax_cross_entropy(case, t):
    # Unweighted, no ignore_index: "mean" divides by N.
    node = helper.make_node("SoftmaxCrossEntropyLoss", ["scores", "labels"], ["out"],
                            reduction=config(case, "reduction"))
    return [node], {"scores": t["scores"], "labels": labels(case)}


def multiclass_hinge(case, t):
    # No hinge op: relu(s - s_y + margin) summed over j != y (a 0/1 mask from the labels), then
    # reduced over the batch. Margin is a tensor input of the scores' type, so float64 keeps it
    # exact; a margin float16 would round is not expressible (ONNX has no float64 scalar here).
    s = t["scores"]
    y = labels(case)
    margin = float(config(case, "margin"))
    if s.dtype == np.float16 and float(np.float16(margin)) != margin:
        raise Unsupported(f"the margin is a float16 tensor here, which rounds config.margin = {margin!r} "
                          f"to {float(np.float16(margin))!r}")
    off_label = (np.arange(s.shape[1])[None, :] != y[:, None]).astype(s.dtype)
    reduce_batch = "ReduceMean" if config(case, "reduction") == "mean" else "ReduceSum"
    nodes = [helper.make_node("GatherElements", ["scores", "label_index"], ["s_y"], axis=1),
             helper.make_node("Sub", ["scores", "s_y"], ["d"]),
             helper.make_node("Add", ["d", "margin"], ["z"]),
             helper.make_node("Relu", ["z"], ["h"]),
             helper.make_node("Mul", ["h", "off_label"], ["terms"]),
             helper.make_node("ReduceSum", ["terms", "axis1"], ["per_sample"], keepdims=0),
             helper.make_node(reduce_batch, ["per_sample"], ["out"], keepdims=0)]
    feeds = {"scores": s, "label_index": y[:, None], "margin": np.array(margin, dtype=s.dtype),
             "off_label": off_label, "axis1": np.array([1], dtype=np.int64)}
    return nodes, feeds


def _unary(op):
    def build(case, t):
        return [helper.make_node(op, ["x"], ["out"])], {"x": t["x"]}
    return build


def _data_names(t):
    return [f"x{k}" for k in range(len(t)) if f"x{k}" in t]


def add(case, t):
    # Residual connection: Add nodes left to right (ONNX Sum takes n inputs but fixes no order).
    names = _data_names(t)
    nodes, last = [], names[0]
    for k, n in enumerate(names[1:]):
        out = "out" if k == len(names) - 2 else f"s{k}"
        nodes.append(helper.make_node("Add", [last, n], [out]))
        last = out
    return nodes, {n: t[n] for n in names}


def concat(case, t):
    names = _data_names(t)
    return [helper.make_node("Concat", names, ["out"], axis=config(case, "axis"))], {n: t[n] for n in names}


def flatten(case, t):
    # ONNX Flatten(axis) always gives rank 2 [prod(shape[:axis]), prod(shape[axis:])]; a Reshape
    # gives PyTorch's flatten(start_dim) shape (the same elements in the same order).
    x, start = t["x"], config(case, "start_axis")
    shape = np.array(list(x.shape[:start]) + [-1], dtype=np.int64)
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], axis=start),
             helper.make_node("Reshape", ["flat", "shape"], ["out"])]
    return nodes, {"x": x, "shape": shape}


def dropout(case, t):
    # ONNX Dropout draws its own mask (training_mode) or is the identity: composed as
    # x * (mask / (1 - p)), with 1 - p a tensor of the precision's type.
    x = t["x"]
    keep = np.array(1 - float(config(case, "p")), dtype=x.dtype)
    nodes = [helper.make_node("Div", ["mask", "keep"], ["scale"]), helper.make_node("Mul", ["x", "scale"], ["out"])]
    return nodes, {"x": x, "mask": t["mask"], "keep": keep}


def adaptive_avgpool2d(case, t):
    # ONNX has no adaptive pool: [1, 1] is GlobalAveragePool; otherwise PyTorch's windows
    # floor(i*H/oh) ..< ceil((i+1)*H/oh), each a Slice and a ReduceMean, joined by Concat.
    x = t["x"]
    (h, w), (oh, ow) = x.shape[2:], config(case, "output_size")
    if (oh, ow) == (1, 1):
        return [helper.make_node("GlobalAveragePool", ["x"], ["out"])], {"x": x}
    feeds = {"x": x, "axes": np.array([2, 3], dtype=np.int64)}
    nodes, rows = [], []
    for i in range(oh):
        cells = []
        for j in range(ow):
            r0, r1, c0, c1 = i * h // oh, -(-(i + 1) * h // oh), j * w // ow, -(-(j + 1) * w // ow)
            feeds[f"b{i}_{j}"] = np.array([r0, c0], dtype=np.int64)
            feeds[f"e{i}_{j}"] = np.array([r1, c1], dtype=np.int64)
            nodes += [helper.make_node("Slice", ["x", f"b{i}_{j}", f"e{i}_{j}", "axes"], [f"w{i}_{j}"]),
                      helper.make_node("ReduceMean", [f"w{i}_{j}", "axes"], [f"m{i}_{j}"], keepdims=1)]
            cells.append(f"m{i}_{j}")
        nodes.append(helper.make_node("Concat", cells, [f"row{i}"], axis=3))
        rows.append(f"row{i}")
    nodes.append(helper.make_node("Concat", rows, ["out"], axis=2))
    return nodes, feeds


def batchnorm2d(case, t):
    # BatchNormalization: eval is ONNX's formula (X - mean)/sqrt(var + epsilon)*scale + B with the
    # running statistics. Training (training_mode = 1, opset >= 15) normalises with the batch
    # statistics and returns running_mean and running_var; ONNX's momentum weighs the old value
    # (running = old*momentum + batch*(1 - momentum)), so it is 1 - the case's (PyTorch's). ONNX's
    # running_var takes the biased batch variance (ReduceVar), PyTorch's the unbiased one: those
    # outputs fail and are listed in known-failures.txt.
    training = bool(config(case, "training"))
    names = ["x", "weight", "bias", "running_mean", "running_var"]
    outputs = ["out", "running_mean_out", "running_var_out"] if training else ["out"]
    node = helper.make_node("BatchNormalization", names, outputs, epsilon=float(config(case, "eps")),
                            momentum=1 - float(config(case, "momentum")), training_mode=int(training))
    return [node], {n: t[n] for n in names}


def lrn(case, t):
    # ONNX LRN sums channels c - floor((size-1)/2) ... c + ceil((size-1)/2): for an odd size PyTorch's
    # window, for an even size one channel later (the case format and PyTorch pad size//2 channels
    # before, ONNX (size-1)//2). ONNX Runtime's CPU kernel refuses even sizes outright.
    if config(case, "size") % 2 == 0:
        raise Unsupported(f"ONNX Runtime's CPU LRN takes odd sizes only (lrn.h: size_ % 2 == 1), and ONNX's window for "
                          f"an even size, c - (size-1)//2 ... c + ceil((size-1)/2), is one channel later than PyTorch's")
    node = helper.make_node("LRN", ["x"], ["out"], size=config(case, "size"), alpha=float(config(case, "alpha")),
                            beta=float(config(case, "beta")), bias=float(config(case, "k")))
    return [node], {"x": t["x"]}


def _output_rank(case, layer):
    if layer in LOSSES:
        return 0
    if layer in ("linear", "maxout"):
        return 2
    if layer == "flatten":
        return config(case, "start_axis") + 1
    first = "x0" if "x0" in case["inputs"] else "x"
    return len(case["inputs"][first].shape)


LAYERS = {
    "add": add,
    "concat": concat,
    "flatten": flatten,
    "dropout": dropout,
    "adaptive_avgpool2d": adaptive_avgpool2d,
    "batchnorm2d": batchnorm2d,
    "lrn": lrn,
    "conv2d": conv2d,
    "maxpool2d": maxpool2d,
    "avgpool2d": avgpool2d,
    "relu": _unary("Relu"),
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "leaky_relu": leaky_relu,
    "elu": elu,
    "prelu": prelu,
    "swish": swish,
    "maxout": maxout,
    "linear": linear,
    "softmax": softmax("Softmax"),
    "log_softmax": softmax("LogSoftmax"),
    "softmax_cross_entropy": softmax_cross_entropy,
    "multiclass_hinge": multiclass_hinge,
}


# ---- Running a case ----

def _value_info(name, array):
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype), list(array.shape))


def _check_float_attributes(case, dtype, where=""):
    for key in FLOAT_ATTRIBUTES.get(case["layer"], []):
        value = float(config(case, key))
        if key == "momentum":   # the attribute holds 1 - momentum, and only training reads it
            value = 1 - value
            if not config(case, "training"):
                continue
        if dtype == np.float64 and not is_float32_exact(value):
            raise Unsupported(f"ONNX stores {where}{'1 - config.momentum' if key == 'momentum' else 'config.' + key} = {value!r} "
                              f"as a float32 attribute, which rounds it to {float(np.float32(value))!r}")


def _session(model, dtype):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except ort.capi.onnxruntime_pybind11_state.NotImplemented as error:
        # "Could not find an implementation for Conv(22) node with name ''"
        text = str(error)
        what = text.split("Could not find an implementation for ", 1)[-1].split(" node", 1)[0]
        raise Unsupported(f"onnxruntime's CPU provider has no {np.dtype(dtype).name} kernel for {what}") from None


def run_case(case, precision):
    dtype = precision.dtype
    layer = case["layer"]
    if layer not in LAYERS:
        raise Unsupported(f"layer {layer!r} is not known to this adapter")
    nodes, feeds = LAYERS[layer](case, inputs(case, dtype))
    element = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    # The output's dimensions are left symbolic, so ONNX Runtime reports the shape it computes.
    rank = _output_rank(case, layer)
    output = helper.make_tensor_value_info("out", element, [f"d{k}" for k in range(rank)])
    # Further outputs (batch norm's running statistics), "<name>_out" in the graph.
    extra = [o for node in nodes for o in node.output if o.endswith("_out")]
    graph = helper.make_graph(nodes, case["id"], [_value_info(n, a) for n, a in feeds.items()],
                              [output] + [helper.make_tensor_value_info(o, element, ["c"]) for o in extra])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    session = _session(model, dtype)
    _check_float_attributes(case, dtype)
    values = session.run(["out"] + extra, feeds)
    block = {"outputs": {output_name(layer): np.asarray(values[0])}}
    for name, v in zip(extra, values[1:]):
        block["outputs"][name[:-len("_out")]] = np.asarray(v)
    return block


def run_network(net, dtype, layers):
    """A network vector as one ONNX graph, forward only: each node's ONNX nodes (LAYERS) with
    their tensor names prefixed by the node's id, its data inputs wired to the producing nodes'
    outputs, and every node's output a graph output. The block has "outputs" only (validate judges
    the forward node by node and the network's output end to end, and reports the network
    partial)."""
    from adapter_networks import _array, data_input_names, node_case
    name = net["input"].get("name", "x")
    feeds = {name: _array({"shape": net["input"]["shape"], "data": net["input"]["data"]}).astype(dtype)}
    shapes = {name: feeds[name].shape}
    shapes.update({k: v.shape for k, v in net.get("expected", {}).get("outputs", {}).items()})
    produced = {name: name}   # network value -> graph tensor
    graph_nodes, graph_outputs = [], []
    element = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    for node in net["nodes"]:
        if any(i not in shapes for i in node["inputs"]):
            raise Unsupported("the network vector has no expected outputs to take the nodes' shapes from")
        data = dict(zip(data_input_names(node, len(node["inputs"])), node["inputs"]))
        t = {n: np.zeros(shapes[v], dtype) for n, v in data.items()}
        t.update({p: _array(v).astype(dtype) for p, v in node.get("tensors", {}).items()})
        case = dict(node_case(node, t), inputs={n: _Tensor(v) for n, v in t.items()})
        _check_float_attributes(case, dtype, where=f"node {node['id']}: ")
        nodes, layer_feeds = layers[node["layer"]](case, t)
        prefix = f"{node['id']}/"
        rename = lambda n: produced[data[n]] if n in data else prefix + n
        for n, v in layer_feeds.items():
            if n not in data:
                feeds[prefix + n] = v
        for n in nodes:
            ins, outs = [rename(i) for i in n.input], [prefix + o for o in n.output]
            del n.input[:], n.output[:]
            n.input.extend(ins)
            n.output.extend(outs)
            graph_nodes.append(n)
        produced[node["id"]] = prefix + "out"
        rank = len(shapes[node["id"]]) if node["id"] in shapes else 0
        graph_outputs.append(helper.make_tensor_value_info(prefix + "out", element, [f"d{k}" for k in range(rank)]))
    graph = helper.make_graph(graph_nodes, net["id"], [_value_info(n, a) for n, a in feeds.items()], graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    values = _session(model, dtype).run([o.name for o in graph_outputs], feeds)
    return {"outputs": {node["id"]: np.asarray(v) for node, v in zip(net["nodes"], values)}}


class _Tensor:
    """A numpy array as the layer functions read a case's input (shape, numpy)."""

    def __init__(self, array):
        self.array, self.shape = array, list(array.shape)

    def numpy(self, dtype=None):
        return self.array if dtype is None else self.array.astype(dtype)


if __name__ == "__main__":
    main(f"onnxruntime {ort.__version__} (onnx {onnx.__version__}, opset {OPSET}, CPUExecutionProvider)", run_case,
         "Runs the CNNReference golden vectors through ONNX Runtime (forward only).",
         unsupported_precisions=UNSUPPORTED_PRECISIONS, networks=(run_network, LAYERS))
