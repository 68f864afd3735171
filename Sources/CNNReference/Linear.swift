/// Fully connected layer: y = x·Wᵀ + b.
///
/// x [N, D], weight [M, D] (PyTorch's `Linear` layout, out × in), bias [M].
/// dx = dy·W, dW = dyᵀ·x, db = Σₙ dy; every element one correctly rounded sum.
public struct Linear: SumOfProducts {
    public static let id = "linear"
    public var parameters: [NamedTensor]

    public init(weight: Tensor, bias: Tensor) {
        parameters = [NamedTensor("weight", weight), NamedTensor("bias", bias)]
    }
    public var weight: Tensor { parameters[0].tensor }
    public var bias: Tensor { parameters[1].tensor }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        try requireRank(s, 2, "inputs.x.shape", "[N, D]")
        try requireRank(weight.shape, 2, "inputs.weight.shape", "[M, D]")
        guard weight.shape[1] == s[1] else {
            throw CaseError("inputs.weight.shape", "expected [M, D] with D = \(s[1]) (inputs.x.shape[1]), found \(weight.shape)")
        }
        guard bias.shape == [weight.shape[0]] else {
            throw CaseError("inputs.bias.shape", "expected [M] = [\(weight.shape[0])], found \(bias.shape)")
        }
        return [s[0], weight.shape[0]]
    }

    /// N·M outputs × D products each.
    public func multiplyAdds(forInput s: [Int]) -> Int? { checkedProduct([s[0], weight.shape[0], weight.shape[1]]) }

    @_specialize(where A == CorrectlyRounded)
    @_specialize(where A == CompensatedSum)
    @_specialize(where A == PlainSum)
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        let (n, d, m) = (x.shape[0], x.shape[1], weight.shape[0])
        let xs = x.scalars, ws = weight.scalars, bs = bias.scalars
        var y = [Double](repeating: 0, count: n * m)
        for b in 0..<n {
            for o in 0..<m {
                y[b * m + o] = A.sum { acc in
                    for i in 0..<d { acc.add(xs[b * d + i], times: ws[o * d + i]) }
                    acc.add(bs[o])
                }
            }
        }
        return Tensor(shape: [n, m], scalars: y)
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        let (n, d, m) = (x.shape[0], x.shape[1], weight.shape[0])
        let xs = x.scalars, ws = weight.scalars, g = dy.scalars
        typealias A = CorrectlyRounded
        var dx = [Double](repeating: 0, count: n * d)
        for b in 0..<n {
            for i in 0..<d {
                dx[b * d + i] = A.sum { acc in for o in 0..<m { acc.add(g[b * m + o], times: ws[o * d + i]) } }
            }
        }
        var dw = [Double](repeating: 0, count: m * d)
        for o in 0..<m {
            for i in 0..<d {
                dw[o * d + i] = A.sum { acc in for b in 0..<n { acc.add(g[b * m + o], times: xs[b * d + i]) } }
            }
        }
        let db = (0..<m).map { o in A.sum { acc in for b in 0..<n { acc.add(g[b * m + o]) } } }
        return Gradients(input: Tensor(shape: x.shape, scalars: dx),
                         parameters: [Tensor(shape: weight.shape, scalars: dw), Tensor(shape: [m], scalars: db)])
    }
}

/// Maxout: y[n, m] = max_j (x·W_jᵀ + b_j)[n, m] over k pieces.
///
/// x [N, D], weight [k, M, D], bias [k, M], `pieces` = k. Each piece value is a
/// correctly rounded sum; the winner is the **lowest-numbered** piece among
/// equal maxima (compared after rounding), and backward routes the gradient
/// through the winner only.
public struct Maxout: Layer, PiecewiseSmooth {
    public static let id = "maxout"
    public let pieces: Int
    public var parameters: [NamedTensor]

    public init(pieces: Int, weight: Tensor, bias: Tensor) {
        self.pieces = pieces
        parameters = [NamedTensor("weight", weight), NamedTensor("bias", bias)]
    }
    public var weight: Tensor { parameters[0].tensor }
    public var bias: Tensor { parameters[1].tensor }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        try requireRank(s, 2, "inputs.x.shape", "[N, D]")
        try requireRank(weight.shape, 3, "inputs.weight.shape", "[k, M, D]")
        guard weight.shape[0] == pieces, weight.shape[2] == s[1] else {
            throw CaseError("inputs.weight.shape", "expected [k, M, D] with k = \(pieces) (config.pieces) and D = \(s[1]) (inputs.x.shape[1]), found \(weight.shape)")
        }
        guard bias.shape == [pieces, weight.shape[1]] else {
            throw CaseError("inputs.bias.shape", "expected [k, M] = [\(pieces), \(weight.shape[1])], found \(bias.shape)")
        }
        return [s[0], weight.shape[1]]
    }

    /// N·M outputs × k pieces × D products each.
    public func multiplyAdds(forInput s: [Int]) -> Int? { checkedProduct([s[0], weight.shape[1], pieces, weight.shape[2]]) }

    /// Every piece's value, [k][N·M].
    @_specialize(where A == CorrectlyRounded)
    @_specialize(where A == CompensatedSum)
    @_specialize(where A == PlainSum)
    func pieceValues<A: Accumulator>(_ x: Tensor, _: A.Type) -> [[Double]] {
        let (n, d, m) = (x.shape[0], x.shape[1], weight.shape[1])
        let xs = x.scalars, ws = weight.scalars, bs = bias.scalars
        return (0..<pieces).map { j in
            (0..<(n * m)).map { t in
                let (b, o) = (t / m, t % m)
                return A.sum { acc in
                    for i in 0..<d { acc.add(xs[b * d + i], times: ws[(j * m + o) * d + i]) }
                    acc.add(bs[j * m + o])
                }
            }
        }
    }

    func winners(_ z: [[Double]]) -> [Int] {
        (0..<z[0].count).map { t in
            var best = 0
            for j in 1..<pieces where z[j][t] > z[best][t] || (z[j][t].isNaN && !z[best][t].isNaN) { best = j }
            return best
        }
    }

    public func activeSet(_ x: Tensor) -> [Int] { winners(pieceValues(x, CorrectlyRounded.self)) }

    public func forward(_ x: Tensor, piece: [Int], accumulator: (some Accumulator).Type) -> Tensor {
        let z = pieceValues(x, accumulator)
        return Tensor(shape: [x.shape[0], weight.shape[1]], scalars: piece.indices.map { z[piece[$0]][$0] })
    }

    @_specialize(where A == CorrectlyRounded)
    @_specialize(where A == CompensatedSum)
    @_specialize(where A == PlainSum)
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        let z = pieceValues(x, A.self)
        let win = winners(z)
        return Tensor(shape: [x.shape[0], weight.shape[1]], scalars: win.indices.map { z[win[$0]][$0] })
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        let (n, d, m) = (x.shape[0], x.shape[1], weight.shape[1])
        let win = winners(pieceValues(x, CorrectlyRounded.self))
        let xs = x.scalars, ws = weight.scalars, g = dy.scalars
        typealias A = CorrectlyRounded
        var dx = [Double](repeating: 0, count: n * d)
        for b in 0..<n {
            for i in 0..<d {
                dx[b * d + i] = A.sum { acc in
                    for o in 0..<m { acc.add(g[b * m + o], times: ws[(win[b * m + o] * m + o) * d + i]) }
                }
            }
        }
        var dw = [Double](repeating: 0, count: weight.count)
        var db = [Double](repeating: 0, count: bias.count)
        for j in 0..<pieces {
            for o in 0..<m {
                let batch = (0..<n).filter { win[$0 * m + o] == j }
                for i in 0..<d {
                    dw[(j * m + o) * d + i] = A.sum { acc in for b in batch { acc.add(g[b * m + o], times: xs[b * d + i]) } }
                }
                db[j * m + o] = A.sum { acc in for b in batch { acc.add(g[b * m + o]) } }
            }
        }
        return Gradients(input: Tensor(shape: x.shape, scalars: dx),
                         parameters: [Tensor(shape: weight.shape, scalars: dw), Tensor(shape: bias.shape, scalars: db)])
    }
}
