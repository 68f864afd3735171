import CNNReference
import GradientCheck

func t(_ shape: [Int], _ v: [Double]) -> Tensor { Tensor(shape: shape, scalars: v) }
func named(_ name: String, _ tensor: Tensor) -> NamedTensor { NamedTensor(name, tensor) }

extension Catalogue {
    func convConfig(_ s: [Int], _ p: [Int], _ d: [Int] = [1, 1], _ g: Int = 1) -> [(String, JSON)] {
        [("stride", ints(s)), ("padding", ints(p)), ("dilation", ints(d)), ("groups", .int(g))]
    }

    func poolConfig(_ k: [Int], _ s: [Int], _ p: [Int], _ d: [Int] = [1, 1], ceil: Bool = false, include: Bool? = nil) -> [(String, JSON)] {
        var c: [(String, JSON)] = [("kernel", ints(k)), ("stride", ints(s)), ("padding", ints(p)),
                                   ("dilation", ints(d)), ("ceil_mode", .bool(ceil))]
        if let include { c.append(("count_include_pad", .bool(include))) }
        return c
    }

    // MARK: - Convolution

    mutating func conv2d() {
        let id = Conv2D.id
        // The kernel × stride × padding matrix, both kinds of values.
        for kind in ValueKind.original {
            let short = kind.short
            for k in [1, 2, 3, 5] {
                for s in [1, 2, 3] {
                    for (pname, p) in [("nopad", [0, 0, 0, 0]), ("pad1", [1, 1, 1, 1]), ("asym", [0, 1, 2, 1])] {
                        add(id, "k\(k)-s\(s)-\(pname)-\(short)",
                            Self.describe(id, "x [2,3,7,7], weight [4,3,\(k),\(k)], bias, stride \(s), padding \(p)"),
                            kind: kind, config: convConfig([s, s], p)) { r in
                            [named("x", Self.tensor([2, 3, 7, 7], kind, r)), named("weight", Self.tensor([4, 3, k, k], kind, r)),
                             named("bias", Self.tensor([4], kind, r))]
                        }
                    }
                }
            }
            let shapes: [(String, [Int], [Int], [Int], [Int], [Int], Int, Bool)] = [
                // name, x, weight, stride, padding, dilation, groups, bias
                ("nonsquare-2x3", [1, 2, 6, 7], [3, 2, 2, 3], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
                ("nonsquare-3x1-stride-1x2", [2, 2, 6, 6], [3, 2, 3, 1], [1, 2], [1, 0, 1, 0], [1, 1], 1, true),
                ("unequal-stride-2x3", [1, 3, 9, 10], [2, 3, 3, 3], [2, 3], [1, 1, 1, 1], [1, 1], 1, true),
                ("dilation-2", [1, 2, 9, 9], [3, 2, 3, 3], [1, 1], [0, 0, 0, 0], [2, 2], 1, true),
                ("dilation-1x2-pad", [2, 2, 8, 8], [2, 2, 3, 3], [2, 1], [2, 2, 2, 2], [1, 2], 1, true),
                ("groups-2", [2, 4, 6, 6], [6, 2, 3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 2, true),
                ("groups-3-stride-2", [1, 6, 7, 7], [3, 2, 3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 3, true),
                ("depthwise", [2, 4, 6, 6], [4, 1, 3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 4, true),
                ("depthwise-multiplier-2", [1, 3, 5, 5], [6, 1, 3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 3, true),
                ("no-bias", [2, 3, 5, 5], [2, 3, 3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, false),
                ("batch-4", [4, 2, 5, 5], [3, 2, 3, 3], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
                ("single-channel", [1, 1, 6, 6], [1, 1, 3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, true),
                ("many-channels-32", [1, 32, 4, 4], [8, 32, 3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, true),
                ("output-1x1", [2, 3, 3, 3], [4, 3, 3, 3], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
                ("kernel-1x1-pointwise", [2, 8, 4, 4], [5, 8, 1, 1], [1, 1], [0, 0, 0, 0], [1, 1], 1, true),
                ("kernel-7-stride-2-pad-3", [1, 3, 16, 16], [4, 3, 7, 7], [2, 2], [3, 3, 3, 3], [1, 1], 1, true),
                ("does-not-tile-7x7-stride-3", [1, 1, 7, 7], [1, 1, 3, 3], [3, 3], [0, 0, 0, 0], [1, 1], 1, true),
                ("does-not-tile-asymmetric", [1, 2, 8, 9], [2, 2, 3, 2], [3, 2], [0, 1, 0, 0], [1, 1], 1, true),
                ("padding-larger-than-kernel", [1, 1, 4, 4], [2, 1, 2, 2], [1, 1], [3, 3, 3, 3], [1, 1], 1, true),
                ("long-sums-3x3x64", [1, 64, 5, 5], [4, 64, 3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, true),
            ]
            for (name, xs, ws, s, p, d, g, bias) in shapes {
                add(id, "\(name)-\(short)",
                    Self.describe(id, "x \(xs), weight \(ws)\(bias ? ", bias" : ", no bias"), stride \(s), padding \(p), dilation \(d), groups \(g)"),
                    kind: kind, config: convConfig(s, p, d, g)) { r in
                    [named("x", Self.tensor(xs, kind, r)), named("weight", Self.tensor(ws, kind, r))]
                        + (bias ? [named("bias", Self.tensor([ws[0]], kind, r))] : [])
                }
            }
        }
        // The lecture's material.
        let demoX: [Double] = [0, 0, 2, 0, 2, 1, 2, 2, 2, 0, 0, 2, 1, 0, 0, 0, 2, 0, 2, 1, 1, 0, 2, 2, 0,
                               1, 0, 0, 2, 0, 1, 0, 1, 0, 1, 0, 0, 2, 1, 2, 1, 2, 1, 0, 0, 1, 2, 2, 0, 2,
                               0, 2, 2, 1, 0, 0, 2, 0, 0, 1, 1, 1, 1, 2, 1, 2, 0, 1, 2, 2, 2, 1, 1, 0, 0]
        let demoW: [Double] = [-1, 0, -1, 1, -1, 1, -1, 0, -1, 0, -1, 1, 1, 1, 1, -1, 1, -1, 0, 0, 0, -1, 1, -1, 1, 1, -1,
                               0, 1, 1, -1, -1, -1, 1, -1, 1, -1, 0, -1, 1, 1, 1, -1, 1, -1, 0, 1, 0, 0, 0, -1, 1, -1, 0]
        addExact(id, "cs231n-demo",
                 Self.describe(id, "The lecture's worked convolution example (cs231n's demo): 5x5x3 input, two 3x3x3 filters, zero pad 1, stride 2; output maps [-3,-1,0][-1,-8,2][3,0,3] and [1,4,2][-1,4,5][3,1,3]"),
                 tags: ["lecture"], config: convConfig([2, 2], [1, 1, 1, 1]),
                 upstream: t([1, 2, 3, 3], [1, -1, 2, 0, 1, -2, 1, 1, -1, 2, 0, -1, 1, 1, 0, -2, 1, 1]),
                 [named("x", t([1, 3, 5, 5], demoX)), named("weight", t([2, 3, 3, 3], demoW)), named("bias", t([2], [1, 0]))])
        add(id, "lecture-32x32x3-ten-5x5-pad-2",
            Self.describe(id, "The lecture's example: input 32x32x3, ten 5x5 filters, stride 1, pad 2: output 32x32x10, 5*5*3*10 + 10 = 760 parameters"),
            kind: .exactLowPrecision, tags: ["lecture"], config: convConfig([1, 1], [2, 2, 2, 2])) { r in
            [named("x", Self.tensor([1, 3, 32, 32], .exactLowPrecision, r)), named("weight", Self.tensor([10, 3, 5, 5], .exactLowPrecision, r)),
             named("bias", Self.tensor([10], .exactLowPrecision, r))]
        }
        // Magnitudes at the edges of double.
        for (name, scale) in [("huge-1e150", 1e150), ("tiny-1e-150", 1e-150), ("subnormal-products", 0x1p-540)] {
            add(id, name, Self.describe(id, "Inputs scaled by \(scale): products near the \(scale > 1 ? "top" : "bottom") of the double range"),
                kind: .fullDouble, tags: ["edge"], config: convConfig([1, 1], [1, 1, 1, 1])) { r in
                [named("x", t([1, 2, 4, 4], Self.values(32, .fullDouble, r).map { $0 * scale })),
                 named("weight", t([2, 2, 3, 3], Self.values(36, .fullDouble, r).map { $0 * scale })),
                 named("bias", t([2], [0, 0]))]
            }
        }
        addExact(id, "negative-zero", Self.describe(id, "Inputs of -0.0 and 0.0: every product is a signed zero"),
                 tags: ["edge"], config: convConfig([1, 1], [0, 0, 0, 0]),
                 [named("x", t([1, 1, 2, 2], [-0.0, 0.0, -0.0, -0.0])), named("weight", t([1, 1, 2, 2], [1, 1, -1, 1]))])
        add(id, "cancellation", Self.describe(id, "Terms of opposite sign that nearly cancel: a naive sum loses every digit"),
            kind: .fullDouble, tags: ["edge"], config: convConfig([1, 1], [0, 0, 0, 0])) { r in
            let a = Self.values(9, .fullDouble, r)
            return [named("x", t([1, 2, 3, 3], a.map { $0 * 1e8 } + a.map { $0 * 1e8 + Double(r.below(7)) })),
                    named("weight", t([1, 2, 3, 3], Array(repeating: 1, count: 9) + Array(repeating: -1, count: 9)))]
        }
    }

    // MARK: - Pooling

    mutating func pooling() {
        let matrix: [(String, [Int], [Int], [Int], [Int], [Int], Bool)] = [
            // name, x, kernel, stride, padding, dilation, ceil
            ("k2-s2", [2, 3, 6, 6], [2, 2], [2, 2], [0, 0, 0, 0], [1, 1], false),
            ("k3-s1-overlap", [1, 2, 6, 6], [3, 3], [1, 1], [0, 0, 0, 0], [1, 1], false),
            ("k3-s2-overlap-pad1", [2, 2, 7, 7], [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], false),
            ("k2-s3-gaps", [1, 2, 8, 8], [2, 2], [3, 3], [0, 0, 0, 0], [1, 1], false),
            ("k1-s1-one-element-windows", [1, 2, 3, 3], [1, 1], [1, 1], [0, 0, 0, 0], [1, 1], false),
            ("k2x3-s1x2", [1, 2, 6, 7], [2, 3], [1, 2], [0, 0, 0, 0], [1, 1], false),
            ("asymmetric-padding", [1, 2, 5, 6], [3, 3], [2, 2], [0, 1, 1, 0], [1, 1], false),
            ("dilation-2", [1, 2, 7, 7], [2, 2], [1, 1], [0, 0, 0, 0], [2, 2], false),
            ("ceil-mode", [1, 2, 7, 7], [2, 2], [2, 2], [0, 0, 0, 0], [1, 1], true),
            ("ceil-mode-pad1-s2", [1, 2, 6, 6], [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], true),
            ("ceil-mode-drops-window-in-padding", [1, 1, 5, 5], [2, 2], [2, 2], [1, 1, 1, 1], [1, 1], true),
            ("ceil-mode-stride-3", [1, 2, 8, 8], [3, 3], [3, 3], [1, 1, 1, 1], [1, 1], true),
            ("global", [2, 3, 5, 5], [5, 5], [1, 1], [0, 0, 0, 0], [1, 1], false),
            ("global-nonsquare", [1, 4, 3, 6], [3, 6], [1, 1], [0, 0, 0, 0], [1, 1], false),
            ("does-not-tile-7x7-stride-3", [1, 1, 7, 7], [3, 3], [3, 3], [0, 0, 0, 0], [1, 1], false),
            ("batch-3", [3, 2, 4, 4], [2, 2], [2, 2], [0, 0, 0, 0], [1, 1], false),
        ]
        for kind in ValueKind.original {
            let short = kind.short
            for (name, xs, k, s, p, d, ceil) in matrix {
                add(MaxPool2D.id, "\(name)-\(short)",
                    Self.describe(MaxPool2D.id, "x \(xs), kernel \(k), stride \(s), padding \(p), dilation \(d), ceil_mode \(ceil); no ties"),
                    kind: kind, config: poolConfig(k, s, p, d, ceil: ceil), avoid: Self.onKinkOrTie) { r in
                    [named("x", Self.tensor(xs, kind, r))]
                }
                for include in [false, true] where include == false || p != [0, 0, 0, 0] || ceil {
                    add(AvgPool2D.id, "\(name)-\(include ? "include-pad" : "exclude-pad")-\(short)",
                        Self.describe(AvgPool2D.id, "x \(xs), kernel \(k), stride \(s), padding \(p), dilation \(d), ceil_mode \(ceil), count_include_pad \(include)"),
                        kind: kind, config: poolConfig(k, s, p, d, ceil: ceil, include: include)) { r in
                        [named("x", Self.tensor(xs, kind, r))]
                    }
                }
            }
        }
        addExact(MaxPool2D.id, "lecture-2x2-stride-2",
                 Self.describe(MaxPool2D.id, "The lecture's max pool with 2x2 filters and stride 2: [[1,1,2,4],[5,6,7,8],[3,2,1,0],[1,2,3,4]] -> [[6,8],[3,4]]"),
                 tags: ["lecture"], config: poolConfig([2, 2], [2, 2], [0, 0, 0, 0]),
                 [named("x", t([1, 1, 4, 4], [1, 1, 2, 4, 5, 6, 7, 8, 3, 2, 1, 0, 1, 2, 3, 4]))])
        addExact(MaxPool2D.id, "tie-two-maxima",
                 Self.describe(MaxPool2D.id, "Tie: the window [1, 5; 5, 2] holds 5 twice; the first in row-major order (row 0, column 1) takes the whole gradient. Engines that split the gradient among tied maxima (TensorFlow's reduce_max) or route to the last differ by convention"),
                 tags: ["tie", "kink"], config: poolConfig([2, 2], [2, 2], [0, 0, 0, 0]),
                 upstream: t([1, 1, 1, 1], [1]), [named("x", t([1, 1, 2, 2], [1, 5, 5, 2]))])
        addExact(MaxPool2D.id, "tie-all-equal-overlapping",
                 Self.describe(MaxPool2D.id, "Tie: every cell equal, overlapping 2x2 windows at stride 1; each window routes to its top-left cell"),
                 tags: ["tie", "kink"], config: poolConfig([2, 2], [1, 1], [0, 0, 0, 0]),
                 [named("x", t([1, 1, 3, 3], Array(repeating: 0.5, count: 9)))])
        addExact(MaxPool2D.id, "negative-inputs-with-padding",
                 Self.describe(MaxPool2D.id, "All inputs negative with padding 1: a padded zero must never win"),
                 tags: ["edge"], config: poolConfig([2, 2], [2, 2], [1, 1, 1, 1]),
                 [named("x", t([1, 1, 3, 3], [-1, -2, -3, -4, -5, -6, -7, -8, -9]))])
        addExact(MaxPool2D.id, "negative-zero-tie",
                 Self.describe(MaxPool2D.id, "Tie between -0.0 and 0.0 (equal as numbers): the first, -0.0, wins and is the output"),
                 tags: ["tie", "kink", "edge"], config: poolConfig([1, 2], [1, 2], [0, 0, 0, 0]),
                 [named("x", t([1, 1, 1, 2], [-0.0, 0.0]))])
        addExact(MaxPool2D.id, "nan-in-window",
                 Self.describe(MaxPool2D.id, "NaN rule: the window [1, NaN; 3, NaN] outputs NaN and the first NaN (row 0, column 1) takes the whole gradient; the window [2, 5; 4, 0] has no NaN. PyTorch's CPU kernel routes to the last NaN, JAX to none"),
                 kind: .exactLowPrecision, tags: ["tie", "edge"], config: poolConfig([2, 2], [2, 2], [0, 0, 0, 0]),
                 upstream: t([1, 1, 1, 2], [1, 0.5]), [named("x", t([1, 1, 2, 4], [1, .nan, 2, 5, 3, .nan, 4, 0]))])
        addExact(AvgPool2D.id, "ceil-overhang-not-counted",
                 Self.describe(AvgPool2D.id, "1x4 input, kernel 1x3, stride 2, ceil mode, count_include_pad true: the second window holds 2 cells and 1 cell of ceil-mode overhang; it divides by 2, not 3 (PyTorch; ONNX Runtime has divided by 3)"),
                 tags: ["edge"], config: poolConfig([1, 3], [1, 2], [0, 0, 0, 0], ceil: true, include: true),
                 [named("x", t([1, 1, 1, 4], [1, 2, 3, 4]))])
        add(AvgPool2D.id, "subnormal-inputs", Self.describe(AvgPool2D.id, "Subnormal inputs: sums and quotients below 2^-1022"),
            kind: .fullDouble, tags: ["edge"], config: poolConfig([2, 2], [1, 1], [0, 0, 0, 0], include: false)) { r in
            [named("x", t([1, 1, 3, 3], Self.values(9, .fullDouble, r).map { $0 * 0x1p-1060 }))]
        }
    }

    // MARK: - Nonlinearities

    mutating func activations() {
        let shapes: [(String, [Int])] = [("nchw-2x3x4x4", [2, 3, 4, 4]), ("vector-7", [7]), ("matrix-3x5", [3, 5])]
        for kind in ValueKind.original {
            let short = kind.short
            for (sname, shape) in shapes {
                let x = { (r: SeededRandom) in [named("x", Self.tensor(shape, kind, r))] }
                for layer in [ReLU.id, Sigmoid.id, Tanh.id] {
                    add(layer, "\(sname)-\(short)", Self.describe(layer, "x \(shape)"), kind: kind, avoid: Self.onKinkOrTie, x)
                }
                for slope in [0.1, 0.01, 0.2] {
                    add(LeakyReLU.id, "slope-\(slope)-\(sname)-\(short)", Self.describe(LeakyReLU.id, "x \(shape), slope \(slope)"),
                        kind: kind, config: [("slope", num(slope))], avoid: Self.onKinkOrTie, x)
                }
                for alpha in [1.0, 0.5, 2.0] {
                    add(ELU.id, "alpha-\(alpha)-\(sname)-\(short)", Self.describe(ELU.id, "x \(shape), alpha \(alpha)"),
                        kind: kind, config: [("alpha", num(alpha))], avoid: Self.onKinkOrTie, x)
                }
                for beta in [1.0, 0.5, 1.75] {
                    add(Swish.id, "beta-\(beta)-\(sname)-\(short)", Self.describe(Swish.id, "x \(shape), beta \(beta)"),
                        kind: kind) { r in [named("x", Self.tensor(shape, kind, r)), named("beta", t([1], [beta]))] }
                }
                if shape.count >= 2 {
                    add(PReLU.id, "per-channel-\(sname)-\(short)", Self.describe(PReLU.id, "x \(shape), slope [\(shape[1])] per channel"),
                        kind: kind, avoid: Self.onKinkOrTie) { r in
                        [named("x", Self.tensor(shape, kind, r)),
                         named("slope", t([shape[1]], (0..<shape[1]).map { _ in Double(1 + r.below(31)) / 64 }))]
                    }
                }
                add(PReLU.id, "shared-\(sname)-\(short)", Self.describe(PReLU.id, "x \(shape), one shared slope [1]"),
                    kind: kind, avoid: Self.onKinkOrTie) { r in
                    [named("x", Self.tensor(shape, kind, r)), named("slope", t([1], [0.25]))]
                }
            }
        }
        // On the kinks, and at the edges of the range.
        let kinks: [Double] = [-1, -0.0, 0, 0.5]
        let kinkNote = "inputs exactly on the kink at 0 (and -0.0); the derivative there is the pinned convention"
        addExact(ReLU.id, "on-kink", Self.describe(ReLU.id, kinkNote), tags: ["kink"], [named("x", t([4], kinks))])
        addExact(LeakyReLU.id, "on-kink", Self.describe(LeakyReLU.id, kinkNote), tags: ["kink"], config: [("slope", num(0.1))], [named("x", t([4], kinks))])
        addExact(ELU.id, "on-kink-alpha-2", Self.describe(ELU.id, kinkNote + "; with alpha 2 the one-sided derivatives are 2 and 1"),
                 tags: ["kink"], config: [("alpha", num(2))], [named("x", t([4], kinks))])
        addExact(ELU.id, "on-kink-alpha-1", Self.describe(ELU.id, "alpha 1: ELU is differentiable at 0 (both sides 1)"),
                 tags: ["kink"], config: [("alpha", num(1))], [named("x", t([4], [-1, -0.0, 0, 0.5]))])
        addExact(PReLU.id, "on-kink", Self.describe(PReLU.id, kinkNote), tags: ["kink"],
                 [named("x", t([1, 2, 2], [-1, 0, -0.0, 0.5])), named("slope", t([2], [0.25, 0.125]))])
        let wide: [Double] = [-800, -40, -20, -1e-300, 0x1p-1074, 1e-8, 20, 40, 800]
        for layer in [Sigmoid.id, Tanh.id] {
            addExact(layer, "extremes", Self.describe(layer, "Large and tiny |x|: no overflow, no cancellation in the derivative"),
                     kind: .fullDouble, tags: ["edge"], [named("x", t([9], wide))])
        }
        addExact(ELU.id, "extremes", Self.describe(ELU.id, "Large and tiny |x|: expm1 keeps tiny negative x exact"),
                 kind: .fullDouble, tags: ["edge"], config: [("alpha", num(1))],
                 [named("x", t([9], [-800, -40, -20, -1e-300, 1e-300, 1e-8, 20, 40, 800]))])
        addExact(Swish.id, "extremes", Self.describe(Swish.id, "Large and tiny |x|"),
                 kind: .fullDouble, tags: ["edge"], [named("x", t([9], wide)), named("beta", t([1], [1]))])
        addExact(Sigmoid.id, "subnormal-and-negative-zero", Self.describe(Sigmoid.id, "Subnormal and signed-zero inputs"),
                 kind: .fullDouble, tags: ["edge"], [named("x", t([4], [-0.0, 0x1p-1074, -0x1p-1060, 0x1p-1030]))])

        // Maxout.
        for kind in ValueKind.original {
            let short = kind.short
            for (pieces, n, d, m) in [(2, 3, 4, 5), (3, 2, 6, 3), (4, 4, 3, 2), (2, 1, 1, 1), (5, 2, 8, 4)] {
                add(Maxout.id, "k\(pieces)-n\(n)-d\(d)-m\(m)-\(short)",
                    Self.describe(Maxout.id, "x [\(n),\(d)], \(pieces) pieces of \(m) units"),
                    kind: kind, config: [("pieces", .int(pieces))], avoid: Self.onKinkOrTie) { r in
                    [named("x", Self.tensor([n, d], kind, r)), named("weight", Self.tensor([pieces, m, d], kind, r)),
                     named("bias", Self.tensor([pieces, m], kind, r))]
                }
            }
        }
        addExact(Maxout.id, "tie-between-pieces",
                 Self.describe(Maxout.id, "Tie: pieces 0 and 1 are identical, so piece 0 (the lowest) wins and takes the whole gradient"),
                 tags: ["tie", "kink"], config: [("pieces", .int(2))],
                 [named("x", t([1, 2], [0.5, -1])), named("weight", t([2, 1, 2], [1, 2, 1, 2])), named("bias", t([2, 1], [0.25, 0.25]))])
    }

    // MARK: - Fully connected

    mutating func fullyConnected() {
        for kind in ValueKind.original {
            let short = kind.short
            for (n, d, m) in [(1, 1, 1), (2, 3, 4), (4, 10, 3), (3, 64, 10), (1, 576, 2), (2, 4608, 1), (8, 5, 7)] {
                add(Linear.id, "n\(n)-d\(d)-m\(m)-\(short)", Self.describe(Linear.id, "x [\(n),\(d)], weight [\(m),\(d)], bias [\(m)]"),
                    kind: kind) { r in
                    [named("x", Self.tensor([n, d], kind, r)), named("weight", Self.tensor([m, d], kind, r)), named("bias", Self.tensor([m], kind, r))]
                }
            }
        }
        add(Linear.id, "cancellation", Self.describe(Linear.id, "Rows that cancel to a tiny remainder: naive summation loses every digit"),
            kind: .fullDouble, tags: ["edge"]) { r in
            let a = Self.values(8, .fullDouble, r)
            return [named("x", t([1, 16], a.map { $0 * 1e16 } + a.map { -$0 * 1e16 + r.signedUnit() })),
                    named("weight", t([1, 16], Array(repeating: 1, count: 16))), named("bias", t([1], [0]))]
        }
    }

    // MARK: - Softmax

    mutating func softmax() {
        let shapes: [([Int], Int)] = [([5], 0), ([3, 4], 1), ([3, 4], 0), ([3, 4], -1), ([2, 3, 4], 1), ([2, 3, 2, 2], 1), ([2, 3, 2, 2], 3), ([2, 3, 2, 2], -4)]
        for kind in ValueKind.original {
            let short = kind.short
            for (shape, axis) in shapes {
                for layer in [Softmax.id, LogSoftmax.id] {
                    add(layer, "rank\(shape.count)-\(shape.map(String.init).joined(separator: "x"))-axis\(axis)-\(short)",
                        Self.describe(layer, "x \(shape), axis \(axis)"), kind: kind, config: [("axis", .int(axis))]) { r in
                        [named("x", Self.tensor(shape, kind, r))]
                    }
                }
            }
        }
        for layer in [Softmax.id, LogSoftmax.id] {
            addExact(layer, "logits-near-1000", Self.describe(layer, "Logits near +1000 and -1000: exp would overflow without subtracting the maximum"),
                     kind: .exactLowPrecision, tags: ["edge"], config: [("axis", .int(1))],
                     [named("x", t([2, 3], [1000, 996, 992, -1000, -996, -1008]))])
            addExact(layer, "negative-infinity", Self.describe(layer, "-Infinity entries (masked logits) get probability 0"),
                     kind: .exactLowPrecision, tags: ["edge"], config: [("axis", .int(1))],
                     [named("x", t([2, 3], [0, -.infinity, 1, -.infinity, 2, -.infinity]))])
            addExact(layer, "one-element", Self.describe(layer, "A slice of one element: probability 1"),
                     tags: ["edge"], config: [("axis", .int(1))], [named("x", t([2, 1], [3, -7]))])
        }
    }

    // MARK: - Losses

    mutating func losses() {
        let sizes: [(Int, Int)] = [(1, 2), (4, 2), (3, 5), (8, 10), (2, 1000)]
        for kind in ValueKind.original {
            let short = kind.short
            for (n, c) in sizes {
                for reduction in Reduction.allCases {
                    add(SoftmaxCrossEntropy.id, "n\(n)-c\(c)-\(reduction.rawValue)-\(short)",
                        Self.describe(SoftmaxCrossEntropy.id, "scores [\(n),\(c)], reduction \(reduction.rawValue)"),
                        kind: kind, config: [("reduction", .string(reduction.rawValue))],
                        labels: { r in (0..<n).map { _ in r.below(c) } }) { r in
                        [named("scores", Self.tensor([n, c], kind, r))]
                    }
                    for margin in [1.0, 0.5, 2.0] where margin == 1 || (n, c) == (3, 5) || (n, c) == (8, 10) {
                        add(MulticlassHinge.id, "n\(n)-c\(c)-margin-\(margin)-\(reduction.rawValue)-\(short)",
                            Self.describe(MulticlassHinge.id, "scores [\(n),\(c)], margin \(margin), reduction \(reduction.rawValue)"),
                            kind: kind, config: [("margin", num(margin)), ("reduction", .string(reduction.rawValue))],
                            labels: { r in (0..<n).map { _ in r.below(c) } }, avoid: Self.onKinkOrTie) { r in
                            [named("scores", Self.tensor([n, c], kind, r))]
                        }
                    }
                }
            }
        }
        addExact(MulticlassHinge.id, "margin-exactly-zero",
                 Self.describe(MulticlassHinge.id, "Scores [2, 1, 3] with label 0 and margin 1: the term for class 1 is exactly 0 (inactive, gradient 0), class 2 is active: loss 2"),
                 tags: ["kink"], config: [("margin", num(1)), ("reduction", .string("sum"))], labels: [0],
                 [named("scores", t([1, 3], [2, 1, 3]))])
        addExact(MulticlassHinge.id, "lecture-cat-car-frog",
                 Self.describe(MulticlassHinge.id, "cs231n's SVM example: scores cat [3.2, 5.1, -1.7] (label 0), car [1.3, 4.9, 2.0] (label 1), frog [2.2, 2.5, -3.1] (label 2), margin 1: losses 2.9, 0, 12.9, mean 5.27 (rounded)"),
                 kind: .fullDouble, tags: ["lecture"], config: [("margin", num(1)), ("reduction", .string("mean"))], labels: [0, 1, 2],
                 [named("scores", t([3, 3], [3.2, 5.1, -1.7, 1.3, 4.9, 2.0, 2.2, 2.5, -3.1]))])
        addExact(SoftmaxCrossEntropy.id, "logits-near-1000",
                 Self.describe(SoftmaxCrossEntropy.id, "Logits near +-1000: log-sum-exp with the maximum subtracted"),
                 tags: ["edge"], config: [("reduction", .string("mean"))], labels: [0, 2],
                 [named("scores", t([2, 3], [1000, 996, 992, -1000, -996, -1008]))])
        addExact(SoftmaxCrossEntropy.id, "confident-correct",
                 Self.describe(SoftmaxCrossEntropy.id, "A confident correct prediction: L = log1p(e^-40) ~ 4.2e-18 must not round to 0; p_y - 1 ~ -4.2e-18 must not cancel to 0"),
                 kind: .exactLowPrecision, tags: ["edge"], config: [("reduction", .string("sum"))], labels: [0],
                 [named("scores", t([1, 2], [40, 0]))])
        addExact(SoftmaxCrossEntropy.id, "negative-infinity-logit",
                 Self.describe(SoftmaxCrossEntropy.id, "A -Infinity logit on a wrong class has probability 0"),
                 tags: ["edge"], config: [("reduction", .string("sum"))], labels: [1],
                 [named("scores", t([1, 3], [-.infinity, 0.5, 1]))])
    }
}
