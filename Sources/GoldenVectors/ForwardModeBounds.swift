import CNNReference
import Foundation

/// The error scales of forward-mode values formed directly (`ForwardMode.directLayers` and the
/// `.direct` double-backward tensors), built like the layers' own (`ErrorModel.raw`): per element
/// the number of roundings and Σ|terms| of the sum an engine forms.
extension ErrorModel {
    /// Softmax probabilities of one slice in plain doubles, and each one's condition 1 + |x − m|
    /// (x − m is rounded once, then exponentiated): only a magnitude for a bound. NaN for a slice
    /// whose softmax is NaN.
    static func conditionedProbabilities(_ values: [Double]) -> [Double] {
        guard let m = values.max(), m.isFinite, !values.contains(where: \.isNaN) else { return values.map { _ in .nan } }
        let e = values.map { Foundation.exp($0 - m) }
        let total = e.reduce(0, +)
        return zip(values, e).map { v, ev in v == -.infinity ? 0 : ev / total * (1 + (v - m).magnitude) }
    }

    /// The scale of an engine's JVP of `c` (a layer of `ForwardMode.directLayers`) along `t`.
    static func directJVPScale(_ c: Case, tangents t: [NamedTensor]) throws -> ErrorScale {
        let layer = try LayerRegistry.makeLayer(c)
        let x = c.inputs[0].tensor, tx = t[0].tensor
        switch layer {
        case let pool as MaxPool2D:
            // A copy of the tangent at each argmax: exact.
            return constant(0, pool.argmax(x).map { tx[$0].magnitude })
        case let maxout as Maxout:
            // The winning piece's ẋ·W + x·Ẇ + ḃ: 2D + 1 terms, the pieces stored in the format.
            let (n, d, m) = (x.shape[0], x.shape[1], maxout.weight.shape[1])
            let win = maxout.activeSet(x), w = maxout.weight, tw = t[1].tensor, tb = t[2].tensor
            let s = (0..<(n * m)).map { out -> Double in
                let (b, o, j) = (out / m, out % m, win[out])
                var total = tb[j * m + o].magnitude
                for i in 0..<d { total += (tx[b * d + i] * w[(j * m + o) * d + i]).magnitude + (x[b * d + i] * tw[(j * m + o) * d + i]).magnitude }
                return total
            }
            return constant(Double(2 * d + 1), s, storage: 1, sum: true)
        case let prelu as PReLU:
            // ẋ on x > 0, a·ẋ + ȧ·x on x ≤ 0: two products and a sum.
            let a = prelu.slope, ta = t[1].tensor
            let inner = x.shape.dropFirst(2).reduce(1, *)
            return constant(2, x.scalars.indices.map { i in
                let ch = a.count == 1 ? 0 : (i / inner) % x.shape[1]
                return x[i] > 0 ? tx[i].magnitude : (a[ch] * tx[i]).magnitude + (ta[ch] * x[i]).magnitude
            }, storage: 1)
        case let swish as Swish:
            // ẋ·σ(z) + x·σ′(z)·(β̇·x + β·ẋ), z = βx (forward-mode autodiff of x·σ(βx)): σ(z) and
            // σ′(z) as for the backward pass (z rounded once: condition 1 + |z|; σ′ = σ(1 − σ) with
            // 1 − σ's absolute error of u·σ), the products and the sum; βx, σ, the products stored.
            let beta = swish.beta, tb = t[1].tensor[0]
            let m = x.scalars.indices.map { i -> Double in
                let z = beta * x[i], s = logistic(z), condition = 1 + z.magnitude
                let outer = (tb * x[i]).magnitude + (beta * tx[i]).magnitude
                return condition * (tx[i].magnitude * s + x[i].magnitude * s * outer)
            }
            var s = constant(12, m, storage: 4)
            // σ(z) flushed to zero, times ẋ and x·(β̇x + βẋ).
            s.underflowScale = x.scalars.indices.map { i in
                (tx[i].magnitude + x[i].magnitude * ((tb * x[i]).magnitude + (beta * tx[i]).magnitude)) * (1 + (beta * x[i]).magnitude)
            }
            return s
        case let bn as BatchNorm2D:
            // J·ẋ as the input gradient for the upstream ẋ (J is symmetric), then γ̇·x̂ + β̇ with
            // x̂'s own error.
            let model = BatchNormErrorModel(bn, x: x, dy: tx)
            var s = model.gradients([])[0]
            let inner = x.shape[2] * x.shape[3], channels = x.shape[1]
            for i in s.magnitude.indices {
                let c = (i / inner) % channels
                s.magnitude[i] += t[1].tensor[c].magnitude * (model.xhat[i].magnitude + model.xhatError[i]) + t[2].tensor[c].magnitude
                s.terms[i] += 3
            }
            return s
        case let lrn as LRN:
            // ȧ·S^−β − β·a·S^(−β−1)·(2α/size)·Σ a_j·ȧ_j from the composition's steps: the backward
            // pass's model with the window's products in place of the upstream's.
            let s = x.shape, plane = s[2] * s[3], channels = s[1], b = lrn.beta.magnitude
            let bases = (0..<x.count).map { i -> Double in
                let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
                let q = lrn.window(c, channels: channels).reduce(0.0) { let v = x[(n * channels + $1) * plane + p]; return $0 + v * v }
                return lrn.k + lrn.alpha * q / Double(lrn.size)
            }
            let m = (0..<x.count).map { i -> Double in
                let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
                let dot = lrn.window(c, channels: channels).reduce(0.0) { let k = (n * channels + $1) * plane + p; return $0 + (x[k] * tx[k]).magnitude }
                return (tx[i].magnitude * pow(bases[i], -lrn.beta) + 2 * lrn.alpha * b / Double(lrn.size) * x[i].magnitude * pow(bases[i], -lrn.beta - 1) * dot) * (2 + b)
            }
            return constant(Double(2 * min(lrn.size, channels) + 10), m, storage: 4)
        case let hinge as MulticlassHinge:
            // Σ over the active terms of ṡ_ij − ṡ_iy, then the division by N.
            let (n, classes) = (x.shape[0], x.shape[1])
            let active = hinge.activeSet(x)
            var total = 0.0, count = 0.0
            for k in 0..<(n * classes) where active[k] == 1 {
                total += tx[k].magnitude + tx[k / classes * classes + hinge.labels[k / classes]].magnitude
                count += 2
            }
            let divisor = hinge.reduction == .mean ? Double(n) : 1
            return constant(count + 1, [total / divisor], sum: true)
        case let l as LogSoftmax:
            // ẋ_k − Σ_j p_j·ẋ_j: the softmax's roundings (x − m, the exponentials, S) and the dot.
            let axis = l.axis < 0 ? l.axis + x.rank : l.axis
            let len = Double(x.shape[axis])
            var m = [Double](repeating: 0, count: x.count), flushed = m
            for slice in AxisSlices(shape: x.shape, axis: axis).all {
                let p = conditionedProbabilities(slice.map { x[$0] })
                let dot = zip(slice, p).reduce(0.0) { $0 + tx[$1.0].magnitude * $1.1 }
                let total = finiteTotal(slice.map { tx[$0].magnitude })
                for i in slice {
                    m[i] = tx[i].magnitude + dot
                    flushed[i] = total   // a p_j flushed to zero, times ẋ_j
                }
            }
            var s = constant(len + 8, m, storage: 3)
            s.underflowScale = flushed
            return s
        case let ce as SoftmaxCrossEntropy:
            // Σ_i (Σ_j p_ij·ṡ_ij − ṡ_iy) / N: each row as log-softmax's, then the sum and the division.
            let (n, classes) = (x.shape[0], x.shape[1])
            var total = 0.0, flushed = 0.0
            for i in 0..<n {
                let row = Array(i * classes..<(i + 1) * classes)
                let p = conditionedProbabilities(row.map { x[$0] })
                total += tx[row[ce.labels[i]]].magnitude + zip(row, p).reduce(0.0) { $0 + tx[$1.0].magnitude * $1.1 }
                flushed += finiteTotal(row.map { tx[$0].magnitude })
            }
            let divisor = ce.reduction == .mean ? Double(n) : 1
            var s = constant(Double(n * (classes + 8) + 1), [total / divisor], storage: 3, sum: true)
            s.underflowScale = [flushed]
            return s
        default:
            throw CaseError("layer", "\(c.layer) has no direct JVP")
        }
    }

    /// The scale of tensor k (0 the data input, then the parameters) of an engine's double
    /// backward of `c` for the cotangent `w`, where `ForwardMode` forms it directly.
    static func directDoubleBackwardScale(_ c: Case, cotangents w: [NamedTensor], tensor k: Int) throws -> ErrorScale {
        let layer = try LayerRegistry.makeLayer(c)
        let x = c.inputs[0].tensor, u = c.upstream ?? Tensor(scalar: 1), wx = w[0].tensor
        /// |w·u| per element.
        let wu = x.scalars.indices.map { i in k == 0 && u.count == x.count ? (wx[i] * u[i]).magnitude : 0 }
        switch layer {
        case let prelu as PReLU:
            let a = prelu.slope, wa = w[1].tensor
            let inner = x.shape.dropFirst(2).reduce(1, *)
            func ch(_ i: Int) -> Int { a.count == 1 ? 0 : (i / inner) % x.shape[1] }
            if k == 0 {
                // w_a·u on x ≤ 0: one product.
                return constant(1, x.scalars.indices.map { x[$0] > 0 ? 0 : (wa[ch($0)] * u[$0]).magnitude })
            }
            // Σ over the channel's x ≤ 0 of w_x·u.
            var s = [Double](repeating: 0, count: a.count), n = s
            for i in x.scalars.indices where !(x[i] > 0) {
                s[ch(i)] += (wx[i] * u[i]).magnitude
                n[ch(i)] += 1
            }
            // Autodiff engines store each product w_x·u (an elementwise step of the backward graph) before the sum.
            return ErrorScale(terms: n, magnitude: s, storage: 2, isSum: true)
        case let maxout as Maxout:
            let (n, d, m) = (x.shape[0], x.shape[1], maxout.weight.shape[1])
            let win = maxout.activeSet(x), ww = w[1].tensor
            if k == 0 {
                // Σ_m u·w_W of the winners.
                return constant(Double(m), (0..<(n * d)).map { flat in
                    let (b, i) = (flat / d, flat % d)
                    return (0..<m).reduce(0.0) { $0 + (u[b * m + $1] * ww[(win[b * m + $1] * m + $1) * d + i]).magnitude }
                }, storage: 2, sum: true)   // the products stored before the sum, as for PReLU
            }
            if k == 2 { return constant(0, maxout.bias.scalars.map { _ in 0 }) }
            // Σ over the batch rows the piece wins of u·w_x.
            var s = [Double](repeating: 0, count: maxout.weight.count)
            for b in 0..<n { for o in 0..<m { for i in 0..<d {
                s[(win[b * m + o] * m + o) * d + i] += (u[b * m + o] * wx[b * d + i]).magnitude
            } } }
            return constant(Double(n), s, storage: 2, sum: true)
        case is Sigmoid:
            // w·u·(1 − 2σ)·σ·(1 − σ) from the saved σ: 1 − σ and 1 − 2σ carry absolute errors of u·σ.
            var s = constant(10, x.scalars.indices.map { wu[$0] * logistic(x[$0]) }, storage: 4)
            s.underflowScale = wu
            return s
        case is Tanh:
            // −2t·w·u·(1 − t²) from the saved t: 1 − t² carries an absolute error of about 2u·t².
            var s = constant(10, x.scalars.indices.map { 6 * wu[$0] * Foundation.tanh(x[$0]).magnitude }, storage: 4)
            s.underflowScale = wu
            return s
        case let elu as ELU:
            // α·eˣ·w·u on x ≤ 0, formed as (y + α)·w·u by some engines: an absolute error of u·α.
            let alpha = elu.alpha.magnitude
            var s = constant(8, x.scalars.indices.map { x[$0] > 0 ? 0 : wu[$0] * alpha * (Foundation.exp(x[$0]) + 1) }, storage: 3)
            s.underflowScale = wu.map { $0 * max(1, alpha) }
            return s
        case let swish as Swish:
            // Autodiff of x·σ(βx) twice: f_xx = 2β·σ′ + β²x·σ″, f_xβ = 2x·σ′ + βx²·σ″ and
            // f_ββ = x³·σ″ from the saved σ (σ′ = σ(1 − σ) and 1 − 2σ carry absolute errors of
            // u·σ, as for sigmoid; |σ″| ≤ σ′ ≤ σ), z = βx rounded once (condition 1 + |z|), the
            // products stored between the steps.
            let beta = swish.beta, wb = w[1].tensor[0]
            let z = x.scalars.map { (beta * $0).magnitude }
            let sigma = x.scalars.indices.map { logistic(beta * x[$0]) * (1 + z[$0]) }
            if k == 0 {
                let outer = x.scalars.indices.map { i in u[i].magnitude * ((beta * wx[i]).magnitude + (x[i] * wb).magnitude) * (2 + z[i]) }
                var s = constant(14, x.scalars.indices.map { outer[$0] * sigma[$0] }, storage: 4)
                s.underflowScale = outer
                return s
            }
            let outer = x.scalars.indices.map { i in u[i].magnitude * x[i].magnitude * (wx[i].magnitude * (2 + z[i]) + wb.magnitude * x[i] * x[i]) }
            var s = constant(Double(x.count + 14), [finiteTotal(x.scalars.indices.map { outer[$0] * sigma[$0] })], storage: 4, sum: true)
            s.underflowScale = [finiteTotal(outer)]
            return s
        case let bn as BatchNorm2D:
            return BatchNormErrorModel(bn, x: x, dy: u).doubleBackward(w.map(\.tensor))[k]
        case let lrn as LRN:
            // Autodiff of the backward pass u·S^−β − A·a·Σ u_o·a_o·S_o^(−β−1): per covering output o,
            // A·|a_k·w_o·u_o| and A·|u_o·a_o·w_k| times S_o^(−β−1), A·B·(β + 1)·|a_k·u_o·a_o|·Σ|w·a|
            // times S_o^(−β−2), and A·|u_k|·Σ|w·a| times S_k^(−β−1); the powers' condition as for the JVP.
            let s = x.shape, plane = s[2] * s[3], channels = s[1], b = lrn.beta.magnitude
            let a = 2 * lrn.alpha.magnitude * b / Double(lrn.size), bb = 2 * lrn.alpha.magnitude / Double(lrn.size)
            let bases = (0..<x.count).map { i -> Double in
                let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
                let q = lrn.window(c, channels: channels).reduce(0.0) { let v = x[(n * channels + $1) * plane + p]; return $0 + v * v }
                return lrn.k + lrn.alpha * q / Double(lrn.size)
            }
            let dots = (0..<x.count).map { i -> Double in
                let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
                return lrn.window(c, channels: channels).reduce(0.0) { let j = (n * channels + $1) * plane + p; return $0 + (x[j] * wx[j]).magnitude }
            }
            let m = (0..<x.count).map { i -> Double in
                let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
                var total = a * u[i].magnitude * dots[i] * pow(bases[i], -lrn.beta - 1)
                for o in 0..<channels where lrn.window(o, channels: channels).contains(c) {
                    let j = (n * channels + o) * plane + p
                    let first = a * ((x[i] * wx[j] * u[j]).magnitude + (u[j] * x[j] * wx[i]).magnitude) * pow(bases[j], -lrn.beta - 1)
                    total += first + a * bb * (b + 1) * (x[i] * u[j] * x[j]).magnitude * dots[j] * pow(bases[j], -lrn.beta - 2)
                }
                return total * (3 + b)
            }
            return constant(Double(3 * min(lrn.size, channels) + 12), m, storage: 4)
        case let l as Softmax:
            // p ⊙ (a ⊙ b − ⟨p, a ⊙ b⟩), a = w − ⟨p, w⟩, b = u − ⟨p, u⟩: autodiff of the saved y's
            // p ⊙ (u − ⟨p, u⟩) through y, the three dot products, the products and differences.
            let axis = l.axis < 0 ? l.axis + x.rank : l.axis
            let len = Double(x.shape[axis])
            var m = [Double](repeating: 0, count: x.count), flushed = m
            for slice in AxisSlices(shape: x.shape, axis: axis).all {
                let p = conditionedProbabilities(slice.map { x[$0] })
                let pw = zip(slice, p).reduce(0.0) { $0 + wx[$1.0].magnitude * $1.1 }, pu = zip(slice, p).reduce(0.0) { $0 + u[$1.0].magnitude * $1.1 }
                let a = slice.map { wx[$0].magnitude + pw }, b = slice.map { u[$0].magnitude + pu }
                let inner = slice.indices.reduce(0.0) { $0 + p[$1] * a[$1] * b[$1] }
                let tw = finiteTotal(slice.map { wx[$0].magnitude }), tu = finiteTotal(slice.map { u[$0].magnitude })
                for (k, i) in slice.enumerated() {
                    m[i] = p[k] * (a[k] * b[k] + inner)
                    flushed[i] = min((wx[i].magnitude + tw) * (u[i].magnitude + tu), .greatestFiniteMagnitude)
                }
            }
            // The dot products are formed one after another, each of len terms: their errors add
            // (Σ γ_len·M_dot ≤ γ_(len + 12)·ΣM), they do not compound.
            var s = constant(len + 12, m, storage: 4)
            s.underflowScale = flushed
            return s
        case let l as LogSoftmax:
            // −Σu·p ⊙ (w − ⟨p, w⟩), autodiff of u − e^y·Σu: Σu, e^y from the stored y, the
            // products w·p, the dot, the difference and the product; stored between the steps.
            let axis = l.axis < 0 ? l.axis + x.rank : l.axis
            let len = Double(x.shape[axis])
            var m = [Double](repeating: 0, count: x.count), flushed = m
            for slice in AxisSlices(shape: x.shape, axis: axis).all {
                let upTotal = finiteTotal(slice.map { u[$0].magnitude })
                softmaxJacobianScale(slice, x, wx, scale: upTotal, into: &m, flushed: &flushed)
            }
            var s = constant(len + 10, m, storage: 4)   // Σu and the dot, one after the other
            s.underflowScale = flushed
            return s
        case let ce as SoftmaxCrossEntropy:
            // (u/N)·p_i ⊙ (w_i − ⟨p_i, w_i⟩) per row, from the stored log p as for log-softmax.
            let (n, classes) = (x.shape[0], x.shape[1])
            let scale = u[0].magnitude / (ce.reduction == .mean ? Double(n) : 1)
            var m = [Double](repeating: 0, count: x.count), flushed = m
            for i in 0..<n { softmaxJacobianScale(Array(i * classes..<(i + 1) * classes), x, wx, scale: scale, into: &m, flushed: &flushed) }
            var s = constant(Double(classes + 12), m, storage: 4)
            s.underflowScale = flushed
            return s
        default:
            throw CaseError("layer", "\(c.layer) has no direct double backward")
        }
    }

    /// r·p̃_k·(|w_k| + Σ_j p̃_j·|w_j|) over one softmax slice into `m` (p̃ the conditioned
    /// probabilities), and r·(|w_k| + Σ_j |w_j|) into `flushed`: a p flushed to zero, times the rest.
    private static func softmaxJacobianScale(_ slice: [Int], _ x: Tensor, _ w: Tensor, scale r: Double,
                                             into m: inout [Double], flushed: inout [Double]) {
        let p = conditionedProbabilities(slice.map { x[$0] })
        let dot = zip(slice, p).reduce(0.0) { $0 + w[$1.0].magnitude * $1.1 }
        let total = finiteTotal(slice.map { w[$0].magnitude })
        for (k, i) in slice.enumerated() {
            m[i] = r * p[k] * (w[i].magnitude + dot)
            flushed[i] = min(r * (w[i].magnitude + total), .greatestFiniteMagnitude)
        }
    }
}

extension BatchNormErrorModel {
    /// A magnitude and its error per unit roundoff, to first order: x̂'s error E_x̂ enters each
    /// term once, not as a factor (|x̂| + E_x̂)³ would.
    struct Magnitude {
        var a: Double, e: Double
        init(_ a: Double, _ e: Double = 0) { self.a = a; self.e = e }
        static func + (l: Self, r: Self) -> Self { Self(l.a + r.a, l.e + r.e) }
        static func * (l: Self, r: Self) -> Self { Self(l.a * r.a, l.a * r.e + l.e * r.a) }
        static func * (l: Self, r: Double) -> Self { Self(l.a * r, l.e * r) }
    }

    /// The double backward's scales (x, γ, β; `dy` is the upstream u): the terms of the
    /// double-double formula (`BatchNorm2D.doubleBackward`) in magnitudes, with x̂'s error and
    /// σ̃'s relative error once per power of σ̃, each error added to its term's magnitude.
    func doubleBackward(_ w: [Tensor]) -> [ErrorScale] {
        let s = x.shape, wx = w[0], wg = w[1]
        var dxM = [Double](repeating: 0, count: x.count), dgM = [Double](repeating: 0, count: s[1])
        for c in 0..<s[1] {
            let idx = layer.indices(s, c), n = Double(idx.count), sd = sigma[c], v = varianceError[c]
            let g = layer.weight[c].magnitude, tg = wg[c].magnitude
            let xh = idx.map { Magnitude(xhat[$0].magnitude, xhatError[$0]) }
            let us = idx.map { Magnitude(dy[$0].magnitude) }, ws = idx.map { Magnitude(wx[$0].magnitude) }
            let ubar = us.reduce(Magnitude(0), +) * (1 / n), wbar = ws.reduce(Magnitude(0), +) * (1 / n)
            let mbar = zip(us, xh).reduce(Magnitude(0)) { $0 + $1.0 * $1.1 } * (1 / n)
            let wxa = zip(ws, xh).reduce(Magnitude(0)) { $0 + $1.0 * $1.1 }
            let wu = zip(ws, us).reduce(Magnitude(0)) { $0 + $1.0 * $1.1 }
            func total(_ m: Magnitude, _ powers: Double) -> Double { m.a + m.e + powers * v * m.a }
            guard layer.training else {
                for (k, i) in idx.enumerated() { dxM[i] = total(us[k] * (tg / sd), 1) }
                dgM[c] = total(wu * (1 / sd), 1)
                continue
            }
            let bracket = wu + ubar * wbar * n + mbar * wxa
            for (k, i) in idx.enumerated() {
                let r = us[k] + ubar + xh[k] * mbar
                let inner = xh[k] * bracket * (g / (n * sd * sd)) + (wxa * r * (1 / n) + mbar * (ws[k] + wbar + xh[k] * wxa * (1 / n))) * (g / (sd * sd))
                dxM[i] = total(inner, 3) + total(r * (tg / sd), 1)
            }
            dgM[c] = total(bracket * (1 / sd), 1)
        }
        return [ErrorScale(terms: Array(repeating: Double(2 * m + 20), count: x.count), magnitude: dxM, storage: 4),
                ErrorScale(terms: Array(repeating: Double(m + 10), count: s[1]), magnitude: dgM, storage: 4, isSum: true),
                ErrorScale(terms: Array(repeating: 1, count: s[1]), magnitude: Array(repeating: 0, count: s[1]))]
    }
}
