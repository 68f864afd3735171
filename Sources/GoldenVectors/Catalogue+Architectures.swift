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
}
