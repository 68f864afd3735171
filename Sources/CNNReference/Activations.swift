import Foundation

// Elementwise nonlinearities. Each keeps its function and its derivative side
// by side; at a kink the derivative is PyTorch's choice, stated per layer.

/// The logistic function σ(x) = 1/(1 + e^−x), correctly rounded (certified).
public func logistic(_ x: Double) -> Double { CertifiedElementwise.sigmoid(x) }

/// σ'(x) = σ(x)·σ(−x), correctly rounded (certified).
public func logisticDerivative(_ x: Double) -> Double { CertifiedElementwise.sigmoidGradient(x, 1) }

/// True when a forward pass must be the reference (certified, correctly rounded) and
/// not the gradient checker's fast double-double evaluation.
@inline(__always) func certifies<A: Accumulator>(_: A.Type) -> Bool { A.self == CorrectlyRounded.self }

/// ReLU: y = max(0, x), with relu(−0) = +0. Derivative 1 for x > 0, else 0
/// (ReLU'(0) = 0, PyTorch's and JAX's choice).
public struct ReLU: ElementwiseLayer, Pointwise, PiecewiseSmooth {
    public static let id = "relu"
    public var parameters: [NamedTensor] = []
    public init() {}
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        Tensor(shape: x.shape, scalars: x.scalars.map { $0 > 0 ? $0 : ($0.isNaN ? $0 : 0) })
    }
    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        Gradients(input: Tensor(shape: x.shape, scalars: zip(x.scalars, dy.scalars).map { $0 > 0 ? $1 : 0 }))
    }
    public func activeSet(_ x: Tensor) -> [Int] { x.scalars.map { $0 > 0 ? 1 : 0 } }
    public func forward(_ x: Tensor, piece: [Int], accumulator: (some Accumulator).Type) -> Tensor {
        Tensor(shape: x.shape, scalars: zip(x.scalars, piece).map { $1 == 1 ? $0 : 0 })
    }
}

/// Leaky ReLU: y = x for x > 0, slope·x otherwise. Derivative 1 for x > 0,
/// slope for x ≤ 0 (the slope at x = 0, as PyTorch). The slope is required:
/// the lecture uses 0.1, PyTorch defaults to 0.01, TensorFlow to 0.2.
public struct LeakyReLU: ElementwiseLayer, Pointwise, PiecewiseSmooth {
    public static let id = "leaky_relu"
    public let slope: Double
    public var parameters: [NamedTensor] = []
    public init(slope: Double) { self.slope = slope }
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        Tensor(shape: x.shape, scalars: x.scalars.map { $0 > 0 ? $0 : slope * $0 })
    }
    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        Gradients(input: Tensor(shape: x.shape, scalars: zip(x.scalars, dy.scalars).map { $0 > 0 ? $1 : slope * $1 }))
    }
    public func activeSet(_ x: Tensor) -> [Int] { x.scalars.map { $0 > 0 ? 1 : 0 } }
    public func forward(_ x: Tensor, piece: [Int], accumulator: (some Accumulator).Type) -> Tensor {
        Tensor(shape: x.shape, scalars: zip(x.scalars, piece).map { $1 == 1 ? $0 : slope * $0 })
    }
}

/// PReLU: y = x for x > 0, a_c·x otherwise, with a learnable slope per channel
/// (`slope` [C], channel = axis 1 of x [N, C, ...]) or shared (`slope` [1]).
/// Derivative in x: 1 for x > 0, a_c for x ≤ 0; dL/da_c = Σ over the channel's
/// elements with x ≤ 0 of dy·x (a correctly rounded sum over batch and space).
public struct PReLU: ElementwiseLayer, Pointwise, PiecewiseSmooth {
    public static let id = "prelu"
    public var parameters: [NamedTensor]
    public init(slope: Tensor) { parameters = [NamedTensor("slope", slope)] }
    public var slope: Tensor { parameters[0].tensor }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        guard slope.rank == 1 else {
            throw CaseError("inputs.slope.shape", "expected [C] or [1], found \(slope.shape)")
        }
        if slope.count != 1 {
            guard s.count >= 2 else {
                throw CaseError("inputs.x.shape", "a per-channel slope [\(slope.count)] needs x of rank ≥ 2 [N, C, ...], found \(s)")
            }
            guard s[1] == slope.count else {
                throw CaseError("inputs.slope.shape", "expected [C] = [\(s[1])] (channels of x) or [1], found \(slope.shape)")
            }
        }
        return s
    }

    /// The channel of every flat index of an input of shape `s`.
    func channel(_ flat: Int, _ s: [Int]) -> Int {
        guard slope.count > 1 else { return 0 }
        let inner = s.dropFirst(2).reduce(1, *)
        return (flat / inner) % s[1]
    }

    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        Tensor(shape: x.shape, scalars: x.scalars.indices.map { i in
            x[i] > 0 ? x[i] : slope[channel(i, x.shape)] * x[i]
        })
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        let dx = x.scalars.indices.map { i in x[i] > 0 ? dy[i] : slope[channel(i, x.shape)] * dy[i] }
        var members = [[Int]](repeating: [], count: slope.count)
        for i in x.scalars.indices where !(x[i] > 0) { members[channel(i, x.shape)].append(i) }
        let da = members.map { idx in CorrectlyRounded.sum { acc in for i in idx { acc.add(dy[i], times: x[i]) } } }
        return Gradients(input: Tensor(shape: x.shape, scalars: dx),
                         parameters: [Tensor(shape: slope.shape, scalars: da)])
    }
    public func activeSet(_ x: Tensor) -> [Int] { x.scalars.map { $0 > 0 ? 1 : 0 } }
    public func forward(_ x: Tensor, piece: [Int], accumulator: (some Accumulator).Type) -> Tensor {
        Tensor(shape: x.shape, scalars: x.scalars.indices.map { i in
            piece[i] == 1 ? x[i] : slope[channel(i, x.shape)] * x[i]
        })
    }
}

/// ELU: y = x for x > 0, α·(e^x − 1) for x ≤ 0 (ELU(−0) = α·(−0) = −0 for α > 0).
/// Derivative 1 for x > 0, α·e^x for x ≤ 0: at x = 0 the negative branch, α (PyTorch's
/// choice). Each value is certified correctly rounded (`Certified`); the gradient
/// checker's forward passes use double-double.
public struct ELU: ElementwiseLayer, Pointwise, PiecewiseSmooth {
    public static let id = "elu"
    public let alpha: Double
    public var parameters: [NamedTensor] = []
    public init(alpha: Double) { self.alpha = alpha }
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        let exact = certifies(A.self)
        return Tensor(shape: x.shape, scalars: x.scalars.map { x in
            x > 0 ? x : exact ? CertifiedElementwise.elu(x, alpha: alpha) : fast(x)
        })
    }
    /// The negative piece α·(eˣ − 1), at any x (the frozen piece of a kink check takes it beyond 0).
    func fast(_ x: Double) -> Double { negativePiece(x).value }
    func negativePiece(_ x: Double) -> DoubleDouble {
        x == 0 ? DoubleDouble(alpha * x) : DoubleDouble(alpha) * DoubleDouble.expm1(DoubleDouble(x))
    }
    public func forwardExtended(_ x: Tensor) -> [DoubleDouble] { x.scalars.map { $0 > 0 ? DoubleDouble($0) : negativePiece($0) } }
    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        Gradients(input: Tensor(shape: x.shape, scalars: zip(x.scalars, dy.scalars).map { x, g in
            x > 0 ? g : CertifiedElementwise.eluGradient(x, alpha: alpha, g)
        }))
    }
    public func activeSet(_ x: Tensor) -> [Int] { x.scalars.map { $0 > 0 ? 1 : 0 } }
    public func forward(_ x: Tensor, piece: [Int], accumulator: (some Accumulator).Type) -> Tensor {
        Tensor(shape: x.shape, scalars: zip(x.scalars, piece).map { $1 == 1 ? $0 : fast($0) })
    }
}

/// Sigmoid: y = σ(x) = 1/(1 + e^−x); derivative σ(x)·σ(−x); each value certified
/// correctly rounded (the gradient checker's forward passes use double-double).
public struct Sigmoid: ElementwiseLayer, Pointwise {
    public static let id = "sigmoid"
    public var parameters: [NamedTensor] = []
    public init() {}
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        let exact = certifies(A.self)
        guard exact else { return Tensor(shape: x.shape, scalars: forwardExtended(x).map(\.value)) }
        return Tensor(shape: x.shape, scalars: x.scalars.map(CertifiedElementwise.sigmoid))
    }
    public func forwardExtended(_ x: Tensor) -> [DoubleDouble] { x.scalars.map { DoubleDouble.logistic(DoubleDouble($0)) } }
    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        Gradients(input: Tensor(shape: x.shape, scalars: zip(x.scalars, dy.scalars).map { x, g in
            CertifiedElementwise.sigmoidGradient(x, g)
        }))
    }
}

/// Tanh: y = tanh(x), as (e^2|x| − 1)/(e^2|x| + 1) in double-double (expm1 for
/// |x| < ½, 1 − 2/(e^2|x| + 1) above); derivative 1 − tanh² = sech²(x), as 4e/(1 + e)²
/// with e = e^−2|x|, which has no cancellation for large |x| (the gradient checker's
/// fast path). The reference values are certified correctly rounded: tanh(±0) = ±0,
/// dy·sech²(x) without overflow or underflow of any intermediate.
public struct Tanh: ElementwiseLayer, Pointwise {
    public static let id = "tanh"
    public var parameters: [NamedTensor] = []
    public init() {}
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        if certifies(A.self) { return Tensor(shape: x.shape, scalars: x.scalars.map(CertifiedElementwise.tanh)) }
        return Tensor(shape: x.shape, scalars: forwardExtended(x).map(\.value))
    }
    public func forwardExtended(_ x: Tensor) -> [DoubleDouble] {
        x.scalars.map { x in
            let a = DoubleDouble(2 * x.magnitude)
            let one = DoubleDouble(1), two = DoubleDouble(2)
            let t = x.magnitude < 0.5 ? DoubleDouble.expm1(a) / (DoubleDouble.expm1(a) + two)
                                      : one - two / (DoubleDouble.exp(a) + one)
            return x.isNaN || x == 0 ? DoubleDouble(x) : (x < 0 ? -t : t)
        }
    }
    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        Gradients(input: Tensor(shape: x.shape, scalars: zip(x.scalars, dy.scalars).map(CertifiedElementwise.tanhGradient)))
    }
}

/// Swish: y = x·σ(βx) with a learnable β (`beta` [1]); β = 1 is SiLU.
/// dy/dx = σ(βx)·(1 + βx·σ(−βx)); dL/dβ = Σ dy·x²·σ(βx)·σ(−βx), summed in
/// double-double over all elements. βx is formed exactly; every value is
/// certified correctly rounded, dL/dβ included (an exact 0, such as ±x with
/// upstreams ±d, is +0); non-finite operands go through double-double (IEEE).
public struct Swish: ElementwiseLayer, Pointwise {
    public static let id = "swish"
    public var parameters: [NamedTensor]
    public init(beta: Tensor) { parameters = [NamedTensor("beta", beta)] }
    public var beta: Double { parameters[0].tensor[0] }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        guard parameters[0].tensor.shape == [1] else {
            throw CaseError("inputs.beta.shape", "expected [1], found \(parameters[0].tensor.shape)")
        }
        return s
    }
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        let exact = certifies(A.self), b = beta
        // Non-finite operands have no certified value: IEEE in double-double.
        return Tensor(shape: x.shape, scalars: x.scalars.map { x in
            (exact ? CertifiedElementwise.swish(x, beta: b) : nil) ?? Self.extended(x, beta: b).value
        })
    }
    /// x·σ(βx) in double-double, βx formed exactly.
    static func extended(_ x: Double, beta b: Double) -> DoubleDouble {
        DoubleDouble(x) * DoubleDouble.logistic(DoubleDouble.product(b, x))
    }
    public func forwardExtended(_ x: Tensor) -> [DoubleDouble] {
        let b = beta
        return x.scalars.map { Self.extended($0, beta: b) }
    }
    /// |y| + |x|·2⁻⁹⁹⁵: σ(βx) below 2⁻¹⁰⁷⁵ flushes to 0 beside a large x.
    public func extendedErrorScale(_ x: Tensor, _ y: [DoubleDouble]) -> [Double] {
        zip(x.scalars, y).map { $1.hi.magnitude + $0.magnitude * 0x1p-995 }
    }
    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        let b = beta
        var dbeta = DoubleDoubleSum()
        let dx = zip(x.scalars, dy.scalars).map { x, g -> Double in
            let z = DoubleDouble.product(b, x)          // βx exactly
            let s = DoubleDouble.logistic(z), sMinus = DoubleDouble.logistic(-z)
            dbeta.add(DoubleDouble(g) * DoubleDouble.product(x, x) * s * sMinus)
            return CertifiedElementwise.swishGradient(x, beta: b, g)
                ?? (DoubleDouble(g) * s * (DoubleDouble(1) + z * sMinus)).value
        }
        let db = CertifiedElementwise.swishBetaGradient(x.scalars, beta: b, dy.scalars) ?? dbeta.total.value
        return Gradients(input: Tensor(shape: x.shape, scalars: dx),
                         parameters: [Tensor(shape: [1], scalars: [db])])
    }
}
