import CMPFR
import CNNReference

/// An independent evaluation of every layer with MPFR, written from the mathematical
/// definitions as plain loops (scatter where the kernels gather), sharing no code
/// with the `Double` kernels, in the accurate forms (σ(x)σ(−x), 1/cosh², −Σ_{j≠y} p_j,
/// log1p of the terms beside the maximum), at a precision sized to the case's inputs
/// (`bits`) and MPFR's widest exponent range. Each value is rounded to `Double` only
/// when it is compared.
public enum Oracle {
    typealias Values = [BigFloat]

    /// The taps t of 0..<kernel whose positions start + t·step lie in low..<high, found by
    /// division (so a huge kernel over a small input costs nothing).
    static func within(_ start: Int, _ step: Int, _ kernel: Int, _ low: Int, _ high: Int) -> Range<Int> {
        func ceilDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? (a + b - 1) / b : -((-a) / b) }
        func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
        let first = max(0, ceilDiv(low - start, step)), end = min(kernel, floorDiv(high - 1 - start, step) + 1)
        return first < end ? first..<end : 0..<0
    }

    static let transcendental: Set<String> = ["sigmoid", "tanh", "elu", "swish", "softmax", "log_softmax", "softmax_cross_entropy",
                                              "batchnorm2d", "lrn"]

    /// The precision for a case: every product of up to three of its doubles and every
    /// sum of them is exact (3·(largest exponent − smallest ulp exponent) + 128 bits),
    /// and at least 1,024 bits for a transcendental layer, whose values are then off by
    /// less than 2⁻¹⁰⁰⁰ relative.
    static func bits(_ c: Case) -> mpfr_prec_t {
        var top = Int.min, bottom = Int.max
        func note(_ v: Double) {
            guard v.isFinite && v != 0 else { return }
            top = max(top, Int(v.exponent) + 1)
            bottom = min(bottom, Int(v.exponent) - Int(v.significandWidth))
        }
        for t in c.inputs { t.tensor.scalars.forEach(note) }
        c.upstream?.scalars.forEach(note)
        for (_, value) in c.config { if case .number(let s) = value, let v = Double(s) { note(v) } }
        let span = top == Int.min ? 0 : top - bottom
        let count = c.inputs.reduce(0) { $0 + $1.tensor.count }
        var exact = 3 * span + 128 + count.bitWidth - count.leadingZeroBitCount
        // A logit gap g puts terms of relative size e^−g beside the maximum's: 1.45·g more bits
        // let a value within e^−g of a midpoint round the right way.
        if ["softmax", "log_softmax", "softmax_cross_entropy"].contains(c.layer), let t = c.inputs.first?.tensor {
            let finite = t.scalars.filter(\.isFinite)
            if let hi = finite.max(), let lo = finite.min() { exact += Int(min(1.45 * (hi - lo), 60_000)) }
        }
        return mpfr_prec_t(max(exact, transcendental.contains(c.layer) ? 1024 : 0, 128))
    }

    /// The true outputs and gradients of a case, by tensor name, in the case's order.
    ///
    /// Sums of products are exact at `bits(c)`. A transcendental layer's value can still
    /// lose digits to cancellation (dy_k − Σ p_j·dy_j with upstreams of 1e300 and a result
    /// of 1e-300): it is evaluated again at twice the precision, and again, until every
    /// value rounds to the same double twice in a row (up to 64 times `bits(c)`).
    static func evaluate(_ c: Case) -> (outputs: [(String, Values)], gradients: [(String, Values)]) {
        mpfr_set_emin(mpfr_get_emin_min())
        mpfr_set_emax(mpfr_get_emax_max())
        var p = bits(c)
        var result = BigFloat.$bits.withValue(p) { evaluateAtPrecision(c) }
        guard transcendental.contains(c.layer) else { return result }
        func rounded(_ r: (outputs: [(String, Values)], gradients: [(String, Values)])) -> [UInt64] {
            (r.outputs + r.gradients).flatMap { $0.1.map { $0.isNaN ? 0x7FF8_0000_0000_0000 : $0.double.bitPattern } }
        }
        for _ in 0..<6 {
            p *= 2
            let next = BigFloat.$bits.withValue(p) { evaluateAtPrecision(c) }
            let stable = rounded(next) == rounded(result)
            result = next
            if stable { break }
        }
        return result
    }

    static func evaluateAtPrecision(_ c: Case) -> (outputs: [(String, Values)], gradients: [(String, Values)]) {
        func input(_ name: String) -> [Double] { c.input(name)?.scalars ?? [] }
        func shape(_ name: String) -> [Int] { c.input(name)?.shape ?? [] }
        func big(_ v: [Double]) -> Values { v.map(BigFloat.init) }
        func zeros(_ n: Int) -> Values { (0..<n).map { _ in BigFloat.zero } }
        func int(_ key: String, _ fallback: Int) -> Int {
            if case .number(let s)? = c.config.first(where: { $0.0 == key })?.1 { return Int(s) ?? fallback }
            return fallback
        }
        func ints(_ key: String, _ fallback: [Int]) -> [Int] {
            if case .array(let items)? = c.config.first(where: { $0.0 == key })?.1 {
                return items.map { if case .number(let s) = $0 { return Int(s) ?? 0 } else { return 0 } }
            }
            return fallback
        }
        func double(_ key: String) -> Double {
            if case .number(let s)? = c.config.first(where: { $0.0 == key })?.1 { return Double(s)! }
            return .nan
        }
        func bool(_ key: String) -> Bool {
            if case .bool(let b)? = c.config.first(where: { $0.0 == key })?.1 { return b }
            return false
        }
        let dy = big(c.upstream?.scalars ?? [1])

        switch c.layer {
        case "conv2d":
            let x = input("x"), w = input("weight"), b = input("bias")
            let (n, ch, h, wd) = (shape("x")[0], shape("x")[1], shape("x")[2], shape("x")[3])
            let (k, cg, fh, fw) = (shape("weight")[0], shape("weight")[1], shape("weight")[2], shape("weight")[3])
            let s = ints("stride", [1, 1]), p = ints("padding", [0, 0, 0, 0]), d = ints("dilation", [1, 1]), g = int("groups", 1)
            let oh = (h + p[0] + p[2] - d[0] * (fh - 1) - 1) / s[0] + 1
            let ow = (wd + p[1] + p[3] - d[1] * (fw - 1) - 1) / s[1] + 1
            let kg = k / g
            let y = zeros(n * k * oh * ow), dx = zeros(x.count), dw = zeros(w.count), db = zeros(b.count)
            for bi in 0..<n { for o in 0..<k { for i in 0..<oh { for j in 0..<ow {
                let out = ((bi * k + o) * oh + i) * ow + j
                if !b.isEmpty { y[out].add(BigFloat(b[o])); db[o].add(dy[out]) }
                for ci in 0..<cg { for pi in within(i * s[0] - p[0], d[0], fh, 0, h) { for qi in within(j * s[1] - p[1], d[1], fw, 0, wd) {
                    let r = i * s[0] - p[0] + pi * d[0], col = j * s[1] - p[1] + qi * d[1]
                    let xi = ((bi * ch + (o / kg) * cg + ci) * h + r) * wd + col
                    let wi = ((o * cg + ci) * fh + pi) * fw + qi
                    let xv = BigFloat(x[xi]), wv = BigFloat(w[wi])
                    y[out].addProduct(xv, wv)
                    dx[xi].addProduct(dy[out], wv)
                    dw[wi].addProduct(dy[out], xv)
                } } }
            } } } }
            return ([("y", y)], [("x", dx), ("weight", dw)] + (b.isEmpty ? [] : [("bias", db)]))

        case "maxpool2d", "avgpool2d":
            let x = input("x")
            let (n, ch, h, wd) = (shape("x")[0], shape("x")[1], shape("x")[2], shape("x")[3])
            let kk = ints("kernel", [1, 1]), s = ints("stride", [1, 1]), p = ints("padding", [0, 0, 0, 0]), d = ints("dilation", [1, 1])
            let ceil = bool("ceil_mode"), include = bool("count_include_pad")
            func size(_ len: Int, _ a: Int) -> Int {
                let span = len + p[a] + p[a + 2] - d[a] * (kk[a] - 1) - 1
                var out = (ceil ? (span + s[a] - 1) / s[a] : span / s[a]) + 1
                if ceil && (out - 1) * s[a] >= len + p[a] { out -= 1 }
                return out
            }
            let (oh, ow) = (size(h, 0), size(wd, 1))
            var y = zeros(n * ch * oh * ow), dx = zeros(x.count)
            for plane in 0..<(n * ch) { for i in 0..<oh { for j in 0..<ow {
                let out = (plane * oh + i) * ow + j
                var taps: [Int] = []
                let (r0, c0) = (i * s[0] - p[0], j * s[1] - p[1])
                let padded = within(r0, d[0], kk[0], -p[0], h + p[2]).count * within(c0, d[1], kk[1], -p[1], wd + p[3]).count
                for pi in within(r0, d[0], kk[0], 0, h) { for qi in within(c0, d[1], kk[1], 0, wd) {
                    taps.append((plane * h + r0 + pi * d[0]) * wd + c0 + qi * d[1])
                } }
                if c.layer == "maxpool2d" {
                    var best = taps[0]
                    for t in taps.dropFirst() where !x[best].isNaN && (x[t] > x[best] || x[t].isNaN) { best = t }
                    y[out] = BigFloat(x[best])
                    dx[best].add(dy[out])
                } else {
                    let divisor = BigFloat(Double(include ? padded : taps.count))
                    let total = BigFloat.zero
                    for t in taps { total.add(BigFloat(x[t])) }
                    y[out] = total / divisor
                    let share = dy[out] / divisor
                    for t in taps { dx[t].add(share) }
                }
            } } }
            return ([("y", y)], [("x", dx)])

        case "relu", "leaky_relu", "elu", "sigmoid", "tanh":
            let x = input("x")
            var y: Values = [], dx: Values = []
            for (i, v) in x.enumerated() {
                let xv = BigFloat(v)
                switch c.layer {
                case "relu":
                    y.append(v > 0 || v.isNaN ? xv : .zero); dx.append(v > 0 ? dy[i] : .zero)
                case "leaky_relu":
                    let slope = BigFloat(double("slope"))
                    y.append(v > 0 ? xv : slope * xv); dx.append(v > 0 ? dy[i] : slope * dy[i])
                case "elu":
                    let alpha = BigFloat(double("alpha"))
                    y.append(v > 0 ? xv : alpha * xv.expm1); dx.append(v > 0 ? dy[i] : dy[i] * alpha * xv.positiveExp)
                case "sigmoid":
                    y.append(xv.logistic); dx.append(dy[i] * xv.logistic * (-xv).logistic)
                default:
                    let ch = xv.cosh
                    y.append(xv.tanh); dx.append(dy[i] * (.one / (ch * ch)).positiveIfFinite(xv))
                }
            }
            return ([("y", y)], [("x", dx)])

        case "prelu":
            let x = input("x"), a = input("slope"), xs = shape("x")
            let inner = xs.dropFirst(2).reduce(1, *)
            var y: Values = [], dx: Values = [], da = zeros(a.count)
            for (i, v) in x.enumerated() {
                let channel = a.count == 1 ? 0 : (i / inner) % xs[1]
                let xv = BigFloat(v), av = BigFloat(a[channel])
                y.append(v > 0 ? xv : av * xv)
                dx.append(v > 0 ? dy[i] : av * dy[i])
                if !(v > 0) { da[channel].addProduct(dy[i], xv) }
            }
            return ([("y", y)], [("x", dx), ("slope", da)])

        case "swish":
            let x = input("x"), beta = BigFloat(input("beta")[0])
            var y: Values = [], dx: Values = []
            // dβ = Σ dy·x²·σ(βx)σ(−βx): the terms of equal |x| share x²σ(βx)σ(−βx), so their
            // upstreams are added first (exactly, at this precision): a group whose
            // upstreams cancel contributes exactly 0.
            var upstreamByMagnitude: [Double: BigFloat] = [:]
            var nan = beta.isNaN
            for (i, v) in x.enumerated() {
                let xv = BigFloat(v), sg = (beta * xv).logistic, sgMinus = (-(beta * xv)).logistic
                y.append(xv * sg)
                dx.append(dy[i] * (sg + beta * xv * sg * sgMinus))
                if !v.isFinite || dy[i].isNaN { nan = true; continue }   // x²·σσ′ = ∞·0 at ±∞
                let group = upstreamByMagnitude[v.magnitude] ?? .zero
                group.add(dy[i])
                upstreamByMagnitude[v.magnitude] = group
            }
            let dbeta = nan ? BigFloat(.nan) : BigFloat.zero
            for magnitude in upstreamByMagnitude.keys.sorted() {
                let xv = BigFloat(magnitude), z = beta * xv
                dbeta.add(upstreamByMagnitude[magnitude]! * xv * xv * z.logistic * (-z).logistic)
            }
            return ([("y", y)], [("x", dx), ("beta", [dbeta])])

        case "linear", "maxout":
            let x = input("x"), w = input("weight"), b = input("bias")
            let (n, d) = (shape("x")[0], shape("x")[1])
            let pieces = c.layer == "linear" ? 1 : shape("weight")[0]
            let m = c.layer == "linear" ? shape("weight")[0] : shape("weight")[1]
            var y = zeros(n * m), dx = zeros(x.count), dw = zeros(w.count), db = zeros(b.count)
            for bi in 0..<n { for o in 0..<m {
                var best = 0
                var values: Values = []
                for j in 0..<pieces {
                    let z = BigFloat(b[j * m + o])
                    for i in 0..<d { z.addProduct(BigFloat(x[bi * d + i]), BigFloat(w[(j * m + o) * d + i])) }
                    values.append(z)
                    // The kernels compare the rounded piece values: so does the oracle.
                    if z.double > values[best].double { best = j }
                }
                let out = bi * m + o
                y[out] = values[best]
                db[best * m + o].add(dy[out])
                for i in 0..<d {
                    dx[bi * d + i].addProduct(dy[out], BigFloat(w[(best * m + o) * d + i]))
                    dw[(best * m + o) * d + i].addProduct(dy[out], BigFloat(x[bi * d + i]))
                }
            } }
            return ([("y", y)], [("x", dx), ("weight", dw), ("bias", db)])

        case "softmax", "log_softmax":
            let x = input("x"), xs = shape("x")
            var axis = int("axis", 0)
            if axis < 0 { axis += xs.count }
            var y = zeros(x.count), dx = zeros(x.count)
            for slice in AxisSlices(shape: xs, axis: axis).all {
                let values = slice.map { x[$0] }
                if values.contains(where: \.isNaN) || values.contains(.infinity) || values.allSatisfy({ $0 == -.infinity }) {
                    for i in slice { y[i] = BigFloat(.nan); dx[i] = BigFloat(.nan) }
                    continue
                }
                let (exponentials, total, logTotal) = shiftedExponentials(values)
                let dyTotal = BigFloat.zero, dot = BigFloat.zero
                var probabilities: Values = []
                for (k, i) in slice.enumerated() {
                    let pk = exponentials[k] / total
                    probabilities.append(pk)
                    dyTotal.add(dy[i])
                    dot.addProduct(dy[i], pk)
                }
                // dy_k − Σ_j p_j·dy_j = Σ_j p_j·(dy_k − dy_j) is 0 exactly iff, grouping the
                // entries by equal finite logit, every group's mean upstream is dy_k
                // (Lindemann–Weierstrass); the groups' means are compared exactly.
                var groups: [Double: (count: Double, sum: BigFloat, first: Int)] = [:]
                for (k, i) in slice.enumerated() where values[k] != -.infinity {
                    let g = groups[values[k]] ?? (0, .zero, k)
                    g.sum.add(dy[i])
                    groups[values[k]] = (g.count + 1, g.sum, g.first)
                }
                // An infinite or NaN upstream: dy_k − dot by IEEE's rules (∞ − ∞ and ∞·0 are NaN).
                let anyNaN = slice.contains { !dy[$0].isFinite }
                /// Σ_g e^(v_g − m)·(n_g·dy_k − D_g) / S with every coefficient exact: no
                /// cancellation beyond the true one (for slices up to 64 wide; wider slices
                /// use dy_k − dot at the doubling precisions).
                func groupedDifference(_ i: Int) -> BigFloat {
                    let total2 = BigFloat.zero
                    for g in groups.values.sorted(by: { $0.first < $1.first }) {
                        let coefficient = BigFloat(g.count) * dy[i] - g.sum
                        if !coefficient.isZero { total2.add(coefficient * exponentials[g.first]) }
                    }
                    return total2 / total
                }
                let means = groups.values.map { $0.sum / BigFloat($0.count) }
                let uniform = means.allSatisfy { $0 == means[0] } && !anyNaN
                let m = values.max()!
                for (k, i) in slice.enumerated() {
                    if c.layer == "softmax" {
                        y[i] = probabilities[k]
                        let difference = anyNaN ? dy[i] - dot
                            : uniform && dy[i] == means[0] ? BigFloat.zero
                            : values.count <= 64 ? groupedDifference(i) : dy[i] - dot
                        dx[i] = probabilities[k] * difference
                    } else {
                        y[i] = BigFloat(values[k]) - BigFloat(m) - logTotal
                        dx[i] = dy[i] - probabilities[k] * dyTotal
                    }
                }
            }
            return ([("y", y)], [("x", dx)])

        case "softmax_cross_entropy", "multiclass_hinge":
            let s = input("scores"), labels = c.labels ?? []
            let (n, cl) = (shape("scores")[0], shape("scores")[1])
            var mean = false
            if case .string(let r)? = c.config.first(where: { $0.0 == "reduction" })?.1 { mean = r == "mean" }
            let divisor = BigFloat(mean ? Double(n) : 1)
            let loss = BigFloat.zero
            var grad = zeros(s.count)
            for i in 0..<n {
                let y = labels[i]
                let row = Array(s[i * cl..<(i + 1) * cl])
                if c.layer == "softmax_cross_entropy" {
                    if row.contains(where: \.isNaN) || row.contains(.infinity) || row.allSatisfy({ $0 == -.infinity }) {
                        loss.add(BigFloat(.nan))
                        for j in 0..<cl { grad[i * cl + j] = BigFloat(.nan) }
                        continue
                    }
                    let (exponentials, total, logTotal) = shiftedExponentials(row)
                    loss.add(logTotal - (BigFloat(row[y]) - BigFloat(row.max()!)))
                    let others = BigFloat.zero
                    for j in 0..<cl where j != y { others.add(exponentials[j]) }
                    for j in 0..<cl {
                        // p_y − 1 = −Σ_{j≠y} p_j.
                        let g = j == y ? -(others / total) : exponentials[j] / total
                        grad[i * cl + j] = dy[0] * g / divisor
                    }
                } else {
                    let margin = BigFloat(double("margin"))
                    var active = 0.0, nan = false
                    for j in 0..<cl where j != y {
                        let term = BigFloat(s[i * cl + j]) - BigFloat(s[i * cl + y]) + margin
                        if term.isNaN {
                            // A NaN term (a NaN score, ∞ − ∞): the loss and both scores' gradients are NaN.
                            loss.add(term)
                            grad[i * cl + j] = term
                            nan = true
                        } else if term.sign > 0 {
                            loss.add(term)
                            grad[i * cl + j] = dy[0] / divisor
                            active += 1
                        } else {
                            grad[i * cl + j] = .zero * dy[0] / divisor
                        }
                    }
                    grad[i * cl + y] = nan ? BigFloat(.nan) : -BigFloat(active) * dy[0] / divisor
                }
            }
            return ([("loss", [loss / divisor])], [("scores", grad)])

        case "add":
            // x0 + x1 + … in MPFR from x0 (so −0 + −0 stays −0); every gradient is dy.
            let names = c.inputs.map(\.name)
            let y = big(input(names[0]))
            for n in names.dropFirst() { for (i, v) in input(n).enumerated() { y[i].add(BigFloat(v)) } }
            return ([("y", y)], names.map { ($0, dy) })

        case "concat":
            let names = c.inputs.map(\.name), axis = int("axis", 0)
            let outer = shape(names[0])[..<axis].reduce(1, *), inner = shape(names[0])[(axis + 1)...].reduce(1, *)
            var y: Values = [], grads: [[Int]] = names.map { _ in [] }
            for o in 0..<outer { for (k, n) in names.enumerated() {
                let slab = shape(n)[axis] * inner
                for j in 0..<slab { grads[k].append(y.count); y.append(BigFloat(input(n)[o * slab + j])) }
            } }
            return ([("y", y)], zip(names, grads).map { n, at in (n, at.map { dy[$0] }) })

        case "flatten":
            return ([("y", big(input("x")))], [("x", dy)])

        case "dropout":
            // x·mask/(1 − p) with 1 − p exact in MPFR.
            let keep = BigFloat.one - BigFloat(double("p"))
            let mask = input("mask")
            func scaled(_ v: BigFloat, _ i: Int) -> BigFloat { v * BigFloat(mask[i]) / keep }
            return ([("y", input("x").indices.map { scaled(BigFloat(input("x")[$0]), $0) })], [("x", dy.indices.map { scaled(dy[$0], $0) })])

        case "adaptive_avgpool2d":
            let x = input("x"), sx = shape("x"), out = ints("output_size", [1, 1])
            let (h, w, oh, ow) = (sx[2], sx[3], out[0], out[1])
            // Window i of n cells into o: rows ⌊i·n/o⌋ up to ⌈(i+1)·n/o⌉ (exclusive).
            func span(_ i: Int, _ n: Int, _ o: Int) -> Range<Int> { (i * n / o)..<(((i + 1) * n + o - 1) / o) }
            var y = zeros(sx[0] * sx[1] * oh * ow), dx = zeros(x.count)
            for plane in 0..<(sx[0] * sx[1]) { for i in 0..<oh { for j in 0..<ow {
                let rows = span(i, h, oh), cols = span(j, w, ow), o = (plane * oh + i) * ow + j
                let size = BigFloat(Double(rows.count * cols.count))
                let total = BigFloat.zero
                for r in rows { for q in cols { total.add(BigFloat(x[(plane * h + r) * w + q])) } }
                y[o] = total / size
                let share = dy[o] / size
                for r in rows { for q in cols { dx[(plane * h + r) * w + q].add(share) } }
            } } }
            return ([("y", y)], [("x", dx)])

        case "batchnorm2d":
            // Per channel, from m·x_i − Σx (exact at this precision, so a channel of equal values
            // gives exact zeros): σ̂ = √(Σ(m·x − Σx)²/m³ + ε) in training, √(running_var + ε) in
            // eval; y = β + γ·x̂, x̂ = (x − μ)/σ̂; dx by the other form of the chain rule,
            // γ/(m·σ̂)·(m·dy − Σdy − x̂·Σdy·x̂) (training), γ·dy/σ̂ (eval).
            let x = input("x"), sx = shape("x"), g = input("weight"), b = input("bias")
            let rm = input("running_mean"), rv = input("running_var")
            let training = bool("training"), eps = BigFloat(double("eps")), momentum = BigFloat(double("momentum"))
            let (n, ch, plane) = (sx[0], sx[1], sx[2] * sx[3])
            let m = BigFloat(Double(n * plane))
            var y = zeros(x.count), dx = zeros(x.count), dg = zeros(ch), db = zeros(ch)
            var newMean = zeros(ch), newVar = zeros(ch)
            for c in 0..<ch {
                var at: [Int] = []
                for bi in 0..<n { for q in 0..<plane { at.append((bi * ch + c) * plane + q) } }
                let total = BigFloat.zero
                for i in at { total.add(BigFloat(x[i])) }
                var centred: Values = []          // x − μ
                let squares = BigFloat.zero        // Σ(m·x − Σx)²
                for i in at {
                    let d = m * BigFloat(x[i]) - total
                    squares.addProduct(d, d)
                    centred.append(training ? d / m : BigFloat(x[i]) - BigFloat(rm[c]))
                }
                let sigma = ((training ? squares / (m * m * m) : BigFloat(rv[c])) + eps).squareRoot
                let dyTotal = BigFloat.zero, dyXhat = BigFloat.zero
                for (k, i) in at.enumerated() {
                    dyTotal.add(dy[i])
                    dyXhat.add(dy[i] * centred[k] / sigma)
                }
                db[c] = dyTotal
                dg[c] = dyXhat
                for (k, i) in at.enumerated() {
                    let xhat = centred[k] / sigma
                    y[i] = BigFloat(b[c]) + BigFloat(g[c]) * xhat
                    dx[i] = training ? BigFloat(g[c]) / (m * sigma) * (m * dy[i] - dyTotal - xhat * dyXhat) : BigFloat(g[c]) * dy[i] / sigma
                }
                if training {
                    newMean[c] = (BigFloat.one - momentum) * BigFloat(rm[c]) + momentum * total / m
                    newVar[c] = (BigFloat.one - momentum) * BigFloat(rv[c]) + momentum * squares / (m * m * (m - .one))
                }
            }
            let gradients = [("x", dx), ("weight", dg), ("bias", db)]
            return (training ? [("y", y), ("running_mean", newMean), ("running_var", newVar)] : [("y", y)], gradients)

        case "lrn":
            // S_c = k + α·(Σ_{j ∈ window(c)} a_j²)/size over j = c − ⌊size/2⌋ … c + ⌊(size − 1)/2⌋;
            // b_c = a_c·S_c^−β, and the gradient scattered from each output c to its window.
            let x = input("x"), sx = shape("x"), size = int("size", 1)
            let alpha = BigFloat(double("alpha")), beta = BigFloat(double("beta")), k = BigFloat(double("k"))
            let (ch, plane) = (sx[1], sx[2] * sx[3])
            var y = zeros(x.count), dx = zeros(x.count)
            for bi in 0..<sx[0] { for p in 0..<plane {
                func at(_ c: Int) -> Int { (bi * ch + c) * plane + p }
                func window(_ c: Int) -> [Int] { Array(max(0, c - size / 2)..<min(ch, c + (size - 1) / 2 + 1)) }
                for c in 0..<ch {
                    let q = BigFloat.zero
                    for j in window(c) { q.addProduct(BigFloat(x[at(j)]), BigFloat(x[at(j)])) }
                    let base = k + alpha * q / BigFloat(Double(size))
                    let a = BigFloat(x[at(c)])
                    y[at(c)] = a * base.power(-beta)
                    dx[at(c)].add(dy[at(c)] * base.power(-beta))
                    let common = BigFloat(2) * alpha * beta / BigFloat(Double(size)) * dy[at(c)] * a * base.power(-beta - .one)
                    for j in window(c) { dx[at(j)].add(-(common * BigFloat(x[at(j)]))) }
                }
            } }
            return ([("y", y)], [("x", dx)])

        default:
            return ([], [])
        }
    }

    /// e^(x_j − m) with m the maximum, their sum S and log S = log1p(S − 1), the 1 being
    /// the first maximum's term (so log S keeps every digit when S − 1 is 1e-300).
    static func shiftedExponentials(_ values: [Double]) -> (Values, BigFloat, BigFloat) {
        let m = values.max()!
        let first = values.firstIndex(of: m)!
        let exponentials = values.map { (BigFloat($0) - BigFloat(m)).positiveExp }
        let rest = BigFloat.zero
        for (j, e) in exponentials.enumerated() where j != first { rest.add(e) }
        return (exponentials, .one + rest, rest.log1p)
    }
}
