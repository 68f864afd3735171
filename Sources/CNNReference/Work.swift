/// The loop steps a layer's kernels run for one pass (forward, or backward) over an input:
/// the (output, term) pairs they visit — for windows, only the taps that lie inside the
/// input, since the kernels never visit the others — plus one step per output and per input
/// element. The decoder refuses a case above `CaseDecoder.maxWork` before any work, with
/// this arithmetic, so every case it accepts finishes in bounded time.
public struct Work: Sendable, CustomStringConvertible {
    /// The total, or nil when it overflows `Int`.
    public let total: Int?
    /// How it was counted: `conv2d: 1·4·3 (N·K·C/groups) × 36 row taps × 36 column taps = … + …`.
    public let arithmetic: String
    public var description: String { arithmetic }

    /// The product and sum of the parts, checked for overflow.
    init(layer: String, factors: [(Int, String)], outputs: Int, inputs: Int) {
        var product: Int? = 1
        for (f, _) in factors {
            guard let p = product else { break }
            let (v, overflow) = p.multipliedReportingOverflow(by: f)
            product = overflow ? nil : v
        }
        var total = product
        for extra in [outputs, inputs] {
            guard let t = total else { break }
            let (v, overflow) = t.addingReportingOverflow(extra)
            total = overflow ? nil : v
        }
        self.total = total
        let terms = factors.map { "\($0.0) \($0.1)" }.joined(separator: " × ")
        let productText = product.map(String.init) ?? "more than Int.max"
        arithmetic = "\(layer): \(terms) = \(productText) terms visited + \(outputs) outputs + \(inputs) input elements = \(total.map(String.init) ?? "more than Int.max") loop steps per pass"
    }

    init(total: Int?, arithmetic: String) {
        self.total = total
        self.arithmetic = arithmetic
    }

    /// The work of `layer` on an input of shape `shape` (already checked by `outputShape`).
    public static func of(_ layer: any Layer, input shape: [Int], output: [Int]) -> Work {
        if let network = layer as? Network { return of(network, input: shape) }
        let outputs = output.reduce(1, *)
        // Every tensor the layer reads: the data inputs after the first ride in `parameters`.
        let inputs = shape.reduce(1, *) + layer.parameters.reduce(0) { $0 + $1.tensor.count }
        let id = type(of: layer).id
        func axisTaps(_ w: SpatialWindows) -> [(Int, String)] {
            [(w.rows.tapsInsideTotal, "row taps inside the input (Σ over the \(w.rows.outputSize) window rows)"),
             (w.columns.tapsInsideTotal, "column taps inside the input (Σ over the \(w.columns.outputSize) window columns)")]
        }
        switch layer {
        case let conv as Conv2D:
            let w = conv.windows(forInput: shape)
            let (k, cg) = (conv.weight.shape[0], conv.weight.shape[1])
            return Work(layer: id, factors: [(shape[0], "(N)"), (k, "(K)"), (cg, "(C/groups)")] + axisTaps(w), outputs: outputs, inputs: inputs)
        case let pool as MaxPool2D:
            return Work(layer: id, factors: [(shape[0] * shape[1], "planes (N·C)")] + axisTaps(pool.window.windows(forInput: shape)),
                        outputs: outputs, inputs: inputs)
        case let pool as AvgPool2D:
            // Its correctly rounded quotients often need the exact (BigInt) path: about 16
            // times the cost of a term of the other layers (measured), so counted 16 times.
            return Work(layer: id, factors: [(shape[0] * shape[1], "planes (N·C)")] + axisTaps(pool.window.windows(forInput: shape))
                        + [(16, "(the exact path's cost per term)")], outputs: outputs, inputs: inputs)
        case let linear as Linear:
            return Work(layer: id, factors: [(outputs, "outputs (N·M)"), (linear.weight.shape[1], "(D)")], outputs: outputs, inputs: inputs)
        case let maxout as Maxout:
            return Work(layer: id, factors: [(outputs, "outputs (N·M)"), (maxout.pieces, "pieces"), (shape.count > 1 ? shape[1] : 1, "(D)")],
                        outputs: outputs, inputs: inputs)
        case is BatchNorm2D:
            // Exact rational statistics and numerators (BigInt) for every element: counted
            // like avgpool2d's exact path.
            return Work(layer: id, factors: [(shape.reduce(1, *), "input elements"), (16, "(the exact path's cost per element)")],
                        outputs: outputs, inputs: inputs)
        case let lrn as LRN:
            // Each element's window of `size` channels, in exact rationals, forward and in the
            // backward pass's covering windows.
            return Work(layer: id, factors: [(shape.reduce(1, *), "input elements"), (min(lrn.size, shape.count == 4 ? shape[1] : 1), "channels per window (min(size, C))"), (16, "(the exact path's cost per term)")],
                        outputs: outputs, inputs: inputs)
        default:
            // Elementwise layers, softmax over slices, losses over rows: each input element a
            // bounded number of times.
            return Work(layer: id, factors: [(shape.reduce(1, *), "input elements")], outputs: outputs, inputs: inputs)
        }
    }

    /// The budget for element-by-element gradient checks: elements × work of one pass.
    /// Each element check runs the layer a handful of times; past this, a case is checked
    /// along random directions only.
    public static let elementwiseBudget = 1 << 31

    /// True when `elements` element checks of `layer` fit `elementwiseBudget`.
    public static func elementwiseAffordable(_ layer: any Layer, input shape: [Int], elements: Int) -> Bool {
        guard let output = try? layer.outputShape(forInput: shape), let work = of(layer, input: shape, output: output).total else { return false }
        let (total, overflow) = work.multipliedReportingOverflow(by: elements)
        return !overflow && total <= elementwiseBudget
    }
}

extension Work {
    /// A network's work: the sum of its nodes' (each at the shapes the shape pass gives it).
    static func of(_ network: Network, input shape: [Int]) -> Work {
        guard let s = try? network.shapes(forInput: shape) else { return Work(total: nil, arithmetic: "network: shapes do not fit") }
        var total: Int? = 0
        for (k, node) in network.nodes.enumerated() {
            let layer = node.layer(with: s.inputs[k].map { Tensor(shapeOnly: $0) })
            guard let t = total, let w = of(layer, input: s.inputs[k][0], output: s.outputs[k]).total else { total = nil; break }
            let (v, overflow) = t.addingReportingOverflow(w)
            total = overflow ? nil : v
        }
        return Work(total: total, arithmetic: "network: Σ over its \(network.nodes.count) nodes = \(total.map(String.init) ?? "more than Int.max") loop steps per pass")
    }
}
