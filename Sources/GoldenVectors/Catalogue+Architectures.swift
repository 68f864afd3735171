import CNNReference
import GradientCheck

extension Catalogue {
    // MARK: - The layers of the classic architectures (issue 14)

    mutating func architectureLayers() {
        addCases()
        concatCases()
        flattenCases()
        dropoutCases()
        adaptivePoolCases()
        batchNormCases()
        lrnCases()
    }

    /// Inputs x0 … x(n−1), the k-th of shape `shape(k)`.
    static func dataInputs(_ n: Int, _ kind: ValueKind, _ r: SeededRandom, _ shape: (Int) -> [Int]) -> [NamedTensor] {
        (0..<n).map { named("x\($0)", Self.tensor(shape($0), kind, r)) }
    }

    mutating func addCases() {
        let id = Add.id
        let shapes: [(String, [Int], Int)] = [("single-channel-1x1x4x4-2", [1, 1, 4, 4], 2), ("nchw-2x3x4x4-2", [2, 3, 4, 4], 2),
                                               ("nchw-2x3x4x4-3", [2, 3, 4, 4], 3), ("vector-7-4", [7], 4),
                                               ("many-channels-1x16x2x2-2", [1, 16, 2, 2], 2)]
        for kind in ValueKind.original {
            for (name, shape, n) in shapes {
                add(id, "\(name)-\(kind.short)", Self.describe(id, "\(n) inputs of shape \(shape)"), kind: kind) { r in
                    Self.dataInputs(n, kind, r) { _ in shape }
                }
            }
        }
        for kind in ValueKind.perFormat {
            add(id, "nchw-2x3x4x4-2-\(kind.short)", Self.describe(id, "2 inputs of shape [2, 3, 4, 4]"), kind: kind) { r in
                Self.dataInputs(2, kind, r) { _ in [2, 3, 4, 4] }
            }
        }
        addExact(id, "cancellation", Self.describe(id, "1e16 + 1 − 1e16 = 1 exactly (a left-to-right float loop gives 0 or 2); 0.1 + 0.2 + 0.3 rounded once"),
                 kind: .fullDouble, tags: ["edge"],
                 [named("x0", t([3], [1e16, 0.1, 1])), named("x1", t([3], [1, 0.2, 0x1p-60])), named("x2", t([3], [-1e16, 0.3, -1]))])
        addExact(id, "signed-zeros-and-infinities", Self.describe(id, "−0 + −0 = −0, −0 + 0 = +0, x + (−x) = +0, ∞ + 1 = ∞, ∞ + (−∞) = NaN, NaN propagates"),
                 tags: ["edge"],
                 [named("x0", t([6], [-0.0, -0.0, 0.5, .infinity, .infinity, .nan])), named("x1", t([6], [-0.0, 0, -0.5, 1, -.infinity, 1]))])
    }

    mutating func concatCases() {
        let id = Concat.id
        let base = [2, 3, 2, 3]
        for kind in ValueKind.original {
            for n in [2, 4] {
                for axis in 0..<4 {
                    // Input k has extent 1 + k mod 3 on the axis, so the slabs differ in size.
                    add(id, "\(n)-inputs-axis-\(axis)-\(kind.short)",
                        Self.describe(id, "\(n) inputs of shape \(base) with extents 1, 2, 3, 1 on axis \(axis)"),
                        kind: kind, config: [("axis", .int(axis))]) { r in
                        Self.dataInputs(n, kind, r) { k in var s = base; s[axis] = 1 + k % 3; return s }
                    }
                }
            }
        }
        for kind in ValueKind.perFormat {
            add(id, "4-inputs-axis-1-\(kind.short)", Self.describe(id, "4 inputs on the channel axis (DenseNet), extents 1, 2, 3, 1"),
                kind: kind, config: [("axis", .int(1))]) { r in
                Self.dataInputs(4, kind, r) { k in [1, 1 + k % 3, 3, 3] }
            }
        }
    }

    mutating func flattenCases() {
        let id = Flatten.id
        let configs: [(String, [Int], Int)] = [("nchw-2x3x4x4-start-1", [2, 3, 4, 4], 1), ("nchw-2x3x4x4-start-0", [2, 3, 4, 4], 0),
                                                ("nchw-2x3x4x4-start-2", [2, 3, 4, 4], 2), ("nchw-2x3x4x4-start-3", [2, 3, 4, 4], 3),
                                                ("single-channel-1x1x3x3-start-1", [1, 1, 3, 3], 1), ("matrix-5x7-start-1", [5, 7], 1)]
        for kind in ValueKind.original {
            for (name, shape, start) in configs {
                add(id, "\(name)-\(kind.short)", Self.describe(id, "x \(shape), start_axis \(start)"), kind: kind,
                    config: [("start_axis", .int(start))]) { r in [named("x", Self.tensor(shape, kind, r))] }
            }
        }
        for kind in ValueKind.perFormat {
            add(id, "nchw-2x3x4x4-start-1-\(kind.short)", Self.describe(id, "x [2, 3, 4, 4], start_axis 1"), kind: kind,
                config: [("start_axis", .int(1))]) { r in [named("x", Self.tensor([2, 3, 4, 4], kind, r))] }
        }
    }

    /// A mask that keeps each element with probability 1 − p.
    static func mask(_ shape: [Int], keep: Double, _ r: SeededRandom) -> Tensor {
        Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in r.unit() < keep ? 1 : 0 })
    }

    mutating func dropoutCases() {
        let id = Dropout.id
        let shape = [2, 3, 4, 4]
        for kind in ValueKind.original {
            for p in [0, 0.5, 0.9, 0.1, 0.3, 0.999] {
                add(id, "p-\(p)-nchw-2x3x4x4-\(kind.short)", Self.describe(id, "x \(shape), p \(p), a mask keeping each element with probability 1 − p"),
                    kind: kind, config: [("p", num(p))]) { r in
                    [named("x", Self.tensor(shape, kind, r)), named("mask", Self.mask(shape, keep: 1 - p, r))]
                }
            }
        }
        for kind in ValueKind.perFormat {
            for p in [0.5, 0.1] {
                add(id, "p-\(p)-nchw-2x3x4x4-\(kind.short)", Self.describe(id, "x \(shape), p \(p)"), kind: kind, config: [("p", num(p))]) { r in
                    [named("x", Self.tensor(shape, kind, r)), named("mask", Self.mask(shape, keep: 1 - p, r))]
                }
            }
        }
        add(id, "all-zero-mask-p-0.5", Self.describe(id, "every element dropped: y = 0·x keeps x's sign, dx = 0"), kind: .fullDouble,
            config: [("p", num(0.5))]) { r in [named("x", Self.tensor(shape, .fullDouble, r)), named("mask", Tensor(zeros: shape))] }
        add(id, "all-one-mask-p-0.2", Self.describe(id, "nothing dropped: y = x/0.8 (1 − 0.2 is not a double), each rounded once"),
            kind: .fullDouble, config: [("p", num(0.2))]) { r in
            [named("x", Self.tensor(shape, .fullDouble, r)), named("mask", Tensor(shape: shape, scalars: Array(repeating: 1, count: 96)))]
        }
        add(id, "single-channel-1x1x4x4-p-0.5", Self.describe(id, "batch 1, one channel, p 0.5"), kind: .exactLowPrecision,
            config: [("p", num(0.5))]) { r in
            [named("x", Self.tensor([1, 1, 4, 4], .exactLowPrecision, r)), named("mask", Self.mask([1, 1, 4, 4], keep: 0.5, r))]
        }
        addExact(id, "non-finite-and-zeros", Self.describe(id, "dropped ∞ and NaN give NaN (x·0, as x·mask·scale in the engines); kept ∞ stays ∞; −0 stays −0"),
                 tags: ["edge"], config: [("p", num(0.25))],
                 [named("x", t([6], [.infinity, -.infinity, .nan, -0.0, -0.0, 1])), named("mask", t([6], [0, 1, 0, 1, 0, 1]))])
    }

    mutating func adaptivePoolCases() {
        let id = AdaptiveAvgPool2D.id
        let configs: [(String, [Int], [Int])] = [("tiling-2x3x6x6-to-3x3", [2, 3, 6, 6], [3, 3]), ("global-2x3x6x6-to-1x1", [2, 3, 6, 6], [1, 1]),
                                                  ("overlapping-1x1x5x7-to-3x4", [1, 1, 5, 7], [3, 4]), ("non-tiling-1x2x7x5-to-2x3", [1, 2, 7, 5], [2, 3]),
                                                  ("larger-output-1x1x3x3-to-5x5", [1, 1, 3, 3], [5, 5]), ("batch-2x4x4x4-to-2x2", [2, 4, 4, 4], [2, 2])]
        for kind in ValueKind.original {
            for (name, shape, o) in configs {
                add(id, "\(name)-\(kind.short)", Self.describe(id, "x \(shape), output_size \(o)"), kind: kind,
                    config: [("output_size", ints(o))]) { r in [named("x", Self.tensor(shape, kind, r))] }
            }
        }
        for kind in ValueKind.perFormat {
            add(id, "overlapping-1x2x7x5-to-3x2-\(kind.short)", Self.describe(id, "x [1, 2, 7, 5], output_size [3, 2]"), kind: kind,
                config: [("output_size", ints([3, 2]))]) { r in [named("x", Self.tensor([1, 2, 7, 5], kind, r))] }
        }
    }

    /// γ, β, running mean and a positive running variance for C channels.
    static func batchNormInputs(_ x: Tensor, _ kind: ValueKind, _ r: SeededRandom) -> [NamedTensor] {
        let c = x.shape[1]
        let variance = Self.tensor([c], kind, r)
        return [named("x", x), named("weight", Self.tensor([c], kind, r)), named("bias", Self.tensor([c], kind, r)),
                named("running_mean", Self.tensor([c], kind, r)),
                named("running_var", Tensor(shape: [c], scalars: variance.scalars.map(\.magnitude)))]
    }

    static func batchNormConfig(training: Bool, eps: Double, momentum: Double = 0.1) -> [(String, JSON)] {
        [("training", .bool(training)), ("eps", num(eps)), ("momentum", num(momentum))]
    }

    mutating func batchNormCases() {
        let id = BatchNorm2D.id
        let configs: [(String, [Int], Bool, Double)] = [
            ("train-batch-1-single-channel-1x1x4x4-eps-1e-5", [1, 1, 4, 4], true, 1e-5),
            ("train-nchw-2x3x3x3-eps-1e-5", [2, 3, 3, 3], true, 1e-5),
            ("train-nchw-2x3x3x3-eps-1e-3", [2, 3, 3, 3], true, 1e-3),
            ("train-spatial-1x1-4x2x1x1-eps-1e-5", [4, 2, 1, 1], true, 1e-5),
            ("eval-nchw-2x3x3x3-eps-1e-5", [2, 3, 3, 3], false, 1e-5),
            ("eval-batch-1-single-channel-1x1x4x4-eps-1e-3", [1, 1, 4, 4], false, 1e-3),
        ]
        for kind in ValueKind.original {
            for (name, shape, training, eps) in configs {
                add(id, "\(name)-\(kind.short)",
                    Self.describe(id, "x \(shape), \(training ? "training (batch statistics, updated running statistics)" : "eval (running statistics)"), eps \(eps), momentum 0.1"),
                    kind: kind, config: Self.batchNormConfig(training: training, eps: eps)) { r in
                    Self.batchNormInputs(Self.tensor(shape, kind, r), kind, r)
                }
            }
        }
        for kind in ValueKind.perFormat {
            add(id, "train-nchw-2x3x3x3-eps-1e-5-\(kind.short)", Self.describe(id, "x [2, 3, 3, 3], training, eps 1e-5, momentum 0.1"),
                kind: kind, config: Self.batchNormConfig(training: true, eps: 1e-5)) { r in
                Self.batchNormInputs(Self.tensor([2, 3, 3, 3], kind, r), kind, r)
            }
        }
        add(id, "train-variance-0-channel-2x3x2x2-eps-1e-5",
            Self.describe(id, "x [2, 3, 2, 2], training, channel 1 all equal over the batch (variance 0: y = beta exactly, dweight = 0, dx = gamma/sqrt(eps)*(dy - mean dy), running_var = (1 - momentum)*old), momentum 0.1"),
            kind: .exactLowPrecision, tags: ["edge"], config: Self.batchNormConfig(training: true, eps: 1e-5)) { r in
            var x = Self.tensor([2, 3, 2, 2], .exactLowPrecision, r)
            for n in 0..<2 { for p in 0..<4 { x[(n * 3 + 1) * 4 + p] = 0.375 } }
            return Self.batchNormInputs(x, .exactLowPrecision, r)
        }
        add(id, "eval-variance-0-channel-2x3x2x2-eps-1e-3",
            Self.describe(id, "x [2, 3, 2, 2], eval, running_var 0 for channel 0 (the denominator is sqrt(eps)), eps 1e-3"),
            kind: .exactLowPrecision, tags: ["edge"], config: Self.batchNormConfig(training: false, eps: 1e-3)) { r in
            var inputs = Self.batchNormInputs(Self.tensor([2, 3, 2, 2], .exactLowPrecision, r), .exactLowPrecision, r)
            inputs[4].tensor[0] = 0
            return inputs
        }
        add(id, "train-momentum-1-nchw-3x2x2x2-eps-1e-5",
            Self.describe(id, "x [3, 2, 2, 2], training, momentum 1 (the running statistics become the batch's: mean, unbiased variance), eps 1e-5"),
            kind: .fullDouble, config: Self.batchNormConfig(training: true, eps: 1e-5, momentum: 1)) { r in
            Self.batchNormInputs(Self.tensor([3, 2, 2, 2], .fullDouble, r), .fullDouble, r)
        }
        addExact(id, "train-rational-root", Self.describe(id, "x [2, 1, 1, 2] = 0, 0, 0, 1: mean 1/4, biased variance 3/16; eps 1/16 makes var + eps = 1/4 with the rational root 1/2, so y = 0.1*2*(x - 1/4) + 0.3 and every gradient is rational, rounded exactly; momentum 0.5: running_var = 0.5*1 + 0.5*(3/4)/3 = 0.625"),
                 kind: .fullDouble, tags: ["edge"], config: Self.batchNormConfig(training: true, eps: 0.0625, momentum: 0.5),
                 [named("x", t([2, 1, 1, 2], [0, 0, 0, 1])), named("weight", t([1], [0.1])), named("bias", t([1], [0.3])),
                  named("running_mean", t([1], [0])), named("running_var", t([1], [1]))])
    }

    mutating func lrnCases() {
        let id = LRN.id
        let configs: [(String, [Int], Int, Double, Double, Double)] = [
            ("alexnet-size-5-nchw-2x6x3x3", [2, 6, 3, 3], 5, 1e-4, 0.75, 2),
            ("size-2-even-nchw-2x6x3x3", [2, 6, 3, 3], 2, 1, 0.75, 1),
            ("size-3-batch-1-1x4x3x3", [1, 4, 3, 3], 3, 0.5, 0.75, 1),
            ("size-3-single-channel-1x1x4x4", [1, 1, 4, 4], 3, 1, 0.5, 1),
            ("size-4-even-1x5x2x2", [1, 5, 2, 2], 4, 1, 0.75, 1),
            ("size-7-wider-than-c-beta-1-1x4x2x2", [1, 4, 2, 2], 7, 2, 1, 1),
        ]
        for kind in ValueKind.original {
            for (name, shape, size, alpha, beta, k) in configs {
                add(id, "\(name)-\(kind.short)", Self.describe(id, "x \(shape), size \(size), alpha \(alpha), beta \(beta), k \(k)"),
                    kind: kind, config: [("size", .int(size)), ("alpha", num(alpha)), ("beta", num(beta)), ("k", num(k))]) { r in
                    [named("x", Self.tensor(shape, kind, r))]
                }
            }
        }
        for kind in ValueKind.perFormat {
            add(id, "size-5-nchw-1x6x3x3-\(kind.short)", Self.describe(id, "x [1, 6, 3, 3], size 5, alpha 1, beta 0.75, k 1"),
                kind: kind, config: [("size", .int(5)), ("alpha", num(1)), ("beta", num(0.75)), ("k", num(1))]) { r in
                [named("x", Self.tensor([1, 6, 3, 3], kind, r))]
            }
        }
        addExact(id, "rational-powers", Self.describe(id, "size 1, alpha 15, beta 0.75, k 1: x = 1 gives S = 16 and S^0.75 = 8 (y = 1/8 exactly), x = 0 gives 0 with x's sign, x = 0.5 gives S = 4.75 (irrational power)"),
                 tags: ["edge"], config: [("size", .int(1)), ("alpha", num(15)), ("beta", num(0.75)), ("k", num(1))],
                 [named("x", t([1, 1, 1, 4], [1, -0.0, 0.5, -1]))])
    }
}
