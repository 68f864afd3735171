import CNNReference
import Foundation
import GradientCheck

extension Catalogue {
    // MARK: - Per-format families

    /// Every layer again, on inputs that use each low-precision format's whole
    /// significand: a float32 claim is judged on cases TF32 and bfloat16 would
    /// round, a float16 claim on cases bfloat16 would round.
    mutating func perFormatFamilies() {
        for kind in ValueKind.perFormat {
            let k = kind.short
            func x(_ shape: [Int]) -> (SeededRandom) -> [NamedTensor] { { r in [named("x", Self.tensor(shape, kind, r))] } }
            let convs: [(String, [Int], [Int], [Int], [Int], Int)] = [
                // name, x, weight, stride, padding, groups
                ("k3-s1-pad1", [2, 3, 7, 7], [4, 3, 3, 3], [1, 1], [1, 1, 1, 1], 1),
                ("k5-s2-asym", [1, 2, 9, 9], [3, 2, 5, 5], [2, 2], [0, 1, 2, 1], 1),
                ("groups-2-s2", [1, 4, 7, 7], [4, 2, 3, 3], [2, 2], [1, 1, 1, 1], 2),
                ("long-sums-3x3x32", [1, 32, 5, 5], [4, 32, 3, 3], [1, 1], [1, 1, 1, 1], 1),
            ]
            for (name, xs, ws, s, p, g) in convs {
                add(Conv2D.id, "\(name)-\(k)", Self.describe(Conv2D.id, "x \(xs), weight \(ws), bias, stride \(s), padding \(p), groups \(g)"),
                    kind: kind, config: convConfig(s, p, [1, 1], g)) { r in
                    [named("x", Self.tensor(xs, kind, r)), named("weight", Self.tensor(ws, kind, r)), named("bias", Self.tensor([ws[0]], kind, r))]
                }
            }
            for (name, xs, kernel, s, p) in [("k2-s2", [2, 3, 6, 6], [2, 2], [2, 2], [0, 0, 0, 0]),
                                              ("k3-s2-overlap-pad1", [1, 2, 7, 7], [3, 3], [2, 2], [1, 1, 1, 1])] {
                add(MaxPool2D.id, "\(name)-\(k)", Self.describe(MaxPool2D.id, "x \(xs), kernel \(kernel), stride \(s), padding \(p); no ties"),
                    kind: kind, config: poolConfig(kernel, s, p), avoid: Self.onKinkOrTie, x(xs))
                for include in [false, true] where include == false || p != [0, 0, 0, 0] {
                    add(AvgPool2D.id, "\(name)-\(include ? "include-pad" : "exclude-pad")-\(k)",
                        Self.describe(AvgPool2D.id, "x \(xs), kernel \(kernel), stride \(s), padding \(p), count_include_pad \(include)"),
                        kind: kind, config: poolConfig(kernel, s, p, include: include), x(xs))
                }
            }
            let shape = [2, 3, 4, 4]
            for layer in [ReLU.id, Sigmoid.id, Tanh.id] {
                add(layer, "nchw-2x3x4x4-\(k)", Self.describe(layer, "x \(shape)"), kind: kind, avoid: Self.onKinkOrTie, x(shape))
            }
            add(LeakyReLU.id, "slope-0.01-nchw-2x3x4x4-\(k)", Self.describe(LeakyReLU.id, "x \(shape), slope 0.01"),
                kind: kind, config: [("slope", num(0.01))], avoid: Self.onKinkOrTie, x(shape))
            add(ELU.id, "alpha-1.0-nchw-2x3x4x4-\(k)", Self.describe(ELU.id, "x \(shape), alpha 1"),
                kind: kind, config: [("alpha", num(1))], avoid: Self.onKinkOrTie, x(shape))
            add(Swish.id, "beta-1.75-nchw-2x3x4x4-\(k)", Self.describe(Swish.id, "x \(shape), beta 1.75"), kind: kind) { r in
                [named("x", Self.tensor(shape, kind, r)), named("beta", t([1], [1.75]))]
            }
            add(PReLU.id, "per-channel-nchw-2x3x4x4-\(k)", Self.describe(PReLU.id, "x \(shape), slope [3] per channel"),
                kind: kind, avoid: Self.onKinkOrTie) { r in
                [named("x", Self.tensor(shape, kind, r)), named("slope", Self.tensor([3], kind, r).magnitudes)]
            }
            add(Maxout.id, "k3-n2-d6-m3-\(k)", Self.describe(Maxout.id, "x [2,6], 3 pieces of 3 units"),
                kind: kind, config: [("pieces", .int(3))], avoid: Self.onKinkOrTie) { r in
                [named("x", Self.tensor([2, 6], kind, r)), named("weight", Self.tensor([3, 3, 6], kind, r)),
                 named("bias", Self.tensor([3, 3], kind, r))]
            }
            for (n, d, m) in [(2, 3, 4), (4, 10, 3), (3, 64, 10), (1, 576, 2)] {
                add(Linear.id, "n\(n)-d\(d)-m\(m)-\(k)", Self.describe(Linear.id, "x [\(n),\(d)], weight [\(m),\(d)], bias [\(m)]"),
                    kind: kind) { r in
                    [named("x", Self.tensor([n, d], kind, r)), named("weight", Self.tensor([m, d], kind, r)), named("bias", Self.tensor([m], kind, r))]
                }
            }
            for (xs, axis) in [([3, 4], 1), ([2, 3, 2, 2], 1)] {
                for layer in [Softmax.id, LogSoftmax.id] {
                    add(layer, "rank\(xs.count)-\(xs.map(String.init).joined(separator: "x"))-axis\(axis)-\(k)",
                        Self.describe(layer, "x \(xs), axis \(axis)"), kind: kind, config: [("axis", .int(axis))], x(xs))
                }
            }
            for (n, c, reduction) in [(4, 5, Reduction.mean), (8, 10, Reduction.sum)] {
                add(SoftmaxCrossEntropy.id, "n\(n)-c\(c)-\(reduction.rawValue)-\(k)",
                    Self.describe(SoftmaxCrossEntropy.id, "scores [\(n),\(c)], reduction \(reduction.rawValue)"),
                    kind: kind, config: [("reduction", .string(reduction.rawValue))],
                    labels: { r in (0..<n).map { _ in r.below(c) } }) { r in [named("scores", Self.tensor([n, c], kind, r))] }
                add(MulticlassHinge.id, "n\(n)-c\(c)-margin-1.0-\(reduction.rawValue)-\(k)",
                    Self.describe(MulticlassHinge.id, "scores [\(n),\(c)], margin 1, reduction \(reduction.rawValue)"),
                    kind: kind, config: [("margin", num(1)), ("reduction", .string(reduction.rawValue))],
                    labels: { r in (0..<n).map { _ in r.below(c) } }, avoid: Self.onKinkOrTie) { r in
                    [named("scores", Self.tensor([n, c], kind, r))]
                }
            }
        }
    }

    // MARK: - Probes

    /// Cases aimed at the bugs real engines have had (each documented in SCHEMA.md
    /// with what it reveals), tagged `probe`.
    mutating func probes() {
        let probe = ["probe"]
        let ones = { (n: Int) in [Double](repeating: 1, count: n) }
        // TF32 input rounding (pytorch#53635): 1024.5 needs 12 significant bits.
        addExact(Linear.id, "tf32-input-rounding-1024.5",
                 Self.describe(Linear.id, "x [[1024.5]], weight [[1]], bias [0]: y = 1024.5 exactly in float32; TF32 rounds 1024.5 to 1024 (11 bits), an error of 0.5"),
                 kind: .exactFloat32, tags: probe, upstream: t([1, 1], [1]),
                 [named("x", t([1, 1], [1024.5])), named("weight", t([1, 1], [1])), named("bias", t([1], [0]))])
        addExact(Conv2D.id, "tf32-input-rounding-1+2^-12",
                 Self.describe(Conv2D.id, "x [1,1,3,3] of 1 + 2^-12 (13 significant bits), weight of ones: y = 9 + 9*2^-12 in float32; TF32 gives 9"),
                 kind: .exactFloat32, tags: probe, config: convConfig([1, 1], [0, 0, 0, 0]), upstream: t([1, 1, 1, 1], [1 + 0x1p-12]),
                 [named("x", t([1, 1, 3, 3], Array(repeating: 1 + 0x1p-12, count: 9))), named("weight", t([1, 1, 3, 3], ones(9)))])
        // Accumulation in the storage format: float16 stalls at 2048, bfloat16 at 256.
        for (format, n, stall) in [("float16", 4096, 2048), ("bfloat16", 512, 256)] {
            addExact(Linear.id, "\(format)-accumulation-\(n)-ones",
                     Self.describe(Linear.id, "x and weight [1,\(n)] of ones, bias [0]: y = \(n); a sum accumulated in \(format) stalls at \(stall) (\(stall) + 1 rounds back to \(stall))"),
                     kind: .exactBfloat16, tags: probe, upstream: t([1, 1], [1]),
                     [named("x", t([1, n], ones(n))), named("weight", t([1, n], ones(n))), named("bias", t([1], [0]))])
        }
        addExact(Conv2D.id, "float16-accumulation-512x3x3-ones",
                 Self.describe(Conv2D.id, "x [1,512,3,3] and weight [1,512,3,3] of ones, no padding: y = 4608 exactly; a float16 accumulator stalls at 2048"),
                 kind: .exactBfloat16, tags: probe, config: convConfig([1, 1], [0, 0, 0, 0]), upstream: t([1, 1, 1, 1], [1]),
                 [named("x", t([1, 512, 3, 3], ones(4608))), named("weight", t([1, 512, 3, 3], ones(4608)))])
        // Summation order: a large term, ones, its negation, ones.
        for (big, bits, kind) in [(0x1p11, 11, ValueKind.exactFloat16), (0x1p24, 24, .exactFloat32), (0x1p53, 53, .exactFloat32)] {
            let x = [big] + ones(100) + [-big] + ones(100)
            addExact(Linear.id, "summation-order-2^\(bits)-among-ones",
                     Self.describe(Linear.id, "x = [2^\(bits), 100 ones, -2^\(bits), 100 ones], weight of ones: y = 200 exactly; left to right in a \(bits)-bit significand the first 100 ones are lost (y = 100), within the worst-case bound but visible in error/bound"),
                     kind: kind, tags: probe, upstream: t([1, 1], [1]),
                     [named("x", t([1, 202], x)), named("weight", t([1, 202], ones(202))), named("bias", t([1], [0]))])
        }
        // Softmax widths, odd ones between 513 and 1023 included (pytorch#147284).
        for width in [1, 2, 3, 7, 16, 33, 64, 127, 257, 513, 555, 777, 1023, 1024, 1025, 2047, 4096] {
            let rows = width <= 1024 ? 2 : 1
            for kind in width == 555 || width == 1024 || width == 4096 ? [ValueKind.fullDouble, .exactFloat32] : [.fullDouble] {
                add(Softmax.id, "width-\(width)-\(kind.short)", Self.describe(Softmax.id, "x [\(rows),\(width)], axis 1: vectorised kernels change path with the width"),
                    kind: kind, tags: probe, config: [("axis", .int(1))]) { r in [named("x", Self.tensor([rows, width], kind, r))] }
            }
        }
        add(LogSoftmax.id, "width-777-double", Self.describe(LogSoftmax.id, "x [2,777], axis 1"),
            kind: .fullDouble, tags: probe, config: [("axis", .int(1))]) { r in [named("x", Self.tensor([2, 777], .fullDouble, r))] }
        // Grouped convolutions with stride 2 (pytorch#50042) and stride remainders for dx.
        let convs: [(String, [Int], [Int], [Int], [Int], Int, String)] = [
            ("groups-2-stride-2", [2, 4, 7, 7], [6, 2, 3, 3], [2, 2], [1, 1, 1, 1], 2, "2 groups"),
            ("groups-C-stride-2", [1, 8, 7, 7], [8, 1, 3, 3], [2, 2], [1, 1, 1, 1], 8, "depthwise, groups = C = 8"),
            ("groups-24-stride-2", [1, 48, 6, 6], [48, 2, 3, 3], [2, 2], [1, 1, 1, 1], 24, "24 groups of 2 channels"),
            ("stride-remainder-s2-8x8", [1, 2, 8, 8], [3, 2, 3, 3], [2, 2], [0, 0, 0, 0], 1, "(8 - 3) mod 2 = 1: the last row and column get no gradient"),
            ("stride-remainder-s3-11x11-pad1", [1, 2, 11, 11], [2, 2, 3, 3], [3, 3], [1, 1, 1, 1], 1, "(11 + 2 - 3) mod 3 = 1"),
            ("stride-remainder-s3x2-9x8", [2, 1, 9, 8], [2, 1, 2, 3], [3, 2], [0, 0, 0, 0], 1, "(9 - 2) mod 3 = 1 and (8 - 3) mod 2 = 1"),
        ]
        for (name, xs, ws, s, p, g, what) in convs {
            add(Conv2D.id, "\(name)-f32", Self.describe(Conv2D.id, "x \(xs), weight \(ws), bias, stride \(s), padding \(p), groups \(g): \(what)"),
                kind: .exactFloat32, tags: probe, config: convConfig(s, p, [1, 1], g)) { r in
                [named("x", Self.tensor(xs, .exactFloat32, r)), named("weight", Self.tensor(ws, .exactFloat32, r)),
                 named("bias", Self.tensor([ws[0]], .exactFloat32, r))]
            }
        }
        // Non-square pool outputs.
        for (name, xs, kernel, s) in [("nonsquare-output-3x5", [1, 2, 6, 11], [2, 3], [2, 2]), ("nonsquare-output-5x2", [2, 1, 7, 4], [3, 3], [1, 1])] {
            add(MaxPool2D.id, "\(name)-f32", Self.describe(MaxPool2D.id, "x \(xs), kernel \(kernel), stride \(s): rows and columns of the output differ in number; no ties"),
                kind: .exactFloat32, tags: probe, config: poolConfig(kernel, s, [0, 0, 0, 0]), avoid: Self.onKinkOrTie) { r in
                [named("x", Self.tensor(xs, .exactFloat32, r))]
            }
            add(AvgPool2D.id, "\(name)-f32", Self.describe(AvgPool2D.id, "x \(xs), kernel \(kernel), stride \(s): rows and columns of the output differ in number"),
                kind: .exactFloat32, tags: probe, config: poolConfig(kernel, s, [0, 0, 0, 0], include: false)) { r in
                [named("x", Self.tensor(xs, .exactFloat32, r))]
            }
        }
        // Square weights: a transposed dW has the right shape and must still fail.
        for (n, d) in [(3, 4), (2, 7), (5, 16)] {
            add(Linear.id, "square-n\(n)-d\(d)-m\(d)-f32", Self.describe(Linear.id, "x [\(n),\(d)], square weight [\(d),\(d)], bias: a transposed dW has the right shape and the wrong values"),
                kind: .exactFloat32, tags: probe) { r in
                [named("x", Self.tensor([n, d], .exactFloat32, r)), named("weight", Self.tensor([d, d], .exactFloat32, r)),
                 named("bias", Self.tensor([d], .exactFloat32, r))]
            }
        }
        // x − max below −708: e^(x − m) underflows to subnormals and to 0.
        let deep = t([2, 5], [0, -750, -1000, -709.5, -2, 3, -720, -745.25, 1, 2])
        for layer in [Softmax.id, LogSoftmax.id] {
            addExact(layer, "gaps-beyond-708", Self.describe(layer, "Logits 708 to 1000 below the maximum: e^(x - m) is subnormal or 0, log-softmax stays exact (x - m - log S)"),
                     kind: .exactFloat32, tags: probe + ["edge"], config: [("axis", .int(1))], [named("x", deep)])
        }
        addExact(SoftmaxCrossEntropy.id, "gaps-beyond-708", Self.describe(SoftmaxCrossEntropy.id, "Logits 708 to 1000 below the maximum, labels on a deep and on a top logit"),
                 kind: .exactFloat32, tags: probe + ["edge"], config: [("reduction", .string("sum"))], labels: [3, 2], [named("scores", deep)])
        // Every elementwise layer far from 0: 20 < |x| < 745, where derivative formulas lose
        // digits and σ′, tanh′, e^x become subnormal (the transcendental kernels certify the
        // rounding there, and the oracle uses the accurate forms at a sized precision).
        for kind in [ValueKind.fullDouble, .exactFloat32] {
            let range = { (r: SeededRandom) -> [NamedTensor] in
                let v = (0..<64).map { _ in r.sign() * exp(log(20.0) + r.unit() * (log(745.0) - log(20.0))) }
                return [named("x", t([64], kind == .fullDouble ? v : v.map { Double(Float($0)) }))]
            }
            let what = "64 values with 20 < |x| < 745, log-uniform: saturated outputs, derivatives down to e^-745 (subnormal)"
            for layer in [ReLU.id, Sigmoid.id, Tanh.id] {
                add(layer, "range-20-745-\(kind.short)", Self.describe(layer, what), kind: kind, tags: probe, range)
            }
            add(LeakyReLU.id, "range-20-745-\(kind.short)", Self.describe(LeakyReLU.id, what + ", slope 0.01"),
                kind: kind, tags: probe, config: [("slope", num(0.01))], range)
            add(ELU.id, "range-20-745-\(kind.short)", Self.describe(ELU.id, what + ", alpha 1"),
                kind: kind, tags: probe, config: [("alpha", num(1))], range)
            add(Swish.id, "range-20-745-\(kind.short)", Self.describe(Swish.id, what + ", beta 1"), kind: kind, tags: probe) { r in
                range(r) + [named("beta", t([1], [1]))]
            }
            add(PReLU.id, "range-20-745-\(kind.short)", Self.describe(PReLU.id, what + ", one shared slope 0.25"), kind: kind, tags: probe) { r in
                range(r) + [named("slope", t([1], [0.25]))]
            }
        }
    }
}

extension Tensor {
    var magnitudes: Tensor { Tensor(shape: shape, scalars: scalars.map(\.magnitude)) }
}
