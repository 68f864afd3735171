/// Golden forward-mode values (issue 11): a `cnnref-case-2` case carries `tangents`, one per
/// tensor with a gradient (the data input, then the parameters, as `expected.gradients`), and
/// `expected.jvp`, the directional derivative of the output along them,
/// d/dt forward(x + t·ẋ; θ + t·θ̇) at t = 0, correctly rounded.
///
/// Each JVP is, exactly in real arithmetic, a value the catalogue already computes correctly
/// rounded — the output or the input gradient of an **equivalent case** of a layer:
/// - conv2d and linear are bilinear: ẏ = conv(ẋ; W) + conv(x; Ẇ) + ḃ is one convolution of the
///   input [ẋ, x] (stacked on the channels of each group, on the features for linear) with the
///   weight [W, Ẇ] and the bias ḃ, so one correctly rounded sum of products;
/// - avgpool2d, adaptive_avgpool2d, flatten, dropout (the mask fixed), add and concat are linear
///   in their data inputs: ẏ = forward(ẋ);
/// - the elementwise layers relu, leaky_relu, sigmoid, tanh and elu, and softmax, have a
///   symmetric Jacobian: ẏ = J·ẋ = Jᵀ·ẋ, the backward pass with the tangent as upstream (at a
///   kink, the derivative of the piece the backward pass pins).
/// The same equivalent case gives `validate` its bound for an engine's JVP. For the layers of
/// `doubleBackwardLayers` the case also carries `expected.double_backward`, with the tangents
/// as the cotangent w (`doubleBackwardSources`).
public enum ForwardMode {
    public static let schema = "cnnref-case-2"

    /// Which of the equivalent case's tensors is the JVP.
    public enum Reading: Sendable { case output, inputGradient }

    /// The layers with golden JVPs: those with an equivalent case, then `directLayers`.
    public static let layers = ["conv2d", "linear", "avgpool2d", "adaptive_avgpool2d", "flatten", "dropout", "add", "concat",
                                "relu", "leaky_relu", "sigmoid", "tanh", "elu", "softmax"] + directLayers

    /// The layers whose JVP is formed directly, rounded once (`directJVP`): max pooling copies the
    /// tangent at each argmax; maxout's winning piece, PReLU's selected piece and the hinge's active
    /// terms are one correctly rounded sum of products (their `SecondOrder` JVPs); log-softmax
    /// ẏ_k = ẋ_k − Σ_j p_j·ẋ_j and the cross-entropy Σ_i (Σ_j p_ij·ṡ_ij − ṡ_{i,y_i})/N are certified
    /// (`CentredUpstream`, with its exact zeros by Lindemann–Weierstrass); swish's
    /// ẋ·f_x + β̇·f_β is certified per element (`CertifiedElementwise.swishJVP`); batch norm's
    /// and LRN's are a rational over a square root or times a power of a rational
    /// (`certifiedJVP`).
    public static let directLayers = ["maxpool2d", "maxout", "prelu", "multiclass_hinge", "log_softmax", "softmax_cross_entropy", "swish",
                                      "batchnorm2d", "lrn"]

    /// The JVP of a layer of `directLayers`, correctly rounded.
    static func directJVP(_ c: Case, layer: any Layer, tangents t: [NamedTensor]) -> Tensor {
        let x = c.input(layer.inputName)!
        switch layer {
        case let l as LogSoftmax:
            var y = x.scalars
            for slice in l.slices(x.shape) {
                let d = slice.map { t[0].tensor[$0] }
                guard let s = CertifiedSlice(slice.map { x[$0] }) else {
                    for i in slice { y[i] = .nan }
                    continue
                }
                let v = d.allSatisfy(\.isFinite) ? s.centred(d) : s.centred(nonFinite: d)
                for (k, i) in slice.enumerated() { y[i] = v[k] }
            }
            return Tensor(shape: x.shape, scalars: y)
        case let l as SoftmaxCrossEntropy:
            let (n, classes) = (x.shape[0], x.shape[1])
            var rows: [CertifiedSlice] = []
            for i in 0..<n {
                guard let s = CertifiedSlice(Array(x.scalars[i * classes..<(i + 1) * classes])) else { return Tensor(scalar: .nan) }
                rows.append(s)
            }
            let tangents = (0..<n).map { Array(t[0].tensor.scalars[$0 * classes..<($0 + 1) * classes]) }
            return Tensor(scalar: CertifiedLosses.crossEntropyJVP(rows, labels: l.labels, tangents: tangents,
                                                                  divisor: l.reduction == .mean ? Double(n) : 1))
        case let l as BatchNorm2D:
            return l.certifiedJVP(x, tangents: t.map(\.tensor))
        case let l as LRN:
            return l.certifiedJVP(x, tangent: t[0].tensor)
        case let l as Swish:
            let tx = t[0].tensor, tb = t[1].tensor[0]
            let fallback = l.jvp(x, tangents: Tangents(input: tx, parameters: [t[1].tensor]))   // non-finite operands: IEEE in double-double
            return Tensor(shape: x.shape, scalars: x.scalars.indices.map { i in
                CertifiedElementwise.swishJVP(x[i], beta: l.beta, tx[i], tb) ?? fallback[i]
            })
        case let l as any SecondOrder:
            // MaxPool2D, Maxout, PReLU, MulticlassHinge: exact copies or one CorrectlyRounded sum each.
            return l.jvp(x, tangents: Tangents(input: t[0].tensor, parameters: t.dropFirst().map(\.tensor)))
        default:
            fatalError("\(c.layer) is in ForwardMode.directLayers without a JVP")
        }
    }

    /// The equivalent case of `c` (a case of `layer`, built) along `tangents` (in the layer's
    /// gradient order), and which of its tensors is the JVP.
    public static func equivalent(_ c: Case, layer: any Layer, tangents t: [NamedTensor]) throws(CaseError) -> (Case, Reading) {
        let x = c.input(layer.inputName)!
        func named(_ inputs: [NamedTensor]) -> Case {
            Case(id: "\(c.id)#jvp", layer: c.layer, config: c.config, inputs: inputs, labels: c.labels, upstream: c.upstream)
        }
        switch layer {
        case let conv as Conv2D:
            // Group k reads channels [k·C/g, (k+1)·C/g): its stacked input is those of ẋ then those of x.
            let (n, channels) = (x.shape[0], x.shape[1]), plane = x.shape[2] * x.shape[3], perGroup = channels / conv.groups
            var xs = [Double]()
            xs.reserveCapacity(2 * x.count)
            for b in 0..<n {
                for g in 0..<conv.groups {
                    for source in [t[0].tensor, x] {
                        let start = (b * channels + g * perGroup) * plane
                        xs += source.scalars[start..<(start + perGroup * plane)]
                    }
                }
            }
            let w = conv.weight, tw = t[1].tensor, per = w.count / w.shape[0]
            var ws = [Double]()
            for o in 0..<w.shape[0] {
                ws += w.scalars[(o * per)..<((o + 1) * per)]
                ws += tw.scalars[(o * per)..<((o + 1) * per)]
            }
            var inputs = [NamedTensor("x", Tensor(shape: [n, 2 * channels] + x.shape[2...], scalars: xs)),
                          NamedTensor("weight", Tensor(shape: [w.shape[0], 2 * w.shape[1]] + w.shape[2...], scalars: ws))]
            if conv.bias != nil { inputs.append(NamedTensor("bias", t[2].tensor)) }
            return (named(inputs), .output)
        case let linear as Linear:
            let (n, d) = (x.shape[0], x.shape[1]), w = linear.parameters[0].tensor, m = w.shape[0]
            // Row r of [a, b]: a's row r, then b's.
            func rows(_ a: [Double], _ b: [Double], _ count: Int) -> [Double] {
                var out = [Double]()
                out.reserveCapacity(2 * count * d)
                for r in 0..<count {
                    let range = (r * d)..<((r + 1) * d)
                    out += a[range]
                    out += b[range]
                }
                return out
            }
            let xs = rows(t[0].tensor.scalars, x.scalars, n), ws = rows(w.scalars, t[1].tensor.scalars, m)
            return (named([NamedTensor("x", Tensor(shape: [n, 2 * d], scalars: xs)), NamedTensor("weight", Tensor(shape: [m, 2 * d], scalars: ws)),
                           NamedTensor("bias", t[2].tensor)]), .output)
        case is AvgPool2D, is AdaptiveAvgPool2D, is Flatten, is Dropout, is Add, is Concat:
            // Linear in the data inputs: every tensor with a gradient replaced by its tangent (buffers kept).
            return (named(c.inputs.map { input in t.first { $0.name == input.name } ?? input }), .output)
        case is ReLU, is LeakyReLU, is Sigmoid, is Tanh, is ELU, is Softmax:
            var e = named(c.inputs)
            e.upstream = t[0].tensor
            return (e, .inputGradient)
        default:
            try requireJVP(c.layer)
            if directLayers.contains(c.layer) { throw CaseError("layer", "\(c.layer)'s JVP is formed directly, not through an equivalent case") }
            fatalError("\(c.layer) is in ForwardMode.layers without an equivalent case")
        }
    }

    /// Refuses a layer without golden JVPs, naming the ones with them.
    public static func requireJVP(_ layer: String) throws(CaseError) {
        guard layers.contains(layer) else {
            throw CaseError("tangents", "no golden forward-mode values for \(layer) yet; layers with them: \(layers.joined(separator: ", "))")
        }
    }

    /// The layers with golden double-backward values: the bilinear ones, those whose second
    /// derivative is 0 on every piece (linear in the data input, or piecewise linear), PReLU and
    /// maxout (bilinear on the selected piece), the elementwise sigmoid, tanh, ELU and swish,
    /// softmax, log-softmax and the cross-entropy (a rational times softmax's Jacobian), batch norm
    /// (rationals over √(σ² + ε)) and LRN (rationals times powers of the S_c).
    public static let doubleBackwardLayers = ["conv2d", "linear", "avgpool2d", "adaptive_avgpool2d", "flatten", "dropout", "add", "concat",
                                              "relu", "leaky_relu", "maxpool2d", "multiclass_hinge", "prelu", "maxout",
                                              "sigmoid", "tanh", "elu", "swish", "softmax", "log_softmax", "softmax_cross_entropy", "batchnorm2d", "lrn"]

    /// The upstream u of the double backward: the case's, or 1 for a loss (its output is the
    /// objective, so a loss case has none).
    public static func upstream(_ c: Case) -> Tensor? {
        c.upstream ?? (LayerRegistry.spec(c.layer)?.isLoss == true ? Tensor(scalar: 1) : nil)
    }

    /// How one tensor of a golden double backward is formed.
    public enum Source: Sendable {
        /// Exactly 0.
        case zero
        /// Gradient k (0 the data input, then the parameters) of an equivalent case.
        case equivalent(Case, Int)
        /// Formed directly, rounded once (`directDoubleBackward`).
        case direct
    }

    /// The double backward of `c` for the cotangent `w` (the case's tangents, in the layer's
    /// gradient order) and the upstream u: for g = Jᵀu, the gradients of ⟨w, g⟩ with respect to
    /// the data input and every parameter (with respect to u it is J·w, the JVP along w), per
    /// tensor how it is formed.
    /// For conv2d and linear, ⟨w, g⟩ = ⟨w_x, Jᵀu⟩ + ⟨w_W, ∂⟨u, y⟩/∂W⟩ + ⟨w_b, Σu⟩ =
    /// ⟨conv(w_x; W), u⟩ + ⟨u, conv(x; w_W)⟩ + …, so ∂/∂x is the input gradient of the layer with
    /// weight w_W for the upstream u, ∂/∂W the weight gradient of the layer at the input w_x, and
    /// ∂/∂b = 0. PReLU's and maxout's are their `SecondOrder` values (one correctly rounded sum
    /// of products each, the pieces frozen); sigmoid's, tanh's and ELU's are w·u·f″(x), certified
    /// (`CertifiedElementwise.secondProduct`); swish's u·(β·w_x + x·w_β)·(2σ′ + z·σ″) for x and
    /// a sum grouped by |x| for β (`CertifiedElementwise.swishSecondInput`, `swishSecondBeta`);
    /// batch norm's rationals over √(σ² + ε) (`BatchNorm2D.certifiedDoubleBackward`), LRN's
    /// rationals times S_c^(−β−1) (`LRN.certifiedDoubleBackward`). Log-softmax's g = u − p·Σu gives
    /// ∂⟨w, g⟩/∂x = −Σu·J_softmax·w per slice, the cross-entropy's g_i = (u/N)·(p_i − e_{y_i})
    /// gives (u/N)·J_softmax(s_i)·w_i per row: J_softmax·w = p ⊙ (w − ⟨p, w⟩) scaled by the
    /// rational before its one rounding (`CertifiedSlice.softmaxGradient`). Softmax's is
    /// p ⊙ (a ⊙ b − ⟨p, a ⊙ b⟩) with a = w − ⟨p, w⟩ and b = u − ⟨p, u⟩
    /// (`CertifiedSlice.softmaxDoubleBackward`). Every other layer here has ∂g/∂(x, θ) = 0.
    public static func doubleBackwardSources(_ c: Case, layer: any Layer, cotangents w: [NamedTensor]) throws(CaseError) -> [(name: String, shape: [Int], source: Source)] {
        guard doubleBackwardLayers.contains(c.layer) else {
            throw CaseError("tangents", "no golden double-backward values for \(c.layer) yet; layers with them: \(doubleBackwardLayers.joined(separator: ", "))")
        }
        guard let u = upstream(c) else {
            throw CaseError("upstream", "missing: the double backward needs the upstream")
        }
        let x = c.input(layer.inputName)!
        var out = w.map { (name: $0.name, shape: $0.tensor.shape, source: Source.zero) }
        func equivalent(_ input: Tensor, _ weight: Tensor) -> Case {
            var inputs = [NamedTensor("x", input), NamedTensor("weight", weight)]
            if c.layer == "linear" { inputs.append(NamedTensor("bias", Tensor(zeros: [weight.shape[0]]))) }
            return Case(id: "\(c.id)#double-backward", layer: c.layer, config: c.config, inputs: inputs, upstream: u)
        }
        switch layer {
        case is Conv2D, is Linear:
            let weight = layer.parameters[0].tensor
            out[0].source = .equivalent(equivalent(x, w[1].tensor), 0)
            out[1].source = .equivalent(equivalent(w[0].tensor, weight), 1)
        case is PReLU, is Swish, is BatchNorm2D:
            out[0].source = .direct
            out[1].source = .direct   // batch norm's ∂/∂β stays 0: g does not depend on β
        case is Maxout:
            out[0].source = .direct
            out[1].source = .direct
        case is Sigmoid, is Tanh, is ELU, is Softmax, is LogSoftmax, is SoftmaxCrossEntropy, is LRN:
            out[0].source = .direct
        default:
            break
        }
        return out
    }

    /// The tensors of the double backward formed directly (`Source.direct`), by the layer's
    /// gradient order; the others are not read.
    static func directDoubleBackward(_ c: Case, layer: any Layer, cotangents w: [NamedTensor]) -> [Tensor] {
        let x = c.input(layer.inputName)!, u = upstream(c)!
        switch layer {
        case let l as Swish:
            let wx = w[0].tensor, wb = w[1].tensor[0]
            var fallback: Gradients?   // non-finite operands: IEEE in double-double
            func ieee() -> Gradients {
                let f = fallback ?? l.doubleBackward(x, outputGradient: u, cotangents: Tangents(input: wx, parameters: [w[1].tensor])).gradients
                fallback = f
                return f
            }
            let dx = x.scalars.indices.map { i in
                CertifiedElementwise.swishSecondInput(x[i], beta: l.beta, wx[i], wb, u[i]) ?? ieee().input[i]
            }
            let db = CertifiedElementwise.swishSecondBeta(x.scalars, beta: l.beta, wx.scalars, wb, u.scalars) ?? ieee().parameters[0][0]
            return [Tensor(shape: x.shape, scalars: dx), Tensor(shape: [1], scalars: [db])]
        case let l as BatchNorm2D:
            return l.certifiedDoubleBackward(x, upstream: u, cotangents: w.map(\.tensor))
        case let l as LRN:
            return [l.certifiedDoubleBackward(x, upstream: u, cotangent: w[0].tensor)]
        case let l as LogSoftmax:
            return [softmaxJacobianScaled(x, cotangent: w[0].tensor, slices: l.slices(x.shape), layer: l, upstream: u) { slice in
                RationalScale(slice.map { -u[$0] })
            }]
        case let l as SoftmaxCrossEntropy:
            let (n, classes) = (x.shape[0], x.shape[1])
            let scale = RationalScale([u[0]], dividedBy: l.reduction == .mean ? Double(n) : 1)
            return [softmaxJacobianScaled(x, cotangent: w[0].tensor, slices: (0..<n).map { Array($0 * classes..<($0 + 1) * classes) },
                                          layer: l, upstream: u) { _ in scale }]
        case let l as any SecondOrder:
            // PReLU, Maxout: one CorrectlyRounded sum of products per value, or an exact product;
            // sigmoid, tanh, ELU: w·u·f″(x) certified per element (`ElementwiseSecondOrder`);
            // softmax: certified per slice.
            let g = l.doubleBackward(x, outputGradient: u, cotangents: Tangents(input: w[0].tensor, parameters: w.dropFirst().map(\.tensor))).gradients
            return [g.input] + g.parameters
        default:
            fatalError("\(c.layer) has direct double-backward values without a formula")
        }
    }

    /// r·J_softmax·w on every slice (r = `scale(slice)`), correctly rounded; a slice with a NaN
    /// or an infinity among its logits, cotangents or upstreams takes the layer's double-double
    /// value (IEEE's rules).
    static func softmaxJacobianScaled(_ x: Tensor, cotangent w: Tensor, slices: [[Int]], layer: some SecondOrder, upstream u: Tensor,
                                      scale: ([Int]) -> RationalScale) -> Tensor {
        var out = x.scalars
        var fallback: Tensor?
        for slice in slices {
            let ws = slice.map { w[$0] }
            let finite = ws.allSatisfy(\.isFinite) && (u.count == 1 ? u[0].isFinite : slice.allSatisfy { u[$0].isFinite })
            guard finite, let s = CertifiedSlice(slice.map { x[$0] }) else {
                let f = fallback ?? layer.doubleBackward(x, outputGradient: u, cotangents: Tangents(input: w)).gradients.input
                fallback = f
                for i in slice { out[i] = f[i] }
                continue
            }
            for (k, v) in s.softmaxGradient(ws, scaledBy: scale(slice)).enumerated() { out[slice[k]] = v }
        }
        return Tensor(shape: x.shape, scalars: out)
    }

    /// The correctly rounded double backward of `c` for the cotangent `w` (zeros exactly 0).
    public static func doubleBackward(_ c: Case, layer: any Layer, cotangents w: [NamedTensor]) throws(CaseError) -> [NamedTensor] {
        let sources = try doubleBackwardSources(c, layer: layer, cotangents: w)
        let direct = sources.contains { if case .direct = $0.source { true } else { false } } ? directDoubleBackward(c, layer: layer, cotangents: w) : []
        var out: [NamedTensor] = []
        for (k, (name, shape, source)) in sources.enumerated() {
            switch source {
            case .zero: out.append(NamedTensor(name, Tensor(zeros: shape)))
            case .equivalent(let e, let i): out.append(NamedTensor(name, try value(e, i)))
            case .direct: out.append(NamedTensor(name, direct[k]))
            }
        }
        return out
    }

    /// The correctly rounded JVP of `c` along `tangents`.
    public static func jvp(_ c: Case, layer: any Layer, tangents: [NamedTensor]) throws(CaseError) -> Tensor {
        if directLayers.contains(c.layer) { return directJVP(c, layer: layer, tangents: tangents) }
        let (e, reading) = try equivalent(c, layer: layer, tangents: tangents)
        return try value(e, reading == .output ? nil : 0)
    }

    /// The equivalent case's output (k nil) or gradient k (0 the data input, then the
    /// parameters), correctly rounded: only the pass that gives it.
    static func value(_ e: Case, _ k: Int?) throws(CaseError) -> Tensor {
        let built = try LayerRegistry.makeLayer(e)
        let x = e.input(built.inputName)!
        guard let k else { return built.forward(x) }
        let g = built.backward(x, outputGradient: e.upstream!)
        return k == 0 ? g.input : g.parameters[k - 1]
    }

    /// The layers whose data input may hold −∞ (a masked logit) in a forward-mode case.
    public static let maskableLogits = ["softmax", "log_softmax", "softmax_cross_entropy"]

    /// `tangents` checked against the layer's gradient layout (every name, once, with its shape),
    /// and every value of the case finite: its inputs, upstream and tangents.
    ///
    /// Why finite: a derivative at or along NaN or ±∞ is not defined, and engines disagree on what
    /// they return there (select-style rules give 0 where products give NaN: ReLU's JVP at x < 0
    /// along a NaN tangent is 0 in PyTorch and JAX, a convolution's is NaN), so no golden value
    /// could be right for all of them. The `cnnref-case-1` case carries the conventions of the
    /// forward and backward passes at non-finite values. One exception: a −∞ logit of softmax,
    /// log-softmax or the cross-entropy (a masked class) is the limit the layers extend to
    /// continuously, p = 0 with zero derivatives, where engines agree (README: measured on PyTorch and JAX).
    static func conform(_ tangents: [NamedTensor], of c: Case, _ layer: any Layer, input: [Int], output: [Int]) throws(CaseError) -> [NamedTensor] {
        let conformed = try CaseFormat.conform(tangents, to: CaseFormat.expectedLayout(layer, input: input, output: output).gradients,
                                               path: "tangents", complete: true)
        let fields = c.inputs.map { ("inputs.\($0.name)", $0.tensor) } + (c.upstream.map { [("upstream", $0)] } ?? [])
            + conformed.map { ("tangents.\($0.name)", $0.tensor) }
        let logits = maskableLogits.contains(c.layer) ? "inputs.\(layer.inputName)" : nil
        for (field, t) in fields {
            if let k = t.scalars.firstIndex(where: { !$0.isFinite && !(field == logits && $0 == -.infinity) }) {
                throw CaseError("\(field).data[\(k)]", "\(t[k].isNaN ? "NaN" : t[k] > 0 ? "Infinity" : "-Infinity") in a \(schema) case: forward-mode values need finite inputs, upstream and "
                                + "tangents\(logits == nil ? "" : " (a −∞ logit excepted)") (a derivative at or along NaN or ±∞ is not defined, and engines disagree there); "
                                + "the \(CaseFormat.schema) case without tangents takes non-finite values")
            }
        }
        return conformed
    }
}
