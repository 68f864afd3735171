import CNNReference
import Foundation
import PrecisionOracle
import Testing

/// SplitMix64: a seeded generator written here, so the test draws the same values on every run.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func sign() -> Double { next() & 1 == 0 ? 1 : -1 }
    mutating func logUniform(_ a: Double, _ b: Double) -> Double { exp(log(a) + unit() * (log(b) - log(a))) }
    mutating func pick(_ values: [Double]) -> Double { values[below(values.count)] }
}

/// The edges of the transcendental layers: logit gaps 20…50 and beyond 708, upstreams
/// 1e±300 and ±1.7e308, inputs near ±745 and ±710, ±0, subnormals, uniform upstreams,
/// symmetric inputs with antisymmetric upstreams, NaN in every position. Every value
/// must be the correctly rounded exact value (the oracle's, compared bit for bit).
@Suite struct AdversarialPrecisionTests {
    static let upstreamClasses: [[Double]] = [
        [1, -1, 0.5, 3],
        [1e300, -1e300, 1.7e308, -1.7e308, 1.5e308],
        [1e-300, -1e-300, 0x1p-1074, -0x1p-1070, 3e-320],
        [0.0, -0.0, 1, -2.5],
    ]

    /// An input at an edge.
    static func edge(_ r: inout SplitMix) -> Double {
        switch r.below(12) {
        case 0: return r.sign() * r.logUniform(20, 745)
        case 1: return r.sign() * (745 + (r.unit() - 0.5) * 4)
        case 2: return r.sign() * (710 + (r.unit() - 0.5) * 4)
        case 3: return r.pick([0.0, -0.0])
        case 4: return r.sign() * Double(bitPattern: r.next() & 0x000F_FFFF_FFFF_FFFF)   // subnormal
        case 5: return r.sign() * r.logUniform(1e-300, 1e-20)
        case 6: return r.sign() * r.logUniform(1e20, 1.7e308)
        case 7: return r.sign() * r.logUniform(1e-3, 20)
        case 8: return r.sign() * r.logUniform(1300, 1500)
        case 9: return -r.logUniform(0.9, 1.6)     // swish's derivative crosses 0 near −1.28
        case 10: return r.pick([.infinity, -.infinity])
        default: return (r.unit() - 0.5) * 10
        }
    }

    static func upstream(_ r: inout SplitMix, _ n: Int) -> [Double] {
        let cls = upstreamClasses[r.below(upstreamClasses.count)]
        return (0..<n).map { _ in r.unit() < 0.5 ? r.pick(cls) : r.pick(cls) * (1 + r.unit()) }
    }

    static func check(_ cases: [Case], minimumValues: Int) throws {
        let trace = ProcessInfo.processInfo.environment["CNNREF_TRACE"] != nil
        let evaluated = try cases.map { c -> Case in
            if trace { print("evaluating", c.id, c.inputs.map(\.tensor.scalars), c.upstream?.scalars ?? []) }
            return try c.evaluated()
        }
        let report = Oracle.measure(evaluated)
        let values = report.layers.reduce(0) { $0 + $1.values }
        #expect(values >= minimumValues)
        for v in report.violations.prefix(8) {
            Issue.record("\(v.caseID) \(v.tensor)\(v.index): ours \(v.ours) (\(String(v.ours.bitPattern, radix: 16))), exact rounds to \(v.truth) (\(String(v.truth.bitPattern, radix: 16))), \(String(format: "%.3f", v.ulps)) ulp")
        }
        #expect(report.violations.isEmpty, "\(report.violations.count) of \(values) values not correctly rounded")
    }

    static func tensor(_ v: [Double]) -> Tensor { Tensor(shape: [v.count], scalars: v) }

    @Test(arguments: ["sigmoid", "tanh", "elu", "swish"])
    func elementwise(_ layer: String) throws {
        var r = SplitMix(state: 0xC0FFEE &+ UInt64(layer.count))
        var cases: [Case] = []
        for k in 0..<40 {
            var x = (0..<40).map { _ in Self.edge(&r) }
            var dy = Self.upstream(&r, x.count)
            if k % 5 == 0 {
                // Symmetric inputs with antisymmetric upstreams (dβ of swish is exactly 0 when
                // every group of equal |x| has upstreams summing to 0).
                x = (0..<20).flatMap { _ -> [Double] in let a = Self.edge(&r); return [a, -a] }
                dy = (0..<20).flatMap { _ -> [Double] in let d = Self.upstream(&r, 1)[0]; return [d, -d] }
            }
            if k % 7 == 3 { x[r.below(x.count)] = .nan }
            if k % 7 == 4 { dy[r.below(dy.count)] = .nan }
            var inputs = [NamedTensor("x", Self.tensor(x))]
            var config: [(String, JSON)] = []
            if layer == "elu" { config = [("alpha", .number(String(r.pick([1, 0.5, 2, 1.6732632423543772]))))] }
            if layer == "swish" { inputs.append(NamedTensor("beta", Self.tensor([r.pick([1, 0.5, -1, 1.75, 1e-200, 0])]))) }
            cases.append(Case(id: "\(layer)/adversarial-\(k)", layer: layer, config: config, inputs: inputs,
                              upstream: Self.tensor(dy)))
        }
        try Self.check(cases, minimumValues: 3000)
    }

    /// Logits for one slice.
    static func slice(_ r: inout SplitMix, _ width: Int) -> [Double] {
        switch r.below(8) {
        case 0: return [0, -r.logUniform(20, 50)] + (2..<width).map { _ in -r.logUniform(20, 50) }
        case 1: return [0] + (1..<width).map { _ in -r.logUniform(708, 1500) }
        case 2: let v = r.sign() * r.logUniform(1, 3e3); return (0..<width).map { _ in r.unit() < 0.3 ? -.infinity : v }
        case 3: return (0..<width).map { _ in r.sign() * r.logUniform(1e-300, 3e3) }
        case 4: let a = Self.edge(&r), b = Self.edge(&r); return (0..<width).map { _ in r.unit() < 0.5 ? a : b }.map { $0.isNaN || $0.magnitude > 3e3 ? 0 : $0 }
        case 5: return (0..<width).map { _ in (r.unit() - 0.5) * 60 }
        case 6: return [0, -745.1332191019412 - r.unit()] + (2..<width).map { _ in -r.logUniform(20, 40) }
        default: return (0..<width).map { _ in Self.edge(&r) }.map { $0.magnitude > 3e3 ? $0.sign == .minus ? -3e3 : 3e3 : $0 }
        }
    }

    @Test(arguments: ["softmax", "log_softmax"])
    func alongAxis(_ layer: String) throws {
        if let only = ProcessInfo.processInfo.environment["CNNREF_LAYER"], only != layer { return }
        var r = SplitMix(state: 0xBADC0DE &+ UInt64(layer.count))
        var cases: [Case] = []
        for k in 0..<60 {
            let (rows, width) = (6, 2 + r.below(6))
            var x = (0..<rows).flatMap { _ in Self.slice(&r, width) }
            var dy = Self.upstream(&r, x.count)
            switch k % 4 {
            case 0: let u = dy[0]; dy = dy.map { _ in u }                     // uniform upstream
            case 1: for i in dy.indices where i % width == 1 { dy[i] = -dy[i - 1] }
            default: break
            }
            if k % 9 == 2 { x[r.below(x.count)] = .nan }
            if k % 9 == 5 { dy[r.below(dy.count)] = .nan }
            if k % 7 == 3 { dy[r.below(dy.count)] = r.pick([.infinity, -.infinity]) }
            if k % 14 == 6 { dy[r.below(dy.count)] = .infinity; dy[r.below(dy.count)] = -.infinity }
            cases.append(Case(id: "\(layer)/adversarial-\(k)", layer: layer, config: [("axis", .number("1"))],
                              inputs: [NamedTensor("x", Tensor(shape: [rows, width], scalars: x))],
                              upstream: Tensor(shape: [rows, width], scalars: dy)))
        }
        try Self.check(cases, minimumValues: 3000)
    }

    @Test(arguments: ["softmax_cross_entropy", "multiclass_hinge"])
    func losses(_ layer: String) throws {
        var r = SplitMix(state: 0xFEED &+ UInt64(layer.count))
        var cases: [Case] = []
        for k in 0..<150 {
            let (n, c) = (1 + r.below(4), 2 + r.below(5))
            var s = (0..<n).flatMap { _ in Self.slice(&r, c) }
            if layer == "multiclass_hinge" && k % 3 == 0 { s = s.map { $0.isInfinite ? 1 : $0 } }
            if k % 6 == 1 { s[r.below(s.count)] = .nan }
            let labels = (0..<n).map { _ in r.below(c) }
            var config: [(String, JSON)] = [("reduction", .string(r.below(2) == 0 ? "mean" : "sum"))]
            if layer == "multiclass_hinge" { config.append(("margin", .number(String(r.pick([1, 0.5, 0, 1e-300]))))) }
            let dy = k % 4 == 0 ? nil : Tensor(scalar: Self.upstream(&r, 1)[0])
            cases.append(Case(id: "\(layer)/adversarial-\(k)", layer: layer, config: config,
                              inputs: [NamedTensor("scores", Tensor(shape: [n, c], scalars: s))],
                              labels: labels, upstream: dy))
        }
        try Self.check(cases, minimumValues: 1500)
    }

    /// The issue's examples, one by one.
    @Test func knownHardValues() throws {
        func one(_ layer: String, _ x: [Double], _ dy: [Double], config: [(String, JSON)] = [], extra: [NamedTensor] = []) -> Case {
            Case(id: "\(layer)/known", layer: layer, config: config, inputs: [NamedTensor("x", Tensor(shape: [1, x.count], scalars: x))] + extra,
                 upstream: Tensor(shape: [1, x.count], scalars: dy))
        }
        let cases = [
            one("log_softmax", [0, -37.42505770439283], [1, 0], config: [("axis", .number("1"))]),
            Case(id: "softmax_cross_entropy/known", layer: "softmax_cross_entropy", config: [("reduction", .string("sum"))],
                 inputs: [NamedTensor("scores", Tensor(shape: [1, 2], scalars: [0, -37.42505770439283]))], labels: [0]),
            one("sigmoid", [-730, 800], [1e300, 1e300]),
            one("tanh", [400, -0.0, 300], [1e300, 1, 1.5e308]),
            one("softmax", [0.5, -3, 2], [0.7, 0.7, 0.7], config: [("axis", .number("1"))]),
            one("swish", [3, -3, -745.5, -744], [0.25, -0.25, 1, 1], extra: [NamedTensor("beta", Tensor(shape: [1], scalars: [1]))]),
            one("elu", [-0.0, -740, -745], [1, 1e300, 1.7e308], config: [("alpha", .number("1"))]),
            Case(id: "multiclass_hinge/known", layer: "multiclass_hinge", config: [("margin", .number("1")), ("reduction", .string("mean"))],
                 inputs: [NamedTensor("scores", Tensor(shape: [1, 3], scalars: [.nan, 0, 2]))], labels: [1]),
        ]
        let evaluated = try cases.map { try $0.evaluated() }
        #expect(evaluated[2].expected!.gradients[0].tensor[1] != 0)                 // σ′(800)·1e300 = 3.67e-48
        #expect(evaluated[3].expected!.outputs[0].tensor[1].bitPattern == (-0.0).bitPattern)
        #expect(evaluated[3].expected!.gradients[0].tensor[2].isFinite)
        #expect(evaluated[4].expected!.gradients[0].tensor.scalars.allSatisfy { $0 == 0 && $0.sign == .plus })
        #expect(evaluated[6].expected!.outputs[0].tensor[0].bitPattern == (-0.0).bitPattern)
        #expect(evaluated[7].expected!.outputs[0].tensor[0].isNaN)
        let report = Oracle.measure(evaluated)
        for v in report.violations { Issue.record("\(v.caseID) \(v.tensor)\(v.index): ours \(v.ours), exact rounds to \(v.truth)") }
        #expect(report.violations.isEmpty)
    }

    /// The uncertified double-double path would be wrong on some of these: the oracle sees it.
    @Test func theOracleSeesTheWrongSideOfATie() throws {
        // 1 + 2⁻⁵³ rounds to 1 (ties to even): 1.0000000000000002 is 0.5 ulp away but wrong.
        var c = try Case(id: "linear/tie", layer: "linear", inputs: [
            NamedTensor("x", Tensor(shape: [1, 2], scalars: [1, 0x1p-53])),
            NamedTensor("weight", Tensor(shape: [1, 2], scalars: [1, 1])),
            NamedTensor("bias", Tensor(shape: [1], scalars: [0])),
        ], upstream: Tensor(shape: [1, 1], scalars: [1])).evaluated()
        #expect(c.expected!.outputs[0].tensor[0] == 1)
        c.expected!.outputs[0].tensor[0] = 1.0.nextUp
        let report = Oracle.measure([c])
        #expect(report.violations.count == 1 && report.violations[0].ulps <= 0.5)
    }
}

extension Double {
    func withSign(_ s: FloatingPointSign) -> Double { s == .minus ? -self : self }
}
