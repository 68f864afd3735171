import CNNReference
import Foundation
import GoldenVectors
import Testing

/// A vectors folder written for a test: `files` by relative path, and a manifest with
/// their true hashes (so the decoder, not the hash check, must catch what is wrong).
func vectorsFolder(_ files: [(id: String, text: String)]) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-folder-\(UUID().uuidString)")
    var entries: [ManifestEntry] = []
    for (id, text) in files {
        let url = dir.appendingPathComponent("\(id).json")
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
        entries.append(ManifestEntry(id: id, layer: String(id.split(separator: "/").first ?? ""), path: "\(id).json", tags: [],
                                     sha256: sha256Hex(Data(text.utf8)), worstUlp: nil))
    }
    try Data(Manifest.json(entries).formatted().utf8).write(to: dir.appendingPathComponent(Manifest.fileName))
    return dir
}

func writeTemporary(_ text: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-r-\(UUID().uuidString).json").path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

@Suite struct ManifestCheckCLITests {
    static let results = #"{"engine": "t", "precision": "float64", "results": {"relu/on-kink": {"outputs": {"y": {"shape": [4], "data": [0, 0, 0, 0.5]}}}}}"#

    func copyOfVectors() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-vectors-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: repository.appendingPathComponent("Vectors"), to: dir)
        return dir
    }

    @Test func aTamperedVectorIsRefusedByNameUnlessNoVerify() throws {
        let dir = try copyOfVectors()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("relu/on-kink.json")
        try String(contentsOf: file, encoding: .utf8).replacingOccurrences(of: "\"data\": [0, 0, 0, 0.5]", with: "\"data\": [0, 0, 0, 0.75]")
            .write(to: file, atomically: true, encoding: .utf8)
        let results = try writeTemporary(Self.results)
        defer { try? FileManager.default.removeItem(atPath: results) }
        for arguments in [["validate", results, "--vectors", dir.path], ["precision", dir.path]] {
            let r = try run(arguments)
            #expect(r.status == 2, "\(arguments): \(r.status) \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains(file.path) && r.stderr.contains("sha256"), "\(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
        // --no-verify: judged against the changed value (a correct engine fails), and the report says so.
        let r = try run(["validate", results, "--vectors", dir.path, "--no-verify"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stdout.contains("NOT verified against manifest.json (--no-verify)"))
        let j = try run(["validate", results, "--vectors", dir.path, "--no-verify", "--format", "json"])
        #expect(j.stdout.contains("\"vectors_verified\": false"))
        let p = try run(["precision", dir.path, "--no-verify"])
        #expect(p.stdout.hasPrefix("vectors: NOT verified"), "\(p.stdout.prefix(200))")
    }

    @Test func aMissingOrExtraFileIsRefusedByName() throws {
        let results = try writeTemporary(Self.results)
        defer { try? FileManager.default.removeItem(atPath: results) }
        for (change, name, words) in [({ (d: URL) in try FileManager.default.removeItem(at: d.appendingPathComponent("tanh/extremes.json")) }, "tanh/extremes.json", "missing"),
                                      ({ (d: URL) in try Data("{}".utf8).write(to: d.appendingPathComponent("relu/stray.json")) }, "relu/stray.json", "not in the manifest")]
                as [((URL) throws -> Void, String, String)] {
            let dir = try copyOfVectors()
            defer { try? FileManager.default.removeItem(at: dir) }
            try change(dir)
            for arguments in [["validate", results, "--vectors", dir.path], ["precision", dir.path]] {
                let r = try run(arguments)
                #expect(r.status == 2 && r.stderr.split(separator: "\n").count == 1, "\(arguments): \(r.status) \(r.stderr)")
                #expect(r.stderr.contains(name) && r.stderr.contains(words), "\(r.stderr)")
            }
        }
    }

    /// The issue's trap: a well-formed expected block that does not fit its layer, in a
    /// folder whose hashes are right. Every command gets the one-line error.
    @Test func anExpectedBlockNotFittingItsLayerIsOneLineEverywhere() throws {
        let bad = """
            {"schema": "cnnref-case-1", "id": "relu/bad", "layer": "relu",
             "inputs": {"x": {"shape": [4], "data": [1, -1, 2, 0]}}, "upstream": {"shape": [4], "data": [1, 1, 1, 1]},
             "expected": {"outputs": {"y": {"shape": [2], "data": [1, 0]}}, "gradients": {}}}
            """
        let dir = try vectorsFolder([("relu/bad", bad)])
        defer { try? FileManager.default.removeItem(at: dir) }
        let results = try writeTemporary(#"{"engine": "t", "precision": "float64", "results": {}}"#)
        defer { try? FileManager.default.removeItem(atPath: results) }
        for arguments in [["precision", dir.path], ["validate", results, "--vectors", dir.path]] {
            let r = try run(arguments)
            #expect(r.status == 2, "\(arguments): \(r.status) \(r.stderr.prefix(300))")
            #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("relu/bad.json") && r.stderr.contains("expected.outputs.y.shape"), "\(r.stderr)")
        }
        let v = try run(["verify", dir.path])
        #expect(v.status == 1 && v.stdout.contains("relu/bad.json: expected.outputs.y.shape"), "\(v.stdout)")
    }

    /// The issue's hang: kernel [1, 2^30] over 100,000 planes of one cell (1.4 MB).
    @Test func theHugeKernelCaseAnswersInSeconds() throws {
        let n = 100_000
        let ones = Array(repeating: "1", count: n).joined(separator: ", ")
        let path = try writeTemporary("""
            {"schema": "cnnref-case-1", "id": "t/hang", "layer": "maxpool2d",
             "config": {"kernel": [1, 1073741824], "padding": [0, 536870912, 0, 536870911]},
             "inputs": {"x": {"shape": [1, \(n), 1, 1], "data": [\(ones)]}}, "upstream": {"shape": [1, \(n), 1, 1], "data": [\(ones)]}}
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let start = Date()
        let r = try run(["evaluate", path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Date().timeIntervalSince(start) < 20)
    }
}

/// The structure-aware fuzzer's mutants through the real tool: evaluate and gradcheck on
/// cases, verify, precision and validate on folders of them and on mutated results files.
/// Each must exit 0, 1 or 2, with exactly one line on standard error for 2, in time.
@Suite struct FuzzCLITests {
    func expectAnswered(_ arguments: [String], _ input: String) throws {
        let start = Date()
        let r = try run(arguments)
        let elapsed = Date().timeIntervalSince(start)
        #expect([0, 1, 2].contains(r.status), "\(arguments): status \(r.status): \(r.stderr.prefix(500)); input \(input.prefix(1000))")
        if r.status == 2 { #expect(r.stderr.split(separator: "\n").count == 1, "\(arguments): \(r.stderr.prefix(500))") }
        #expect(elapsed < 60, "\(arguments): \(elapsed) s")
    }

    @Test func mutantsGetAnAnswerFromEveryCommand() throws {
        var d = Fuzzing.SeededDecisions(seed: 5)
        var cases: [String] = [], resultsFiles: [String] = []
        while cases.count < 8 || resultsFiles.count < 3 {
            let (text, isResults) = Fuzzing.structuralMutant(&d)
            if isResults { if resultsFiles.count < 3 { resultsFiles.append(text) } } else if cases.count < 8 { cases.append(text) }
        }
        var paths: [String] = []
        defer { for p in paths { try? FileManager.default.removeItem(atPath: p) } }
        for text in cases {
            let path = try writeTemporary(text)
            paths.append(path)
            try expectAnswered(["evaluate", path], text)
            try expectAnswered(["gradcheck", path], text)
        }
        // Folders of mutated cases with correct hashes: the decoder has to catch them.
        for k in 0..<2 {
            let dir = try vectorsFolder(cases[(k * 4)..<(k * 4 + 4)].enumerated().map { ("fuzz/m\($0.offset)", $0.element) })
            paths.append(dir.path)
            try expectAnswered(["verify", dir.path], "folder \(k)")
            try expectAnswered(["precision", dir.path], "folder \(k)")
        }
        for text in resultsFiles {
            let path = try writeTemporary(text)
            paths.append(path)
            try expectAnswered(["validate", path], text)
        }
    }
}
