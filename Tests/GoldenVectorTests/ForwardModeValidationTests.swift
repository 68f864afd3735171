import CNNReference
import Foundation
import GoldenVectors
import Testing

/// `cnnref validate` on forward-mode vectors (`jvp/…`): an engine's JVP judged under the bound
/// of its equivalent case (ForwardMode). The engines here compute the JVP another way: the
/// layers' own `jvp` (SecondOrder: conv(ẋ; W) and conv(x; Ẇ) summed as two values, double-double
/// elementwise derivatives), optionally stored in a narrower format.
@Suite struct ForwardModeValidationTests {
    static let twins: [Case] = try! VectorSet.loadAll(vectors).cases.filter { $0.tangents != nil }

    /// The engine's result for a twin: the golden outputs, gradients and double backward, and
    /// `jvp` from `compute`.
    static func result(_ c: Case, _ compute: (Case) throws -> Tensor?) rethrows -> EngineResult? {
        guard let e = c.expected, let j = try compute(c) else { return nil }
        return EngineResult(outputs: e.outputs, gradients: e.gradients, jvp: [NamedTensor(e.jvp[0].name, j)], doubleBackward: e.doubleBackward)
    }

    /// The layers' own double backward (SecondOrder) with the tangents as the cotangent.
    static func layersDoubleBackward(_ c: Case) throws -> [NamedTensor] {
        let layer = try LayerRegistry.makeLayer(c)
        let s = try #require(layer as? any SecondOrder), t = try #require(c.tangents)
        let d = s.doubleBackward(c.input(layer.inputName)!, outputGradient: c.upstream ?? Tensor(scalar: 1),
                                 cotangents: Gradients(input: t[0].tensor, parameters: t.dropFirst().map(\.tensor)))
        return zip(t.map(\.name), [d.gradients.input] + d.gradients.parameters).map { NamedTensor($0, $1) }
    }

    static func withDoubleBackward(_ c: Case, _ d: [NamedTensor]) -> EngineResult {
        let e = c.expected!
        return EngineResult(outputs: e.outputs, jvp: e.jvp, doubleBackward: d)
    }

    static func layersJVP(_ c: Case) throws -> Tensor? {
        let layer = try LayerRegistry.makeLayer(c)
        guard let s = layer as? any SecondOrder, let t = c.tangents else { return nil }
        let x = c.input(layer.inputName)!
        return s.jvp(x, tangents: Gradients(input: t[0].tensor, parameters: t.dropFirst().map(\.tensor)))
    }

    static func verdict(_ c: Case, _ r: EngineResult?, _ p: Precision) -> CaseVerdict {
        Validator.validate(engine: "test", precision: p, cases: [c], results: r.map { [c.id: $0] } ?? [:]).cases[0]
    }

    @Test func theGoldenJVPsPassWithTheJVPJudged() throws {
        #expect(Self.twins.count >= 100)
        for c in Self.twins {
            let v = Self.verdict(c, try Self.result(c) { $0.expected!.jvp[0].tensor }, .float64)
            #expect(v.status == .passed && v.tensors.contains { $0.name == "jvp.\(c.expected!.jvp[0].name)" && $0.status == .passed }, "\(c.id): \(v.reason)")
        }
    }

    /// Another float64 JVP (the layers' own, rounded more than once) passes float64: the bound
    /// is not the golden's own rounding.
    @Test func theLayersOwnJVPPassesFloat64() throws {
        for c in Self.twins {
            let v = Self.verdict(c, try Self.result(c, Self.layersJVP), .float64)
            #expect(v.status == .passed, "\(c.id): \(v.tensors.filter { $0.status == .failed }.map { "\($0.name) \($0.ratio)" })")
        }
    }

    /// A JVP stored in float32 passes float32 and fails float64; stored in bfloat16 it fails
    /// float32: the JVP's bound tells the precisions apart (where the stored JVP differs from
    /// the golden above float64's underflow range).
    @Test func storedJVPsTellPrecisionsApart() throws {
        func bf16(_ v: Double) -> Double {
            let f = Float(v), bits = f.bitPattern
            let rounded = (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000
            return f.isFinite ? Double(Float(bitPattern: rounded)) : Double(f)
        }
        var toldApart = 0, bfFailed = 0, f32Cases = 0
        for c in Self.twins where c.tags.first == "exact-in-float32" {
            f32Cases += 1
            let j = c.expected!.jvp[0].tensor
            let f32 = Tensor(shape: j.shape, scalars: j.scalars.map { Double(Float($0)) })
            let r = try #require(try Self.result(c) { _ in f32 })
            #expect(Self.verdict(c, r, .float32).status == .passed, "\(c.id) float32")
            // Told apart where float32's rounding shows above float64's underflow range.
            if zip(f32.scalars, j.scalars).contains(where: { $0 != $1 && $1.magnitude > 0x1p-1000 }) {
                let v = Self.verdict(c, r, .float64)
                // Far out on tanh and elu (|x| ≥ 20) the derivative is 1 − y² or αeˣ beside an
                // upstream of order 1: the float64 bound is absolute there (an engine's 1 − y²
                // cancels), so float32's rounding of a 1e-23 JVP is within it.
                #expect(v.status == .failed || c.id.hasSuffix("range-20-745-f32"), "\(c.id): float32 JVP passed float64")
                if v.status == .failed { toldApart += 1 }
            }
            let b = Tensor(shape: j.shape, scalars: j.scalars.map(bf16))
            if b.scalars != f32.scalars, Self.verdict(c, try Self.result(c) { _ in b }, .float32).status == .failed { bfFailed += 1 }
        }
        #expect(toldApart > 0 && bfFailed >= f32Cases * 3 / 4, "\(toldApart) told apart, bfloat16 failed float32 on \(bfFailed) of \(f32Cases)")
    }

    /// Wrong JVPs fail at float64 and float32: a bilinear layer that leaves out the weight's
    /// tangent (JVP in x alone), and one element off by a relative 1e-9 at float64.
    @Test func wrongJVPsFail() throws {
        for c in Self.twins where (c.layer == "conv2d" || c.layer == "linear") && c.tags.first != "exact-in-bfloat16" {
            var noWeight = c
            noWeight.tangents![1].tensor = Tensor(zeros: noWeight.tangents![1].tensor.shape)
            let wrong = try Self.result(c) { _ in try Self.layersJVP(noWeight) }
            let p: Precision = c.tags.first == "full-double" ? .float64 : .float32
            #expect(Self.verdict(c, wrong, p).status == .failed, "\(c.id): a JVP without the weight's tangent passed \(p)")
        }
        for c in Self.twins where c.tags.first == "full-double" {
            var j = c.expected!.jvp[0].tensor
            guard let i = j.scalars.firstIndex(where: { $0.isFinite && $0.magnitude > 1e-3 }) else { continue }
            j[i] *= 1 + 1e-9
            let v = Self.verdict(c, try Self.result(c) { _ in j }, .float64)
            #expect(v.status == .failed && v.tensors.first { $0.name == "jvp.\(c.expected!.jvp[0].name)" }?.worst?.index == j.index(ofFlat: i), "\(c.id)")
        }
    }

    /// A results file's `jvp` section: names checked like the other sections; missing, the
    /// case is partial, never passed.
    @Test func resultsFilesCarryTheJVP() throws {
        let c = try #require(Self.twins.first { $0.layer == "relu" })
        let cases = [c.id: c]
        let jvp = c.expected!.jvp[0].tensor.json.formatted()
        let ok = #"{"engine": "e", "precision": "float64", "results": {"\#(c.id)": {"jvp": {"y": \#(jvp)}}}}"#
        let file = try ResultsFile.decode(ok, cases: cases)
        #expect(file.results[c.id]?.jvp.count == 1)
        let bad = #"{"engine": "e", "precision": "float64", "results": {"\#(c.id)": {"jvp": {"z": \#(jvp)}}}}"#
        #expect(throws: CaseError.self) { _ = try ResultsFile.decode(bad, cases: cases) }
        do { _ = try ResultsFile.decode(bad, cases: cases) } catch { #expect("\(error)".hasPrefix("results.\(c.id).jvp.z: unknown tensor"), "\(error)") }
        let e = c.expected!
        let forwardOnly = Self.verdict(c, EngineResult(outputs: e.outputs, gradients: e.gradients), .float64)
        #expect(forwardOnly.status == .partial && forwardOnly.reason.contains("jvp.y"), "\(forwardOnly.reason)")
        // What the adapters write: the output and the JVP (the gradients are the cnnref-case-1 case's).
        let forwardMode = Self.verdict(c, EngineResult(outputs: e.outputs, jvp: e.jvp, doubleBackward: e.doubleBackward), .float64)
        #expect(forwardMode.status == .passed, "\(forwardMode.reason)")
    }

    /// A forward-mode file that is wrong is refused naming the field: no tangents, a tangent of
    /// the wrong shape or missing, a double backward on a layer without golden ones.
    @Test func badForwardModeCasesNameTheField() throws {
        let c = try #require(Self.twins.first { $0.layer == "linear" })
        func error(_ edit: (inout Case) -> Void) -> String {
            var d = c
            edit(&d)
            do { _ = try CaseDecoder().decode(d.json); return "" } catch { return "\(error)" }
        }
        #expect(error { _ in } == "")
        #expect(error { $0.tangents![1].tensor = Tensor(zeros: [1]) }.hasPrefix("tangents.weight.shape: expected"))
        #expect(error { $0.tangents!.removeLast() }.hasPrefix("tangents.bias: missing"))
        // Every layer has golden JVPs and a golden double backward.
        #expect(Set(ForwardMode.layers) == Set(LayerRegistry.ids))
        #expect(Set(ForwardMode.doubleBackwardLayers) == Set(LayerRegistry.ids))
        var json = c.json
        if case .object(var members) = json { members.removeAll { $0.0 == "tangents" }; json = .object(members) }
        do { _ = try CaseDecoder().decode(json); Issue.record("a cnnref-case-2 case without tangents decoded") } catch {
            #expect("\(error)".hasPrefix("tangents: missing required field"), "\(error)")
        }
    }

    /// A forward-mode case with NaN or ±∞ anywhere — in any input, parameter or buffer, the
    /// upstream or any tangent, at the first, last or a seeded middle position — is refused, naming
    /// the field and the element; decoded and built in Swift (`evaluated`) alike.
    @Test(arguments: ForwardMode.layers)
    func nonFiniteForwardModeValuesAreRefused(layer: String) throws {
        let c = try #require(Self.twins.first { $0.layer == layer })
        var fields = c.inputs.map { ("inputs.\($0.name)", $0.tensor.count) } + c.tangents!.map { ("tangents.\($0.name)", $0.tensor.count) }
        if let u = c.upstream { fields.append(("upstream", u.count)) }
        var state: UInt64 = 0x5DEE_CE66
        for (field, count) in fields {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            for (k, value) in [(0, Double.nan), (count - 1, .infinity), (Int((state >> 33) % UInt64(count)), -.infinity)] {
                var d = c
                func put(_ t: Tensor) -> Tensor { var t = t; t.scalars[k] = value; return t }
                let (group, name) = (field.split(separator: ".").first!, field.split(separator: ".").last!)
                switch group {
                case "inputs": d.inputs = d.inputs.map { $0.name == name ? NamedTensor($0.name, put($0.tensor)) : $0 }
                case "tangents": d.tangents = d.tangents!.map { $0.name == name ? NamedTensor($0.name, put($0.tensor)) : $0 }
                default: d.upstream = put(d.upstream!)
                }
                let spelled = value.isNaN ? "NaN" : value > 0 ? "Infinity" : "-Infinity"
                let expected = "\(field).data[\(k)]: \(spelled) in a cnnref-case-2 case: forward-mode values need finite"
                // The dropout mask (0 or 1) and batch norm's running variance (≥ 0) refuse some of
                // these first, with their own message for the same element.
                let own = ["inputs.mask", "inputs.running_var"].contains(field) ? "\(field).data[\(k)]: " : expected
                // A −∞ logit (a masked class) is taken.
                let masked = ForwardMode.maskableLogits.contains(layer) && field == "inputs.\(c.inputs[0].name)"
                    && value == -.infinity
                let decoded: String
                do { _ = try CaseDecoder().decode(d.json); decoded = "" } catch { decoded = "\(error)" }
                #expect(masked ? decoded == "" : decoded.hasPrefix(own), "\(c.id): \(decoded)")
                d.expected = nil
                do {
                    _ = try d.evaluated()
                    if !masked { Issue.record("\(c.id) \(field)[\(k)] = \(value) evaluated") }
                } catch {
                    #expect(!masked && "\(error)".hasPrefix(own), "\(c.id): \(error)")
                }
            }
        }
    }

    /// The double backward: the layers' own passes float64; stored in float32 it passes float32
    /// and, where it is not 0, fails float64; conv2d's and linear's with the weight W where the
    /// cotangent's w_W belongs fails; missing, the case is partial.
    @Test func theDoubleBackwardIsJudged() throws {
        let second = Self.twins.filter { !$0.expected!.doubleBackward.isEmpty }
        #expect(Set(second.map(\.layer)) == Set(ForwardMode.doubleBackwardLayers))
        for c in second {
            let own = try Self.layersDoubleBackward(c)
            let v = Self.verdict(c, Self.withDoubleBackward(c, own), .float64)
            #expect(v.status == .passed && v.tensors.contains { $0.name.hasPrefix("double_backward.") && $0.status == .passed },
                    "\(c.id): \(v.tensors.filter { $0.status == .failed }.map { "\($0.name) \($0.ratio)" })")
            let missing = Self.verdict(c, EngineResult(outputs: c.expected!.outputs, jvp: c.expected!.jvp), .float64)
            #expect(missing.status == .partial && missing.reason.contains("double_backward."), "\(c.id): \(missing.reason)")
        }
        var bfloat16Failures = 0, nonzero = 0, passedAsFloat32: [String] = []
        for c in second where c.tags.first == "exact-in-float32" {
            let golden = c.expected!.doubleBackward
            func stored(_ round: (Double) -> Double) -> [NamedTensor] {
                golden.map { NamedTensor($0.name, Tensor(shape: $0.tensor.shape, scalars: $0.tensor.scalars.map(round))) }
            }
            let f32 = stored { Double(Float($0)) }
            #expect(Self.verdict(c, Self.withDoubleBackward(c, f32), .float32).status == .passed, "\(c.id) float32")
            if zip(f32, golden).contains(where: { $0.tensor.scalars != $1.tensor.scalars }) && !c.id.contains("range-20-745") {
                #expect(Self.verdict(c, Self.withDoubleBackward(c, f32), .float64).status == .failed, "\(c.id): float32 passed float64")
            }
            // Beyond |x| = 20, σ and tanh saturate: an engine forming σ″ from the saved σ (1 − σ rounds
            // to 0 in float32) cannot resolve it, and the bound says so (|w·u|·σ·u, as at first order).
            guard golden.contains(where: { $0.tensor.scalars.contains { $0 != 0 } }), !c.id.contains("range-20-745") else { continue }
            nonzero += 1
            let bf16 = stored { Precision.bfloat16.outputFormat.rounded($0) }
            if Self.verdict(c, Self.withDoubleBackward(c, bf16), .float32).status == .failed { bfloat16Failures += 1 } else { passedAsFloat32.append(c.id) }
            guard c.layer == "conv2d" || c.layer == "linear" else { continue }
            var wrong = c
            wrong.tangents![1].tensor = c.input("weight")!   // dx of ⟨w, g⟩ taken with W, not w_W
            let mutant = try Self.layersDoubleBackward(wrong)
            let v = Self.verdict(c, Self.withDoubleBackward(c, [mutant[0]] + golden.dropFirst()), .float32)
            #expect(v.status == .failed && v.tensors.contains { $0.name == "double_backward.x" && $0.status == .failed }, "\(c.id)")
        }
        // Stored in bfloat16, a nonzero double backward fails float32 (every layer whose double backward is not 0).
        #expect(nonzero >= 7 && bfloat16Failures == nonzero, "\(bfloat16Failures) of \(nonzero); passed as float32: \(passedAsFloat32)")
    }

    /// Wrong second derivatives fail float32 on the exact-in-float32 twins: σ″ as σ′, tanh″ with
    /// the wrong sign, ELU's α·eˣ applied on x > 0 too, PReLU's ∂/∂x with the slope a for w_a,
    /// swish's f_xx and f_xβ without their σ″ terms, batch norm's in training with the batch
    /// statistics held constant, LRN's without the term of a_k's own output, softmax's without −⟨p, a ⊙ b⟩, log-softmax's −Σu·p ⊙ w without the centring by ⟨p, w⟩, the cross-entropy's without the
    /// division by N (mean) or with the wrong sign (sum).
    @Test func wrongSecondDerivativesFail() throws {
        for c in Self.twins where c.tags.first == "exact-in-float32"
            && ["sigmoid", "tanh", "elu", "prelu", "swish", "softmax", "log_softmax", "softmax_cross_entropy", "batchnorm2d", "lrn"].contains(c.layer)
            && !c.id.contains("range-20-745") {   // saturated: see theDoubleBackwardIsJudged
            let layer = try LayerRegistry.makeLayer(c)
            let x = c.input(layer.inputName)!, u = ForwardMode.upstream(c)!, w = c.tangents!
            var d = c.expected!.doubleBackward
            switch layer {
            case is Sigmoid:
                d[0].tensor = Tensor(shape: x.shape, scalars: x.scalars.indices.map { w[0].tensor[$0] * u[$0] * logisticDerivative(x[$0]) })
            case is Tanh:
                d[0].tensor = Tensor(shape: x.shape, scalars: d[0].tensor.scalars.map { -$0 })
            case let elu as ELU:
                d[0].tensor = Tensor(shape: x.shape, scalars: x.scalars.indices.map { w[0].tensor[$0] * u[$0] * elu.alpha * Foundation.exp(x[$0]) })
            case is PReLU:
                var wrong = c
                wrong.tangents![1] = NamedTensor("slope", c.input("slope")!)
                d[0] = try Self.layersDoubleBackward(wrong)[0]
            case let l as Softmax:
                // p ⊙ a ⊙ b without the −⟨p, a ⊙ b⟩ that keeps it in J's range.
                var dx = x.scalars
                for slice in AxisSlices(shape: x.shape, axis: l.axis < 0 ? l.axis + x.rank : l.axis).all {
                    let m = slice.map { x[$0] }.max()!, e = slice.map { Foundation.exp(x[$0] - m) }, total = e.reduce(0, +)
                    let p = e.map { $0 / total }
                    let pw = zip(slice, p).reduce(0.0) { $0 + w[0].tensor[$1.0] * $1.1 }, pu = zip(slice, p).reduce(0.0) { $0 + u[$1.0] * $1.1 }
                    for (k, i) in slice.enumerated() { dx[i] = p[k] * (w[0].tensor[i] - pw) * (u[i] - pu) }
                }
                d[0].tensor = Tensor(shape: x.shape, scalars: dx)
            case let l as LogSoftmax:
                var dx = x.scalars
                for slice in AxisSlices(shape: x.shape, axis: l.axis < 0 ? l.axis + x.rank : l.axis).all {
                    let m = slice.map { x[$0] }.max()!, e = slice.map { Foundation.exp(x[$0] - m) }, total = e.reduce(0, +)
                    let sum = slice.reduce(0.0) { $0 + u[$1] }
                    for (k, i) in slice.enumerated() { dx[i] = -sum * e[k] / total * w[0].tensor[i] }
                }
                d[0].tensor = Tensor(shape: x.shape, scalars: dx)
            case let swish as Swish:
                // f_xx and f_xβ without their σ″ terms.
                let b = swish.beta, wb = w[1].tensor[0]
                d[0].tensor = Tensor(shape: x.shape, scalars: x.scalars.indices.map { i in
                    u[i] * (b * w[0].tensor[i] + x[i] * wb) * 2 * logisticDerivative(b * x[i])
                })
            case let bn as BatchNorm2D where bn.training:
                // The batch statistics treated as constants: eval's w_γ·u/σ̂.
                var dx = x.scalars
                for ch in 0..<x.shape[1] {
                    let idx = bn.indices(x.shape, ch), n = Double(idx.count)
                    let mu = idx.reduce(0.0) { $0 + x[$1] } / n
                    let sd = (idx.reduce(0.0) { $0 + (x[$1] - mu) * (x[$1] - mu) } / n + bn.eps).squareRoot()
                    for i in idx { dx[i] = w[1].tensor[ch] * u[i] / sd }
                }
                d[0].tensor = Tensor(shape: x.shape, scalars: dx)
            case let lrn as LRN:
                // Without the term of a_k's own output, −(2αβ/size)·u_k·Σ_window w·a·S_k^(−β−1).
                let plane = x.shape[2] * x.shape[3], channels = x.shape[1], a = 2 * lrn.alpha * lrn.beta / Double(lrn.size)
                d[0].tensor = Tensor(shape: x.shape, scalars: x.scalars.indices.map { i in
                    let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
                    let column = lrn.window(c, channels: channels).map { (n * channels + $0) * plane + p }
                    let base = lrn.k + lrn.alpha * column.reduce(0.0) { $0 + x[$1] * x[$1] } / Double(lrn.size)
                    let dot = column.reduce(0.0) { $0 + w[0].tensor[$1] * x[$1] }
                    return d[0].tensor[i] + a * u[i] * dot * Foundation.pow(base, -lrn.beta - 1)
                })
            case let ce as SoftmaxCrossEntropy:
                let n = Double(x.shape[0])
                d[0].tensor = Tensor(shape: x.shape, scalars: d[0].tensor.scalars.map { ce.reduction == .mean ? $0 * n : -$0 })
            default: continue
            }
            let v = Self.verdict(c, Self.withDoubleBackward(c, d), .float32)
            #expect(v.status == .failed && v.tensors.contains { $0.name == "double_backward.\(layer.inputName)" && $0.status == .failed },
                    "\(c.id): \(v.tensors.map { "\($0.name) \($0.status) \($0.ratio)" })")
        }
    }
}
