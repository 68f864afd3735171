import CNNReference
import Foundation

/// What an engine reported for a network vector: node outputs and the gradients reaching
/// them (by node id, any subset), and the gradients of the input and parameters (by the
/// input's name and `node.param`). The results file's `networks` block.
public struct NetworkResult: Sendable {
    public var outputs: [NamedTensor]
    public var outputGradients: [NamedTensor]
    public var gradients: [NamedTensor]
    public init(outputs: [NamedTensor], outputGradients: [NamedTensor] = [], gradients: [NamedTensor] = []) {
        self.outputs = outputs
        self.outputGradients = outputGradients
        self.gradients = gradients
    }

    /// The result checked against the golden network's tensors: every name known, at most
    /// once, with the golden shape (any may be left out). `path` is `networks.<id>`.
    public func checked(against golden: NetworkEvaluation, path: String) throws(CaseError) -> NetworkResult {
        NetworkResult(
            outputs: try CaseFormat.conform(outputs, like: golden.outputs, path: "\(path).outputs"),
            outputGradients: try CaseFormat.conform(outputGradients, like: golden.outputGradients, path: "\(path).output_gradients"),
            gradients: try CaseFormat.conform(gradients, like: golden.gradients, path: "\(path).gradients"))
    }

    func tensor(_ section: [NamedTensor], _ name: String) -> Tensor? { section.first { $0.name == name }?.tensor }
}

/// One unit of the node-by-node verdict: a node's forward output and the gradients its
/// backward alone determines (its parameters', and the gradient it sends to an input no
/// other node reads), or the sum of the gradients several nodes send to one output
/// (`layer` "sum", `node` their ids joined by "+").
public struct NodeVerdict: Sendable {
    public var node: String
    public var layer: String
    public var status: TensorVerdict.Status
    public var reason: String = ""
    public var tensors: [TensorVerdict] = []
    /// True when the unit judges a forward output (the order in which errors arise: every
    /// forward output before any gradient).
    var forwardFailed: Bool { tensors.contains { $0.status == .failed && $0.name.hasPrefix("outputs.") } }
}

/// The verdict for one network vector: node by node (each node against the reference
/// applied to the engine's own values of its inputs) and end to end (the output and the
/// input and parameter gradients, under the bound propagated through the network).
public struct NetworkVerdict: Sendable {
    public var id: String
    public var status: CaseVerdict.Status
    public var reason: String = ""
    /// The node whose own computation failed first: the first failing forward output in node
    /// order, else the first failing backward in backward order (the last node first).
    public var failingNode: String?
    public var nodes: [NodeVerdict] = []
    public var endToEnd: CaseVerdict
}

extension ResultsFile {
    /// Decodes a results file's `networks` block against the golden networks (by id): every
    /// error names the field.
    static func decodeNetworks(_ json: JSON?, networks: [String: NetworkFile], decoder: CaseDecoder, maxBytes: Int) throws(CaseError) -> [String: NetworkResult] {
        guard let json else { return [:] }
        guard case .object(let members) = json else { throw CaseError("networks", "expected an object of network id → {outputs, output_gradients, gradients}") }
        var out: [String: NetworkResult] = [:]
        for (id, value) in members {
            let path = "networks.\(id)"
            guard let golden = networks[id]?.expected else {
                let known = networks.keys.sorted()
                throw CaseError(path, "unknown network: no network vector has this id\(known.isEmpty ? " (the vectors have none)" : "; expected one of \(known.joined(separator: ", "))")")
            }
            guard case .object(let sections) = value else { throw CaseError(path, "expected an object with outputs, output_gradients and gradients") }
            var found: [String: [NamedTensor]] = [:]
            for (section, content) in sections {
                let reference: [NamedTensor]
                switch section {
                case "outputs": reference = golden.outputs
                case "output_gradients": reference = golden.outputGradients
                case "gradients": reference = golden.gradients
                default: throw CaseError("\(path).\(section)", "unknown field; expected outputs, output_gradients, gradients")
                }
                guard case .object(let tensors) = content else { throw CaseError("\(path).\(section)", "expected an object of tensors") }
                for (name, t) in tensors {
                    let tensorPath = "\(path).\(section).\(name)"
                    guard reference.contains(where: { $0.name == name }) else {
                        let what = section == "gradients" ? "the input's name or node.param" : "a node id"
                        throw CaseError(tensorPath, "unknown tensor: the network has no \(section) tensor \"\(name)\"; expected \(what) (\(reference.prefix(6).map(\.name).joined(separator: ", "))\(reference.count > 6 ? ", …" : ""))")
                    }
                    var budget = ByteBudget(limit: maxBytes)
                    found[section, default: []].append(NamedTensor(name, try decoder.decodeTensor(t, path: tensorPath, budget: &budget)))
                }
            }
            out[id] = try NetworkResult(outputs: found["outputs"] ?? [], outputGradients: found["output_gradients"] ?? [],
                                        gradients: found["gradients"] ?? []).checked(against: golden, path: path)
        }
        return out
    }
}

// MARK: - The verdicts

public enum NetworkValidator {
    /// Judges an engine's result for the golden network `file` at `precision`; nil result:
    /// the engine did not run it (skipped with `unsupported`'s reason, never passed).
    public static func validate(_ file: NetworkFile, result: NetworkResult?, precision: Precision, unsupported: String? = nil) -> NetworkVerdict {
        let id = "networks/\(file.id)"
        func verdict(_ status: CaseVerdict.Status, _ reason: String) -> NetworkVerdict {
            NetworkVerdict(id: id, status: status, reason: reason, endToEnd: CaseVerdict(id: id, status: status, reason: reason))
        }
        guard let golden = file.expected else { return verdict(.skipped, "the golden network has no expected values") }
        do { _ = try file.evaluationInputs() } catch {
            return verdict(.skipped, "the golden network cannot be evaluated: \(error.field): \(error.message)")
        }
        if let why = inapplicability(file, precision) { return verdict(.notApplicable, why) }
        guard let result else { return verdict(.skipped, unsupported ?? "not in the results") }
        let result0: NetworkResult
        do { result0 = try result.checked(against: golden, path: "networks.\(id)") } catch {
            return verdict(.failed, "the engine's result does not fit the network: \(error)")
        }
        let nodes = nodeByNode(file, golden, result0, precision)
        let endToEnd = Self.endToEnd(file, golden, result0, precision, id: id)
        var v = NetworkVerdict(id: id, status: .passed, nodes: nodes, endToEnd: endToEnd)
        v.failingNode = nodes.first(where: \.forwardFailed)?.node ?? nodes.last(where: { $0.status == .failed })?.node
        let judgedNodes = nodes.contains { $0.status == .passed || $0.status == .failed }
        if v.failingNode != nil || endToEnd.status == .failed {
            v.status = .failed
            if let node = v.failingNode, let unit = nodes.first(where: { $0.node == node }), let t = unit.tensors.first(where: { $0.status == .failed }) {
                v.reason = "first failing node \(node) (\(unit.layer)): \(t.name) error/bound \(String(format: "%.3g", t.ratio))\(t.detail.isEmpty ? "" : "; \(t.detail)")"
            } else if let t = endToEnd.tensors.first(where: { $0.status == .failed }) {
                v.reason = "end to end: \(t.name) error/bound \(String(format: "%.3g", t.ratio))\(judgedNodes ? "" : " (no intermediates in the results: the node is not named)")"
            } else {
                v.reason = "end to end: \(endToEnd.reason)"
            }
        } else if endToEnd.status == .passed || endToEnd.status == .partial || judgedNodes {
            v.status = endToEnd.status == .passed ? .passed : .partial
            if v.status == .partial { v.reason = endToEnd.status == .partial ? "end to end: \(endToEnd.reason)" : "end to end not judged: \(endToEnd.reason)" }
        } else {
            v.status = .skipped
            v.reason = endToEnd.reason
        }
        return v
    }

    /// Judges every golden network against `results` (by id); one the engine did not run is
    /// skipped (with `unsupported`'s reason), never passed.
    public static func validate(_ networks: [NetworkFile], results: [String: NetworkResult], precision: Precision,
                                unsupported: [String: String] = [:]) -> [NetworkVerdict] {
        networks.map { file in
            let id = "networks/\(file.id)"
            return validate(file, result: results[id], precision: precision, unsupported: unsupported[id])
        }
    }

    /// Why the network does not apply at `precision` (an input, parameter or upstream the
    /// input format does not hold exactly), or nil.
    public static func inapplicability(_ file: NetworkFile, _ precision: Precision) -> String? {
        let format = precision.inputFormat
        var named: [(String, [Double])] = [("input.data", file.inputData ?? [])]
        for node in file.nodes { for t in node.tensors { named.append(("\(node.path).tensors.\(t.name)", t.data ?? [])) } }
        if let u = file.upstream { named.append(("upstream", u.scalars)) }
        for (path, values) in named {
            if let v = values.first(where: { !format.represents($0) }) {
                return "\(path) holds \(v), which is not exact in \(format.name) (it rounds to \(format.rounded(v)))"
            }
        }
        return nil
    }

    /// A node's case at the given values of its inputs and upstream, evaluated, with its scales.
    struct Reference {
        var evaluated: Case
        var scales: (output: ErrorScale, gradients: [ErrorScale], auxiliary: [ErrorScale])
        var layer: any Layer
        var golden: Expected { evaluated.expected! }
        func gradient(_ name: String) -> (tensor: Tensor, scale: ErrorScale)? {
            guard let k = golden.gradients.firstIndex(where: { $0.name == name }) else { return nil }
            return (golden.gradients[k].tensor, scales.gradients[k])
        }
    }

    static func reference(_ file: NetworkFile, _ node: NetworkFile.Node, inputs: [Tensor], upstream: Tensor) throws -> Reference {
        let c = try node.nodeCase(dataInputs: inputs, upstream: upstream, network: "networks/\(file.id)")
        let e = try c.evaluated()
        return Reference(evaluated: e, scales: try ErrorModel.scales(e, golden: e.expected!), layer: try LayerRegistry.makeLayer(e))
    }

    /// The upstream of node k: dL/d(its output) as `gradients` has it, or the network's own
    /// (the file's upstream, or 1 for a scalar loss) for the last node.
    static func networkUpstream(_ file: NetworkFile, _ golden: NetworkEvaluation) -> Tensor {
        file.upstream ?? golden.outputGradients.last!.tensor
    }

    /// One gradient an output receives from one node that reads it, with its own bound.
    struct Contribution {
        var consumer: String
        var value: Tensor
        var bound: [Double]
        var why: [Int: String] = [:]
    }

    /// The gradient an output receives, Σ of its contributions rounded once (as the
    /// reference sums them), and the bound of an engine's sum: each contribution's bound
    /// plus the engine's n − 1 additions, γ_{n−1}(u_acc)·Σ|contributions| + u_out·|sum|.
    static func combine(_ parts: [Contribution], _ precision: Precision) -> (value: Tensor, bound: [Double], why: [Int: String]) {
        let value = Network.gradientSum(parts.map(\.value))
        var bound = [Double](repeating: 0, count: value.count)
        var why: [Int: String] = [:]
        for p in parts {
            for i in bound.indices { bound[i] += p.bound[i] }
            why.merge(p.why) { a, _ in a }
        }
        if parts.count > 1 {
            let g = gamma(Double(parts.count - 1), precision.accumulationUnit)
            for i in bound.indices {
                bound[i] += g * parts.reduce(0) { $0 + $1.value[i].magnitude } + precision.outputUnit * value[i].magnitude
            }
        }
        return (value, bound, why)
    }

    /// Per-element bounds of a tensor judged at `scale`, with the reasons an element has none.
    static func bounds(_ t: Tensor, _ scale: ErrorScale, _ precision: Precision) -> (bound: [Double], why: [Int: String]) {
        var why: [Int: String] = [:]
        let b = t.scalars.indices.map { i -> Double in
            let b = scale.bound(i, golden: t[i], precision: precision)
            if let reason = scale.unjudgeable(i, bound: b, precision: precision) { why[i] = reason; return .infinity }
            return b
        }
        return (b, why)
    }

    static func compare(_ expected: Tensor, _ got: Tensor, bound: [Double], why: [Int: String], name: String) -> TensorVerdict {
        Validator.compare(expected, got, name: name, bound: { i, _ in bound[i] }, unjudgeable: { i, _ in why[i] ?? (bound[i].isFinite ? nil : "no finite bound") })
    }

    // MARK: Node by node

    static func nodeByNode(_ file: NetworkFile, _ golden: NetworkEvaluation, _ result: NetworkResult, _ precision: Precision) -> [NodeVerdict] {
        guard !result.outputs.isEmpty || !result.outputGradients.isEmpty else { return [] }
        let x = Tensor(shape: file.inputShape, scalars: file.inputData ?? [])
        let last = file.nodes.count - 1
        var units: [NodeVerdict] = []
        var contributions: [String: [Contribution]] = [:]
        var incomplete = Set<String>()   // outputs some reader of which could not be judged backward
        for (k, node) in file.nodes.enumerated() {
            var unit = NodeVerdict(node: node.id, layer: node.layer, status: .skipped)
            let missing = node.inputs.filter { $0 != file.inputName && result.tensor(result.outputs, $0) == nil }
            let engineUpstream = k == last ? networkUpstream(file, golden) : result.tensor(result.outputGradients, node.id)
            let reported = result.tensor(result.outputs, node.id) != nil || engineUpstream != nil && k != last
                || node.tensors.contains { result.tensor(result.gradients, "\(node.id).\($0.name)") != nil }
            guard missing.isEmpty else {
                unit.reason = "the results have no output of \(missing.joined(separator: ", ")), which this node reads"
                node.inputs.forEach { incomplete.insert($0) }
                if reported { units.append(unit) }
                continue
            }
            let ins = node.inputs.map { $0 == file.inputName ? x : result.tensor(result.outputs, $0)! }
            // Without the engine's upstream the forward output is still judged (the golden
            // upstream stands in); the backward is not.
            let upstream = engineUpstream ?? golden.outputGradients[k].tensor
            let ref: Reference
            do { ref = try reference(file, node, inputs: ins, upstream: upstream) } catch {
                unit.reason = "the reference cannot evaluate this node at the engine's inputs: \(error)"
                node.inputs.forEach { incomplete.insert($0) }
                units.append(unit)
                continue
            }
            if let y = result.tensor(result.outputs, node.id) {
                unit.tensors.append(Validator.compare(ref.golden.outputs[0].tensor, y, ref.scales.output, precision, name: "outputs.\(node.id)"))
            }
            if engineUpstream != nil {
                for t in node.tensors where ref.layer.learnableParameters.contains(where: { $0.name == t.name }) {
                    guard let got = result.tensor(result.gradients, "\(node.id).\(t.name)"), let (g, scale) = ref.gradient(t.name) else { continue }
                    unit.tensors.append(Validator.compare(g, got, scale, precision, name: "gradients.\(node.id).\(t.name)"))
                }
                for (name, source) in zip(node.dataInputNames, node.inputs) {
                    let (g, scale) = ref.gradient(name)!
                    let (b, why) = bounds(g, scale, precision)
                    contributions[source, default: []].append(Contribution(consumer: node.id, value: g, bound: b, why: why))
                }
            } else {
                node.inputs.forEach { incomplete.insert($0) }
            }
            if !unit.tensors.isEmpty || reported { units.append(unit) }
        }
        // The gradients reaching each output: judged in the unit of its only reader, or as a sum.
        for source in [file.inputName] + file.nodes.map(\.id) where !incomplete.contains(source) {
            guard let parts = contributions[source] else { continue }
            let name = source == file.inputName ? "gradients.\(source)" : "output_gradients.\(source)"
            guard let got = source == file.inputName ? result.tensor(result.gradients, source) : result.tensor(result.outputGradients, source) else { continue }
            let (value, bound, why) = combine(parts, precision)
            var t = compare(value, got, bound: bound, why: why, name: name)
            let readers = parts.map(\.consumer)
            if readers.count == 1, let u = units.firstIndex(where: { $0.node == readers[0] }) {
                t.detail = ["\(readers[0])'s backward", t.detail].filter { !$0.isEmpty }.joined(separator: "; ")
                units[u].tensors.append(t)
            } else {
                t.detail = ["the sum of what \(readers.joined(separator: ", ")) send back", t.detail].filter { !$0.isEmpty }.joined(separator: "; ")
                let at = units.lastIndex { readers.contains($0.node) }.map { $0 + 1 } ?? units.count
                units.insert(NodeVerdict(node: readers.joined(separator: "+"), layer: "sum", status: .passed, tensors: [t]), at: at)
            }
        }
        for u in units.indices {
            let statuses = units[u].tensors.map(\.status)
            if statuses.contains(.failed) { units[u].status = .failed } else if statuses.contains(.passed) { units[u].status = .passed } else {
                units[u].status = .skipped
                if units[u].reason.isEmpty { units[u].reason = "nothing of this node could be judged (its upstream or outputs are not in the results)" }
            }
        }
        return units
    }

    // MARK: End to end

    static func endToEnd(_ file: NetworkFile, _ golden: NetworkEvaluation, _ result: NetworkResult, _ precision: Precision, id: String) -> CaseVerdict {
        var verdict = CaseVerdict(id: id, status: .passed)
        let outputName = golden.outputs.last!.name
        let judged: [(String, Tensor, Tensor?)] = [("outputs.\(outputName)", golden.outputs.last!.tensor, result.tensor(result.outputs, outputName))]
            + golden.gradients.map { ("gradients.\($0.name)", $0.tensor, result.tensor(result.gradients, $0.name)) }
        guard judged.contains(where: { $0.2 != nil }) else {
            verdict.status = .skipped
            verdict.reason = "neither the network's output \(outputName) nor any gradient is in the results"
            return verdict
        }
        let propagated: NetworkBound.Propagated
        do { propagated = try NetworkBound.propagate(file, golden, precision) } catch {
            verdict.status = .skipped
            verdict.reason = "no end-to-end bound: \(error)"
            return verdict
        }
        for (name, expected, got) in judged {
            guard let got else {
                verdict.tensors.append(TensorVerdict(name: name, status: .skipped, worst: nil, detail: "not in the results"))
                continue
            }
            let b = propagated.bounds[name]!
            verdict.tensors.append(compare(expected, got, bound: b.bound, why: b.why, name: name))
        }
        let missing = verdict.tensors.filter { $0.status == .skipped }.map(\.name)
        if verdict.tensors.contains(where: { $0.status == .failed }) {
            verdict.status = .failed
        } else if !missing.isEmpty {
            verdict.status = .partial
            verdict.reason = missing.count == judged.count - 1 && verdict.tensors[0].status != .skipped
                ? "forward only: no gradient in the results" : "not in the results: \(missing.joined(separator: ", "))"
        }
        return verdict
    }
}

// MARK: - The propagated bound

/// The end-to-end bound: every node's own rounding bound (its layer's, at the golden values
/// of its inputs) carried through the absolute Jacobians of the nodes after it.
///
/// Forward: e_k = b_k + Σ_j |∂y_k/∂x_j|·e_j, e = 0 at the network input. Backward, with δ the
/// golden gradient reaching a node and ε its bound: a node sends to input j
/// c_kj + |J_kj|ᵀ·ε_k + |∂(J_kjᵀδ_k)/∂x|·e (its own rounding, the upstream's error carried
/// back, and the change of its backward with the error in its inputs); a parameter's
/// gradient gets its own rounding, |∂g/∂δ|·ε_k and |∂g/∂x|·e. An output several nodes read
/// gets the sum of their bounds and the engine's additions (`combine`).
///
/// First order: products of errors are left out, which holds while every error is small
/// beside the values it perturbs. The kinks are not first order and are bounded as such:
/// a ReLU whose input lies within its error bound of 0 may take either piece (the whole
/// |δ| is added), a max pool sends its gradient to any cell within the error bounds of the
/// maximum (each such cell gets ε + |δ|), and max is 1-Lipschitz (the largest error of the
/// window). A layer without a rule here has no end-to-end bound (the network is judged node
/// by node only, and the report says which layer).
enum NetworkBound {
    struct Propagated {
        /// By judged tensor name: `outputs.<last node>`, `gradients.<input>`, `gradients.<node.param>`.
        var bounds: [String: (bound: [Double], why: [Int: String])]
    }

    struct NoRule: Error, CustomStringConvertible {
        var description: String
    }

    static func propagate(_ file: NetworkFile, _ golden: NetworkEvaluation, _ precision: Precision) throws -> Propagated {
        let x = Tensor(shape: file.inputShape, scalars: file.inputData ?? [])
        var values: [String: Tensor] = [file.inputName: x]
        var errors: [String: Tensor] = [file.inputName: Tensor(zeros: x.shape)]
        // Why an element has no bound of its own, by node, in that node's output's indices (a
        // reason is never carried to another tensor's indices: an unbounded error reaches the
        // elements that depend on it as an infinite bound).
        var whys: [String: [Int: String]] = [:]
        var firstUnbounded: String?
        func note(_ why: [Int: String], _ t: Tensor, _ what: String) {
            if firstUnbounded == nil, let i = why.keys.min() { firstUnbounded = "\(what) \(t.index(ofFlat: i)) has none: \(why[i]!)" }
        }
        // A non-finite reference value must be matched exactly (`compare`), so it carries no
        // error into the nodes after it: its first-order error is 0.
        func finiteOnly(_ b: [Double], _ t: Tensor) -> [Double] { b.indices.map { t[$0].isFinite ? b[$0] : 0 } }
        var references: [NetworkValidator.Reference] = []
        let last = file.nodes.count - 1
        for (k, node) in file.nodes.enumerated() {
            let ins = node.inputs.map { values[$0]! }
            let upstream = k == last ? NetworkValidator.networkUpstream(file, golden) : golden.outputGradients[k].tensor
            let ref = try NetworkValidator.reference(file, node, inputs: ins, upstream: upstream)
            let y = ref.golden.outputs[0].tensor
            var (own, why) = NetworkValidator.bounds(y, ref.scales.output, precision)
            guard let carried = try Rules.forward(ref.layer, node: node, inputs: ins, errors: node.inputs.map { errors[$0]! }) else {
                throw NoRule(description: "no error propagation rule for \(node.layer) (\(node.path)): the network is judged node by node only")
            }
            for i in own.indices { own[i] += carried[i] }
            note(why, y, "outputs.\(node.id)")
            values[node.id] = y
            errors[node.id] = Tensor(shape: y.shape, scalars: finiteOnly(own, y))
            whys[node.id] = why
            references.append(ref)
        }
        var out = Propagated(bounds: [:])
        let lastID = file.nodes[last].id
        out.bounds["outputs.\(lastID)"] = (finiteOnly(errors[lastID]!.scalars, values[lastID]!), whys[lastID] ?? [:])
        var contributions: [String: [NetworkValidator.Contribution]] = [:]
        var upstreamError: [String: (Tensor, [Int: String])] = [file.nodes[last].id: (Tensor(zeros: golden.outputs[last].tensor.shape), [:])]
        for k in file.nodes.indices.reversed() {
            let node = file.nodes[k], ref = references[k]
            if k != last {
                let (value, bound, why) = NetworkValidator.combine(contributions[node.id]!, precision)
                note(why, value, "the gradient reaching \(node.id)")
                upstreamError[node.id] = (Tensor(shape: value.shape, scalars: finiteOnly(bound, value)), why)
            }
            let (eps, _) = upstreamError[node.id]!
            let ins = node.inputs.map { values[$0]! }
            let inErrors = node.inputs.map { errors[$0]! }
            let delta = ref.evaluated.upstream ?? Tensor(scalar: 1)
            guard let carried = try Rules.backward(ref.layer, node: node, inputs: ins, upstream: delta, upstreamError: eps, errors: inErrors) else {
                throw NoRule(description: "no error propagation rule for the backward of \(node.layer) (\(node.path)): the network is judged node by node only")
            }
            for (s, (name, source)) in zip(node.dataInputNames, node.inputs).enumerated() {
                let (g, scale) = ref.gradient(name)!
                var (b, w) = NetworkValidator.bounds(g, scale, precision)
                for i in b.indices { b[i] += carried.inputs[s][i] }
                contributions[source, default: []].append(.init(consumer: node.id, value: g, bound: b, why: w))
            }
            for (name, extra) in carried.parameters {
                let (g, scale) = ref.gradient(name)!
                var (b, w) = NetworkValidator.bounds(g, scale, precision)
                for i in b.indices { b[i] += extra[i] }
                note(w, g, "gradients.\(node.id).\(name)")
                out.bounds["gradients.\(node.id).\(name)"] = (b, w)
            }
        }
        let (_, bound, why) = NetworkValidator.combine(contributions[file.inputName]!, precision)
        out.bounds["gradients.\(file.inputName)"] = (bound, why)
        // An element whose propagated bound is not finite depends on one of these.
        for (name, (bound, why)) in out.bounds {
            var why = why
            for i in bound.indices where !bound[i].isFinite && why[i] == nil {
                why[i] = "no finite bound: the error of a value it depends on is unbounded\(firstUnbounded.map { " (the first value in the network without one: \($0))" } ?? "")"
            }
            out.bounds[name] = (bound, why)
        }
        return out
    }
}

/// The absolute-Jacobian rules of `NetworkBound`, layer by layer (see there for the model).
enum Rules {
    static func zeros(_ t: Tensor) -> Tensor { Tensor(zeros: t.shape) }

    /// The layer with |weights| and no bias: |J|·v for a layer linear in x, and |∂g/∂·| for its
    /// parameter gradients.
    static func absolute(_ layer: any Layer) -> any Layer {
        var l = layer
        for k in l.parameters.indices {
            l.parameters[k].tensor = l.parameters[k].name == "bias" ? zeros(l.parameters[k].tensor) : l.parameters[k].tensor.magnitudes
        }
        return l
    }

    /// `map`, linear in the errors `e`, applied with 0·∞ = 0: an element whose error is unbounded
    /// (∞, it has no finite bound) makes unbounded exactly the results that depend on it
    /// through a nonzero coefficient, and no other (IEEE's 0·∞ = NaN would spread it to all).
    static func linear(_ e: Tensor, _ map: (Tensor) -> [Double]) -> [Double] {
        guard e.scalars.contains(where: { $0 == .infinity }) else { return map(e) }
        let finite = map(Tensor(shape: e.shape, scalars: e.scalars.map { $0 == .infinity ? 0 : $0 }))
        let reached = map(Tensor(shape: e.shape, scalars: e.scalars.map { $0 == .infinity ? 1 : 0 }))
        return zip(finite, reached).map { $1 > 0 ? .infinity : $0 }
    }

    /// Σ_j |∂y/∂x_j|·e_j: the output error the input errors cause (first order), or nil.
    static func forward(_ layer: any Layer, node: NetworkFile.Node, inputs: [Tensor], errors e: [Tensor]) throws -> [Double]? {
        let x = inputs[0]
        switch layer {
        case is Conv2D, is Linear:
            let a = absolute(layer)
            return linear(e[0]) { a.forward($0, accumulator: PlainSum.self).scalars }
        case is AvgPool2D, is AdaptiveAvgPool2D, is Flatten, is Dropout:
            return linear(e[0]) { layer.forward($0, accumulator: PlainSum.self).scalars }
        case is Add, is Concat:
            // Linear with coefficients 1 in every data input: the layer applied to the errors.
            let onErrors = try LayerRegistry.makeLayer(try node.nodeCase(dataInputs: e))
            return onErrors.forward(e[0], accumulator: PlainSum.self).scalars
        case is ReLU:
            return e[0].scalars
        case let leaky as LeakyReLU:
            return e[0].scalars.map { $0 * max(1, leaky.slope.magnitude) }
        case let pool as MaxPool2D:
            var out = [Double](repeating: 0, count: try pool.outputShape(forInput: x.shape).reduce(1, *))
            pool.window.forEachWindow(input: x.shape) { o, taps in
                out[o] = taps.reduce(0) { $0.isNaN || e[0][$1].isNaN ? .nan : max($0, e[0][$1]) }
            }
            return out
        case let bn as BatchNorm2D:
            return BatchNormRule(bn, x: x, e: e[0]).forward()
        case let lrn as LRN:
            return LRNRule(lrn, x: x).forward(e[0])
        case let ce as SoftmaxCrossEntropy:
            return [CrossEntropyRule(ce, x: x).forward(e[0])]
        default:
            return nil
        }
    }

    /// The gradient errors the upstream's error ε and the input errors e cause: per data
    /// input (in order), and per learnable parameter by name; or nil.
    static func backward(_ layer: any Layer, node: NetworkFile.Node, inputs: [Tensor], upstream delta: Tensor,
                         upstreamError eps: Tensor, errors e: [Tensor]) throws -> (inputs: [[Double]], parameters: [(String, [Double])])? {
        let x = inputs[0]
        switch layer {
        case is Conv2D, is Linear:
            // dx = Jᵀδ does not depend on x; dW = Σ δ·x depends on both; db = Σ δ.
            let a = absolute(layer), xs = x.magnitudes, ds = delta.magnitudes
            let byUpstream = linear(eps) { a.backward(xs, outputGradient: $0).input.scalars }
            let params = layer.parameters.enumerated().map { k, p -> (String, [Double]) in
                let fromUpstream = linear(eps) { a.backward(xs, outputGradient: $0).parameters[k].scalars }
                let fromInput = p.name == "bias" ? p.tensor.scalars.map { _ in 0.0 }
                    : linear(e[0]) { a.backward($0, outputGradient: ds).parameters[k].scalars }
                return (p.name, zip(fromUpstream, fromInput).map { $0 + $1 })
            }
            return ([byUpstream], params)
        case is AvgPool2D, is AdaptiveAvgPool2D, is Flatten, is Dropout:
            return ([linear(eps) { layer.backward(x, outputGradient: $0).input.scalars }], [])
        case is Add, is Concat:
            let g = layer.backward(x, outputGradient: eps)
            return ([g.input.scalars] + g.parameters.map(\.scalars), [])
        case is ReLU, is LeakyReLU:
            let slope = (layer as? LeakyReLU)?.slope ?? 0
            let most = max(1, slope.magnitude), jump = (1 - slope).magnitude
            return ([x.scalars.indices.map { i in
                // Within its error bound of 0 the engine's input may lie on either piece.
                let either = e[0][i] > 0 && x[i].magnitude <= e[0][i]
                let slopeHere = either ? most : (x[i] > 0 ? 1 : slope.magnitude)
                return (slopeHere == 0 ? 0 : eps[i] * slopeHere) + (either ? delta[i].magnitude * jump : 0)
            }], [])
        case let pool as MaxPool2D:
            var out = [Double](repeating: 0, count: x.count)
            pool.window.forEachWindow(input: x.shape) { o, taps in
                let values = taps.map { x[$0] }
                guard !values.contains(where: \.isNaN), let m = values.max() else {
                    for t in taps { out[t] = .nan }
                    return
                }
                let margin = taps.filter { x[$0] == m }.map { e[0][$0] }.max() ?? 0
                let candidates = taps.filter { x[$0] + e[0][$0] >= m - margin }
                for t in Set(candidates) { out[t] += eps[o] + (candidates.count > 1 ? delta[o].magnitude : 0) }
            }
            return ([out], [])
        case let bn as BatchNorm2D:
            let r = BatchNormRule(bn, x: x, e: e[0])
            return r.backward(delta: delta, eps: eps)
        case let lrn as LRN:
            return ([LRNRule(lrn, x: x).backward(delta: delta, eps: eps, e: e[0])], [])
        case let ce as SoftmaxCrossEntropy:
            return ([CrossEntropyRule(ce, x: x).backward(delta: delta[0], eps: eps[0], e: e[0])], [])
        default:
            return nil
        }
    }
}

/// Batch norm's rules. Evaluation: y = γ(x − μ_r)/σ + β, affine. Training: x̂ = (x − μ)/σ over
/// a channel's m values moves by h_i = (e_i + mean e + |x̂_i|·mean(|x̂|·e))/σ, σ by
/// r = mean(|x̂|·e)/σ relatively; dx = γ/σ·(δ − mean δ − x̂·mean(δx̂)) (J is symmetric).
struct BatchNormRule {
    let bn: BatchNorm2D
    let x: Tensor, e: Tensor
    var xhat: [Double], h: [Double], sigma: [Double], relative: [Double]

    init(_ bn: BatchNorm2D, x: Tensor, e: Tensor) {
        self.bn = bn; self.x = x; self.e = e
        let channels = x.shape[1]
        xhat = Array(repeating: 0, count: x.count); h = xhat
        sigma = Array(repeating: 0, count: channels); relative = sigma
        for c in 0..<channels {
            let idx = bn.indices(x.shape, c), n = Double(idx.count)
            let mu = bn.training ? idx.reduce(0) { $0 + x[$1] } / n : bn.runningMean[c]
            let variance = bn.training ? idx.reduce(0) { $0 + (x[$1] - mu) * (x[$1] - mu) } / n : bn.runningVar[c]
            sigma[c] = (variance + bn.eps).squareRoot()
            for i in idx { xhat[i] = (x[i] - mu) / sigma[c] }
            if bn.training {
                let meanE = idx.reduce(0) { $0 + e[$1] } / n
                let meanXE = idx.reduce(0) { $0 + xhat[$1].magnitude * e[$1] } / n
                relative[c] = meanXE / sigma[c]
                for i in idx { h[i] = (e[i] + meanE + xhat[i].magnitude * meanXE) / sigma[c] }
            } else {
                for i in idx { h[i] = e[i] / sigma[c] }
            }
        }
    }

    func forward() -> [Double] {
        var out = [Double](repeating: 0, count: x.count)
        for c in sigma.indices { for i in bn.indices(x.shape, c) { out[i] = bn.weight[c].magnitude * h[i] } }
        return out
    }

    func backward(delta: Tensor, eps: Tensor) -> (inputs: [[Double]], parameters: [(String, [Double])]) {
        var dx = [Double](repeating: 0, count: x.count)
        var dg = [Double](repeating: 0, count: sigma.count), db = dg
        for c in sigma.indices {
            let idx = bn.indices(x.shape, c), n = Double(idx.count)
            let g = bn.weight[c].magnitude / sigma[c]
            db[c] = idx.reduce(0) { $0 + eps[$1] }
            dg[c] = idx.reduce(0) { $0 + eps[$1] * xhat[$1].magnitude + delta[$1].magnitude * h[$1] }
            if bn.training {
                let meanEps = idx.reduce(0) { $0 + eps[$1] } / n
                let meanXEps = idx.reduce(0) { $0 + xhat[$1].magnitude * eps[$1] } / n
                let meanD = idx.reduce(0) { $0 + delta[$1] } / n
                let meanDX = idx.reduce(0) { $0 + delta[$1] * xhat[$1] } / n
                let meanDH = idx.reduce(0) { $0 + delta[$1].magnitude * h[$1] } / n
                for i in idx {
                    let value = g * (delta[i] - meanD - xhat[i] * meanDX)
                    dx[i] = g * (eps[i] + meanEps + xhat[i].magnitude * meanXEps)
                        + value.magnitude * relative[c] + g * (h[i] * meanDX.magnitude + xhat[i].magnitude * meanDH)
                }
            } else {
                for i in idx { dx[i] = g * eps[i] }
            }
        }
        return ([dx], [("weight", dg), ("bias", db)])
    }
}

/// LRN's rules: y_c = x_c·D_c, D = S^−β, E = S^(−β−1), F = S^(−β−2), S_c = k + a·Σ_{j∈W(c)} x_j²,
/// a = α/size, K = 2aβ: ∂y_c/∂x_j = [c = j]·D_c − K·x_c·x_j·E_c·[j ∈ W(c)].
struct LRNRule {
    let lrn: LRN
    let x: Tensor
    let channels: Int, plane: Int
    var d: [Double], ee: [Double], f: [Double]

    init(_ lrn: LRN, x: Tensor) {
        self.lrn = lrn; self.x = x
        channels = x.shape[1]; plane = x.shape[2] * x.shape[3]
        d = Array(repeating: 0, count: x.count); ee = d; f = d
        for i in 0..<x.count {
            let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
            let q = lrn.window(c, channels: channels).reduce(0.0) { let v = x[(n * channels + $1) * plane + p]; return $0 + v * v }
            let s = lrn.k + lrn.alpha / Double(lrn.size) * q
            d[i] = pow(s, -lrn.beta); ee[i] = pow(s, -lrn.beta - 1); f[i] = pow(s, -lrn.beta - 2)
        }
    }

    var a: Double { lrn.alpha / Double(lrn.size) }
    var kk: Double { 2 * a * lrn.beta.magnitude }
    func at(_ i: Int, channel j: Int) -> Int { let (n, p) = (i / (channels * plane), i % plane); return (n * channels + j) * plane + p }
    func window(_ i: Int) -> [Int] { lrn.window((i / plane) % channels, channels: channels).map { at(i, channel: $0) } }

    func forward(_ e: Tensor) -> [Double] {
        (0..<x.count).map { c in d[c] * e[c] + kk * x[c].magnitude * ee[c] * window(c).reduce(0) { $0 + x[$1].magnitude * e[$1] } }
    }

    func backward(delta: Tensor, eps: Tensor, e: Tensor) -> [Double] {
        var out = (0..<x.count).map { j in d[j] * eps[j] }
        // Σ_l |x_l|·e_l over each window, once.
        let spread = (0..<x.count).map { c in window(c).reduce(0) { $0 + x[$1].magnitude * e[$1] } }
        for c in 0..<x.count {
            for j in window(c) {
                // |J|ᵀε and the change of dx_j with the inputs (the second derivatives of y_c).
                out[j] += kk * x[j].magnitude * x[c].magnitude * ee[c] * eps[c]
                out[j] += kk * delta[c].magnitude * (x[c].magnitude * ee[c] * e[j] + x[j].magnitude * ee[c] * e[c]
                                                     + x[j].magnitude * x[c].magnitude * 2 * a * (lrn.beta.magnitude + 1) * f[c] * spread[c])
            }
            // c's own term δ_c·∂D_c/∂x_l over its window.
            out[c] += kk * delta[c].magnitude * ee[c] * spread[c]
        }
        return out
    }
}

/// Softmax cross-entropy's rules: L = (1/N)Σ_i (log Σ_j e^{x_ij} − x_{i,y_i}) (1 for `sum`),
/// ∂L/∂x_ij = (p_ij − [j = y_i])/N, ∂²L/∂x_ij∂x_il = p_ij([j = l] − p_il)/N.
struct CrossEntropyRule {
    let ce: SoftmaxCrossEntropy
    let x: Tensor
    var p: [Double]
    var divisor: Double { ce.reduction == .mean ? Double(x.shape[0]) : 1 }

    init(_ ce: SoftmaxCrossEntropy, x: Tensor) {
        self.ce = ce; self.x = x
        let cl = x.shape[1]
        p = []
        for i in 0..<x.shape[0] {
            let row = Array(x.scalars[i * cl..<(i + 1) * cl]), m = row.max() ?? 0
            let s = row.reduce(0) { $0 + exp($1 - m) }
            p += row.map { exp($0 - m) / s }
        }
    }

    func forward(_ e: Tensor) -> Double {
        let cl = x.shape[1]
        return (0..<x.shape[0]).reduce(0) { total, i in
            total + (0..<cl).reduce(0) { $0 + p[i * cl + $1] * e[i * cl + $1] } + e[i * cl + ce.labels[i]]
        } / divisor
    }

    func backward(delta: Double, eps: Double, e: Tensor) -> [Double] {
        let cl = x.shape[1]
        var out = [Double](repeating: 0, count: x.count)
        for i in 0..<x.shape[0] {
            let mixed = (0..<cl).reduce(0) { $0 + p[i * cl + $1] * e[i * cl + $1] }
            for j in 0..<cl {
                let k = i * cl + j
                out[k] = (eps * (p[k] + (j == ce.labels[i] ? 1 : 0)) + delta.magnitude * p[k] * (e[k] + mixed)) / divisor
            }
        }
        return out
    }
}
