/// `batchnorm2d`: batch normalisation of x [N, C, H, W] per channel, PyTorch's
/// `F.batch_norm` (`BatchNorm2d`).
///
/// Training: μ_c and σ²_c are the batch mean and the biased variance Σ(x − μ)²/m over
/// the m = N·H·W values of channel c, y = γ_c·(x − μ_c)/√(σ²_c + ε) + β_c (ε inside the
/// root), and the outputs also carry the updated running statistics
/// (1 − momentum)·old + momentum·batch, the running variance unbiased (Σ(x − μ)²/(m − 1)).
/// The gradients flow through the batch statistics:
/// dL/dx_i = γ/√(σ² + ε)·(dy_i − Σdy/m − (x_i − μ)·Σ dy·(x − μ)/(m·(σ² + ε))).
/// Eval: the running statistics take the batch's place (ONNX's eval formula), the
/// gradients do not flow through them, and there are no further outputs.
/// `running_mean` and `running_var` are buffers: inputs without gradients.
///
/// Every value is one rounding of its exact real: the statistics, the numerators and
/// σ² + ε are exact rationals; the one irrational step, the square root, goes through
/// the certified interval loop (Certified.swift). When σ² + ε is the square of a
/// rational the value is rational and is rounded exactly instead, so an exact midpoint
/// or zero is never handed to the loop; a numerator that is exactly zero (a channel of
/// equal values: σ² = 0) gives β (or 0) exactly. Non-finite operands in a channel
/// give the plain double formula's IEEE result for it.
public struct BatchNorm2D: Layer {
    public static let id = "batchnorm2d"
    public let training: Bool
    public let eps: Double
    public let momentum: Double
    public let runningMean: Tensor
    public let runningVar: Tensor
    public var parameters: [NamedTensor]

    public init(weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor, training: Bool, eps: Double, momentum: Double) {
        parameters = [NamedTensor("weight", weight), NamedTensor("bias", bias)]
        self.runningMean = runningMean
        self.runningVar = runningVar
        self.training = training
        self.eps = eps
        self.momentum = momentum
    }

    public var weight: Tensor { parameters[0].tensor }
    public var bias: Tensor { parameters[1].tensor }
    public var buffers: [NamedTensor] { [NamedTensor("running_mean", runningMean), NamedTensor("running_var", runningVar)] }

    public var configuration: [(String, JSON)] {
        [("training", .bool(training)), ("eps", .double(eps)), ("momentum", .double(momentum))]
    }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        try requireRank(s, 4, "inputs.x.shape", "[N, C, H, W]")
        for (name, t) in [("weight", weight), ("bias", bias), ("running_mean", runningMean), ("running_var", runningVar)] where t.shape != [s[1]] {
            throw CaseError("inputs.\(name).shape", "expected [C] = [\(s[1])] (the channels of x \(s)), found \(t.shape)")
        }
        let m = s[0] * s[2] * s[3]
        if training && m == 1 {
            throw CaseError("inputs.x.shape", "batch norm in training needs more than one value per channel: N·H·W = \(s[0])·\(s[2])·\(s[3]) = 1 (the batch variance is 0/1 and the unbiased running variance 0/0)")
        }
        return s
    }

    public func auxiliaryOutputShapes(forInput s: [Int]) -> [(String, [Int])] {
        training && s.count == 4 ? [("running_mean", [s[1]]), ("running_var", [s[1]])] : []
    }

    /// The flat indices of channel c's values, batch-major.
    public func indices(_ s: [Int], _ c: Int) -> [Int] {
        let plane = s[2] * s[3]
        var out: [Int] = []
        for n in 0..<s[0] {
            let start = (n * s[1] + c) * plane
            out += start..<(start + plane)
        }
        return out
    }

    /// Channel c's statistics: the centred values x_i − μ and σ² + ε (exact), with μ.
    struct Statistics {
        var mean: Rational
        var centred: [Rational]
        /// σ² + ε (training) or running_var + ε (eval).
        var denominator: Rational
        /// Σ(x − μ)² (training), for the unbiased running variance.
        var squares: Rational
        /// √denominator when it is rational.
        var root: Rational?
    }

    func statistics(_ values: [Double], channel c: Int) -> Statistics {
        let m = Rational(BigInt(values.count))
        let mean: Rational
        var squares = Rational.zero
        if training {
            var total = Rational.zero
            for v in values { total = total + Rational(v) }
            mean = (total / m).reduced
        } else {
            mean = Rational(runningMean[c])
        }
        let centred = values.map { Rational($0) - mean }
        let variance: Rational
        if training {
            for d in centred { squares = squares + d * d }
            variance = squares / m
        } else {
            variance = Rational(runningVar[c])
        }
        let denominator = (variance + Rational(eps)).reduced
        return Statistics(mean: mean, centred: centred, denominator: denominator, squares: squares, root: denominator.squareRoot)
    }

    /// b + q/√r rounded once, r = stats.denominator > 0; q ≠ 0.
    static func affineOverRoot(_ b: Rational, _ q: Rational, _ st: Statistics) -> Double {
        if let root = st.root { return (b + q / root).double }
        // Irrational (√r is, and q ≠ 0): never a rounding boundary, so the loop ends.
        return Certified.round { p in
            Interval(b, precision: p) + Interval(q, precision: p) / Interval(st.denominator, precision: p).squareRoot
        }
    }

    func channelIsFinite(_ values: [Double], _ c: Int) -> Bool {
        values.allSatisfy(\.isFinite) && weight[c].isFinite && bias[c].isFinite
            && (training || (runningMean[c].isFinite && runningVar[c].isFinite))
    }

    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        let s = x.shape
        var y = x
        for c in 0..<s[1] {
            let idx = indices(s, c)
            let values = idx.map { x[$0] }
            guard certifies(A.self) && channelIsFinite(values, c) else {
                let (mu, denominator) = plainStatistics(values, c)
                let root = denominator.squareRoot()
                for i in idx { y[i] = bias[c] + weight[c] * (x[i] - mu) / root }
                continue
            }
            let st = statistics(values, channel: c)
            let g = Rational(weight[c]), b = Rational(bias[c])
            for (k, i) in idx.enumerated() {
                let q = g * st.centred[k]
                // γ·0 keeps γ's sign, and β + that follows IEEE (−0 + −0 = −0).
                y[i] = q.isZero ? bias[c] + weight[c] * 0.0 : Self.affineOverRoot(b, q, st)
            }
        }
        return y
    }

    /// γ·(x − μ)/√(σ² + ε) + β in double-double, the batch statistics (training) in it too:
    /// for the gradient checker's element objective.
    public func forwardExtended(_ x: Tensor) -> [DoubleDouble] {
        var y = x.scalars.map { DoubleDouble($0) }
        for c in 0..<x.shape[1] {
            let idx = indices(x.shape, c)
            let (mu, root) = extendedStatistics(idx.map { x[$0] }, c)
            for i in idx { y[i] = DoubleDouble(bias[c]) + DoubleDouble(weight[c]) * (DoubleDouble(x[i]) - mu) / root }
        }
        return y
    }

    /// μ and √(σ² + ε) in double-double.
    func extendedStatistics(_ values: [Double], _ c: Int) -> (DoubleDouble, DoubleDouble) {
        guard training else { return (DoubleDouble(runningMean[c]), DoubleDouble.squareRoot(DoubleDouble(runningVar[c]) + DoubleDouble(eps))) }
        let m = DoubleDouble(Double(values.count))
        var sum = DoubleDoubleSum(), squares = DoubleDoubleSum()
        for v in values { sum.add(DoubleDouble(v)) }
        let mu = sum.total / m
        for v in values { let d = DoubleDouble(v) - mu; squares.add(d * d) }
        return (mu, DoubleDouble.squareRoot(squares.total / m + DoubleDouble(eps)))
    }

    /// |y| + |β| + |γ|·(|x| + 2·mean|x|)/√(σ² + ε): x − μ is formed to about 2⁻¹⁰⁴ of |x| + |μ|,
    /// not of itself.
    public func extendedErrorScale(_ x: Tensor, _ y: [DoubleDouble]) -> [Double] {
        var m = y.map { $0.hi.magnitude }
        for c in 0..<x.shape[1] {
            let idx = indices(x.shape, c)
            let values = idx.map { x[$0] }
            let (mu, root) = extendedStatistics(values, c)
            let mean = training ? values.reduce(0) { $0 + $1.magnitude } / Double(values.count) : mu.hi.magnitude
            for i in idx { m[i] += bias[c].magnitude + weight[c].magnitude * (x[i].magnitude + 2 * mean) / root.hi }
        }
        return m
    }

    /// μ and σ² + ε in double-double (the gradient checker's fast passes, and the IEEE
    /// result for non-finite operands).
    func plainStatistics(_ values: [Double], _ c: Int) -> (Double, Double) {
        guard training else { return (runningMean[c], runningVar[c] + eps) }
        let n = Double(values.count)
        let mu = CompensatedSum.sum(dividedBy: n) { acc in for v in values { acc.add(v) } }
        let variance = CompensatedSum.sum(dividedBy: n) { acc in for v in values { acc.add(v - mu, times: v - mu) } }
        return (mu, variance + eps)
    }

    public func auxiliaryOutputs(_ x: Tensor) -> [NamedTensor] {
        guard training, x.rank == 4 else { return [] }
        let s = x.shape
        var newMean = runningMean, newVar = runningVar
        let keep = Rational.one - Rational(momentum), mom = Rational(momentum)
        for c in 0..<s[1] {
            let values = indices(s, c).map { x[$0] }
            let m = Double(values.count)
            guard values.allSatisfy(\.isFinite) && runningMean[c].isFinite && runningVar[c].isFinite else {
                let (mu, denominator) = plainStatistics(values, c)
                newMean[c] = (1 - momentum) * runningMean[c] + momentum * mu
                newVar[c] = (1 - momentum) * runningVar[c] + momentum * (denominator - eps) * m / (m - 1)
                continue
            }
            let st = statistics(values, channel: c)
            newMean[c] = (keep * Rational(runningMean[c]) + mom * st.mean).double
            newVar[c] = (keep * Rational(runningVar[c]) + mom * st.squares / Rational(BigInt(values.count - 1))).double
        }
        return [NamedTensor("running_mean", newMean), NamedTensor("running_var", newVar)]
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        let s = x.shape
        var dx = x, dgamma = weight, dbeta = bias
        for c in 0..<s[1] {
            let idx = indices(s, c)
            let values = idx.map { x[$0] }, gs = idx.map { dy[$0] }
            dbeta[c] = CorrectlyRounded.sum { acc in for g in gs { acc.add(g) } }
            guard channelIsFinite(values, c) && gs.allSatisfy(\.isFinite) else {
                let (mu, denominator) = plainStatistics(values, c)
                let root = denominator.squareRoot(), n = Double(values.count)
                let xhat = values.map { ($0 - mu) / root }
                let mean = gs.reduce(0, +) / n
                let meanProduct = zip(gs, xhat).reduce(0) { $0 + $1.0 * $1.1 } / n
                dgamma[c] = meanProduct * n
                for (k, i) in idx.enumerated() {
                    dx[i] = training ? weight[c] / root * (gs[k] - mean - xhat[k] * meanProduct) : weight[c] * gs[k] / root
                }
                continue
            }
            let st = statistics(values, channel: c)
            let g = Rational(weight[c])
            var t = Rational.zero                      // Σ dy·(x − μ)
            for (gk, d) in zip(gs, st.centred) where gk != 0 { t = t + Rational(gk) * d }
            dgamma[c] = t.isZero ? 0 : Self.affineOverRoot(.zero, t, st)
            let m = Rational(BigInt(values.count))
            var dySum = Rational.zero
            for gk in gs { dySum = dySum + Rational(gk) }
            let meanDy = dySum / m, slope = training ? t / (m * st.denominator) : .zero
            for (k, i) in idx.enumerated() {
                // R = dy − mean(dy) − (x − μ)·Σdy(x − μ)/(m(σ² + ε)) in training, dy in eval.
                let r = training ? Rational(gs[k]) - meanDy - st.centred[k] * slope : Rational(gs[k])
                let q = g * r
                dx[i] = q.isZero ? weight[c] * r.double * 0 : Self.affineOverRoot(.zero, q, st)
            }
        }
        return Gradients(input: dx, parameters: [dgamma, dbeta])
    }

    /// The double backward for the upstream u and the cotangent (w, w_γ, w_β), rounded once:
    /// per channel of m values, with d = x − μ, V = σ² + ε, ū and w̄ the means of u and w,
    /// P = Σ w·(u − ū), Q = Σ w·d and R = Σ u·d (exact rationals), ⟨w, g⟩ is
    /// γP/√V − γQR/(m·V^(3/2)) + w_γR/√V + w_β·Σu, so in training
    /// ∂/∂x_k = q_k/√V with q_k = w_γ(u_k − ū) − (γd_kP + γQ(u_k − ū) + γR(w_k − w̄) + w_γRd_k)/(mV)
    /// + 3γQRd_k/(m²V²), and ∂/∂γ = (P − QR/(mV))/√V; in eval (the statistics fixed)
    /// ∂/∂x_k = w_γ·u_k/√V and ∂/∂γ = Σ w·u/√V; ∂/∂β = 0. Each is a rational over √V
    /// (`affineOverRoot`; 0 exactly when the rational is). Non-finite operands in a channel:
    /// the double-double `doubleBackward` (IEEE).
    public func certifiedDoubleBackward(_ x: Tensor, upstream u: Tensor, cotangents w: [Tensor]) -> [Tensor] {
        let s = x.shape, wx = w[0], wg = w[1]
        var fallback: Gradients?
        var dx = x, dgamma = weight
        for c in 0..<s[1] {
            let idx = indices(s, c)
            let values = idx.map { x[$0] }, us = idx.map { u[$0] }, ws = idx.map { wx[$0] }
            guard channelIsFinite(values, c) && us.allSatisfy(\.isFinite) && ws.allSatisfy(\.isFinite) && wg[c].isFinite && w[2][c].isFinite else {
                let f = fallback ?? doubleBackward(x, outputGradient: u, cotangents: Tangents(input: wx, parameters: [wg, w[2]])).gradients
                fallback = f
                for i in idx { dx[i] = f.input[i] }
                dgamma[c] = f.parameters[0][c]
                continue
            }
            let st = statistics(values, channel: c)
            let g = Rational(weight[c]), tg = Rational(wg[c])
            func overRoot(_ q: Rational) -> Double { q.isZero ? 0 : Self.affineOverRoot(.zero, q, st) }
            var wu = Rational.zero
            for (a, b) in zip(ws, us) where a != 0 && b != 0 { wu = wu + Rational(a) * Rational(b) }
            guard training else {
                for (k, i) in idx.enumerated() { dx[i] = overRoot(tg * Rational(us[k])) }
                dgamma[c] = overRoot(wu)
                continue
            }
            let m = Rational(BigInt(values.count))
            var su = Rational.zero, sw = Rational.zero, q = Rational.zero, r = Rational.zero
            for (k, d) in st.centred.enumerated() {
                if us[k] != 0 { su = su + Rational(us[k]); r = r + Rational(us[k]) * d }
                if ws[k] != 0 { sw = sw + Rational(ws[k]); q = q + Rational(ws[k]) * d }
            }
            let ubar = (su / m).reduced, wbar = (sw / m).reduced
            let p = (wu - ubar * sw).reduced, mv = (m * st.denominator).reduced, qr = (q * r).reduced
            let third = (Rational(3) * g * qr / (mv * mv)).reduced
            for (k, i) in idx.enumerated() {
                let d = st.centred[k], uc = Rational(us[k]) - ubar
                let inner = g * d * p + g * q * uc + g * r * (Rational(ws[k]) - wbar) + tg * r * d
                dx[i] = overRoot(tg * uc - inner / mv + third * d)
            }
            dgamma[c] = overRoot(p - qr / mv)
        }
        return [dx, dgamma, Tensor(zeros: bias.shape)]
    }

    /// The JVP along (ẋ, γ̇, β̇), rounded once: J·ẋ is the input gradient for the upstream ẋ
    /// (J is symmetric), so ẏ_i = β̇ + q_i/√(σ² + ε) with the rational
    /// q_i = γ·(ẋ_i − mean ẋ − (x_i − μ)·Σẋ(x − μ)/(m(σ² + ε))) + γ̇·(x_i − μ) in training,
    /// γ·ẋ_i + γ̇·(x_i − μ) in eval: `affineOverRoot` again (β̇ exactly when q_i = 0). Non-finite
    /// operands in a channel: the double-double `jvp` (IEEE).
    public func certifiedJVP(_ x: Tensor, tangents t: [Tensor]) -> Tensor {
        let s = x.shape, tx = t[0], tg = t[1], tb = t[2]
        let fallback = jvp(x, tangents: Tangents(input: tx, parameters: [tg, tb]))
        var y = x
        for c in 0..<s[1] {
            let idx = indices(s, c)
            let values = idx.map { x[$0] }, ts = idx.map { tx[$0] }
            guard channelIsFinite(values, c) && ts.allSatisfy(\.isFinite) && tg[c].isFinite && tb[c].isFinite else {
                for i in idx { y[i] = fallback[i] }
                continue
            }
            let st = statistics(values, channel: c)
            let g = Rational(weight[c]), dg = Rational(tg[c]), db = Rational(tb[c])
            let m = Rational(BigInt(values.count))
            var total = Rational.zero, product = Rational.zero     // Σẋ, Σẋ(x − μ)
            for (tk, d) in zip(ts, st.centred) where tk != 0 {
                total = total + Rational(tk)
                product = product + Rational(tk) * d
            }
            let mean = total / m, slope = training ? product / (m * st.denominator) : .zero
            for (k, i) in idx.enumerated() {
                let inner = training ? Rational(ts[k]) - mean - st.centred[k] * slope : Rational(ts[k])
                let q = g * inner + dg * st.centred[k]
                y[i] = q.isZero ? tb[c] + 0.0 : Self.affineOverRoot(db, q, st)
            }
        }
        return y
    }
}

import BigInt
