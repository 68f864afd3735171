import CNNReference
import Foundation
import GradientCheck
import Testing

/// Specificity: correct layers pass for 50 seeds each — with smooth random
/// inputs, and with inputs on a coarse grid {−1, −½, 0, ½, 1} that puts many
/// elements exactly on kinks (ReLU family at 0, hinge margins at 0) and ties
/// (pool windows, maxout pieces). Zero false failures.
@Suite struct SpecificityTests {
    enum Values: String, CaseIterable { case smooth, grid }

    static func layers(_ rng: SeededRandom, _ values: Values) -> [(String, any Layer, Tensor)] {
        func draw(_ shape: [Int]) -> Tensor {
            Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in
                values == .smooth ? 2 * rng.signedUnit() : Double(rng.below(5) - 2) / 2
            })
        }
        let image = draw([2, 2, 4, 4])
        return [
            ("conv2d", Conv2D(weight: draw([3, 2, 2, 2]), bias: draw([3]), stride: [2, 1], padding: [1, 0, 0, 1], dilation: [1, 2]), image),
            ("conv2d groups", Conv2D(weight: draw([2, 1, 3, 3]), bias: nil, padding: [1, 1, 1, 1], groups: 2), image),
            ("maxpool2d", MaxPool2D(window: PoolWindow(kernel: [2, 2], stride: [1, 1], padding: [1, 0, 0, 1])), image),
            ("maxpool2d ceil", MaxPool2D(window: PoolWindow(kernel: [3, 3], stride: [2, 2], ceilMode: true)), image),
            ("avgpool2d", AvgPool2D(window: PoolWindow(kernel: [3, 3], stride: [2, 2], padding: [1, 1, 1, 1], ceilMode: true), countIncludePad: true), image),
            ("relu", ReLU(), draw([12])),
            ("leaky_relu", LeakyReLU(slope: 0.2), draw([12])),
            ("prelu", PReLU(slope: Tensor(shape: [2], scalars: [0.25, -0.5])), image),
            ("elu", ELU(alpha: 1.5), draw([12])),
            ("sigmoid", Sigmoid(), draw([12])),
            ("tanh", Tanh(), draw([12])),
            ("swish", Swish(beta: Tensor(shape: [1], scalars: [0.75])), draw([12])),
            ("maxout", Maxout(pieces: 3, weight: draw([3, 2, 3]), bias: draw([3, 2])), draw([2, 3])),
            ("linear", Linear(weight: draw([3, 4]), bias: draw([3])), draw([2, 4])),
            ("softmax", Softmax(axis: 1), draw([2, 3, 2])),
            ("log_softmax", LogSoftmax(axis: -1), draw([3, 4])),
            ("softmax_cross_entropy", SoftmaxCrossEntropy(labels: [2, 0, 1], reduction: .mean), draw([3, 4])),
            ("multiclass_hinge", MulticlassHinge(labels: [2, 0, 1], margin: 0.5, reduction: .sum), draw([3, 4])),
        ]
    }

    @Test(arguments: Values.allCases)
    func correctLayersPassFor50Seeds(values: Values) throws {
        var kinks = 0
        for seed in 0..<50 {
            let rng = SeededRandom(seed: UInt(1000 + seed))
            for (name, layer, input) in Self.layers(rng, values) {
                let report = try GradientChecker.check(layer, input: input, caseID: name,
                                                       configuration: GradientCheckConfiguration(directions: 2, seed: UInt(seed)))
                for t in report.tensors {
                    kinks += t.kinks
                    #expect(t.passed, "\(name) seed \(seed) \(values): \(t.failures.map(\.summary))")
                }
                for s in report.structural { #expect(s.passed, "\(name) seed \(seed): \(s.name): \(s.detail)") }
            }
        }
        // The grid inputs really do exercise kinks and ties.
        if values == .grid { #expect(kinks > 1000, "only \(kinks) kinks found") }
    }

    /// GSL's error estimate is honest on smooth functions: the true error, known
    /// from a closed form, stays below abserr.
    @Test(arguments: [-3.0, -0.7, 0.3, 1.1, 4.0])
    func abserrBoundsTheTrueErrorOnSmoothFunctions(x: Double) {
        let functions: [(String, (Double) -> Double, (Double) -> Double)] = [
            ("sigmoid", { 1 / (1 + exp(-$0)) }, { let s = 1 / (1 + exp(-$0)); return s * (1 - s) }),
            ("tanh", { tanh($0) }, { 1 / (cosh($0) * cosh($0)) }),
            ("exp", { exp($0) }, { exp($0) }),
            ("softplus", { log1p(exp($0)) }, { 1 / (1 + exp(-$0)) }),
            ("x^3", { $0 * $0 * $0 }, { 3 * $0 * $0 }),
        ]
        for (name, f, df) in functions {
            let d = gslDerivative(.central, at: x, step: 0x1p-13 * max(1, x.magnitude), f)
            #expect((d.value - df(x)).magnitude <= d.abserr, "\(name) at \(x): error \((d.value - df(x)).magnitude) > abserr \(d.abserr)")
        }
    }

    /// For a linear layer the objective is linear in every element, so the analytic
    /// gradient (correctly rounded) is the truth: GSL's numerical value lies within abserr
    /// plus the rounding noise of the objective.
    @Test func abserrIsHonestOnALinearLayer() throws {
        let rng = SeededRandom(seed: 5)
        let layer = Linear(weight: Tensor(shape: [4, 6], scalars: (0..<24).map { _ in rng.signedUnit() }),
                           bias: Tensor(shape: [4], scalars: (0..<4).map { _ in rng.signedUnit() }))
        let x = Tensor(shape: [3, 6], scalars: (0..<18).map { _ in rng.signedUnit() })
        let report = try GradientChecker.check(layer, input: x)
        #expect(report.passed)
        for t in report.tensors { #expect(t.worstRatio < 0.5, "\(t.name): worst ratio \(t.worstRatio)") }
    }

    /// Random directions through a point with NaN or ±∞ in it: a direction is skipped (counted)
    /// only where the objective along it is not finite, as an element is; where it is finite
    /// (a −∞ logit, which does not move) the direction is judged, and a backward that returns NaN
    /// there fails.
    @Test func directionsThroughNonFiniteValuesAreJudgedOrSkippedAsElementsAre() throws {
        let masked = Tensor(shape: [2, 3], scalars: [0, -.infinity, 1, -.infinity, 2, -.infinity])
        // Softmax's objective is finite (p = 0 at −∞); log-softmax's is not (log 0 = −∞).
        for (layer, skipped) in [(Softmax(axis: 1), 0), (LogSoftmax(axis: 1), 4)] as [(any Layer, Int)] {
            let r = try GradientChecker.check(layer, input: masked, configuration: .init(directions: 4))
            let d = try #require(r.tensors.first { $0.name == "directions" })
            #expect(r.passed && d.notFinite == skipped && d.checked == 4, "\(type(of: layer).id): \(d.failures.map(\.summary))")
        }
        let nan = try GradientChecker.check(MaxPool2D(window: PoolWindow(kernel: [2, 2], stride: [2, 2])),
                                            input: Tensor(shape: [1, 1, 2, 2], scalars: [1, .nan, 0, 2]), configuration: .init(directions: 3))
        let skipped = try #require(nan.tensors.first { $0.name == "directions" })
        #expect(nan.passed && skipped.notFinite == 3)
        let broken = Mutant(base: Softmax(axis: 1)) { base, x, dy in
            var g = base.backward(x, outputGradient: dy)
            g.input[0] = .nan
            return g
        }
        let r = try GradientChecker.check(broken, input: masked, configuration: .init(elementwise: false, directions: 2))
        #expect(!r.passed && r.tensors.first { $0.name == "directions" }?.failed == 2)
    }

    @Test func zeroUpstreamRepeatabilityAndShapesAreChecked() throws {
        // A backward that returns a wrong-shaped, nonzero gradient fails the structural checks.
        let bad = Mutant(base: ReLU()) { _, x, _ in Gradients(input: Tensor(shape: [x.count + 1], scalars: Array(repeating: 1, count: x.count + 1))) }
        let report = try GradientChecker.check(bad, input: Tensor(shape: [3], scalars: [1, 2, 3]), configuration: .init(elementwise: false))
        let failed = Set(report.structural.filter { !$0.passed }.map(\.name))
        #expect(failed == ["gradient shapes", "zero upstream gives zero"])
    }
}
