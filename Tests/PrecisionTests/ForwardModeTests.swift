import CNNReference
import Foundation
import GoldenVectors
import PrecisionOracle
import Testing

/// The forward-mode vectors (`jvp/…`, `cnnref-case-2`): every golden JVP is the exact JVP
/// rounded once, by the oracle's own backward pass (ẏ_k = Σ⟨Jᵀe_k, tangent⟩, MPFR), at six
/// output positions of every case (all of a small output).
@Suite struct ForwardModeTests {
    static let catalogue = Catalogue().cases
    static let twins = catalogue.filter { $0.tangents != nil }

    @Test func everyLayerWithGoldenJVPsHasVectorsAtThreePrecisions() {
        for layer in ForwardMode.layers {
            let tags = Set(Self.twins.filter { $0.layer == layer }.compactMap(\.tags.first))
            #expect(tags.isSuperset(of: ["exact-in-float32", "exact-in-bfloat16", "full-double"]), "\(layer): \(tags)")
        }
    }

    @Test(arguments: twins.map(\.id))
    func theGoldenJVPIsCorrectlyRounded(id: String) throws {
        let c = try #require(Self.twins.first { $0.id == id }).evaluated()
        let (checked, violations) = Oracle.jvpViolations(c)
        #expect(checked > 0)
        for v in violations { Issue.record("\(v.caseID) jvp\(v.index): ours \(v.ours), oracle \(v.truth) (\(v.ulps) ulp)") }
    }

    /// Every golden double backward (tangents as the cotangent) is the exact value rounded
    /// once: for conv2d and linear by the oracle's gradients of one-hot inputs, at four positions
    /// of x and of the weight; for PReLU, maxout, σ, tanh, ELU, log-softmax and the cross-entropy
    /// by the oracle's own formulas (`Oracle.directDoubleBackward`); for the others it is exactly 0.
    @Test(arguments: twins.filter { ForwardMode.doubleBackwardLayers.contains($0.layer) }.map(\.id))
    func theGoldenDoubleBackwardIsCorrectlyRounded(id: String) throws {
        let c = try #require(Self.twins.first { $0.id == id }).evaluated()
        let (checked, violations) = Oracle.doubleBackwardViolations(c)
        #expect(checked > 0)
        for v in violations { Issue.record("\(v.caseID) \(v.tensor)\(v.index): ours \(v.ours), oracle \(v.truth) (\(v.ulps) ulp)") }
    }

    /// Swish's certified JVP σ(z)·(ẋ + σ(−z)·(ẋz + β̇x²)) at its branches, against the oracle:
    /// β = ±0 (σ(0) = ½, a rational value, with ẋ = −β̇x²/2 cancelling exactly), x = ±0, and βx
    /// of ±1e300 (σ(βx) or σ(−βx) below even MPFR's exponent range).
    @Test func swishJVPAtItsBranches() throws {
        let template = try #require(Self.twins.first { $0.layer == "swish" })
        var checked = 0
        for beta in [0, -0.0, 0.75, -3, 1e150, -1e150] {
            let xs: [Double] = beta == 0 ? [-3, 0, 5e-324, 2, 1e150, -0.0] : [-1e150, -3, 0, 5e-324, 2, 1e150]
            for tb in [0, 3, -0.5, 1e-300] {
                let tx = xs.enumerated().map { k, x in beta == 0 ? -tb * x * x / 2 : [1, -2, 0.5, 1e-300, -1e300, 0][k] }
                var c = template
                c.inputs = [NamedTensor("x", Tensor(shape: [6], scalars: xs)), NamedTensor("beta", Tensor(shape: [1], scalars: [beta]))]
                c.tangents = [NamedTensor("x", Tensor(shape: [6], scalars: tx)), NamedTensor("beta", Tensor(shape: [1], scalars: [tb]))]
                c.upstream = Tensor(shape: [6], scalars: [1, -1, 2, 0.5, -3, 1])
                c.expected = nil
                let (n, violations) = Oracle.jvpViolations(try c.evaluated())
                checked += n
                for v in violations { Issue.record("swish β \(beta) β̇ \(tb) jvp\(v.index): ours \(v.ours), oracle \(v.truth)") }
            }
        }
        #expect(checked == 6 * 4 * 6)
    }

    /// Swish's double backward at its branches, against the oracle at every element: β = ±0
    /// (h = ½, rational), x = 0, β·w_x + x·w_β = 0 exactly (x = 3, β = 0.75, w_β = −¼), a group
    /// of equal |x| whose A and B both cancel (x = ±2, w_β = 0), and |βx| of 2e150 (σ′ and σ″
    /// below even MPFR's exponent range).
    @Test func swishDoubleBackwardAtItsBranches() throws {
        let template = try #require(Self.twins.first { $0.layer == "swish" })
        let xs: [Double] = [2, -2, 3, -3, 0, 5e-324]
        var checked = 0
        for beta in [0, -0.0, 0.75, -3, 1e150, -1e150] {
            for wb in [0, -0.25, 1e-300] {
                var c = template
                c.inputs = [NamedTensor("x", Tensor(shape: [6], scalars: xs)), NamedTensor("beta", Tensor(shape: [1], scalars: [beta]))]
                c.tangents = [NamedTensor("x", Tensor(shape: [6], scalars: [1, 1, 1, -1, 2, 0.5])), NamedTensor("beta", Tensor(shape: [1], scalars: [wb]))]
                c.upstream = Tensor(shape: [6], scalars: [1, 1, -2, 0.5, 3, 1])
                c.expected = nil
                let (n, violations) = Oracle.doubleBackwardViolations(try c.evaluated(), elements: 6)
                checked += n
                for v in violations { Issue.record("swish β \(beta) w_β \(wb) \(v.tensor)\(v.index): ours \(v.ours), oracle \(v.truth)") }
            }
        }
        #expect(checked == 6 * 3 * 7)
    }

    /// Batch norm's and LRN's JVPs and double backward at their exact branches,
    /// against the oracle at every element:
    /// a channel of equal values (σ² = 0), a rational √(σ² + ε), eval mode, rational powers
    /// (β = 1, S^β = 8), and tangents that cancel (equal tangents in a channel: J·ẋ = 0 in
    /// training, so ẏ = γ̇·x̂ + β̇; zero tangents).
    @Test(arguments: ["batchnorm2d/train-variance-0-channel-2x3x2x2-eps-1e-5", "batchnorm2d/eval-variance-0-channel-2x3x2x2-eps-1e-3",
                      "batchnorm2d/train-rational-root", "batchnorm2d/train-momentum-1-nchw-3x2x2x2-eps-1e-5",
                      "lrn/rational-powers", "lrn/size-7-wider-than-c-beta-1-1x4x2x2-exact", "lrn/size-4-even-1x5x2x2-exact"])
    func normalisationJVPsAtTheirExactBranches(id: String) throws {
        let template = try #require(Self.catalogue.first { $0.id == id })
        let layer = try LayerRegistry.makeLayer(template)
        let x = template.input(layer.inputName)!
        for (seed, pattern) in [[0.5, -1.5, 2, 0.25], [1, 1, 1, 1], [0, -0.0, 0, 3]].enumerated() {
            var c = template
            c.expected = nil
            c.tangents = [NamedTensor(layer.inputName, Tensor(shape: x.shape, scalars: x.scalars.indices.map { pattern[$0 % 4] }))]
                + layer.parameters.map { p in NamedTensor(p.name, Tensor(shape: p.tensor.shape, scalars: p.tensor.scalars.indices.map { pattern[($0 + seed) % 4] })) }
            let e = try c.evaluated()
            let (checked, violations) = Oracle.jvpViolations(e, elements: x.count)
            #expect(checked == x.count)
            for v in violations { Issue.record("\(id) pattern \(seed) jvp\(v.index): ours \(v.ours), oracle \(v.truth)") }
            // The double backward at the same branches (batch norm: constant w gives P = Q = 0 exactly).
            let second = Oracle.doubleBackwardViolations(e, elements: x.count)
            #expect(second.checked == x.count + (layer is BatchNorm2D ? 2 * x.shape[1] : 0))
            for v in second.violations { Issue.record("\(id) pattern \(seed) \(v.tensor)\(v.index): ours \(v.ours), oracle \(v.truth)") }
        }
    }

    /// Softmax's double backward p ⊙ (a ⊙ b − ⟨p, a ⊙ b⟩), and log-softmax's and the
    /// cross-entropy's r·p ⊙ (w − ⟨p, w⟩), at their exact branches, against the oracle at every element: a slice of equal logits (p = 1/n, a
    /// rational value), a −∞ logit beside tied maxima, gaps past 708 (p below the subnormals),
    /// cotangents constant on a slice (J·w = 0 exactly), ±0 and subnormal cotangents, and (for
    /// softmax and log-softmax) upstreams constant on a slice, summing to exactly 0 (r = 0) or to
    /// a subnormal.
    @Test(arguments: ["jvp/softmax/rank2-3x4-axis1-double", "jvp/log_softmax/rank2-3x4-axis1-double", "jvp/softmax_cross_entropy/n4-c5-mean-f32",
                      "jvp/softmax_cross_entropy/n8-c10-sum-f32"])
    func softmaxDoubleBackwardAtItsBranches(id: String) throws {
        let template = try #require(Self.twins.first { $0.id == id })
        let layer = try LayerRegistry.makeLayer(template)
        let shape = template.input(layer.inputName)!.shape, width = shape.last!
        let rows: [[Double]] = [[1, 1, 1, 1, 1], [0, -.infinity, 0, 2, -1], [0, -750, -1000, 3, -709.5], [-0.5, 5e-324, 0, -0.0, 30]]
        let logits = (0..<shape.reduce(1, *)).map { rows[($0 / width) % rows.count][$0 % width % 5] }
        let cotangents: [[Double]] = [[0.5, -1.5, 2, 0.25, 3], [1, 1, 1, 1, 1], [0, -0.0, 0, 3, 0], [1e-300, 5e-324, -1e300, 1, -0.0]]
        let upstreams: [[Double]] = [[1, -1, 2, 0.5, 0.25], [1, -1, 1, -1, 0], [-3, 0, 1e-300, 5e-324, 0], [2, 2, 2, 2, 2]]
        var checked = 0
        for (a, w) in cotangents.enumerated() {
            for u in (template.upstream == nil ? [[]] : upstreams) {
                var c = template
                c.expected = nil
                c.inputs = [NamedTensor(layer.inputName, Tensor(shape: shape, scalars: logits))]
                c.tangents = [NamedTensor(layer.inputName, Tensor(shape: shape, scalars: logits.indices.map { w[($0 + a) % width % 5] }))]
                if template.upstream != nil { c.upstream = Tensor(shape: shape, scalars: logits.indices.map { u[$0 % width % 5] }) }
                let (n, violations) = Oracle.doubleBackwardViolations(try c.evaluated(), elements: logits.count)
                checked += n
                for v in violations { Issue.record("\(id) w \(a) u \(u) \(v.tensor)\(v.index): ours \(v.ours), oracle \(v.truth)") }
            }
        }
        #expect(checked == cotangents.count * (template.upstream == nil ? 1 : upstreams.count) * logits.count)
    }

    /// The layers' own double backward of σ, tanh and ELU, w·u·f″(x), which `cnnref gradcheck
    /// --order 2` checks: where w·u is beyond the doubles (1e300·1e300) and f″ small, or f″
    /// below them (x = −900), it is the exact value rounded once, ±∞ only where that is.
    @Test(arguments: ["sigmoid", "tanh", "elu"])
    func theLayersDoubleBackwardDoesNotOverflowBeforeItsValue(layer: String) throws {
        var c = try #require(Self.twins.first { $0.layer == layer })
        let xs: [Double] = [-900, -300, -40, -2, -0.5, 0.5, 3, 40, 300]
        let ws: [Double] = [1e300, -1e300, 1.5e308, 3e-300]
        let us: [Double] = [1e300, -3e200, 1.5e308, 1e-10]
        let n = xs.count * ws.count * us.count
        let shape = [n]
        c.inputs = [NamedTensor(c.inputs[0].name, Tensor(shape: shape, scalars: (0..<n).map { xs[$0 % xs.count] }))] + c.inputs.dropFirst()
        c.upstream = Tensor(shape: shape, scalars: (0..<n).map { us[$0 / (xs.count * ws.count)] })
        c.tangents = [NamedTensor(c.tangents![0].name, Tensor(shape: shape, scalars: (0..<n).map { ws[($0 / xs.count) % ws.count] }))]
        c.expected = nil
        var e = try c.evaluated()
        let l = try #require(try LayerRegistry.makeLayer(e) as? any SecondOrder)
        let own = l.doubleBackward(e.inputs[0].tensor, outputGradient: e.upstream!, cotangents: Tangents(input: e.tangents![0].tensor))
        e.expected!.doubleBackward = [NamedTensor(e.expected!.doubleBackward[0].name, own.gradients.input)]
        let (checked, violations) = Oracle.doubleBackwardViolations(e, elements: n)
        #expect(checked == n)
        var finite = 0
        for k in 0..<n where own.gradients.input[k].isFinite && own.gradients.input[k].magnitude > 1e280 { finite += 1 }
        #expect(finite >= 4, "\(layer): \(finite) values beyond 1e280")
        for v in violations {
            Issue.record("\(layer) double_backward\(v.index): ours \(v.ours), oracle \(v.truth) (\(v.ulps) ulp)")
        }
    }

    /// The gradient checker's double-double objective (`ExtendedForward`) is as accurate as its
    /// layers state: every output of every matrix case of theirs within 2⁻⁸⁰·Mⱼ of the true value.
    @Test func theExtendedForwardPassesHoldTheirStatedError() throws {
        var compared = 0, overall = (0.0, "")
        for c in Catalogue().gradcheckMatrix where (try? LayerRegistry.makeLayer(c)) is any ExtendedForward {
            let (checked, worst, at) = Oracle.extendedForwardRatio(c)
            compared += checked
            if worst > overall.0 { overall = (worst, "\(c.id)[\(at)]") }
            #expect(worst <= 1, "\(c.id): output \(at) off by \(worst) times 2⁻⁸⁰·M")
        }
        #expect(compared > 5000, "\(compared)")
        print("double-double outputs: \(compared) compared, worst \(overall.0) of the bound at \(overall.1)")
    }

    /// The edges: each layer's first twin with its inputs, parameters, tangents and upstream
    /// redrawn (seeded) from ±0, subnormals, 1e±300 and values up to ±1.5e308 (softmax, whose
    /// oracle needs bits in proportion to the logit gaps, up to ±30): every JVP and double
    /// backward at the checked positions is still the exact value rounded once.
    @Test(arguments: ForwardMode.layers)
    func theGoldenJVPIsCorrectlyRoundedAtTheEdges(layer: String) throws {
        let template = try #require(Self.twins.first { $0.layer == layer })
        let wide: [Double] = [0, -0.0, 5e-324, -2.5e-310, 0x1p-1022, 1e-300, -1e-300, 1, -0.75, 3, 1e300, -1e300, 1.5e308]
        let logits = ["softmax", "log_softmax", "softmax_cross_entropy"].contains(layer)
        let pool = logits ? [0, -0.0, 5e-324, -2.5e-310, 1e-300, 1, -0.75, 3, -30, 30] : wide
        for seed in 0..<4 {
            var state = UInt64(seed + 1) &* 0x9E37_79B9_7F4A_7C15
            func draw() -> Double {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return pool[Int((state >> 33) % UInt64(pool.count))]
            }
            func redrawn(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, scalars: t.scalars.map { _ in draw() }) }
            var c = template
            let names = Set(c.tangents!.map(\.name))
            c.inputs = c.inputs.map { names.contains($0.name) ? NamedTensor($0.name, redrawn($0.tensor)) : $0 }
            c.tangents = c.tangents!.map { NamedTensor($0.name, redrawn($0.tensor)) }
            c.upstream = c.upstream.map(redrawn)
            c.expected = nil
            let e = try c.evaluated()
            let (checked, violations) = Oracle.jvpViolations(e)
            #expect(checked > 0)
            for v in violations { Issue.record("\(layer) seed \(seed) jvp\(v.index): ours \(v.ours), oracle \(v.truth)") }
            for v in Oracle.doubleBackwardViolations(e).violations {
                Issue.record("\(layer) seed \(seed) \(v.tensor)\(v.index): ours \(v.ours), oracle \(v.truth)")
            }
        }
    }
}
