import CNNReference
import Foundation
import GoldenVectors
import GradientCheck
import Testing

let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let vectors = repository.appendingPathComponent("Vectors")

@Suite struct GoldenVectorTests {
    static let catalogue = Catalogue()

    /// The regression test: the catalogue regenerates `Vectors/` byte for byte.
    /// A change in any result names the cases it changed.
    @Test func vectorsRegenerateByteForByte() throws {
        let rendered = Generator.render(Self.catalogue)
        var changed: [String] = []
        for (entry, text) in rendered {
            let stored = FileManager.default.contents(atPath: vectors.appendingPathComponent(entry.path).path)
            if stored != Data(text.utf8) { changed.append(entry.id) }
        }
        #expect(changed.isEmpty, "\(changed.count) cases differ from Vectors/ (run `cnnref generate` and review): \(changed.prefix(20).joined(separator: ", "))")
        let manifest = Manifest.json(rendered.map(\.0)).formatted()
        #expect(FileManager.default.contents(atPath: vectors.appendingPathComponent(Manifest.fileName).path) == Data(manifest.utf8),
                "Vectors/manifest.json differs from the catalogue's")
    }

    @Test func generationIsDeterministic() {
        let a = Generator.render(Self.catalogue).map(\.1)
        let b = Generator.render(Catalogue()).map(\.1)
        #expect(a == b)
    }

    @Test func catalogueCoversEveryLayer() {
        let cases = Self.catalogue.cases
        #expect(cases.count >= 300)
        #expect(Set(cases.map(\.layer)) == Set(LayerRegistry.ids))
        for id in LayerRegistry.ids {
            let tags = Set(cases.filter { $0.layer == id }.flatMap(\.tags))
            #expect(tags.contains(ValueKind.exactLowPrecision.rawValue) && tags.contains(ValueKind.fullDouble.rawValue),
                    "\(id) lacks one kind of values")
        }
        for c in cases {
            #expect(ValueKind.allCases.contains { c.tags.first == $0.rawValue }, "\(c.id) has no value-kind tag")
            #expect(!c.description.isEmpty)
        }
    }

    /// "Exact in low precision" means exactly representable in bfloat16 (8 significant
    /// bits) with an exponent in float16's normal range, 2^-14 ... 2^15 — checked
    /// from the bits, for every input and upstream value of every such case.
    @Test func exactInLowPrecisionValuesAreExact() {
        func isBF16AndFP16Exact(_ v: Double) -> Bool {
            if v == 0 { return true }
            guard v.isFinite else { return true }
            let e = Int(v.exponent)
            let bits = v.significandBitPattern
            return e >= -14 && e <= 15 && bits & ((1 << 45) - 1) == 0   // 52 − 7 = 45 low bits zero
        }
        for c in Self.catalogue.cases where c.tags.first == ValueKind.exactLowPrecision.rawValue {
            let values = c.inputs.flatMap(\.tensor.scalars) + (c.upstream?.scalars ?? [])
            let bad = values.filter { !isBF16AndFP16Exact($0) }
            #expect(bad.isEmpty, "\(c.id): \(bad.prefix(3)) not exact in bfloat16/float16")
        }
    }

    @Test func lectureCasesAreThere() throws {
        let demo = try #require(Self.catalogue.cases.first { $0.id == "conv2d/cs231n-demo" })
        let y = try demo.evaluated().expected!.outputs[0].tensor
        #expect(y.scalars == [-3, -1, 0, -1, -8, 2, 3, 0, 3, 1, 4, 2, -1, 4, 5, 3, 1, 3])
        let big = try #require(Self.catalogue.cases.first { $0.id == "conv2d/lecture-32x32x3-ten-5x5-pad-2" })
        let layer = try LayerRegistry.makeLayer(big)
        #expect(try layer.outputShape(forInput: big.inputs[0].tensor.shape) == [1, 10, 32, 32])
        #expect(layer.parameterCount == 760)
        #expect(try big.evaluated().notes == ["conv2d: 760 learnable parameters: weight 10x3x5x5 = 750, bias 10 = 10"])
    }

    /// Every case of the gradient-check matrix passes, and kinks are found only
    /// in cases that declare them.
    @Test func matrixPassesGradcheckWithOnlyDeclaredKinks() throws {
        for c in Self.catalogue.gradcheckMatrix {
            let layer = try LayerRegistry.makeLayer(c)
            let report = try GradientChecker.check(layer, input: c.inputs[0].tensor, upstream: c.upstream, caseID: c.id)
            #expect(report.passed, "\(c.id): \(report.tensors.flatMap(\.failures).map(\.summary).prefix(3))")
            let kinks = report.tensors.reduce(0) { $0 + $1.kinks }
            let declared = c.tags.contains("kink") || c.tags.contains("tie")
            #expect(kinks == 0 || declared, "\(c.id): \(kinks) kinks found but the case declares none")
        }
        #expect(Self.catalogue.gradcheckMatrix.count >= 300)
    }
}

@Suite struct VerifyTests {
    /// A fresh copy of Vectors/ in a temporary folder.
    func copy() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-verify-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: vectors, to: dir)
        return dir
    }

    @Test func shippedVectorsVerify() throws {
        let result = try Verifier.verify(vectors)
        #expect(result.problems.isEmpty, "\(result.problems.prefix(5))")
        #expect(result.checked >= 300)
    }

    @Test func everyKindOfTamperingIsNamed() throws {
        let dir = try copy()
        defer { try? FileManager.default.removeItem(at: dir) }
        // One byte changed in a value: the hash and the fresh evaluation both differ.
        let relu = dir.appendingPathComponent("relu/on-kink.json")
        var text = try String(contentsOf: relu, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"data\": [0, 0, 0, 0.5]", with: "\"data\": [0, 0, 0, 0.7]")
        try text.write(to: relu, atomically: true, encoding: .utf8)
        // A missing file, an extra file, a symbolic link.
        try FileManager.default.removeItem(at: dir.appendingPathComponent("tanh/extremes.json"))
        try "{}".write(to: dir.appendingPathComponent("relu/stray.json"), atomically: true, encoding: .utf8)
        let sigmoid = dir.appendingPathComponent("sigmoid/extremes.json")
        try FileManager.default.moveItem(at: sigmoid, to: dir.appendingPathComponent("sigmoid/real.json"))
        try FileManager.default.createSymbolicLink(at: sigmoid, withDestinationURL: dir.appendingPathComponent("sigmoid/real.json"))
        // A manifest entry pointing outside the folder.
        let manifestURL = dir.appendingPathComponent(Manifest.fileName)
        var manifest = try String(contentsOf: manifestURL, encoding: .utf8)
        manifest = manifest.replacingOccurrences(of: "\"path\": \"elu/extremes.json\"", with: "\"path\": \"../elu/extremes.json\"")
        try manifest.write(to: manifestURL, atomically: true, encoding: .utf8)

        let problems = try Verifier.verify(dir).problems.map(\.description)
        func has(_ path: String, _ words: String) -> Bool { problems.contains { $0.hasPrefix(path) && $0.contains(words) } }
        #expect(has("relu/on-kink.json", "sha256"), "\(problems)")
        #expect(has("relu/on-kink.json", "fresh evaluation"), "\(problems)")
        #expect(has("tanh/extremes.json", "missing"), "\(problems)")
        #expect(has("relu/stray.json", "not in the manifest"), "\(problems)")
        #expect(has("sigmoid/extremes.json", "symbolic link"), "\(problems)")
        #expect(has("sigmoid/real.json", "not in the manifest"), "\(problems)")
        #expect(has("../elu/extremes.json", "outside"), "\(problems)")
        #expect(has("elu/extremes.json", "not in the manifest"), "\(problems)")   // its entry now points elsewhere
        #expect(problems.count == 8, "\(problems)")
    }
}

/// A short bounded fuzz run in every test run: the seeded mutation loop over the
/// case and results decoders (Tools/fuzz.sh runs libFuzzer for longer).
@Suite struct FuzzTests {
    @Test func decodersSurviveMutatedInputs() {
        let tried = Fuzzing.run(iterations: 20_000, seconds: 20, seed: 7)
        #expect(tried >= 1000)
        // Reaching here means none of them trapped.
    }

    /// The structure-aware mutator: well-formed JSON with plausible shapes and inconsistent
    /// content, through evaluate, gradcheck, verify, precision and validate (file and Swift
    /// engine). Every input must be answered or rejected with a one-line CaseError, in time.
    @Test func commandsSurviveStructuralMutants() {
        let stats = Fuzzing.runStructured(iterations: 3000, seconds: 30, seed: 11, timeLimit: 5)
        print("structural fuzz: \(stats.tried) inputs (\(stats.cases) cases, \(stats.resultsFiles) results files), \(stats.decoded) decoded, \(stats.rejected) rejected, slowest \(stats.slowest) s, \(stats.findings.count) findings")
        #expect(stats.tried >= 500)
        #expect(stats.decoded >= stats.tried / 20, "the mutants should often stay valid: \(stats.decoded) of \(stats.tried)")
        #expect(stats.findings.isEmpty, "\(stats.findings.prefix(3))")
    }

    /// libFuzzer's structural selector: the same mutator driven by bytes.
    @Test func structuralSelectorTakesBytes() {
        for k in 0..<200 { Fuzzing.one(Data([2] + (0..<64).map { UInt8(truncatingIfNeeded: $0 * 37 + k * 11) })) }
    }
}

@Suite struct LargeCaseGradcheckTests {
    /// The cases too large for the element-by-element matrix are checked along
    /// random signed directions through all their tensors (as `cnnref gradcheck`
    /// does past --max-elements): every case of the catalogue is gradient-checked.
    /// The backward pass only: the JVP check's rounding bound for a layer that is not pointwise
    /// takes one certified backward pass per row of J, which a large softmax case makes minutes
    /// long; the matrix checks every layer's JVP.
    @Test func largeCasesPassAlongDirections() throws {
        let catalogue = Catalogue()
        let matrix = Set(catalogue.gradcheckMatrix.map(\.id))
        let large = catalogue.cases.filter { !matrix.contains($0.id) }
        #expect(!large.isEmpty && large.count + matrix.count == catalogue.cases.count)
        for c in large {
            let layer = try LayerRegistry.makeLayer(c)
            let report = try GradientChecker.check(layer, input: c.inputs[0].tensor, upstream: c.upstream, caseID: c.id,
                                                   configuration: GradientCheckConfiguration(elementwise: false, directions: 3, tangents: 0))
            #expect(report.passed, "\(c.id): \(report.tensors.flatMap(\.failures).map(\.summary))")
            #expect(report.tensors.reduce(0) { $0 + $1.kinks } == 0 || c.tags.contains("kink") || c.tags.contains("tie"))
        }
    }
}
