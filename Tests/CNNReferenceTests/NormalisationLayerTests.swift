import GradientCheck
import Testing
@testable import CNNReference

/// batchnorm2d and lrn on inputs whose exact results are worked out here by hand
/// (rational roots, IEEE quotients, variance 0); the irrational values are checked
/// against the MPFR oracle in PrecisionTests and by GSL in the gradient checks.
@Suite struct NormalisationLayerTests {
    static func bn(_ x: Tensor, gamma: [Double], beta: [Double], mean: [Double], variance: [Double],
                   training: Bool, eps: Double, momentum: Double) -> BatchNorm2D {
        let c = gamma.count
        return BatchNorm2D(weight: Tensor(shape: [c], scalars: gamma), bias: Tensor(shape: [c], scalars: beta),
                           runningMean: Tensor(shape: [c], scalars: mean), runningVar: Tensor(shape: [c], scalars: variance),
                           training: training, eps: eps, momentum: momentum)
    }

    /// x = 0, 0, 0, 1: μ = 1/4, biased σ² = 3/16, and eps = 1/16 makes σ² + ε = 1/4 with root 1/2,
    /// so y = 2(x − 1/4); the unbiased variance is (3/4)/3 = 1/4.
    @Test func trainingWithARationalRoot() {
        let x = Tensor(shape: [2, 1, 1, 2], scalars: [0, 0, 0, 1])
        let layer = Self.bn(x, gamma: [1], beta: [0], mean: [0], variance: [1], training: true, eps: 0.0625, momentum: 0.5)
        #expect(layer.forward(x).scalars == [-0.5, -0.5, -0.5, 1.5])
        let aux = layer.auxiliaryOutputs(x)
        #expect(aux.map(\.name) == ["running_mean", "running_var"])
        #expect(aux[0].tensor.scalars == [0.125])          // 0.5·0 + 0.5·1/4
        #expect(aux[1].tensor.scalars == [0.625])          // 0.5·1 + 0.5·1/4
        // dy = 1, 0, 0, 0: Σdy = 1, Σdy·(x − μ) = −1/4; dx = 2·(dy − 1/4 − (x − μ)·(−1/4)/(4·1/4)).
        let g = layer.backward(x, outputGradient: Tensor(shape: [2, 1, 1, 2], scalars: [1, 0, 0, 0]))
        #expect(g.input.scalars == [1.375, -0.625, -0.625, -0.125])
        #expect(g.parameters[0].scalars == [-0.5])        // Σdy·x̂ = −1/4 / (1/2)
        #expect(g.parameters[1].scalars == [1])
    }

    /// A channel of equal values: x − μ = 0 exactly, so y = β bit for bit and dL/dγ = Σdy·x̂ = 0,
    /// whatever ε; dx = γ/√ε·(dy − mean dy) still flows (through the mean).
    @Test(arguments: [1e-5, 1e-3])
    func varianceZeroGivesBetaExactly(eps: Double) {
        // Flat index (n·2 + c)·2 + p: channel 0 is 0.1 everywhere, channel 1 varies.
        let x = Tensor(shape: [3, 2, 1, 2], scalars: (0..<12).map { (i: Int) -> Double in (i / 2) % 2 == 0 ? 0.1 : Double(i) - 3 })
        let layer = Self.bn(x, gamma: [3, 1], beta: [0.3, 0], mean: [0, 0], variance: [2, 2], training: true, eps: eps, momentum: 0.1)
        let y = layer.forward(x)
        for n in 0..<3 { for p in 0..<2 { #expect(y[(n * 2) * 2 + p] == 0.3) } }
        let dy = Tensor(shape: x.shape, scalars: (0..<12).map { Double($0) - 5.5 })
        let g = layer.backward(x, outputGradient: dy)
        var channelSum = 0.0
        for n in 0..<3 { for p in 0..<2 { channelSum += g.input[(n * 2) * 2 + p]; #expect(g.input[(n * 2) * 2 + p] != 0) } }
        #expect(channelSum.magnitude < 1e-12)               // Σ(dy − mean dy) = 0
        #expect(g.parameters[0][0] == 0)
        // running_var = 0.9·2 + 0.1·0, one rounding of 1.8.
        #expect(layer.auxiliaryOutputs(x)[1].tensor[0] == 1.8)
    }

    /// Eval: a running variance that makes var + ε a square (0.25 − 2⁻⁸ + 2⁻⁸ = 1/4): y = 2γ(x − mean) + β.
    @Test func evalUsesTheRunningStatistics() {
        let x = Tensor(shape: [1, 1, 1, 3], scalars: [1, 2, 3])
        let layer = Self.bn(x, gamma: [0.5], beta: [1], mean: [2], variance: [0.25 - 0x1p-8], training: false, eps: 0x1p-8, momentum: 0.1)
        #expect(layer.forward(x).scalars == [0, 1, 2])
        #expect(layer.auxiliaryOutputs(x).isEmpty)
        let g = layer.backward(x, outputGradient: Tensor(shape: [1, 1, 1, 3], scalars: [1, 1, 1]))
        #expect(g.input.scalars == [1, 1, 1])              // γ/√(var + ε) = 0.5/0.5, no path through statistics
        #expect(g.parameters[0].scalars == [0])           // Σ dy·(x − mean)/0.5 = 0
    }

    @Test func trainingWithOneValuePerChannelIsAnError() {
        let x = Tensor(shape: [1, 2, 1, 1], scalars: [1, 2])
        let layer = Self.bn(x, gamma: [1, 1], beta: [0, 0], mean: [0, 0], variance: [1, 1], training: true, eps: 1e-5, momentum: 0.1)
        #expect(throws: CaseError.self) { try layer.outputShape(forInput: x.shape) }
        let eval = Self.bn(x, gamma: [1, 1], beta: [0, 0], mean: [0, 0], variance: [1, 1], training: false, eps: 1e-5, momentum: 0.1)
        #expect((try? eval.outputShape(forInput: x.shape)) == [1, 2, 1, 1])
    }

    /// size 2 over 3 channels: windows {0}, {0, 1}, {1, 2} (⌊2/2⌋ = 1 before, ⌊1/2⌋ = 0 after);
    /// α = 2 so α/size = 1, β = 1, k = 1: b_c = a_c/(1 + Σ a²), each an IEEE quotient.
    @Test func lrnEvenSizeReachesBack() {
        let x = Tensor(shape: [1, 3, 1, 1], scalars: [1, 2, 3])
        let layer = LRN(size: 2, alpha: 2, beta: 1, k: 1)
        let expected: [Double] = [1.0 / 2, 2.0 / 6, 3.0 / 14]
        #expect(layer.forward(x).scalars == expected)
        #expect(layer.window(0, channels: 3) == 0...0 && layer.window(1, channels: 3) == 0...1 && layer.window(2, channels: 3) == 1...2)
        let odd = LRN(size: 3, alpha: 3, beta: 1, k: 1)
        let expectedOdd: [Double] = [1.0 / 6, 2.0 / 15, 3.0 / 14]
        #expect(odd.forward(x).scalars == expectedOdd)
    }

    /// β = 0.75 with S = 16: S^0.75 = 8 exactly, so b = a/8; a = 0 keeps its sign.
    /// The gradient (one channel, size 1, α = 15): dy·S^−β − 2αβ·a²·dy·S^(−β−1) = dy·(1/8 − 22.5/128).
    @Test func lrnRationalPowers() {
        let x = Tensor(shape: [1, 1, 1, 3], scalars: [1, -0.0, -1])
        let layer = LRN(size: 1, alpha: 15, beta: 0.75, k: 1)
        let y = layer.forward(x)
        #expect(y.scalars == [0.125, 0, -0.125] && y[1].sign == .minus)
        let g = layer.backward(x, outputGradient: Tensor(shape: [1, 1, 1, 3], scalars: [1, 1, 2]))
        let d: Double = 0.125 - 22.5 / 128
        let expected: [Double] = [d, 1, 2 * d]
        #expect(g.input.scalars == expected)
    }

    @Test func registryRejectsBadConfigurations() throws {
        func make(_ layer: String, _ config: [(String, JSON)], _ inputs: [NamedTensor]) -> CaseError? {
            do { _ = try LayerRegistry.makeLayer(Case(id: "t", layer: layer, config: config, inputs: inputs)); return nil } catch { return error }
        }
        let c1 = Tensor(shape: [1], scalars: [1])
        let bnInputs = [NamedTensor("x", Tensor(shape: [2, 1, 1, 1], scalars: [1, 2])), NamedTensor("weight", c1), NamedTensor("bias", c1),
                        NamedTensor("running_mean", c1), NamedTensor("running_var", Tensor(shape: [1], scalars: [-1]))]
        #expect(make("batchnorm2d", [("training", .bool(true)), ("eps", .double(1e-5)), ("momentum", .double(0.1))], bnInputs)?.field == "inputs.running_var.data[0]")
        #expect(make("batchnorm2d", [("training", .bool(true)), ("eps", .double(0)), ("momentum", .double(0.1))], bnInputs)?.field == "config.eps")
        #expect(make("batchnorm2d", [("training", .bool(true)), ("eps", .double(1e-5)), ("momentum", .double(1.5))], bnInputs)?.field == "config.momentum")
        #expect(make("batchnorm2d", [("eps", .double(1e-5)), ("momentum", .double(0.1))], bnInputs)?.field == "config.training")
        let x = [NamedTensor("x", Tensor(shape: [1, 1, 1, 1], scalars: [1]))]
        #expect(make("lrn", [("size", .int(0)), ("alpha", .double(1)), ("beta", .double(1)), ("k", .double(1))], x)?.field == "config.size")
        #expect(make("lrn", [("size", .int(3)), ("alpha", .double(-1)), ("beta", .double(1)), ("k", .double(1))], x)?.field == "config.alpha")
        #expect(make("lrn", [("size", .int(3)), ("alpha", .double(1)), ("beta", .double(1)), ("k", .double(0))], x)?.field == "config.k")
        #expect(make("lrn", [("size", .int(3)), ("alpha", .double(1)), ("k", .double(1))], x)?.field == "config.beta")
    }
}
