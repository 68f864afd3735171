import CMPFR
import CNNReference

/// Where one value of a case stands against the oracle.
public struct ValueError: Sendable {
    public var caseID: String
    public var tensor: String     // "outputs.y", "gradients.weight"
    public var index: [Int]
    public var ours: Double
    public var truth: Double      // the oracle's value rounded to Double
    public var ulps: Double
    /// The same bits as the oracle's value rounded to nearest (±0 told apart, NaN matches NaN).
    public var correctlyRounded: Bool
}

/// The measured precision of every golden value, per case and per layer.
public struct PrecisionReport: Sendable {
    public struct Layer: Sendable {
        public var id: String
        public var values = 0
        public var correctlyRounded = 0
        public var worst: ValueError?
    }
    public var layers: [Layer]
    /// The worst ulp error of each case, by id.
    public var worstPerCase: [String: Double]
    /// Every value that is not the correctly rounded exact value, worst first.
    public var violations: [ValueError]
}

extension Oracle {
    /// Every value of every layer must be the correctly rounded exact value: the
    /// oracle's value rounded once (the ulp error, kept for reports, cannot tell the
    /// two sides of a tie apart; the comparison of bits can).
    public static func target(_ layer: String) -> Double { 0.5 }

    /// Measures `cases` (each with `expected`) against the oracle.
    public static func measure(_ cases: [Case]) -> PrecisionReport {
        var layers: [String: PrecisionReport.Layer] = [:]
        var worstPerCase: [String: Double] = [:]
        var violations: [ValueError] = []
        for c in cases {
            guard let expected = c.expected else { continue }
            let truth = evaluate(c)
            var layer = layers[c.layer] ?? PrecisionReport.Layer(id: c.layer)
            var caseWorst = 0.0
            for (section, ours, theirs) in [("outputs", expected.outputs, truth.outputs), ("gradients", expected.gradients, truth.gradients)] {
                for (name, values) in theirs {
                    guard let tensor = ours.first(where: { $0.name == name })?.tensor else { continue }
                    for (i, t) in values.enumerated() {
                        let e = ulpError(tensor[i], t)
                        let exact = isCorrectlyRounded(tensor[i], t)
                        let error = ValueError(caseID: c.id, tensor: "\(section).\(name)", index: tensor.index(ofFlat: i),
                                               ours: tensor[i], truth: t.double, ulps: e, correctlyRounded: exact)
                        layer.values += 1
                        if exact { layer.correctlyRounded += 1 }
                        if layer.worst == nil || e > layer.worst!.ulps { layer.worst = error }
                        caseWorst = max(caseWorst, e)
                        if !exact { violations.append(error) }
                    }
                }
            }
            layers[c.layer] = layer
            worstPerCase[c.id] = caseWorst
        }
        return PrecisionReport(layers: layers.values.sorted { $0.id < $1.id }, worstPerCase: worstPerCase,
                               violations: violations.sorted { $0.ulps > $1.ulps })
    }

    /// The ulp errors of values computed another way (a naive engine), for comparison.
    public static func errors(of values: [Double], tensor: String, output: Bool, in c: Case) -> [Double] {
        let truth = evaluate(c)
        guard let t = (output ? truth.outputs : truth.gradients).first(where: { $0.0 == tensor })?.1 else { return [] }
        return zip(values, t).map { ulpError($0, $1) }
    }
}

extension Oracle {
    /// `elements` positions of 0..<n: the first, the last and others drawn by a generator seeded
    /// by n (every position when n is that small), the same on every run.
    static func positions(_ n: Int, _ elements: Int) -> [Int] {
        var out = n <= elements ? Array(0..<n) : [0, n - 1]
        var state = UInt64(n)
        while out.count < min(n, elements) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let k = Int((state >> 33) % UInt64(n))
            if !out.contains(k) { out.append(k) }
        }
        return out
    }

    /// The precision at which a gradient (itself a product of up to two of the case's doubles,
    /// or a 1,024-bit transcendental value) times a tangent sums exactly: the case's bits for
    /// three factors, again with the tangents, and a margin.
    static func dotPrecision(_ c: Case, _ tangents: [NamedTensor]) -> mpfr_prec_t {
        var withTangents = c
        withTangents.inputs += tangents.map { NamedTensor("tangent.\($0.name)", $0.tensor) }
        return bits(withTangents) * 2 + 256
    }

    /// The values of a forward-mode case's `expected.jvp` (`cnnref-case-2`) that are not the
    /// exact JVP rounded once, checked at `elements` output positions (the first, the last and
    /// seeded others; every position when the output is that small). The JVP is taken from its
    /// definition through the oracle's own backward pass: ẏ_k = Σ over the tensors with a
    /// gradient of ⟨Jᵀe_k, tangent⟩, with Jᵀe_k the oracle's gradients for the one-hot
    /// upstream e_k — nothing of `ForwardMode`'s equivalent cases.
    public static func jvpViolations(_ c: Case, elements: Int = 6) -> (checked: Int, violations: [ValueError]) {
        guard let tangents = c.tangents, let golden = c.expected?.jvp.first?.tensor else { return (0, []) }
        let n = golden.count
        let precision = dotPrecision(c, tangents)
        var violations: [ValueError] = []
        let checked = positions(n, elements)
        for k in checked {
            var probe = c
            probe.tangents = nil
            probe.expected = nil
            var e = [Double](repeating: 0, count: n)
            e[k] = 1
            probe.upstream = Tensor(shape: golden.shape, scalars: e)
            /// ⟨Jᵀe_k, tangent⟩ with the oracle's gradients at `p` bits.
            func jvp(_ p: mpfr_prec_t) -> BigFloat {
                BigFloat.$bits.withValue(p) {
                    let truth = evaluateAtPrecision(probe).gradients
                    let sum = BigFloat(0)
                    for t in tangents {
                        guard let g = truth.first(where: { $0.0 == t.name })?.1 else { continue }
                        for (gi, ti) in zip(g, t.tensor.scalars) { sum.addProduct(gi, BigFloat(ti)) }
                    }
                    return sum
                }
            }
            mpfr_set_emin(mpfr_get_emin_min())
            mpfr_set_emax(mpfr_get_emax_max())
            var p = max(precision, bits(probe))
            var exact = jvp(p)
            // A transcendental layer's gradients are rounded at p bits, and the JVP can cancel them
            // (ẋ_k − Σ p_j·ẋ_j with equal ẋ is exactly 0): again at 4·p bits until the rounding is stable.
            if transcendental.contains(c.layer) {
                for _ in 0..<3 {
                    p *= 4
                    let next = jvp(p)
                    let stable = next.double.bitPattern == exact.double.bitPattern || (next.isNaN && exact.isNaN)
                    exact = next
                    if stable { break }
                }
            }
            // A zero has no judged sign: the golden's is its formula's (x·0 = −0 for x < 0), the
            // oracle's that of a sum of terms that cancel, or of a value below the subnormals.
            if !isCorrectlyRounded(golden[k], exact) && !(golden[k] == 0 && exact.double == 0) {
                violations.append(ValueError(caseID: c.id, tensor: "expected.jvp", index: golden.index(ofFlat: k), ours: golden[k],
                                             truth: exact.double, ulps: ulpError(golden[k], exact), correctlyRounded: false))
            }
        }
        return (checked.count, violations)
    }
}

extension Oracle {
    /// The values of a forward-mode case's `expected.double_backward` that are not the exact
    /// value rounded once, checked at `elements` positions of each tensor. With w the case's
    /// tangents and u its upstream, ⟨w, Jᵀu⟩ is linear in x (and in W) for conv2d and linear,
    /// so ∂/∂x_k = ⟨w_W, ∂⟨u, y⟩/∂W at the input e_k⟩ and ∂/∂W_j = ⟨w_x, ∂⟨u, y⟩/∂x at the weight
    /// e_j⟩: the oracle's own gradients of one-hot inputs, dotted with w exactly. Every other
    /// layer with golden double-backward values is linear or piecewise linear, where it is 0.
    public static func doubleBackwardViolations(_ c: Case, elements: Int = 4) -> (checked: Int, violations: [ValueError]) {
        guard let w = c.tangents, let golden = c.expected?.doubleBackward, !golden.isEmpty else { return (0, []) }
        var checked = 0
        var violations: [ValueError] = []
        func record(_ name: String, _ t: Tensor, _ k: Int, _ exact: BigFloat) {
            checked += 1
            // A zero has no judged sign (as for the JVP): the golden's is its formula's, the
            // oracle's that of cancelling terms or of a difference quotient's residue.
            if !isCorrectlyRounded(t[k], exact) && !(t[k] == 0 && exact.double == 0) {
                violations.append(ValueError(caseID: c.id, tensor: "expected.double_backward.\(name)", index: t.index(ofFlat: k), ours: t[k],
                                             truth: exact.double, ulps: ulpError(t[k], exact), correctlyRounded: false))
            }
        }
        if let exact = directDoubleBackward(c, w) {
            for (t, values) in zip(golden, exact) {
                for k in positions(t.tensor.count, elements * 4) { record(t.name, t.tensor, k, values[k]) }
            }
            return (checked, violations)
        }
        guard c.layer == "conv2d" || c.layer == "linear" else {
            for t in golden { for k in t.tensor.scalars.indices { record(t.name, t.tensor, k, BigFloat(0)) } }
            return (checked, violations)
        }
        let precision = dotPrecision(c, w)
        // (the tensor differentiated, the gradient read from the probe, the cotangent it is dotted with)
        for (slot, read, dot) in [("x", "weight", w[1].tensor), ("weight", "x", w[0].tensor)] {
            guard let t = golden.first(where: { $0.name == slot })?.tensor else { continue }
            let n = t.count
            for k in positions(n, elements) {
                var probe = c
                probe.tangents = nil
                probe.expected = nil
                var e = [Double](repeating: 0, count: n)
                e[k] = 1
                probe.inputs = c.inputs.compactMap { input in
                    if input.name == slot { return NamedTensor(slot, Tensor(shape: t.shape, scalars: e)) }
                    if input.name == "bias" { return c.layer == "linear" ? NamedTensor("bias", Tensor(zeros: input.tensor.shape)) : nil }
                    return input
                }
                let truth = evaluate(probe).gradients
                guard let g = truth.first(where: { $0.0 == read })?.1 else { continue }
                let exact: BigFloat = BigFloat.$bits.withValue(precision) {
                    let sum = BigFloat(0)
                    for (gi, di) in zip(g, dot.scalars) { sum.addProduct(gi, BigFloat(di)) }
                    return sum
                }
                record(slot, t, k, exact)
            }
        }
        for t in golden where t.name == "bias" { for k in t.tensor.scalars.indices { record("bias", t.tensor, k, BigFloat(0)) } }
        return (checked, violations)
    }
}

extension Oracle {
    /// The exact double backward of the layers whose second derivative is not 0 on a piece,
    /// from the definitions, for the cotangent w and the upstream u (nil for the other layers):
    /// - PReLU: ∂/∂x = w_a·u on x ≤ 0, ∂/∂a_c = Σ_{x ≤ 0} w_x·u;
    /// - maxout, its winners frozen (the oracle's own, by the rounded piece values):
    ///   ∂/∂x[n,i] = Σ_m u·w_W[win, m, i], ∂/∂W[j,m,i] = Σ_{n: win = j} u·w_x[n,i], ∂/∂b = 0;
    /// - sigmoid, tanh, ELU: w·u·f″(x), with f″ from e^−|x| (odd: f″(−x) = −f″(x)):
    ///   σ″(x) = E·expm1(−x)/(1 + E)³ and tanh″(x) = 8E²·expm1(−2x)/(1 + E²)³ for x ≥ 0,
    ///   E = e^−x; ELU's α·eˣ on x ≤ 0;
    /// - swish, softmax, log-softmax, the cross-entropy, batch norm and LRN: `swishDoubleBackward`,
    ///   `softmaxSecondOrder`, `softmaxDoubleBackward`, `batchNormDoubleBackward`, `lrnDoubleBackward`.
    static func directDoubleBackward(_ c: Case, _ w: [NamedTensor]) -> [[BigFloat]]? {
        if c.layer == "log_softmax" || c.layer == "softmax_cross_entropy" { return softmaxDoubleBackward(c, w) }
        if c.layer == "softmax" { return softmaxSecondOrder(c, w) }
        if c.layer == "swish" { return swishDoubleBackward(c, w) }
        if c.layer == "batchnorm2d" { return batchNormDoubleBackward(c, w) }
        if c.layer == "lrn" { return lrnDoubleBackward(c, w) }
        guard ["prelu", "maxout", "sigmoid", "tanh", "elu"].contains(c.layer), let u = c.upstream else { return nil }
        mpfr_set_emin(mpfr_get_emin_min())
        mpfr_set_emax(mpfr_get_emax_max())
        let precision = max(dotPrecision(c, w), 1024 + 2 * 1100)
        return BigFloat.$bits.withValue(precision) {
            let x = c.inputs[0].tensor, wx = w[0].tensor
            switch c.layer {
            case "prelu":
                let a = c.input("slope")!, wa = w[1].tensor
                let inner = x.shape.dropFirst(2).reduce(1, *)
                var dx: [BigFloat] = [], da = (0..<a.count).map { _ in BigFloat.zero }
                for i in x.scalars.indices {
                    let channel = a.count == 1 ? 0 : (i / inner) % x.shape[1]
                    if x[i] > 0 { dx.append(.zero); continue }
                    dx.append(BigFloat(wa[channel]) * BigFloat(u[i]))
                    da[channel].addProduct(BigFloat(wx[i]), BigFloat(u[i]))
                }
                return [dx, da]
            case "maxout":
                let weight = c.input("weight")!, bias = c.input("bias")!, ww = w[1].tensor
                let (n, d, pieces, m) = (x.shape[0], x.shape[1], weight.shape[0], weight.shape[1])
                let dx = (0..<x.count).map { _ in BigFloat.zero }, dw = (0..<weight.count).map { _ in BigFloat.zero }
                for b in 0..<n { for o in 0..<m {
                    var best = 0, bestValue = -Double.infinity
                    for j in 0..<pieces {
                        let z = BigFloat(bias[j * m + o])
                        for i in 0..<d { z.addProduct(BigFloat(x[b * d + i]), BigFloat(weight[(j * m + o) * d + i])) }
                        if j == 0 || z.double > bestValue { best = j; bestValue = z.double }
                    }
                    for i in 0..<d {
                        dx[b * d + i].addProduct(BigFloat(u[b * m + o]), BigFloat(ww[(best * m + o) * d + i]))
                        dw[(best * m + o) * d + i].addProduct(BigFloat(u[b * m + o]), BigFloat(wx[b * d + i]))
                    }
                } }
                return [dx, dw, (0..<bias.count).map { _ in BigFloat.zero }]
            default:
                let alpha: Double = {
                    if case .number(let s)? = c.config.first(where: { $0.0 == "alpha" })?.1 { return Double(s) ?? .nan }
                    return .nan
                }()
                return [x.scalars.indices.map { i -> BigFloat in
                    let v = x[i], product = BigFloat(wx[i]) * BigFloat(u[i])
                    if c.layer == "elu" { return v > 0 ? .zero : product * BigFloat(alpha) * BigFloat(v).positiveExp }
                    let a = BigFloat(v.magnitude), e = (-a).positiveExp
                    let second: BigFloat
                    if c.layer == "sigmoid" {
                        let one = BigFloat.one + e
                        second = e * (-a).expm1 / (one * one * one)
                    } else {
                        let e2 = e * e, one = BigFloat.one + e2
                        second = BigFloat(8) * e2 * (BigFloat(-2) * a).expm1 / (one * one * one)
                    }
                    return product * (v < 0 ? -second : second)
                }]
            }
        }
    }
}

extension Oracle {
    /// Log-softmax's and the cross-entropy's double backward from the definition of softmax's
    /// Jacobian, for the cotangent w: r·∂p_k/∂x·w = r·e_k·Σ_i e_i·(w_k − w_i)/S² per slice (e_i =
    /// e^(x_i − m), S = Σ e_i), with r = −Σu over the slice (log-softmax, g = u − p·Σu) or
    /// u/N (the cross-entropy at upstream u = 1, g_i = (p_i − e_{y_i})/N; /N for the mean).
    /// Every w_k − w_i is exact, so an exact 0 stays 0; the sum can still cancel between
    /// transcendental terms, so it is evaluated again at 4× the bits until its rounding is stable.
    static func softmaxDoubleBackward(_ c: Case, _ w: [NamedTensor]) -> [[BigFloat]] {
        mpfr_set_emin(mpfr_get_emin_min())
        mpfr_set_emax(mpfr_get_emax_max())
        let x = c.inputs[0].tensor, wx = w[0].tensor
        let slices: [[Int]]
        let scale: ([Int]) -> BigFloat
        if c.layer == "log_softmax" {
            var axis = 0
            if case .number(let a)? = c.config.first(where: { $0.0 == "axis" })?.1 { axis = Int(a) ?? 0 }
            if axis < 0 { axis += x.rank }
            slices = AxisSlices(shape: x.shape, axis: axis).all
            let u = c.upstream!
            scale = { slice in
                let total = BigFloat.zero
                for i in slice { total.add(BigFloat(-u[i])) }
                return total
            }
        } else {
            let (n, classes) = (x.shape[0], x.shape[1])
            slices = (0..<n).map { Array($0 * classes..<($0 + 1) * classes) }
            var mean = false
            if case .string(let r)? = c.config.first(where: { $0.0 == "reduction" })?.1 { mean = r == "mean" }
            scale = { _ in BigFloat.one / BigFloat(mean ? Double(n) : 1) }
        }
        func evaluate(_ p: mpfr_prec_t) -> [BigFloat] {
            BigFloat.$bits.withValue(p) {
                var out = x.scalars.map { _ in BigFloat.zero }
                for slice in slices {
                    let values = slice.map { x[$0] }
                    if values.contains(where: \.isNaN) || values.contains(.infinity) || values.allSatisfy({ $0 == -.infinity }) {
                        for i in slice { out[i] = BigFloat(.nan) }
                        continue
                    }
                    let m = BigFloat(values.max()!)
                    let e = values.map { (BigFloat($0) - m).positiveExp }
                    let total = BigFloat.zero
                    for v in e { total.add(v) }
                    let r = scale(slice)
                    for (k, i) in slice.enumerated() {
                        let sum = BigFloat.zero
                        for (j, flat) in slice.enumerated() { sum.addProduct(e[j], BigFloat(wx[i]) - BigFloat(wx[flat])) }
                        out[i] = r * e[k] * sum / (total * total)
                    }
                }
                return out
            }
        }
        return [untilStable(from: max(dotPrecision(c, w), bits(c)), growth: 4, evaluate)]
    }
}

extension Oracle {
    /// Swish's double backward from the second partial derivatives of f = x·σ(βx), written out
    /// term by term (not the kernels' factored forms): f_xx = 2β·σ′ + β²x·σ″,
    /// f_xβ = 2x·σ′ + βx²·σ″, f_ββ = x³·σ″ at z = βx, with σ′ = E/(1 + E)² and
    /// σ″(z) = sign(z)·E·expm1(−|z|)/(1 + E)³, E = e^−|z|; ∂/∂x_i = u_i·(w_x,i·f_xx + w_β·f_xβ)
    /// and ∂/∂β = Σ_i u_i·(w_x,i·f_xβ + w_β·f_ββ). The sum over i can cancel between
    /// transcendental terms: evaluated again at 4× the bits until its rounding is stable.
    static func swishDoubleBackward(_ c: Case, _ w: [NamedTensor]) -> [[BigFloat]] {
        mpfr_set_emin(mpfr_get_emin_min())
        mpfr_set_emax(mpfr_get_emax_max())
        let x = c.input("x")!, beta = c.input("beta")![0], u = c.upstream!, wx = w[0].tensor, wb = w[1].tensor[0]
        func evaluate(_ p: mpfr_prec_t) -> [[BigFloat]] {
            BigFloat.$bits.withValue(p) {
                let b = BigFloat(beta), tb = BigFloat(wb), two = BigFloat(2)
                let db = BigFloat.zero
                var dx: [BigFloat] = []
                for i in x.scalars.indices {
                    let v = BigFloat(x[i]), z = b * v, a = z.magnitude, e = (-a).positiveExp, one = BigFloat.one + e
                    let first = e / (one * one)
                    let second = e * (-a).expm1 / (one * one * one) * BigFloat(z.sign < 0 ? -1 : 1)
                    let fxx = two * b * first + b * b * v * second
                    let fxb = two * v * first + b * v * v * second
                    let fbb = v * v * v * second
                    let ui = BigFloat(u[i]), wi = BigFloat(wx[i])
                    dx.append(ui * (wi * fxx + tb * fxb))
                    db.add(ui * (wi * fxb + tb * fbb))
                }
                return [dx, [db]]
            }
        }
        return untilStable(from: max(dotPrecision(c, w), bits(c)) * 2, growth: 4, evaluate)
    }
}

extension Oracle {
    /// Batch norm's double backward by differentiating, numerically and at high precision,
    /// the first-order backward pass written out from its textbook form (nothing of the
    /// kernels' closed forms): per channel F = Σ w_i·g_i + w_γ·g_γ with
    /// g_i = γ/σ̂·(u_i − ū − x̂_i·mean(u·x̂)) and g_γ = Σ u·x̂ (training; x̂ = (x − μ)/σ̂, σ̂ =
    /// √(σ² + ε) of the batch), g_i = γ·u_i/σ̂ and x̂ from the running statistics (eval);
    /// g_β = Σu does not depend on x or γ, so ∂/∂β = 0. ∂F/∂x_k and ∂F/∂γ are central
    /// differences with a step of 2^(−p/3) times the channel's scale at p bits: the truncation
    /// (step²) and the rounding (2^−p/step) are both below 2^(−2p/3) relative, far below the
    /// smallest double at p ≥ 6,144; evaluated again at twice the bits until the rounding is stable.
    static func batchNormDoubleBackward(_ c: Case, _ w: [NamedTensor]) -> [[BigFloat]] {
        mpfr_set_emin(mpfr_get_emin_min())
        mpfr_set_emax(mpfr_get_emax_max())
        let x = c.input("x")!, gamma = c.input("weight")!, rm = c.input("running_mean")!, rv = c.input("running_var")!
        let u = c.upstream!, wx = w[0].tensor, wg = w[1].tensor
        var training = true, eps = 0.0
        for (key, value) in c.config {
            if key == "training", case .bool(let b) = value { training = b }
            if key == "eps", case .number(let n) = value { eps = Double(n) ?? .nan }
        }
        let (batch, channels, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        func channel(_ ch: Int) -> [Int] {
            var out: [Int] = []
            for n in 0..<batch {
                let start: Int = (n * channels + ch) * plane
                out += Array(start..<(start + plane))
            }
            return out
        }
        /// F for channel ch at the values xs and the scale γ.
        func objective(_ ch: Int, _ idx: [Int], _ xs: [BigFloat], _ g: BigFloat) -> BigFloat {
            let m = BigFloat(Double(idx.count))
            let mu: BigFloat, variance: BigFloat
            if training {
                let total = BigFloat.zero
                for v in xs { total.add(v) }
                mu = total / m
                let squares = BigFloat.zero
                for v in xs { let d = v - mu; squares.addProduct(d, d) }
                variance = squares / m
            } else {
                mu = BigFloat(rm[ch])
                variance = BigFloat(rv[ch])
            }
            let sd = (variance + BigFloat(eps)).squareRoot
            let xhat = xs.map { ($0 - mu) / sd }
            let ubar = BigFloat.zero, ux = BigFloat.zero
            for (k, i) in idx.enumerated() { ubar.add(BigFloat(u[i])); ux.addProduct(BigFloat(u[i]), xhat[k]) }
            let f = BigFloat.zero
            for (k, i) in idx.enumerated() {
                let gi = training ? g / sd * (BigFloat(u[i]) - ubar / m - xhat[k] * ux / m) : g * BigFloat(u[i]) / sd
                f.addProduct(BigFloat(wx[i]), gi)
            }
            f.addProduct(BigFloat(wg[ch]), ux)
            return f
        }
        func evaluate(_ p: mpfr_prec_t) -> [[BigFloat]] {
            BigFloat.$bits.withValue(p) {
                var dx = x.scalars.map { _ in BigFloat.zero }, dg: [BigFloat] = []
                for ch in 0..<channels {
                    let idx = channel(ch), xs = idx.map { BigFloat(x[$0]) }, g = BigFloat(gamma[ch])
                    let h = differenceStep(p, scale: idx.map { x[$0].magnitude }.max() ?? 0)
                    for (k, i) in idx.enumerated() {
                        dx[i] = centralDifference(xs, k, step: h) { objective(ch, idx, $0, g) }
                    }
                    dg.append(centralDifference([g], 0, step: differenceStep(p, scale: gamma[ch].magnitude)) { objective(ch, idx, xs, $0[0]) })
                }
                return [dx, dg, (0..<channels).map { _ in BigFloat.zero }]
            }
        }
        return untilStable(from: max(dotPrecision(c, w), 6144), growth: 2, evaluate)
    }
}

extension Oracle {
    /// LRN's double backward as batch norm's: central differences (step 2^(−p/3) times the
    /// column's scale, p ≥ 6,144 bits, doubled until the rounding is stable) of
    /// F = Σ_c w_c·g_c over one spatial column, g from the textbook backward pass scattered
    /// from each output c to its window: g_c = u_c·S_c^−β − (2αβ/size)·Σ_{o: c ∈ window(o)}
    /// u_o·a_o·a_c·S_o^(−β−1), S_o = k + α·Σ_{j ∈ window(o)} a_j²/size.
    static func lrnDoubleBackward(_ c: Case, _ w: [NamedTensor]) -> [[BigFloat]] {
        mpfr_set_emin(mpfr_get_emin_min())
        mpfr_set_emax(mpfr_get_emax_max())
        let x = c.input("x")!, u = c.upstream!, wx = w[0].tensor
        var size = 1, alpha = 0.0, beta = 0.0, k = 0.0
        for (key, value) in c.config {
            guard case .number(let n) = value else { continue }
            switch key {
            case "size": size = Int(n) ?? 1
            case "alpha": alpha = Double(n) ?? .nan
            case "beta": beta = Double(n) ?? .nan
            case "k": k = Double(n) ?? .nan
            default: break
            }
        }
        let (batch, channels, plane) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        func window(_ o: Int) -> Range<Int> { max(0, o - size / 2)..<min(channels, o + (size - 1) / 2 + 1) }
        func evaluate(_ p: mpfr_prec_t) -> [[BigFloat]] {
            BigFloat.$bits.withValue(p) {
                let a = BigFloat(alpha), b = BigFloat(beta), kk = BigFloat(k), n = BigFloat(Double(size))
                /// F over the column `at` at the values `column`.
                func objective(_ at: [Int], _ column: [BigFloat]) -> BigFloat {
                    var g = column.map { _ in BigFloat.zero }
                    for o in 0..<channels {
                        let q = BigFloat.zero
                        for j in window(o) { q.addProduct(column[j], column[j]) }
                        let base = kk + a * q / n
                        g[o] = g[o] + BigFloat(u[at[o]]) * base.power(-b)
                        let common = BigFloat(2) * a * b / n * BigFloat(u[at[o]]) * column[o] * base.power(-b - .one)
                        for j in window(o) { g[j] = g[j] - common * column[j] }
                    }
                    let f = BigFloat.zero
                    for (j, gj) in g.enumerated() { f.addProduct(BigFloat(wx[at[j]]), gj) }
                    return f
                }
                var dx = x.scalars.map { _ in BigFloat.zero }
                for bi in 0..<batch {
                    for q in 0..<plane {
                        let at = (0..<channels).map { (bi * channels + $0) * plane + q }
                        let column = at.map { BigFloat(x[$0]) }
                        let h = differenceStep(p, scale: at.map { x[$0].magnitude }.max() ?? 0)
                        for (ch, i) in at.enumerated() { dx[i] = centralDifference(column, ch, step: h) { objective(at, $0) } }
                    }
                }
                return [dx]
            }
        }
        return untilStable(from: max(dotPrecision(c, w), 6144), growth: 2, evaluate)
    }
}

extension Oracle {
    /// Softmax's double backward from ⟨w, g⟩ = ⟨p, w ⊙ u⟩ − ⟨p, w⟩⟨p, u⟩: its gradient in p is
    /// v = w ⊙ u − ⟨p, u⟩·w − ⟨p, w⟩·u, and ∂/∂x = J·v = p ⊙ (v − ⟨p, v⟩), which equals
    /// p_k·(a_k·b_k − Σ_l p_l·a_l·b_l) with a_l = Σ_i p_i·(w_l − w_i) and b_l = Σ_j p_j·(u_l − u_j):
    /// pairwise differences, exact, so a constant w or u gives exactly 0 (slices wider than 64:
    /// w_l − ⟨p, w⟩). At 4,096 bits beyond the case's, a cancellation's residue is far below the
    /// smallest double; evaluated again at 4× the bits until the rounding is stable.
    static func softmaxSecondOrder(_ c: Case, _ w: [NamedTensor]) -> [[BigFloat]] {
        mpfr_set_emin(mpfr_get_emin_min())
        mpfr_set_emax(mpfr_get_emax_max())
        let x = c.inputs[0].tensor, wx = w[0].tensor, u = c.upstream!
        var axis = 0
        if case .number(let a)? = c.config.first(where: { $0.0 == "axis" })?.1 { axis = Int(a) ?? 0 }
        if axis < 0 { axis += x.rank }
        let slices = AxisSlices(shape: x.shape, axis: axis).all
        func evaluate(_ p: mpfr_prec_t) -> [BigFloat] {
            BigFloat.$bits.withValue(p) {
                var out = x.scalars.map { _ in BigFloat.zero }
                for slice in slices {
                    let values = slice.map { x[$0] }
                    if values.contains(where: \.isNaN) || values.contains(.infinity) || values.allSatisfy({ $0 == -.infinity }) {
                        for i in slice { out[i] = BigFloat(.nan) }
                        continue
                    }
                    let m = BigFloat(values.max()!)
                    let e = values.map { (BigFloat($0) - m).positiveExp }
                    let total = BigFloat.zero
                    for v in e { total.add(v) }
                    let ws = slice.map { BigFloat(wx[$0]) }, us = slice.map { BigFloat(u[$0]) }
                    func centred(_ t: [BigFloat]) -> [BigFloat] {
                        if t.count > 64 {
                            let dot = BigFloat.zero
                            for (ej, tj) in zip(e, t) { dot.addProduct(ej, tj) }
                            let mean = dot / total
                            return t.map { $0 - mean }
                        }
                        return t.map { tl in
                            let sum = BigFloat.zero
                            for (ej, tj) in zip(e, t) { sum.addProduct(ej, tl - tj) }
                            return sum / total
                        }
                    }
                    let a = centred(ws), b = centred(us)
                    let inner = BigFloat.zero
                    for j in slice.indices { inner.addProduct(e[j], a[j] * b[j]) }
                    let mean = inner / total
                    for (k, i) in slice.enumerated() { out[i] = e[k] / total * (a[k] * b[k] - mean) }
                }
                return out
            }
        }
        return [untilStable(from: max(dotPrecision(c, w), bits(c)) + 4096, growth: 4, evaluate)]
    }
}

extension Oracle {
    /// ∂F/∂v_k at `values` by the central difference (F(v + h·e_k) − F(v − h·e_k))/2h, for the
    /// double backward of batch norm and LRN.
    static func centralDifference(_ values: [BigFloat], _ k: Int, step h: BigFloat, _ f: ([BigFloat]) -> BigFloat) -> BigFloat {
        var plus = values, minus = values
        plus[k] = values[k] + h
        minus[k] = values[k] - h
        return (f(plus) - f(minus)) / (BigFloat(2) * h)
    }

    /// The step at p bits, 2^(−p/3)·(1 + scale): truncation (step²) and rounding (2^−p/step) both
    /// below 2^(−2p/3) relative.
    static func differenceStep(_ p: mpfr_prec_t, scale: Double) -> BigFloat {
        BigFloat(0x1p-1).power(BigFloat(Double(p / 3))) * (BigFloat.one + BigFloat(scale))
    }

    /// `evaluate` at `start` bits, then at `growth`× the bits (at most three times) until every
    /// value rounds to the same double as before (NaN matching NaN): the oracle's guard against
    /// cancellation between values rounded at p bits.
    static func untilStable(from start: mpfr_prec_t, growth: mpfr_prec_t, _ evaluate: (mpfr_prec_t) -> [BigFloat]) -> [BigFloat] {
        var p = start
        var exact = evaluate(p)
        for _ in 0..<3 {
            p *= growth
            let next = evaluate(p)
            let stable = zip(next, exact).allSatisfy { $0.double.bitPattern == $1.double.bitPattern || ($0.isNaN && $1.isNaN) }
            exact = next
            if stable { break }
        }
        return exact
    }

    /// `untilStable` for several tensors at once, judged together.
    static func untilStable(from start: mpfr_prec_t, growth: mpfr_prec_t, _ evaluate: (mpfr_prec_t) -> [[BigFloat]]) -> [[BigFloat]] {
        var shape: [Int] = []
        let flat = untilStable(from: start, growth: growth) { p -> [BigFloat] in
            let t = evaluate(p)
            shape = t.map(\.count)
            return Array(t.joined())
        }
        var out: [[BigFloat]] = [], offset = 0
        for n in shape { out.append(Array(flat[offset..<(offset + n)])); offset += n }
        return out
    }
}

extension Oracle {
    /// An `ExtendedForward` layer's double-double outputs against the true ones: for every
    /// finite output at or above 2⁻⁹⁶⁸ (where the gradient checker differences them), the ratio
    /// |(hi + lo) − y| / (2⁻⁸⁰·(Mⱼ + 2⁻⁹⁹⁴)), Mⱼ the layer's `extendedErrorScale` (2⁻¹⁰⁷⁴ absolute, as
    /// the gradient checker allows each output besides). The stated bound holds
    /// where every ratio is at most 1. Returns the number of outputs compared and the worst.
    public static func extendedForwardRatio(_ c: Case) -> (checked: Int, worst: Double, at: Int) {
        guard let layer = try? LayerRegistry.makeLayer(c), let extended = layer as? any ExtendedForward,
              let x = c.input(layer.inputName) else { return (0, 0, -1) }
        let y = extended.forwardExtended(x), m = extended.extendedErrorScale(x, y)
        mpfr_set_emin(mpfr_get_emin_min())
        mpfr_set_emax(mpfr_get_emax_max())
        return BigFloat.$bits.withValue(bits(c)) {
            let exact = evaluateAtPrecision(c).outputs[0].1
            var checked = 0, worst = 0.0, at = -1
            for k in y.indices where y[k].hi.isFinite && exact[k].double.isFinite && (y[k].hi == 0 || y[k].hi.magnitude >= 0x1p-968) {
                let difference = (BigFloat(y[k].hi) + BigFloat(y[k].lo) - exact[k]).magnitude
                let ratio = (difference / BigFloat(0x1p-80 * (m[k] + 0x1p-994))).double
                checked += 1
                if !(ratio <= worst) { (worst, at) = (ratio, k) }
            }
            return (checked, worst, at)
        }
    }
}
