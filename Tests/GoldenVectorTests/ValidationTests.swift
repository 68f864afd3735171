import CNNReference
import GradientCheck
import Foundation
import GoldenVectors
import Testing

@Suite struct ValidationTests {
    static let cases = try! VectorSet.load(vectors)
    static func golden(_ round: (Double) -> Double = { $0 }) -> [String: EngineResult] {
        Dictionary(uniqueKeysWithValues: cases.map { c in
            let e = c.expected!
            func r(_ t: [NamedTensor]) -> [NamedTensor] {
                t.map { NamedTensor($0.name, Tensor(shape: $0.tensor.shape, scalars: $0.tensor.scalars.map(round))) }
            }
            return (c.id, EngineResult(outputs: r(e.outputs), gradients: r(e.gradients), jvp: r(e.jvp), doubleBackward: r(e.doubleBackward)))
        })
    }

    @Test(arguments: Precision.allCases)
    func goldenValuesPassAtEveryPrecision(precision: Precision) {
        let report = Validator.validate(engine: "golden", precision: precision, cases: Self.cases, results: Self.golden())
        #expect(report.count(.failed) == 0, "\(report.cases.filter { $0.status == .failed }.map(\.id).prefix(5))")
        #expect(report.count(.passed) >= 200)
        // Full-double inputs are not representable below float64: not applicable, never failed.
        if precision != .float64 {
            #expect(report.cases.filter { $0.status == .notApplicable }.allSatisfy { $0.id.contains("double") || !$0.reason.isEmpty })
        }
    }

    @Test func goldenRoundedToFloat32PassesAtFloat32() {
        let report = Validator.validate(engine: "golden-f32", precision: .float32, cases: Self.cases,
                                        results: Self.golden { Double(Float($0)) })
        #expect(report.count(.failed) == 0, "\(report.cases.filter { $0.status == .failed }.prefix(3).map { "\($0.id) \($0.tensors.filter { $0.status == .failed }.map(\.name))" })")
        #expect(report.count(.passed) >= 200)
    }

    /// Nudges one element of one tensor to `factor` times its bound away from the golden value.
    func nudged(_ id: String, section: String, factor: Double, precision: Precision, index: Int,
                round: @escaping (Double) -> Double = { $0 }) throws -> (ValidationReport, [Int]) {
        let c = try #require(Self.cases.first { $0.id == id })
        var results = Self.golden(round)
        let golden = c.expected!
        let scales = try ErrorModel.scales(c, golden: golden)
        let tensor = section == "outputs" ? golden.outputs[0].tensor : golden.gradients[0].tensor
        let scale = section == "outputs" ? scales.output : scales.gradients[0]
        let bound = scale.bound(index, golden: tensor[index], precision: precision)
        var result = results[id]!
        if section == "outputs" { result.outputs[0].tensor[index] = tensor[index] + factor * bound }
        else { result.gradients[0].tensor[index] = tensor[index] + factor * bound }
        results[id] = result
        return (Validator.validate(engine: "nudged", precision: precision, cases: Self.cases, results: results), tensor.index(ofFlat: index))
    }

    @Test func anElementJustBeyondItsBoundFailsAtFloat64AndIsNamed() throws {
        let (report, index) = try nudged("conv2d/k3-s2-pad1-double", section: "outputs", factor: 1.5, precision: .float64, index: 17)
        let verdict = try #require(report.cases.first { $0.id == "conv2d/k3-s2-pad1-double" })
        #expect(verdict.status == .failed)
        let t = try #require(verdict.tensors.first { $0.status == .failed })
        #expect(t.name == "outputs.y" && t.worst?.index == index)
        #expect(report.count(.failed) == 1)
        // Within the bound it passes.
        let (inside, _) = try nudged("conv2d/k3-s2-pad1-double", section: "outputs", factor: 0.9, precision: .float64, index: 17)
        #expect(inside.count(.failed) == 0)
    }

    @Test func aFloat32ConvolutionOffByTenBoundsFailsAndIsNamed() throws {
        let id = "conv2d/long-sums-3x3x64-exact"
        let (report, index) = try nudged(id, section: "outputs", factor: 10, precision: .float32, index: 40, round: { Double(Float($0)) })
        let verdict = try #require(report.cases.first { $0.id == id })
        #expect(verdict.status == .failed)
        #expect(verdict.tensors.first { $0.status == .failed }?.worst?.index == index)
        #expect(report.count(.failed) == 1)
    }

    @Test func tieConventionsAreNamedNotFailed() throws {
        let id = "maxpool2d/tie-all-equal-overlapping"
        let c = try #require(Self.cases.first { $0.id == id })
        var results = Self.golden()
        // An engine that splits each window's gradient among its tied maxima.
        var dx = Tensor(zeros: c.inputs[0].tensor.shape)
        let pool = try LayerRegistry.makeLayer(c) as! MaxPool2D
        pool.window.forEachWindow(input: dx.shape) { out, taps in for t in taps { dx[t] += c.upstream![out] / Double(taps.count) } }
        results[id]!.gradients = [NamedTensor("x", dx)]
        let report = Validator.validate(engine: "splitter", precision: .float64, cases: Self.cases, results: results)
        let verdict = try #require(report.cases.first { $0.id == id })
        #expect(verdict.status == .passed)
        #expect(verdict.tensors.contains { $0.status == .convention && $0.detail.contains("splits the gradient equally") })
    }

    @Test func casesNotRunAreSkippedNeverPassed() {
        var results = Self.golden()
        results["relu/on-kink"] = nil
        results["linear/n2-d3-m4-exact"]!.gradients = []
        let report = Validator.validate(engine: "partial", precision: .float64, cases: Self.cases, results: results)
        #expect(report.cases.first { $0.id == "relu/on-kink" }?.status == .skipped)
        let partial = report.cases.first { $0.id == "linear/n2-d3-m4-exact" }
        #expect(partial?.status == .partial && partial?.tensors.filter { $0.status == .skipped }.count == 3)
        #expect(partial?.reason.hasPrefix("forward only") == true)
        #expect(report.count(.skipped) == 1 && report.count(.partial) == 1)
        #expect(report.summary.hasSuffix(", 1 partial"))
        // One gradient of three missing: partial too, naming it.
        results["linear/n2-d3-m4-exact"] = Self.golden()["linear/n2-d3-m4-exact"]
        results["linear/n2-d3-m4-exact"]!.gradients.removeLast()
        let one = Validator.validate(engine: "partial", precision: .float64, cases: Self.cases, results: results)
        #expect(one.cases.first { $0.id == "linear/n2-d3-m4-exact" }?.reason == "not in the results: gradients.bias")
    }

    /// A Swift engine validated in-process, without files: a naive float32 engine
    /// for linear layers (a plain loop, as an engine would write it).
    struct NaiveFloat32Linear: Engine {
        let name = "naive-float32-linear"
        let precision = Precision.float32
        func run(_ c: Case) throws -> EngineResult? {
            guard c.layer == "linear" else { return nil }
            let x = c.input("x")!, w = c.input("weight")!, b = c.input("bias")!
            let (n, d, m) = (x.shape[0], x.shape[1], w.shape[0])
            var y = [Double](repeating: 0, count: n * m)
            for i in 0..<n { for o in 0..<m {
                var s = Float(b[o])
                for k in 0..<d { s += Float(x[i * d + k]) * Float(w[o * d + k]) }
                y[i * m + o] = Double(s)
            } }
            return EngineResult(outputs: [NamedTensor("y", Tensor(shape: [n, m], scalars: y))])
        }
    }

    @Test func aSwiftEngineIsValidatedInProcess() {
        let report = Validator.validate(NaiveFloat32Linear(), cases: Self.cases)
        #expect(report.count(.failed) == 0)
        // Outputs only: forward only, partial, never passed.
        #expect(report.cases.filter { $0.id.hasPrefix("linear/") && $0.status == .partial }.count >= 7)
        #expect(report.count(.passed) == 0)
        #expect(report.count(.skipped) > 300)   // every other layer: not supported, so skipped
    }
}

/// Engines that compute in one precision and claim another, simulated in-process:
/// they round every input to `format`, evaluate the reference on the rounded
/// inputs and store float32 results, as a float32 engine would.
struct RoundingEngine: Engine {
    let name: String
    let precision = Precision.float32
    let format: FloatFormat
    func run(_ c: Case) throws -> EngineResult? {
        func round(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, scalars: t.scalars.map(format.rounded)) }
        func store(_ t: [NamedTensor]) -> [NamedTensor] { t.map { NamedTensor($0.name, Tensor(shape: $0.tensor.shape, scalars: $0.tensor.scalars.map { Double(Float($0)) })) } }
        var rounded = c
        rounded.inputs = c.inputs.map { NamedTensor($0.name, round($0.tensor)) }
        rounded.upstream = c.upstream.map(round)
        let e = try rounded.evaluated().expected!
        return EngineResult(outputs: store(e.outputs), gradients: store(e.gradients))
    }
}

@Suite struct PrecisionFingerprintTests {
    static let cases = ValidationTests.cases

    @Test(arguments: [(FloatFormat.tf32, Precision.tf32), (.bfloat16, .bfloat16)])
    func anEngineRoundingItsInputsFailsFloat32AndIsNamed(format: FloatFormat, expected: Precision) throws {
        let engine = RoundingEngine(name: "secretly-\(format.name)", format: format)
        let fingerprint = Fingerprint.of(engine, cases: Self.cases)
        let claimed = fingerprint.report(.float32)
        #expect(claimed.count(.failed) > 20, "\(claimed.summary)")
        #expect(fingerprint.tightest == expected, "\(fingerprint.lines)")
        let why = try #require(fingerprint.explanation(claimed: .float32))
        #expect(why.hasPrefix("fails float32 on \(claimed.count(.failed)) cases, worst "))
        #expect(why.contains("consistent with \(expected.rawValue): "), "\(why)")
        // The same engine validated directly as float32 fails.
        #expect(!Validator.validate(engine, cases: Self.cases).passed)
    }

    /// One plainly wrong case (a NaN where every precision expects a number) does not hide
    /// the precision the rest of the results show: it is set apart and named.
    @Test func aCaseWrongAtEveryPrecisionIsSetApartAndThePrecisionStillNamed() throws {
        let engine = RoundingEngine(name: "secretly-bfloat16", format: .bfloat16)
        var (results, unsupported) = Validator.run(engine, cases: Self.cases)
        let everywhere = try #require(Self.cases.first { c in
            Precision.allCases.allSatisfy { Validator.inapplicability(c, $0) == nil } && results[c.id] != nil
        })
        results[everywhere.id]!.outputs[0].tensor[0] = .nan
        let fingerprint = Fingerprint.of(engine: engine.name, claimed: .float32, cases: Self.cases, results: results, unsupported: unsupported)
        #expect(fingerprint.tightest == nil)
        #expect(fingerprint.wrongAtEveryPrecision == [everywhere.id])
        #expect(fingerprint.consistentApartFromWrong.first == .bfloat16, "\(fingerprint.lines)")
        let why = try #require(fingerprint.explanation(claimed: .float32))
        #expect(why.contains("apart from the 1 case wrong at every precision (\(everywhere.id)), consistent with bfloat16: "), "\(why)")
    }

    /// The golden values rounded once to each format: the best an engine of that
    /// precision can store. They pass at that precision, and the fingerprint names it.
    @Test(arguments: Precision.allCases)
    func goldenValuesRoundedToTheOutputFormatPassAndAreNamed(precision: Precision) {
        let results = ValidationTests.golden(precision.outputFormat.rounded)
        let report = Validator.validate(engine: "rounded", precision: precision, cases: Self.cases, results: results)
        #expect(report.count(.failed) == 0, "\(report.cases.filter { $0.status == .failed }.prefix(3).map { "\($0.id) \($0.tensors.filter { $0.status == .failed }.map(ValidationTextRow.row))" })")
        let fingerprint = Fingerprint.of(engine: "rounded", cases: Self.cases, results: results)
        // TF32 stores float32 results: its rounded goldens are float32's.
        #expect(fingerprint.tightest == (precision == .tf32 ? .float32 : precision), "\(fingerprint.lines)")
    }

    @Test func eachFamilyAppliesExactlyWhereItsFormatHoldsIt() {
        let expected: [String: Set<Precision>] = [
            ValueKind.fullDouble.rawValue: [.float64],
            ValueKind.exactFloat32.rawValue: [.float64, .float32],
            ValueKind.exactTF32.rawValue: [.float64, .float32, .tf32],
            ValueKind.exactFloat16.rawValue: [.float64, .float32, .tf32, .float16],
            ValueKind.exactBfloat16.rawValue: Set(Precision.allCases),
            ValueKind.exactLowPrecision.rawValue: Set(Precision.allCases),
        ]
        for c in Self.cases where !c.tags.contains("probe") && !c.tags.contains("edge") && !c.tags.contains("lecture") {
            guard let want = expected[c.tags[0]] else { continue }
            let got = Set(Precision.allCases.filter { Validator.inapplicability(c, $0) == nil })
            #expect(got == want, "\(c.id): applicable at \(got.map(\.rawValue).sorted())")
        }
    }

    /// An engine that leaves out the bias on 3 of 4 output maps, and one whose leaky
    /// slope is 0.0101 instead of 0.01: wrong at every precision.
    @Test(arguments: Precision.allCases)
    func smallRealBugsFailAtEveryPrecision(precision: Precision) throws {
        var results = ValidationTests.golden(precision.outputFormat.rounded)
        let conv = try #require(Self.cases.first { $0.id == "conv2d/long-sums-3x3x64-exact" })
        var y = results[conv.id]!.outputs[0].tensor
        let bias = conv.input("bias")!
        let plane = y.shape[2] * y.shape[3]
        for i in 0..<y.count where (i / plane) % 4 != 0 { y[i] = precision.outputFormat.rounded(y[i] - bias[(i / plane) % 4]) }
        results[conv.id]!.outputs[0].tensor = y
        let leaky = try #require(Self.cases.first { $0.id == "leaky_relu/slope-0.01-nchw-2x3x4x4-exact" })
        let x = leaky.input("x")!
        results[leaky.id]!.outputs[0].tensor = Tensor(shape: x.shape, scalars: x.scalars.map { precision.outputFormat.rounded($0 > 0 ? $0 : 0.0101 * $0) })
        let report = Validator.validate(engine: "buggy", precision: precision, cases: Self.cases, results: results)
        #expect(report.cases.first { $0.id == conv.id }?.status == .failed)
        #expect(report.cases.first { $0.id == leaky.id }?.status == .failed)
        #expect(report.count(.failed) == 2)
    }

    /// A bound that is NaN or infinite never passes: Σ|terms| of 2e310 overflows the
    /// double range, so an answer of 12345 for the exact 0 cannot be judged, and fails.
    @Test func anElementWithoutAFiniteBoundFailsAsCannotBeJudged() throws {
        var c = Case(id: "linear/overflowing-terms", layer: "linear", inputs: [
            NamedTensor("x", Tensor(shape: [1, 2], scalars: [1e300, 1e300])),
            NamedTensor("weight", Tensor(shape: [1, 2], scalars: [1e10, -1e10])), NamedTensor("bias", Tensor(shape: [1], scalars: [0]))])
        c.upstream = Tensor(shape: [1, 1], scalars: [1])
        c = try c.evaluated()
        #expect(c.expected!.outputs[0].tensor[0] == 0)
        var result = EngineResult(outputs: c.expected!.outputs, gradients: c.expected!.gradients)
        result.outputs[0].tensor[0] = 12345
        let report = Validator.validate(engine: "e", precision: .float64, cases: [c], results: [c.id: result])
        let verdict = try #require(report.cases.first)
        #expect(verdict.status == .failed)
        let y = try #require(verdict.tensors.first { $0.name == "outputs.y" })
        #expect(y.status == .failed && y.detail.hasPrefix("cannot be judged at [0, 0]"), "\(y.detail)")
    }

    /// Magnitudes that overflow only as intermediates are computed scaled: upstreams
    /// near 1e308 into softmax, where |y|·(|dy| + Σ|dy·y|) passes the double range,
    /// have finite, sharp bounds.
    @Test func hugeUpstreamsKeepFiniteSharpBounds() throws {
        var c = Case(id: "softmax/huge-upstream", layer: "softmax", config: [("axis", .int(0))],
                     inputs: [NamedTensor("x", Tensor(shape: [3], scalars: [0.5, -0.25, 1]))])
        c.upstream = Tensor(shape: [3], scalars: [1.5e308, 1.2e308, 1.6e308])
        c = try c.evaluated()
        let g = c.expected!.gradients[0].tensor
        #expect(g.scalars.allSatisfy { $0.isFinite }, "\(g.scalars)")
        let scales = try ErrorModel.scales(c, golden: c.expected!)
        #expect(scales.gradients[0].exponent.allSatisfy { $0 > 0 })
        let golden = EngineResult(outputs: c.expected!.outputs, gradients: c.expected!.gradients)
        #expect(Validator.validate(engine: "e", precision: .float64, cases: [c], results: [c.id: golden]).cases[0].status == .passed)
        var wrong = golden
        wrong.gradients[0].tensor[1] *= 1 + 1e-9
        let verdict = Validator.validate(engine: "e", precision: .float64, cases: [c], results: [c.id: wrong]).cases[0]
        #expect(verdict.status == .failed)
        #expect(verdict.tensors.first { $0.name == "gradients.x" }?.worst?.index == [1])
    }
}

enum ValidationTextRow {
    static func row(_ t: TensorVerdict) -> String { "\(t.name) \(t.worst.map { "\($0.index) e=\($0.expected) g=\($0.got) err=\($0.error) bound=\($0.bound)" } ?? t.detail)" }
}

/// Which inputs a precision can represent, against the hardware formats themselves
/// (Swift's Float16 and Float) and bfloat16 as a float32 with 16 zero low bits.
@Suite struct RepresentabilityTests {
    @Test func representabilityMatchesTheFormats() {
        let rng = SeededRandom(seed: 3)
        var values: [Double] = [0, -0.0, 1, 65504, 65520, 0x1p-24, 0x1p-25, 3 * 0x1p-25, 1 + 0x1p-10, 1 + 0x1p-11, 1 + 0x1p-7, 1 + 0x1p-8]
        for _ in 0..<2000 {
            let exponent = rng.below(60) - 30
            values.append(Double(Float16(Float(rng.signedUnit()))) * Double(sign: .plus, exponent: exponent, significand: 1))
            values.append(rng.signedUnit())
            values.append(Double(Float(rng.signedUnit())))
        }
        for v in values {
            #expect(Precision.float16.represents(v) == (Double(Float16(v)) == v && Float16(v).isFinite), "float16 \(v)")
            let f = Float(v)
            #expect(Precision.float32.represents(v) == (Double(f) == v), "float32 \(v)")
            #expect(Precision.bfloat16.represents(v) == (Double(f) == v && f.bitPattern & 0xFFFF == 0), "bfloat16 \(v)")
            // TF32: float32 with its 13 low significand bits zero (11 significant bits).
            #expect(Precision.tf32.represents(v) == (Double(f) == v && f.bitPattern & 0x1FFF == 0), "tf32 \(v)")
            // Rounding agrees with the hardware conversions where they exist.
            #expect(FloatFormat.float16.rounded(v * 3.3) == Double(Float16(v * 3.3)), "float16 rounding \(v)")
            #expect(FloatFormat.float32.rounded(v * 3.3) == Double(Float(v * 3.3)), "float32 rounding \(v)")
        }
    }
}

/// A Swift engine's results get the checks a results file gets: a tensor shorter, longer or
/// differently shaped than the golden one is a failed case with its reason, never a trap.
@Suite struct EngineResultCheckTests {
    struct Wrong: Engine {
        let name = "wrong", precision = Precision.float64
        let make: @Sendable (Tensor) -> [NamedTensor]
        func run(_ c: Case) throws -> EngineResult? {
            guard c.id == "relu/on-kink" else { return nil }
            return EngineResult(outputs: make(try c.evaluated().expected!.outputs[0].tensor))
        }
    }

    @Test func wrongShapesFailWithTheReason() throws {
        let cases = try VectorSet.load(vectors).filter { $0.id == "relu/on-kink" }
        let variants: [(String, @Sendable (Tensor) -> [NamedTensor], String)] = [
            ("shorter", { t in [NamedTensor("y", Tensor(shape: [t.count - 1], scalars: Array(t.scalars.dropLast())))] }, "results.relu/on-kink.outputs.y.shape: expected [4], found [3]"),
            ("longer", { t in [NamedTensor("y", Tensor(shape: [t.count + 1], scalars: t.scalars + [0]))] }, "expected [4], found [5]"),
            ("reshaped", { t in [NamedTensor("y", Tensor(shape: [2, 2], scalars: t.scalars))] }, "expected [4], found [2, 2]"),
            ("unknown name", { t in [NamedTensor("z", t)] }, "results.relu/on-kink.outputs.z: unknown tensor"),
            ("twice", { t in [NamedTensor("y", t), NamedTensor("y", t)] }, "appears more than once"),
        ]
        for (name, make, words) in variants {
            let report = Validator.validate(Wrong(make: make), cases: cases)
            #expect(report.cases[0].status == .failed, "\(name): \(report.cases[0])")
            #expect(report.cases[0].reason.contains(words), "\(name): \(report.cases[0].reason)")
        }
        // The right shape still passes (outputs only: partial, forward only).
        #expect(Validator.validate(Wrong(make: { [NamedTensor("y", $0)] }), cases: cases).cases[0].status == .partial)
    }

    /// A golden case built in Swift whose expected block does not fit its layer is skipped with
    /// the reason, not indexed past its end.
    @Test func anInconsistentSwiftBuiltGoldenCaseIsSkipped() throws {
        var c = try #require(try VectorSet.load(vectors).first { $0.id == "relu/on-kink" })
        c.expected = Expected(outputs: [NamedTensor("y", Tensor(shape: [2], scalars: [0, 0]))], gradients: [])
        let report = Validator.validate(engine: "e", precision: .float64, cases: [c],
                                        results: [c.id: EngineResult(outputs: [NamedTensor("y", Tensor(shape: [2], scalars: [0, 0]))])])
        #expect(report.cases[0].status == .skipped && report.cases[0].reason.contains("expected.outputs.y.shape"), "\(report.cases[0])")
    }
}

/// Loading a vectors folder checks its manifest first (names the file) unless told not to.
@Suite struct VerifiedLoadTests {
    static func copy() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-load-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: vectors, to: dir)
        return dir
    }

    @Test func aTamperedMissingOrExtraFileIsRefusedByName() throws {
        for (what, change, words) in [
            ("tampered", { (d: URL) in
                let f = d.appendingPathComponent("relu/on-kink.json")
                let text = try String(contentsOf: f, encoding: .utf8).replacingOccurrences(of: "\"data\": [0, 0, 0, 0.5]", with: "\"data\": [0, 0, 0, 0.75]")
                try text.write(to: f, atomically: true, encoding: .utf8)
            }, ["relu/on-kink.json", "sha256", "differs from the manifest"]),
            ("missing", { (d: URL) in try FileManager.default.removeItem(at: d.appendingPathComponent("tanh/extremes.json")) }, ["tanh/extremes.json", "missing"]),
            ("extra", { (d: URL) in try Data("{}".utf8).write(to: d.appendingPathComponent("relu/stray.json")) }, ["relu/stray.json", "not in the manifest"]),
        ] as [(String, (URL) throws -> Void, [String])] {
            let dir = try Self.copy()
            defer { try? FileManager.default.removeItem(at: dir) }
            try change(dir)
            do {
                _ = try VectorSet.load(dir)
                Issue.record("\(what): loaded")
            } catch {
                for w in words { #expect("\(error)".contains(w), "\(what): \(error)") }
            }
            if what != "missing" { #expect((try? VectorSet.load(dir, verify: false))?.count == (try VectorSet.load(vectors)).count, "\(what)") }
        }
    }
}
