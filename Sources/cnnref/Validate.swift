import ArgumentParser
import CNNReference
import Foundation
import GoldenVectors

extension Precision: ExpressibleByArgument {}

/// `--precision`: one precision, or `auto` to fingerprint the results under all of them.
enum PrecisionChoice: ExpressibleByArgument {
    case auto
    case exactly(Precision)
    init?(argument: String) {
        if argument == "auto" { self = .auto } else if let p = Precision(rawValue: argument) { self = .exactly(p) } else { return nil }
    }
    static var allValueStrings: [String] { ["auto"] + Precision.allCases.map(\.rawValue) }
}

extension CNNRef {
    struct Validate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Judge an engine's results against the golden vectors with per-element error bounds.",
            discussion: """
                Every element is compared with its golden value under a forward error bound for the engine's \
                precision (see README: Validation bounds). Cases the engine did not run are skipped, never passed; \
                cases whose inputs the precision cannot represent are not applicable; cases with some tensors missing \
                are partial, never passed. When the precision fails, the report names the looser precision that \
                explains the results. --precision auto judges the results under every precision and names those they \
                are consistent with (exit 0 when there is one). Exit 0 only when nothing failed.
                """)

        @Argument(help: "The results file written by an engine adapter.")
        var results: String

        @Option(help: "The engine's precision: float64, float32, tf32, float16, bfloat16, or auto to fingerprint the results (default: the results file's).")
        var precision: PrecisionChoice?

        @Option(help: "The golden vectors folder.")
        var vectors: String = "Vectors"

        @Option(help: "Output format: text or json.")
        var format: OutputFormat = .text

        @Option(help: "Also write a JUnit XML report to this file.")
        var junit: String?

        @Flag(help: "Do not check the vectors against the manifest's SHA-256 hashes (the report says so).")
        var noVerify = false

        @OptionGroup var limits: InputLimits

        func run() throws {
            let (cases, networks) = try limits.loadVectorsAndNetworks(vectors, verify: !noVerify)
            let text = try readText(results)
            let file: ResultsFile
            do {
                file = try ResultsFile.decode(text, cases: Dictionary(cases.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a }),
                                              networks: Dictionary(networks.map { ("networks/\($0.id)", $0) }, uniquingKeysWith: { a, _ in a }),
                                              maxBytes: limits.maxBytes, maxWork: limits.maxWork)
            } catch {
                throw InputError(results, error)
            }
            // --precision, when given, says how to judge; otherwise the file's own field.
            let claimed = Precision(rawValue: file.precision)
            let choice: PrecisionChoice
            if let precision { choice = precision } else if let claimed { choice = .exactly(claimed) } else {
                throw InputError(results, CaseError("precision", "expected float64, float32, tf32, float16 or bfloat16, found \"\(file.precision)\""))
            }
            func fingerprint(known: ValidationReport? = nil) -> Fingerprint {
                Fingerprint.of(engine: file.engine, claimed: claimed, cases: cases, results: file.results,
                               unsupported: file.unsupported, known: known)
            }
            var report: ValidationReport, fingerprinted: Fingerprint?, explanation: String?, passed: Bool
            switch choice {
            case .auto:
                let f = fingerprint()
                fingerprinted = f
                // The detailed report: the tightest consistent precision, else the file's claim.
                report = f.report(f.tightest ?? claimed ?? .float64)
                explanation = nil
                passed = f.tightest != nil
            case .exactly(let declared):
                report = Validator.validate(engine: file.engine, precision: declared, cases: cases,
                                            results: file.results, unsupported: file.unsupported)
                fingerprinted = nil
                // Only a failing claim is fingerprinted, reusing its report.
                explanation = report.passed ? nil : fingerprint(known: report).explanation(claimed: declared)
                passed = report.passed
            }
            // Networks are judged at the precision the cases are reported at.
            report.networks = NetworkValidator.validate(networks, results: file.networks, precision: report.precision, unsupported: file.unsupported)
            passed = passed && report.networkCount(.failed) == 0
            switch format {
            case .text: printOut(ValidationText.text(report, verified: !noVerify, fingerprint: fingerprinted, explanation: explanation))
            case .json: printOut(ValidationText.json(report, verified: !noVerify, fingerprint: fingerprinted, explanation: explanation).formatted())
            }
            if let junit {
                do { try Data(ValidationText.junit(report, fingerprint: fingerprinted, explanation: explanation).utf8).write(to: URL(fileURLWithPath: junit)) } catch {
                    throw InputError(junit, "cannot write the JUnit report: \(error.localizedDescription)")
                }
            }
            if !passed { throw CheckFailed() }
        }
    }
}

enum ValidationText {
    static func row(_ t: TensorVerdict) -> String {
        guard let w = t.worst else { return "\(t.name): \(t.status.rawValue)\(t.detail.isEmpty ? "" : ": \(t.detail)")" }
        return "\(t.name): \(t.status.rawValue); worst \(w.index) expected \(w.expected) got \(w.got) error \(String(format: "%.3g", w.error)) bound \(String(format: "%.3g", w.bound)) error/bound \(String(format: "%.3g", t.ratio))\(t.detail.isEmpty ? "" : "; \(t.detail)")"
    }

    static let notVerified = "vectors: NOT verified against manifest.json (--no-verify): a changed golden value would be judged against"

    static func text(_ r: ValidationReport, verified: Bool = true, fingerprint: Fingerprint? = nil, explanation: String? = nil) -> String {
        var out = "engine \(r.engine), precision \(r.precision.rawValue)\n"
        if !verified { out += notVerified + "\n" }
        for c in r.cases {
            out += "\(c.id): \(c.status.rawValue)\(c.reason.isEmpty ? "" : " (\(c.reason))")\n"
            for t in c.tensors { out += "  \(row(t))\n" }
        }
        for n in r.networks {
            out += "\(n.id): \(n.status.rawValue)\(n.reason.isEmpty ? "" : " (\(n.reason))")\n"
            for u in n.nodes {
                out += "  node \(u.node) (\(u.layer)): \(u.status.rawValue)\(u.reason.isEmpty ? "" : " (\(u.reason))")\n"
                for t in u.tensors { out += "    \(row(t))\n" }
            }
            if !n.endToEnd.tensors.isEmpty || n.status != .notApplicable && n.status != .skipped {
                out += "  end to end: \(n.endToEnd.status.rawValue)\(n.endToEnd.reason.isEmpty ? "" : " (\(n.endToEnd.reason))")\n"
                for t in n.endToEnd.tensors { out += "    \(row(t))\n" }
            }
        }
        if let fingerprint {
            out += "fingerprint:\n" + fingerprint.lines.map { "  \($0)\n" }.joined() + fingerprint.conclusion + "\n"
        }
        if let explanation { out += "precision: \(explanation)\n" }
        out += r.summary + "\n"
        return out
    }

    static func json(_ t: TensorVerdict) -> JSON {
        var m: [(String, JSON)] = [("name", .string(t.name)), ("status", .string(t.status.rawValue))]
        if let w = t.worst {
            m += [("index", .array(w.index.map(JSON.int))), ("expected", .double(w.expected)), ("got", .double(w.got)),
                  ("error", .double(w.error)), ("bound", .double(w.bound)), ("ratio", .double(t.ratio))]
        }
        if !t.detail.isEmpty { m.append(("detail", .string(t.detail))) }
        return .object(m)
    }

    static func json(_ n: NetworkVerdict) -> JSON {
        .object([
            ("id", .string(n.id)), ("status", .string(n.status.rawValue)), ("reason", .string(n.reason)),
            ("failing_node", n.failingNode.map(JSON.string) ?? .null),
            ("nodes", .array(n.nodes.map { u in
                .object([("node", .string(u.node)), ("layer", .string(u.layer)), ("status", .string(u.status.rawValue)),
                         ("reason", .string(u.reason)), ("tensors", .array(u.tensors.map(json)))])
            })),
            ("end_to_end", .object([("status", .string(n.endToEnd.status.rawValue)), ("reason", .string(n.endToEnd.reason)),
                                    ("tensors", .array(n.endToEnd.tensors.map(json)))])),
        ])
    }

    static func json(_ r: ValidationReport, verified: Bool = true, fingerprint: Fingerprint? = nil, explanation: String? = nil) -> JSON {
        var extra: [(String, JSON)] = []
        if let fingerprint { extra.append(("fingerprint", fingerprint.json)) }
        if let explanation { extra.append(("explanation", .string(explanation))) }
        return .object([
            ("engine", .string(r.engine)), ("precision", .string(r.precision.rawValue)),
            ("vectors_verified", .bool(verified)),
            ("passed", .int(r.count(.passed))), ("failed", .int(r.count(.failed))),
            ("skipped", .int(r.count(.skipped))), ("not_applicable", .int(r.count(.notApplicable))),
            ("partial", .int(r.count(.partial))),
            ("cases", .array(r.cases.map { c in
                .object([
                    ("id", .string(c.id)), ("status", .string(c.status.rawValue)), ("reason", .string(c.reason)),
                    ("tensors", .array(c.tensors.map(json))),
                ])
            })),
            ("networks_passed", .int(r.networkCount(.passed))), ("networks_failed", .int(r.networkCount(.failed))),
            ("networks_skipped", .int(r.networkCount(.skipped))), ("networks_not_applicable", .int(r.networkCount(.notApplicable))),
            ("networks_partial", .int(r.networkCount(.partial))),
            ("networks", .array(r.networks.map(json))),
        ] + extra)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func junit(_ r: ValidationReport, fingerprint: Fingerprint? = nil, explanation: String? = nil) -> String {
        let skipped = r.count(.skipped) + r.count(.notApplicable) + r.networkCount(.skipped) + r.networkCount(.notApplicable)
        let extra = (fingerprint == nil ? 0 : 1) + (explanation == nil ? 0 : 1) + r.networks.count
        let failures = r.count(.failed) + r.networkCount(.failed) + (explanation == nil ? 0 : 1) + (fingerprint.map { $0.tightest == nil ? 1 : 0 } ?? 0)
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<testsuite name=\"cnnref validate \(escape(r.engine)) \(r.precision.rawValue)\" tests=\"\(r.cases.count + extra)\" failures=\"\(failures)\" skipped=\"\(skipped)\">\n"
        if let fingerprint {
            out += "  <testcase classname=\"precision\" name=\"fingerprint\""
            out += fingerprint.tightest == nil
                ? ">\n    <failure message=\"\(escape(fingerprint.conclusion))\">\(escape(fingerprint.lines.joined(separator: "\n")))</failure>\n  </testcase>\n"
                : ">\n    <system-out>\(escape((fingerprint.lines + [fingerprint.conclusion]).joined(separator: "\n")))</system-out>\n  </testcase>\n"
        }
        if let explanation {
            out += "  <testcase classname=\"precision\" name=\"claimed precision\">\n    <failure message=\"\(escape(explanation))\"/>\n  </testcase>\n"
        }
        for c in r.cases {
            let layer = c.id.split(separator: "/").first.map(String.init) ?? ""
            out += "  <testcase classname=\"\(escape(layer))\" name=\"\(escape(c.id))\""
            switch c.status {
            case .passed:
                out += "/>\n"
            case .partial:
                out += ">\n    <system-out>\(escape("partial: " + c.reason))</system-out>\n  </testcase>\n"
            case .failed:
                let failing = c.tensors.filter { $0.status == .failed }.map(row).joined(separator: "\n")
                out += ">\n    <failure message=\"\(escape(c.tensors.first { $0.status == .failed }.map(row) ?? "failed"))\">\(escape(failing))</failure>\n  </testcase>\n"
            case .skipped, .notApplicable:
                out += ">\n    <skipped message=\"\(escape(c.status.rawValue + ": " + c.reason))\"/>\n  </testcase>\n"
            }
        }
        for n in r.networks {
            out += "  <testcase classname=\"networks\" name=\"\(escape(n.id))\""
            switch n.status {
            case .passed: out += "/>\n"
            case .partial: out += ">\n    <system-out>\(escape("partial: " + n.reason))</system-out>\n  </testcase>\n"
            case .failed:
                let failing = (n.nodes.flatMap { u in u.tensors.filter { $0.status == .failed }.map { "node \(u.node): \(row($0))" } }
                    + n.endToEnd.tensors.filter { $0.status == .failed }.map { "end to end: \(row($0))" }).joined(separator: "\n")
                out += ">\n    <failure message=\"\(escape(n.reason))\">\(escape(failing))</failure>\n  </testcase>\n"
            case .skipped, .notApplicable:
                out += ">\n    <skipped message=\"\(escape(n.status.rawValue + ": " + n.reason))\"/>\n  </testcase>\n"
            }
        }
        out += "</testsuite>\n"
        return out
    }
}
