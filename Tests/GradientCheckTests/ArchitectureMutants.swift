import CNNReference
import Foundation
import GradientCheck
import Testing

/// A realistic bug in the backward pass of each layer of issue 14: the checker fails it
/// on exactly the elements it breaks.
@Suite struct ArchitectureMutantTests {
    static let x = SensitivityTests.tensor([2, 3, 2, 2], seed: 41)

    static let bugs: [SensitivityTests.Bug] = [
        .init(name: "add: the second input's gradient forgotten", layer: Add(others: [SensitivityTests.tensor([2, 3, 2, 2], seed: 42)]), input: x) { l, x, dy in
            var g = l.backward(x, outputGradient: dy)
            g.parameters[0] = Tensor(zeros: dy.shape)
            return g
        },
        .init(name: "concat: gradient split one element off", layer: Concat(axis: 1, others: [SensitivityTests.tensor([2, 2, 2, 2], seed: 43)]), input: x) { l, x, dy in
            // Each batch row's slab boundary moved one element later: x0 takes dy[1…], x1 starts one late.
            var g = l.backward(x, outputGradient: dy)
            let (a, b) = (12, 8)
            for n in 0..<2 {
                for j in 0..<a { g.input[n * a + j] = dy[n * (a + b) + j + 1] }
                for j in 0..<b { g.parameters[0][n * b + j] = n * (a + b) + a + j + 1 < dy.count ? dy[n * (a + b) + a + j + 1] : 0 }
            }
            return g
        },
        .init(name: "flatten: gradient reshaped column-major", layer: Flatten(startAxis: 1), input: x) { _, x, dy in
            // dy [2, 12] read as if it were stored transposed [12, 2].
            Gradients(input: Tensor(shape: x.shape, scalars: (0..<24).map { i in dy[(i % 12) * 2 + i / 12] }))
        },
        .init(name: "dropout: gradient without the 1/(1 − p) scale", layer: Dropout(p: 0.3, mask: Tensor(shape: [2, 3, 2, 2], scalars: (0..<24).map { $0 % 3 == 0 ? 0 : 1 })),
              input: x) { l, _, dy in
            let mask = (l as! Dropout).mask
            return Gradients(input: Tensor(shape: dy.shape, scalars: zip(dy.scalars, mask.scalars).map { $0 * $1 }))
        },
        .init(name: "adaptive pool: overlapping windows give a cell only its first window", layer: AdaptiveAvgPool2D(outputSize: [2, 3]),
              input: SensitivityTests.tensor([1, 1, 3, 5], seed: 44)) { _, x, dy in
            let rows = AdaptiveAvgPool2D.windows(input: 3, output: 2), cols = AdaptiveAvgPool2D.windows(input: 5, output: 3)
            var dx = Tensor(zeros: x.shape)
            for r in 0..<3 {
                for c in 0..<5 {
                    let i = rows.firstIndex { $0.contains(r) }!, j = cols.firstIndex { $0.contains(c) }!
                    dx[r * 5 + c] = dy[i * 3 + j] / Double(rows[i].count * cols[j].count)
                }
            }
            return Gradients(input: dx)
        },
        .init(name: "batchnorm2d: the unbiased variance (÷(m − 1)) in the normalisation", layer: bn(eps: 1e-3), input: x) { l, x, dy in
            // 1/√(v·m/(m − 1) + ε) = √((m − 1)/m)/√(v + ε(m − 1)/m): the wrong forward is batch norm with
            // γ' = γ·√((m − 1)/m) and ε' = ε(m − 1)/m, so its gradient is that layer's.
            let b = l as! BatchNorm2D, m = 8.0, f = ((m - 1) / m).squareRoot()
            let wrong = BatchNorm2D(weight: Tensor(shape: [3], scalars: b.weight.scalars.map { $0 * f }), bias: b.bias,
                                    runningMean: b.runningMean, runningVar: b.runningVar, training: true, eps: b.eps * (m - 1) / m, momentum: b.momentum)
            var g = wrong.backward(x, outputGradient: dy)
            g.parameters[0] = Tensor(shape: [3], scalars: g.parameters[0].scalars.map { $0 * f })
            return g
        },
        .init(name: "batchnorm2d: eps outside the square root (σ + ε)", layer: bn(eps: 0.1), input: x) { l, x, dy in
            epsOutsideRoot(l as! BatchNorm2D, x, dy)
        },
        .init(name: "lrn: alpha not divided by size", layer: LRN(size: 3, alpha: 1, beta: 0.75, k: 1), input: x) { _, x, dy in
            lrnBackward(x, dy, alpha: 3, beta: 0.75, k: 1, size: 3) { c, n in max(0, c - 1)...min(n - 1, c + 1) }
        },
        .init(name: "lrn: an even window padded after instead of before", layer: LRN(size: 2, alpha: 1, beta: 0.75, k: 1), input: x) { _, x, dy in
            // Channels c … c + 1 instead of PyTorch's c − 1 … c.
            lrnBackward(x, dy, alpha: 1, beta: 0.75, k: 1, size: 2) { c, n in c...min(n - 1, c + 1) }
        },
    ]

    static func bn(eps: Double) -> BatchNorm2D {
        BatchNorm2D(weight: SensitivityTests.tensor([3], seed: 45), bias: SensitivityTests.tensor([3], seed: 46),
                    runningMean: Tensor(zeros: [3]), runningVar: Tensor(shape: [3], scalars: [1, 1, 1]), training: true, eps: eps, momentum: 0.1)
    }

    /// The gradient of y = γ·(x − μ)/D + β with D = √v + ε (the mutant forward), in plain doubles:
    /// dx_j = γ/D·(dy_j − mean dy) − γ·D'(v)/D²·(2/m)·(x_j − μ)·Σ dy·(x − μ), D'(v) = 1/(2√v).
    static func epsOutsideRoot(_ l: BatchNorm2D, _ x: Tensor, _ dy: Tensor) -> Gradients {
        var dx = x, dg = l.weight, db = l.bias
        for c in 0..<3 {
            let idx = l.indices(x.shape, c), m = Double(idx.count)
            let mu = idx.reduce(0) { $0 + x[$1] } / m
            let v = idx.reduce(0) { $0 + (x[$1] - mu) * (x[$1] - mu) } / m
            let d = v.squareRoot() + l.eps, slope = 1 / (2 * v.squareRoot())
            let meanDy = idx.reduce(0) { $0 + dy[$1] } / m
            let t = idx.reduce(0) { $0 + dy[$1] * (x[$1] - mu) }
            for i in idx { dx[i] = l.weight[c] / d * (dy[i] - meanDy) - l.weight[c] * slope / (d * d) * 2 / m * (x[i] - mu) * t }
            dg[c] = t / d
            db[c] = idx.reduce(0) { $0 + dy[$1] }
        }
        return Gradients(input: dx, parameters: [dg, db])
    }

    /// LRN's gradient for any window rule, in plain doubles.
    static func lrnBackward(_ x: Tensor, _ dy: Tensor, alpha: Double, beta: Double, k: Double, size: Int,
                            window: (Int, Int) -> ClosedRange<Int>) -> Gradients {
        let s = x.shape, ch = s[1], plane = s[2] * s[3]
        func at(_ n: Int, _ c: Int, _ p: Int) -> Int { (n * ch + c) * plane + p }
        var dx = Tensor(zeros: s)
        for n in 0..<s[0] {
            for p in 0..<plane {
                for c in 0..<ch {
                    let base = k + alpha / Double(size) * window(c, ch).reduce(0) { $0 + x[at(n, $1, p)] * x[at(n, $1, p)] }
                    dx[at(n, c, p)] += dy[at(n, c, p)] * pow(base, -beta)
                    let common = 2 * alpha * beta / Double(size) * dy[at(n, c, p)] * x[at(n, c, p)] * pow(base, -beta - 1)
                    for j in window(c, ch) { dx[at(n, j, p)] -= common * x[at(n, j, p)] }
                }
            }
        }
        return Gradients(input: dx)
    }

    @Test(arguments: bugs)
    func everyBugFailsOnTheElementsItBreaks(bug: SensitivityTests.Bug) throws {
        try SensitivityTests.expectFailures(bug) { r, w in !((r - w).magnitude <= 1e-9 * max(1, r.magnitude)) }
    }
}
