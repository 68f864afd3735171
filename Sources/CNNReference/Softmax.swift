import Foundation

/// The slices of a tensor along one axis: `outer` slices of `length` elements
/// `inner` apart.
public struct AxisSlices {
    public let outer: Int, length: Int, inner: Int
    public init(shape: [Int], axis: Int) {
        outer = shape[..<axis].reduce(1, *)
        length = shape[axis]
        inner = shape[(axis + 1)...].reduce(1, *)
    }
    /// The flat indices of every slice.
    public var all: [[Int]] {
        var slices: [[Int]] = []
        for o in 0..<outer {
            for i in 0..<inner { slices.append((0..<length).map { (o * length + $0) * inner + i }) }
        }
        return slices
    }
}

func checkAxis(_ axis: Int, _ shape: [Int]) throws(CaseError) -> Int {
    guard !shape.isEmpty else { throw CaseError("inputs.x.shape", "softmax needs rank ≥ 1, found a scalar") }
    guard axis >= -shape.count && axis < shape.count else {
        throw CaseError("config.axis", "expected an axis in -\(shape.count)..<\(shape.count) for shape \(shape), found \(axis)")
    }
    return axis < 0 ? axis + shape.count : axis
}

/// Softmax along `axis`: y_k = e^(x_k − m) / Σ_j e^(x_j − m) with m the slice
/// maximum (so no overflow for logits near ±1000; −∞ entries give 0; a slice
/// that is all −∞ or holds +∞ gives NaN, as PyTorch). The denominator is a
/// correctly rounded sum. Backward: dx_k = y_k·(dy_k − Σ_j dy_j·y_j).
public struct Softmax: ElementwiseLayer {
    public static let id = "softmax"
    public let axis: Int
    public var parameters: [NamedTensor] = []
    public init(axis: Int) { self.axis = axis }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        _ = try checkAxis(axis, s)
        return s
    }

    func slices(_ shape: [Int]) -> [[Int]] {
        AxisSlices(shape: shape, axis: axis < 0 ? axis + shape.count : axis).all
    }

    @_specialize(where A == CorrectlyRounded)
    @_specialize(where A == CompensatedSum)
    @_specialize(where A == PlainSum)
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        var y = x.scalars
        for slice in slices(x.shape) {
            let values = slice.map { x[$0] }
            let m = values.contains(where: \.isNaN) ? .nan : values.max() ?? 0
            let e = values.map { exp($0 - m) }
            let total = A.sum { acc in for v in e { acc.add(v) } }
            for (k, i) in slice.enumerated() { y[i] = e[k] / total }
        }
        return Tensor(shape: x.shape, scalars: y)
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        let y = forward(x)
        var dx = x.scalars
        for slice in slices(x.shape) {
            let dot = CorrectlyRounded.sum { acc in for i in slice { acc.add(dy[i], times: y[i]) } }
            for i in slice { dx[i] = y[i] * (dy[i] - dot) }
        }
        return Gradients(input: Tensor(shape: x.shape, scalars: dx))
    }
}

/// Log-softmax along `axis`: y_k = (x_k − m) − log Σ_j e^(x_j − m), with the
/// sum written as 1 + Σ_{j≠argmax} and taken through `log1p`. Backward:
/// dx_k = dy_k − e^(y_k)·Σ_j dy_j.
public struct LogSoftmax: ElementwiseLayer {
    public static let id = "log_softmax"
    public let axis: Int
    public var parameters: [NamedTensor] = []
    public init(axis: Int) { self.axis = axis }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        _ = try checkAxis(axis, s)
        return s
    }

    @_specialize(where A == CorrectlyRounded)
    @_specialize(where A == CompensatedSum)
    @_specialize(where A == PlainSum)
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        var y = x.scalars
        for slice in AxisSlices(shape: x.shape, axis: axis < 0 ? axis + x.rank : axis).all {
            let logSum = logSumExpOffset(slice.map { x[$0] }, A.self)
            for i in slice { y[i] = (x[i] - logSum.max) - logSum.log }
        }
        return Tensor(shape: x.shape, scalars: y)
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        let y = forward(x)
        var dx = x.scalars
        for slice in AxisSlices(shape: x.shape, axis: axis < 0 ? axis + x.rank : axis).all {
            let total = CorrectlyRounded.sum { acc in for i in slice { acc.add(dy[i]) } }
            for i in slice { dx[i] = dy[i] - exp(y[i]) * total }
        }
        return Gradients(input: Tensor(shape: x.shape, scalars: dx))
    }
}

/// log Σ e^(v_j) as `max + log`, with `log` = log1p(Σ_{j ≠ first argmax} e^(v_j − max)).
func logSumExpOffset<A: Accumulator>(_ v: [Double], _: A.Type) -> (max: Double, log: Double) {
    if v.contains(where: \.isNaN) { return (.nan, .nan) }
    guard let m = v.max() else { return (0, 0) }
    guard m.isFinite else { return (m, .nan) }   // +∞, or every entry −∞
    let top = v.firstIndex(of: m)!
    let rest = A.sum { acc in for (j, value) in v.enumerated() where j != top { acc.add(exp(value - m)) } }
    return (m, log1p(rest))
}
