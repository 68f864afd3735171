import Foundation

/// Tangents (or cotangents) for every tensor a layer reads: one for the input
/// and one per parameter, in `parameters` order — the shape of `Gradients`.
public typealias Tangents = Gradients

/// The double backward of a layer: for g(x, θ, u) = Jᵀu (what `backward`
/// returns for upstream u) and a cotangent w = (w_x, w_θ…) of it, the
/// gradients of ⟨w, g⟩ with respect to x and every θ (`gradients`) and with
/// respect to u (`outputGradient`, which is J·w, the JVP along w).
public struct DoubleBackward: Equatable, Sendable {
    public var gradients: Gradients
    public var outputGradient: Tensor
    public init(gradients: Gradients, outputGradient: Tensor) {
        self.gradients = gradients
        self.outputGradient = outputGradient
    }
}

/// A layer that also gives forward-mode and second-order derivatives.
///
/// A refinement of `Layer`, not new `Layer` requirements, so a layer without
/// them still compiles, evaluates and checks at first order; the checker says
/// when a layer does not conform. At a kink both follow the first-order
/// convention: they differentiate the piece `activeSet` selects at the point
/// (ReLU'' = 0 on each piece, max pooling routes by its argmax, maxout by its
/// winner, the hinge by its active terms).
public protocol SecondOrder: Layer {
    /// d/dt forward(x + t·tangents.input; θ + t·tangents.parameters) at t = 0.
    func jvp(_ x: Tensor, tangents: Tangents) -> Tensor
    /// The gradients of ⟨w, backward(x, u)⟩ with respect to x, θ and u.
    func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward
}

// MARK: - Elementwise layers without parameters

/// An elementwise layer y = f(x) with no parameters: J = diag(f'), so the JVP is
/// the backward pass applied to the tangent (correctly rounded like it), and the
/// double backward needs f'': ∂⟨w, f'(x)·u⟩/∂x = w·u·f''(x), ∂/∂u = f'(x)·w.
protocol ElementwiseSecondOrder: SecondOrder, ElementwiseLayer {
    /// w·u·f''(x) on the piece selected at x, correctly rounded: formed as one value, so
    /// neither w·u beyond the doubles nor an f'' below them loses it.
    func secondProduct(_ x: Double, _ w: Double, _ u: Double) -> Double
}

extension ElementwiseSecondOrder {
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor { backward(x, outputGradient: t.input).input }
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        let dx = x.scalars.indices.map { i in secondProduct(x[i], w.input[i], u[i]) }
        return DoubleBackward(gradients: Gradients(input: Tensor(shape: x.shape, scalars: dx)),
                              outputGradient: jvp(x, tangents: w))
    }
}

extension ReLU: ElementwiseSecondOrder {
    /// f'' = 0 on both pieces (NaN for a non-finite w or u, as 0·∞).
    func secondProduct(_ x: Double, _ w: Double, _ u: Double) -> Double { w.isFinite && u.isFinite ? 0 : .nan }
}

extension LeakyReLU: ElementwiseSecondOrder {
    /// f'' = 0 on both pieces (NaN for a non-finite w or u, as 0·∞).
    func secondProduct(_ x: Double, _ w: Double, _ u: Double) -> Double { w.isFinite && u.isFinite ? 0 : .nan }
}

extension ELU: ElementwiseSecondOrder {
    /// f'' = 0 for x > 0, α·eˣ for x ≤ 0 (the negative branch at 0, as the first derivative).
    func secondProduct(_ x: Double, _ w: Double, _ u: Double) -> Double { CertifiedElementwise.eluSecondProduct(x, alpha: alpha, w, u) }
}

/// σ''(z)/σ'(z) = −tanh(z/2): σ'' = −σ(z)·σ(−z)·tanh(z/2), which has no cancellation
/// near 0 (σ(−z) − σ(z) would lose every digit there).
func logisticSecond(_ z: DoubleDouble) -> DoubleDouble {
    let s = DoubleDouble.logistic(z), sMinus = DoubleDouble.logistic(-z)
    return -(s * sMinus * tanhDD(DoubleDouble(0.5) * z))
}

/// tanh in double-double, as the forward pass of `Tanh` forms it.
func tanhDD(_ x: DoubleDouble) -> DoubleDouble {
    let v = x.value
    if v.isNaN || v == 0 { return x }
    let a = DoubleDouble(2) * (v < 0 ? -x : x)
    let one = DoubleDouble(1), two = DoubleDouble(2)
    let t = v.magnitude < 0.5 ? DoubleDouble.expm1(a) / (DoubleDouble.expm1(a) + two) : one - two / (DoubleDouble.exp(a) + one)
    return v < 0 ? -t : t
}

extension Sigmoid: ElementwiseSecondOrder {
    func secondProduct(_ x: Double, _ w: Double, _ u: Double) -> Double { CertifiedElementwise.sigmoidSecondProduct(x, w, u) }
}

extension Tanh: ElementwiseSecondOrder {
    func secondProduct(_ x: Double, _ w: Double, _ u: Double) -> Double { CertifiedElementwise.tanhSecondProduct(x, w, u) }
}

// MARK: - Elementwise layers with parameters

extension PReLU: SecondOrder {
    /// ẏ = ẋ on x > 0, a_c·ẋ + ȧ_c·x on x ≤ 0.
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor {
        let ta = t.parameters[0]
        return Tensor(shape: x.shape, scalars: x.scalars.indices.map { i in
            guard !(x[i] > 0) else { return t.input[i] }
            let c = channel(i, x.shape)
            return CorrectlyRounded.sum { acc in acc.add(slope[c], times: t.input[i]); acc.add(ta[c], times: x[i]) }
        })
    }
    /// ⟨w, g⟩ = Σ w_x·u·f' + Σ_c w_a,c·Σ_{x≤0} u·x: ∂/∂x = w_a,c·u on x ≤ 0,
    /// ∂/∂a_c = Σ_{x≤0} w_x·u, ∂/∂u = the JVP along w.
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        let wa = w.parameters[0]
        var dx = [Double](repeating: 0, count: x.count)
        var members = [[Int]](repeating: [], count: slope.count)
        for i in x.scalars.indices where !(x[i] > 0) {
            let c = channel(i, x.shape)
            dx[i] = wa[c] * u[i]
            members[c].append(i)
        }
        let da = members.map { idx in CorrectlyRounded.sum { acc in for i in idx { acc.add(w.input[i], times: u[i]) } } }
        return DoubleBackward(gradients: Gradients(input: Tensor(shape: x.shape, scalars: dx),
                                                   parameters: [Tensor(shape: slope.shape, scalars: da)]),
                              outputGradient: jvp(x, tangents: w))
    }
}

extension Swish {
    /// With z = βx, s = σ(z): f_x = s + z·σ'(z), f_β = x²·σ'(z), f_xx = 2β·σ' + β²x·σ'',
    /// f_xβ = 2x·σ' + βx²·σ'', f_ββ = x³·σ'' (σ' = s·σ(−z), σ'' from `logisticSecond`),
    /// all times 2^scale. Below z = −600, σ, σ' and σ'' are e^z to double-double
    /// precision and lie near or below the subnormal range, where one rounding of σ'
    /// (e^−745 is 0.57 of the smallest subnormal) times x² ≈ 5.6·10⁵ would be off by
    /// 75%: they are formed as e^(z + 600·ln 2), and callers scale the products back once.
    func partials(_ x: Double) -> (fx: DoubleDouble, fb: DoubleDouble, fxx: DoubleDouble, fxb: DoubleDouble, fbb: DoubleDouble, scale: Int) {
        let b = DoubleDouble(beta), xd = DoubleDouble(x)
        let z = DoubleDouble.product(beta, x)
        let scale = z.value < -600 ? 600 : 0
        let s: DoubleDouble, s1: DoubleDouble, s2: DoubleDouble
        if scale > 0 {
            // 1 + e^z is 1 to double-double precision here, so σ(z) = e^z and σ(−z) = 1.
            s = DoubleDouble.exp(z + DoubleDouble(Double(scale)) * DoubleDouble.ln2)
            s1 = s
            s2 = -(s * tanhDD(DoubleDouble(0.5) * z))
        } else {
            s = DoubleDouble.logistic(z)
            s1 = s * DoubleDouble.logistic(-z)
            s2 = logisticSecond(z)
        }
        let x2 = DoubleDouble.product(x, x), two = DoubleDouble(2)
        return (s + z * s1, x2 * s1, two * b * s1 + b * z * s2, two * xd * s1 + z * xd * s2, x2 * xd * s2, scale)
    }
}

extension Swish: SecondOrder {
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor {
        let tb = DoubleDouble(t.parameters[0][0])
        return Tensor(shape: x.shape, scalars: x.scalars.indices.map { i in
            let p = partials(x[i])
            return (p.fx * DoubleDouble(t.input[i]) + p.fb * tb).scaled(-p.scale).value
        })
    }
    /// ⟨w, g⟩ = Σ w_x·u·f_x + w_β·Σ u·f_β: ∂/∂x = u·(w_x·f_xx + w_β·f_xβ),
    /// ∂/∂β = Σ u·(w_x·f_xβ + w_β·f_ββ), ∂/∂u = the JVP along w.
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        let wb = DoubleDouble(w.parameters[0][0])
        var dbeta = DoubleDoubleSum()
        let dx = x.scalars.indices.map { i -> Double in
            let p = partials(x[i]), ui = DoubleDouble(u[i]), wx = DoubleDouble(w.input[i])
            dbeta.add((ui * (wx * p.fxb + wb * p.fbb)).scaled(-p.scale))
            return (ui * (wx * p.fxx + wb * p.fxb)).scaled(-p.scale).value
        }
        return DoubleBackward(gradients: Gradients(input: Tensor(shape: x.shape, scalars: dx),
                                                   parameters: [Tensor(shape: [1], scalars: [dbeta.total.value])]),
                              outputGradient: jvp(x, tangents: w))
    }
}

// MARK: - Sums of products

// y = B(x, W) + b with B bilinear. The JVP is B(ẋ, W) + B(x, Ẇ) + ḃ. In ⟨w, g⟩ =
// ⟨w_x, B_x*(u, W)⟩ + ⟨w_W, B_W*(u, x)⟩ + ⟨w_b, Σu⟩ each term is linear in x or W, so
// the double backward is two backward passes with the roles swapped: ∂/∂x is the
// input gradient with the weight w_W, ∂/∂W the weight gradient at the input w_x,
// ∂/∂b = 0, and ∂/∂u the JVP along w.

func adding(_ a: Tensor, _ b: Tensor) -> Tensor {
    Tensor(shape: a.shape, scalars: zip(a.scalars, b.scalars).map { $0 + $1 })
}

extension Conv2D: SecondOrder {
    func with(weight: Tensor, bias: Tensor?) -> Conv2D {
        Conv2D(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
    }
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor {
        let tb = bias == nil ? nil : t.parameters[1]
        return adding(with(weight: weight, bias: tb).forward(t.input),
                      with(weight: t.parameters[0], bias: nil).forward(x))
    }
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        let dx = with(weight: w.parameters[0], bias: nil).backward(x, outputGradient: u).input
        let dw = with(weight: weight, bias: nil).backward(w.input, outputGradient: u).parameters[0]
        let params = [dw] + (bias.map { [Tensor(zeros: $0.shape)] } ?? [])
        return DoubleBackward(gradients: Gradients(input: dx, parameters: params), outputGradient: jvp(x, tangents: w))
    }
}

extension Linear: SecondOrder {
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor {
        adding(Linear(weight: weight, bias: t.parameters[1]).forward(t.input),
               Linear(weight: t.parameters[0], bias: Tensor(zeros: bias.shape)).forward(x))
    }
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        let dx = Linear(weight: w.parameters[0], bias: bias).backward(x, outputGradient: u).input
        let dw = backward(w.input, outputGradient: u).parameters[0]
        return DoubleBackward(gradients: Gradients(input: dx, parameters: [dw, Tensor(zeros: bias.shape)]),
                              outputGradient: jvp(x, tangents: w))
    }
}

extension AvgPool2D: SecondOrder {
    /// Linear in x: the JVP is the forward pass of the tangent; ∂⟨w, g⟩/∂x = 0.
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor { forward(t.input) }
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        DoubleBackward(gradients: Gradients(input: Tensor(zeros: x.shape)), outputGradient: jvp(x, tangents: w))
    }
}

// MARK: - Piecewise layers: the selected piece

extension MaxPool2D: SecondOrder {
    /// ẏ = ẋ at each window's argmax; the selected piece is linear, so ∂⟨w, g⟩/∂x = 0.
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor {
        Tensor(shape: (try? outputShape(forInput: x.shape)) ?? [], scalars: argmax(x).map { t.input[$0] })
    }
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        DoubleBackward(gradients: Gradients(input: Tensor(zeros: x.shape)), outputGradient: jvp(x, tangents: w))
    }
}

extension Maxout: SecondOrder {
    /// The winning piece j = win[n, m] is bilinear: ẏ = Σ_i ẋ·W_j + x·Ẇ_j + ḃ_j, one correctly rounded sum.
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor {
        let (n, d, m) = (x.shape[0], x.shape[1], weight.shape[1])
        let win = activeSet(x)
        let (tx, tw, tb) = (t.input, t.parameters[0], t.parameters[1])
        return Tensor(shape: [n, m], scalars: (0..<(n * m)).map { out in
            let (b, o, j) = (out / m, out % m, win[out])
            return CorrectlyRounded.sum { acc in
                for i in 0..<d {
                    acc.add(tx[b * d + i], times: weight[(j * m + o) * d + i])
                    acc.add(x[b * d + i], times: tw[(j * m + o) * d + i])
                }
                acc.add(tb[j * m + o])
            }
        })
    }
    /// With the winners frozen, as for a bilinear layer: ∂/∂x[n,i] = Σ_m u[n,m]·w_W[win,m,i],
    /// ∂/∂W[j,m,i] = Σ_{n: win = j} u[n,m]·w_x[n,i], ∂/∂b = 0, ∂/∂u the JVP along w.
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        let (n, d, m) = (x.shape[0], x.shape[1], weight.shape[1])
        let win = activeSet(x)
        let ww = w.parameters[0], wx = w.input
        var dx = [Double](repeating: 0, count: x.count)
        for b in 0..<n {
            for i in 0..<d {
                dx[b * d + i] = CorrectlyRounded.sum { acc in
                    for o in 0..<m { acc.add(u[b * m + o], times: ww[(win[b * m + o] * m + o) * d + i]) }
                }
            }
        }
        var dw = [Double](repeating: 0, count: weight.count)
        for j in 0..<pieces {
            for o in 0..<m {
                let batch = (0..<n).filter { win[$0 * m + o] == j }
                for i in 0..<d {
                    dw[(j * m + o) * d + i] = CorrectlyRounded.sum { acc in for b in batch { acc.add(u[b * m + o], times: wx[b * d + i]) } }
                }
            }
        }
        return DoubleBackward(gradients: Gradients(input: Tensor(shape: x.shape, scalars: dx),
                                                   parameters: [Tensor(shape: weight.shape, scalars: dw), Tensor(zeros: bias.shape)]),
                              outputGradient: jvp(x, tangents: w))
    }
}

extension MulticlassHinge: SecondOrder {
    /// The active terms' sum is linear in the scores: ẏ = Σ_active (ṡ_ij − ṡ_{i,y_i}) / N, rounded
    /// once (NaN where the loss is); ∂⟨w, g⟩/∂s = 0.
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor {
        let (n, c) = (x.shape[0], x.shape[1])
        for i in 0..<n {
            for j in 0..<c where j != labels[i] && termIsNaN(x, i, j, c) { return Tensor(scalar: .nan) }
        }
        let active = activeSet(x)
        return Tensor(scalar: CorrectlyRounded.sum(dividedBy: reduction == .mean ? Double(n) : 1) { acc in
            for k in 0..<(n * c) where active[k] == 1 {
                acc.add(t.input[k])
                acc.add(-t.input[k / c * c + labels[k / c]])
            }
        })
    }
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        DoubleBackward(gradients: Gradients(input: Tensor(zeros: x.shape)), outputGradient: jvp(x, tangents: w))
    }
}

// MARK: - Softmax family

/// Per slice p = softmax(x) in double-double; nil for a slice whose softmax is NaN.
func probabilities(_ values: [Double]) -> [DoubleDouble]? {
    ShiftedExponentials(values).map { e in values.indices.map(e.probability) }
}

/// ⟨a, b⟩ in double-double.
func dot(_ a: [DoubleDouble], _ b: [DoubleDouble]) -> DoubleDouble {
    var s = DoubleDoubleSum()
    for (x, y) in zip(a, b) { s.add(x * y) }
    return s.total
}

/// The softmax Jacobian J = diag(p) − p·pᵀ (symmetric) applied to v: p ⊙ (v − ⟨p, v⟩),
/// formed as p_k·Σ_j p_j·(v_k − v_j) (equal, since Σp = 1). The plain form cancels: with
/// p₀ = 1 − p₁ and p₁ < 2⁻¹⁰⁶ (a gap beyond 74), p₀ is 1 in double-double and
/// v₀ − ⟨p, v⟩ = p₁·(v₀ − v₁) vanishes (0 where ~10⁻²⁴ was right); and a constant v, which
/// J maps to exactly 0, gave the rounding of Σp − 1 (4·10⁻³⁴). O(n²) per slice.
func softmaxJacobian(_ p: [DoubleDouble], _ v: [DoubleDouble]) -> [DoubleDouble] {
    p.indices.map { k in
        var s = DoubleDoubleSum()
        for j in p.indices where j != k { s.add(p[j] * (v[k] - v[j])) }
        return p[k] * s.total
    }
}

extension Softmax: SecondOrder {
    /// J is symmetric, so the JVP is the backward pass applied to the tangent.
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor { backward(x, outputGradient: t.input).input }
    /// ⟨w, g⟩ = ⟨w ⊙ p, u⟩ − ⟨w, p⟩⟨p, u⟩ as a function of p has gradient
    /// v = w ⊙ u − ⟨w, p⟩·u − ⟨p, u⟩·w; ∂/∂x = J·v, ∂/∂u = J·w. Certified per slice
    /// (`CertifiedSlice.softmaxDoubleBackward`: probabilities below the doubles beside an
    /// upstream of 1e300 keep their ~1e-24); a slice with a non-finite logit, cotangent or
    /// upstream in double-double (IEEE's rules).
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        var dx = x.scalars
        for slice in slices(x.shape) {
            let wsD = slice.map { w.input[$0] }, usD = slice.map { u[$0] }
            if wsD.allSatisfy(\.isFinite), usD.allSatisfy(\.isFinite), let s = CertifiedSlice(slice.map { x[$0] }) {
                for (k, v) in s.softmaxDoubleBackward(wsD, usD).enumerated() { dx[slice[k]] = v }
                continue
            }
            guard let p = probabilities(slice.map { x[$0] }) else {
                for i in slice { dx[i] = .nan }
                continue
            }
            let us = slice.map { DoubleDouble(u[$0]) }, ws = slice.map { DoubleDouble(w.input[$0]) }
            // v ≡ (w − ⟨w, p⟩) ⊙ (u − ⟨p, u⟩) modulo constants, which J annihilates; u − ⟨p, u⟩
            // is J's own form divided by p (exactly 0 for a constant u, whose g is 0).
            let wp = dot(ws, p)
            let centred = p.indices.map { k in
                var s = DoubleDoubleSum()
                for j in p.indices where j != k { s.add(p[j] * (us[k] - us[j])) }
                return s.total
            }
            let v = slice.indices.map { k in (ws[k] - wp) * centred[k] }
            let jv = softmaxJacobian(p, v)
            for (k, i) in slice.enumerated() { dx[i] = jv[k].value }
        }
        return DoubleBackward(gradients: Gradients(input: Tensor(shape: x.shape, scalars: dx)),
                              outputGradient: jvp(x, tangents: w))
    }
}

extension LogSoftmax: SecondOrder {
    /// J = I − 1·pᵀ: ẏ_k = ẋ_k − ⟨p, ẋ⟩.
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor {
        var y = x.scalars
        for slice in slices(x.shape) {
            guard let p = probabilities(slice.map { x[$0] }) else {
                for i in slice { y[i] = .nan }
                continue
            }
            let pt = dot(p, slice.map { DoubleDouble(t.input[$0]) })
            for i in slice { y[i] = (DoubleDouble(t.input[i]) - pt).value }
        }
        return Tensor(shape: x.shape, scalars: y)
    }
    /// ⟨w, g⟩ = ⟨w, u⟩ − ⟨w, p⟩·Σu: ∂/∂x = −Σu · J_softmax·w, ∂/∂u = the JVP along w.
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        var dx = x.scalars
        for slice in slices(x.shape) {
            guard let p = probabilities(slice.map { x[$0] }) else {
                for i in slice { dx[i] = .nan }
                continue
            }
            var total = DoubleDoubleSum()
            for i in slice { total.add(DoubleDouble(u[i])) }
            let jw = softmaxJacobian(p, slice.map { DoubleDouble(w.input[$0]) })
            for (k, i) in slice.enumerated() { dx[i] = (-(total.total * jw[k])).value }
        }
        return DoubleBackward(gradients: Gradients(input: Tensor(shape: x.shape, scalars: dx)),
                              outputGradient: jvp(x, tangents: w))
    }
}

extension SoftmaxCrossEntropy: SecondOrder {
    /// ẏ = ⟨dL/ds at upstream 1, ṡ⟩ = c·Σ_i ⟨p_i − e_{y_i}, ṡ_i⟩ (c = 1/N for the mean, 1 for the sum).
    public func jvp(_ x: Tensor, tangents t: Tangents) -> Tensor {
        let g = backward(x, outputGradient: Tensor(scalar: 1)).input
        return Tensor(scalar: CorrectlyRounded.sum { acc in for (a, b) in zip(g.scalars, t.input.scalars) { acc.add(a, times: b) } })
    }
    /// ⟨w, g⟩ = u·c·Σ_i ⟨w_i, p_i − e_{y_i}⟩: ∂/∂s_i = u·c·J_softmax(s_i)·w_i, ∂/∂u the JVP along w.
    public func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        let (n, c) = (x.shape[0], x.shape[1])
        let scale = DoubleDouble(u[0]) / DoubleDouble(reduction == .mean ? Double(n) : 1)
        var dx = x.scalars
        for i in 0..<n {
            guard let p = probabilities(Array(x.scalars[i * c..<(i + 1) * c])) else {
                for j in 0..<c { dx[i * c + j] = .nan }
                continue
            }
            let jw = softmaxJacobian(p, (0..<c).map { DoubleDouble(w.input[i * c + $0]) })
            for j in 0..<c { dx[i * c + j] = (scale * jw[j]).value }
        }
        return DoubleBackward(gradients: Gradients(input: Tensor(shape: x.shape, scalars: dx)),
                              outputGradient: jvp(x, tangents: w))
    }
}
