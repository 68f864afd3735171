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
