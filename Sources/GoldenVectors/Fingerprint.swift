import CNNReference
import Foundation

/// Which precisions an engine's results are consistent with: the results judged
/// under the bound of every precision, on the cases each one applies to.
///
/// The classic silent precision bug is an engine that computes in TF32 or
/// bfloat16 while its user believes it runs float32. Cases whose inputs use all
/// of float32's 24 significant bits apply at float32 but not at TF32 (11 bits)
/// or bfloat16 (8): a TF32 engine fails float32 there and passes TF32, whose own
/// cases it computes exactly as float32 would.
public struct Fingerprint: Sendable {
    /// One report per precision, tightest first.
    public var reports: [ValidationReport]
    /// The precisions under which nothing failed and at least one case was judged, tightest first.
    public var consistent: [Precision] {
        reports.filter { $0.passed && $0.judged > 0 }.map(\.precision)
    }
    public var tightest: Precision? { consistent.first }

    /// Cases that fail even under the loosest precision (bfloat16's bound), and under every
    /// other that judged them: wrong results (a NaN dropped, an overflow), which no precision
    /// explains. (A case the loosest precision cannot judge, e.g. float32's 24-bit inputs,
    /// may fail only because the engine is narrower: it is never counted here.)
    public var wrongAtEveryPrecision: [String] {
        guard let loosest = reports.last else { return [] }
        let failing = loosest.cases.filter { $0.status == .failed }.map(\.id)
        guard !failing.isEmpty else { return [] }
        // One index per report, so the lookup is linear in the number of cases.
        let passedIn = reports.map { r in Set(r.cases.lazy.filter { $0.status == .passed }.map(\.id)) }
        return failing.filter { id in passedIn.allSatisfy { !$0.contains(id) } }.sorted()
    }

    /// The precisions consistent with every case but those wrong at every precision, tightest
    /// first: what the rest of the results say when a few cases are plainly wrong.
    public var consistentApartFromWrong: [Precision] {
        let wrong = Set(wrongAtEveryPrecision)
        return reports.filter { r in
            r.cases.contains { $0.status == .passed } && r.cases.allSatisfy { $0.status != .failed || wrong.contains($0.id) }
        }.map(\.precision)
    }

    /// "N cases wrong at every precision (a, b, …)".
    var wrongSummary: String {
        let w = wrongAtEveryPrecision
        return "\(w.count) case\(w.count == 1 ? "" : "s") wrong at every precision (\(w.prefix(5).joined(separator: ", "))\(w.count > 5 ? ", …" : ""))"
    }

    public func report(_ p: Precision) -> ValidationReport { reports.first { $0.precision == p }! }

    /// `known`: a report already made for one precision, used instead of judging it again.
    public static func of(engine: String, claimed: Precision? = nil, cases: [Case], results: [String: EngineResult],
                          unsupported: [String: String] = [:], known: ValidationReport? = nil) -> Fingerprint {
        var scales = Validator.ScaleCache()
        return Fingerprint(reports: Precision.tightestFirst.map { p in
            if let known, known.precision == p { return known }
            return Validator.validate(engine: engine, precision: p, cases: cases, results: results, unsupported: unsupported, scales: &scales)
        }, claimed: claimed)
    }

    /// Runs a Swift engine once and fingerprints its results; `claimed` is the engine's precision.
    public static func of(_ engine: any Engine, cases: [Case]) -> Fingerprint {
        let (results, unsupported) = Validator.run(engine, cases: cases)
        return of(engine: engine.name, claimed: engine.precision, cases: cases, results: results, unsupported: unsupported)
    }

    /// The worst failing element of a report: case id, tensor and index, error and bound.
    static func worstFailure(_ r: ValidationReport) -> String? {
        let failing = r.cases.filter { $0.status == .failed }.flatMap { c in c.tensors.filter { $0.status == .failed }.map { (c.id, $0) } }
        guard let (id, t) = failing.max(by: { $0.1.ratio < $1.1.ratio }) else { return nil }
        guard let w = t.worst, t.detail.isEmpty || !t.detail.hasPrefix("cannot be judged") else {
            return "\(id) \(t.name): \(t.detail)"
        }
        return "\(id) \(t.name)\(w.index) error \(String(format: "%.3g", w.error)) vs bound \(String(format: "%.3g", w.bound))"
    }

    /// One line per precision: its counts, and its worst failure.
    public var lines: [String] {
        reports.map { r in
            let verdict = r.passed ? (r.judged > 0 ? "consistent" : "nothing applicable") : "fails on \(r.count(.failed)) cases, worst \(Self.worstFailure(r) ?? "")"
            return "\(r.precision.rawValue): \(r.summary): \(verdict)"
        }
    }

    /// The precision the results file claims, when it names one.
    public var claimed: Precision?

    /// What the results say, in one sentence: the tightest consistent precision, or none,
    /// and whether the claimed precision holds.
    public var conclusion: String {
        var s: String
        if let t = tightest {
            s = "consistent with \(consistent.map(\.rawValue).joined(separator: ", ")); tightest \(t.rawValue): \(t.arithmetic)"
        } else if let t = consistentApartFromWrong.first {
            s = "consistent with \(consistentApartFromWrong.map(\.rawValue).joined(separator: ", ")) apart from \(wrongSummary); tightest \(t.rawValue): \(t.arithmetic)"
        } else {
            return "consistent with no precision: the results fail the bound of every one"
        }
        if let claimed, let why = explanation(claimed: claimed) { s += ". The results claim \(claimed.rawValue), which \(why)" }
        return s
    }

    /// When `claimed` fails: which looser precision explains the results, with the evidence
    /// ("fails float32 on 41 cases, worst …; consistent with tf32: inputs rounded to 11 bits").
    public func explanation(claimed: Precision) -> String? {
        let r = report(claimed)
        guard !r.passed else { return nil }
        let failure = "fails \(claimed.rawValue) on \(r.count(.failed)) cases, worst \(Self.worstFailure(r) ?? "")"
        let index = Precision.tightestFirst.firstIndex(of: claimed)!
        let isLooser = { (p: Precision) in Precision.tightestFirst.firstIndex(of: p)! > index }
        if let looser = consistent.first(where: isLooser) {
            return failure + "; consistent with \(looser.rawValue): \(looser.arithmetic)"
        }
        if consistentApartFromWrong.contains(claimed) {
            return failure + "; every failing case is among the \(wrongSummary): not a precision mismatch, wrong results"
        }
        if let looser = consistentApartFromWrong.first(where: isLooser) {
            return failure + "; apart from the \(wrongSummary), consistent with \(looser.rawValue): \(looser.arithmetic)"
        }
        return failure + "; consistent with no looser precision either: not a precision mismatch, a wrong result"
    }

    public var json: JSON {
        .object([
            ("consistent", .array(consistent.map { .string($0.rawValue) })),
            ("tightest", tightest.map { .string($0.rawValue) } ?? .null),
            ("conclusion", .string(conclusion)),
            ("wrong_at_every_precision", .array(wrongAtEveryPrecision.map(JSON.string))),
            ("consistent_apart_from_wrong", .array(consistentApartFromWrong.map { .string($0.rawValue) })),
            ("precisions", .array(reports.map { r in
                .object([("precision", .string(r.precision.rawValue)), ("passed", .int(r.count(.passed))),
                         ("failed", .int(r.count(.failed))), ("skipped", .int(r.count(.skipped))),
                         ("not_applicable", .int(r.count(.notApplicable))), ("partial", .int(r.count(.partial))),
                         ("worst_failure", Self.worstFailure(r).map(JSON.string) ?? .null)])
            })),
        ])
    }
}
