import CNNReference
import GoldenVectors
import Testing

/// The error bounds of batchnorm2d and lrn are not vacuous: an engine with a convention bug
/// (the unbiased variance in the normalisation, α not divided by size, ONNX's even window)
/// fails where its inputs apply, while the golden values rounded to the format pass
/// (`goldenValuesRoundedToTheOutputFormatPassAndAreNamed`).
@Suite struct NormalisationValidationTests {
    /// The case's output `y` computed by `layer` instead, rounded to the format.
    static func wrongOutput(_ id: String, _ precision: Precision, _ layer: (Case) throws -> any Layer) throws -> (Case, [String: EngineResult]) {
        let c = try #require(ValidationTests.cases.first { $0.id == id })
        var results = ValidationTests.golden(precision.outputFormat.rounded)
        let y = try layer(c).forward(c.inputs[0].tensor)
        results[id]!.outputs[0].tensor = Tensor(shape: y.shape, scalars: y.scalars.map(precision.outputFormat.rounded))
        return (c, results)
    }

    static func verdict(_ c: Case, _ results: [String: EngineResult], _ precision: Precision) -> CaseVerdict? {
        Validator.validate(engine: "buggy", precision: precision, cases: [c], results: [c.id: results[c.id]!]).cases.first
    }

    /// 1/√(σ²·m/(m − 1) + ε) with m = 4: y off by up to 13%.
    @Test(arguments: Precision.allCases)
    func batchNormWithTheUnbiasedVarianceFails(precision: Precision) throws {
        let (c, results) = try Self.wrongOutput("batchnorm2d/train-spatial-1x1-4x2x1x1-eps-1e-5-exact", precision) { c in
            let bn = try LayerRegistry.makeLayer(c) as! BatchNorm2D
            let f = (3.0 / 4).squareRoot()
            return BatchNorm2D(weight: Tensor(shape: bn.weight.shape, scalars: bn.weight.scalars.map { $0 * f }), bias: bn.bias,
                               runningMean: bn.runningMean, runningVar: bn.runningVar, training: true, eps: bn.eps * 3 / 4, momentum: bn.momentum)
        }
        let v = try #require(Self.verdict(c, results, precision))
        #expect(v.status == .failed && v.tensors.first { $0.name == "outputs.y" }?.status == .failed, "\(precision)")
    }

    @Test(arguments: Precision.allCases)
    func lrnWithAlphaUndividedFails(precision: Precision) throws {
        let (c, results) = try Self.wrongOutput("lrn/size-3-batch-1-1x4x3x3-exact", precision) { c in
            let l = try LayerRegistry.makeLayer(c) as! LRN
            return LRN(size: l.size, alpha: l.alpha * Double(l.size), beta: l.beta, k: l.k)
        }
        #expect(Self.verdict(c, results, precision)?.status == .failed, "\(precision)")
    }

    /// ONNX's window for size 2, channels c … c + 1, instead of PyTorch's c − 1 … c, written out here.
    @Test(arguments: Precision.allCases)
    func lrnWithTheEvenWindowPaddedAfterFails(precision: Precision) throws {
        let c = try #require(ValidationTests.cases.first { $0.id == "lrn/size-2-even-nchw-2x6x3x3-exact" })
        let l = try LayerRegistry.makeLayer(c) as! LRN
        let x = c.inputs[0].tensor, s = x.shape, plane = s[2] * s[3]
        let y = (0..<x.count).map { i -> Double in
            let (n, ch, p) = (i / (s[1] * plane), (i / plane) % s[1], i % plane)
            let q = (ch...min(s[1] - 1, ch + 1)).reduce(0.0) { let v = x[(n * s[1] + $1) * plane + p]; return $0 + v * v }
            return precision.outputFormat.rounded(x[i] / pow(l.k + l.alpha / 2 * q, l.beta))
        }
        var results = ValidationTests.golden(precision.outputFormat.rounded)
        results[c.id]!.outputs[0].tensor = Tensor(shape: s, scalars: y)
        #expect(Self.verdict(c, results, precision)?.status == .failed, "\(precision)")
    }
}

import Foundation
