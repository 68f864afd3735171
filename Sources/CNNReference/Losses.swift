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
/// −Σ_{j≠y} p_j to avoid cancellation, scaled by the upstream scalar. Everything
/// is computed in double-double and rounded once.
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
        var total = DoubleDoubleSum()
        for (i, row) in rows(x).enumerated() {
            guard let row else { return Tensor(scalar: .nan) }
            total.add(DoubleDouble.log(row.total) - row.shifted[labels[i]])
        }
        let n = DoubleDouble(Double(x.shape[0]))
        return Tensor(scalar: (reduction == .mean ? total.total / n : total.total).value)
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
/// all active terms. Gradient: +1 for each active j, −(number of active terms)
/// for y_i, divided by N for the mean, scaled by the upstream scalar.
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

    /// The sum of the terms `piece` marks active (whatever their sign).
    public func forward(_ x: Tensor, piece active: [Int], accumulator A: (some Accumulator).Type) -> Tensor {
        let (n, c) = (x.shape[0], x.shape[1])
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
        for i in 0..<n {
            var count = 0
            for j in 0..<c where active[i * c + j] == 1 {
                dx[i * c + j] = 1 / scale * dy[0]
                count += 1
            }
            dx[i * c + labels[i]] = -Double(count) / scale * dy[0]
        }
        return Gradients(input: Tensor(shape: x.shape, scalars: dx))
    }
}
