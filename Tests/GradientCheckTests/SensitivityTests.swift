import CNNReference
import Foundation
import GradientCheck
import Testing

/// Sensitivity: deliberately wrong backward passes, each a realistic bug. The
/// checker must fail every one, on exactly the elements the bug changes.
@Suite struct SensitivityTests {
    struct Bug: CustomTestStringConvertible, Sendable {
        let name: String
        let layer: any Layer
        let input: Tensor
        let wrong: @Sendable (any Layer, Tensor, Tensor) -> Gradients
        var testDescription: String { name }
    }

    static func values(_ count: Int, seed: UInt) -> [Double] {
        let rng = SeededRandom(seed: seed)
        return (0..<count).map { _ in 2 * rng.signedUnit() }
    }
    static func tensor(_ shape: [Int], seed: UInt) -> Tensor {
        Tensor(shape: shape, scalars: values(shape.reduce(1, *), seed: seed))
    }

    static let conv = Conv2D(weight: tensor([2, 2, 3, 3], seed: 1), bias: tensor([2], seed: 2),
                             stride: [2, 2], padding: [1, 1, 1, 1])
    static let dilated = Conv2D(weight: tensor([2, 2, 2, 2], seed: 3), bias: nil, padding: [1, 1, 1, 1], dilation: [2, 2])
    static let grouped = Conv2D(weight: tensor([4, 1, 2, 2], seed: 4), bias: nil, groups: 2)
    static let image = tensor([2, 2, 5, 5], seed: 5)

    static let bugs: [Bug] = [
        Bug(name: "conv2d weight gradient with the kernel flipped", layer: conv, input: image) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            let w = g.parameters[0]
            g.parameters[0] = Tensor(shape: w.shape, scalars: w.scalars.indices.map { i in
                let ix = w.index(ofFlat: i)
                return w.scalars[((ix[0] * w.shape[1] + ix[1]) * 3 + (2 - ix[2])) * 3 + (2 - ix[3])]
            })
            return g
        },
        Bug(name: "conv2d input gradient ignoring the stride", layer: conv, input: image) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            g.input = naiveConvInputGradient(l as! Conv2D, x, dy, ignoreStride: true)
            return g
        },
        Bug(name: "conv2d input gradient ignoring the dilation", layer: dilated, input: image) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            g.input = naiveConvInputGradient(l as! Conv2D, x, dy, ignoreDilation: true)
            return g
        },
        Bug(name: "conv2d bias gradient not summed over the batch", layer: conv, input: image) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            let per = dy.shape[2] * dy.shape[3]
            g.parameters[1] = Tensor(shape: [2], scalars: (0..<2).map { o in (0..<per).reduce(0) { $0 + dy[o * per + $1] } })
            return g
        },
        Bug(name: "conv2d groups mixed up in the input gradient", layer: grouped, input: tensor([1, 2, 4, 4], seed: 6)) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            g.input = naiveConvInputGradient(l as! Conv2D, x, dy, groupOfChannel: { ch, groups in (ch + 1) % groups })
            return g
        },
        Bug(name: "leaky ReLU slope missing for x < 0", layer: LeakyReLU(slope: 0.1), input: tensor([10], seed: 7)) { _, x, dy in
            Gradients(input: Tensor(shape: x.shape, scalars: zip(x.scalars, dy.scalars).map { $0 > 0 ? $1 : 0 }))
        },
        Bug(name: "ELU derivative α·eˣ − 1", layer: ELU(alpha: 1.5), input: tensor([10], seed: 8)) { l, x, dy in
            let alpha = (l as! ELU).alpha
            let dx: [Double] = zip(x.scalars, dy.scalars).map { (v: Double, d: Double) -> Double in
                v > 0 ? d : d * (alpha * exp(v) - 1)
            }
            return Gradients(input: Tensor(shape: x.shape, scalars: dx))
        },
        Bug(name: "max pool routing to the last maximum", layer: MaxPool2D(window: PoolWindow(kernel: [2, 2], stride: [2, 2])),
            input: Tensor(shape: [1, 1, 2, 4], scalars: [1, 3, 2, 7, 3, 0, 7, 1])) { _, x, dy in
            // windows [1,3;3,0] and [2,7;7,1]: ties; the bug routes to the later one
            var dx = Tensor(zeros: x.shape)
            dx[4] = dy[0]
            dx[6] = dy[1]
            return Gradients(input: dx)
        },
        Bug(name: "avg pool divisor ignoring count_include_pad",
            layer: AvgPool2D(window: PoolWindow(kernel: [3, 3], stride: [2, 2], padding: [1, 1, 1, 1]), countIncludePad: true),
            input: tensor([1, 1, 5, 5], seed: 9)) { l, x, dy in
            AvgPool2D(window: (l as! AvgPool2D).window, countIncludePad: false).backward(x, outputGradient: dy)
        },
        Bug(name: "PReLU slope gradient not summed over space", layer: PReLU(slope: Tensor(shape: [2], scalars: [0.25, 0.5])),
            input: tensor([2, 2, 3, 3], seed: 10)) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            g.parameters[0] = Tensor(shape: [2], scalars: (0..<2).map { c in
                (0..<2).reduce(0) { total, n in let i = (n * 2 + c) * 9; return total + (x[i] > 0 ? 0 : dy[i] * x[i]) }
            })
            return g
        },
        Bug(name: "swish input gradient missing the β term", layer: Swish(beta: Tensor(shape: [1], scalars: [1.75])),
            input: tensor([8], seed: 11)) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            let b = 1.75
            g.input = Tensor(shape: x.shape, scalars: zip(x.scalars, dy.scalars).map { x, d in
                d * logistic64(b * x) * (1 + x * (1 - logistic64(b * x)))
            })
            return g
        },
        Bug(name: "softmax cross-entropy gradient missing 1/N", layer: SoftmaxCrossEntropy(labels: [0, 2, 1], reduction: .mean),
            input: tensor([3, 4], seed: 12)) { _, x, dy in
            SoftmaxCrossEntropy(labels: [0, 2, 1], reduction: .sum).backward(x, outputGradient: dy)
        },
        Bug(name: "hinge counting j = y_i in the label's gradient", layer: MulticlassHinge(labels: [1, 0], margin: 1, reduction: .sum),
            input: tensor([2, 4], seed: 13)) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            for (i, y) in [1, 0].enumerated() { g.input[i * 4 + y] -= dy[0] }
            return g
        },
        Bug(name: "linear weight gradient from the first sample only",
            layer: Linear(weight: tensor([3, 4], seed: 14), bias: tensor([3], seed: 15)), input: tensor([2, 4], seed: 16)) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            let first = Tensor(shape: [1, 4], scalars: Array(x.scalars[0..<4]))
            g.parameters[0] = l.backward(first, outputGradient: Tensor(shape: [1, 3], scalars: Array(dy.scalars[0..<3]))).parameters[0]
            return g
        },
        Bug(name: "tanh derivative 1 − x² instead of 1 − tanh²", layer: Tanh(), input: tensor([6], seed: 17)) { _, x, dy in
            Gradients(input: Tensor(shape: x.shape, scalars: zip(x.scalars, dy.scalars).map { $1 * (1 - $0 * $0) }))
        },
        // A backward that returns NaN at a finite point, where the objective is finite:
        // a failure with its index, never "not finite: skipped".
        Bug(name: "sigmoid backward NaN for x < −30", layer: Sigmoid(),
            input: Tensor(shape: [6], scalars: [-40, -35, 0.5, -1, -31, 2])) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            for i in 0..<x.count where x[i] < -30 && dy[i] != 0 { g.input[i] = .nan }
            return g
        },
    ]

    @Test(arguments: bugs)
    func everyBugFailsOnTheElementsItBreaks(bug: Bug) throws {
        // Broken: beyond 1e-9 relative (naive rewrites of a gradient differ in rounding elsewhere).
        try Self.expectFailures(bug) { r, w in !((r - w).magnitude <= 1e-9 * max(1, r.magnitude)) }
    }

    /// Checks the mutant of `bug` through the path its layer takes and expects failures on
    /// exactly the elements `broken(right, wrong)` names, from the upstream the checker drew.
    static func expectFailures(_ bug: Bug, broken: (Double, Double) -> Bool) throws {
        var config = GradientCheckConfiguration()
        config.failuresKept = .max
        let layer = mutant(bug.layer, bug.wrong)
        #expect((layer is any SumOfProducts) == (bug.layer is any SumOfProducts))
        let report = try GradientChecker.check(layer, input: bug.input, configuration: config)
        #expect(!report.passed, "\(bug.name) passed the check")
        let upstream = try GradientChecker.upstream(for: bug.layer, input: bug.input, seed: config.seed)
        let right = bug.layer.backward(bug.input, outputGradient: upstream)
        let wrong = bug.wrong(bug.layer, bug.input, upstream)
        for (slot, tensorReport) in report.tensors.enumerated() {
            let r = slot == 0 ? right.input : right.parameters[slot - 1]
            let w = slot == 0 ? wrong.input : wrong.parameters[slot - 1]
            let expected = Set(r.scalars.indices.filter { broken(r[$0], w[$0]) })
            let reported = Set(tensorReport.failures.map { r.flatIndex(of: $0.index) })
            #expect(reported == expected, "\(bug.name): tensor \(tensorReport.name) reported \(reported.sorted()), broken \(expected.sorted())")
        }
    }
}

/// Small errors, through the path `cnnref gradcheck` takes (the sum-of-products mutants stay
/// `SumOfProducts`): each must fail on exactly the elements it changes, bit for bit.
@Suite struct SmallErrorTests {
    static let linear = Linear(weight: SensitivityTests.tensor([4, 6], seed: 31), bias: SensitivityTests.tensor([4], seed: 32))
    static let rows = SensitivityTests.tensor([3, 6], seed: 33)
    static let bugs: [SensitivityTests.Bug] = [
        .init(name: "conv2d dW off by a relative 1e-9 in one element", layer: SensitivityTests.conv, input: SensitivityTests.image) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            g.parameters[0][7] *= 1 + 1e-9
            return g
        },
        .init(name: "conv2d dx off by a relative 1e-9 in one element", layer: SensitivityTests.conv, input: SensitivityTests.image) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            g.input[23] *= 1 + 1e-9
            return g
        },
        .init(name: "conv2d dW rounded to float32", layer: SensitivityTests.conv, input: SensitivityTests.image) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            g.parameters[0] = Tensor(shape: g.parameters[0].shape, scalars: g.parameters[0].scalars.map { Double(Float($0)) })
            return g
        },
        .init(name: "linear dx NaN only where |x| > 1.9", layer: linear, input: rows) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            for i in 0..<x.count where x[i].magnitude > 1.9 { g.input[i] = .nan }
            return g
        },
        .init(name: "linear dW with one output row wrong by 1e-7", layer: linear, input: rows) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            for j in 6..<12 { g.parameters[0][j] *= 1 + 1e-7 }
            return g
        },
        .init(name: "avgpool dx off by a relative 1e-9 in one element",
              layer: AvgPool2D(window: PoolWindow(kernel: [3, 3], stride: [2, 2], padding: [1, 1, 1, 1]), countIncludePad: true),
              input: SensitivityTests.tensor([1, 2, 5, 5], seed: 34)) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            g.input[12] *= 1 + 1e-9
            return g
        },
    ]

    @Test(arguments: bugs)
    func smallErrorsFailOnExactlyTheirElements(bug: SensitivityTests.Bug) throws {
        #expect(bug.layer is any SumOfProducts)
        try SensitivityTests.expectFailures(bug) { r, w in r.bitPattern != w.bitPattern }
    }
}

/// The piecewise contract: the frozen piece of the point is the forward pass, bitwise.
@Suite struct PieceContractTests {
    @Test(arguments: [1 + 0x1p-52, 2.0])
    func aWrongPieceFailsTheStructuralCheck(factor: Double) throws {
        let x = SensitivityTests.tensor([2, 6], seed: 21)
        let layers: [any PiecewiseSmooth] = [ReLU(), LeakyReLU(slope: 0.1), MaxPool2D(window: PoolWindow(kernel: [1, 2], stride: [1, 2]))]
        for layer in layers {
            let input = layer is MaxPool2D ? Tensor(shape: [1, 1, 2, 6], scalars: x.scalars) : x
            let report = try GradientChecker.check(PieceMutant(base: layer, factor: factor), input: input)
            let contract = try #require(report.structural.first { $0.name == "piece of the point is the forward pass" })
            #expect(!contract.passed && !report.passed, "\(type(of: layer)): \(contract.detail)")
            // The correct layer keeps it.
            let right = try GradientChecker.check(layer, input: input)
            #expect(right.structural.allSatisfy { $0.passed }, "\(type(of: layer))")
        }
    }
}

extension Tensor {
    func flatIndex(of index: [Int]) -> Int {
        zip(index, shape).reduce(0) { $0 * $1.1 + $1.0 }
    }
}
