import CNNReference

// The edges where correct rounding needs more than double-double (see Certified.swift):
// log S near 1, intermediates beyond the double range before the final multiply,
// subnormal results, exact zeros from cancellation, signed zeros and NaN rules, and
// infinite upstreams. Each case is one that an uncertified evaluation got wrong.
extension Catalogue {
    mutating func certifiedEdges() {
        let axis1: [(String, JSON)] = [("axis", .int(1))]
        // log S = log1p(e^−g) ≈ 1e-16 for g ≈ 37: Newton on log reaches only ~2⁻¹⁰⁶ absolutely.
        let gaps: [Double] = [37.42505770439283, 20.5, 23.75, 29.125, 33.0625, 41.96875, 45.5, 49.9375]
        let nearOne: [Double] = gaps.flatMap { g -> [Double] in [0, -g] }
        addExact(LogSoftmax.id, "log-sum-near-1", Self.describe(LogSoftmax.id,
                 "Rows [0, -g] with g 20...50: log S = log1p(e^-g) is about 1e-9 to 1e-22, so the maximum's log-probability is -log S; an evaluation accurate to 2^-106 absolutely is off by more than an ulp"),
                 kind: .fullDouble, tags: ["edge"], config: axis1,
                 upstream: t([8, 2], [1, 0, 1, -1, 0.5, 0.5, -2, 1, 1, 1, 3, -3, 0.25, 0, 1, 1e-300]),
                 [named("x", t([8, 2], nearOne))])
        addExact(SoftmaxCrossEntropy.id, "log-sum-near-1", Self.describe(SoftmaxCrossEntropy.id,
                 "Rows [0, -g] with g 20...50, label 0: each row's loss is log1p(e^-g), about 1e-9 to 1e-22; p_0 - 1 = -e^-g/(1 + e^-g) must not cancel"),
                 kind: .fullDouble, tags: ["edge"], config: [("reduction", .string("sum"))], labels: Array(repeating: 0, count: 8),
                 [named("scores", t([8, 2], nearOne))])

        // Logit gaps past 708: e^−gap is subnormal or below every double, yet p > 0.
        let farGaps: [Double] = [0, -709.5, 0, -745.25, 0, -800, 1000, -1000]
        for layer in [Softmax.id, LogSoftmax.id] {
            addExact(layer, "gap-beyond-708", Self.describe(layer,
                     "Logit gaps 709.5, 745.25, 800 and 2000: the small probabilities are subnormal or below the smallest double (softmax gives 0 or a subnormal, log-softmax the exact -gap - log S)"),
                     kind: .fullDouble, tags: ["edge"], config: axis1,
                     upstream: t([4, 2], [1, -1, 1e300, 1, -1.7e308, 2, 1, 1]), [named("x", t([4, 2], farGaps))])
        }
        addExact(Softmax.id, "uniform-upstream", Self.describe(Softmax.id,
                 "An upstream that is uniform within each slice: the exact gradient p_k(dy_k - sum_j p_j dy_j) is 0 (+0); a rounded dot product leaves values like 1e-33"),
                 kind: .fullDouble, tags: ["edge"], config: axis1,
                 upstream: t([3, 4], [0.7, 0.7, 0.7, 0.7, -3.1, -3.1, -3.1, -3.1, 1e300, 1e300, 1e300, 1e300]),
                 [named("x", t([3, 4], [0.5, -3, 2, 1.25, 40, -40, 0.1, 7, -700, 3, 3, 1e-300]))])
        for layer in [Softmax.id, LogSoftmax.id] {
            addExact(layer, "infinite-upstream", Self.describe(layer,
                     "Infinite upstreams, by IEEE's rules on the exact formula: p_k > 0 for every finite logit (even a gap of 800), p = 0 for -Infinity; inf - inf and inf*0 are NaN; infinities of both signs make the slice NaN"),
                     kind: .fullDouble, tags: ["edge"], config: axis1,
                     upstream: t([4, 3], [.infinity, 1, -2, -.infinity, 0, 3, .infinity, -.infinity, 1, 1, .infinity, 2]),
                     [named("x", t([4, 3], [0.5, -800, 2, 1, 2, 3, 0, 1, 2, 0, -.infinity, 4]))])
        }

        // Intermediates that under- or overflow before the multiply by a huge or tiny upstream.
        addExact(Sigmoid.id, "huge-upstream", Self.describe(Sigmoid.id,
                 "sigma'(x) = sigma(x)sigma(-x) below the smallest double times an upstream near 1e300 or 1.7e308: sigma'(800)*1e300 = 3.67e-48, not 0"),
                 kind: .fullDouble, tags: ["edge"],
                 upstream: t([6], [1e300, 1e300, -1.5e308, 1.7e308, 1e-300, -1e300]),
                 [named("x", t([6], [-730, 800, -20, 3, 0.5, 1000]))])
        addExact(Tanh.id, "huge-upstream", Self.describe(Tanh.id,
                 "sech^2(x) below the smallest double times an upstream near 1e300 or 1.7e308: tanh'(400)*1e300 = 1.47e-47, not 0; 1.5e308*sech^2(0.25) is finite"),
                 kind: .fullDouble, tags: ["edge"],
                 upstream: t([6], [1e300, -1e300, 1.5e308, 1.7e308, 1e-300, 1.5e308]),
                 [named("x", t([6], [400, -400, 177.5, 20, 0.25, 0.25]))])
        addExact(Swish.id, "subnormal-results", Self.describe(Swish.id,
                 "x near -745: x*sigma(x) is subnormal or below the smallest double, and the gradient times a huge upstream is finite"),
                 kind: .fullDouble, tags: ["edge"],
                 upstream: t([6], [1, 1e300, -1.7e308, 1, 1e300, 1]),
                 [named("x", t([6], [-745, -740.5, -744.9, -710.25, -708, -1.25])), named("beta", t([1], [1]))])
        addExact(ELU.id, "subnormal-gradient", Self.describe(ELU.id,
                 "x where e^x is subnormal or below the smallest double: alpha*e^x*dy with upstreams up to 1.7e308"),
                 kind: .fullDouble, tags: ["edge"], config: [("alpha", num(1))],
                 upstream: t([5], [1e300, 1, 1e200, -1.7e308, 1]),
                 [named("x", t([5], [-745, -740, -720.5, -709, -744.5]))])
        addExact(Swish.id, "symmetric-beta-gradient", Self.describe(Swish.id,
                 "Inputs +-a with upstreams +-d: dL/dbeta = sum dy x^2 sigma(bx)sigma(-bx) is exactly 0 (+0); a rounded sum leaves about 1e-32"),
                 kind: .fullDouble, tags: ["edge"],
                 upstream: t([6], [0.3, -0.3, -1.7, 1.7, 1e300, -1e300]),
                 [named("x", t([6], [1.1, -1.1, 2.75, -2.75, 0.5, -0.5])), named("beta", t([1], [1.5]))])

        // Signed zeros and NaN by IEEE's rules applied to the exact formula (SCHEMA.md).
        addExact(Tanh.id, "signed-zeros", Self.describe(Tanh.id,
                 "tanh(-0) = -0 and tanh(+0) = +0; an upstream of -0 gives a gradient of -0"),
                 kind: .fullDouble, tags: ["edge"], upstream: t([4], [1, -0.0, 0, -1]),
                 [named("x", t([4], [-0.0, 0, -0.0, -0x1p-1074]))])
        addExact(ELU.id, "signed-zeros", Self.describe(ELU.id,
                 "ELU(-0) = alpha*(-0) = -0 (IEEE and PyTorch), ELU(+0) = +0; x = 0 is the kink (derivative alpha, the negative branch)"),
                 kind: .fullDouble, tags: ["edge", "kink"], config: [("alpha", num(1))], upstream: t([4], [1, -0.0, 0, -1]),
                 [named("x", t([4], [-0.0, 0, -0.0, -0x1p-1074]))])
        addExact(MulticlassHinge.id, "nan-score", Self.describe(MulticlassHinge.id,
                 "A NaN score makes the loss NaN (max(0, NaN) is not 0 here) and the gradients of the two scores of its term NaN"),
                 kind: .fullDouble, tags: ["edge"], config: [("margin", num(1)), ("reduction", .string("mean"))], labels: [1, 2],
                 [named("scores", t([2, 3], [.nan, 0, 2, 1, 2, 3]))])
        addExact(MulticlassHinge.id, "mean-of-three", Self.describe(MulticlassHinge.id,
                 "Reduction mean over 3 rows: each gradient is k/3 rounded once (k the row's count of active terms)"),
                 kind: .fullDouble, tags: ["edge"], config: [("margin", num(1)), ("reduction", .string("mean"))], labels: [0, 1, 2],
                 [named("scores", t([3, 3], [0.5, 1, 1.25, 3, 0.25, 2.5, 1, 1, -0.5]))])
    }
}
