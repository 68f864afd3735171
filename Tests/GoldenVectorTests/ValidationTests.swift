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
            return (c.id, EngineResult(outputs: r(e.outputs), gradients: r(e.gradients)))
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
        #expect(partial?.status == .passed && partial?.tensors.filter { $0.status == .skipped }.count == 3)
        #expect(report.count(.skipped) == 1)
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
        #expect(report.cases.filter { $0.id.hasPrefix("linear/") && $0.status == .passed }.count >= 7)
        #expect(report.count(.skipped) > 300)   // every other layer: not supported, so skipped
    }
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
        // The right shape still passes.
        #expect(Validator.validate(Wrong(make: { [NamedTensor("y", $0)] }), cases: cases).cases[0].status == .passed)
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
