import CNNReference

/// An independent evaluation of every layer at 512 bits with MPFR, written from
/// the mathematical definitions as plain loops (scatter where the kernels
/// gather), sharing no code with the `Double` kernels. Each value is rounded to
/// `Double` only when it is compared.
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

    /// The true outputs and gradients of a case, by tensor name, in the case's order.
    static func evaluate(_ c: Case) -> (outputs: [(String, Values)], gradients: [(String, Values)]) {
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
            var y = zeros(n * k * oh * ow), dx = zeros(x.count), dw = zeros(w.count), db = zeros(b.count)
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
                    y.append(v > 0 ? xv : .zero); dx.append(v > 0 ? dy[i] : .zero)
                case "leaky_relu":
                    let slope = BigFloat(double("slope"))
                    y.append(v > 0 ? xv : slope * xv); dx.append(v > 0 ? dy[i] : slope * dy[i])
                case "elu":
                    let alpha = BigFloat(double("alpha"))
                    y.append(v > 0 ? xv : alpha * xv.expm1); dx.append(v > 0 ? dy[i] : dy[i] * alpha * xv.exp)
                case "sigmoid":
                    let sg = xv.logistic
                    y.append(sg); dx.append(dy[i] * sg * (.one - sg))
                default:
                    let t = xv.tanh
                    y.append(t); dx.append(dy[i] * (.one - t * t))
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
            let dbeta = BigFloat.zero
            for (i, v) in x.enumerated() {
                let xv = BigFloat(v), sg = (beta * xv).logistic
                y.append(xv * sg)
                dx.append(dy[i] * (sg + beta * xv * sg * (.one - sg)))
                dbeta.add(dy[i] * xv * xv * sg * (.one - sg))
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
                let total = BigFloat.zero
                for v in values { total.add(BigFloat(v).exp) }
                let dyTotal = BigFloat.zero, dot = BigFloat.zero
                var probabilities: Values = []
                for (k, i) in slice.enumerated() {
                    let pk = BigFloat(values[k]).exp / total
                    probabilities.append(pk)
                    dyTotal.add(dy[i])
                    dot.addProduct(dy[i], pk)
                }
                for (k, i) in slice.enumerated() {
                    if c.layer == "softmax" {
                        y[i] = probabilities[k]
                        dx[i] = probabilities[k] * (dy[i] - dot)
                    } else {
                        y[i] = BigFloat(values[k]) - total.log
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
                if c.layer == "softmax_cross_entropy" {
                    let total = BigFloat.zero
                    for j in 0..<cl { total.add(BigFloat(s[i * cl + j]).exp) }
                    loss.add(total.log - BigFloat(s[i * cl + y]))
                    for j in 0..<cl {
                        let pj = BigFloat(s[i * cl + j]).exp / total
                        grad[i * cl + j] = (j == y ? pj - .one : pj) / divisor
                    }
                } else {
                    let margin = BigFloat(double("margin"))
                    var active = 0.0
                    for j in 0..<cl where j != y {
                        let term = BigFloat(s[i * cl + j]) - BigFloat(s[i * cl + y]) + margin
                        if term.sign > 0 {
                            loss.add(term)
                            grad[i * cl + j] = .one / divisor
                            active += 1
                        }
                    }
                    grad[i * cl + y] = -BigFloat(active) / divisor
                }
            }
            return ([("loss", [loss / divisor])], [("scores", grad)])

        default:
            return ([], [])
        }
    }
}
