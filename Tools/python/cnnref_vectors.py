"""Reads CNNReference golden vectors (cnnref-case-1) and writes engine results files.

Standard library only; numpy is used by Tensor.numpy() when it is installed.

    case = load_case("Vectors/conv2d/cs231n-demo.json")
    x = case["inputs"]["x"]            # Tensor: .shape, .data (flat, row-major), .nested(), .numpy()
    for case in iter_cases("Vectors"):  # manifest order, sha256-checked; else every */*.json
        ...
    for net in iter_networks("Vectors"):  # whole-network vectors (Vectors/networks/, cnnref-network-1)
        net["expected"]["outputs"]["conv1"]  # every node's output, by node id
    write_results("out.json", "pytorch 2.13.0", "float64",
                  {case["id"]: {"outputs": {"y": y}, "gradients": {"x": dx}}})

Tensors in results may be Tensor objects, numpy arrays or {"shape", "data"} dicts. Non-finite
numbers are written as the strings "NaN", "Infinity" and "-Infinity", as in the vectors.

Run this file to self-test; with a vectors directory as argument it also loads every case there.
"""

import hashlib
import json
import math
import os
import sys

CASE_SCHEMA = "cnnref-case-1"
JVP_CASE_SCHEMA = "cnnref-case-2"
NETWORK_SCHEMA = "cnnref-network-1"
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _number(value, where):
    if isinstance(value, str):
        if value not in _NON_FINITE:
            raise ValueError(f"{where}: expected a number or \"NaN\", \"Infinity\", \"-Infinity\", found {value!r}")
        return _NON_FINITE[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number, found {value!r}")
    return float(value)


def _encode_number(value):
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


class Tensor:
    """A row-major tensor of Python floats; shape [] is a scalar with one element."""

    __slots__ = ("shape", "data")

    def __init__(self, shape, data):
        self.shape = [int(d) for d in shape]
        self.data = list(data)
        if len(self.data) != math.prod(self.shape):
            raise ValueError(f"shape {self.shape} needs {math.prod(self.shape)} elements, found {len(self.data)}")

    @classmethod
    def from_json(cls, obj, where="tensor"):
        if not isinstance(obj, dict) or "shape" not in obj or "data" not in obj:
            raise ValueError(f"{where}: expected {{\"shape\": [...], \"data\": [...]}}")
        data = [_number(v, f"{where}.data[{k}]") for k, v in enumerate(obj["data"])]
        try:
            return cls(obj["shape"], data)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None

    @classmethod
    def from_any(cls, value):
        """A Tensor from a Tensor, a {"shape", "data"} dict or anything numpy.asarray accepts."""
        if isinstance(value, Tensor):
            return value
        if isinstance(value, dict):
            return cls.from_json(value)
        import numpy as np
        array = np.asarray(value)
        return cls(array.shape, array.astype(np.float64).ravel().tolist())

    def nested(self):
        """Nested Python lists (a bare float for a scalar)."""
        def build(offset, dims):
            if not dims:
                return self.data[offset]
            step = math.prod(dims[1:])
            return [build(offset + i * step, dims[1:]) for i in range(dims[0])]
        return build(0, self.shape)

    def numpy(self, dtype=None):
        """A numpy array (float64 unless dtype says otherwise; values beyond a narrower type's
        range round to +-inf, as any cast to it would, without a warning)."""
        import numpy as np
        with np.errstate(over="ignore"):
            return np.array(self.data, dtype=np.float64 if dtype is None else dtype).reshape(self.shape)

    def to_json(self):
        return {"shape": list(self.shape), "data": [_encode_number(v) for v in self.data]}

    def __repr__(self):
        return f"Tensor(shape={self.shape}, data={self.data[:6]}{'...' if len(self.data) > 6 else ''})"


def parse_case(obj, where="case"):
    """A decoded case dict with every tensor (inputs, upstream, expected) turned into a Tensor.
    A forward-mode case (cnnref-case-2) also has "tangents" and expected "jvp"."""
    if obj.get("schema") not in (CASE_SCHEMA, JVP_CASE_SCHEMA):
        raise ValueError(f"{where}: schema is {obj.get('schema')!r}, expected {CASE_SCHEMA!r} (or {JVP_CASE_SCHEMA!r})")
    for field in ("id", "layer", "inputs"):
        if field not in obj:
            raise ValueError(f"{where}: missing required field {field!r}")
    case = dict(obj)
    case["inputs"] = {name: Tensor.from_json(t, f"{where}: inputs.{name}") for name, t in obj["inputs"].items()}
    if "upstream" in obj:
        case["upstream"] = Tensor.from_json(obj["upstream"], f"{where}: upstream")
    if obj.get("schema") == JVP_CASE_SCHEMA:
        if "tangents" not in obj:
            raise ValueError(f"{where}: missing required field 'tangents' (a {JVP_CASE_SCHEMA} case)")
        case["tangents"] = {name: Tensor.from_json(t, f"{where}: tangents.{name}") for name, t in obj["tangents"].items()}
    if "expected" in obj:
        case["expected"] = {
            block: {name: Tensor.from_json(t, f"{where}: expected.{block}.{name}")
                    for name, t in obj["expected"].get(block, {}).items()}
            for block in ("outputs", "gradients", "jvp", "double_backward")
            if block in ("outputs", "gradients") or ("tangents" in case and block in obj["expected"])
        }
    case.setdefault("config", {})
    case.setdefault("tags", [])
    case.setdefault("notes", [])
    return case


def load_case(path):
    with open(path, "rb") as f:
        raw = f.read()
    return parse_case(json.loads(raw), where=str(path))


def iter_jvp_cases(vectors_dir, verify=True):
    """Yields every forward-mode case (cnnref-case-2, the manifest's "jvp_cases"; none in a
    manifest older than them), checked as iter_cases checks."""
    if os.path.exists(os.path.join(vectors_dir, "manifest.json")):
        yield from iter_cases(vectors_dir, verify, listed="jvp_cases")


def iter_cases(vectors_dir, verify=True, listed="cases"):
    """Yields every case under vectors_dir.

    With a manifest.json, in its order; each file's sha256 is checked against the manifest when
    verify is true, and a mismatch (or an id that differs from the manifest's) raises ValueError.
    Without one, every */*.json in sorted order.
    """
    manifest_path = os.path.join(vectors_dir, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        for entry in manifest.get(listed, []) if listed != "cases" else manifest["cases"]:
            path = os.path.join(vectors_dir, entry["path"])
            with open(path, "rb") as f:
                raw = f.read()
            if verify and "sha256" in entry:
                digest = hashlib.sha256(raw).hexdigest()
                if digest != entry["sha256"]:
                    raise ValueError(f"{path}: sha256 {digest} does not match the manifest's {entry['sha256']}")
            case = parse_case(json.loads(raw), where=path)
            if "id" in entry and entry["id"] != case["id"]:
                raise ValueError(f"{path}: id {case['id']!r} does not match the manifest's {entry['id']!r}")
            yield case
        return
    for layer in sorted(os.listdir(vectors_dir)):
        folder = os.path.join(vectors_dir, layer)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json"):
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    obj = json.loads(f.read())
                if obj.get("schema") == NETWORK_SCHEMA:
                    continue  # a network vector: iter_networks reads those
                yield parse_case(obj, where=path)


def parse_network(obj, where="network"):
    """A decoded network file (cnnref-network-1) with every tensor that has data turned into a
    Tensor: node tensors, input.data (as "input_tensor"), upstream and the expected blocks
    outputs, output_gradients (by node id) and gradients (the input's name and node.param)."""
    if obj.get("schema") != NETWORK_SCHEMA:
        raise ValueError(f"{where}: schema is {obj.get('schema')!r}, expected {NETWORK_SCHEMA!r}")
    for field in ("id", "input", "nodes"):
        if field not in obj:
            raise ValueError(f"{where}: missing required field {field!r}")
    net = dict(obj)
    net["nodes"] = []
    for k, node in enumerate(obj["nodes"]):
        node = dict(node)
        node["tensors"] = {name: Tensor.from_json(t, f"{where}: nodes[{k}].tensors.{name}") if "data" in t else t
                           for name, t in node.get("tensors", {}).items()}
        node.setdefault("config", {})
        net["nodes"].append(node)
    if "data" in obj["input"]:
        net["input_tensor"] = Tensor.from_json({"shape": obj["input"]["shape"], "data": obj["input"]["data"]}, f"{where}: input")
    if "upstream" in obj:
        net["upstream"] = Tensor.from_json(obj["upstream"], f"{where}: upstream")
    if "expected" in obj:
        net["expected"] = {
            block: {name: Tensor.from_json(t, f"{where}: expected.{block}.{name}")
                    for name, t in obj["expected"].get(block, {}).items()}
            for block in ("outputs", "output_gradients", "gradients")
        }
    return net


def iter_networks(vectors_dir, verify=True):
    """Yields every whole-network vector the manifest lists under "networks" (none in a manifest
    older than issue 15), sha256-checked when verify is true, like iter_cases."""
    manifest_path = os.path.join(vectors_dir, "manifest.json")
    if not os.path.exists(manifest_path):
        return
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    for entry in manifest.get("networks", []):
        path = os.path.join(vectors_dir, entry["path"])
        with open(path, "rb") as f:
            raw = f.read()
        if verify and hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            raise ValueError(f"{path}: sha256 {hashlib.sha256(raw).hexdigest()} does not match the manifest's {entry['sha256']}")
        net = parse_network(json.loads(raw), where=path)
        if entry["id"] != f"networks/{net['id']}":
            raise ValueError(f"{path}: id {net['id']!r} does not match the manifest's {entry['id']!r}")
        yield net


def write_results(path, engine, precision, results, unsupported=None, networks=None):
    """Writes a results file: {"engine", "precision", "results": {id: {"outputs", "gradients"}},
    "networks": {"networks/ID": {"outputs", "output_gradients", "gradients"}} (only when given),
    "unsupported": {id: reason}}. The file is replaced atomically."""
    document = {
        "engine": engine,
        "precision": precision,
        "results": {
            case_id: {block: {name: Tensor.from_any(t).to_json() for name, t in tensors.items()}
                      for block, tensors in blocks.items()}
            for case_id, blocks in results.items()
        },
    }
    if unsupported:
        document["unsupported"] = dict(unsupported)
    # One line per case keeps the file diffable without putting every number on its own line.
    def dumps(value):
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    lines = ["{", f' "engine": {dumps(engine)},', f' "precision": {dumps(precision)},', ' "results": {']
    items = list(document["results"].items())
    lines += [f"  {dumps(k)}: {dumps(v)}{',' if i < len(items) - 1 else ''}" for i, (k, v) in enumerate(items)]
    lines.append(" }," if unsupported or networks else " }")
    if networks:
        items = [(k, {block: {name: Tensor.from_any(t).to_json() for name, t in tensors.items()}
                      for block, tensors in blocks.items()}) for k, blocks in networks.items()]
        lines.append(' "networks": {')
        lines += [f"  {dumps(k)}: {dumps(v)}{',' if i < len(items) - 1 else ''}" for i, (k, v) in enumerate(items)]
        lines.append(" }," if unsupported else " }")
    if unsupported:
        items = list(document["unsupported"].items())
        lines.append(' "unsupported": {')
        lines += [f"  {dumps(k)}: {dumps(v)}{',' if i < len(items) - 1 else ''}" for i, (k, v) in enumerate(items)]
        lines.append(" }")
    lines.append("}")
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(temporary, path)


def load_results(path):
    """A results file with every tensor turned into a Tensor."""
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    document["results"] = {
        case_id: {block: {name: Tensor.from_json(t, f"{path}: {case_id}.{block}.{name}") for name, t in tensors.items()}
                  for block, tensors in blocks.items()}
        for case_id, blocks in document.get("results", {}).items()
    }
    return document


def _self_test(vectors_dir=None):
    import tempfile
    t = Tensor.from_json({"shape": [2, 2], "data": [1, "NaN", "-Infinity", 2.5]})
    assert t.nested()[1] == [-math.inf, 2.5] and math.isnan(t.data[1])
    assert Tensor([], [3.0]).nested() == 3.0
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "results.json")
        write_results(out, "test", "float64", {"a/b": {"outputs": {"y": t}, "gradients": {}}}, {"a/c": "why"})
        back = load_results(out)
        assert back["results"]["a/b"]["outputs"]["y"].to_json() == t.to_json()
        assert back["unsupported"] == {"a/c": "why"}
    count = 0
    if vectors_dir:
        for case in iter_cases(vectors_dir):
            for name, tensor in case["inputs"].items():
                assert len(tensor.data) == math.prod(tensor.shape), (case["id"], name)
            count += 1
    networks = 0
    if vectors_dir:
        for net in iter_networks(vectors_dir):
            # Every node has an output and a gradient reaching it; every parameter a gradient.
            ids = [node["id"] for node in net["nodes"]]
            assert list(net["expected"]["outputs"]) == ids and list(net["expected"]["output_gradients"]) == ids, net["id"]
            params = [f"{node['id']}.{name}" for node in net["nodes"] for name in node["tensors"]
                      if name not in ("running_mean", "running_var", "mask")]
            assert list(net["expected"]["gradients"]) == [net["input"].get("name", "x")] + params, net["id"]
            networks += 1
    jvp = 0
    if vectors_dir:
        for case in iter_jvp_cases(vectors_dir):
            # A tangent for every tensor with a gradient; the JVP has the output's shape.
            assert list(case["tangents"]) == list(case["expected"]["gradients"]), case["id"]
            first = next(iter(case["expected"]["outputs"].values()))
            assert [t.shape for t in case["expected"]["jvp"].values()] == [first.shape], case["id"]
            if "double_backward" in case["expected"]:   # with the tangents as the cotangent: the gradients' layout
                second = case["expected"]["double_backward"]
                assert [(n, t.shape) for n, t in second.items()] == [(n, t.shape) for n, t in case["expected"]["gradients"].items()], case["id"]
            jvp += 1
    print(f"cnnref_vectors self-test passed ({count} cases, {jvp} forward-mode cases, {networks} network vectors loaded)")


if __name__ == "__main__":
    _self_test(sys.argv[1] if len(sys.argv) > 1 else None)
