import CNNReference
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
    ]

    @Test(arguments: bugs)
    func everyBugFailsOnTheElementsItBreaks(bug: SensitivityTests.Bug) throws {
        try SensitivityTests.expectFailures(bug) { r, w in !((r - w).magnitude <= 1e-9 * max(1, r.magnitude)) }
    }
}
