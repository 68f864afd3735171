/// A network is a layer: a graph of nodes, each a layer of the catalogue, whose inputs
/// are the network's input or earlier nodes (chains, residual additions, concatenations
/// of branches). The last node is the output. Built from a `cnnref-network-1` file by
/// `NetworkFile.network()`.
///
/// - `parameters` are every node's learnable parameters in node order, named
///   `node.name` (`layer1.0.conv1.weight`, PyTorch's `state_dict` keys when the node ids
///   are its module names); `buffers` likewise. Setting `parameters` sets the nodes'.
/// - `forward` runs the nodes in order, each on the values its inputs produced.
/// - `backward` is the chain rule across nodes: each node's `backward` at the inputs the
///   forward pass gave it, upstream = the gradient of its output. Where an output feeds
///   several nodes (a residual's identity path, DenseNet's concatenations) its gradient
///   is the sum of their contributions, the exact sum rounded once (`Add`'s rule, signed
///   zeros included), in node order.
/// - Every node's output is the node's value at the values its inputs had, each
///   correctly rounded given them; the network's output and gradients are therefore
///   those of a float64 engine that stores every intermediate and rounds each node
///   perfectly, not the exact real value of the composition.
public struct Network: Layer {
    public static let id = "network"

    struct Node: Sendable {
        var id: String
        var layer: any Layer
        /// −1 for the network input, else the index of an earlier node.
        var inputs: [Int]
        /// Indices in `layer.parameters` of its learnable parameters, and of its data
        /// inputs after the first (`x1, x2, …` of add and concat), in order.
        let learnable: [Int]
        let dataSlots: [Int]

        init(id: String, layer: any Layer, inputs: [Int]) {
            self.id = id
            self.layer = layer
            self.inputs = inputs
            let data = layer.dataInputNames
            learnable = layer.parameters.indices.filter { !data.contains(layer.parameters[$0].name) }
            dataSlots = data.dropFirst().map { name in layer.parameters.firstIndex { $0.name == name }! }
        }

        /// The layer with its further data inputs set to `values` (the first is `forward`'s x).
        func layer(with values: [Tensor]) -> any Layer {
            var l = layer
            for (slot, v) in zip(dataSlots, values.dropFirst()) { l.parameters[slot].tensor = v }
            return l
        }
    }

    public let inputName: String
    var nodes: [Node]

    init(inputName: String, nodes: [Node]) {
        self.inputName = inputName
        self.nodes = nodes
    }

    public var outputName: String { nodes.last!.layer.outputName }
    public var nodeIDs: [String] { nodes.map(\.id) }

    public var parameters: [NamedTensor] {
        get {
            nodes.flatMap { node in node.learnable.map { NamedTensor("\(node.id).\(node.layer.parameters[$0].name)", node.layer.parameters[$0].tensor) } }
        }
        set {
            var k = 0
            for n in nodes.indices {
                for slot in nodes[n].learnable {
                    nodes[n].layer.parameters[slot].tensor = newValue[k].tensor
                    k += 1
                }
            }
        }
    }

    public var buffers: [NamedTensor] {
        nodes.flatMap { node in node.layer.buffers.map { NamedTensor("\(node.id).\($0.name)", $0.tensor) } }
    }

    /// The shapes every node produces at input shape `shape`; errors name the node.
    func shapes(forInput shape: [Int]) throws(CaseError) -> (inputs: [[[Int]]], outputs: [[Int]]) {
        var outs: [[Int]] = [], ins: [[[Int]]] = []
        for (k, node) in nodes.enumerated() {
            let s = node.inputs.map { $0 < 0 ? shape : outs[$0] }
            let layer = node.layer(with: s.map { Tensor(shapeOnly: $0) })
            do { outs.append(try layer.outputShape(forInput: s[0])) } catch {
                let path = "nodes[\(k)] (\(node.id))"
                throw CaseError(error.field.isEmpty ? path : "\(path).\(error.field)", error.message)
            }
            ins.append(s)
        }
        return (ins, outs)
    }

    public func outputShape(forInput shape: [Int]) throws(CaseError) -> [Int] { try shapes(forInput: shape).outputs.last! }

    public func notes(forInput shape: [Int]) -> [String] {
        guard let s = try? shapes(forInput: shape) else { return [] }
        return zip(nodes, s.inputs).flatMap { node, ins in node.layer.notes(forInput: ins[0]).map { "\(node.id): \($0)" } }
    }

    public func multiplyAdds(forInput shape: [Int]) -> Int? {
        guard let s = try? shapes(forInput: shape) else { return nil }
        var total = 0
        for (node, ins) in zip(nodes, s.inputs) {
            guard let m = node.layer.multiplyAdds(forInput: ins[0]) else { return nil }
            let (t, overflow) = total.addingReportingOverflow(m)
            if overflow { return nil }
            total = t
        }
        return total
    }

    /// Every node's inputs and output at `x`, each node run with accumulator `A`.
    public func trace<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> (inputs: [[Tensor]], outputs: [Tensor]) {
        var outs: [Tensor] = [], ins: [[Tensor]] = []
        for node in nodes {
            let values = node.inputs.map { $0 < 0 ? x : outs[$0] }
            outs.append(node.layer(with: values).forward(values[0], accumulator: A.self))
            ins.append(values)
        }
        return (ins, outs)
    }

    /// Every node's output at `x`, correctly rounded given its inputs' values, by node id.
    public func nodeOutputs(_ x: Tensor) -> [NamedTensor] {
        zip(nodes, trace(x, accumulator: CorrectlyRounded.self).outputs).map { NamedTensor($0.id, $1) }
    }

    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        trace(x, accumulator: A.self).outputs.last!
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients { evaluate(x, outputGradient: dy).gradients }

    /// The forward and backward passes with every intermediate: each node's output, the
    /// gradient reaching each node's output (the upstream its backward is given), and the
    /// gradients of the input and the parameters.
    public func evaluate(_ x: Tensor, outputGradient dy: Tensor) -> (outputs: [Tensor], outputGradients: [Tensor], gradients: Gradients) {
        let (ins, outs) = trace(x, accumulator: CorrectlyRounded.self)
        var reaching = [Tensor](repeating: Tensor(zeros: []), count: nodes.count)
        // contributions[k + 1]: the gradients reaching node k's output; [0]: the input's.
        var contributions = [[Tensor]](repeating: [], count: nodes.count + 1)
        contributions[nodes.count].append(dy)
        var parameterGradients = [[Tensor]](repeating: [], count: nodes.count)
        for k in nodes.indices.reversed() {
            let node = nodes[k]
            reaching[k] = Self.sum(contributions[k + 1])
            let g = node.layer(with: ins[k]).backward(ins[k][0], outputGradient: reaching[k])
            contributions[node.inputs[0] + 1].append(g.input)
            for (j, slot) in node.dataSlots.enumerated() { contributions[node.inputs[j + 1] + 1].append(g.parameters[slot]) }
            parameterGradients[k] = node.learnable.map { g.parameters[$0] }
        }
        return (outs, reaching, Gradients(input: Self.sum(contributions[0]), parameters: parameterGradients.flatMap { $0 }))
    }

    /// The exact sum of the gradients an output receives, rounded once; one is itself.
    public static func gradientSum(_ parts: [Tensor]) -> Tensor { sum(parts) }

    static func sum(_ parts: [Tensor]) -> Tensor {
        parts.count == 1 ? parts[0] : Add(others: Array(parts.dropFirst())).forward(parts[0])
    }

    /// Every node's discrete choices (ReLU masks, pool argmaxes) at the values the forward
    /// pass gives it, in node order: where any changes, the network has a kink.
    public func activeSet(_ x: Tensor) -> [Int] {
        let ins = trace(x, accumulator: CorrectlyRounded.self).inputs
        return zip(nodes, ins).flatMap { node, values in node.layer(with: values).activeSet(values[0]) }
    }

    public func auxiliaryOutputShapes(forInput shape: [Int]) -> [(String, [Int])] {
        guard let s = try? shapes(forInput: shape) else { return [] }
        return zip(nodes, s.inputs).flatMap { node, ins in node.layer.auxiliaryOutputShapes(forInput: ins[0]).map { ("\(node.id).\($0.0)", $0.1) } }
    }

    public func auxiliaryOutputs(_ x: Tensor) -> [NamedTensor] {
        let ins = trace(x, accumulator: CorrectlyRounded.self).inputs
        return zip(nodes, ins).flatMap { node, values in
            node.layer(with: values).auxiliaryOutputs(values[0]).map { NamedTensor("\(node.id).\($0.name)", $0.tensor) }
        }
    }
}
