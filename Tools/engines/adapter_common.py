"""What the engine adapters share: the command line, the loop over cases, the results file, and
the window arithmetic of the case format for adapters that build pooling out of padding and
cropping.

An adapter supplies run_case(case, precision) (a Precision: its name, the numpy dtype the engine
computes in, and how to hand inputs over) returning {"outputs": {name: array}, "gradients":
{name: array}} (the gradients of <upstream, output>, or of the loss, with respect to every input
tensor) and raises Unsupported(reason) for a case its engine cannot express. When the engine
computes the outputs but cannot differentiate them, run_case returns the outputs and the reason
under NO_GRADIENTS: the results keep the outputs, and "unsupported" lists the case with the reason
prefixed by "gradients: ".

Precisions are float64, float32, tf32, float16 and bfloat16 (the formats of Sources/GoldenVectors/
ErrorBounds.swift). In tf32, float16 and bfloat16 a case whose inputs, parameters or upstream the
format does not hold exactly is not run (it is "not applicable" to `cnnref validate` anyway): it is
listed as unsupported with "input not representable in <precision>: ...". float32 runs every case,
rounding inputs as it always has, so its results stay what they were. An adapter whose engine
cannot compute a precision at all names it in main(unsupported_precisions=...): the adapter then
prints one line and exits with PRECISION_UNSUPPORTED, which run_adapters.sh skips.
"""

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "python"))

import numpy as np  # noqa: E402

from cnnref_vectors import iter_cases, iter_jvp_cases, iter_networks, write_results  # noqa: E402

LOSSES = {"softmax_cross_entropy", "multiclass_hinge"}
NO_GRADIENTS = "no_gradients"
# Exit status of an adapter asked for a precision its engine cannot compute at all (run_adapters.sh
# skips the pair instead of failing).
PRECISION_UNSUPPORTED = 3


class Precision:
    """What an adapter computes in.

    name: the results file's "precision". dtype: the numpy dtype of the engine's tensors (float32
    for tf32, which is float32 storage with the engine's TF32 mode on; ml_dtypes.bfloat16 for
    bfloat16, imported only when asked for, since not every venv has ml_dtypes). host_dtype: a
    numpy-native dtype that holds every input the precision runs on exactly, for engines that take
    no ml_dtypes arrays (bfloat16 values are float32 values). significand_bits, min_exponent,
    max_exponent: the input format, as FloatFormat in ErrorBounds.swift. checks_inputs: whether
    cases with inputs the format does not hold are left out (see the module docstring).
    """

    def __init__(self, name, host_dtype, significand_bits, min_exponent, max_exponent, checks_inputs):
        self.name, self.host_dtype = name, host_dtype
        self.significand_bits, self.min_exponent, self.max_exponent = significand_bits, min_exponent, max_exponent
        self.checks_inputs = checks_inputs

    @property
    def dtype(self):
        if self.name == "bfloat16":
            import ml_dtypes
            return ml_dtypes.bfloat16
        return self.host_dtype

    @property
    def greatest_finite(self):
        return math.ldexp(2 - math.ldexp(1, 1 - self.significand_bits), self.max_exponent)

    def rounded(self, values):
        """values (float64) rounded to nearest even in the input format, +-inf past its range."""
        v = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(v) & (v != 0)
        _, e = np.frexp(np.where(finite, v, 1.0))  # v = m * 2^e with 1/2 <= |m| < 1
        ulp = np.ldexp(1.0, np.maximum(e - 1, self.min_exponent) - self.significand_bits + 1)
        with np.errstate(over="ignore", invalid="ignore"):
            r = np.where(finite, np.round(v / ulp) * ulp, v)  # np.round: half to even; v / ulp is exact
            return np.where(np.abs(r) > self.greatest_finite, np.copysign(np.inf, v), r)

    def not_representable(self, case):
        """Why the case's inputs do not fit the format (the first element that rounds), or None."""
        tensors = [(f"inputs.{name}", t) for name, t in case["inputs"].items()]
        tensors += [(f"tangents.{name}", t) for name, t in case.get("tangents", {}).items()]
        if "upstream" in case:
            tensors.append(("upstream", case["upstream"]))
        for where, t in tensors:
            v = t.numpy(np.float64).ravel()
            r = self.rounded(v)
            bad = np.flatnonzero((r != v) & ~np.isnan(v))
            if bad.size:
                i = int(bad[0])
                index = [int(k) for k in np.unravel_index(i, t.shape)] if t.shape else []
                return (f"input not representable in {self.name}: {where}{index} = {float(v[i])!r} "
                        f"rounds to {float(r[i])!r}")
        return None


PRECISIONS = {p.name: p for p in [
    Precision("float64", np.float64, 53, -1022, 1023, checks_inputs=False),
    Precision("float32", np.float32, 24, -126, 127, checks_inputs=False),
    Precision("tf32", np.float32, 11, -126, 127, checks_inputs=True),
    Precision("float16", np.float16, 11, -14, 15, checks_inputs=True),
    Precision("bfloat16", np.float32, 8, -126, 127, checks_inputs=True),
]}


class Unsupported(Exception):
    """The engine cannot express this case; the message says why."""


def output_name(layer):
    return "loss" if layer in LOSSES else "y"


# Inputs without gradients (Vectors/SCHEMA.md, "Buffers"): never differentiated, never in results.
BUFFERS = {"dropout": {"mask"}, "batchnorm2d": {"running_mean", "running_var"}}


def differentiable(case):
    """The names of the inputs that have gradients, in case order (x or x0, x1, ..., then parameters)."""
    return [n for n in case["inputs"] if n not in BUFFERS.get(case["layer"], set())]


# The defaults the case format allows when a config field is absent (Sources/CNNReference/CaseFormat.swift).
_DEFAULTS = {"stride": [1, 1], "padding": [0, 0, 0, 0], "dilation": [1, 1], "groups": 1, "ceil_mode": False}


def config(case, key):
    c = case["config"]
    if key in c:
        return c[key]
    if key in _DEFAULTS:
        return _DEFAULTS[key]
    raise ValueError(f"{case['id']}: config.{key} is required")


def inputs(case, dtype):
    """Every input tensor as a numpy array of dtype, in the case's order (x first, then parameters)."""
    return {name: t.numpy(dtype) for name, t in case["inputs"].items()}


def labels(case):
    return np.array(case["labels"], dtype=np.int64)


def seed(case, dtype):
    """The cotangent of the output: the upstream tensor, 1 for a loss, or None (forward only)."""
    if case["layer"] in LOSSES:
        return np.array(1, dtype=dtype)
    if "upstream" in case:
        return case["upstream"].numpy(dtype)
    return None


# ---- Pooling windows, as the case format defines them (Sources/CNNReference/SlidingWindow.swift) ----

def pool_axis(size, kernel, stride, pad_begin, pad_end, dilation, ceil_mode):
    """(output size, extra end padding) along one axis.

    Output size = floor((size + pad_begin + pad_end - F_eff) / stride) + 1 with F_eff =
    dilation*(kernel-1) + 1; in ceil mode ceil(...) + 1, less one when the last window would start
    in the end padding. The extra end padding is what a floor-mode window needs to reach that
    many windows: the cells ceil mode lets the last window hang over the padded input.
    """
    effective = dilation * (kernel - 1) + 1
    padded = size + pad_begin + pad_end
    span = padded - effective
    if span < 0:
        return 0, 0
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + pad_begin:
            out -= 1
    else:
        out = span // stride + 1
    return out, max(0, (out - 1) * stride + effective - padded)


class PoolGeometry:
    """The window configuration of a pooling case: kernel, stride, padding (top, left, bottom,
    right), dilation, ceil_mode, and per spatial axis (output size, extra end padding)."""

    def __init__(self, case):
        self.kernel = list(config(case, "kernel"))
        self.stride = list(config(case, "stride"))
        self.top, self.left, self.bottom, self.right = config(case, "padding")
        self.dilation = list(config(case, "dilation"))
        self.ceil_mode = bool(config(case, "ceil_mode"))
        h, w = case["inputs"]["x"].shape[2:4]
        self.size = (h, w)
        self.rows = pool_axis(h, self.kernel[0], self.stride[0], self.top, self.bottom, self.dilation[0], self.ceil_mode)
        self.columns = pool_axis(w, self.kernel[1], self.stride[1], self.left, self.right, self.dilation[1], self.ceil_mode)

    @property
    def symmetric(self):
        return self.top == self.bottom and self.left == self.right

    def divisors(self, count_include_pad, dtype):
        """The average-pooling divisor of every window, [OH, OW]: the taps inside the padded input
        (count_include_pad) or inside the input (not), never the ceil-mode overhang."""
        def counts(axis, size, begin, end):
            out = (self.rows if axis == 0 else self.columns)[0]
            low, high = (-begin, size + end) if count_include_pad else (0, size)
            return [sum(low <= i * self.stride[axis] - begin + t * self.dilation[axis] < high
                        for t in range(self.kernel[axis])) for i in range(out)]
        r = counts(0, self.size[0], self.top, self.bottom)
        c = counts(1, self.size[1], self.left, self.right)
        return np.outer(np.array(r, dtype=dtype), np.array(c, dtype=dtype))


# ---- Command line and the loop over cases ----

# The precisions whole networks run at: the shipped network vectors hold values exact in float32,
# which tf32, float16 and bfloat16 do not hold (validate would find them not applicable).
NETWORK_PRECISIONS = ("float64", "float32")


def main(engine, run_case, description, unsupported_precisions=None, enter_precision=None, networks=None, jvp=None,
         double_backward=None):
    """Parses --vectors/--precision/--output, runs every case, writes the results file.

    `engine` is the engine's name and version for the results file. `unsupported_precisions` maps
    a precision the engine cannot compute at all to why: asked for it, the adapter prints that in
    one line and exits with PRECISION_UNSUPPORTED, writing nothing. `enter_precision(precision)`,
    when given, is called once before the first case (to switch a mode such as TF32 on) and returns
    a note for the "engine" field (which switch is on) or None. An exception from the engine
    on a case is recorded in "unsupported" as "engine error: ..." and reported on standard error;
    the run still writes every other case. Exit status 0 unless the vectors or the output file
    cannot be read or written.

    `jvp`, when given, is jvp(case, precision) -> (output, JVP, further outputs): a forward-mode case's output
    and its JVP along the case's "tangents" (cnnref-case-2, the manifest's "jvp_cases"), written
    as the block's "outputs" and "jvp" (no gradients: those are judged in the cnnref-case-1
    case); without it those cases are listed as unsupported. `double_backward`, when given, is
    double_backward(case, precision) -> {name: array}: with the tangents w as the cotangent and
    the upstream u, the gradients of <w, J^T u> with respect to every tensor with a gradient,
    written as "double_backward" for the cases whose expected block has one.

    `networks`, when given, is (run_network, layers): run_network(net, dtype, layers) returns a
    network's block (adapter_networks.py). Every network vector then runs too, at float64 and
    float32, into the results file's "networks"; --networks-only skips the cases, and
    --wrong-node KIND runs the networks with one layer made wrong (adapter_networks.WRONG_NODES).
    """
    program = os.path.basename(sys.argv[0])
    parser = argparse.ArgumentParser(prog=program, description=description)
    parser.add_argument("--vectors", required=True, help="the Vectors/ directory")
    parser.add_argument("--precision", required=True, choices=list(PRECISIONS))
    parser.add_argument("--output", required=True, help="the results file to write")
    parser.add_argument("--case", action="append", default=[], metavar="ID",
                        help="run only this case id, or network id networks/ID (repeatable)")
    if networks:
        from adapter_networks import WRONG_NODES
        parser.add_argument("--networks-only", action="store_true", help="run the network vectors only")
        parser.add_argument("--wrong-node", choices=list(WRONG_NODES),
                            help="run the networks with this one layer wrong (to see validate name the node)")
    args = parser.parse_args()
    precision = PRECISIONS[args.precision]
    why = (unsupported_precisions or {}).get(precision.name)
    if why:
        print(f"{program}: {precision.name} is not supported: {why}", file=sys.stderr)
        sys.exit(PRECISION_UNSUPPORTED)
    note = enter_precision(precision) if enter_precision else None
    if note:
        engine = f"{engine} [{note}]"

    results, unsupported = {}, {}
    errors = not_representable = 0
    try:
        cases = list(iter_cases(args.vectors))
        jvp_cases = list(iter_jvp_cases(args.vectors))
    except (OSError, ValueError) as error:
        sys.exit(f"{program}: cannot read the vectors: {error}")
    for case in [] if networks and args.networks_only else cases + jvp_cases:
        case_id = case["id"]
        if "tangents" in case and jvp is None:
            unsupported[case_id] = "forward mode: this adapter computes no JVPs"
            continue
        if args.case and case_id not in args.case:
            continue
        why = precision.not_representable(case) if precision.checks_inputs else None
        if why:
            unsupported[case_id] = why
            not_representable += 1
            continue
        try:
            if "tangents" in case:
                # The first-order values of a forward-mode case are its cnnref-case-1 twin's.
                y, jv, extra = jvp(case, precision)
                block = {"outputs": {output_name(case["layer"]): y, **extra}, "jvp": {output_name(case["layer"]): jv}}
                if "double_backward" in case.get("expected", {}) and double_backward:
                    block["double_backward"] = double_backward(case, precision)
            else:
                block = run_case(case, precision)
        except Unsupported as why:
            unsupported[case_id] = str(why)
            continue
        except Exception as error:  # the engine (or the mapping) rejected the case
            message = str(error).strip().splitlines()
            unsupported[case_id] = f"engine error: {type(error).__name__}: {message[0] if message else ''}"
            print(f"{program}: {case_id}: {unsupported[case_id]}", file=sys.stderr)
            errors += 1
            continue
        if NO_GRADIENTS in block:
            unsupported[case_id] = f"gradients: {block.pop(NO_GRADIENTS)}"
        _warn_on_shape_mismatch(program, case, block)
        results[case_id] = block
    network_results = _run_networks(program, args, precision, networks, unsupported) if networks else None
    if networks and args.wrong_node:
        engine = f"{engine} [wrong node: {args.wrong_node}]"
    try:
        write_results(args.output, engine, args.precision, results, unsupported, network_results)
    except OSError as error:
        sys.exit(f"{program}: cannot write {args.output}: {error}")
    partial = sum(case_id in results for case_id in unsupported)
    representable = f" ({not_representable} with inputs not representable)" if precision.checks_inputs else ""
    print(f"{program}: {args.precision}: {len(results)} cases run ({partial} without gradients), "
          f"{len(unsupported) - partial - errors} unsupported{representable}, {errors} engine errors -> {args.output}",
          file=sys.stderr)


def _run_networks(program, args, precision, networks, unsupported):
    """Every network vector's block (those --case names, when it is given), or {} at a precision
    networks do not run at. An engine error is recorded in unsupported, as for a case."""
    if precision.name not in NETWORK_PRECISIONS:
        return {}
    from adapter_networks import wrong_node
    run_network, layers = networks
    if args.wrong_node:
        layers = wrong_node(args.wrong_node, layers)
    try:
        nets = list(iter_networks(args.vectors))
    except (OSError, ValueError) as error:
        sys.exit(f"{program}: cannot read the network vectors: {error}")
    blocks = {}
    for net in nets:
        net_id = f"networks/{net['id']}"
        if args.case and net_id not in args.case:
            continue
        missing = [n["layer"] for n in net["nodes"] if n["layer"] not in layers]
        if missing:
            unsupported[net_id] = f"layer {missing[0]!r} is not known to this adapter"
            continue
        try:
            blocks[net_id] = run_network(net, precision.host_dtype, layers)
        except Unsupported as why:
            unsupported[net_id] = str(why)
        except Exception as error:
            message = str(error).strip().splitlines()
            unsupported[net_id] = f"engine error: {type(error).__name__}: {message[0] if message else ''}"
            print(f"{program}: {net_id}: {unsupported[net_id]}", file=sys.stderr)
    print(f"{program}: {precision.name}: {len(blocks)} networks run"
          f"{' with a wrong node: ' + args.wrong_node if args.wrong_node else ''}", file=sys.stderr)
    return blocks


def _warn_on_shape_mismatch(program, case, block):
    expected = case.get("expected") or {}
    for kind in ("outputs", "gradients"):
        for name, tensor in expected.get(kind, {}).items():
            got = block.get(kind, {}).get(name)
            if got is not None and list(np.shape(got)) != tensor.shape:
                print(f"{program}: {case['id']}: warning: {kind}.{name} has shape {list(np.shape(got))}, "
                      f"expected {tensor.shape}", file=sys.stderr)


def is_float32_exact(value):
    """True when value survives a round trip through float32 (ONNX float attributes are float32)."""
    return float(np.float32(value)) == value or math.isnan(value)
