import Foundation
import Testing

/// Bad input never crashes, traps or passes: one line on standard error that
/// names the file and the field, exit status 2, nothing on standard output.
@Suite struct BadInputTests {
    struct BadInput: CustomTestStringConvertible, Sendable {
        var name: String
        var command: String = "evaluate"
        var file: String?          // contents of the case file; nil = pass `arguments` as they are
        var arguments: [String] = []
        var words: [String]
        var testDescription: String { name }
    }

    static let conv = """
        {"schema": "cnnref-case-1", "id": "t/conv", "layer": "conv2d",
         "config": {"stride": [1, 1], "padding": [0, 0, 0, 0]},
         "inputs": {"x": {"shape": [1, 1, 3, 3], "data": [1, 2, 3, 4, 5, 6, 7, 8, 9]},
                    "weight": {"shape": [1, 1, 2, 2], "data": [1, 0, 0, 1]}},
         "upstream": {"shape": [1, 1, 2, 2], "data": [1, 1, 1, 1]}}
        """
    static let pool = """
        {"schema": "cnnref-case-1", "id": "t/pool", "layer": "maxpool2d",
         "config": {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0]},
         "inputs": {"x": {"shape": [1, 1, 2, 2], "data": [1, 2, 3, 4]}},
         "upstream": {"shape": [1, 1, 1, 1], "data": [1]}}
        """
    static let loss = """
        {"schema": "cnnref-case-1", "id": "t/loss", "layer": "multiclass_hinge",
         "config": {"margin": 1, "reduction": "mean"},
         "inputs": {"scores": {"shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}}, "labels": [0, 2]}
        """
    static func edit(_ base: String, _ old: String, _ new: String) -> String {
        precondition(base.contains(old), "test table: \(old) not in base")
        return base.replacingOccurrences(of: old, with: new)
    }

    static let table: [BadInput] = [
        BadInput(name: "malformed JSON", file: "{\"schema\": }", words: ["malformed JSON", "line 1, column 12"]),
        BadInput(name: "truncated file", file: String(conv.prefix(120)), words: ["malformed JSON", "truncated"]),
        BadInput(name: "empty file", file: "", words: ["end of file"]),
        BadInput(name: "not an object", file: "[1, 2]", words: ["expected an object", "an array"]),
        BadInput(name: "wrong schema", file: edit(conv, "cnnref-case-1", "cnnref-case-9"), words: ["schema", "cnnref-case-9"]),
        BadInput(name: "missing schema", file: edit(conv, "\"schema\": \"cnnref-case-1\",", ""), words: ["schema", "missing"]),
        BadInput(name: "unknown layer", file: edit(conv, "\"conv2d\"", "\"conv3d\""), words: ["layer", "unknown layer \"conv3d\""]),
        BadInput(name: "unknown top-level field", file: edit(conv, "\"id\"", "\"weights\": 1, \"id\""), words: ["weights", "unknown field"]),
        BadInput(name: "unknown config field", file: edit(conv, "\"stride\"", "\"strides\""), words: ["config.strides", "unknown field"]),
        BadInput(name: "missing required config field", file: edit(pool, "\"kernel\": [2, 2], ", ""), words: ["config.kernel", "missing"]),
        BadInput(name: "missing input", file: edit(conv, "\"weight\": {\"shape\": [1, 1, 2, 2], \"data\": [1, 0, 0, 1]}", "\"w\": null"), words: ["inputs.weight", "missing"]),
        BadInput(name: "unknown input", file: edit(conv, "\"weight\":", "\"gamma\": {\"shape\": [1], \"data\": [1]}, \"weight\":"), words: ["inputs.gamma", "unknown field"]),
        BadInput(name: "string for a number", file: edit(conv, "[1, 2, 3, 4, 5, 6, 7, 8, 9]", "[\"1\", 2, 3, 4, 5, 6, 7, 8, 9]"), words: ["inputs.x.data[0]", "expected a number"]),
        BadInput(name: "float for an integer label", file: edit(loss, "[0, 2]", "[0.0, 2]"), words: ["labels[0]", "expected an integer"]),
        BadInput(name: "string for a config array", file: edit(conv, "\"stride\": [1, 1]", "\"stride\": \"1\""), words: ["config.stride", "expected an array"]),
        BadInput(name: "data count differs from the shape", file: edit(conv, "[1, 2, 3, 4, 5, 6, 7, 8, 9]", "[1, 2, 3]"), words: ["inputs.x.data", "needs 9 elements", "found 3"]),
        BadInput(name: "negative dimension", file: edit(conv, "[1, 1, 3, 3]", "[1, -1, 3, 3]"), words: ["inputs.x.shape[1]", "≥ 1", "-1"]),
        BadInput(name: "zero dimension", file: edit(conv, "[1, 1, 3, 3]", "[0, 1, 3, 3]"), words: ["inputs.x.shape[0]", "≥ 1"]),
        BadInput(name: "rank wrong for the layer", file: edit(edit(conv, "[1, 1, 3, 3]", "[3, 3]"), "\"shape\": [1, 1, 2, 2], \"data\": [1, 1", "\"shape\": [1, 1, 2, 2], \"data\": [1, 1"), words: ["inputs.x.shape", "rank 4"]),
        BadInput(name: "channels not divisible by groups", file: edit(conv, "\"padding\": [0, 0, 0, 0]", "\"padding\": [0, 0, 0, 0], \"groups\": 2"), words: ["config.groups", "not divisible"]),
        BadInput(name: "weight shape not matching the channels", file: edit(conv, "\"shape\": [1, 1, 2, 2], \"data\": [1, 0, 0, 1]", "\"shape\": [1, 2, 2, 1], \"data\": [1, 0, 0, 1]"), words: ["inputs.weight.shape", "C/groups"]),
        BadInput(name: "filter larger than the padded input", file: edit(conv, "\"shape\": [1, 1, 2, 2], \"data\": [1, 0, 0, 1]", "\"shape\": [1, 1, 4, 4], \"data\": [1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1]"), words: ["no window fits", "(3 - 4 + 0)/1 + 1"]),
        BadInput(name: "pool window of padding only", file: edit(pool, "\"padding\": [0, 0, 0, 0]", "\"padding\": [2, 2, 2, 2]"), words: ["config.padding", "padding only"]),
        BadInput(name: "zero stride", file: edit(conv, "\"stride\": [1, 1]", "\"stride\": [0, 1]"), words: ["config.stride[0]", "1...2147483648", "found 0"]),
        BadInput(name: "negative dilation", file: edit(conv, "\"stride\": [1, 1]", "\"stride\": [1, 1], \"dilation\": [1, -2]"), words: ["config.dilation[1]", "found -2"]),
        BadInput(name: "zero kernel", file: edit(pool, "\"kernel\": [2, 2]", "\"kernel\": [0, 2]"), words: ["config.kernel[0]", "found 0"]),
        BadInput(name: "zero groups", file: edit(conv, "\"padding\": [0, 0, 0, 0]", "\"padding\": [0, 0, 0, 0], \"groups\": 0"), words: ["config.groups", "found 0"]),
        BadInput(name: "padding that would overflow the window arithmetic", file: edit(conv, "\"padding\": [0, 0, 0, 0]", "\"padding\": [0, 0, 9223372036854775807, 0]"), words: ["config.padding[2]", "0...2147483648"]),
        BadInput(name: "negative padding", file: edit(conv, "\"padding\": [0, 0, 0, 0]", "\"padding\": [0, -1, 0, 0]"), words: ["config.padding[1]", "0...", "found -1"]),
        BadInput(name: "padding with three values", file: edit(conv, "\"padding\": [0, 0, 0, 0]", "\"padding\": [0, 0, 0]"), words: ["config.padding", "4 integers"]),
        BadInput(name: "label out of range", file: edit(loss, "[0, 2]", "[0, 3]"), words: ["labels[1]", "0..<3", "found 3"]),
        BadInput(name: "negative label", file: edit(loss, "[0, 2]", "[-1, 2]"), words: ["labels[0]", "found -1"]),
        BadInput(name: "label count differs from rows", file: edit(loss, "[0, 2]", "[0]"), words: ["labels", "expected 2 labels"]),
        BadInput(name: "labels missing for a loss", file: edit(loss, ", \"labels\": [0, 2]", ""), words: ["labels", "missing"]),
        BadInput(name: "labels for a layer", file: edit(conv, "\"upstream\"", "\"labels\": [0], \"upstream\""), words: ["labels", "takes no labels"]),
        BadInput(name: "upstream for a loss", file: edit(loss, "\"labels\"", "\"upstream\": {\"shape\": [], \"data\": [1]}, \"labels\""), words: ["upstream", "loss"]),
        BadInput(name: "upstream of the wrong shape", file: edit(conv, "{\"shape\": [1, 1, 2, 2], \"data\": [1, 1, 1, 1]}", "{\"shape\": [1, 1, 3, 3], \"data\": [1, 1, 1, 1, 1, 1, 1, 1, 1]}"), words: ["upstream.shape", "[1, 1, 2, 2]"]),
        BadInput(name: "upstream missing for a layer", file: edit(conv, "\"upstream\": {\"shape\": [1, 1, 2, 2], \"data\": [1, 1, 1, 1]}", "\"description\": \"\""), words: ["upstream", "missing"]),
        BadInput(name: "pieces below 1", file: """
            {"schema": "cnnref-case-1", "id": "t/m", "layer": "maxout", "config": {"pieces": 0},
             "inputs": {"x": {"shape": [1, 1], "data": [1]}, "weight": {"shape": [1, 1, 1], "data": [1]}, "bias": {"shape": [1, 1], "data": [0]}},
             "upstream": {"shape": [1, 1], "data": [1]}}
            """, words: ["config.pieces", "found 0"]),
        BadInput(name: "NaN where a slope must be finite", file: """
            {"schema": "cnnref-case-1", "id": "t/l", "layer": "leaky_relu", "config": {"slope": "NaN"},
             "inputs": {"x": {"shape": [1], "data": [1]}}, "upstream": {"shape": [1], "data": [1]}}
            """, words: ["config.slope", "finite"]),
        BadInput(name: "infinite alpha", file: """
            {"schema": "cnnref-case-1", "id": "t/e", "layer": "elu", "config": {"alpha": "-Infinity"},
             "inputs": {"x": {"shape": [1], "data": [1]}}, "upstream": {"shape": [1], "data": [1]}}
            """, words: ["config.alpha", "finite"]),
        BadInput(name: "number overflowing Double", file: edit(conv, "[1, 2, 3, 4, 5, 6, 7, 8, 9]", "[1e400, 2, 3, 4, 5, 6, 7, 8, 9]"), words: ["inputs.x.data[0]", "overflows Double"]),
        BadInput(name: "number underflowing to zero", file: edit(conv, "[1, 2, 3, 4, 5, 6, 7, 8, 9]", "[1e-400, 2, 3, 4, 5, 6, 7, 8, 9]"), words: ["inputs.x.data[0]", "underflows"]),
        BadInput(name: "integer beyond Int in a shape", file: edit(conv, "[1, 1, 3, 3]", "[1, 1, 3, 99999999999999999999]"), words: ["inputs.x.shape[3]", "outside the range of Int"]),
        BadInput(name: "shape over the size limit", file: edit(conv, "[1, 1, 3, 3]", "[100000, 100000, 100, 1]"), words: ["inputs.x.shape", "exceeds the limit of 1073741824 bytes"]),
        BadInput(name: "work beyond the limit", file: """
            {"schema": "cnnref-case-1", "id": "t/w", "layer": "conv2d", "config": {"padding": [5000, 5000, 5000, 5000]},
             "inputs": {"x": {"shape": [1, 1, 1, 700], "data": [\(Array(repeating: "1", count: 700).joined(separator: ", "))]},
                        "weight": {"shape": [1, 1, 1, 1], "data": [1]}},
             "upstream": {"shape": [1], "data": [1]}}
            """, words: ["inputs", "= 700 terms visited + 107010700 outputs + 701 input elements = 107012101 loop steps per pass", "exceeds the work limit of 16777216 (--max-work)"]),
        BadInput(name: "over a --max-work limit", file: conv, arguments: ["--max-work", "20"], words: ["conv2d: 1 (N) × 1 (K) × 1 (C/groups) × 4 row taps", "= 16 terms visited + 4 outputs + 13 input elements = 33 loop steps per pass exceeds the work limit of 20"]),
        BadInput(name: "expected output of the wrong shape", file: """
            {"schema": "cnnref-case-1", "id": "relu/bad", "layer": "relu",
             "inputs": {"x": {"shape": [4], "data": [1, -1, 2, 0]}}, "upstream": {"shape": [4], "data": [1, 1, 1, 1]},
             "expected": {"outputs": {"y": {"shape": [2], "data": [1, 0]}}, "gradients": {}}}
            """, words: ["expected.outputs.y.shape", "expected [4], found [2]"]),
        BadInput(name: "expected gradient missing", command: "gradcheck", file: """
            {"schema": "cnnref-case-1", "id": "relu/bad", "layer": "relu",
             "inputs": {"x": {"shape": [4], "data": [1, -1, 2, 0]}}, "upstream": {"shape": [4], "data": [1, 1, 1, 1]},
             "expected": {"outputs": {"y": {"shape": [4], "data": [1, 0, 2, 0]}}, "gradients": {}}}
            """, words: ["expected.gradients.x", "missing"]),
        BadInput(name: "a \\u escape with a sign", file: edit(loss, "\"mean\"", "\"\\u+06dean\""), words: ["malformed JSON", "line 2, column 42", "four hex digits"]),
        BadInput(name: "a raw tab in a string", file: edit(conv, "\"t/conv\"", "\"t/\tconv\""), words: ["malformed JSON", "control character U+0009"]),
        BadInput(name: "over a --max-bytes limit", file: conv, arguments: ["--max-bytes", "100"], words: ["exceeds the limit of 100 bytes"]),
        BadInput(name: "reduction neither mean nor sum", file: edit(loss, "\"mean\"", "\"avg\""), words: ["config.reduction", "\"mean\" or \"sum\""]),
        BadInput(name: "count_include_pad missing", file: edit(edit(pool, "maxpool2d", "avgpool2d"), "t/pool", "t/avg"), words: ["config.count_include_pad", "missing"]),
        BadInput(name: "softmax axis out of range", file: """
            {"schema": "cnnref-case-1", "id": "t/s", "layer": "softmax", "config": {"axis": 2},
             "inputs": {"x": {"shape": [2, 2], "data": [1, 2, 3, 4]}}, "upstream": {"shape": [2, 2], "data": [1, 1, 1, 1]}}
            """, words: ["config.axis", "-2..<2", "found 2"]),
        BadInput(name: "PReLU slope not matching the channels", file: """
            {"schema": "cnnref-case-1", "id": "t/p", "layer": "prelu",
             "inputs": {"x": {"shape": [1, 2], "data": [1, 2]}, "slope": {"shape": [3], "data": [1, 1, 1]}},
             "upstream": {"shape": [1, 2], "data": [1, 1]}}
            """, words: ["inputs.slope.shape", "[C] = [2]"]),
        BadInput(name: "duplicate key", file: edit(conv, "\"id\": \"t/conv\"", "\"id\": \"a\", \"id\": \"b\""), words: ["malformed JSON", "duplicate key \"id\""]),
        BadInput(name: "nesting too deep", file: String(repeating: "[", count: 100) + String(repeating: "]", count: 100), words: ["nesting deeper than 64"]),
        BadInput(name: "missing file", command: "evaluate", file: nil, arguments: ["/nonexistent/case.json"], words: ["/nonexistent/case.json", "no such file"]),
        BadInput(name: "a directory for a case file", command: "evaluate", file: nil, arguments: ["Vectors"], words: ["Vectors", "is a directory"]),
        BadInput(name: "gradcheck of a bad case", command: "gradcheck", file: edit(conv, "\"stride\": [1, 1]", "\"stride\": [1]"), words: ["config.stride", "2 integers"]),
        BadInput(name: "zero --max-bytes", command: "evaluate", file: nil, arguments: ["--max-bytes", "0", "x.json"], words: ["--max-bytes must be at least 1, found 0"]),
        BadInput(name: "unknown subcommand", command: "frobnicate", file: nil, words: ["frobnicate"]),
        BadInput(name: "negative --directions", command: "gradcheck", file: nil, arguments: ["--directions", "-1"], words: ["directions"]),
        BadInput(name: "verify of a folder that does not exist", command: "verify", file: nil, arguments: ["/nonexistent"], words: ["/nonexistent", "no such folder"]),
    ] + architectureTable

    @Test(arguments: table)
    func badInputGetsOneLineAndStatus2(bad: BadInput) throws {
        var arguments = [bad.command] + bad.arguments
        var path = ""
        if let file = bad.file {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-bad-\(UUID().uuidString).json").path
            try file.write(toFile: path, atomically: true, encoding: .utf8)
            arguments.append(path)
        }
        defer { if !path.isEmpty { try? FileManager.default.removeItem(atPath: path) } }
        let result = try run(arguments)
        #expect(result.status == 2, "\(bad.name): status \(result.status), stderr \(result.stderr)")
        #expect(result.stdout.isEmpty, "\(bad.name): printed \(result.stdout.prefix(200))")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(bad.name): \(lines.count) lines: \(result.stderr)")
        if !path.isEmpty { #expect(result.stderr.contains(path), "\(bad.name): the file is not named: \(result.stderr)") }
        for word in bad.words { #expect(result.stderr.contains(word), "\(bad.name): '\(word)' missing from: \(result.stderr)") }
    }

    @Test func notUTF8() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-bad-utf8.json").path
        try Data([0x7B, 0xFF, 0xFE, 0x7D]).write(to: URL(fileURLWithPath: path))
        let result = try run(["evaluate", path])
        #expect(result.status == 2 && result.stderr.contains("not UTF-8"))
    }

    @Test func standardInputIsNamed() throws {
        let result = try run(["evaluate", "-"], input: "{\"schema\": \"x\"}")
        #expect(result.status == 2)
        #expect(result.stderr == "cnnref: <stdin>: schema: expected \"cnnref-case-1\" (or \"cnnref-case-2\", with tangents), found \"x\"\n")
    }
}

@Suite struct CommandTests {
    @Test func evaluatePrintsTheCompleteCase() throws {
        let input = try String(contentsOf: repository.appendingPathComponent("Vectors/conv2d/cs231n-demo.json"), encoding: .utf8)
        let result = try run(["evaluate", "-"], input: input)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == input)   // a golden file is its own evaluation
    }

    @Test func evaluateAddsTheTilingNote() throws {
        let text = """
            {"schema": "cnnref-case-1", "id": "t/n", "layer": "conv2d", "config": {"stride": [3, 3]},
             "inputs": {"x": {"shape": [1, 1, 7, 7], "data": [\((1...49).map(String.init).joined(separator: ", "))]},
                        "weight": {"shape": [1, 1, 3, 3], "data": [1, 1, 1, 1, 1, 1, 1, 1, 1]}},
             "upstream": {"shape": [1, 1, 2, 2], "data": [1, 1, 1, 1]}}
            """
        let result = try run(["evaluate", "-"], input: text)
        #expect(result.status == 0)
        #expect(result.stdout.contains("conv2d: 3x3 filter does not tile 7x7 input at stride 3: (7 - 3 + 0)/3 + 1 = 2.33; the last row and column are never used"))
        #expect(result.stdout.contains("\"dilation\": [1, 1]") && result.stdout.contains("\"groups\": 1"))
        #expect(result.stdout.contains("conv2d: 9 learnable parameters: weight 1x1x3x3 = 9"))
    }

    @Test func gradcheckOfFilesPassesAndPrintsRows() throws {
        let result = try run(["gradcheck", "Vectors/relu/on-kink.json", "Vectors/conv2d/cs231n-demo.json"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("relu/on-kink"))
        #expect(result.stdout.hasSuffix("2 passed, 0 failed\n"))
        let json = try run(["gradcheck", "--format", "json", "--directions", "3", "Vectors/relu/on-kink.json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["passed"] as? Int == 1)
    }
}

/// Results files for `cnnref validate`: malformed ones get one line and status 2.
@Suite struct BadResultsTests {
    static let good = #"{"engine": "t", "precision": "float64", "results": {"relu/on-kink": {"outputs": {"y": {"shape": [4], "data": [0, 0, 0, 0.5]}}}}}"#
    static let table: [(String, String, [String])] = [
        ("not JSON", "{\"engine\": ", ["malformed JSON"]),
        ("results missing", #"{"engine": "t", "precision": "float64"}"#, ["results", "expected an object"]),
        ("unknown case", good.replacingOccurrences(of: "relu/on-kink", with: "relu/nope"), ["results.relu/nope", "unknown case"]),
        ("unknown tensor", good.replacingOccurrences(of: "{\"y\":", with: "{\"z\":"), ["results.relu/on-kink.outputs.z", "no outputs tensor"]),
        ("wrong shape", good.replacingOccurrences(of: "[4], \"data\": [0, 0, 0, 0.5]", with: "[2, 2], \"data\": [0, 0, 0, 0.5]"), ["outputs.y.shape", "expected [4]"]),
        ("wrong count", good.replacingOccurrences(of: "[0, 0, 0, 0.5]", with: "[0, 0, 0]"), ["outputs.y.data", "needs 4 elements"]),
        ("non-number", good.replacingOccurrences(of: "[0, 0, 0, 0.5]", with: "[0, 0, 0, \"half\"]"), ["outputs.y.data[3]", "expected a number"]),
        ("unknown precision", good.replacingOccurrences(of: "float64", with: "float8"), ["precision", "float8"]),
        ("unknown field", good.replacingOccurrences(of: "\"engine\"", with: "\"engines\": 1, \"engine\""), ["engines", "unknown field"]),
    ]

    @Test func malformedResultsGetOneLineAndStatus2() throws {
        for (name, text, words) in Self.table {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-results-\(UUID().uuidString).json").path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let result = try run(["validate", path])
            #expect(result.status == 2, "\(name): \(result.status) \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.contains(path), "\(name): \(result.stderr)")
            for w in words { #expect(result.stderr.contains(w), "\(name): '\(w)' missing from \(result.stderr)") }
        }
    }

    @Test func aPartialResultsFileSkipsTheRestAndPasses() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-results-\(UUID().uuidString).json").path
        try Self.good.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let junit = path + ".xml"
        let result = try run(["validate", path, "--junit", junit])
        #expect(result.status == 0, "\(result.stderr)")
        let total = try committedCaseCount() + committedCount("jvp_cases"), networks = try committedCount("networks")
        // Outputs only: forward only, counted as partial, never as passed; the network vectors,
        // not in the results, are skipped.
        #expect(result.stdout.hasSuffix("0 passed, 0 failed, \(total - 1) skipped, 0 not applicable, 1 partial; networks: 0 passed, 0 failed, \(networks) skipped, 0 not applicable, 0 partial\n"))
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(xml.contains("tests=\"\(total + networks)\" failures=\"0\" skipped=\"\(total - 1 + networks)\""))
    }

    @Test func aWrongValueFailsWithStatus1AndNamesTheElement() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-results-\(UUID().uuidString).json").path
        try Self.good.replacingOccurrences(of: "[0, 0, 0, 0.5]", with: "[0, 0, 0, 0.5000001]").write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try run(["validate", path])
        #expect(result.status == 1)
        #expect(result.stdout.contains("outputs.y: failed; worst [3] expected 0.5 got 0.5000001"))
    }

    /// An engine that rounds to TF32 and claims float32: 1024.5·1 comes out as 1024.
    static let tf32 = #"{"engine": "t", "precision": "float32", "results": {"relu/on-kink": {"outputs": {"y": {"shape": [4], "data": [0, 0, 0, 0.5]}}}, "linear/tf32-input-rounding-1024.5": {"outputs": {"y": {"shape": [1, 1], "data": [1024]}}}}}"#

    @Test func aFailingClaimNamesThePrecisionThatExplainsIt() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-results-\(UUID().uuidString).json").path
        try Self.tf32.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let claimed = try run(["validate", path])
        #expect(claimed.status == 1)
        #expect(claimed.stdout.contains("precision: fails float32 on 1 cases, worst linear/tf32-input-rounding-1024.5 outputs.y[0, 0] error 0.5 vs bound "), "\(claimed.stdout.suffix(600))")
        #expect(claimed.stdout.contains("; consistent with tf32: inputs of sums of products rounded to 11 significant bits"))
        let junit = path + ".xml"
        let auto = try run(["validate", path, "--precision", "auto", "--format", "json", "--junit", junit])
        #expect(auto.status == 0, "\(auto.stderr)")
        #expect(auto.stdout.contains(#""consistent": ["tf32", "float16", "bfloat16"]"#) && auto.stdout.contains(#""tightest": "tf32""#), "\(auto.stdout.suffix(900))")
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(xml.contains("name=\"fingerprint\"") && xml.contains("tightest tf32"))
    }
}

/// Determinism under load: two generations at once write identical bytes.
@Suite struct DeterminismTests {
    @Test func concurrentGenerationsWriteIdenticalBytes() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-gen-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: base) }
        let dirs = [base.appendingPathComponent("a").path, base.appendingPathComponent("b").path]
        let processes = dirs.map { dir -> Process in
            let p = Process()
            p.executableURL = cnnref
            p.arguments = ["generate", "--output", dir]
            p.standardOutput = FileHandle.nullDevice
            return p
        }
        for p in processes { try p.run() }
        for p in processes { p.waitUntilExit(); #expect(p.terminationStatus == 0) }
        let files = try FileManager.default.subpathsOfDirectory(atPath: dirs[0]).filter { $0.hasSuffix(".json") }.sorted()
        #expect(files.count == (try committedCaseCount()) + (try committedCount("jvp_cases")) + (try committedCount("networks")) + 1)   // the cases, the forward-mode cases, the network vectors and the manifest
        for f in files {
            #expect(FileManager.default.contents(atPath: dirs[0] + "/" + f) == FileManager.default.contents(atPath: dirs[1] + "/" + f), "\(f) differs")
        }
        // And both equal the committed vectors.
        for f in ["manifest.json", "conv2d/cs231n-demo.json", "softmax/logits-near-1000.json"] {
            #expect(FileManager.default.contents(atPath: dirs[0] + "/" + f) == FileManager.default.contents(atPath: repository.path + "/Vectors/" + f))
        }
    }
}

/// The number of cases in the committed Vectors/manifest.json.
func committedCaseCount() throws -> Int { try committedCount("cases") }

/// The number of entries of one list of the committed manifest (`cases`, `networks`).
func committedCount(_ list: String) throws -> Int {
    let data = try Data(contentsOf: repository.appendingPathComponent("Vectors/manifest.json"))
    let manifest = try JSONSerialization.jsonObject(with: data) as? [String: Any]
    return (manifest?[list] as? [Any])?.count ?? 0
}
