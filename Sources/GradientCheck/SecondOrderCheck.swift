import CNNReference
import Dispatch
import Foundation

// Forward-mode and second-order checks of a `SecondOrder` layer, through the same
// GSL rules and tolerance form as the first-order check:
//
//     |a − n| ≤ k·abserr + c·ε·(|a| + S/h)
//
// with S the scale of the rounding noise of the differentiated function.
//
// - JVP: for a random Gaussian tangent v through the input and every parameter (each
//   coordinate scaled by max(1, |θᵢ|), as the first-order step is), each
//   output element's d/dt y_o(θ + t·v) (`gsl_deriv_central`; the forward passes at each t
//   are shared by all outputs) against jvp(θ, v)_o. S = |y_o| + 2⁻¹⁰²³ + A_o: the
//   evaluation's own rounding (relative, and absolute where y_o is subnormal; below 2⁻⁹⁶⁸
//   the forward pass is the correctly rounded one, as at first order), and A_o, a bound on
//   how far rounding the moved point θ + t·v moves y_o: each coordinate is off by at most
//   ε/2·|θᵢ + t·vᵢ|, so y_o by Σᵢ|∂y_o/∂θᵢ|·|θᵢ|·ε/2 (doubled for the moved point and
//   the rounding of the bound). That sum is taken on |J| itself, never on J·|θ|: a
//   softmax row sums to zero, so J·|θ| cancels to nothing at logits near ±1000 while the
//   rounding of each logit still moves y by ~|J|·ulp(1000). The step follows GSL's
//   algorithm with this S as its round-off estimate (`centralDerivative`), and the
//   rounding term is taken at the step used: along a steep tangent (swish at x = −636
//   moved along β, where y ∝ e^{528t}) `gsl_deriv_central`'s ε·|f| term made it retry
//   with a step ~10³ below the nominal one, where the rounding is ~10³ larger.
// - Double backward (what `gradgradcheck` does): with a random cotangent w of the gradient
//   g(x, θ, u) = backward(x, u), G = ⟨w, g⟩ is differentiated along every element of x,
//   θ and u (element mode) and along random Gaussian directions through all of them
//   (direction mode), against `doubleBackward`. S = Σ|wᵢ·gᵢ| (each gᵢ is correctly
//   rounded; G is a compensated sum), plus Σ|∇ᵢ·zᵢ| along a direction (the rounding of
//   the moved point, as first order does).
//
// Kinks, as at first order: a piecewise layer's JVP is differentiated on the piece
// `activeSet` selects at the point (`forward(_:piece:)`). The backward has no piece
// argument, so where the active set changes within the stencil the derivative is taken
// one-sided, with a step that stays within one piece, on the side whose piece is the
// point's (the second derivative of the selected piece); when neither side's piece is the
// point's, the analytic value must lie between the one-sided derivatives.

extension GradientChecker {
    /// The cotangent w of the gradient the second-order check draws: signed uniform values
    /// from `seed` for the input and every parameter.
    public static func cotangents(for layer: any Layer, input: Tensor, seed: UInt) -> Tangents {
        let rng = SeededRandom(seed: seed &+ 0x5eed)
        func draw(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, scalars: t.scalars.map { _ in rng.signedUnit() }) }
        return Tangents(input: draw(input), parameters: layer.parameters.map { draw($0.tensor) })
    }

    /// The forward-mode (JVP) reports, `tangents` random tangents each.
    static func checkForwardMode(_ layer: any SecondOrder, input: Tensor, upstream: Tensor,
                                 configuration: GradientCheckConfiguration, rng: SeededRandom) -> [TensorReport] {
        var run = SecondOrderRun(layer: layer, input: input, upstream: upstream, configuration: configuration)
        return (0..<configuration.tangents).map { run.checkJVP($0, rng) }
    }

    /// The double-backward reports: every element of x, θ and u, then random directions.
    static func checkSecondOrder(_ layer: any SecondOrder, input: Tensor, upstream: Tensor,
                                 configuration: GradientCheckConfiguration, rng: SeededRandom) -> [TensorReport] {
        var run = SecondOrderRun(layer: layer, input: input, upstream: upstream, configuration: configuration)
        var reports: [TensorReport] = []
        if configuration.elementwise {
            for slot in 0...(layer.parameters.count + 1) { reports.append(run.checkDoubleBackwardElements(slot)) }
        }
        if configuration.directions > 0 { reports.append(run.checkDoubleBackwardDirections(configuration.directions, rng)) }
        return reports
    }
}

struct SecondOrderRun {
    var layer: any SecondOrder
    var input: Tensor
    var upstream: Tensor
    let configuration: GradientCheckConfiguration
    /// w, and ∇G: the double backward at the point.
    let cotangents: Tangents
    let analytic: DoubleBackward

    init(layer: any SecondOrder, input: Tensor, upstream: Tensor, configuration: GradientCheckConfiguration) {
        self.layer = layer
        self.input = input
        self.upstream = upstream
        self.configuration = configuration
        cotangents = GradientChecker.cotangents(for: layer, input: input, seed: configuration.seed)
        analytic = layer.doubleBackward(input, outputGradient: upstream, cotangents: cotangents)
    }

    /// Slots: 0 the input, 1…P the parameters, P + 1 the upstream u.
    var slotCount: Int { layer.parameters.count + 2 }
    var names: [String] { [layer.inputName] + layer.parameters.map(\.name) + ["upstream"] }
    func tensor(_ slot: Int) -> Tensor {
        slot == 0 ? input : slot <= layer.parameters.count ? layer.parameters[slot - 1].tensor : upstream
    }
    func analyticGradient(_ slot: Int) -> Tensor {
        slot == 0 ? analytic.gradients.input
            : slot <= layer.parameters.count ? analytic.gradients.parameters[slot - 1] : analytic.outputGradient
    }
    mutating func set(_ slot: Int, _ i: Int, _ value: Double) {
        if slot == 0 { input[i] = value } else if slot <= layer.parameters.count { layer.parameters[slot - 1].tensor[i] = value } else { upstream[i] = value }
    }

    var eps: Double { Double.ulpOfOne }

    // MARK: JVP

    mutating func checkJVP(_ d: Int, _ rng: SeededRandom) -> TensorReport {
        let p = layer.parameters.count
        let base = (0...p).map { tensor($0) }
        // Each coordinate's tangent is scaled by max(1, |θᵢ|), the first-order step's scale:
        // a JVP is linear in v, so any tangent checks it, and with a unit tangent a
        // coordinate near 1e150 would not move at all (ulp(1e150) ≈ 1e134 ≫ t), leaving only
        // the rounding of the moved point, ~|J|·|θ|·ε/t against a JVP of ~|J|·1.
        let v = base.map { t in t.scalars.map { θ in rng.gaussian() * (θ.isFinite ? min(max(1, θ.magnitude), 0x1p1000) : 1) } }
        let tangents = Tangents(input: Tensor(shape: input.shape, scalars: v[0]),
                                parameters: (0..<p).map { Tensor(shape: base[$0 + 1].shape, scalars: v[$0 + 1]) })
        let a = layer.jvp(input, tangents: tangents)
        let y0 = layer.forward(input, accumulator: CompensatedSum.self)
        // As at first order: below 2⁻⁹⁶⁸ double-double's low word is subnormal, so the
        // objective is the correctly rounded forward pass (within the absolute term of S).
        let nearUnderflow = y0.scalars.contains { $0 != 0 && $0.magnitude < 0x1p-968 }
        let moved = movedRounding(base)
        let h = configuration.relativeStep
        let piece = layer.activeSet(input)
        let frozen = layer is any PiecewiseSmooth && !piece.isEmpty ? piece : nil
        var probe = self
        func move(_ t: Double) {
            for s in 0...p { for i in 0..<base[s].count { probe.set(s, i, base[s][i] + t * v[s][i]) } }
        }
        var crossesKink = false
        if !piece.isEmpty {
            for t in [h, -h, h / 2, -h / 2] {
                move(t)
                if probe.layer.activeSet(probe.input) != piece { crossesKink = true }
            }
        }
        // GSL's rules evaluate at a few t; every output's derivative reuses those passes.
        var cache: [UInt64: [Double]] = [:]
        func outputs(_ t: Double) -> [Double] {
            if let y = cache[t.bitPattern] { return y }
            move(t)
            let y: Tensor
            if let frozen, let piecewise = probe.layer as? any PiecewiseSmooth {
                y = nearUnderflow ? piecewise.forward(probe.input, piece: frozen, accumulator: CorrectlyRounded.self)
                    : piecewise.forward(probe.input, piece: frozen, accumulator: CompensatedSum.self)
            } else {
                y = nearUnderflow ? probe.layer.forward(probe.input, accumulator: CorrectlyRounded.self)
                    : probe.layer.forward(probe.input, accumulator: CompensatedSum.self)
            }
            cache[t.bitPattern] = y.scalars
            return y.scalars
        }
        var report = TensorReport(name: "jvp t\(d)")
        let kind: ElementResult.Kind = crossesKink ? .nearKink : .smooth
        for o in 0..<a.count {
            let name = "jvp." + layer.outputName, index = a.index(ofFlat: o)
            guard y0[o].isFinite, base.allSatisfy({ $0.scalars.allSatisfy(\.isFinite) }) else {
                report.record(ElementResult(tensor: name, index: index, analytic: a[o], numeric: .nan, oneSided: nil,
                                            abserr: 0, tolerance: 0, kind: .notFinite, ratio: 0), keep: configuration.failuresKept)
                continue
            }
            let noise = y0[o].magnitude + 0x1p-1023 + moved[o]
            let numeric = centralDerivative(at: 0, step: h, roundoff: { configuration.c * eps * noise / $0 }) { outputs($0)[o] }
            let tol = configuration.k * numeric.truncation + configuration.c * eps * (a[o].magnitude + noise / numeric.step)
            let r = a[o].isFinite ? ratio((a[o] - numeric.value).magnitude, tol) : .infinity
            report.record(ElementResult(tensor: name, index: index, analytic: a[o], numeric: numeric.value, oneSided: nil,
                                        abserr: numeric.truncation, tolerance: tol, kind: kind, ratio: r), keep: configuration.failuresKept)
        }
        return report
    }

    /// Per output, a bound on Σᵢ|∂y_o/∂θᵢ|·|θᵢ| (over the input and every parameter),
    /// doubled: how far rounding θ + t·v moves y_o, per unit ε. On |J| itself: for a sum
    /// of products, the layer on absolute values with `TermMagnitude` (Σ|terms| ≥ the
    /// sum); for a `Pointwise` layer, where y_o reads one element of each tensor, the
    /// JVP along |θ| of each tensor in turn (one term each, so no cancellation); for any
    /// other layer, J row by row (a backward pass per output) or column by column (a JVP
    /// per element), whichever is fewer passes.
    func movedRounding(_ base: [Tensor]) -> [Double] {
        let p = layer.parameters.count
        if layer is any SumOfProducts {
            var absolute = layer
            for k in absolute.parameters.indices {
                absolute.parameters[k].tensor.scalars = absolute.parameters[k].tensor.scalars.map(\.magnitude)
            }
            let m = absolute.forward(Tensor(shape: input.shape, scalars: input.scalars.map(\.magnitude)), accumulator: TermMagnitude.self)
            return m.scalars.map { 2 * $0 }
        }
        let y = layer.forward(input, accumulator: CompensatedSum.self)
        var total = [Double](repeating: 0, count: y.count)
        func zeros() -> [Tensor] { base.map { Tensor(zeros: $0.shape) } }
        func jvp(_ along: [Tensor]) -> Tensor {
            layer.jvp(input, tangents: Tangents(input: along[0], parameters: Array(along.dropFirst())))
        }
        func add(_ j: Tensor, weight: Double = 1) {
            for o in total.indices where j[o].isFinite { total[o] += 2 * weight * j[o].magnitude }
        }
        if layer is any Pointwise {
            for s in 0...p {
                var along = zeros()
                along[s] = Tensor(shape: base[s].shape, scalars: base[s].scalars.map(\.magnitude))
                add(jvp(along))
            }
            return total
        }
        let elements = base.reduce(0) { $0 + $1.count }
        if y.count <= elements {
            for o in total.indices {
                var e = Tensor(zeros: y.shape)
                e[o] = 1
                let g = layer.backward(input, outputGradient: e)
                let row = [g.input] + g.parameters
                var sum = 0.0
                for (gs, ts) in zip(row, base) { for (gi, ti) in zip(gs.scalars, ts.scalars) where gi.isFinite { sum += (gi * ti).magnitude } }
                total[o] = 2 * sum
            }
        } else {
            for s in 0...p {
                for i in 0..<base[s].count where base[s][i] != 0 && base[s][i].isFinite {
                    var along = zeros()
                    along[s][i] = 1
                    add(jvp(along), weight: base[s][i].magnitude)
                }
            }
        }
        return total
    }

    // MARK: Double backward

    /// G = ⟨w, backward(x, u)⟩ at the current point, a compensated sum, and Σ|wᵢ·gᵢ|.
    func objective() -> (value: Double, scale: Double) {
        let g = layer.backward(input, outputGradient: upstream)
        var scale = 0.0
        let value = CompensatedSum.sum { acc in
            for (w, gi) in zip(cotangents.input.scalars, g.input.scalars) { acc.add(w, times: gi); scale += (w * gi).magnitude }
            for (wt, gt) in zip(cotangents.parameters, g.parameters) {
                for (w, gi) in zip(wt.scalars, gt.scalars) { acc.add(w, times: gi); scale += (w * gi).magnitude }
            }
        }
        return (value, scale)
    }

    mutating func checkDoubleBackwardElements(_ slot: Int) -> TensorReport {
        let count = tensor(slot).count
        let (g0, scale) = objective()
        let results = ResultSlots(count: count)
        let chunks = min(count, max(1, ProcessInfo.processInfo.activeProcessorCount) * 4)
        let copy = self
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            var run = copy
            for i in stride(from: chunk * count / chunks, to: (chunk + 1) * count / chunks, by: 1) {
                results.store(i, run.checkElement(slot, i, g0, scale))
            }
        }
        var report = TensorReport(name: "dd." + names[slot])
        for r in results.all { report.record(r, keep: configuration.failuresKept) }
        return report
    }

    mutating func checkElement(_ slot: Int, _ i: Int, _ g0: Double, _ scale: Double) -> ElementResult {
        let x = tensor(slot)[i], a = analyticGradient(slot)[i]
        let name = "dd." + names[slot], index = tensor(slot).index(ofFlat: i)
        guard x.isFinite, g0.isFinite else {
            return ElementResult(tensor: name, index: index, analytic: a, numeric: .nan, oneSided: nil, abserr: 0,
                                 tolerance: 0, kind: .notFinite, ratio: 0)
        }
        let h = (x + configuration.relativeStep * max(1, x.magnitude)) - x
        let movesPieces = slot <= layer.parameters.count
        var probe = self
        // S is the largest Σ|wᵢ·gᵢ| over the points evaluated: g can grow from 0 at the point
        // (a constant upstream to softmax) to O(t) beside it.
        var reach = scale
        return judgeLine(a, at: x, step: h, noise: { reach }, beside: (x.nextDown, x.nextUp), name: name, index: index,
                         value: { t in
                             probe.set(slot, i, t)
                             defer { probe.set(slot, i, x) }
                             let o = probe.objective()
                             reach = max(reach, o.scale)
                             return o.value
                         },
                         piece: { t in
                             guard movesPieces else { return [] }
                             probe.set(slot, i, t)
                             defer { probe.set(slot, i, x) }
                             return probe.layer.activeSet(probe.input)
                         })
    }

    mutating func checkDoubleBackwardDirections(_ count: Int, _ rng: SeededRandom) -> TensorReport {
        var report = TensorReport(name: "dd.directions")
        let slots = Array(0..<slotCount)
        let base = slots.map { tensor($0) }
        let (g0, scale) = objective()
        let moved = slots.reduce(0.0) { total, s in
            zip(analyticGradient(s).scalars, base[s].scalars).reduce(total) { $0 + ($1.0 * $1.1).magnitude }
        }
        let h = configuration.relativeStep
        for d in 0..<count {
            let v = base.map { t in t.scalars.map { _ in rng.gaussian() } }
            let a = CorrectlyRounded.sum { acc in
                for s in slots { for (g, vi) in zip(analyticGradient(s).scalars, v[s]) { acc.add(g, times: vi) } }
            }
            guard g0.isFinite, base.allSatisfy({ $0.scalars.allSatisfy(\.isFinite) }) else {
                report.record(ElementResult(tensor: "direction", index: [d], analytic: a, numeric: .nan, oneSided: nil,
                                            abserr: 0, tolerance: 0, kind: .notFinite, ratio: 0), keep: configuration.failuresKept)
                continue
            }
            var probe = self
            func move(_ t: Double) {
                for s in slots { for i in 0..<base[s].count { probe.set(s, i, base[s][i] + t * v[s][i]) } }
            }
            // Beside t = 0 on each side: a step far below any stencil's, still moving every coordinate.
            let tiny = h * 0x1p-30
            var reach = scale
            report.record(judgeLine(a, at: 0, step: h, noise: { reach + moved }, beside: (-tiny, tiny), name: "direction", index: [d],
                                    value: { t in
                                        move(t)
                                        let o = probe.objective()
                                        reach = max(reach, o.scale)
                                        return o.value
                                    },
                                    piece: { t in move(t); return probe.layer.activeSet(probe.input) }),
                          keep: configuration.failuresKept)
        }
        return report
    }

    /// Judges the analytic derivative a of `value` at x, central where the active set is
    /// the same over the stencil, else one-sided on the point's own piece (see the top).
    func judgeLine(_ a: Double, at x: Double, step h: Double, noise: () -> Double, beside: (Double, Double),
                   name: String, index: [Int], value: (Double) -> Double, piece: (Double) -> [Int]) -> ElementResult {
        func tolerance(_ abserr: Double, _ h: Double) -> Double {
            configuration.k * abserr + configuration.c * eps * (a.magnitude + noise() / h)
        }
        func result(_ n: NumericalDerivative, _ h: Double, _ kind: ElementResult.Kind, oneSided: (Double, Double)? = nil) -> ElementResult {
            let tol = tolerance(n.abserr, h)
            let r = a.isFinite ? ratio((a - n.value).magnitude, tol) : .infinity
            return ElementResult(tensor: name, index: index, analytic: a, numeric: n.value, oneSided: oneSided,
                                 abserr: n.abserr, tolerance: tol, kind: kind, ratio: r)
        }
        let here = piece(x)
        if here.isEmpty || [x + h, x - h, x + h / 2, x - h / 2].allSatisfy({ piece($0) == here }) {
            // GSL's rule with this noise as its round-off estimate, judged at the step used (as the JVP).
            let n = centralDerivative(at: x, step: h, roundoff: { configuration.c * eps * noise() / $0 }, value)
            return result(NumericalDerivative(value: n.value, abserr: n.truncation), n.step, .smooth)
        }
        let leftPiece = piece(beside.0), rightPiece = piece(beside.1)
        // The largest h/4^k whose one-sided stencil stays within the piece beside x.
        func cleanStep(_ direction: Double, _ target: [Int]) -> Double {
            var s = h
            while x + direction * s / 4 != x {
                if piece(x + direction * s) == target && piece(x + direction * s / 4) == target && piece(x + direction * s / 2) == target { return s }
                s /= 4
            }
            return s
        }
        let onKink = leftPiece != rightPiece
        if rightPiece == here {
            let s = (x + cleanStep(1, here)) - x
            return result(gslDerivative(.forward, at: x, step: s, value), s / 4, onKink ? .kink : .nearKink)
        }
        if leftPiece == here {
            let s = x - (x - cleanStep(-1, here))
            return result(gslDerivative(.backward, at: x, step: s, value), s / 4, onKink ? .kink : .nearKink)
        }
        let hr = cleanStep(1, rightPiece), hl = cleanStep(-1, leftPiece)
        let right = gslDerivative(.forward, at: x, step: (x + hr) - x, value)
        let left = gslDerivative(.backward, at: x, step: x - (x - hl), value)
        let tol = tolerance(left.abserr + right.abserr, min(hl, hr) / 4)
        let low = min(left.value, right.value), high = max(left.value, right.value)
        let outside = !a.isFinite ? Double.infinity : a < low ? low - a : (a > high ? a - high : 0)
        return ElementResult(tensor: name, index: index, analytic: a, numeric: (left.value + right.value) / 2,
                             oneSided: (left.value, right.value), abserr: left.abserr + right.abserr,
                             tolerance: tol, kind: .kink, ratio: ratio(outside, tol))
    }
}
