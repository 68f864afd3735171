import CNNReference
import Foundation
import GradientCheck

/// Feeds the case decoder and the results decoder arbitrary bytes: each input
/// must be decoded or rejected with a `CaseError`, and a decoded case must
/// evaluate (and a decoded results file validate) without trapping. Used by the
/// libFuzzer target `cnnref-fuzz` and by a seeded mutation loop (the tests and
/// `cnnref-fuzz` built without libFuzzer).
public enum Fuzzing {
    /// Small golden cases the results decoder is checked against.
    static let golden: [String: Case] = {
        let ids: Set = ["conv2d/cs231n-demo", "relu/on-kink", "multiclass_hinge/margin-exactly-zero", "maxpool2d/tie-two-maxima"]
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

    /// One input: the first byte picks the decoder (even: a case, odd: a results file).
    public static func one(_ data: Data) {
        guard let selector = data.first else { return }
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
}
