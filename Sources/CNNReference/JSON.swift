/// A JSON value that keeps what the case format needs and Foundation's
/// parsers lose: object key order (for stable output), the literal text of
/// numbers (to tell `3` from `3.0` for integer fields, and to reject numbers
/// that overflow `Double`), and line/column positions for one-line errors.
public indirect enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(String)           // the literal as written, validated as JSON
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// A `Double` written the way the case format writes numbers: the shortest
    /// decimal that reads back as the same `Double` (`-0` for negative zero),
    /// and the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
    public static func double(_ x: Double) -> JSON {
        if x.isNaN { return .string("NaN") }
        if x.isInfinite { return .string(x > 0 ? "Infinity" : "-Infinity") }
        var text = x.description            // Swift prints the shortest round-trip form
        if text.hasSuffix(".0") { text.removeLast(2) }
        return .number(text)
    }

    public static func int(_ x: Int) -> JSON { .number(String(x)) }

    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// The value of `key` in an object.
    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }
}

// MARK: - Parsing

public struct JSONSyntaxError: Error, CustomStringConvertible, Sendable {
    public var line: Int, column: Int, message: String
    public var description: String { "line \(line), column \(column): \(message)" }
}

extension JSON {
    /// Parses one JSON document (RFC 8259), rejecting trailing content and
    /// nesting deeper than `maxDepth`.
    public static func parse(_ text: String, maxDepth: Int = 64) throws(JSONSyntaxError) -> JSON {
        var parser = Parser(bytes: Array(text.utf8), maxDepth: maxDepth)
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        if parser.i < parser.bytes.count { throw parser.error("unexpected text after the JSON value") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        let maxDepth: Int
        var i = 0

        init(bytes: [UInt8], maxDepth: Int) {
            self.bytes = bytes
            self.maxDepth = maxDepth
        }

        func error(_ message: String) -> JSONSyntaxError {
            var line = 1, column = 1
            for b in bytes[..<min(i, bytes.count)] {
                if b == 10 { line += 1; column = 1 } else if b & 0xC0 != 0x80 { column += 1 }
            }
            return JSONSyntaxError(line: line, column: column, message: message)
        }

        mutating func skipSpace() {
            while i < bytes.count, [32, 9, 10, 13].contains(bytes[i]) { i += 1 }
        }

        var found: String {
            guard i < bytes.count else { return "end of file (truncated?)" }
            return "'\(String(decoding: [bytes[i]], as: UTF8.self))'"
        }

        mutating func value(depth: Int) throws(JSONSyntaxError) -> JSON {
            guard depth < maxDepth else { throw error("nesting deeper than \(maxDepth) levels") }
            guard i < bytes.count else { throw error("expected a value, found end of file (truncated?)") }
            switch bytes[i] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw error("expected a value, found \(found)")
            }
        }

        mutating func literal(_ word: String) throws(JSONSyntaxError) {
            let w = Array(word.utf8)
            guard i + w.count <= bytes.count, Array(bytes[i..<i + w.count]) == w else {
                throw error("expected a value, found \(found)")
            }
            i += w.count
        }

        mutating func object(depth: Int) throws(JSONSyntaxError) -> JSON {
            i += 1
            var members: [(String, JSON)] = []
            var keys = Set<String>()
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else {
                    throw error("expected a quoted key, found \(found)")
                }
                let keyStart = i
                let key = try string()
                guard keys.insert(key).inserted else {
                    i = keyStart
                    throw error("duplicate key \"\(key)\" (RFC 8259 leaves its meaning undefined)")
                }
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw error("expected ':', found \(found)") }
                i += 1
                skipSpace()
                members.append((key, try value(depth: depth + 1)))
                skipSpace()
                guard i < bytes.count else { throw error("expected ',' or '}', found end of file (truncated?)") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw error("expected ',' or '}', found \(found)")
            }
        }

        mutating func array(depth: Int) throws(JSONSyntaxError) -> JSON {
            i += 1
            var elements: [JSON] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(elements) }
            while true {
                skipSpace()
                elements.append(try value(depth: depth + 1))
                skipSpace()
                guard i < bytes.count else { throw error("expected ',' or ']', found end of file (truncated?)") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(elements) }
                throw error("expected ',' or ']', found \(found)")
            }
        }

        mutating func string() throws(JSONSyntaxError) -> String {
            i += 1
            var out: [UInt8] = []
            while true {
                guard i < bytes.count else { throw error("unterminated string (truncated?)") }
                let b = bytes[i]
                if b == UInt8(ascii: "\"") { i += 1; break }
                if b < 0x20 { throw error("control character U+\(String(format2: b)) in a string (RFC 8259: escape it)") }
                if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
                i += 1
                guard i < bytes.count else { throw error("unterminated string (truncated?)") }
                let escape = bytes[i]
                i += 1
                switch escape {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired surrogate in \\u escape")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in \\u escape") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(code) {
                        throw error("unpaired surrogate in \\u escape")
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(code)!)).utf8))
                default: throw error("invalid escape '\\\(String(decoding: [escape], as: UTF8.self))'")
                }
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw error("string is not valid UTF-8") }
            return s
        }

        /// Exactly four hex digits (RFC 8259: no sign, no fewer, no other characters).
        mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
            var v: UInt32 = 0
            for k in 0..<4 {
                guard i + k < bytes.count else { i += k; throw error("expected four hex digits after \\u, found end of file (truncated?)") }
                let b = bytes[i + k]
                let digit: UInt32
                switch b {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(b - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(b - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(b - UInt8(ascii: "A") + 10)
                default:
                    i += k
                    throw error("expected four hex digits after \\u, found \(found)")
                }
                v = v * 16 + digit
            }
            i += 4
            return v
        }

        mutating func number() throws(JSONSyntaxError) -> JSON {
            let start = i
            func digits(_ p: inout Parser) -> Int {
                let s = p.i
                while p.i < p.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(p.bytes[p.i]) { p.i += 1 }
                return p.i - s
            }
            if bytes[i] == UInt8(ascii: "-") { i += 1 }
            let intStart = i
            let intDigits = digits(&self)
            guard intDigits > 0 else { throw error("expected a digit, found \(found)") }
            if intDigits > 1 && bytes[intStart] == UInt8(ascii: "0") {
                i = intStart
                throw error("number with a leading zero")
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits(&self) > 0 else { throw error("expected a digit after '.', found \(found)") }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits(&self) > 0 else { throw error("expected a digit in the exponent, found \(found)") }
            }
            return .number(String(decoding: bytes[start..<i], as: UTF8.self))
        }
    }
}

extension String {
    /// Two hex digits, for control characters in messages.
    init(format2 b: UInt8) {
        let hex = String(b, radix: 16, uppercase: true)
        self = String(repeating: "0", count: 4 - hex.count) + hex
    }
}

// MARK: - Writing

extension JSON {
    /// Deterministic text: objects one member per line with two-space
    /// indentation, arrays of scalars on one line; keys in their given order.
    public func formatted() -> String {
        var out = ""
        write(into: &out, indent: 0)
        out += "\n"
        return out
    }

    private func write(into out: inout String, indent: Int) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n
        case .string(let s): JSON.writeString(s, into: &out)
        case .array(let elements):
            let flat = elements.allSatisfy {
                switch $0 { case .array, .object: return false; default: return true }
            }
            if flat || elements.isEmpty {
                out += "["
                for (k, e) in elements.enumerated() {
                    if k > 0 { out += ", " }
                    e.write(into: &out, indent: indent)
                }
                out += "]"
            } else {
                out += "[\n"
                for (k, e) in elements.enumerated() {
                    out += String(repeating: " ", count: indent + 2)
                    e.write(into: &out, indent: indent + 2)
                    out += k + 1 < elements.count ? ",\n" : "\n"
                }
                out += String(repeating: " ", count: indent) + "]"
            }
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{\n"
            for (k, (key, value)) in members.enumerated() {
                out += String(repeating: " ", count: indent + 2)
                JSON.writeString(key, into: &out)
                out += ": "
                value.write(into: &out, indent: indent + 2)
                out += k + 1 < members.count ? ",\n" : "\n"
            }
            out += String(repeating: " ", count: indent) + "}"
        }
    }

    private static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
