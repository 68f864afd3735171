"""Runs the golden vectors through PyTorch (CPU): forward, and gradients by autograd.

    python adapter_pytorch.py --vectors DIR --precision float64|float32|tf32|float16|bfloat16 --output results.json

Inputs are cast to the precision and everything is computed in it, as a user would: float16 and
bfloat16 tensors go into the same functions (PyTorch's CPU kernels accumulate some of them in
float32 internally; nothing is upcast here), config scalars stay Python floats, and outputs and
gradients are converted to float64 only for the results file. tf32 is float32 tensors with
PyTorch's oneDNN TF32 mode switched on (see enter_precision). Each layer is one function in the
conventions section below: the native torch.nn.functional op where one exists, with every
difference between the case format and PyTorch's conventions handled there.
"""

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from adapter_common import PoolGeometry, Unsupported, config, differentiable, labels, main, output_name, seed

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32, "tf32": torch.float32,
                "float16": torch.float16, "bfloat16": torch.bfloat16}


# ---- Conventions: case format -> PyTorch ----
# Each function takes the case and its input tensors (leaves that require grad) and returns the
# output tensor. Padding in the case format is [top, left, bottom, right]; F.pad takes
# (left, right, top, bottom).

def _torch_pads_natively(g):
    """PyTorch's pooling takes one padding per axis (top = bottom, left = right), at most half the
    kernel (pool2d_shape_check: kernel // 2 >= pad). Otherwise the adapter pads explicitly."""
    return g.symmetric and g.top <= g.kernel[0] // 2 and g.left <= g.kernel[1] // 2


def conv2d(case, t):
    top, left, bottom, right = config(case, "padding")
    x = t["x"]
    if top == bottom and left == right:
        padding = (top, left)
    else:  # asymmetric padding: zero-pad explicitly, then convolve without padding
        x = F.pad(x, (left, right, top, bottom))
        padding = (0, 0)
    return F.conv2d(x, t["weight"], t.get("bias"), stride=tuple(config(case, "stride")), padding=padding,
                    dilation=tuple(config(case, "dilation")), groups=config(case, "groups"))


def maxpool2d(case, t):
    # PyTorch's CPU kernel skips padded cells, lets the first maximum in row-major window order win
    # (`val > max || isnan(val)`), routes the whole gradient to it and drops a ceil-mode window that
    # would start in the end padding: the case format's rules.
    g = PoolGeometry(case)
    x = t["x"]
    if _torch_pads_natively(g):
        return F.max_pool2d(x, g.kernel, g.stride, (g.top, g.left), g.dilation, ceil_mode=g.ceil_mode)
    # Otherwise: pad with -inf (plus the ceil-mode overhang at the end), pool in floor mode, crop
    # to the case format's output size. A padded -inf ties with an input -inf and, coming first,
    # would take its gradient, so inputs holding -inf cannot be expressed this way.
    if torch.isneginf(x).any():
        raise Unsupported("padding that PyTorch's max_pool2d cannot take (asymmetric or over half the kernel) is "
                          "emulated with -inf cells, which tie with the -inf in this input")
    (oh, extra_h), (ow, extra_w) = g.rows, g.columns
    x = F.pad(x, (g.left, g.right + extra_w, g.top, g.bottom + extra_h), value=-math.inf)
    return F.max_pool2d(x, g.kernel, g.stride, 0, g.dilation, ceil_mode=False)[:, :, :oh, :ow]


def avgpool2d(case, t):
    # PyTorch's divisor with count_include_pad counts the explicit padding but not the ceil-mode
    # overhang (hend = min(hstart + kH, H + padH)), the case format's rule.
    g = PoolGeometry(case)
    include_pad = bool(config(case, "count_include_pad"))
    if g.dilation != [1, 1]:
        raise Unsupported("torch avg_pool2d has no dilation")
    x = t["x"]
    if _torch_pads_natively(g):
        return F.avg_pool2d(x, g.kernel, g.stride, (g.top, g.left), ceil_mode=g.ceil_mode,
                            count_include_pad=include_pad)
    # Otherwise: window sums over the zero-padded input (divisor_override=1), divided by the case
    # format's divisors.
    (oh, extra_h), (ow, extra_w) = g.rows, g.columns
    padded = F.pad(x, (g.left, g.right + extra_w, g.top, g.bottom + extra_h))
    sums = F.avg_pool2d(padded, g.kernel, g.stride, 0, ceil_mode=False, divisor_override=1)[:, :, :oh, :ow]
    return sums / torch.from_numpy(g.divisors(include_pad, np.float64)).to(x.dtype)


def prelu(case, t):
    # F.prelu applies a [C] slope along dimension 1 and a [1] slope to every element, as the case format.
    return F.prelu(t["x"], t["slope"])


def swish(case, t):
    # No native op with a learnable beta (F.silu is beta = 1): composed.
    return t["x"] * torch.sigmoid(t["beta"] * t["x"])


def maxout(case, t):
    # No native op: one F.linear per piece, then the maximum over pieces. torch.max(dim) returns
    # the first maximal index (the lowest piece) and propagates NaN, and its backward routes the
    # gradient to that index only: the case format's tie rule.
    w, b = t["weight"], t["bias"]
    pieces = torch.stack([F.linear(t["x"], w[j], b[j]) for j in range(config(case, "pieces"))])
    return pieces.max(dim=0).values


def softmax_cross_entropy(case, t):
    return F.cross_entropy(t["scores"], torch.from_numpy(labels(case)), reduction=config(case, "reduction"))


def multiclass_hinge(case, t):
    # MultiMarginLoss (p = 1) divides each sample's sum by C; the case format does not: times C.
    # Its backward uses `z > 0`, so a term exactly at the margin has gradient 0, as the case format.
    scores = t["scores"]
    loss = F.multi_margin_loss(scores, torch.from_numpy(labels(case)), p=1, margin=float(config(case, "margin")),
                               reduction=config(case, "reduction"))
    return loss * scores.shape[1]


def dropout(case, t):
    # F.dropout draws its own mask; the case gives it. ATen's dropout computes
    # noise = mask.div_(1 - p) in the dtype and then x * noise: the same two roundings here.
    p = float(config(case, "p"))
    return t["x"] * (t["mask"] / (1 - p))


def adaptive_avgpool2d(case, t):
    # PyTorch's windows: start floor(i*H/oh), end ceil((i+1)*H/oh), the case format's rule.
    return F.adaptive_avg_pool2d(t["x"], tuple(config(case, "output_size")))


def batchnorm2d(case, t):
    # F.batch_norm in training normalises with the biased batch variance and updates running_mean
    # and running_var in place (momentum PyTorch's, the running variance unbiased): it gets copies,
    # returned as the case's further outputs. In eval it reads them and updates nothing.
    training = bool(config(case, "training"))
    mean, var = t["running_mean"].detach().clone(), t["running_var"].detach().clone()
    y = F.batch_norm(t["x"], mean, var, t["weight"], t["bias"], training=training,
                     momentum=float(config(case, "momentum")), eps=float(config(case, "eps")))
    return (y, {"running_mean": mean, "running_var": var}) if training else y


def lrn(case, t):
    # F.local_response_norm: the square map zero-padded size//2 channels before and (size-1)//2
    # after, averaged over size channels (alpha divided by size): the case format's rule.
    return F.local_response_norm(t["x"], config(case, "size"), alpha=float(config(case, "alpha")),
                                 beta=float(config(case, "beta")), k=float(config(case, "k")))


def _data_inputs(t):
    return [t[f"x{k}"] for k in range(len(t)) if f"x{k}" in t]


def add(case, t):
    # Residual connection: a left-to-right sum in the dtype.
    xs = _data_inputs(t)
    y = xs[0]
    for x in xs[1:]:
        y = y + x
    return y


LAYERS = {
    "add": add,
    "concat": lambda case, t: torch.cat(_data_inputs(t), dim=config(case, "axis")),
    "flatten": lambda case, t: torch.flatten(t["x"], start_dim=config(case, "start_axis")),
    "dropout": dropout,
    "adaptive_avgpool2d": adaptive_avgpool2d,
    "batchnorm2d": batchnorm2d,
    "lrn": lrn,
    "conv2d": conv2d,
    "maxpool2d": maxpool2d,
    "avgpool2d": avgpool2d,
    "relu": lambda case, t: F.relu(t["x"]),                 # derivative 0 at x = 0
    "sigmoid": lambda case, t: torch.sigmoid(t["x"]),
    "tanh": lambda case, t: torch.tanh(t["x"]),
    # Derivative `x > 0 ? 1 : slope`, so the slope at x = 0, as the case format.
    "leaky_relu": lambda case, t: F.leaky_relu(t["x"], negative_slope=float(config(case, "slope"))),
    # Negative branch for x <= 0, derivative alpha*e^x there (alpha at 0), as the case format.
    "elu": lambda case, t: F.elu(t["x"], alpha=float(config(case, "alpha"))),
    "prelu": prelu,
    "swish": swish,
    "maxout": maxout,
    "linear": lambda case, t: F.linear(t["x"], t["weight"], t["bias"]),  # weight [M, D]: x W^T + b
    "softmax": lambda case, t: F.softmax(t["x"], dim=config(case, "axis")),
    "log_softmax": lambda case, t: F.log_softmax(t["x"], dim=config(case, "axis")),
    # Unweighted logits cross-entropy; "mean" is the sum over N divided by N.
    "softmax_cross_entropy": softmax_cross_entropy,
    "multiclass_hinge": multiclass_hinge,
}


# ---- Running a case ----

def _tensor(array, precision):
    """A numpy array of precision.host_dtype (which holds the values exactly) as a tensor of the
    precision: numpy has no bfloat16, so the cast happens in torch."""
    return torch.from_numpy(array).to(TORCH_DTYPES[precision.name])


def _results(tensor):
    # float64 for the results file: exact from every precision, and numpy has no bfloat16.
    return tensor.detach().to(torch.float64).numpy()


def run_case(case, precision):
    layer = case["layer"]
    if layer not in LAYERS:
        raise Unsupported(f"layer {layer!r} is not known to this adapter")
    names = differentiable(case)
    leaves = {name: _tensor(case["inputs"][name].numpy(precision.host_dtype), precision).requires_grad_(name in names)
              for name in case["inputs"]}
    try:
        y = LAYERS[layer](case, leaves)
        extra = {}
        if isinstance(y, tuple):   # further outputs (batch norm's running statistics), not differentiated
            y, extra = y
        block = {"outputs": {output_name(layer): _results(y), **{n: _results(v) for n, v in extra.items()}}}
        cotangent = seed(case, precision.host_dtype)
        if cotangent is not None:
            grads = torch.autograd.grad(y, [leaves[n] for n in names],
                                        grad_outputs=_tensor(cotangent, precision), allow_unused=True)
            block["gradients"] = {n: (np.zeros(leaves[n].shape) if g is None else _results(g))
                                  for n, g in zip(names, grads)}
    except (RuntimeError, NotImplementedError) as error:
        # A CPU kernel without this dtype ("\"addmm_impl_cpu_\" not implemented for 'Half'") is
        # the engine's limitation, reported like ONNX Runtime's missing kernels; anything else
        # is an engine error.
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if "not implemented for" in message:
            raise Unsupported(f"PyTorch's CPU backend has no {precision.name} kernel: {message}") from None
        raise
    return block


def run_jvp(case, precision):
    """The output and torch.func.jvp of the layer's function along the case's tangents (every tensor with a gradient)."""
    layer = case["layer"]
    names = differentiable(case)
    leaves = {name: _tensor(case["inputs"][name].numpy(precision.host_dtype), precision) for name in case["inputs"]}

    def f(*args):
        y = LAYERS[layer](case, dict(leaves, **dict(zip(names, args))))
        # Further outputs (batch norm's running statistics) ride along as aux, not differentiated.
        return (y[0], {n: v.detach() for n, v in y[1].items()}) if isinstance(y, tuple) else (y, {})

    tangents = tuple(_tensor(case["tangents"][n].numpy(precision.host_dtype), precision) for n in names)
    try:
        y, jv, extra = torch.func.jvp(f, tuple(leaves[n] for n in names), tangents, has_aux=True)
    except (RuntimeError, NotImplementedError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise Unsupported(f"PyTorch's forward AD: {message}") from None
    return _results(y), _results(jv), {n: _results(v) for n, v in extra.items()}


def run_double_backward(case, precision):
    """torch.autograd.grad of <w, J^T u> (the backward built with create_graph=True), w the tangents."""
    layer = case["layer"]
    names = differentiable(case)
    leaves = {name: _tensor(case["inputs"][name].numpy(precision.host_dtype), precision).requires_grad_(name in names)
              for name in case["inputs"]}
    y = LAYERS[layer](case, leaves)
    y = y[0] if isinstance(y, tuple) else y
    u = _tensor(seed(case, precision.host_dtype), precision)
    g = torch.autograd.grad(y, [leaves[n] for n in names], grad_outputs=u, create_graph=True, allow_unused=True)
    w = [_tensor(case["tangents"][n].numpy(precision.host_dtype), precision) for n in names]
    terms = [(gi * wi).sum() for gi, wi in zip(g, w) if gi is not None and gi.requires_grad]
    if not terms:   # the backward does not depend on the point: every second derivative is 0
        return {n: np.zeros(leaves[n].shape) for n in names}
    dd = torch.autograd.grad(sum(terms), [leaves[n] for n in names], allow_unused=True)
    return {n: (np.zeros(leaves[n].shape) if d is None else _results(d)) for n, d in zip(names, dd)}


def enter_precision(precision):
    # TF32 on CPU is oneDNN's fpmath mode, switched per operation family: matrix products and
    # convolutions. (torch.set_float32_matmul_precision("high") sets only the matmul one.) torch
    # 2.13 warns that oneDNN TF32 is for Intel GPUs; on a CPU the switch changes nothing we
    # could measure, and the results file still says it was on.
    # CNNREF_TORCH_FP32_PRECISION=bf16 with --precision float32 runs the silent precision bug the
    # fingerprint exists for: float32 tensors whose oneDNN convolutions and matrix products compute
    # in bfloat16 (it does change results here, above some size), in a file that claims float32.
    mode = os.environ.get("CNNREF_TORCH_FP32_PRECISION")
    if precision.name == "float32" and mode:
        torch.backends.mkldnn.matmul.fp32_precision = mode
        torch.backends.mkldnn.conv.fp32_precision = mode
        return f"float32 with torch.backends.mkldnn.matmul.fp32_precision = torch.backends.mkldnn.conv.fp32_precision = '{mode}'"
    if precision.name != "tf32":
        return None
    torch.backends.mkldnn.matmul.fp32_precision = "tf32"
    torch.backends.mkldnn.conv.fp32_precision = "tf32"
    return "tf32: torch.backends.mkldnn.matmul.fp32_precision = torch.backends.mkldnn.conv.fp32_precision = 'tf32'"


if __name__ == "__main__":
    from adapter_networks import run_pytorch
    main(f"pytorch {torch.__version__}", run_case, "Runs the CNNReference golden vectors through PyTorch.",
         enter_precision=enter_precision, networks=(run_pytorch, LAYERS), jvp=run_jvp,
         double_backward=run_double_backward)
