/// `adaptive_avgpool2d`: average pooling to a fixed output size [oh, ow] (PyTorch's
/// `F.adaptive_avg_pool2d`). Output row i averages input rows ⌊i·H/oh⌋ ..< ⌈(i+1)·H/oh⌉,
/// columns likewise; windows overlap when H is not a multiple of oh, and [1, 1] is
/// global average pooling (ONNX's `GlobalAveragePool`). Each output is the exact
/// window sum divided by the window's size, rounded once, as `avgpool2d`; each input
/// gradient is Σ dy/size over the windows that cover the cell, rounded once.
public struct AdaptiveAvgPool2D: SumOfProducts {
    public static let id = "adaptive_avgpool2d"
    public let outputSize: [Int]
    public var parameters: [NamedTensor] = []
    public init(outputSize: [Int]) { self.outputSize = outputSize }

    public var configuration: [(String, JSON)] { [("output_size", ints(outputSize))] }

    /// The windows of one axis of length `input` into `output` cells.
    public static func windows(input: Int, output: Int) -> [Range<Int>] {
        (0..<output).map { i in (i * input / output)..<(((i + 1) * input + output - 1) / output) }
    }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        try requireRank(s, 4, "inputs.x.shape", "[N, C, H, W]")
        return [s[0], s[1], outputSize[0], outputSize[1]]
    }

    public func notes(forInput s: [Int]) -> [String] {
        guard s.count == 4 else { return [] }
        var out: [String] = []
        for (axis, (n, o)) in [("rows", (s[2], outputSize[0])), ("columns", (s[3], outputSize[1]))] where n % o != 0 {
            let ws = Self.windows(input: n, output: o).map { "\($0.lowerBound)..<\($0.upperBound)" }
            out.append("\(Self.id): \(axis): \(n) into \(o) is not a whole \(n)/\(o); windows ⌊i·\(n)/\(o)⌋..<⌈(i+1)·\(n)/\(o)⌉ = \(ws.joined(separator: ", ")) (they overlap or differ in size)")
        }
        return out
    }

    @_specialize(where A == CorrectlyRounded)
    @_specialize(where A == CompensatedSum)
    @_specialize(where A == PlainSum)
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        let s = x.shape, (h, w) = (s[2], s[3])
        let rows = Self.windows(input: h, output: outputSize[0]), cols = Self.windows(input: w, output: outputSize[1])
        var y: [Double] = []
        y.reserveCapacity(s[0] * s[1] * rows.count * cols.count)
        let xs = x.scalars
        for plane in 0..<(s[0] * s[1]) {
            for r in rows {
                for c in cols {
                    y.append(A.sum(dividedBy: Double(r.count * c.count)) { acc in
                        for i in r { for j in c { acc.add(xs[(plane * h + i) * w + j]) } }
                    })
                }
            }
        }
        return Tensor(shape: [s[0], s[1], rows.count, cols.count], scalars: y)
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        let s = x.shape, (h, w) = (s[2], s[3]), (oh, ow) = (outputSize[0], outputSize[1])
        let rows = Self.windows(input: h, output: oh), cols = Self.windows(input: w, output: ow)
        func covering(_ ws: [Range<Int>], _ n: Int) -> [[Int]] { (0..<n).map { i in ws.indices.filter { ws[$0].contains(i) } } }
        let rowsOf = covering(rows, h), colsOf = covering(cols, w)
        var dx = [Double](repeating: 0, count: x.count)
        for plane in 0..<(s[0] * s[1]) {
            for i in 0..<h {
                for j in 0..<w {
                    var terms: [(Double, Int)] = []
                    for a in rowsOf[i] { for b in colsOf[j] { terms.append((dy[(plane * oh + a) * ow + b], rows[a].count * cols[b].count)) } }
                    dx[(plane * h + i) * w + j] = dividedSum(terms)
                }
            }
        }
        return Gradients(input: Tensor(shape: s, scalars: dx))
    }
}
