import CNNReference
import GradientCheck
import Testing

/// Sigmoid with σ'' of the wrong sign: the double backward check must fail at an element of x.
struct WrongSecondDerivative: SecondOrder {
    static let id = "sigmoid-mutant"
    var parameters: [NamedTensor] = []
    func outputShape(forInput shape: [Int]) throws(CaseError) -> [Int] { shape }
    func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor { Sigmoid().forward(x, accumulator: A.self) }
    func backward(_ x: Tensor, outputGradient: Tensor) -> Gradients { Sigmoid().backward(x, outputGradient: outputGradient) }
    func jvp(_ x: Tensor, tangents: Tangents) -> Tensor { Sigmoid().jvp(x, tangents: tangents) }
    func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        var d = Sigmoid().doubleBackward(x, outputGradient: u, cotangents: w)
        d.gradients.input.scalars = d.gradients.input.scalars.map { -$0 }
        return d
    }
}

struct SecondOrderTests {
    let x = Tensor(shape: [2, 3], scalars: [-2.5, -0.75, 0.3, 1.1, 2.0, 3.5])

    @Test func sigmoidPassesBothOrders() throws {
        for order in [1, 2] {
            let r = try GradientChecker.check(Sigmoid(), input: x, configuration: .init(directions: 4, seed: 3, order: order, tangents: 2))
            #expect(r.passed, "order \(order)")
        }
    }

    @Test func wrongSignOfSigmoidSecondDerivativeFailsNamingTheElement() throws {
        let r = try GradientChecker.check(WrongSecondDerivative(), input: x, configuration: .init(seed: 3, order: 2))
        let dx = try #require(r.tensors.first { $0.name == "dd.x" })
        #expect(!dx.passed)
        #expect(dx.failures.first?.index.count == 2)
    }

    @Test func aLayerWithoutSecondOrderFailsOrderTwoAndIsNotedAtOrderOne() throws {
        let plain = Mutant(base: ReLU()) { base, x, dy in base.backward(x, outputGradient: dy) }
        let two = try GradientChecker.check(plain, input: x, configuration: .init(order: 2))
        #expect(!two.passed)
        let one = try GradientChecker.check(plain, input: x, configuration: .init(order: 1))
        #expect(one.notes.contains { $0.contains("does not conform to SecondOrder") })
    }
}

/// Conv2D whose double backward forms ∂⟨w, g⟩/∂x with the cotangent kernel not flipped
/// (the backward pass's transposed convolution taken as a plain one).
struct UntransposedConvDoubleBackward: SecondOrder, SumOfProducts {
    static let id = "conv2d-dd-mutant"
    var base: Conv2D
    var parameters: [NamedTensor] {
        get { base.parameters }
        set { base.parameters = newValue }
    }
    func outputShape(forInput shape: [Int]) throws(CaseError) -> [Int] { try base.outputShape(forInput: shape) }
    func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor { base.forward(x, accumulator: A.self) }
    func backward(_ x: Tensor, outputGradient: Tensor) -> Gradients { base.backward(x, outputGradient: outputGradient) }
    func jvp(_ x: Tensor, tangents: Tangents) -> Tensor { base.jvp(x, tangents: tangents) }
    func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
        var d = base.doubleBackward(x, outputGradient: u, cotangents: w)
        let k = w.parameters[0], (kh, kw) = (k.shape[2], k.shape[3])
        var flipped = k
        for i in 0..<k.count {
            let plane = i / (kh * kw), r = (i % (kh * kw)) / kw, c = i % kw
            flipped[i] = k[plane * kh * kw + (kh - 1 - r) * kw + (kw - 1 - c)]
        }
        d.gradients.input = Conv2D(weight: flipped, bias: nil, padding: base.padding).backward(x, outputGradient: u).input
        return d
    }
}

struct ConvSecondOrderTests {
    let rng = SeededRandom(seed: 11)
    func tensor(_ shape: [Int]) -> Tensor { Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in rng.signedUnit() }) }

    @Test func untransposedKernelInConvDoubleBackwardFails() throws {
        let conv = Conv2D(weight: tensor([3, 2, 3, 3]), bias: tensor([3]), padding: [1, 1, 1, 1])
        let x = tensor([1, 2, 4, 4])
        let right = try GradientChecker.check(conv, input: x, configuration: .init(directions: 8, seed: 2, order: 2))
        #expect(right.passed, "\(right.tensors.flatMap(\.failures).map(\.summary).prefix(2))")
        let mutant = UntransposedConvDoubleBackward(base: conv)
        let elements = try GradientChecker.check(mutant, input: x, configuration: .init(seed: 2, order: 2))
        #expect(elements.tensors.first { $0.name == "dd.x" }?.passed == false)
        let directions = try GradientChecker.check(mutant, input: x, configuration: .init(elementwise: false, directions: 8, seed: 2, order: 2))
        #expect(!directions.passed)
    }
}
