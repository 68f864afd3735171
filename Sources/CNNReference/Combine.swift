/// Layers that combine or reshape data without arithmetic beyond one sum:
/// `add` (residual connections), `concat` (GoogLeNet's and DenseNet's channel
/// concatenation) and `flatten`. Their data inputs after the first ride in
/// `parameters` (see `Layer.dataInputNames`).

/// `add`: y = x0 + x1 + … elementwise, all inputs of one shape, the exact sum
/// rounded once. A sum of zeros that are all −0 is −0 (IEEE 754, and what a
/// float loop gives); any other exactly-zero sum is +0. dL/dxₖ = dL/dy for every k.
public struct Add: Layer {
    public static let id = "add"
    public var parameters: [NamedTensor]
    public var inputName: String { "x0" }
    public var dataInputNames: [String] { ["x0"] + parameters.map(\.name) }

    /// `others` are x1, x2, … in order.
    public init(others: [Tensor]) {
        parameters = others.enumerated().map { NamedTensor("x\($0.offset + 1)", $0.element) }
    }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        for p in parameters where p.tensor.shape != s {
            throw CaseError("inputs.\(p.name).shape", "expected \(s) (the shape of x0: add sums elementwise), found \(p.tensor.shape)")
        }
        return s
    }

    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        var y = x
        for i in 0..<x.count {
            let s = A.sum { acc in
                acc.add(x[i])
                for p in parameters { acc.add(p.tensor[i]) }
            }
            let allNegativeZero = x[i] == 0 && x[i].sign == .minus
                && parameters.allSatisfy { $0.tensor[i] == 0 && $0.tensor[i].sign == .minus }
            y[i] = s == 0 && allNegativeZero ? -0.0 : s
        }
        return y
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        Gradients(input: dy, parameters: parameters.map { _ in dy })
    }
}

/// `concat`: the inputs joined along `axis` (0-based, NCHW: 1 is channels), all of
/// one rank and equal on every other axis; an exact copy. dL/dxₖ is the slab of
/// dL/dy that xₖ filled.
public struct Concat: Layer {
    public static let id = "concat"
    public let axis: Int
    public var parameters: [NamedTensor]
    public var inputName: String { "x0" }
    public var dataInputNames: [String] { ["x0"] + parameters.map(\.name) }

    public init(axis: Int, others: [Tensor]) {
        self.axis = axis
        parameters = others.enumerated().map { NamedTensor("x\($0.offset + 1)", $0.element) }
    }

    public var configuration: [(String, JSON)] { [("axis", .int(axis))] }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        guard (0..<s.count).contains(axis) else {
            throw CaseError("config.axis", "expected an axis in 0..<\(s.count) (the rank of x0, shape \(s)), found \(axis)")
        }
        var out = s
        for p in parameters {
            let t = p.tensor.shape
            let pattern = s.enumerated().map { $0.offset == axis ? "*" : String($0.element) }.joined(separator: ", ")
            guard t.count == s.count, t.indices.allSatisfy({ $0 == axis || t[$0] == s[$0] }) else {
                throw CaseError("inputs.\(p.name).shape", "expected [\(pattern)] (x0's shape \(s) except on axis \(axis)), found \(t)")
            }
            out[axis] += t[axis]
        }
        return out
    }

    /// The inputs' extents along the axis, in order.
    func extents(_ s: [Int]) -> [Int] { [s[axis]] + parameters.map { $0.tensor.shape[axis] } }

    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        let shape = (try? outputShape(forInput: x.shape)) ?? x.shape
        let parts = [x] + parameters.map(\.tensor)
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
        var y: [Double] = []
        y.reserveCapacity(shape.reduce(1, *))
        for o in 0..<outer {
            for (part, e) in zip(parts, extents(x.shape)) {
                y += part.scalars[(o * e * inner)..<((o + 1) * e * inner)]
            }
        }
        return Tensor(shape: shape, scalars: y)
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
        let es = extents(x.shape), total = es.reduce(0, +)
        var grads = es.map { [Double](repeating: 0, count: outer * $0 * inner) }
        for o in 0..<outer {
            var offset = o * total * inner
            for (k, e) in es.enumerated() {
                for j in 0..<(e * inner) { grads[k][o * e * inner + j] = dy[offset + j] }
                offset += e * inner
            }
        }
        let shapes = [x.shape] + parameters.map(\.tensor.shape)
        let ts = zip(shapes, grads).map { Tensor(shape: $0, scalars: $1) }
        return Gradients(input: ts[0], parameters: Array(ts.dropFirst()))
    }
}

/// `flatten`: axes `startAxis` … rank − 1 merged into one, row-major (PyTorch's
/// `flatten(start_dim)`, default 1: [N, C, H, W] → [N, C·H·W]); an exact copy.
public struct Flatten: Layer {
    public static let id = "flatten"
    public let startAxis: Int
    public var parameters: [NamedTensor] = []
    public init(startAxis: Int) { self.startAxis = startAxis }

    public var configuration: [(String, JSON)] { [("start_axis", .int(startAxis))] }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        guard (0..<s.count).contains(startAxis) else {
            throw CaseError("config.start_axis", "expected an axis in 0..<\(s.count) (the rank of x, shape \(s)), found \(startAxis)")
        }
        return Array(s[..<startAxis]) + [s[startAxis...].reduce(1, *)]
    }

    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        Tensor(shape: (try? outputShape(forInput: x.shape)) ?? [x.count], scalars: x.scalars)
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        Gradients(input: Tensor(shape: x.shape, scalars: dy.scalars))
    }
}
