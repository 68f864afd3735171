import Foundation

/// How a loss combines the per-sample losses: their mean (÷N) or their sum.
public enum Reduction: String, Sendable, CaseIterable {
    case mean, sum
}

/// Shared checks for losses on scores [N, C] with integer labels [N].
func checkScoresAndLabels(_ s: [Int], _ labels: [Int]) throws(CaseError) {
    try requireRank(s, 2, "inputs.scores.shape", "[N, C]")
    guard labels.count == s[0] else {
        throw CaseError("labels", "expected \(s[0]) labels (one per row of scores \(s)), found \(labels.count)")
    }
    for (i, label) in labels.enumerated() where !(0..<s[1]).contains(label) {
        throw CaseError("labels[\(i)]", "expected a class in 0..<\(s[1]) (C = \(s[1])), found \(label)")
    }
}

/// Softmax cross-entropy on logits: L_i = log Σ_j e^(s_ij) − s_{i,y_i}, loss =
/// Σ_i L_i (sum) or (Σ_i L_i)/N (mean), unweighted, no label smoothing.
///
/// L_i = log Σ_j e^(s_j − m) − (s_y − m) with m the row maximum, the gradient
/// (p_ij − [j = y_i])/N (mean) or without /N (sum), p_y − 1 written as
/// −Σ_{j≠y} p_j to avoid cancellation, times the upstream scalar. Every value is
/// certified correctly rounded (log S as log1p of the terms beside the maximum); the
/// gradient checker's forward passes use double-double.
public struct SoftmaxCrossEntropy: Layer {
    public static let id = "softmax_cross_entropy"
    public let labels: [Int]
    public let reduction: Reduction
    public var parameters: [NamedTensor] = []
    public var inputName: String { "scores" }
    public var outputName: String { "loss" }

    public init(labels: [Int], reduction: Reduction) {
        self.labels = labels
        self.reduction = reduction
    }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        try checkScoresAndLabels(s, labels)
        return []
    }

    func rows(_ x: Tensor) -> [ShiftedExponentials?] {
        let (n, c) = (x.shape[0], x.shape[1])
        return (0..<n).map { i in ShiftedExponentials(Array(x.scalars[i * c..<(i + 1) * c])) }
    }

    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        if certifies(A.self) {
            let (n, c) = (x.shape[0], x.shape[1])
            var slices: [CertifiedSlice] = []
            for i in 0..<n {
                guard let s = CertifiedSlice(Array(x.scalars[i * c..<(i + 1) * c])) else { return Tensor(scalar: .nan) }
                slices.append(s)
            }
            return Tensor(scalar: CertifiedLosses.crossEntropy(slices, labels: labels,
                                                               divisor: reduction == .mean ? Double(n) : 1))
        }
        return Tensor(scalar: forwardExtended(x)[0].value)
    }

    public func forwardExtended(_ x: Tensor) -> [DoubleDouble] {
        var total = DoubleDoubleSum()
        for (i, row) in rows(x).enumerated() {
            guard let row else { return [DoubleDouble(.nan)] }
            total.add(DoubleDouble.log(row.total) - row.shifted[labels[i]])
        }
        let n = DoubleDouble(Double(x.shape[0]))
        return [reduction == .mean ? total.total / n : total.total]
    }

    /// |y| + N (÷ N for the mean): each row's log S_i is within about 2⁻⁹⁴ absolute near S_i = 1.
    public func extendedErrorScale(_ x: Tensor, _ y: [DoubleDouble]) -> [Double] {
        [y[0].hi.magnitude + (reduction == .mean ? 1 : Double(x.shape[0]))]
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        let c = x.shape[1]
        let scale = DoubleDouble(dy[0]) / DoubleDouble(reduction == .mean ? Double(x.shape[0]) : 1)
        var dx = x.scalars
        for (i, row) in rows(x).enumerated() {
            guard let row else {
                for j in 0..<c { dx[i * c + j] = .nan }
                continue
            }
            do {
                let g = CertifiedLosses.crossEntropyGradient(CertifiedSlice(Array(x.scalars[i * c..<(i + 1) * c]))!,
                                                             label: labels[i], upstream: dy[0],
                                                             divisor: reduction == .mean ? Double(x.shape[0]) : 1)
                for j in 0..<c { dx[i * c + j] = g[j] }
                continue
            }
            var others = DoubleDoubleSum()
            for (j, e) in row.exponentials.enumerated() where j != labels[i] { others.add(e) }
            for j in 0..<c {
                let g = j == labels[i] ? -(others.total / row.total) : row.probability(j)
                dx[i * c + j] = (g * scale).value
            }
        }
        return Gradients(input: Tensor(shape: x.shape, scalars: dx))
    }
}

/// Multiclass SVM hinge loss (Weston–Watkins, the lecture's and cs231n's):
/// L_i = Σ_{j≠y_i} max(0, s_j − s_{y_i} + margin); loss = Σ_i L_i (sum) or
/// (Σ_i L_i)/N (mean). No division by C (PyTorch's `MultiMarginLoss` divides
/// by C), no power, no weights.
///
/// A term is active when s_j − s_y + margin > 0 exactly (judged on the exact
/// value, not a rounded one); at exactly 0 it contributes nothing and its
/// gradient is 0 (PyTorch's choice). The loss is one correctly rounded sum of
/// all active terms; a term that is NaN (a NaN score, or ∞ − ∞) makes the loss NaN
/// and the gradient of its two scores NaN. Gradient: dy·k/N correctly rounded (one
/// rounding), k = +1 for each active j, −(number of active terms) for y_i (−0 when
/// none), +0 for an inactive j; a zero follows IEEE's sign rule for the product.
public struct MulticlassHinge: Layer, PiecewiseSmooth {
    public static let id = "multiclass_hinge"
    public let labels: [Int]
    public let margin: Double
    public let reduction: Reduction
    public var parameters: [NamedTensor] = []
    public var inputName: String { "scores" }
    public var outputName: String { "loss" }

    public init(labels: [Int], margin: Double, reduction: Reduction) {
        self.labels = labels
        self.margin = margin
        self.reduction = reduction
    }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        try checkScoresAndLabels(s, labels)
        return []
    }

    /// 1 where the term (i, j) is active, row-major over [N, C]; 0 on the label.
    public func activeSet(_ x: Tensor) -> [Int] {
        let (n, c) = (x.shape[0], x.shape[1])
        return (0..<(n * c)).map { t in
            let (i, j) = (t / c, t % c)
            guard j != labels[i] else { return 0 }
            let value = CorrectlyRounded.sum { acc in
                acc.add(x[t]); acc.add(-x[i * c + labels[i]]); acc.add(margin)
            }
            return value > 0 ? 1 : 0
        }
    }

    @_specialize(where A == CorrectlyRounded)
    @_specialize(where A == CompensatedSum)
    @_specialize(where A == PlainSum)
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        forward(x, piece: activeSet(x), accumulator: A.self)
    }

    /// Whether the term (i, j) is NaN (a NaN score, or ∞ − ∞).
    func termIsNaN(_ x: Tensor, _ i: Int, _ j: Int, _ c: Int) -> Bool {
        let (a, b) = (x[i * c + j], x[i * c + labels[i]])
        return a.isNaN || b.isNaN || (a.isInfinite && b.isInfinite && a.sign == b.sign) || (margin.isNaN)
            || (margin.isInfinite && (a - b).isInfinite && (a - b).sign != margin.sign)
    }

    /// The sum of the terms `piece` marks active (whatever their sign); NaN when a term is NaN.
    public func forward(_ x: Tensor, piece active: [Int], accumulator A: (some Accumulator).Type) -> Tensor {
        let (n, c) = (x.shape[0], x.shape[1])
        for i in 0..<n {
            for j in 0..<c where j != labels[i] && termIsNaN(x, i, j, c) { return Tensor(scalar: .nan) }
        }
        let total = A.sum(dividedBy: reduction == .mean ? Double(n) : 1) { acc in
            for t in 0..<(n * c) where active[t] == 1 {
                let i = t / c
                acc.add(x[t]); acc.add(-x[i * c + labels[i]]); acc.add(margin)
            }
        }
        return Tensor(scalar: total)
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        let (n, c) = (x.shape[0], x.shape[1])
        let scale = reduction == .mean ? Double(n) : 1
        let active = activeSet(x)
        var dx = [Double](repeating: 0, count: n * c)
        let g = dy[0]
        /// dy·k/N rounded once.
        func value(_ k: Double) -> Double {
            if k == 0 || g == 0 || !g.isFinite { return k * g / scale }
            return CorrectlyRounded.sum(dividedBy: scale) { $0.add(g, times: k) }
        }
        for i in 0..<n {
            var count = 0.0, nan = false
            for j in 0..<c where j != labels[i] {
                if termIsNaN(x, i, j, c) {
                    dx[i * c + j] = .nan
                    nan = true
                } else if active[i * c + j] == 1 {
                    dx[i * c + j] = value(1)
                    count += 1
                } else {
                    dx[i * c + j] = value(0)
                }
            }
            dx[i * c + labels[i]] = nan ? .nan : value(-count)
        }
        return Gradients(input: Tensor(shape: x.shape, scalars: dx))
    }
}
