import CNNReference
import Foundation

/// What an engine produced for one case: its outputs and the gradients it
/// computed (either may be empty when the engine cannot compute them).
public struct EngineResult: Sendable {
    public var outputs: [NamedTensor]
    public var gradients: [NamedTensor]
    /// The engine's JVP along the case's tangents (a `cnnref-case-2` case; `jvp` in a results file).
    public var jvp: [NamedTensor]
    /// The engine's double backward with the tangents as the cotangent (`double_backward`).
    public var doubleBackward: [NamedTensor]
    public init(outputs: [NamedTensor], gradients: [NamedTensor] = [], jvp: [NamedTensor] = [], doubleBackward: [NamedTensor] = []) {
        self.outputs = outputs
        self.gradients = gradients
        self.jvp = jvp
        self.doubleBackward = doubleBackward
    }

    /// The result checked against the golden case's tensors, as a results file is: every
    /// tensor named by the case, at most once, with the golden shape (a tensor may be left
    /// out). `path` is where the result came from (`results.<case id>`).
    public func checked(against golden: Expected, path: String) throws(CaseError) -> EngineResult {
        EngineResult(
            outputs: try CaseFormat.conform(outputs, like: golden.outputs, path: "\(path).outputs"),
            gradients: try CaseFormat.conform(gradients, like: golden.gradients, path: "\(path).gradients"),
            jvp: try CaseFormat.conform(jvp, like: golden.jvp, path: "\(path).jvp"),
            doubleBackward: try CaseFormat.conform(doubleBackward, like: golden.doubleBackward, path: "\(path).double_backward"))
    }
}

/// A Swift engine validated without files: it runs a golden case and returns
/// its result, or nil for a case it does not support.
public protocol Engine {
    var name: String { get }
    var precision: Precision { get }
    func run(_ c: Case) throws -> EngineResult?
}

/// The verdict for one tensor of one case.
public struct TensorVerdict: Sendable {
    public enum Status: String, Sendable { case passed, failed, skipped, convention }
    public var name: String           // "outputs.y", "gradients.x"
    public var status: Status
    /// The worst element: index, expected, got, |error|, bound.
    public var worst: (index: [Int], expected: Double, got: Double, error: Double, bound: Double)?
    public var detail: String = ""
    public var ratio: Double { worst.map { $0.bound == 0 ? ($0.error == 0 ? 0 : .infinity) : $0.error / $0.bound } ?? 0 }
}

public struct CaseVerdict: Sendable {
    public enum Status: String, Sendable {
        case passed, failed, skipped
        case notApplicable = "not-applicable"
        /// Nothing failed, but some tensors were not in the results ("forward only"
        /// when no gradient was): never counted as passed.
        case partial
    }
    public var id: String
    public var status: Status
    public var reason: String = ""
    public var tensors: [TensorVerdict] = []
}

public struct ValidationReport: Sendable {
    public var engine: String
    public var precision: Precision
    public var cases: [CaseVerdict]
    /// The network vectors' verdicts (none when the results have no `networks` block and
    /// none was asked for).
    public var networks: [NetworkVerdict] = []
    public func count(_ s: CaseVerdict.Status) -> Int { cases.filter { $0.status == s }.count }
    public func networkCount(_ s: CaseVerdict.Status) -> Int { networks.filter { $0.status == s }.count }
    public var passed: Bool { count(.failed) == 0 && networkCount(.failed) == 0 }
    /// Cases judged at all (passed, partial or failed).
    public var judged: Int { count(.passed) + count(.partial) + count(.failed) }
    public var summary: String {
        "\(count(.passed)) passed, \(count(.failed)) failed, \(count(.skipped)) skipped, \(count(.notApplicable)) not applicable, \(count(.partial)) partial"
            + (networks.isEmpty ? "" : "; networks: \(networkCount(.passed)) passed, \(networkCount(.failed)) failed, \(networkCount(.skipped)) skipped, \(networkCount(.notApplicable)) not applicable, \(networkCount(.partial)) partial")
    }
}

/// A results file: `{"engine", "precision", "results": {"<case id>": {"outputs", "gradients"}},
/// "networks": {"networks/<id>": {"outputs", "output_gradients", "gradients"}}, "unsupported"}`.
public struct ResultsFile: Sendable {
    public var engine: String
    public var precision: String
    public var results: [String: EngineResult]
    public var unsupported: [String: String]
    /// By network vector id (`networks/stem`); absent before issue 15.
    public var networks: [String: NetworkResult] = [:]

    /// Decodes and checks a results file against the golden cases: every error names the field.
    public static func decode(_ text: String, cases: [String: Case], networks: [String: NetworkFile] = [:], maxBytes: Int = CaseFormat.defaultMaxBytes,
                              maxWork: Int = CaseFormat.defaultMaxWork) throws(CaseError) -> ResultsFile {
        let json: JSON
        do { json = try JSON.parse(text) } catch { throw CaseError("", "malformed JSON: \(error)") }
        guard case .object(let top) = json else { throw CaseError("", "expected an object, found \(json.typeName)") }
        for (key, _) in top where !["engine", "precision", "results", "networks", "unsupported"].contains(key) {
            throw CaseError(key, "unknown field; expected engine, precision, results, networks, unsupported")
        }
        guard case .string(let engine)? = json["engine"] else { throw CaseError("engine", "expected a string naming the engine") }
        guard case .string(let precision)? = json["precision"] else { throw CaseError("precision", "expected a string") }
        guard case .object(let results)? = json["results"] else { throw CaseError("results", "expected an object of case results") }
        var unsupported: [String: String] = [:]
        if let u = json["unsupported"] {
            guard case .object(let members) = u else { throw CaseError("unsupported", "expected an object of case id → reason") }
            for (id, reason) in members {
                guard case .string(let r) = reason else { throw CaseError("unsupported.\(id)", "expected a string") }
                unsupported[id] = r
            }
        }
        let decoder = CaseDecoder(maxBytes: maxBytes, maxWork: maxWork)
        var out: [String: EngineResult] = [:]
        for (id, value) in results {
            guard let golden = cases[id]?.expected else {
                throw CaseError("results.\(id)", "unknown case: no golden vector has this id")
            }
            guard case .object(let sections) = value else { throw CaseError("results.\(id)", "expected an object with outputs and gradients") }
            var result = EngineResult(outputs: [], gradients: [])
            for (section, content) in sections {
                let references = ["outputs": golden.outputs, "gradients": golden.gradients, "jvp": golden.jvp, "double_backward": golden.doubleBackward]
                guard let reference = references[section] else {
                    throw CaseError("results.\(id).\(section)", "unknown field; expected outputs, gradients, jvp, double_backward")
                }
                guard case .object(let tensors) = content else { throw CaseError("results.\(id).\(section)", "expected an object of tensors") }
                if reference.isEmpty && !tensors.isEmpty {
                    throw CaseError("results.\(id).\(section)", "the case has no \(section): only a \(ForwardMode.schema) case has jvp (and, for \(ForwardMode.doubleBackwardLayers.joined(separator: ", ")), double_backward)")
                }
                for (name, t) in tensors {
                    let path = "results.\(id).\(section).\(name)"
                    guard reference.contains(where: { $0.name == name }) else {
                        throw CaseError(path, "unknown tensor: the case has no \(section) tensor \"\(name)\"; expected one of \(reference.map(\.name).joined(separator: ", "))")
                    }
                    var budget = ByteBudget(limit: maxBytes)
                    let tensor = try decoder.decodeTensor(t, path: path, budget: &budget)
                    switch section {
                    case "outputs": result.outputs.append(NamedTensor(name, tensor))
                    case "gradients": result.gradients.append(NamedTensor(name, tensor))
                    case "jvp": result.jvp.append(NamedTensor(name, tensor))
                    default: result.doubleBackward.append(NamedTensor(name, tensor))
                    }
                }
            }
            // The same check a Swift engine's result gets (names, shapes).
            out[id] = try result.checked(against: golden, path: "results.\(id)")
        }
        let networkResults = try decodeNetworks(json["networks"], networks: networks, decoder: decoder, maxBytes: maxBytes)
        return ResultsFile(engine: engine, precision: precision, results: out, unsupported: unsupported, networks: networkResults)
    }
}

public enum Validator {
    /// Judges `results` (by case id) against the golden `cases` at `precision`.
    /// A case the engine did not run is skipped, never passed.
    public static func validate(engine: String, precision: Precision, cases: [Case], results: [String: EngineResult],
                                unsupported: [String: String] = [:]) -> ValidationReport {
        var scales = ScaleCache()
        return validate(engine: engine, precision: precision, cases: cases, results: results, unsupported: unsupported, scales: &scales)
    }

    /// The error scales of each case, computed once whatever the precision.
    public struct ScaleCache {
        var stored: [String: Result<(output: ErrorScale, gradients: [ErrorScale], auxiliary: [ErrorScale]), CaseError>] = [:]
        public init() {}
        mutating func scales(_ c: Case, _ golden: Expected) -> Result<(output: ErrorScale, gradients: [ErrorScale], auxiliary: [ErrorScale]), CaseError> {
            if let s = stored[c.id] { return s }
            let s: Result<(output: ErrorScale, gradients: [ErrorScale], auxiliary: [ErrorScale]), CaseError>
            do { s = .success(try ErrorModel.scales(c, golden: golden)) } catch { s = .failure(CaseError("", "\(error)")) }
            stored[c.id] = s
            return s
        }

        /// Scales derived from equivalent cases (ForwardMode), by key.
        var derived: [String: Result<[ErrorScale], CaseError>] = [:]
        mutating func derived(_ key: String, _ make: () throws -> [ErrorScale]) -> Result<[ErrorScale], CaseError> {
            if let s = derived[key] { return s }
            let s: Result<[ErrorScale], CaseError>
            do { s = .success(try make()) } catch { s = .failure(CaseError("", "\(error)")) }
            derived[key] = s
            return s
        }

        /// The scales of an equivalent case's tensors, by index: outputs first, then gradients.
        static func equivalentScale(_ e: Case, gradient k: Int?) throws -> ErrorScale {
            let evaluated = try e.evaluated()
            let scales = try ErrorModel.scales(evaluated, golden: evaluated.expected!)
            return k.map { scales.gradients[$0] } ?? scales.output
        }

        /// The scale of the JVP of `c` (a `cnnref-case-2` case): its equivalent case's output or
        /// input gradient scale.
        mutating func jvpScale(_ c: Case) -> Result<ErrorScale, CaseError> {
            derived("\(c.id)#jvp") {
                guard let tangents = c.tangents else { throw CaseError("tangents", "missing") }
                if ForwardMode.directLayers.contains(c.layer) { return [try ErrorModel.directJVPScale(c, tangents: tangents)] }
                let (e, reading) = try ForwardMode.equivalent(c, layer: try LayerRegistry.makeLayer(c), tangents: tangents)
                return [try Self.equivalentScale(e, gradient: reading == .output ? nil : 0)]
            }.map { $0[0] }
        }

        /// The scales of the double backward of `c`: each tensor's equivalent case's gradient
        /// scale, or none (an exact 0: only the underflow terms) where it is 0.
        mutating func doubleBackwardScales(_ c: Case) -> Result<[ErrorScale], CaseError> {
            derived("\(c.id)#double-backward") {
                guard let w = c.tangents else { throw CaseError("tangents", "missing") }
                return try ForwardMode.doubleBackwardSources(c, layer: try LayerRegistry.makeLayer(c), cotangents: w).enumerated().map { k, tensor in
                    switch tensor.source {
                    case .zero:
                        let n = tensor.shape.reduce(1, *)
                        return ErrorScale(terms: Array(repeating: 0, count: n), magnitude: Array(repeating: 0, count: n))
                    case .equivalent(let e, let i): return try Self.equivalentScale(e, gradient: i)
                    case .direct: return try ErrorModel.directDoubleBackwardScale(c, cotangents: w, tensor: k)
                    }
                }
            }
        }
    }

    static func validate(engine: String, precision: Precision, cases: [Case], results: [String: EngineResult],
                         unsupported: [String: String], scales: inout ScaleCache) -> ValidationReport {
        let verdicts = cases.map { c -> CaseVerdict in
            guard let result = results[c.id] else {
                // Not applicable is a property of the case and the precision, whether or not the
                // engine ran it (adapters leave out cases whose inputs they would round).
                if c.expected != nil, let why = inapplicability(c, precision) {
                    return CaseVerdict(id: c.id, status: .notApplicable, reason: why)
                }
                return CaseVerdict(id: c.id, status: .skipped, reason: unsupported[c.id] ?? "not in the results")
            }
            return judge(c, result, precision, scales: &scales)
        }
        return ValidationReport(engine: engine, precision: precision, cases: verdicts)
    }

    /// Runs a Swift engine over every case and judges it.
    public static func validate(_ engine: any Engine, cases: [Case]) -> ValidationReport {
        let (results, unsupported) = run(engine, cases: cases)
        return validate(engine: engine.name, precision: engine.precision, cases: cases, results: results, unsupported: unsupported)
    }

    /// Runs a Swift engine over every case (without their expected values).
    public static func run(_ engine: any Engine, cases: [Case]) -> (results: [String: EngineResult], unsupported: [String: String]) {
        var results: [String: EngineResult] = [:]
        var unsupported: [String: String] = [:]
        for c in cases {
            var input = c
            input.expected = nil
            do {
                if let r = try engine.run(input) { results[c.id] = r } else { unsupported[c.id] = "unsupported by the engine" }
            } catch {
                unsupported[c.id] = "the engine threw: \(error)"
            }
        }
        return (results, unsupported)
    }

    /// Why `c` does not apply at `precision` (an input the precision's input format does not
    /// hold exactly, or a golden value beyond its output format's range), or nil.
    public static func inapplicability(_ c: Case, _ precision: Precision) -> String? {
        let format = precision.inputFormat
        let named = c.inputs.map { ("inputs.\($0.name)", $0.tensor) } + (c.upstream.map { [("upstream", $0)] } ?? [])
            + (c.tangents ?? []).map { ("tangents.\($0.name)", $0.tensor) }
        for (path, t) in named {
            if let i = t.scalars.firstIndex(where: { !format.represents($0) }) {
                let v = t[i]
                return "\(path)\(t.index(ofFlat: i)) = \(v) is not exact in \(format.name) (it rounds to \(format.rounded(v)))"
            }
        }
        guard let golden = c.expected else { return nil }
        let out = precision.outputFormat
        for (section, tensors) in [("outputs", golden.outputs), ("gradients", golden.gradients), ("jvp", golden.jvp), ("double_backward", golden.doubleBackward)] {
            for t in tensors {
                if let i = t.tensor.scalars.firstIndex(where: { $0.isFinite && !out.rounded($0).isFinite }) {
                    return "\(section).\(t.name)\(t.tensor.index(ofFlat: i)) = \(t.tensor[i]) exceeds the \(out.name) range (largest \(out.greatestFinite))"
                }
            }
        }
        return nil
    }

    static func judge(_ c0: Case, _ result0: EngineResult, _ precision: Precision, scales cache: inout ScaleCache) -> CaseVerdict {
        // A golden case built in Swift gets the decoder's checks; a result the checks a
        // results file gets: a wrong name or shape is a failure with its reason, never a trap.
        let c: Case
        do { c = try c0.checked() } catch {
            return CaseVerdict(id: c0.id, status: .skipped, reason: "the golden case is inconsistent: \(error)")
        }
        guard let golden = c.expected else { return CaseVerdict(id: c.id, status: .skipped, reason: "the golden case has no expected values") }
        let result: EngineResult
        do { result = try result0.checked(against: golden, path: "results.\(c.id)") } catch {
            return CaseVerdict(id: c.id, status: .failed, reason: "the engine's result does not fit the case: \(error)")
        }
        if let why = inapplicability(c, precision) {
            return CaseVerdict(id: c.id, status: .notApplicable, reason: why)
        }
        let scales: (output: ErrorScale, gradients: [ErrorScale], auxiliary: [ErrorScale])
        switch cache.scales(c, golden) {
        case .success(let s): scales = s
        case .failure(let error): return CaseVerdict(id: c.id, status: .skipped, reason: "\(error)")
        }
        var verdict = CaseVerdict(id: c.id, status: .passed)
        var sections: [(String, [NamedTensor], [NamedTensor], [ErrorScale])] = [
            ("outputs", golden.outputs, result.outputs, [scales.output] + scales.auxiliary),
            ("gradients", golden.gradients, result.gradients, scales.gradients),
        ]
        if !golden.jvp.isEmpty {
            // The JVP's bound is its equivalent case's (ForwardMode): the output, or the input gradient.
            switch cache.jvpScale(c) {
            case .success(let s): sections.append(("jvp", golden.jvp, result.jvp, [s]))
            case .failure(let error): return CaseVerdict(id: c.id, status: .skipped, reason: "the JVP's bound: \(error)")
            }
        }
        if !golden.doubleBackward.isEmpty {
            switch cache.doubleBackwardScales(c) {
            case .success(let s): sections.append(("double_backward", golden.doubleBackward, result.doubleBackward, s))
            case .failure(let error): return CaseVerdict(id: c.id, status: .skipped, reason: "the double backward's bound: \(error)")
            }
        }
        for (section, expected, got, scale) in sections {
            // A forward-mode case's gradients are its cnnref-case-1 twin's, judged there: optional here.
            if section == "gradients", c.tangents != nil, got.isEmpty { continue }
            for (k, e) in expected.enumerated() {
                guard let g = got.first(where: { $0.name == e.name }) else {
                    verdict.tensors.append(TensorVerdict(name: "\(section).\(e.name)", status: .skipped, worst: nil, detail: "not in the results"))
                    continue
                }
                var t = compare(e.tensor, g.tensor, scale[k], precision, name: "\(section).\(e.name)")
                if t.status == .failed, let convention = Conventions.match(c, section: section, tensor: e.name, got: g.tensor, scale: scale[k], precision: precision) {
                    t.status = .convention
                    t.detail = convention
                }
                verdict.tensors.append(t)
            }
        }
        let statuses = verdict.tensors.map(\.status)
        let missing = verdict.tensors.filter { $0.status == .skipped }.map(\.name)
        if statuses.contains(.failed) {
            verdict.status = .failed
        } else if !statuses.contains(.passed) && !statuses.contains(.convention) {
            verdict.status = .skipped
            verdict.reason = "no tensor of the case is in the results"
        } else if !missing.isEmpty {
            verdict.status = .partial
            let gradients = verdict.tensors.filter { $0.name.hasPrefix("gradients.") }
            verdict.reason = !gradients.isEmpty && gradients.allSatisfy({ $0.status == .skipped }) && missing.count == gradients.count
                ? "forward only: no gradient in the results"
                : "not in the results: \(missing.joined(separator: ", "))"
        }
        return verdict
    }

    static func compare(_ expected: Tensor, _ got: Tensor, _ scale: ErrorScale, _ precision: Precision, name: String) -> TensorVerdict {
        compare(expected, got, name: name, bound: { i, e in scale.bound(i, golden: e, precision: precision) },
                unjudgeable: { i, b in scale.unjudgeable(i, bound: b, precision: precision) })
    }

    /// Element by element: `bound(i, golden)` is element i's bound, `unjudgeable(i, bound)` why
    /// it has none (nil when it has one).
    static func compare(_ expected: Tensor, _ got: Tensor, name: String, bound boundOf: (Int, Double) -> Double,
                        unjudgeable: (Int, Double) -> String?) -> TensorVerdict {
        var worst: (index: [Int], expected: Double, got: Double, error: Double, bound: Double)?
        var worstRatio = -1.0
        var failed = false
        guard expected.shape == got.shape else {
            // Callers check shapes first (`EngineResult.checked`); never index past the end.
            return TensorVerdict(name: name, status: .failed, worst: nil, detail: "shape \(got.shape), expected \(expected.shape)")
        }
        var unjudged: (index: Int, reason: String, count: Int)?
        for i in 0..<expected.count {
            let e = expected[i], g = got[i]
            let error: Double, bound: Double
            if !e.isFinite || !g.isFinite {
                // Non-finite values must agree exactly (NaN with NaN, ∞ with the same ∞).
                let same = (e.isNaN && g.isNaN) || e == g
                error = same ? 0 : .infinity
                bound = 0
            } else {
                error = (g - e).magnitude
                bound = boundOf(i, e)
                // No finite bound: the element cannot be judged, and that never passes (an exact
                // match needs no bound).
                if error != 0, let why = unjudgeable(i, bound) {
                    if unjudged == nil { unjudged = (i, why, 0) }
                    unjudged!.count += 1
                    failed = true
                    continue
                }
            }
            let ratio = error == 0 ? 0 : (bound == 0 ? .infinity : error / bound)
            if !(ratio <= 1) { failed = true }
            if ratio > worstRatio {
                worstRatio = ratio
                worst = (expected.index(ofFlat: i), e, g, error, bound)
            }
        }
        var verdict = TensorVerdict(name: name, status: failed ? .failed : .passed, worst: worst)
        if let unjudged {
            let i = unjudged.index
            verdict.detail = "cannot be judged at \(expected.index(ofFlat: i)) (expected \(expected[i]), got \(got[i])): \(unjudged.reason)"
                + (unjudged.count > 1 ? "; \(unjudged.count) elements like it" : "")
        }
        return verdict
    }
}

/// Conventions that engines disagree on at kinks and ties, recognised by name
/// instead of failed blindly.
enum Conventions {
    /// The name of the documented convention `got` follows, if it follows one.
    static func match(_ c: Case, section: String, tensor: String, got: Tensor, scale: ErrorScale, precision: Precision) -> String? {
        guard c.tags.contains("kink") || c.tags.contains("tie"), let golden = c.expected,
              let layer = try? LayerRegistry.makeLayer(c) else { return nil }
        let x = c.inputs[0].tensor
        let dy = c.upstream ?? Tensor(scalar: 1)
        var alternatives: [(String, Tensor)] = []
        if let pool = layer as? MaxPool2D, section == "outputs" {
            var y = golden.outputs[0].tensor
            pool.window.forEachWindow(input: x.shape) { out, taps in
                y[out] = taps.map { x[$0] }.filter { !$0.isNaN }.max() ?? .nan
            }
            alternatives.append(("max pool ignores NaN (the maximum of the other cells)", y))
        }
        guard section == "gradients" || !alternatives.isEmpty else { return nil }
        if let pool = layer as? MaxPool2D, tensor == "x", section == "gradients" {
            alternatives.append(("max pool routes to the last maximum (or NaN)", route(pool, x, dy, last: true)))
            alternatives.append(("max pool splits the gradient equally among tied maxima", route(pool, x, dy, last: false)))
        }
        if [ReLU.id, LeakyReLU.id, PReLU.id, ELU.id].contains(c.layer), tensor == "x", section == "gradients" {
            var alt = golden.gradients[0].tensor
            for i in 0..<x.count where x[i] == 0 { alt[i] = dy[i] }
            alternatives.append(("derivative of the positive branch at x = 0", alt))
        }
        if let hinge = layer as? MulticlassHinge, tensor == "scores", section == "gradients" {
            let (n, cl) = (x.shape[0], x.shape[1])
            let divisor = hinge.reduction == .mean ? Double(n) : 1
            var alt = Tensor(zeros: x.shape)
            for i in 0..<n {
                var count = 0.0
                for j in 0..<cl where j != hinge.labels[i] && x[i * cl + j] - x[i * cl + hinge.labels[i]] + hinge.margin >= 0 {
                    alt[i * cl + j] = dy[0] / divisor
                    count += 1
                }
                alt[i * cl + hinge.labels[i]] = -count * dy[0] / divisor
            }
            alternatives.append(("hinge term counted as active when its margin is exactly 0", alt))
        }
        for (name, alt) in alternatives where Validator.compare(alt, got, scale, precision, name: tensor).status == .passed {
            return "convention: \(name) (the golden value follows the pinned rule: \(Catalogue.conventions[c.layer] ?? ""))"
        }
        return nil
    }

    /// Max-pool backward with another tie rule: the last maximum (or NaN), or an equal split.
    static func route(_ pool: MaxPool2D, _ x: Tensor, _ dy: Tensor, last: Bool) -> Tensor {
        var dx = Tensor(zeros: x.shape)
        pool.window.forEachWindow(input: x.shape) { out, taps in
            let nans = taps.filter { x[$0].isNaN }
            let m = taps.map { x[$0] }.filter { !$0.isNaN }.max()
            let winners = nans.isEmpty ? taps.filter { x[$0] == m } : nans
            if last { dx[winners.last!] += dy[out] } else { for w in winners { dx[w] += dy[out] / Double(winners.count) } }
        }
        return dx
    }
}
