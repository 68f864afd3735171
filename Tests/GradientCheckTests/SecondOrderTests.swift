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

/// The layers of issue 14: JVPs and double backward against GSL differences of the backward
/// pass (order 2) and against the adjoint identity ⟨u, J·t⟩ = ⟨Jᵀu, t⟩ with the certified
/// backward pass; a wrong double backward of batch norm fails at elements of x.
struct ArchitectureSecondOrderTests {
    static let x = SensitivityTests.tensor([2, 3, 2, 2], seed: 51)
    static func bn(training: Bool) -> BatchNorm2D {
        BatchNorm2D(weight: SensitivityTests.tensor([3], seed: 52), bias: SensitivityTests.tensor([3], seed: 53),
                    runningMean: SensitivityTests.tensor([3], seed: 54), runningVar: Tensor(shape: [3], scalars: [0.5, 1, 2]),
                    training: training, eps: 1e-3, momentum: 0.1)
    }
    static let layers: [(String, any SecondOrder)] = [
        ("add", Add(others: [SensitivityTests.tensor([2, 3, 2, 2], seed: 55), SensitivityTests.tensor([2, 3, 2, 2], seed: 56)])),
        ("concat", Concat(axis: 1, others: [SensitivityTests.tensor([2, 1, 2, 2], seed: 57)])),
        ("flatten", Flatten(startAxis: 1)),
        ("dropout", Dropout(p: 0.3, mask: Tensor(shape: [2, 3, 2, 2], scalars: (0..<24).map { $0 % 4 == 0 ? 0 : 1 }))),
        ("adaptive_avgpool2d", AdaptiveAvgPool2D(outputSize: [3, 1])),
        ("batchnorm2d training", bn(training: true)),
        ("batchnorm2d eval", bn(training: false)),
        ("lrn size 3", LRN(size: 3, alpha: 1, beta: 0.75, k: 1)),
        ("lrn size 2", LRN(size: 2, alpha: 0.5, beta: 1.5, k: 2)),
    ]

    @Test(arguments: 0..<layers.count)
    func passesTheDoubleBackwardCheck(_ k: Int) throws {
        let (name, layer) = Self.layers[k]
        let r = try GradientChecker.check(layer, input: Self.x, configuration: .init(directions: 2, seed: 3, order: 2))
        #expect(r.passed, "\(name)")
        #expect(r.tensors.contains { $0.name == "dd.\(layer.inputName)" }, "\(name): the double backward was not checked")
    }

    @Test(arguments: 0..<layers.count)
    func jvpIsTheAdjointOfTheBackwardPass(_ k: Int) throws {
        let (name, layer) = Self.layers[k]
        let t = Tangents(input: SensitivityTests.tensor(Self.x.shape, seed: 60),
                         parameters: layer.parameters.enumerated().map { SensitivityTests.tensor($0.element.tensor.shape, seed: UInt(61 + $0.offset)) })
        let y = layer.forward(Self.x)
        let u = SensitivityTests.tensor(y.shape, seed: 70)
        let jt = layer.jvp(Self.x, tangents: t), g = layer.backward(Self.x, outputGradient: u)
        func dot(_ a: Tensor, _ b: Tensor) -> (Double, Double) {
            (zip(a.scalars, b.scalars).reduce(0) { $0 + $1.0 * $1.1 }, zip(a.scalars, b.scalars).reduce(0) { $0 + ($1.0 * $1.1).magnitude })
        }
        let left = dot(u, jt)
        let right = [dot(g.input, t.input)] + zip(g.parameters, t.parameters).map { dot($0, $1) }
        let total = right.reduce(0) { $0 + $1.0 }, size = right.reduce(left.1) { $0 + $1.1 }
        #expect((left.0 - total).magnitude <= 1e-13 * size, "\(name): ⟨u, Jt⟩ = \(left.0), ⟨Jᵀu, t⟩ = \(total)")
    }

    /// Batch norm's double backward without the term through σ̂ (−γx̂/(mσ̂²)·(W_u − ū·W₁ − m̄·Wₓ)).
    struct MissingRootTerm: SecondOrder {
        static let id = "batchnorm2d-mutant"
        var base = ArchitectureSecondOrderTests.bn(training: true)
        var parameters: [NamedTensor] { get { base.parameters } set { base.parameters = newValue } }
        func outputShape(forInput shape: [Int]) throws(CaseError) -> [Int] { try base.outputShape(forInput: shape) }
        func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor { base.forward(x, accumulator: A.self) }
        func backward(_ x: Tensor, outputGradient: Tensor) -> Gradients { base.backward(x, outputGradient: outputGradient) }
        func jvp(_ x: Tensor, tangents: Tangents) -> Tensor { base.jvp(x, tangents: tangents) }
        func doubleBackward(_ x: Tensor, outputGradient u: Tensor, cotangents w: Tangents) -> DoubleBackward {
            var d = base.doubleBackward(x, outputGradient: u, cotangents: w)
            for c in 0..<3 {
                let idx = base.indices(x.shape, c), m = Double(idx.count)
                let mu = idx.reduce(0) { $0 + x[$1] } / m
                let v = idx.reduce(0) { $0 + (x[$1] - mu) * (x[$1] - mu) } / m
                let s = (v + base.eps).squareRoot()
                let xhat = idx.map { (x[$0] - mu) / s }
                let ubar = idx.reduce(0) { $0 + u[$1] } / m, mbar = zip(idx, xhat).reduce(0) { $0 + u[$1.0] * $1.1 } / m
                let w1 = idx.reduce(0) { $0 + w.input[$1] }, wx = zip(idx, xhat).reduce(0) { $0 + w.input[$1.0] * $1.1 }
                let wu = idx.reduce(0) { $0 + w.input[$1] * u[$1] }
                for (k, i) in idx.enumerated() { d.gradients.input[i] += base.weight[c] * xhat[k] / (m * s * s) * (wu - ubar * w1 - mbar * wx) }
            }
            return d
        }
    }

    @Test func batchNormWithoutTheRootTermFailsAtElementsOfX() throws {
        let r = try GradientChecker.check(MissingRootTerm(), input: Self.x, configuration: .init(seed: 3, order: 2))
        let dx = try #require(r.tensors.first { $0.name == "dd.x" })
        #expect(!dx.passed)
        #expect(!dx.failures.isEmpty)
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
