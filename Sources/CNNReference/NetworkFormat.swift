import Foundation

/// The `cnnref-network-1` format: a graph of nodes, each a layer of the case format
/// (`LayerRegistry`) with its configuration and tensors, whose inputs are the network's
/// input or earlier nodes. `Vectors/SCHEMA.md` ("Networks") documents every field; this
/// file is the one place that reads it. A node's tensors may give shapes only (an
/// architecture description, enough for `summary` and `cnnref arch`) or shapes and data
/// (enough to build a `Network` and evaluate it).
public enum NetworkFormat {
    public static let schema = "cnnref-network-1"
}

/// A network file as decoded and checked field by field (not yet against shapes: that
/// is `summary`, which needs an input shape).
public struct NetworkFile: Sendable {
    /// A node's tensor: a parameter or a buffer under its case-format name.
    public struct TensorSpec: Sendable {
        public var name: String
        public var shape: [Int]
        /// nil in an architecture description.
        public var data: [Double]?
    }

    public struct Node: Sendable {
        public var id: String
        public var layer: String
        /// The network input's name or ids of earlier nodes, in the layer's data-input order.
        public var inputs: [String]
        public var config: [(String, JSON)]
        public var tensors: [TensorSpec]
        public var labels: [Int]?
        /// `nodes[3] (layer1.0.conv2)`: where errors point.
        public var path: String { "nodes[\(index)] (\(id))" }
        var index: Int
    }

    public var id: String
    public var description: String
    public var inputName: String
    public var inputShape: [Int]
    public var nodes: [Node]
    /// For evaluation: the input's elements (`input.data`) and dL/d(output) (`upstream`;
    /// none when the output is a scalar loss, whose upstream is 1).
    public var inputData: [Double]? = nil
    public var upstream: Tensor? = nil
    /// A golden vector's (and `cnnref evaluate`'s) `expected` block, as read; nil in an
    /// architecture description or an input to `evaluate`.
    public var expected: NetworkEvaluation? = nil

    /// True when every tensor has data, so that `network()` can build the layer.
    public var hasData: Bool { nodes.allSatisfy { $0.tensors.allSatisfy { $0.data != nil } } }
}

// MARK: - Decoding

extension NetworkFile {
    public static func decode(text: String, maxBytes: Int = CaseFormat.defaultMaxBytes) throws(CaseError) -> NetworkFile {
        let json: JSON
        do { json = try JSON.parse(text) } catch { throw CaseError("", "malformed JSON: \(error)") }
        return try decode(json, maxBytes: maxBytes)
    }

    /// True when `json` declares this format (so a tool can tell a network file from a case).
    public static func declares(_ json: JSON) -> Bool {
        guard case .object(let members) = json, let s = members.first(where: { $0.0 == "schema" })?.1 else { return false }
        return s == .string(NetworkFormat.schema)
    }

    public static func decode(_ json: JSON, maxBytes: Int = CaseFormat.defaultMaxBytes) throws(CaseError) -> NetworkFile {
        var top = try ObjectReader(json, path: "")
        let schema = try top.string("schema")
        guard schema == NetworkFormat.schema else {
            throw CaseError("schema", "expected \"\(NetworkFormat.schema)\", found \"\(schema)\"")
        }
        let id = try top.string("id")
        let description = try top.optionalString("description") ?? ""
        var input = try ObjectReader(try top.required("input"), path: "input")
        let inputName = try input.optionalString("name") ?? "x"
        try checkName(inputName, path: "input.name")
        let inputShape = try decodeShape(try input.required("shape"), path: "input.shape")
        var budget = ByteBudget(limit: maxBytes)
        var inputData: [Double]? = nil
        if let d = try input.optional("data") {
            inputData = try decodeTensor(.object([("shape", .array(inputShape.map(JSON.int))), ("data", d)]), name: inputName,
                                         path: "input", budget: &budget).data
        }
        try input.rejectUnknown(expected: ["name", "shape", "data"])
        var upstream: Tensor? = nil
        if let u = try top.optional("upstream") {
            upstream = try CaseDecoder(maxBytes: maxBytes).decodeTensor(u, path: "upstream", budget: &budget)
        }
        let nodesJSON = try top.required("nodes")
        guard case .array(let items) = nodesJSON else { throw CaseError("nodes", "expected an array of nodes, found \(nodesJSON.typeName)") }
        guard !items.isEmpty else { throw CaseError("nodes", "expected at least one node, found none") }
        var expected: NetworkEvaluation? = nil
        if let e = try top.optional("expected") {
            var r = try ObjectReader(e, path: "expected")
            let decoder = CaseDecoder(maxBytes: maxBytes)
            var sections: [[NamedTensor]] = []
            for name in ["outputs", "output_gradients", "gradients"] {
                sections.append(try decoder.decodeTensors(try r.required(name), path: "expected.\(name)", budget: &budget))
            }
            try r.rejectUnknown(expected: ["outputs", "output_gradients", "gradients"])
            expected = NetworkEvaluation(outputs: sections[0], outputGradients: sections[1], gradients: sections[2])
        }
        try top.rejectUnknown(expected: ["schema", "id", "description", "input", "nodes", "upstream", "expected"])

        var known = [inputName]
        var nodes: [Node] = []
        for (k, item) in items.enumerated() {
            var first = try ObjectReader(item, path: "nodes[\(k)]")
            let nodeID = try first.string("id")
            try checkName(nodeID, path: "nodes[\(k)].id")
            guard !known.contains(nodeID) else {
                throw CaseError("nodes[\(k)].id", "\"\(nodeID)\" is already \(nodeID == inputName ? "the network input's name" : "the id of an earlier node"); ids are unique")
            }
            nodes.append(try decodeNode(item, index: k, id: nodeID, known: known, budget: &budget))
            known.append(nodeID)
        }
        // Every node but the last feeds a later one: the last node is the network's output,
        // and a node nothing reads would be evaluated for nothing (an auxiliary head
        // belongs in its own file).
        let read = Set(nodes.flatMap(\.inputs))
        if let unused = nodes.dropLast().first(where: { !read.contains($0.id) }) {
            throw CaseError(unused.path, "no later node reads this node's output; only the last node (\(nodes.last!.id)) is the network's output")
        }
        if !read.contains(inputName) {
            throw CaseError("input.name", "no node reads the network input \"\(inputName)\"")
        }
        return NetworkFile(id: id, description: description, inputName: inputName, inputShape: inputShape, nodes: nodes,
                           inputData: inputData, upstream: upstream, expected: expected)
    }

    /// Ids and input names: non-empty, no white space (they appear in parameter names
    /// `id.weight` and in one-line messages).
    static func checkName(_ name: String, path: String) throws(CaseError) {
        guard !name.isEmpty, !name.contains(where: \.isWhitespace) else {
            throw CaseError(path, "expected a non-empty name without white space, found \"\(name)\"")
        }
    }

    static func decodeShape(_ json: JSON, path: String) throws(CaseError) -> [Int] {
        let shape = try decodeInts(json, path: path)
        for (k, d) in shape.enumerated() where d < 1 || d > ConfigReader.largest {
            throw CaseError("\(path)[\(k)]", "expected a dimension in 1...\(ConfigReader.largest), found \(d)")
        }
        guard checkedProduct(shape) != nil else { throw CaseError(path, "shape \(shape) has more elements than Int can count") }
        return shape
    }

    static func decodeNode(_ json: JSON, index k: Int, id: String, known: [String], budget: inout ByteBudget) throws(CaseError) -> Node {
        let path = "nodes[\(k)] (\(id))"
        var r = try ObjectReader(json, path: path)
        _ = try r.optional("id")
        let layer = try r.string("layer")
        guard let spec = LayerRegistry.spec(layer) else {
            throw CaseError("\(path).layer", "unknown layer \"\(layer)\"; expected one of \(LayerRegistry.ids.joined(separator: ", "))")
        }
        guard layer != "network" else { throw CaseError("\(path).layer", "a node is a layer of the catalogue, not a network") }
        let inputsJSON = try r.required("inputs")
        guard case .array(let inputItems) = inputsJSON else {
            throw CaseError("\(path).inputs", "expected an array of names (the network input or earlier nodes), found \(inputsJSON.typeName)")
        }
        var inputs: [String] = []
        for (j, item) in inputItems.enumerated() {
            guard case .string(let name) = item else { throw CaseError("\(path).inputs[\(j)]", "expected a name, found \(item.typeName)") }
            guard known.contains(name) else {
                throw CaseError("\(path).inputs[\(j)]", "unknown input \"\(name)\"; expected the network input \"\(known[0])\" or an earlier node\(known.count > 1 ? " (\(known.count > 6 ? "…, " : "")\(known.dropFirst().suffix(5).joined(separator: ", ")))" : "")")
            }
            inputs.append(name)
        }
        if spec.variadicPrefix != nil {
            guard inputs.count >= 2 else { throw CaseError("\(path).inputs", "\(layer) needs at least two inputs, found \(inputs.count)") }
        } else {
            guard inputs.count == 1 else { throw CaseError("\(path).inputs", "\(layer) takes one input, found \(inputs.count)") }
        }
        let configJSON = try r.optional("config") ?? .object([])
        guard case .object(let config) = configJSON else { throw CaseError("\(path).config", "expected an object, found \(configJSON.typeName)") }
        // The tensors a case of this layer lists after its data inputs: parameters and buffers.
        let allowed = spec.variadicPrefix == nil ? Array(spec.inputs.dropFirst()) : spec.inputs
        var tensors: [TensorSpec] = []
        var reader = try ObjectReader(try r.optional("tensors") ?? .object([]), path: "\(path).tensors")
        for name in allowed {
            guard let t = try reader.optional(name) else {
                guard spec.optionalInputs.contains(name) else {
                    throw CaseError("\(path).tensors.\(name)", "missing required tensor of \(layer) (tensors: \(allowed.joined(separator: ", ")))")
                }
                continue
            }
            tensors.append(try decodeTensor(t, name: name, path: "\(path).tensors.\(name)", budget: &budget))
        }
        try reader.rejectUnknown(expected: allowed)
        var labels: [Int]? = nil
        if let l = try r.optional("labels") {
            guard spec.isLoss else { throw CaseError("\(path).labels", "\(layer) takes no labels (only losses do)") }
            labels = try decodeInts(l, path: "\(path).labels")
        } else if spec.isLoss {
            throw CaseError("\(path).labels", "missing required field: \(layer) needs one integer class label per row of scores")
        }
        try r.rejectUnknown(expected: ["id", "layer", "inputs", "config", "tensors", "labels"])
        return Node(id: id, layer: layer, inputs: inputs, config: config, tensors: tensors, labels: labels, index: k)
    }

    /// `{"shape": [...]}` or `{"shape": [...], "data": [...]}` with count(data) = Π shape.
    static func decodeTensor(_ json: JSON, name: String, path: String, budget: inout ByteBudget) throws(CaseError) -> TensorSpec {
        var reader = try ObjectReader(json, path: path)
        let shape = try decodeShape(try reader.required("shape"), path: "\(path).shape")
        let dataJSON = try reader.optional("data")
        try reader.rejectUnknown(expected: ["shape", "data"])
        guard let dataJSON else { return TensorSpec(name: name, shape: shape, data: nil) }
        try budget.charge(shape, path: "\(path).shape")
        let count = shape.reduce(1, *)
        guard case .array(let items) = dataJSON else { throw CaseError("\(path).data", "expected an array of numbers, found \(dataJSON.typeName)") }
        guard items.count == count else {
            throw CaseError("\(path).data", "shape \(shape) needs \(count) elements (\(shape.map(String.init).joined(separator: "·"))), found \(items.count)")
        }
        var data: [Double] = []
        data.reserveCapacity(count)
        for (k, item) in items.enumerated() { data.append(try decodeDouble(item, path: "\(path).data[\(k)]")) }
        return TensorSpec(name: name, shape: shape, data: data)
    }
}

// MARK: - Building nodes

extension NetworkFile.Node {
    /// The names a case of this layer gives its data inputs: `x` (or `scores`), or `x0, x1, …`.
    func dataInputNames(_ spec: LayerSpec) -> [String] {
        spec.variadicPrefix.map { p in inputs.indices.map { "\(p)\($0)" } } ?? [spec.inputs[0]]
    }

    /// The node's layer with data inputs `dataInputs`; its own tensors shape-only when
    /// `shapeOnly`, else with their data (an error names the first without).
    func makeLayer(dataInputs: [Tensor], shapeOnly: Bool) throws(CaseError) -> any Layer {
        let c = try nodeCase(dataInputs: dataInputs, shapeOnly: shapeOnly)
        do { return try LayerRegistry.makeLayer(c) } catch { throw located(error) }
    }

    /// The node as a case of its layer: data inputs `dataInputs` (under the case format's
    /// names), its own tensors (shape-only when `shapeOnly`, else with their data: an
    /// error names the first without), its labels, and `upstream`. `id` is `network:node`.
    public func nodeCase(dataInputs: [Tensor], upstream: Tensor? = nil, shapeOnly: Bool = false, network: String = "") throws(CaseError) -> Case {
        let names = dataInputNames(LayerRegistry.spec(layer)!)
        var tensors = zip(names, dataInputs).map { NamedTensor($0, $1) }
        for t in self.tensors {
            if shapeOnly {
                tensors.append(NamedTensor(t.name, Tensor(shapeOnly: t.shape)))
            } else if let data = t.data {
                tensors.append(NamedTensor(t.name, Tensor(shape: t.shape, scalars: data)))
            } else {
                throw CaseError("\(path).tensors.\(t.name).data", "missing: this file describes an architecture (shapes only); evaluating the network needs every tensor's data")
            }
        }
        return Case(id: network.isEmpty ? id : "\(network):\(id)", layer: layer, config: config, inputs: tensors, labels: labels, upstream: upstream)
    }

    /// The case-format names of the node's data inputs (`x`, `scores`, or `x0, x1, …`), in `inputs` order.
    public var dataInputNames: [String] { dataInputNames(LayerRegistry.spec(layer)!) }

    /// A layer's error, its field rewritten from the case format's paths to this node's:
    /// `inputs.weight.shape` → `nodes[3] (conv2).tensors.weight.shape`, `inputs.x1.shape`
    /// → `nodes[3] (conv2).inputs[1] (branch2).shape`.
    func located(_ error: CaseError) -> CaseError {
        let spec = LayerRegistry.spec(layer)!
        let names = dataInputNames(spec)
        var field = error.field
        if field.hasPrefix("inputs.") {
            let rest = field.dropFirst("inputs.".count)
            let name = String(rest.prefix { $0 != "." && $0 != "[" })
            let tail = rest.dropFirst(name.count)
            if let j = names.firstIndex(of: name) {
                field = "inputs[\(j)] (\(inputs[j]))\(tail)"
            } else {
                field = "tensors.\(name)\(tail)"
            }
        }
        // Messages cite other fields the same way (`D = 6400 (inputs.x.shape[1])`).
        var message = error.message
        for (j, name) in names.enumerated() {
            message = message.replacingOccurrences(of: "inputs.\(name).", with: "inputs[\(j)] (\(inputs[j])).")
        }
        for t in tensors { message = message.replacingOccurrences(of: "inputs.\(t.name).", with: "tensors.\(t.name).") }
        return CaseError(field.isEmpty ? path : "\(path).\(field)", message)
    }
}

// MARK: - Architecture: shapes, counts, multiply-adds

/// One node of `cnnref arch`: its layer, output shape and counts.
public struct NodeSummary: Sendable {
    public var id: String
    public var layer: String
    public var inputs: [String]
    public var outputShape: [Int]
    /// Learnable scalars (PyTorch's `parameters()`), buffers (its running statistics, masks).
    public var parameters: Int
    public var buffers: Int
    public var multiplyAdds: Int
    public var notes: [String]
}

public struct ArchitectureSummary: Sendable {
    public var network: String
    public var input: [Int]
    public var nodes: [NodeSummary]
    public var parameters: Int
    public var buffers: Int
    public var multiplyAdds: Int
}

extension NetworkFile {
    /// The input shape with the axes after N replaced by `trailing` (`--input C,H,W`).
    public func input(replacingTrailing trailing: [Int]) throws(CaseError) -> [Int] {
        guard trailing.count == inputShape.count - 1 else {
            throw CaseError("input.shape", "--input gives \(trailing.count) sizes, but the network input \(inputShape) has \(inputShape.count - 1) after N")
        }
        for (k, d) in trailing.enumerated() where d < 1 || d > ConfigReader.largest {
            throw CaseError("input.shape", "--input size \(k + 1) must be in 1...\(ConfigReader.largest), found \(d)")
        }
        let shape = [inputShape[0]] + trailing
        guard checkedProduct(shape) != nil else { throw CaseError("input.shape", "shape \(shape) has more elements than Int can count") }
        return shape
    }

    /// Every node's output shape, parameters, buffers and multiply-adds at input shape
    /// `input` (default: the file's), computed on shapes alone: no tensor's elements are
    /// allocated. With `strict`, a window that does not tile its input (a note) is an
    /// error: the lecture's "doesn't fit".
    public func summary(input: [Int]? = nil, strict: Bool = false) throws(CaseError) -> ArchitectureSummary {
        let x = input ?? inputShape
        var shapes: [String: [Int]] = [inputName: x]
        var rows: [NodeSummary] = []
        var totals = (0, 0, 0)
        func add(_ a: Int, _ b: Int, _ what: String, _ path: String) throws(CaseError) -> Int {
            let (s, overflow) = a.addingReportingOverflow(b)
            guard !overflow else { throw CaseError(path, "the \(what) exceed Int.max") }
            return s
        }
        for node in nodes {
            let ins = node.inputs.map { Tensor(shapeOnly: shapes[$0]!) }
            let layer = try node.makeLayer(dataInputs: ins, shapeOnly: true)
            let out: [Int]
            do { out = try layer.outputShape(forInput: ins[0].shape) } catch { throw node.located(error) }
            guard checkedProduct(out) != nil else { throw CaseError(node.path, "output shape \(out) has more elements than Int can count") }
            let notes = layer.notes(forInput: ins[0].shape)
            if strict, let note = notes.first {
                throw CaseError(node.path, "doesn't fit: \(note) (--strict)")
            }
            guard let macs = layer.multiplyAdds(forInput: ins[0].shape) else {
                throw CaseError(node.path, "the multiply-adds exceed Int.max")
            }
            var parameters = 0, buffers = 0
            for p in layer.learnableParameters { parameters = try add(parameters, p.tensor.count, "parameters", node.path) }
            for b in layer.buffers { buffers = try add(buffers, b.tensor.count, "buffers", node.path) }
            totals = (try add(totals.0, parameters, "parameters", node.path), try add(totals.1, buffers, "buffers", node.path),
                      try add(totals.2, macs, "multiply-adds", node.path))
            shapes[node.id] = out
            rows.append(NodeSummary(id: node.id, layer: node.layer, inputs: node.inputs, outputShape: out, parameters: parameters,
                                    buffers: buffers, multiplyAdds: macs, notes: notes))
        }
        return ArchitectureSummary(network: id, input: x, nodes: rows, parameters: totals.0, buffers: totals.1, multiplyAdds: totals.2)
    }

    /// The network as a layer, every tensor with its data, checked against the file's
    /// input shape (errors name the node). Refused before any work when one forward pass
    /// would run more than `maxWork` loop steps (Σ over the nodes of `Work`), or when the
    /// intermediates (every node's output and its gradient) would need more than
    /// `maxBytes`.
    public func network(maxBytes: Int = CaseFormat.defaultMaxBytes, maxWork: Int = CaseFormat.defaultMaxWork) throws(CaseError) -> Network {
        let s = try summary()
        if let node = nodes.first(where: { $0.tensors.contains { $0.data == nil } }) {
            _ = try node.makeLayer(dataInputs: [], shapeOnly: false)   // throws, naming the tensor
        }
        var budget = ByteBudget(limit: maxBytes)
        var work = 0
        var shapesOnly: [String: [Int]] = [inputName: inputShape]
        for (node, row) in zip(nodes, s.nodes) {
            try budget.charge(row.outputShape + [2], path: "\(node.path): its output and the output's gradient")
            let ins = node.inputs.map { Tensor(shapeOnly: shapesOnly[$0]!) }
            let layer = try node.makeLayer(dataInputs: ins, shapeOnly: true)
            let w = Work.of(layer, input: ins[0].shape, output: row.outputShape)
            let (total, overflow) = work.addingReportingOverflow(w.total ?? Int.max)
            guard w.total != nil, !overflow, total <= maxWork else {
                throw CaseError(node.path, "the nodes up to here run \(overflow || w.total == nil ? "more than Int.max" : String(total)) loop steps per pass, over the work limit of \(maxWork) (--max-work); this node: \(w.arithmetic)")
            }
            work = total
            shapesOnly[node.id] = row.outputShape
        }
        var built: [Network.Node] = []
        var shapes: [String: [Int]] = [inputName: inputShape]
        for node in nodes {
            let ins = node.inputs.map { Tensor(shapeOnly: shapes[$0]!) }
            let layer = try node.makeLayer(dataInputs: ins, shapeOnly: false)
            do { shapes[node.id] = try layer.outputShape(forInput: ins[0].shape) } catch { throw node.located(error) }
            let sources = node.inputs.map { name in name == inputName ? -1 : built.firstIndex { $0.id == name }! }
            built.append(Network.Node(id: node.id, layer: layer, inputs: sources))
        }
        return Network(inputName: inputName, nodes: built)
    }
}

// MARK: - Evaluation

/// What a network computes at its input: every node's output, the gradient reaching
/// every node's output (dL/d(node), the upstream its backward was given), and the
/// gradients of the input and of every parameter. Each node's values are correctly
/// rounded given the stored values of its inputs and of its output's gradient, so an
/// engine's intermediates can be judged node by node.
public struct NetworkEvaluation: Sendable {
    public var outputs: [NamedTensor]
    public var outputGradients: [NamedTensor]
    public var gradients: [NamedTensor]
}

extension NetworkFile {
    /// What evaluating the file needs, checked: the network (every tensor with data), the
    /// input (`input.data`) and the output's gradient (`upstream`, 1 for a scalar output).
    /// The error names the first field missing.
    public func evaluationInputs(maxBytes: Int = CaseFormat.defaultMaxBytes, maxWork: Int = CaseFormat.defaultMaxWork) throws(CaseError) -> (network: Network, input: Tensor, outputGradient: Tensor) {
        let net = try network(maxBytes: maxBytes, maxWork: maxWork)
        guard let inputData else { throw CaseError("input.data", "missing: evaluating the network needs the input's elements") }
        let x = Tensor(shape: inputShape, scalars: inputData)
        let outShape = try net.outputShape(forInput: inputShape)
        let dy: Tensor
        if let upstream {
            guard upstream.shape == outShape else { throw CaseError("upstream.shape", "expected the output shape \(outShape), found \(upstream.shape)") }
            dy = upstream
        } else if outShape.isEmpty {
            dy = Tensor(scalar: 1)
        } else {
            throw CaseError("upstream", "missing required field: dL/d(output), shape \(outShape)")
        }
        return (net, x, dy)
    }

    /// Evaluates the network at `input.data` with `upstream` (1 for a scalar output).
    public func evaluated(maxBytes: Int = CaseFormat.defaultMaxBytes, maxWork: Int = CaseFormat.defaultMaxWork) throws(CaseError) -> NetworkEvaluation {
        let (net, x, dy) = try evaluationInputs(maxBytes: maxBytes, maxWork: maxWork)
        let (outputs, outputGradients, g) = net.evaluate(x, outputGradient: dy)
        let ids = net.nodeIDs
        return NetworkEvaluation(outputs: zip(ids, outputs).map { NamedTensor($0, $1) },
                                 outputGradients: zip(ids, outputGradients).map { NamedTensor($0, $1) },
                                 gradients: [NamedTensor(inputName, g.input)] + zip(net.parameters, g.parameters).map { NamedTensor($0.name, $1) })
    }

    /// The file with its evaluation, as `cnnref evaluate` prints it: the network file's
    /// fields, then `expected` with `outputs` (every node, by id), `output_gradients` (by
    /// id) and `gradients` (the input's name, then `node.param`).
    public func evaluatedJSON(maxBytes: Int = CaseFormat.defaultMaxBytes, maxWork: Int = CaseFormat.defaultMaxWork) throws(CaseError) -> JSON {
        let e = try evaluated(maxBytes: maxBytes, maxWork: maxWork)
        var input: [(String, JSON)] = [("name", .string(inputName)), ("shape", ints(inputShape))]
        if let inputData { input.append(("data", .array(inputData.map(JSON.double)))) }
        var members: [(String, JSON)] = [("schema", .string(NetworkFormat.schema)), ("id", .string(id)), ("description", .string(description)),
                                         ("input", .object(input))]
        members.append(("nodes", .array(nodes.map { n in
            var m: [(String, JSON)] = [("id", .string(n.id)), ("layer", .string(n.layer)), ("inputs", .array(n.inputs.map(JSON.string)))]
            if !n.config.isEmpty { m.append(("config", .object(n.config))) }
            if !n.tensors.isEmpty {
                // `evaluated` has checked that every tensor has its data.
                m.append(("tensors", .object(n.tensors.map { t in (t.name, Tensor(shape: t.shape, scalars: t.data!).json) })))
            }
            if let labels = n.labels { m.append(("labels", ints(labels))) }
            return .object(m)
        })))
        if let upstream { members.append(("upstream", upstream.json)) }
        members.append(("expected", .object([
            ("outputs", .object(e.outputs.map { ($0.name, $0.tensor.json) })),
            ("output_gradients", .object(e.outputGradients.map { ($0.name, $0.tensor.json) })),
            ("gradients", .object(e.gradients.map { ($0.name, $0.tensor.json) })),
        ])))
        return .object(members)
    }
}
