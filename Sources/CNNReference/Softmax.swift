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

/// A layer that works on the slices of its input along `axis` (negative counts from the end).
protocol AlongAxis: ElementwiseLayer {
    var axis: Int { get }
}

extension AlongAxis {
    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        _ = try checkAxis(axis, s)
        return s
    }

    /// The flat indices of every slice of a tensor of `shape`.
    func slices(_ shape: [Int]) -> [[Int]] {
        AxisSlices(shape: shape, axis: axis < 0 ? axis + shape.count : axis).all
    }
}

func checkAxis(_ axis: Int, _ shape: [Int]) throws(CaseError) -> Int {
    guard !shape.isEmpty else { throw CaseError("inputs.x.shape", "softmax needs rank ≥ 1, found a scalar") }
    guard axis >= -shape.count && axis < shape.count else {
        throw CaseError("config.axis", "expected an axis in -\(shape.count)..<\(shape.count) for shape \(shape), found \(axis)")
    }
    return axis < 0 ? axis + shape.count : axis
}

/// The exponentials of one slice, shifted by its maximum, in double-double.
struct ShiftedExponentials {
    /// x_k − m exactly, e^(x_k − m), and their sum S ≥ 1; nil for a slice that is
    /// NaN, holds +∞, or is all −∞ (its softmax is NaN, as PyTorch's).
    let shifted: [DoubleDouble], exponentials: [DoubleDouble], total: DoubleDouble

    init?(_ values: [Double]) {
        guard !values.contains(where: \.isNaN), let m = values.max(), m.isFinite else { return nil }
        shifted = values.map { DoubleDouble.difference($0, m) }
        exponentials = shifted.map(DoubleDouble.exp)
        var sum = DoubleDoubleSum()
        for e in exponentials { sum.add(e) }
        total = sum.total
    }

    func probability(_ k: Int) -> DoubleDouble { exponentials[k] / total }
}

/// Softmax along `axis`: y_k = e^(x_k − m) / Σ_j e^(x_j − m) with m the slice
/// maximum (so no overflow for logits near ±1000; −∞ entries give 0; a slice
/// that is all −∞ or holds +∞ gives NaN, as PyTorch). Backward: dx_k = y_k·(dy_k −
/// Σ_j dy_j·y_j). Every value is certified correctly rounded (`Certified`): a uniform
/// upstream gives exactly 0. The gradient checker's forward passes use double-double.
public struct Softmax: AlongAxis {
    public static let id = "softmax"
    public let axis: Int
    public var parameters: [NamedTensor] = []
    public init(axis: Int) { self.axis = axis }

    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        guard certifies(A.self) else { return Tensor(shape: x.shape, scalars: forwardExtended(x).map(\.value)) }
        var y = x.scalars
        for slice in slices(x.shape) {
            let s = CertifiedSlice(slice.map { x[$0] })
            for (k, i) in slice.enumerated() { y[i] = s?.probability(k) ?? .nan }
        }
        return Tensor(shape: x.shape, scalars: y)
    }

    public func forwardExtended(_ x: Tensor) -> [DoubleDouble] {
        var y = x.scalars.map { DoubleDouble($0) }
        for slice in slices(x.shape) {
            let e = ShiftedExponentials(slice.map { x[$0] })
            for (k, i) in slice.enumerated() { y[i] = e?.probability(k) ?? DoubleDouble(.nan) }
        }
        return y
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        var dx = x.scalars
        for slice in slices(x.shape) {
            guard let s = CertifiedSlice(slice.map { x[$0] }) else {
                for i in slice { dx[i] = .nan }
                continue
            }
            let g = slice.map { dy[$0] }
            let d = g.allSatisfy(\.isFinite) ? s.softmaxGradient(g) : s.softmaxGradient(nonFinite: g)
            for (k, i) in slice.enumerated() { dx[i] = d[k] }
        }
        return Gradients(input: Tensor(shape: x.shape, scalars: dx))
    }
}

/// Log-softmax along `axis`: y_k = (x_k − m) − log Σ_j e^(x_j − m). Backward:
/// dx_k = dy_k − e^(y_k)·Σ_j dy_j. Every value is certified correctly rounded (log S
/// as log1p of the terms beside the maximum, so log S near 1e-300 keeps every digit;
/// Σ dy = 0 exactly gives dx = dy). The gradient checker's forward passes use double-double.
public struct LogSoftmax: AlongAxis {
    public static let id = "log_softmax"
    public let axis: Int
    public var parameters: [NamedTensor] = []
    public init(axis: Int) { self.axis = axis }

    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        guard certifies(A.self) else { return Tensor(shape: x.shape, scalars: forwardExtended(x).map(\.value)) }
        var y = x.scalars
        for slice in slices(x.shape) {
            let s = CertifiedSlice(slice.map { x[$0] })
            for (k, i) in slice.enumerated() { y[i] = s?.logProbability(k) ?? .nan }
        }
        return Tensor(shape: x.shape, scalars: y)
    }

    public func forwardExtended(_ x: Tensor) -> [DoubleDouble] {
        var y = x.scalars.map { DoubleDouble($0) }
        for slice in slices(x.shape) {
            let e = ShiftedExponentials(slice.map { x[$0] })
            let logTotal = e.map { DoubleDouble.log($0.total) }
            for (k, i) in slice.enumerated() { y[i] = e.map { $0.shifted[k] - logTotal! } ?? DoubleDouble(.nan) }
        }
        return y
    }

    /// |y| + 1: log S (S ≥ 1) is within about 2⁻⁹⁴ absolute, not relative, near S = 1.
    public func extendedErrorScale(_ x: Tensor, _ y: [DoubleDouble]) -> [Double] { y.map { $0.hi.magnitude + 1 } }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        var dx = x.scalars
        for slice in slices(x.shape) {
            guard let s = CertifiedSlice(slice.map { x[$0] }) else {
                for i in slice { dx[i] = .nan }
                continue
            }
            let g = slice.map { dy[$0] }
            let d = g.allSatisfy(\.isFinite) ? s.logSoftmaxGradient(g) : s.logSoftmaxGradient(nonFinite: g)
            for (k, i) in slice.enumerated() { dx[i] = d[k] }
        }
        return Gradients(input: Tensor(shape: x.shape, scalars: dx))
    }
}
