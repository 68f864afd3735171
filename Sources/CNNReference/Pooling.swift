/// The window configuration that max and average pooling share.
///
/// kernel [kh, kw], stride [sh, sw], padding [top, left, bottom, right],
/// dilation [dh, dw], ceil_mode. Output size as in `SlidingWindow`; a window
/// that covers padding only is an error.
public struct PoolWindow: Equatable, Sendable {
    public let kernel: [Int], stride: [Int], padding: [Int], dilation: [Int]
    public let ceilMode: Bool

    public init(kernel: [Int], stride: [Int] = [1, 1], padding: [Int] = [0, 0, 0, 0],
                dilation: [Int] = [1, 1], ceilMode: Bool = false) {
        self.kernel = kernel; self.stride = stride; self.padding = padding
        self.dilation = dilation; self.ceilMode = ceilMode
    }

    public func windows(forInput s: [Int]) -> SpatialWindows {
        SpatialWindows(
            rows: SlidingWindow(input: s[2], kernel: kernel[0], stride: stride[0], padBegin: padding[0],
                                padEnd: padding[2], dilation: dilation[0], ceilMode: ceilMode),
            columns: SlidingWindow(input: s[3], kernel: kernel[1], stride: stride[1], padBegin: padding[1],
                                   padEnd: padding[3], dilation: dilation[1], ceilMode: ceilMode))
    }

    func outputShape(layer: String, forInput s: [Int]) throws(CaseError) -> [Int] {
        try requireRank(s, 4, "inputs.x.shape", "[N, C, H, W]")
        let w = windows(forInput: s)
        try w.check(layer: layer, what: "window", field: "config.kernel")
        try w.checkNoPaddingOnlyWindow(layer: layer, field: "config.padding")
        return [s[0], s[1], w.rows.outputSize, w.columns.outputSize]
    }

    /// Calls `body(outputIndex, inputIndices)` for every window of every plane,
    /// with the flat input indices of its taps that lie inside the input, in
    /// row-major window order. Only those taps are visited: the cost is the taps
    /// inside the input, whatever the kernel and the padding.
    public func forEachWindow(input s: [Int], _ body: (Int, [Int]) -> Void) {
        let w = windows(forInput: s)
        let (h, wd) = (s[2], s[3])
        let (oh, ow) = (w.rows.outputSize, w.columns.outputSize)
        let rowTaps = w.rows.tapRanges, columnTaps = w.columns.tapRanges
        var taps: [Int] = []
        for plane in 0..<(s[0] * s[1]) {
            for i in 0..<oh {
                for j in 0..<ow {
                    taps.removeAll(keepingCapacity: true)
                    for p in rowTaps[i] {
                        let r = w.rows.position(window: i, tap: p)
                        for q in columnTaps[j] {
                            taps.append((plane * h + r) * wd + w.columns.position(window: j, tap: q))
                        }
                    }
                    body((plane * oh + i) * ow + j, taps)
                }
            }
        }
    }

    /// Calls `body(inputIndex, outputIndices)` for every input cell with the flat
    /// indices of the outputs whose windows cover it, in increasing order; the cost is
    /// the number of (window, tap) pairs inside the input plus the cells.
    public func forEachCell(input s: [Int], _ body: (Int, [Int]) -> Void) {
        let w = windows(forInput: s)
        let (h, wd) = (s[2], s[3])
        let (oh, ow) = (w.rows.outputSize, w.columns.outputSize)
        let rowCover = (0..<h).map(w.rows.tapsCovering), columnCover = (0..<wd).map(w.columns.tapsCovering)
        var outs: [Int] = []
        for plane in 0..<(s[0] * s[1]) {
            for r in 0..<h {
                for c in 0..<wd {
                    outs.removeAll(keepingCapacity: true)
                    for p in rowCover[r] {
                        let i = w.rows.window(covering: r, tap: p)
                        for q in columnCover[c] {
                            outs.append((plane * oh + i) * ow + w.columns.window(covering: c, tap: q))
                        }
                    }
                    body((plane * h + r) * wd + c, outs)
                }
            }
        }
    }
}

/// Max pooling over each channel plane.
///
/// Conventions: padded cells never win (they are skipped, not −∞); the maximum
/// is the **first** one in row-major window order (a later equal value does not
/// replace it), and backward routes the whole upstream gradient to it; a NaN in
/// a window wins (the first NaN; PyTorch's CPU kernel and JAX route to the last
/// one, ONNX Runtime ignores NaN). Where windows overlap, an input
/// cell's gradient is the correctly rounded sum of what every window routes to it.
public struct MaxPool2D: Layer, PiecewiseSmooth {
    public static let id = "maxpool2d"
    public let window: PoolWindow
    public var parameters: [NamedTensor] = []

    public init(window: PoolWindow) { self.window = window }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        try window.outputShape(layer: Self.id, forInput: s)
    }

    public func notes(forInput s: [Int]) -> [String] {
        window.windows(forInput: s).tilingNote(layer: Self.id, what: "window")
    }

    /// The flat input index that wins each output's window.
    public func argmax(_ x: Tensor) -> [Int] {
        let shape = (try? outputShape(forInput: x.shape)) ?? []
        var winners = [Int](repeating: 0, count: shape.reduce(1, *))
        window.forEachWindow(input: x.shape) { out, taps in
            var best = taps[0]
            for t in taps.dropFirst() where !x[best].isNaN && (x[t] > x[best] || x[t].isNaN) { best = t }
            winners[out] = best
        }
        return winners
    }

    public func activeSet(_ x: Tensor) -> [Int] { argmax(x) }

    public func forward(_ x: Tensor, piece: [Int], accumulator: (some Accumulator).Type) -> Tensor {
        Tensor(shape: (try? outputShape(forInput: x.shape)) ?? [], scalars: piece.map { x[$0] })
    }

    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        let shape = (try? outputShape(forInput: x.shape)) ?? []
        return Tensor(shape: shape, scalars: argmax(x).map { x[$0] })
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        // Group the outputs by the input cell they route to, then sum each group once.
        let winners = argmax(x)
        var routed = [[Int]](repeating: [], count: x.count)
        for (out, cell) in winners.enumerated() { routed[cell].append(out) }
        let dx = routed.map { outs in CorrectlyRounded.sum { acc in for o in outs { acc.add(dy[o]) } } }
        return Gradients(input: Tensor(shape: x.shape, scalars: dx))
    }
}

/// Average pooling over each channel plane.
///
/// The divisor of a window: with `count_include_pad` false, the number of its
/// taps inside the input; with `count_include_pad` true, the number of its taps
/// inside the padded input (the explicit padding counts, the extra cells that
/// ceil mode adds beyond it never do: PyTorch's rule). Each output is the
/// correctly rounded quotient of the exact window sum by the divisor; each
/// input gradient is the correctly rounded Σ dy/divisor over the windows that
/// cover it.
public struct AvgPool2D: SumOfProducts {
    public static let id = "avgpool2d"
    public let window: PoolWindow
    public let countIncludePad: Bool
    public var parameters: [NamedTensor] = []

    public init(window: PoolWindow, countIncludePad: Bool) {
        self.window = window
        self.countIncludePad = countIncludePad
    }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        try window.outputShape(layer: Self.id, forInput: s)
    }

    public func notes(forInput s: [Int]) -> [String] {
        window.windows(forInput: s).tilingNote(layer: Self.id, what: "window")
    }

    /// The divisor of every window of one plane, in output order.
    public func divisors(forInput s: [Int]) -> [Int] {
        let w = window.windows(forInput: s)
        func counts(_ axis: SlidingWindow) -> [Int] {
            let low = countIncludePad ? -axis.padBegin : 0
            let high = countIncludePad ? axis.input + axis.padEnd : axis.input
            return (0..<axis.outputSize).map { axis.taps(window: $0, within: low, high).count }
        }
        let rows = counts(w.rows), columns = counts(w.columns)
        var d: [Int] = []
        d.reserveCapacity(rows.count * columns.count)
        for r in rows {
            for c in columns { d.append(r * c) }
        }
        return d
    }

    @_specialize(where A == CorrectlyRounded)
    @_specialize(where A == CompensatedSum)
    @_specialize(where A == PlainSum)
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        let shape = (try? outputShape(forInput: x.shape)) ?? []
        let divisors = divisors(forInput: x.shape)
        var y = [Double](repeating: 0, count: shape.reduce(1, *))
        let xs = x.scalars
        window.forEachWindow(input: x.shape) { out, taps in
            y[out] = A.sum(dividedBy: Double(divisors[out % divisors.count])) { acc in
                for t in taps { acc.add(xs[t]) }
            }
        }
        return Tensor(shape: shape, scalars: y)
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        // Σ dy_w / d_w = (Σ dy_w · (L/d_w)) / L with L the lcm of the divisors of
        // the windows covering the cell: every factor L/d_w is an integer, so this
        // is one correctly rounded quotient of an exact sum.
        let divisors = divisors(forInput: x.shape)
        var dx = [Double](repeating: 0, count: x.count)
        window.forEachCell(input: x.shape) { cell, outs in
            dx[cell] = dividedSum(outs.map { (dy[$0], divisors[$0 % divisors.count]) })
        }
        return Gradients(input: Tensor(shape: x.shape, scalars: dx))
    }
}

/// Σ gᵢ/dᵢ for positive integers dᵢ, rounded once (average pooling's gradient at a cell).
func dividedSum(_ terms: [(Double, Int)]) -> Double {
    guard let l = terms.reduce(Optional(1), { partial, t in partial.flatMap { lcm($0, t.1) } }) else {
        // Divisors whose lcm exceeds 2⁵³ (huge windows): Σ dy/d in double-double, rounded once.
        var total = DoubleDoubleSum()
        for (g, d) in terms { total.add(DoubleDouble(g) / DoubleDouble(Double(d))) }
        return total.total.value
    }
    return CorrectlyRounded.sum(dividedBy: Double(l)) { acc in
        for (g, d) in terms { acc.add(g, times: Double(l / d)) }
    }
}

/// lcm(a, b), or nil when it exceeds 2⁵³ (beyond exact integers in a Double).
func lcm(_ a: Int, _ b: Int) -> Int? {
    let (l, overflow) = (a / gcd(a, b)).multipliedReportingOverflow(by: b)
    return overflow || l > 1 << 53 ? nil : l
}
