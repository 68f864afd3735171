import CNNReference
import Foundation
import Testing

/// The window helpers the kernels loop over agree with trying every tap.
@Suite struct SlidingWindowTests {
    @Test func tapRangesAndCoveringTapsMatchBruteForce() {
        var checked = 0
        for input in 1...7 { for kernel in 1...6 { for stride in 1...4 { for dilation in 1...3 {
            for (padBegin, padEnd) in [(0, 0), (1, 0), (0, 2), (2, 3), (5, 5)] { for ceil in [false, true] {
                let w = SlidingWindow(input: input, kernel: kernel, stride: stride, padBegin: padBegin, padEnd: padEnd,
                                      dilation: dilation, ceilMode: ceil)
                let windows = 0..<w.outputSize
                for i in windows {
                    let inside = (0..<kernel).filter { (0..<input).contains(w.position(window: i, tap: $0)) }
                    #expect(Array(w.tapsInside(window: i)) == inside)
                    let padded = (0..<kernel).filter { (-padBegin..<(input + padEnd)).contains(w.position(window: i, tap: $0)) }
                    #expect(Array(w.taps(window: i, within: -padBegin, input + padEnd)) == padded)
                    #expect(w.windowTouchesInput(i) == !inside.isEmpty)
                }
                for p in 0..<kernel {
                    #expect(Array(w.windowsInside(tap: p)) == windows.filter { (0..<input).contains(w.position(window: $0, tap: p)) })
                }
                for r in 0..<input {
                    let brute = windows.flatMap { i in (0..<kernel).filter { w.position(window: i, tap: $0) == r }.map { (i, $0) } }
                    let solved = w.tapsCovering(r).map { (w.window(covering: r, tap: $0), $0) }
                    #expect(solved.map(\.0) == brute.map(\.0) && solved.map(\.1) == brute.map(\.1),
                            "input \(input) kernel \(kernel) stride \(stride) dilation \(dilation) pad \(padBegin),\(padEnd) ceil \(ceil) r \(r)")
                }
                checked += 1
            } }
        } } } }
        #expect(checked > 5000)
    }
}

/// RFC 8259, strictly: every rejection says where.
@Suite struct StrictJSONTests {
    static let rejected: [(String, Int, Int, String)] = [
        (#"{"a": "\u+06dean"}"#, 1, 10, "four hex digits"),
        (#"{"a": "\u06d"}"#, 1, 13, "four hex digits"),
        (#"{"a": "\u-06d"}"#, 1, 10, "four hex digits"),
        (#"{"a": "\u 06d"}"#, 1, 10, "four hex digits"),
        (#"{"a": "\ud800"}"#, 1, 14, "unpaired surrogate"),
        (#"{"a": "\udc00"}"#, 1, 14, "unpaired surrogate"),
        (#"{"a": "\ud800\u0041"}"#, 1, 20, "unpaired surrogate"),
        (#"{"a": "\x"}"#, 1, 10, "invalid escape"),
        ("{\"a\": \"tab\there\"}", 1, 11, "control character U+0009"),
        ("{\"a\": \"line\nbreak\"}", 1, 12, "control character U+000A"),
        (#"{"a": 1, "b": 2, "a": 3}"#, 1, 18, "duplicate key \"a\""),
        ("{\"a\": {\n  \"k\": 1,\n  \"k\": 2}}", 3, 3, "duplicate key \"k\""),
        ("[01]", 1, 2, "leading zero"),
        ("[1.]", 1, 4, "digit after '.'"),
        ("[+1]", 1, 2, "expected a value"),
        ("[.5]", 1, 2, "expected a value"),
        ("[1e]", 1, 4, "exponent"),
        ("[NaN]", 1, 2, "expected a value"),
        ("[Infinity]", 1, 2, "expected a value"),
        ("[1,]", 1, 4, "expected a value"),
        ("{\"a\": 1,}", 1, 9, "quoted key"),
        ("{'a': 1}", 1, 2, "quoted key"),
        ("[1] [2]", 1, 5, "after the JSON value"),
        ("\u{FEFF}[1]", 1, 1, "expected a value"),
        ("[tru]", 1, 2, "expected a value"),
        ("\"abc", 1, 5, "unterminated"),
    ]

    @Test func rejectsWithThePosition() {
        for (text, line, column, words) in Self.rejected {
            do {
                let v = try JSON.parse(text)
                Issue.record("accepted \(text.debugDescription) as \(v)")
            } catch {
                #expect(error.line == line && error.column == column, "\(text.debugDescription): \(error)")
                #expect(error.message.contains(words), "\(text.debugDescription): \(error)")
            }
        }
    }

    @Test func acceptsWhatRFC8259Allows() throws {
        #expect(try JSON.parse(#""\u006dean""#) == .string("mean"))
        #expect(try JSON.parse(#""\u006Dean""#) == .string("mean"))
        #expect(try JSON.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(try JSON.parse(#""\u0000\/\b\f\n\r\t\"\\""#) == .string("\u{0}/\u{8}\u{C}\n\r\t\"\\"))
        #expect(try JSON.parse(" \t\r\n[-0, 0.5e+3, 1E-2]\n") == .array([.number("-0"), .number("0.5e+3"), .number("1E-2")]))
        #expect(try JSON.parse(#"{"a": {}, "b": {"a": 1}}"#)["b"]?["a"] == .number("1"))   // the same key in another object
    }

    /// Duplicate-key detection stays linear: 200,000 keys in well under a second.
    @Test func manyKeysParseQuickly() throws {
        let text = "{" + (0..<200_000).map { "\"k\($0)\": 0" }.joined(separator: ", ") + "}"
        let start = Date()
        _ = try JSON.parse(text)
        #expect(Date().timeIntervalSince(start) < 10)
    }
}

/// The decoder: `expected` exactly the layer's tensors; work counted as the kernels loop.
@Suite struct StrictDecoderTests {
    static func relu(expected: String) -> String {
        """
        {"schema": "cnnref-case-1", "id": "t/relu", "layer": "relu",
         "inputs": {"x": {"shape": [4], "data": [1, -1, 2, 0]}}, "upstream": {"shape": [4], "data": [1, 1, 1, 1]},
         "expected": \(expected)}
        """
    }

    static let bad: [(String, String, String)] = [
        (#"{"outputs": {"y": {"shape": [2], "data": [1, 0]}}, "gradients": {}}"#, "expected.outputs.y.shape", "expected [4], found [2]"),
        (#"{"outputs": {"y": {"shape": [4], "data": [1, 0, 2, 0]}}, "gradients": {}}"#, "expected.gradients.x", "missing"),
        (#"{"outputs": {"y": {"shape": [4], "data": [1, 0, 2, 0]}}}"#, "expected.gradients", "missing required field"),
        (#"{"gradients": {"x": {"shape": [4], "data": [1, 0, 1, 0]}}}"#, "expected.outputs", "missing required field"),
        (#"{"outputs": {}, "gradients": {"x": {"shape": [4], "data": [1, 0, 1, 0]}}}"#, "expected.outputs.y", "missing"),
        (#"{"outputs": {"y": {"shape": [4], "data": [1, 0, 2, 0]}, "z": {"shape": [1], "data": [0]}}, "gradients": {"x": {"shape": [4], "data": [1, 0, 1, 0]}}}"#,
         "expected.outputs.z", "unknown tensor; expected y"),
        (#"{"outputs": {"y": {"shape": [4], "data": [1, 0, 2, 0]}}, "gradients": {"x": {"shape": [2, 2], "data": [1, 0, 1, 0]}}}"#,
         "expected.gradients.x.shape", "expected [4], found [2, 2]"),
        (#"{"outputs": {"x": {"shape": [4], "data": [1, 0, 2, 0]}}, "gradients": {"x": {"shape": [4], "data": [1, 0, 1, 0]}}}"#,
         "expected.outputs.x", "unknown tensor"),
    ]

    @Test func expectedMustFitTheLayer() {
        for (block, field, words) in Self.bad {
            do {
                _ = try CaseDecoder().decode(text: Self.relu(expected: block))
                Issue.record("accepted \(block)")
            } catch let e as CaseError {
                #expect(e.field == field && e.message.contains(words), "\(block): \(e)")
            } catch { Issue.record("\(error)") }
        }
    }

    @Test func expectedInAnyOrderComesBackInTheLayersOrder() throws {
        let text = """
            {"schema": "cnnref-case-1", "id": "t/lin", "layer": "linear",
             "inputs": {"x": {"shape": [1, 1], "data": [2]}, "weight": {"shape": [1, 1], "data": [3]}, "bias": {"shape": [1], "data": [1]}},
             "upstream": {"shape": [1, 1], "data": [1]},
             "expected": {"gradients": {"bias": {"shape": [1], "data": [1]}, "x": {"shape": [1, 1], "data": [3]}, "weight": {"shape": [1, 1], "data": [2]}},
                          "outputs": {"y": {"shape": [1, 1], "data": [7]}}}}
            """
        let c = try CaseDecoder().decode(text: text)
        #expect(c.expected?.gradients.map(\.name) == ["x", "weight", "bias"])
    }

    /// A huge kernel whose taps lie in the padding costs nothing: the issue's case
    /// (kernel [1, 2^30] over 100,000 planes) and its average-pool twin answer at once.
    @Test func hugeKernelsOverTinyInputsAreFast() throws {
        for layer in ["maxpool2d", "avgpool2d"] {
            let n = 20_000
            let ones = Array(repeating: "1", count: n).joined(separator: ", ")
            let text = """
                {"schema": "cnnref-case-1", "id": "t/huge", "layer": "\(layer)",
                 "config": {"kernel": [1, 1073741824], "padding": [0, 536870912, 0, 536870911]\(layer == "avgpool2d" ? ", \"count_include_pad\": true" : "")},
                 "inputs": {"x": {"shape": [1, \(n), 1, 1], "data": [\(ones)]}}, "upstream": {"shape": [1, \(n), 1, 1], "data": [\(ones)]}}
                """
            let start = Date()
            let c = try CaseDecoder().decode(text: text).evaluated()
            #expect(Date().timeIntervalSince(start) < 5, "\(layer)")
            #expect(c.expected?.outputs[0].tensor.scalars.allSatisfy { $0 == (layer == "avgpool2d" ? 0x1p-30 : 1) } == true)
            #expect(c.expected?.gradients[0].tensor.scalars.allSatisfy { $0 == (layer == "avgpool2d" ? 0x1p-30 : 1) } == true)
        }
    }

    /// Work past the limit is refused before any work, with the arithmetic.
    @Test func workPastTheLimitIsRefusedWithTheArithmetic() {
        let text = """
            {"schema": "cnnref-case-1", "id": "t/w", "layer": "maxpool2d", "config": {"kernel": [1, 4096], "padding": [0, 4095, 0, 4095]},
             "inputs": {"x": {"shape": [1, 1, 1, 4096], "data": [\(Array(repeating: "1", count: 4096).joined(separator: ", "))]}},
             "upstream": {"shape": [1, 1, 1, 8191], "data": [\(Array(repeating: "1", count: 8191).joined(separator: ", "))]}}
            """
        do {
            _ = try CaseDecoder(maxWork: 1 << 24).decode(text: text)
            Issue.record("accepted")
        } catch let e as CaseError {
            // Σ over the 8191 windows of the taps inside = 4096² = 16,777,216.
            #expect(e.field == "inputs")
            #expect(e.message.contains("1 planes (N·C) × 1 row taps inside the input (Σ over the 1 window rows) × 16777216 column taps inside the input (Σ over the 8191 window columns) = 16777216 terms visited + 8191 outputs + 4096 input elements = 16789503 loop steps per pass exceeds the work limit of 16777216"), "\(e)")
        } catch { Issue.record("\(error)") }
        #expect((try? CaseDecoder(maxWork: 1 << 25).decode(text: text)) != nil)
    }
}
