import CNNReference
import Foundation
import GradientCheck
import PrecisionOracle

/// Feeds the case decoder and the results decoder arbitrary bytes: each input
/// must be decoded or rejected with a `CaseError`, and a decoded case must
/// evaluate (and a decoded results file validate) without trapping. Used by the
/// libFuzzer target `cnnref-fuzz` and by a seeded mutation loop (the tests and
/// `cnnref-fuzz` built without libFuzzer).
public enum Fuzzing {
    /// Small golden cases the results decoder is checked against.
    static let golden: [String: Case] = {
        let ids: Set = ["conv2d/cs231n-demo", "relu/on-kink", "multiclass_hinge/margin-exactly-zero", "maxpool2d/tie-two-maxima",
                        "conv2d/negative-zero", "avgpool2d/ceil-overhang-not-counted", "linear/n2-d3-m4-exact", "softmax/negative-infinity",
                        "maxout/tie-between-pieces", "prelu/on-kink", "swish/beta-0.5-vector-7-exact", "softmax_cross_entropy/n1-c2-mean-exact",
                        "elu/alpha-0.5-vector-7-exact", "log_softmax/one-element", "maxpool2d/ceil-mode-drops-window-in-padding-exact",
                        // The architecture layers: several inputs, buffers, further outputs, certified roots and powers.
                        "add/signed-zeros-and-infinities", "dropout/non-finite-and-zeros", "lrn/rational-powers",
                        "batchnorm2d/train-variance-0-channel-2x3x2x2-eps-1e-5", "adaptive_avgpool2d/overlapping-1x1x5x7-to-3x4-exact"]
        return Dictionary(uniqueKeysWithValues: Catalogue().cases.filter { ids.contains($0.id) }.map { ($0.id, try! $0.evaluated()) })
    }()

    /// The seeds the mutation loop starts from: every golden case above, and a results file for them.
    public static let seeds: [Data] = {
        var out = golden.values.sorted { $0.id < $1.id }.map { Data([0]) + Data($0.json.formatted().utf8) }
        let results = JSON.object([("engine", .string("seed")), ("precision", .string("float64")),
                                   ("results", .object(golden.values.sorted { $0.id < $1.id }.map { c in
                                       (c.id, .object([("outputs", .object(c.expected!.outputs.map { ($0.name, $0.tensor.json) })),
                                                       ("gradients", .object(c.expected!.gradients.map { ($0.name, $0.tensor.json) }))]))
                                   }))])
        out.append(Data([1]) + Data(results.formatted().utf8))
        return out
    }()

    /// One input: the first byte picks the decoder (0 mod 4: a case, 1: a results file, both
    /// as bytes); 2 and 3 mod 4 run the structure-aware mutator with the remaining bytes as
    /// its decisions, and trap on a finding so that libFuzzer reports it.
    public static func one(_ data: Data) {
        guard let selector = data.first else { return }
        if selector & 2 != 0 {
            var decisions = ByteDecisions(bytes: Array(data.dropFirst()))
            if let finding = structured(&decisions) { fatalError("cnnref-fuzz finding: \(finding)") }
            return
        }
        let text = String(decoding: data.dropFirst(), as: UTF8.self)
        let limit = 1 << 20
        if selector & 1 == 0 {
            guard let c = try? CaseDecoder(maxBytes: limit).decode(text: text) else { return }
            // Keep each input fast: the byte budget already bounds memory.
            guard c.inputs.reduce(0, { $0 + $1.tensor.count }) <= 4096, (c.upstream?.count ?? 1) <= 4096 else { return }
            _ = try? c.evaluated()
        } else {
            guard let results = try? ResultsFile.decode(text, cases: golden, maxBytes: limit) else { return }
            _ = Validator.validate(engine: results.engine, precision: .float32, cases: Array(golden.values), results: results.results)
        }
    }

    static let tokens: [String] = [
        "-1", "0", "1e400", "-1e-400", "99999999999999999999", "NaN", "\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "[]", "{}",
        "null", "true", "\"\"", "[[[[[[[[", "]]]]", "-0", "2.5", "1e308", "\"conv2d\"", "\"x\"", "\"shape\"", ",", ":", "\"",
        "\\u0000", "\\ud800", "65536", "[1, 1, 1, 1]", "[0]", "\"mean\"",
    ]

    /// Mutates `seed` with a few random edits (byte flips, dictionary tokens, deletions, duplications, truncation).
    static func mutate(_ seed: Data, _ rng: SeededRandom) -> Data {
        var bytes = Array(seed)
        for _ in 0..<(1 + rng.below(4)) {
            guard bytes.count > 1 else { break }
            let at = 1 + rng.below(bytes.count - 1)
            switch rng.below(5) {
            case 0: bytes[at] = UInt8(rng.below(256))
            case 1: bytes.insert(contentsOf: Array(tokens[rng.below(tokens.count)].utf8), at: at)
            case 2: bytes.removeSubrange(at..<min(bytes.count, at + 1 + rng.below(16)))
            case 3:
                let end = min(bytes.count, at + 1 + rng.below(32))
                bytes.insert(contentsOf: bytes[at..<end], at: at)
            default: bytes.removeSubrange(at..<bytes.count)
            }
        }
        return Data(bytes)
    }

    /// Runs the seeded mutation loop for `iterations` inputs or `seconds`, whichever
    /// comes first, and returns how many inputs it tried (a trap ends the process).
    public static func run(iterations: Int, seconds: Double, seed: UInt) -> Int {
        let rng = SeededRandom(seed: seed)
        let start = Date()
        var corpus = seeds
        var tried = 0
        while tried < iterations && Date().timeIntervalSince(start) < seconds {
            let input = mutate(corpus[rng.below(corpus.count)], rng)
            one(input)
            tried += 1
            // Keep some mutants as new seeds so edits accumulate.
            if rng.below(8) == 0 { corpus.append(input) }
            if corpus.count > 256 { corpus.removeSubrange(seeds.count..<seeds.count + 64) }
        }
        return tried
    }

    // MARK: - Structure-aware fuzzing

    /// Where the structure-aware mutator takes its decisions from.
    public protocol Decisions {
        /// A number in 0..<n (n ≥ 1).
        mutating func below(_ n: Int) -> Int
    }

    /// Decisions from a seeded generator (the bounded runs).
    public struct SeededDecisions: Decisions {
        let rng: SeededRandom
        public init(seed: UInt) { rng = SeededRandom(seed: seed) }
        public mutating func below(_ n: Int) -> Int { rng.below(n) }
    }

    /// Decisions read from bytes (libFuzzer's input); 0 once they run out.
    public struct ByteDecisions: Decisions {
        var bytes: [UInt8], at = 0
        public init(bytes: [UInt8]) { self.bytes = bytes }
        public mutating func below(_ n: Int) -> Int {
            guard n > 1 else { return 0 }
            var v = 0
            for _ in 0..<(n > 255 ? 2 : 1) {
                v = v << 8 | Int(at < bytes.count ? bytes[at] : 0)
                at += 1
            }
            return v % n
        }
    }

    /// A finding: an input a command did not answer with 0, 1 or a one-line error, or too slowly.
    public struct Finding: CustomStringConvertible, Sendable {
        public var command: String, problem: String, input: String
        public var description: String { "\(command): \(problem); input: \(input.prefix(2000))" }
    }

    /// What a structured run did.
    public struct Statistics: Sendable {
        public var tried = 0, cases = 0, resultsFiles = 0, decoded = 0, rejected = 0
        public var findings: [Finding] = []
        public var slowest = 0.0
    }

    /// The structural seeds: every golden case above (with and without `expected`) and a
    /// results file for all of them.
    public static let structuralSeeds: [JSON] = {
        let cases = golden.values.sorted { $0.id < $1.id }
        var out = cases.map(\.json)
        out += cases.map { c in var bare = c; bare.expected = nil; return bare.json }
        out.append(resultsJSON(cases))
        return out
    }()

    static func resultsJSON(_ cases: [Case]) -> JSON {
        .object([("engine", .string("seed")), ("precision", .string("float64")),
                 ("results", .object(cases.map { c in
                     (c.id, .object([("outputs", .object(c.expected!.outputs.map { ($0.name, $0.tensor.json) })),
                                     ("gradients", .object(c.expected!.gradients.map { ($0.name, $0.tensor.json) }))]))
                 })),
                 ("unsupported", .object([("relu/on-kink", .string("seed"))]))])
    }

    static let names = ["x", "y", "weight", "bias", "scores", "loss", "slope", "beta", "outputs", "gradients", "shape", "data",
                        "expected", "inputs", "upstream", "labels", "config", "kernel", "stride", "padding", "dilation", "groups",
                        "ceil_mode", "count_include_pad", "pieces", "axis", "alpha", "margin", "reduction", "id", "layer", "results",
                        "training", "eps", "momentum", "size", "k", "p", "start_axis", "output_size", "running_mean", "running_var", "mask", "x0", "x1",
                        "engine", "precision", "unsupported", "tags", "notes", "description", "schema"]
    static let strings = ["conv2d", "maxpool2d", "avgpool2d", "relu", "leaky_relu", "prelu", "elu", "sigmoid", "tanh", "swish",
                          "maxout", "linear", "softmax", "log_softmax", "softmax_cross_entropy", "multiclass_hinge", "mean", "sum",
                          "add", "concat", "flatten", "dropout", "adaptive_avgpool2d", "batchnorm2d", "lrn",
                          "NaN", "Infinity", "-Infinity", "float64", "float32", "tf32", "float16", "bfloat16", "cnnref-case-1", "",
                          "kink", "tie", "relu/on-kink", "conv2d/cs231n-demo", "maxpool2d/tie-two-maxima"]
    static let integers = [0, 1, 2, 3, -1, 4, 5, 7, 1 << 20, 1 << 28, (1 << 29) - 1, 1 << 29, 1 << 30, 1 << 31, (1 << 31) + 1, Int.max]
    static let doubles: [JSON] = [.string("NaN"), .string("Infinity"), .string("-Infinity"), .number("-0"), .number("0"),
                                  .number("5e-324"), .number("-5e-324"), .number("2.2250738585072014e-308"), .number("1e308"),
                                  .number("-1.7976931348623157e308"), .number("1"), .number("-1"), .number("0.5"), .number("1e-400"),
                                  .number("1e400"), .number("3.0"), .number("1e2")]

    static func pick<T>(_ items: [T], _ d: inout some Decisions) -> T { items[d.below(items.count)] }

    /// Every node of `json`, in preorder: how many there are.
    static func count(_ json: JSON) -> Int {
        switch json {
        case .array(let items): return 1 + items.reduce(0) { $0 + count($1) }
        case .object(let members): return 1 + members.reduce(0) { $0 + count($1.1) }
        default: return 1
        }
    }

    /// `json` with node number `target` (preorder) mutated.
    static func rewrite(_ json: JSON, key: String, target: Int, counter: inout Int, donors: [JSON], _ d: inout some Decisions) -> JSON {
        if counter == target { counter += 1; return mutateNode(json, key: key, donors: donors, &d) }
        counter += 1
        switch json {
        case .array(let items):
            return .array(items.map { rewrite($0, key: key, target: target, counter: &counter, donors: donors, &d) })
        case .object(let members):
            return .object(members.map { ($0.0, rewrite($0.1, key: $0.0, target: target, counter: &counter, donors: donors, &d)) })
        default: return json
        }
    }

    /// A plausible tensor of `shape` with values from the interesting ones.
    static func tensor(_ shape: [Int], _ d: inout some Decisions) -> JSON {
        let n = min(shape.reduce(1) { $0 * max($1, 0) }, 4096)
        let values: [JSON] = (0..<n).map { k in d.below(4) == 0 ? pick(doubles, &d) : .number(String(k % 7 - 3)) }
        return .object([("shape", .array(shape.map(JSON.int))), ("data", .array(values))])
    }

    /// The subtree under `key` somewhere in a donor, if any (a whole `expected` block, a tensor, a config).
    static func donor(_ key: String, _ donors: [JSON], _ d: inout some Decisions) -> JSON? {
        func find(_ j: JSON) -> [JSON] {
            switch j {
            case .object(let m): return m.flatMap { ($0.0 == key ? [$0.1] : []) + find($0.1) }
            case .array(let items): return items.flatMap(find)
            default: return []
            }
        }
        let found = donors.flatMap(find)
        return found.isEmpty ? nil : pick(found, &d)
    }

    static func mutateNode(_ json: JSON, key: String, donors: [JSON], _ d: inout some Decisions) -> JSON {
        switch json {
        case .object(var members):
            // A tensor: reshape it consistently (plausible shapes, counts that match) or not.
            if json["shape"] != nil, json["data"] != nil, d.below(2) == 0 {
                var shape = (try? decodeInts(json["shape"]!, path: "")) ?? [1]
                switch d.below(5) {
                case 0: if !shape.isEmpty { shape.removeLast() }
                case 1: shape.append(pick([1, 2, 3], &d))
                case 2: if !shape.isEmpty { shape[d.below(shape.count)] = pick([1, 2, 3, 4, 5], &d) }
                case 3: shape.reverse()
                default: shape = []
                }
                if d.below(4) == 0, case .object(var m) = tensor(shape, &d) {
                    m[1].1 = json["data"]!              // keep the old data: counts that do not match
                    return .object(m)
                }
                return tensor(shape, &d)
            }
            switch d.below(6) {
            case 0 where !members.isEmpty: members.remove(at: d.below(members.count))
            case 1 where !members.isEmpty:
                let k = d.below(members.count)
                let name = pick(names, &d)
                if !members.contains(where: { $0.0 == name }) { members[k].0 = name }
            case 2 where !members.isEmpty:
                let name = pick(names, &d)
                if !members.contains(where: { $0.0 == name }) { members.append((name, members[d.below(members.count)].1)) }
            case 3 where !members.isEmpty:
                // Replace a member by the same field from another seed (another case's expected block, inputs, config…).
                let k = d.below(members.count)
                if let other = donor(members[k].0, donors, &d) { members[k].1 = other }
            case 4:
                let name = pick(names, &d)
                if !members.contains(where: { $0.0 == name }) { members.append((name, tensor([pick([1, 2, 4], &d)], &d))) }
            default:
                if let other = donor(key, donors, &d) { return other }
            }
            return .object(members)
        case .array(var items):
            let numbers = items.allSatisfy { if case .number = $0 { return true } else { return false } }
            switch d.below(5) {
            case 0 where !items.isEmpty: items[d.below(items.count)] = numbers && d.below(2) == 0 ? .int(pick(integers, &d)) : pick(doubles, &d)
            case 1 where !items.isEmpty: items.remove(at: d.below(items.count))
            case 2: items.append(numbers ? .int(pick(integers, &d)) : (items.first ?? .null))
            case 3 where !items.isEmpty: items = items.map { _ in pick(doubles, &d) }
            default: if !items.isEmpty { items.swapAt(d.below(items.count), d.below(items.count)) }
            }
            return .array(items)
        case .number:
            return d.below(2) == 0 ? .int(pick(integers, &d) * (d.below(4) == 0 ? -1 : 1)) : pick(doubles, &d)
        case .string:
            return d.below(4) == 0 ? pick(doubles, &d) : .string(pick(strings, &d))
        case .bool(let b):
            return d.below(3) == 0 ? .number("1") : .bool(!b)
        case .null:
            return pick(doubles, &d)
        }
    }

    /// A structural mutant: a seed with 1–4 node mutations, well-formed JSON by construction.
    public static func structuralMutant(_ d: inout some Decisions) -> (text: String, isResults: Bool) {
        var json = d.below(3) == 0 ? structuralSeeds.last! : pick(structuralSeeds, &d)
        let isResults = json["results"] != nil
        for _ in 0..<(1 + d.below(4)) {
            var counter = 0
            json = rewrite(json, key: "", target: d.below(count(json)), counter: &counter, donors: structuralSeeds, &d)
        }
        return (json.formatted(), isResults)
    }

    /// An engine that returns whatever a (mutated) results file says, with shapes taken as
    /// written wherever they fit the data: a Swift engine as wrong as a results file can be.
    struct ReplayEngine: Engine {
        let name = "replay", precision = Precision.float32
        let results: JSON
        func run(_ c: Case) throws -> EngineResult? {
            guard case .object(let sections)? = results["results"]?[c.id] else { return nil }
            func tensors(_ j: JSON?) -> [NamedTensor] {
                guard case .object(let m)? = j else { return [] }
                return m.compactMap { name, t in
                    guard case .array(let items)? = t["data"] else { return nil }
                    let data = items.map { (try? decodeDouble($0, path: "")) ?? 0 }
                    let shape = t["shape"].flatMap { try? decodeInts($0, path: "") } ?? [data.count]
                    let fits = shape.allSatisfy { $0 >= 0 } && shape.reduce(1, { $0.multipliedReportingOverflow(by: $1).partialValue }) == data.count
                    return NamedTensor(name, Tensor(shape: fits ? shape : [data.count], scalars: data))
                }
            }
            _ = sections
            return EngineResult(outputs: tensors(results["results"]?[c.id]?["outputs"]), gradients: tensors(results["results"]?[c.id]?["gradients"]))
        }
    }

    /// The work limit of the in-process runs (keeps each input fast; the CLI runs use the default).
    static let fuzzWork = 1 << 18

    /// One structural mutant through every command's library path: evaluate, gradcheck,
    /// verify and precision for a case; validate (results file and Swift engine) for a
    /// results file. Returns a finding, or nil when every path answered.
    public static func structured(_ d: inout some Decisions, statistics: UnsafeMutablePointer<Statistics>? = nil, timeLimit: Double = 5) -> Finding? {
        let (text, isResults) = structuralMutant(&d)
        let start = Date()
        var finding: Finding?
        func check(_ command: String, _ body: () throws -> Void) {
            guard finding == nil else { return }
            do { try body() } catch let e as CaseError {
                if e.description.contains("\n") { finding = Finding(command: command, problem: "error of more than one line: \(e)", input: text) }
                statistics?.pointee.rejected += 1
            } catch {
                finding = Finding(command: command, problem: "an error that is not a CaseError: \(error)", input: text)
            }
        }
        statistics?.pointee.tried += 1
        if isResults {
            statistics?.pointee.resultsFiles += 1
            check("validate") {
                let file = try ResultsFile.decode(text, cases: golden, maxBytes: 1 << 20, maxWork: fuzzWork)
                statistics?.pointee.decoded += 1
                _ = Validator.validate(engine: file.engine, precision: .float32, cases: Array(golden.values), results: file.results,
                                       unsupported: file.unsupported)
            }
            // The Swift engine path: the same result, unchecked, must be judged, never trap.
            if let json = try? JSON.parse(text) {
                _ = Validator.validate(ReplayEngine(results: json), cases: Array(golden.values))
            }
        } else {
            statistics?.pointee.cases += 1
            check("evaluate") {
                let c = try CaseDecoder(maxBytes: 1 << 20, maxWork: fuzzWork).decode(text: text)
                statistics?.pointee.decoded += 1
                var bare = c
                bare.expected = nil
                let fresh = try bare.evaluated()
                // verify: the stored block against a fresh evaluation.
                if let stored = c.expected { _ = Verifier.firstDifference(stored, fresh.expected!) }
                // precision: the oracle on the case as a golden vector (small cases: MPFR is slow).
                let size = c.inputs.reduce(0) { $0 + $1.tensor.count }
                if size <= 256 { _ = Oracle.measure([c.expected == nil ? fresh : c]) }
                // validate: the case as a golden vector, judged against its own values.
                let golden = c.expected ?? fresh.expected!
                _ = Validator.validate(engine: "self", precision: .float64, cases: [c.expected == nil ? fresh : c],
                                       results: [c.id: EngineResult(outputs: golden.outputs, gradients: golden.gradients)])
                // gradcheck, as the command picks: element by element when small, else one direction.
                let layer = try LayerRegistry.makeLayer(c)
                let elementwise = size <= 64 && Work.elementwiseAffordable(layer, input: c.inputs[0].tensor.shape, elements: size)
                _ = try GradientChecker.check(layer, input: c.inputs[0].tensor, upstream: c.upstream, caseID: c.id,
                                              configuration: GradientCheckConfiguration(elementwise: elementwise, directions: elementwise ? 0 : 1))
            }
        }
        let elapsed = Date().timeIntervalSince(start)
        if let s = statistics { s.pointee.slowest = max(s.pointee.slowest, elapsed) }
        if finding == nil, elapsed > timeLimit {
            finding = Finding(command: isResults ? "validate" : "evaluate", problem: String(format: "took %.2f s (limit %.0f s)", elapsed, timeLimit), input: text)
        }
        if let f = finding { statistics?.pointee.findings.append(f) }
        return finding
    }

    /// Runs the structure-aware mutator for `iterations` inputs or `seconds`, whichever comes first.
    public static func runStructured(iterations: Int, seconds: Double, seed: UInt, timeLimit: Double = 5) -> Statistics {
        var d = SeededDecisions(seed: seed)
        var stats = Statistics()
        let start = Date()
        while stats.tried < iterations && Date().timeIntervalSince(start) < seconds {
            _ = structured(&d, statistics: &stats, timeLimit: timeLimit)
        }
        return stats
    }
}
