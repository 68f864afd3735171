import CNNReference
import GoldenVectors
import GradientCheck
import Testing

/// A layer whose JVP is off by a relative `error` in its largest output element; the
/// rest (forward, backward, pieces, double backward) is the base layer's.
struct JVPMutant: SecondOrder, PiecewiseSmooth {
    static let id = "jvp-mutant"
    var base: any SecondOrder
    let error: Double
    var inputName: String { base.inputName }
    var outputName: String { base.outputName }
    var parameters: [NamedTensor] {
        get { base.parameters }
        set { base.parameters = newValue }
    }
    func outputShape(forInput shape: [Int]) throws(CaseError) -> [Int] { try base.outputShape(forInput: shape) }
    func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor { base.forward(x, accumulator: A.self) }
    func backward(_ x: Tensor, outputGradient: Tensor) -> Gradients { base.backward(x, outputGradient: outputGradient) }
    func activeSet(_ x: Tensor) -> [Int] { base.activeSet(x) }
    func forward(_ x: Tensor, piece: [Int], accumulator: (some Accumulator).Type) -> Tensor {
        (base as? any PiecewiseSmooth)?.forward(x, piece: piece, accumulator: accumulator) ?? base.forward(x, accumulator: accumulator)
    }
    func jvp(_ x: Tensor, tangents: Tangents) -> Tensor { perturbed(base.jvp(x, tangents: tangents), error) }
    func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        base.doubleBackward(x, outputGradient: u, cotangents: w)
    }
}

/// The same for a sum of products, which keeps the checker's `SumOfProducts` bound.
struct SumJVPMutant: SecondOrder, SumOfProducts {
    static let id = "sum-jvp-mutant"
    var base: any SecondOrder
    let error: Double
    var inputName: String { base.inputName }
    var outputName: String { base.outputName }
    var parameters: [NamedTensor] {
        get { base.parameters }
        set { base.parameters = newValue }
    }
    func outputShape(forInput shape: [Int]) throws(CaseError) -> [Int] { try base.outputShape(forInput: shape) }
    func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor { base.forward(x, accumulator: A.self) }
    func backward(_ x: Tensor, outputGradient: Tensor) -> Gradients { base.backward(x, outputGradient: outputGradient) }
    func activeSet(_ x: Tensor) -> [Int] { base.activeSet(x) }
    func jvp(_ x: Tensor, tangents: Tangents) -> Tensor { perturbed(base.jvp(x, tangents: tangents), error) }
    func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        base.doubleBackward(x, outputGradient: u, cotangents: w)
    }
}

/// `t` with its largest finite element times 1 + error.
func perturbed(_ t: Tensor, _ error: Double) -> Tensor {
    guard error != 0, let i = t.scalars.indices.filter({ t[$0].isFinite }).max(by: { t[$0].magnitude < t[$1].magnitude }) else { return t }
    var out = t
    out[i] *= 1 + error
    return out
}

struct ForwardModeTests {
    static let catalogue = Catalogue()

    func jvpMutant(_ base: any SecondOrder, _ error: Double) -> any Layer {
        base is any SumOfProducts ? SumJVPMutant(base: base, error: error) : JVPMutant(base: base, error: error)
    }

    /// On the SecondOrder cases of the matrix the JVP check (on by default: 2 tangents)
    /// passes the right JVP through the wrapper and fails one off by a relative 1e-7 in
    /// its largest element, except where that element cannot be resolved (listed below).
    @Test func aJVPOffByOneInTenMillionFailsOnTheMatrix() throws {
        var checked = 0
        var missed: [String] = []
        let config = GradientCheckConfiguration(elementwise: false, directions: 0, seed: 1)
        for c in Self.catalogue.gradcheckMatrix {
            guard let layer = try LayerRegistry.makeLayer(c) as? any SecondOrder else { continue }
            let x = c.inputs[0].tensor
            let right = try GradientChecker.check(jvpMutant(layer, 0), input: x, upstream: c.upstream, caseID: c.id, configuration: config)
            #expect(right.passed, "\(c.id): \(right.tensors.flatMap(\.failures).map(\.summary).prefix(2))")
            let wrong = try GradientChecker.check(jvpMutant(layer, 1e-7), input: x, upstream: c.upstream, caseID: c.id, configuration: config)
            let jvps = wrong.tensors.filter { $0.name.hasPrefix("jvp") }
            #expect(jvps.count == 2, "\(c.id)")
            checked += 1
            if jvps.allSatisfy(\.passed) { missed.append(c.id) }
        }
        // The misses are cases where no difference of outputs can resolve 1e-7 of the
        // largest JVP element: it is 0 or not finite (one-element softmax, an inactive
        // hinge, NaN and ±∞ inputs), subnormal, or the slope of a saturated output
        // (σ and tanh at |x| ≥ 20 are 1 − 10⁻⁹ with slopes ~10⁻⁸, below ε/h of the value).
        // Dropout with an all-zero mask (`all-zero-mask`, and the p = 0.999 cases, whose seeded
        // masks keep none of 96 elements) has J = 0: every JVP element is 0.
        let hopeless = ["range-20-745", "gap-beyond-708", "subnormal", "infinit", "one-element", "width-1-", "nan",
                        "n1-c2-margin-1.0-sum", "non-finite", "all-zero-mask", "dropout/p-0.999"]
        #expect(missed.allSatisfy { id in hopeless.contains { id.contains($0) } }, "missed: \(missed)")
        #expect(checked >= 500 && missed.count <= 26, "\(missed.count) of \(checked) missed: \(missed)")
    }
}
