"""Runs the golden vectors through JAX (CPU): forward, and gradients by jax.vjp.

    python adapter_jax.py --vectors DIR --precision float64|float32|tf32|float16|bfloat16 --output results.json

64-bit types are enabled so float64 cases run in float64; float32, float16 and bfloat16 inputs stay
in their type (Python scalars are weakly typed and do not promote), computed as a user would, with
no upcasting here (XLA's CPU backend does some float16/bfloat16 arithmetic in float32 internally).
Matrix products and convolutions ask for the highest precision, which on CPU is plain float32/
float64 arithmetic, except in tf32, which leaves the precision to jax_default_matmul_precision
= "tensorfloat32" (see enter_precision). Each layer is one function in the conventions section
below: lax and jax.nn primitives, composed where JAX has no such layer.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jaxlib  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from adapter_common import NO_GRADIENTS, PoolGeometry, Unsupported, config, differentiable, labels, main, output_name, seed  # noqa: E402

jax.config.update("jax_enable_x64", True)
# XLA compiles every small op of every case once per shape, which is nearly all of a run's time: a
# persistent compilation cache outside the repository (like the venvs) lets a later run reuse the
# executables. CNNREF_JAX_CACHE="" turns it off.
_cache = os.environ.get("CNNREF_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "cnnref-jax-compilation-cache"))
if _cache:
    jax.config.update("jax_compilation_cache_dir", _cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
# The precision= of every matrix product and convolution: HIGHEST, or None in tf32 so that the
# configured default matmul precision applies (an explicit precision overrides it).
MATMUL_PRECISION = lax.Precision.HIGHEST


# ---- Conventions: case format -> JAX ----
# Each function takes the case and its input arrays and returns the output array. Padding in the
# case format is [top, left, bottom, right]; lax takes ((top, bottom), (left, right)) per axis.

def conv2d(case, t):
    top, left, bottom, right = config(case, "padding")
    # lax.conv_general_dilated is a cross-correlation (no kernel flip); rhs_dilation is the
    # filter dilation (1 = dense); feature_group_count splits C and K into contiguous groups.
    y = lax.conv_general_dilated(
        t["x"], t["weight"], window_strides=tuple(config(case, "stride")), padding=((top, bottom), (left, right)),
        rhs_dilation=tuple(config(case, "dilation")), dimension_numbers=("NCHW", "OIHW", "NCHW"),
        feature_group_count=config(case, "groups"), precision=MATMUL_PRECISION)
    if "bias" in t:
        y = y + t["bias"].reshape(1, -1, 1, 1)
    return y


def _window(g, x, init, reducer):
    """reduce_window over the explicitly padded input plus the ceil-mode overhang, cropped to the
    case format's output size (lax pads with `init` and always uses floor arithmetic)."""
    (oh, extra_h), (ow, extra_w) = g.rows, g.columns
    y = lax.reduce_window(
        x, np.array(init, dtype=x.dtype), reducer, window_dimensions=(1, 1, *g.kernel),
        window_strides=(1, 1, *g.stride),
        padding=((0, 0), (0, 0), (g.top, g.bottom + extra_h), (g.left, g.right + extra_w)),
        window_dilation=(1, 1, *g.dilation))
    return y[:, :, :oh, :ow]


def maxpool2d(case, t):
    # reduce_window with max and -inf is JAX's max pool. Its gradient is XLA's SelectAndScatter
    # with `>=`, which keeps the first maximum in row-major window order. Padded cells are -inf:
    # they lose to every input value but tie with an input -inf.
    return _window(PoolGeometry(case), t["x"], -np.inf, lax.max)


def avgpool2d(case, t):
    # No average pool in lax: window sums (reduce_window with add) over the zero-padded input,
    # divided by the case format's divisors.
    g = PoolGeometry(case)
    x = t["x"]
    return _window(g, x, 0, lax.add) / g.divisors(bool(config(case, "count_include_pad")), x.dtype)


def leaky_relu(case, t):
    # jax.nn.leaky_relu takes the x branch for x >= 0: its derivative at x = 0 is 1, where the
    # case format (and PyTorch) use the slope. The native op is kept; the difference shows at 0.
    return jax.nn.leaky_relu(t["x"], negative_slope=float(config(case, "slope")))


def prelu(case, t):
    # No PReLU in jax.nn: composed, slope [C] along axis 1 (or [1] shared); derivative at 0 is the slope.
    x, slope = t["x"], t["slope"]
    if slope.shape[0] != 1:
        slope = slope.reshape((1, -1) + (1,) * (x.ndim - 2))
    return jnp.where(x > 0, x, slope * x)


def swish(case, t):
    # jax.nn.swish is beta = 1: composed with the learnable beta.
    return t["x"] * jax.nn.sigmoid(t["beta"] * t["x"])


def maxout(case, t):
    # No maxout op: one matrix product per piece, then the first maximum over pieces (argmax picks
    # the lowest piece and a NaN), gathered so the gradient goes to that piece only. (jnp.max
    # would split the gradient equally among tied pieces.)
    x, w, b = t["x"], t["weight"], t["bias"]
    z = jnp.stack([jnp.matmul(x, w[j].T, precision=MATMUL_PRECISION) + b[j] for j in range(config(case, "pieces"))])
    winner = jnp.argmax(z, axis=0)
    return jnp.take_along_axis(z, winner[None], axis=0)[0]


def _reduce(per_sample, case):
    return jnp.mean(per_sample) if config(case, "reduction") == "mean" else jnp.sum(per_sample)


def softmax_cross_entropy(case, t):
    # No loss in jax.nn: -log_softmax at the label, reduced.
    logp = jax.nn.log_softmax(t["scores"], axis=1)
    return _reduce(-jnp.take_along_axis(logp, labels(case)[:, None], axis=1)[:, 0], case)


def multiclass_hinge(case, t):
    # Composed: sum over j != y of relu(s_j - s_y + margin). relu's derivative at 0 is 0, so a term
    # exactly at the margin contributes no gradient, as the case format.
    s = t["scores"]
    y = labels(case)
    s_y = jnp.take_along_axis(s, y[:, None], axis=1)
    terms = jax.nn.relu(s - s_y + float(config(case, "margin")))
    off_label = np.arange(s.shape[1])[None, :] != y[:, None]
    return _reduce(jnp.sum(jnp.where(off_label, terms, 0), axis=1), case)


def _data_inputs(t):
    return [t[f"x{k}"] for k in range(len(t)) if f"x{k}" in t]


def add(case, t):
    # Residual connection: a left-to-right sum in the dtype.
    xs = _data_inputs(t)
    y = xs[0]
    for x in xs[1:]:
        y = y + x
    return y


def dropout(case, t):
    # No dropout with a given mask in JAX (flax's draws its own): x * (mask / (1 - p)), the
    # scaled mask first as frameworks build it.
    return t["x"] * (t["mask"] / (1 - float(config(case, "p"))))


def adaptive_avgpool2d(case, t):
    # No adaptive pool in jax/lax: PyTorch's windows floor(i*H/oh) ..< ceil((i+1)*H/oh), each a
    # jnp.mean (a sum, then one division by the window size).
    x = t["x"]
    (h, w), (oh, ow) = x.shape[2:], config(case, "output_size")
    rows = [(i * h // oh, -(-(i + 1) * h // oh)) for i in range(oh)]
    cols = [(j * w // ow, -(-(j + 1) * w // ow)) for j in range(ow)]
    return jnp.stack([jnp.stack([jnp.mean(x[:, :, r0:r1, c0:c1], axis=(2, 3)) for (c0, c1) in cols], axis=-1)
                      for (r0, r1) in rows], axis=-2)


def batchnorm2d(case, t):
    # No batch norm in jax/lax (flax's BatchNorm is a module): flax's arithmetic written out,
    # (x - mean) * rsqrt(var + eps) * scale + bias, per channel (axis 1). Training: the batch mean
    # and the biased jnp.var; the running statistics as PyTorch updates them (momentum PyTorch's,
    # flax's momentum is 1 - it, and the running variance unbiased, times m/(m - 1)), returned as
    # further outputs outside the gradient. Eval: the running statistics.
    x, eps, momentum = t["x"], float(config(case, "eps")), float(config(case, "momentum"))
    training = bool(config(case, "training"))
    channel = lambda v: v.reshape(1, -1, 1, 1)
    if training:
        mean, var = jnp.mean(x, axis=(0, 2, 3)), jnp.var(x, axis=(0, 2, 3))
    else:
        mean, var = t["running_mean"], t["running_var"]
    y = (x - channel(mean)) * lax.rsqrt(channel(var) + eps) * channel(t["weight"]) + channel(t["bias"])
    if not training:
        return y
    m = x.size // x.shape[1]
    stats = {"running_mean": (1 - momentum) * t["running_mean"] + momentum * mean,
             "running_var": (1 - momentum) * t["running_var"] + momentum * var * (m / (m - 1))}
    return y, {n: lax.stop_gradient(v) for n, v in stats.items()}


def lrn(case, t):
    # No LRN in jax/lax: PyTorch's composition. The squares zero-padded size//2 channels before and
    # (size-1)//2 after, summed over windows of size channels (lax.reduce_window), divided by size,
    # times alpha plus k, to the power beta; x divided by that.
    x, size = t["x"], config(case, "size")
    alpha, beta, k = float(config(case, "alpha")), float(config(case, "beta")), float(config(case, "k"))
    squares = jnp.pad(x * x, ((0, 0), (size // 2, (size - 1) // 2), (0, 0), (0, 0)))
    sums = lax.reduce_window(squares, np.array(0, dtype=x.dtype), lax.add, (1, size, 1, 1), (1, 1, 1, 1), "VALID")
    return x / (sums / size * alpha + k) ** beta


def flatten(case, t):
    x, start = t["x"], config(case, "start_axis")
    return jnp.reshape(x, x.shape[:start] + (-1,))


LAYERS = {
    "add": add,
    "concat": lambda case, t: jnp.concatenate(_data_inputs(t), axis=config(case, "axis")),
    "flatten": flatten,
    "dropout": dropout,
    "adaptive_avgpool2d": adaptive_avgpool2d,
    "batchnorm2d": batchnorm2d,
    "lrn": lrn,
    "conv2d": conv2d,
    "maxpool2d": maxpool2d,
    "avgpool2d": avgpool2d,
    "relu": lambda case, t: jax.nn.relu(t["x"]),            # derivative 0 at x = 0 (documented)
    "sigmoid": lambda case, t: jax.nn.sigmoid(t["x"]),
    "tanh": lambda case, t: jnp.tanh(t["x"]),
    "leaky_relu": leaky_relu,
    # Negative branch for x <= 0 (expm1), derivative alpha*e^x there, as the case format.
    "elu": lambda case, t: jax.nn.elu(t["x"], alpha=float(config(case, "alpha"))),
    "prelu": prelu,
    "swish": swish,
    "maxout": maxout,
    "linear": lambda case, t: jnp.matmul(t["x"], t["weight"].T, precision=MATMUL_PRECISION) + t["bias"],
    "softmax": lambda case, t: jax.nn.softmax(t["x"], axis=config(case, "axis")),
    "log_softmax": lambda case, t: jax.nn.log_softmax(t["x"], axis=config(case, "axis")),
    "softmax_cross_entropy": softmax_cross_entropy,
    "multiclass_hinge": multiclass_hinge,
}


# ---- Running a case ----

_compiled_layer = None


def run_case(case, precision):
    global _compiled_layer
    layer = case["layer"]
    if layer not in LAYERS:
        raise Unsupported(f"layer {layer!r} is not known to this adapter")
    dtype = precision.dtype
    names = list(case["inputs"])
    arrays = [jnp.asarray(case["inputs"][n].numpy(dtype)) for n in names]

    def forward(*args):
        # (output, further outputs): batch norm's running statistics ride as vjp's aux.
        y = LAYERS[layer](case, dict(zip(names, args)))
        return y if isinstance(y, tuple) else (y, {})

    # Compiled kernels are reused only within a layer. Dropping them when the layer changes kept a
    # run over 419 cases at 0.8 GB instead of 2 GB, for about 1.5 times the time.
    if _compiled_layer != layer:
        jax.clear_caches()
        _compiled_layer = layer
    y, pullback, extra = jax.vjp(forward, *arrays, has_aux=True)
    if y.dtype != dtype:
        raise RuntimeError(f"computed in {y.dtype}, not {np.dtype(dtype).name}")
    block = {"outputs": {output_name(layer): np.asarray(y), **{n: np.asarray(v) for n, v in extra.items()}}}
    cotangent = seed(case, dtype)
    if cotangent is not None:
        try:
            grads = pullback(jnp.asarray(cotangent))
        except NotImplementedError as error:  # e.g. no VJP for a max pool with window dilation
            block[NO_GRADIENTS] = f"JAX: {str(error).strip().splitlines()[0]}"
            return block
        keep = differentiable(case)   # buffers (dropout's mask) have no gradient in the case format
        block["gradients"] = {n: np.asarray(g) for n, g in zip(names, grads) if n in keep}
    return block


def run_jvp(case, precision):
    """The output and jax.jvp of the layer's function along the case's tangents (every tensor with a gradient)."""
    layer, dtype = case["layer"], precision.dtype
    names = list(case["inputs"])
    keep = differentiable(case)
    arrays = {n: jnp.asarray(case["inputs"][n].numpy(dtype)) for n in names}

    def f(*args):
        y = LAYERS[layer](case, dict(arrays, **dict(zip(keep, args))))
        # Further outputs (batch norm's running statistics) ride along as aux, not differentiated.
        return (y[0], y[1]) if isinstance(y, tuple) else (y, {})

    tangents = tuple(jnp.asarray(case["tangents"][n].numpy(dtype)) for n in keep)
    try:
        y, jv, extra = jax.jvp(f, tuple(arrays[n] for n in keep), tangents, has_aux=True)
    except NotImplementedError as error:
        raise Unsupported(f"JAX: {str(error).strip().splitlines()[0]}") from None
    return np.asarray(y), np.asarray(jv), {n: np.asarray(v) for n, v in extra.items()}


def run_double_backward(case, precision):
    """jax.grad of <w, vjp(u)> (the VJP of the VJP), w the tangents."""
    layer, dtype = case["layer"], precision.dtype
    names = list(case["inputs"])
    keep = differentiable(case)
    arrays = {n: jnp.asarray(case["inputs"][n].numpy(dtype)) for n in names}
    u = jnp.asarray(seed(case, dtype))
    w = [jnp.asarray(case["tangents"][n].numpy(dtype)) for n in keep]

    def f(*args):
        y = LAYERS[layer](case, dict(arrays, **dict(zip(keep, args))))
        return y[0] if isinstance(y, tuple) else y

    def inner(*args):
        _, pullback = jax.vjp(f, *args)
        return sum(jnp.sum(g * wi) for g, wi in zip(pullback(u), w))

    dd = jax.grad(inner, argnums=tuple(range(len(keep))))(*(arrays[n] for n in keep))
    return {n: np.asarray(d) for n, d in zip(keep, dd)}


def enter_precision(precision):
    # JAX's TF32 switch is the default matmul precision, honoured by every dot and convolution
    # that passes no precision. The explicit algorithm lax.DotAlgorithmPreset.TF32_TF32_F32 is
    # refused on CPU ("not supported by dot_general on CPU"); the "tensorfloat32" default is
    # accepted, and on CPU changes nothing we could measure.
    global MATMUL_PRECISION
    if precision.name != "tf32":
        return None
    jax.config.update("jax_default_matmul_precision", "tensorfloat32")
    MATMUL_PRECISION = None
    return "tf32: jax_default_matmul_precision = 'tensorfloat32', no explicit precision on dots and convolutions"


if __name__ == "__main__":
    from adapter_networks import run_jax
    main(f"jax {jax.__version__} (jaxlib {jaxlib.__version__}, {jax.default_backend()})", run_case,
         "Runs the CNNReference golden vectors through JAX.", enter_precision=enter_precision, networks=(run_jax, LAYERS), jvp=run_jvp,
         double_backward=run_double_backward)
