import CNNReference
import Dispatch
import Foundation

/// Finite-difference gradient checks of any `Layer` through GSL.
///
/// The objective is L(θ) = ⟨upstream, forward(θ)⟩ (for a loss, the loss times
/// its upstream scalar). For every element θᵢ of the input and of every
/// parameter, `gsl_deriv_central` on t ↦ L(θ with θᵢ = t) gives a numerical
/// derivative n and GSL's error estimate abserr, and the analytic value a from
/// `backward` passes when
///
///     |a − n| ≤ k·abserr + c·ε·(|a| + S/h)
///
/// - k = 2: abserr estimates the truncation error of the 5-point rule from the
///   3-point rule's, |r5 − r3|/h, which is O(h²) while the rule's error is O(h⁴)
///   (deriv.c); 2 is the factor GSL's own tests allow (deriv/test.c).
/// - c = 4: each evaluation of L is a compensated sum of correctly accumulated
///   terms, so its rounding error is at most about ε·S with S = Σ|upstreamᵢ·yᵢ|;
///   the 5-point rule weighs four evaluations with coefficients whose absolute
///   values sum to 3/h, so the numerical derivative carries at most 3·ε·S/h of
///   rounding, and the analytic value, rounded once, ε·|a|. GSL's own round-off
///   term uses ε·|f|, which misses cancellation inside ⟨upstream, y⟩.
/// - S is local: an element check differentiates L(t) − L(θ) formed as
///   Σⱼ upstreamⱼ·(yⱼ(t) − yⱼ(θ)), so an output that does not read θᵢ contributes an exact 0
///   (the forward pass is deterministic) and no rounding; S sums |upstreamⱼ·yⱼ| over the
///   outputs that read θᵢ: those a NaN in θᵢ changes (for every layer here that is all of
///   them: `aNaNMarksEveryOutputThatReadsTheElement`) and any that changed within the
///   stencil (a layer that swallows NaN).
///
/// The step is h = 2⁻¹³·max(1, |θᵢ|), made exactly representable as (θᵢ + h) − θᵢ.
///
/// Kinks: GSL's abserr is no bound across a kink (it reports ~1e-16 at
/// ReLU(0), where the error is 0.5). The layer's `activeSet` (ReLU masks, pool
/// and maxout argmax, active hinge terms) is compared at θᵢ and θᵢ ± h; when it
/// changes, the one-sided derivatives (`gsl_deriv_forward`/`backward`) are
/// taken with steps that stay within one piece. If both sides lie in one piece
/// the point is smooth and judged against them; otherwise θᵢ sits on a kink and
/// the analytic value must lie between the one-sided derivatives (within their
/// tolerance). A smooth-looking element that fails is re-examined the same way,
/// so a kink the active set does not know about is reported, never a false
/// failure, while a wrong derivative away from kinks still fails.
public struct GradientCheckConfiguration: Sendable {
    /// Check every element of every tensor.
    public var elementwise = true
    /// Also check this many random signed directions through all tensors at once.
    public var directions = 0
    /// Seeds the random upstream (when a case has none) and the directions.
    public var seed: UInt = 1
    public var relativeStep = 0x1p-13
    public var k = 2.0
    public var c = 4.0
    /// How many failing elements a tensor report keeps for the message.
    public var failuresKept = 5
    /// 1: the backward pass, and the JVP along `tangents` random tangents (a `SecondOrder`
    /// layer); 2: the double backward instead, every element (`elementwise`) and along
    /// `directions` random directions through x, θ and the upstream.
    public var order = 1
    /// Random tangents per case for the JVP check at order 1 (2 by default, as
    /// `cnnref gradcheck --tangents`; 0 turns it off).
    public var tangents = 2

    public init(elementwise: Bool = true, directions: Int = 0, seed: UInt = 1, order: Int = 1, tangents: Int = 2) {
        self.elementwise = elementwise
        self.directions = directions
        self.seed = seed
        self.order = order
        self.tangents = tangents
    }
}

/// What the checker found at one element (or along one direction).
public struct ElementResult: Sendable {
    public enum Kind: String, Sendable {
        /// No kink within the stencil; central difference.
        case smooth
        /// A kink near but not at the point; judged by one-sided differences on its side.
        case nearKink = "near-kink"
        /// The point sits on a kink; the analytic value must lie between the one-sided derivatives.
        case kink
        /// The objective is not finite here (an input or output of ±∞ or NaN): nothing to differentiate.
        case notFinite = "not-finite"
        /// A sum-of-products layer, affine in the element: the exact slope between two points.
        case affine
    }
    public var tensor: String
    /// The multi-index in the tensor, or `[d]` for direction d.
    public var index: [Int]
    public var analytic: Double
    public var numeric: Double
    /// For a kink: the one-sided derivatives (left, right).
    public var oneSided: (left: Double, right: Double)?
    public var abserr: Double
    public var tolerance: Double
    public var kind: Kind
    /// |analytic − numeric| / tolerance; for a kink, the distance outside the one-sided interval / tolerance.
    public var ratio: Double
    public var passed: Bool { ratio <= 1 }

    public var summary: String {
        let at = "\(tensor)[\(index.map(String.init).joined(separator: ","))]"
        if kind == .kink, let s = oneSided {
            return "\(at): kink: analytic \(analytic) vs one-sided [\(s.left), \(s.right)], tolerance \(tolerance)"
        }
        return "\(at): analytic \(analytic) numeric \(numeric) |diff| \((analytic - numeric).magnitude) tolerance \(tolerance) (abserr \(abserr), \(kind.rawValue))"
    }
}

/// The verdict for one tensor of one case.
public struct TensorReport: Sendable {
    public var name: String
    public var checked = 0
    public var kinks = 0
    /// Elements where the objective is not finite, so no derivative exists to compare.
    public var notFinite = 0
    public var worst: ElementResult?
    public var failures: [ElementResult] = []
    public var failed = 0
    /// tolerance/|analytic| of every element with a nonzero analytic value: the smallest
    /// relative error in that element the check is sure to catch is about twice it.
    public var resolutions: [Double] = []
    public var worstResolution: Double? { resolutions.max() }
    public var medianResolution: Double? {
        guard !resolutions.isEmpty else { return nil }
        let sorted = resolutions.sorted()
        return sorted[sorted.count / 2]
    }
    public var passed: Bool { failed == 0 }
    public var worstRatio: Double { worst?.ratio ?? 0 }
}

/// A check that needs no finite differences.
public struct StructuralCheck: Sendable {
    public var name: String
    public var passed: Bool
    public var detail: String
}

public struct GradientCheckReport: Sendable {
    public var caseID: String
    public var tensors: [TensorReport]
    public var structural: [StructuralCheck]
    /// What was not checked and why (a layer that does not conform to `SecondOrder`).
    public var notes: [String] = []
    public var passed: Bool { tensors.allSatisfy(\.passed) && structural.allSatisfy(\.passed) }
}

public enum GradientChecker {
    /// Checks `layer` at `input`; `upstream` defaults to a seeded random signed
    /// tensor (for a loss, the scalar 1).
    public static func check(_ layer: any Layer, input: Tensor, upstream: Tensor? = nil, caseID: String = "",
                             configuration: GradientCheckConfiguration = .init()) throws(CaseError) -> GradientCheckReport {
        let outShape = try layer.outputShape(forInput: input.shape)
        let rng = SeededRandom(seed: configuration.seed)
        let u = upstream ?? randomUpstream(outShape, rng)
        guard u.shape == outShape else {
            throw CaseError("upstream.shape", "expected the output shape \(outShape), found \(u.shape)")
        }
        var run = Run(layer: layer, input: input, upstream: u, configuration: configuration)
        var tensors: [TensorReport] = []
        var notes: [String] = []
        let secondOrder = layer as? any SecondOrder
        if configuration.order == 2 {
            guard let secondOrder else {
                // Asked for explicitly: a layer without a double backward fails, it is not skipped.
                return GradientCheckReport(caseID: caseID, tensors: [], structural: [
                    StructuralCheck(name: "second order", passed: false,
                                    detail: "\(type(of: layer).id) does not conform to SecondOrder: no double backward to check")])
            }
            tensors = GradientChecker.checkSecondOrder(secondOrder, input: input, upstream: u, configuration: configuration, rng: rng)
            return GradientCheckReport(caseID: caseID, tensors: tensors, structural: run.structuralChecks(outShape))
        }
        if configuration.elementwise {
            for slot in 0...layer.parameters.count { tensors.append(run.checkElements(slot)) }
        }
        if configuration.directions > 0 {
            tensors.append(run.checkDirections(configuration.directions, rng))
        }
        if let secondOrder, configuration.tangents > 0 {
            tensors += GradientChecker.checkForwardMode(secondOrder, input: input, upstream: u, configuration: configuration, rng: rng)
        } else if secondOrder == nil {
            notes.append("forward mode not checked: \(type(of: layer).id) does not conform to SecondOrder (no jvp)")
        }
        return GradientCheckReport(caseID: caseID, tensors: tensors, structural: run.structuralChecks(outShape), notes: notes)
    }
}

extension GradientChecker {
    /// The upstream `check` draws when a case has none: signed uniform values in
    /// [-1, 1) from the seed (for a loss, the scalar 1).
    public static func upstream(for layer: any Layer, input: Tensor, seed: UInt) throws(CaseError) -> Tensor {
        randomUpstream(try layer.outputShape(forInput: input.shape), SeededRandom(seed: seed))
    }

    static func randomUpstream(_ shape: [Int], _ rng: SeededRandom) -> Tensor {
        shape.isEmpty ? Tensor(scalar: 1) : Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in rng.signedUnit() })
    }
}

/// One check in progress: the layer, the point, the upstream and the analytic gradients.
struct Run {
    var layer: any Layer
    var input: Tensor
    let upstream: Tensor
    let configuration: GradientCheckConfiguration
    var analytic: Gradients
    /// Σ|upstreamᵢ·yᵢ| at the point, plus Σ|upstreamᵢ|·2⁻¹⁰²³ for the absolute rounding
    /// (half a subnormal step, with c's margin) of each output: the scale of the
    /// objective's rounding noise.
    let scale: Double
    /// An output of a layer that is not a sum of products lies below 2⁻⁹⁶⁸, where
    /// double-double's low word is subnormal and its evaluation no better than a few
    /// subnormal steps: the objective then uses the correctly rounded forward pass,
    /// whose error is within the absolute term of `scale`.
    let nearUnderflow: Bool
    /// L at the point; when it is not finite there is nothing to differentiate.
    let baseObjective: Double
    /// The output at the point, by the accumulator element checks evaluate L with (`objective(_:_:_:piece:)`).
    let baseOutput: [Double]
    /// An `ExtendedForward` layer's double-double output at the point, which element checks
    /// difference instead (empty for other layers, and where an output lies below 2⁻⁹⁶⁸, where
    /// the low word would be subnormal).
    let baseExtended: [DoubleDouble]
    /// Mⱼ with each double-double output within 2⁻⁸⁰·Mⱼ (`ExtendedForward.extendedErrorScale`).
    let extendedScale: [Double]
    /// The outputs that read the element being checked (`OutputMask`); nil outside element checks.
    var reading: OutputMask?
    /// S over the outputs a NaN in the element changes, for doubles and for double-double:
    /// the element's objective is offset by S (by S·2⁻⁸⁰/ε for double-double), so that GSL's
    /// round-off estimate, ε·|f|, sees the noise of those outputs (a bare difference near 0
    /// would make GSL shrink its step into the noise).
    var readingScales = (double: 0.0, extended: 0.0)
    /// For a `SumOfProducts` layer, element checks evaluate L with plain loops, whose
    /// rounding is bounded from the layer's own sums (see `roundoff`).
    let plain: PlainNoise?
    /// ∂(Σᵢ|uᵢ|·Mᵢ)/∂|θ| of the element being checked (for `roundoff`).
    var magnitudeSlope = 0.0

    /// The rounding of L computed with plain loops: |fl(L) − L| ≤ (γ_n + γ_m)·Σᵢ|uᵢ|·Mᵢ,
    /// with Mᵢ = Σ|terms| of output i (Higham 2002, eq. 3.5, for the n-term sums and for
    /// the m-term sum over the outputs, since |yᵢ| ≤ Mᵢ). Mᵢ grows with |θⱼ|, by at most
    /// h·∂(Σ|uᵢ|Mᵢ)/∂|θⱼ| over the stencil, which the layer gives on absolute values.
    struct PlainNoise {
        var gamma: Double                  // γ_n + γ_m for the largest n
        var terms: Double                  // n, the longest sum
        var outputs: Double                // m, the number of outputs
        var magnitude: Double              // Σᵢ|uᵢ|·Mᵢ at the point
        var slope: [Tensor]                // ∂/∂|θ| of it, per slot
    }

    init(layer: any Layer, input: Tensor, upstream: Tensor, configuration: GradientCheckConfiguration) {
        self.layer = layer
        self.input = input
        self.upstream = upstream
        self.configuration = configuration
        analytic = layer.backward(input, outputGradient: upstream)
        let y = layer.forward(input, accumulator: CompensatedSum.self)
        scale = zip(upstream.scalars, y.scalars).reduce(0) { $0 + ($1.0 * $1.1).magnitude + $1.0.magnitude * 0x1p-1023 }
        nearUnderflow = !(layer is any SumOfProducts) && y.scalars.contains { $0 != 0 && $0.magnitude < 0x1p-968 }
        let u = upstream.scalars
        baseObjective = CompensatedSum.sum { acc in for (a, b) in zip(u, y.scalars) { acc.add(a, times: b) } }
        baseOutput = nearUnderflow ? layer.forward(input, accumulator: CorrectlyRounded.self).scalars : y.scalars
        // Double-double only where every output is 0 or at least 2⁻⁹⁶⁸ and every error scale is
        // finite (an LRN base that overflows has none); else the doubles.
        var extended: [DoubleDouble] = [], scales: [Double] = []
        if !nearUnderflow, let layer = layer as? any ExtendedForward {
            let e = layer.forwardExtended(input)
            if e.allSatisfy({ $0.hi == 0 || !($0.hi.magnitude < 0x1p-968) }) {
                let m = layer.extendedErrorScale(input, e)
                if m.allSatisfy(\.isFinite) { (extended, scales) = (e, m) }
            }
        }
        baseExtended = extended
        extendedScale = scales
        if layer is any SumOfProducts && configuration.elementwise {
            var absolute = layer
            for k in absolute.parameters.indices {
                absolute.parameters[k].tensor.scalars = absolute.parameters[k].tensor.scalars.map(\.magnitude)
            }
            let absX = Tensor(shape: input.shape, scalars: input.scalars.map(\.magnitude))
            let absU = Tensor(shape: upstream.shape, scalars: u.map(\.magnitude))
            let m = absolute.forward(absX, accumulator: TermMagnitude.self)
            let n = layer.forward(input, accumulator: TermCount.self).scalars.max() ?? 1
            let slopes = absolute.backward(absX, outputGradient: absU)
            let unit = 0x1p-53
            plain = PlainNoise(gamma: gamma(n, unit) + gamma(Double(y.count), unit), terms: n, outputs: Double(y.count),
                               magnitude: zip(absU.scalars, m.scalars).reduce(0) { $0 + $1.0 * $1.1 },
                               slope: [slopes.input] + slopes.parameters)
        } else {
            plain = nil
        }
    }

    var names: [String] { [layer.inputName] + layer.parameters.map(\.name) }

    /// The tensor in `slot` (0 = input, 1… = parameters).
    func tensor(_ slot: Int) -> Tensor { slot == 0 ? input : layer.parameters[slot - 1].tensor }
    func analyticGradient(_ slot: Int) -> Tensor { slot == 0 ? analytic.input : analytic.parameters[slot - 1] }

    mutating func set(_ slot: Int, _ i: Int, _ value: Double) {
        if slot == 0 { input[i] = value } else { layer.parameters[slot - 1].tensor[i] = value }
    }

    /// L at the current point; with `piece`, L of that smooth piece of a piecewise-smooth layer.
    func objective(piece: [Int]? = nil, plainLoops: Bool = false) -> Double {
        if plainLoops, piece == nil, !nearUnderflow {
            let y = layer.forward(input, accumulator: PlainSum.self).scalars, u = upstream.scalars
            return PlainSum.sum { acc in for (a, b) in zip(u, y) { acc.add(a, times: b) } }
        }
        return weightedSum(output(piece: piece).scalars).value
    }

    /// ⟨u, y − base⟩ + offset as a compensated sum (base nil: ⟨u, y⟩), and Σ|uⱼ·yⱼ|.
    func weightedSum(_ y: [Double], minus base: [Double]? = nil, plus offset: Double = 0) -> (value: Double, reach: Double) {
        let u = upstream.scalars
        let value = CompensatedSum.sum { acc in
            acc.add(offset)
            for k in u.indices { acc.add(u[k], times: base.map { y[k] - $0[k] } ?? y[k]) }
        }
        return (value, zip(u, y).reduce(0) { $0 + ($1.0 * $1.1).magnitude })
    }

    /// The same from double-double outputs, rounded once at the end.
    func weightedSum(_ y: [DoubleDouble], minus base: [DoubleDouble]? = nil, plus offset: Double = 0) -> (value: Double, reach: Double) {
        let u = upstream.scalars
        var sum = DoubleDoubleSum()
        sum.add(DoubleDouble(offset))
        for k in u.indices { sum.add(DoubleDouble(u[k]) * (base.map { y[k] - $0[k] } ?? y[k])) }
        return (sum.total.value, zip(u, y).reduce(0) { $0 + ($1.0 * $1.1.hi).magnitude })
    }

    /// `body` on this run with element i of slot set to t (restored afterwards).
    mutating func at<T>(_ slot: Int, _ i: Int, _ t: Double, _ body: (Run) -> T) -> T {
        let saved = tensor(slot)[i]
        set(slot, i, t)
        defer { set(slot, i, saved) }
        return body(self)
    }

    /// L (or L of `piece`) with element i of slot set to t (restored afterwards), up to a
    /// constant: for a sum-of-products layer with plain loops, L itself; otherwise
    /// S + L(t) − L(θ) = S + Σⱼ uⱼ·(yⱼ(t) − yⱼ(θ)) (`readingScales`), recording in `reading` the
    /// outputs that changed.
    mutating func objective(_ slot: Int, _ i: Int, _ t: Double, piece: [Int]? = nil) -> Double {
        at(slot, i, t) { run in
            if run.plain != nil && piece == nil { return run.objective(piece: nil, plainLoops: true) }
            if piece == nil, !run.baseExtended.isEmpty, let extended = run.layer as? any ExtendedForward {
                let y = extended.forwardExtended(run.input), base = run.baseExtended
                run.reading?.mark { y[$0].hi.bitPattern != base[$0].hi.bitPattern || y[$0].lo.bitPattern != base[$0].lo.bitPattern }
                return run.weightedSum(y, minus: base, plus: run.readingScales.extended * (0x1p-80 / Double.ulpOfOne)).value
            }
            let y = run.output(piece: piece).scalars
            run.reading?.mark(changedFrom: run.baseOutput, y)
            return run.weightedSum(y, minus: run.baseOutput, plus: run.readingScales.double).value
        }
    }

    /// The forward pass (of `piece`) with the accumulator `baseOutput` was formed with.
    func output(piece: [Int]? = nil) -> Tensor {
        if let piece, let piecewise = layer as? any PiecewiseSmooth {
            return nearUnderflow ? piecewise.forward(input, piece: piece, accumulator: CorrectlyRounded.self)
                : piecewise.forward(input, piece: piece, accumulator: CompensatedSum.self)
        }
        return nearUnderflow ? layer.forward(input, accumulator: CorrectlyRounded.self) : layer.forward(input, accumulator: CompensatedSum.self)
    }

    /// Starts the element's `reading` mask with the outputs a NaN in it changes.
    mutating func probeReading(_ slot: Int, _ i: Int) {
        let mask = OutputMask(count: baseOutput.count)
        let base = baseOutput
        at(slot, i, .nan) { mask.mark(changedFrom: base, $0.output().scalars) }
        reading = mask
        readingScales = (noiseScale(frozen: true), noiseScale(frozen: false))
    }

    /// S for the element being checked: Σ|uⱼ·yⱼ| + |uⱼ|·2⁻¹⁰²³ over the outputs that read it
    /// (over every output outside element checks); for the double-double objective of an
    /// `ExtendedForward` layer (not `frozen` on a piece), Σ|uⱼ|·Mⱼ, its outputs' error scale.
    func noiseScale(frozen: Bool) -> Double {
        guard let reading else { return scale }
        let u = upstream.scalars
        if !frozen, !extendedScale.isEmpty {
            return reading.marked.reduce(0) { $0 + u[$1].magnitude * (extendedScale[$1] + 0x1p-994) }   // ·2⁻⁸⁰: 2⁻¹⁰⁷⁴ absolute
        }
        return reading.marked.reduce(0) { $0 + (u[$1] * baseOutput[$1]).magnitude + u[$1].magnitude * 0x1p-1023 }
    }

    mutating func activeSet(_ slot: Int, _ i: Int, _ t: Double) -> [Int] {
        at(slot, i, t) { $0.layer.activeSet($0.input) }
    }

    func step(_ x: Double) -> Double {
        let h = configuration.relativeStep * max(1, x.magnitude)
        return (x + h) - x
    }

    /// `frozen`: the objective was of a frozen piece, formed from doubles even for an
    /// `ExtendedForward` layer.
    func tolerance(_ a: Double, abserr: Double, h: Double, frozen: Bool = false) -> Double {
        configuration.k * abserr + configuration.c * Double.ulpOfOne * a.magnitude + roundoff(h, frozen: frozen)
    }

    /// The rounding the numerical derivative can carry: the 5-point rule weighs four
    /// evaluations of L with coefficients summing to 3/h. With compensated sums each
    /// evaluation is off by at most about ε·S (c·ε·S/h with c = 4 covers 3·ε·S/h); with
    /// plain loops by the bound in `PlainNoise`, counted twice for the rule's 3/h (a
    /// factor 2 of margin for the rounding of the bound itself).
    func roundoff(_ h: Double, frozen: Bool = false) -> Double {
        guard let plain else {
            let extended = !frozen && !extendedScale.isEmpty
            return configuration.c * (extended ? 0x1p-80 : Double.ulpOfOne) * noiseScale(frozen: frozen) / h
        }
        return 2 * 3 * plain.gamma * (plain.magnitude + 2 * h * magnitudeSlope) / h
    }

    /// A GSL derivative of L along element i of slot (every rule stays within x ± h,
    /// which the rounding bound of `roundoff` covers).
    func derivative(_ rule: DerivativeRule, _ slot: Int, _ i: Int, _ x: Double, _ h: Double) -> NumericalDerivative {
        var probe = self
        return gslDerivative(rule, at: x, step: h) { t in probe.objective(slot, i, t) }
    }

    /// Checks one element.
    mutating func checkElement(_ slot: Int, _ i: Int) -> ElementResult {
        let x = tensor(slot)[i]
        magnitudeSlope = plain?.slope[slot][i] ?? 0
        let a = analyticGradient(slot)[i]
        let h = step(x)
        let here = layer.activeSet(input)
        let name = names[slot]
        let index = tensor(slot).index(ofFlat: i)
        guard x.isFinite, baseObjective.isFinite else {
            return ElementResult(tensor: name, index: index, analytic: a, numeric: .nan, oneSided: nil, abserr: 0,
                                 tolerance: 0, kind: .notFinite, ratio: 0)
        }
        if plain == nil { probeReading(slot, i) }
        defer { reading = nil }
        guard a.isFinite else {
            // A non-finite analytic value is skipped only where the objective itself is
            // not finite around the point; otherwise the backward is wrong here.
            let around = [x - h, x + h].map { objective(slot, i, $0) }
            let finite = around.allSatisfy(\.isFinite)
            return ElementResult(tensor: name, index: index, analytic: a, numeric: finite ? (around[1] - around[0]) / (2 * h) : .nan,
                                 oneSided: nil, abserr: 0, tolerance: 0, kind: finite ? .smooth : .notFinite,
                                 ratio: finite ? .infinity : 0)
        }
        if !here.isEmpty, activeSet(slot, i, x - h) != here || activeSet(slot, i, x + h) != here {
            return judgeNearKink(slot, i, x, h, a, name, index)
        }
        if plain != nil, here.isEmpty, let affine = checkAffine(slot, i, a, name, index) { return affine }
        if let (slope, tol) = pieceSlope(slot, i, a, piece: here) {
            return ElementResult(tensor: name, index: index, analytic: a, numeric: slope, oneSided: nil, abserr: 0,
                                 tolerance: tol, kind: .affine, ratio: ratio((a - slope).magnitude, tol))
        }
        let central = derivative(.central, slot, i, x, h)
        let tol = tolerance(a, abserr: central.abserr, h: h)
        let result = ElementResult(tensor: name, index: index, analytic: a, numeric: central.value, oneSided: nil,
                                   abserr: central.abserr, tolerance: tol, kind: .smooth,
                                   ratio: ratio((a - central.value).magnitude, tol))
        if result.passed { return result }
        // Re-examine: a kink the active set does not see shows as one-sided derivatives that disagree.
        let right = derivative(.forward, slot, i, x, h), left = derivative(.backward, slot, i, x, h)
        let sideTol = tolerance(a, abserr: left.abserr + right.abserr, h: h / 4)
        if (right.value - left.value).magnitude > sideTol {
            return judgeKink(a, left, right, h, name, index)
        }
        return result
    }

    /// A sum-of-products layer is affine in each single element θᵢ, so the slope between
    /// any two points is the derivative, with no truncation error: θᵢ = ±H with H a power
    /// of two (the difference 2H is exact) as large as Σ|u|·M / ∂(Σ|u|·M)/∂|θᵢ|, so the
    /// objective's rounding weighs as little as the element's own terms allow. L(±H) is
    /// first evaluated with plain loops, whose rounding is at most (γ_n + γ_m)·Σ|u|·M(±H)
    /// (`PlainNoise`), with Σ|u|·M(±H) ≤ Σ|u|·M + H·slope; when that resolves the analytic
    /// value to worse than 1e-10 relative, again with compensated sums (Dot2: ε·|y| + γ_n²·M
    /// per output, ε·|L| + γ_m²·Σ|u·y| for the sum over outputs). The tolerance is twice the
    /// bound, plus 4ε·|a| for the rounding of the quotient and of the analytic value.
    /// Returns nil where L(±H) is not finite (the central rule takes over).
    mutating func checkAffine(_ slot: Int, _ i: Int, _ a: Double, _ name: String, _ index: [Int]) -> ElementResult? {
        guard let plain else { return nil }
        let slope = plain.slope[slot][i], magnitude = plain.magnitude
        var H = 1.0
        if slope > 0, magnitude / slope > 1, (magnitude / slope).isFinite {
            H = Double(sign: .plus, exponent: Int((magnitude / slope).exponent) + 1, significand: 1)
        }
        let eps = 0x1p-53
        func slopeEstimate(compensated: Bool) -> Double? {
            let high = affineObjective(slot, i, H, compensated: compensated)
            let low = affineObjective(slot, i, -H, compensated: compensated)
            guard high.isFinite, low.isFinite else { return nil }
            return (high - low) / (2 * H)
        }
        let noise = magnitude / H + slope
        guard var numeric = slopeEstimate(compensated: false) else { return nil }
        var tol = 2 * plain.gamma * noise + 4 * eps * a.magnitude
        if tol > 1e-10 * a.magnitude, let accurate = slopeEstimate(compensated: true) {
            numeric = accurate
            let g2 = gamma(plain.terms, eps) * gamma(plain.terms, eps) + gamma(plain.outputs, eps) * gamma(plain.outputs, eps)
            tol = 2 * (2 * eps + g2) * noise * (1 + 4 * eps) + 4 * eps * a.magnitude
        }
        // Still coarse where the outputs cancel (|yᵢ| ≪ Mᵢ): correctly rounded outputs and a
        // correctly rounded L, each off by at most u·|value| (+ half the smallest subnormal),
        // bounded from the values themselves rather than from Σ|terms|.
        if tol > 1e-10 * a.magnitude, let (high, eHigh) = roundedObjective(roundedOutput(slot, i, H)),
           let (low, eLow) = roundedObjective(roundedOutput(slot, i, -H)) {
            let exactTol = 2 * (eHigh + eLow) / (2 * H) * (1 + 8 * eps) + 4 * eps * a.magnitude
            if exactTol < tol {
                numeric = (high - low) / (2 * H)
                tol = exactTol
            }
        }
        return ElementResult(tensor: name, index: index, analytic: a, numeric: numeric, oneSided: nil, abserr: 0,
                             tolerance: tol, kind: .affine, ratio: ratio((a - numeric).magnitude, tol))
    }

    /// A `PiecewiseLinear` layer's L on the frozen `piece` (an `AffineInEachElement` layer's L,
    /// with no piece) is affine in element i of slot, so
    /// the slope between θᵢ = ±H is its derivative with no truncation error: H = 2³⁰·max(1, |θᵢ|)
    /// (a power of two, 2H exact) makes the outputs' rounding weigh ~2⁻³⁰ of what the central
    /// rule's step does. Only the outputs that read θᵢ (`reading`) or differ between the two
    /// points enter: the others are the same double at both and cancel exactly. The tolerance
    /// is twice the bound of `roundedObjective` at both points over 2H, plus 4ε·|a|. nil for
    /// other layers or where L(±H) is not finite.
    mutating func pieceSlope(_ slot: Int, _ i: Int, _ a: Double, piece: [Int]) -> (value: Double, tolerance: Double)? {
        guard (layer is any PiecewiseLinear && !piece.isEmpty) || (layer is any AffineInEachElement && piece.isEmpty) else { return nil }
        let H = Double(sign: .plus, exponent: max(0, tensor(slot)[i].exponent) + 30, significand: 1)
        guard H.isFinite else { return nil }
        let high = roundedOutput(slot, i, H, piece: piece), low = roundedOutput(slot, i, -H, piece: piece)
        let mask = OutputMask(count: high.count)
        mask.mark(changedFrom: low, high)
        let outputs = Array(Set(mask.marked + (reading?.marked ?? Array(high.indices)))).sorted()
        guard let (lHigh, eHigh) = roundedObjective(high, over: outputs), let (lLow, eLow) = roundedObjective(low, over: outputs) else { return nil }
        return ((lHigh - lLow) / (2 * H), 2 * (eHigh + eLow) / (2 * H) * (1 + 0x1p-50) + 4 * 0x1p-53 * a.magnitude)
    }

    /// The output, correctly rounded, with element i of slot set to t (of `piece`, frozen).
    mutating func roundedOutput(_ slot: Int, _ i: Int, _ t: Double, piece: [Int]? = nil) -> [Double] {
        at(slot, i, t) { run in
            if let piece, !piece.isEmpty, let piecewise = run.layer as? any PiecewiseSmooth {
                return piecewise.forward(run.input, piece: piece, accumulator: CorrectlyRounded.self).scalars
            }
            return run.layer.forward(run.input, accumulator: CorrectlyRounded.self).scalars
        }
    }

    /// Σ uⱼ·yⱼ over `outputs` (all of them by default), correctly rounded, for correctly rounded
    /// outputs y, and a bound on its error: Σ|uⱼ|·(u·|yⱼ| + 2⁻¹⁰⁷⁵) for the outputs, u·|L| + 2⁻¹⁰⁷⁵
    /// for the sum (u = 2⁻⁵³); nil where it is not finite.
    func roundedObjective(_ y: [Double], over outputs: [Int]? = nil) -> (value: Double, error: Double)? {
        let u = upstream.scalars, indices = outputs ?? Array(y.indices)
        let value = CorrectlyRounded.sum { acc in for k in indices { acc.add(u[k], times: y[k]) } }
        let rounding = indices.reduce(0.0) { $0 + u[$1].magnitude * (y[$1].magnitude * 0x1p-53 + 0x1p-1075) }
        let error = (rounding + value.magnitude * 0x1p-53 + 0x1p-1075) * (1 + 0x1p-50)
        guard value.isFinite, error.isFinite else { return nil }
        return (value, error)
    }

    /// L with element i of slot set to t: plain loops throughout, or compensated sums
    /// for every output and for the sum over the outputs.
    mutating func affineObjective(_ slot: Int, _ i: Int, _ t: Double, compensated: Bool) -> Double {
        at(slot, i, t) { $0.objective(plainLoops: !compensated) }
    }

    /// The active set changes within the stencil. Steps that stay within one piece on
    /// each side give the one-sided derivatives (reported); the point is on a kink when
    /// the two sides are different pieces. The analytic value must equal the derivative
    /// of the piece the forward pass selected at the point (the pinned convention), which
    /// a piecewise-smooth layer can evaluate; for other layers it must lie between the
    /// one-sided derivatives.
    mutating func judgeNearKink(_ slot: Int, _ i: Int, _ x: Double, _ h: Double, _ a: Double,
                                _ name: String, _ index: [Int]) -> ElementResult {
        // The piece just beside x on each side is the one at its neighbouring double; the
        // one-sided steps are the largest h/4^k whose stencil stays within that piece.
        let rightPiece = activeSet(slot, i, x.nextUp), leftPiece = activeSet(slot, i, x.nextDown)
        func cleanStep(_ direction: Double, _ piece: [Int], _ run: inout Run) -> Double {
            var s = h
            while x + direction * s / 4 != x {
                if run.activeSet(slot, i, x + direction * s) == piece && run.activeSet(slot, i, x + direction * s / 4) == piece {
                    return s
                }
                s /= 4
            }
            return s
        }
        let hr = cleanStep(1, rightPiece, &self), hl = cleanStep(-1, leftPiece, &self)
        let right = derivative(.forward, slot, i, x, (x + hr) - x)
        let left = derivative(.backward, slot, i, x, x - (x - hl))
        let onKink = rightPiece != leftPiece
        if layer is any PiecewiseSmooth {
            let piece = layer.activeSet(input)
            var probe = self
            var selected: NumericalDerivative, tol: Double
            if let (slope, pieceTol) = pieceSlope(slot, i, a, piece: piece) {
                (selected, tol) = (NumericalDerivative(value: slope, abserr: 0), pieceTol)
            } else {
                selected = gslDerivative(.central, at: x, step: h) { t in probe.objective(slot, i, t, piece: piece) }
                tol = tolerance(a, abserr: selected.abserr, h: h, frozen: true)
            }
            return ElementResult(tensor: name, index: index, analytic: a, numeric: selected.value,
                                 oneSided: (left.value, right.value), abserr: selected.abserr, tolerance: tol,
                                 kind: onKink ? .kink : .nearKink, ratio: ratio((a - selected.value).magnitude, tol))
        }
        if !onKink {
            // Smooth at x: both one-sided values estimate the derivative; judge against the closer.
            let best = (right.value - a).magnitude / tolerance(a, abserr: right.abserr, h: hr / 4)
                <= (left.value - a).magnitude / tolerance(a, abserr: left.abserr, h: hl / 4) ? (right, hr) : (left, hl)
            let tol = tolerance(a, abserr: best.0.abserr, h: best.1 / 4)
            return ElementResult(tensor: name, index: index, analytic: a, numeric: best.0.value, oneSided: nil,
                                 abserr: best.0.abserr, tolerance: tol, kind: .nearKink,
                                 ratio: ratio((a - best.0.value).magnitude, tol))
        }
        return judgeKink(a, left, right, min(hl, hr), name, index)
    }

    /// At a kink the analytic value (the pinned convention) must lie between the one-sided derivatives.
    func judgeKink(_ a: Double, _ left: NumericalDerivative, _ right: NumericalDerivative, _ h: Double,
                   _ name: String, _ index: [Int]) -> ElementResult {
        let tol = tolerance(a, abserr: left.abserr + right.abserr, h: h / 4)
        let low = min(left.value, right.value), high = max(left.value, right.value)
        let outside = a < low ? low - a : (a > high ? a - high : 0)
        return ElementResult(tensor: name, index: index, analytic: a, numeric: (left.value + right.value) / 2,
                             oneSided: (left.value, right.value), abserr: left.abserr + right.abserr,
                             tolerance: tol, kind: .kink, ratio: ratio(outside, tol))
    }

    /// Checks every element of a tensor. Elements are independent, so they are split
    /// into contiguous chunks checked concurrently, each on its own copy of the run;
    /// the report is assembled in element order, so it does not depend on the schedule.
    func checkElements(_ slot: Int) -> TensorReport {
        let count = tensor(slot).count
        let chunks = min(count, max(1, ProcessInfo.processInfo.activeProcessorCount) * 4)
        let results = ResultSlots(count: count)
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            var run = self
            for i in stride(from: chunk * count / chunks, to: (chunk + 1) * count / chunks, by: 1) {
                results.store(i, run.checkElement(slot, i))
            }
        }
        var report = TensorReport(name: names[slot])
        for r in results.all { report.record(r, keep: configuration.failuresKept) }
        return report
    }

    /// d/dt L(θ + t·u) along random signed Gaussian directions u through every
    /// tensor, against ⟨∇L, u⟩; no tolerance is scaled by Σu (unlike PyTorch's fast mode).
    mutating func checkDirections(_ count: Int, _ rng: SeededRandom) -> TensorReport {
        var report = TensorReport(name: "directions")
        let slots = Array(0...layer.parameters.count)
        let base = slots.map { tensor($0) }
        for d in 0..<count {
            let u = base.map { t in t.scalars.map { _ in rng.gaussian() } }
            let a = CorrectlyRounded.sum { acc in
                for s in slots { for (g, v) in zip(analyticGradient(s).scalars, u[s]) { acc.add(g, times: v) } }
            }
            // Moving along u rounds every coordinate: that noise is ε·Σ|∇ᵢ·θᵢ| at most (a
            // non-finite θᵢ does not move: ±∞ + t·u is ±∞).
            let moved = slots.reduce(0.0) { total, s in
                zip(analyticGradient(s).scalars, base[s].scalars).reduce(total) { $0 + ($1.1.isFinite ? ($1.0 * $1.1).magnitude : 0) }
            }
            let h = configuration.relativeStep
            // Along u, a piecewise-smooth layer is differentiated on the piece selected at θ
            // (the pinned convention where u crosses a kink); a kink is counted when the
            // active set changes within ±h.
            let piece = layer.activeSet(input)
            let frozen = layer is any PiecewiseSmooth && !piece.isEmpty ? piece : nil
            var probe = self
            func move(_ t: Double) {
                for s in slots {
                    for i in 0..<base[s].count { probe.set(s, i, base[s][i] + t * u[s][i]) }
                }
            }
            var crossesKink = false
            if !piece.isEmpty {
                move(h); let above = probe.layer.activeSet(probe.input)
                move(-h); let below = probe.layer.activeSet(probe.input)
                crossesKink = above != piece || below != piece
            }
            // An `ExtendedForward` layer's L from its double-double outputs (off the frozen piece).
            let extended = frozen == nil && !baseExtended.isEmpty
            // GSL's rule with the rounding of the outputs and of the moved point as its round-off
            // estimate, judged at the step it used (as the JVP check): GSL's own ε·|f| misses the
            // moved point's rounding and can retry with a step far below the nominal one.
            // S is the largest Σ|uⱼ·yⱼ| over the points evaluated: along u the outputs can grow far
            // beyond the point's (a bilinear layer at 1e-150 moved by 1e-4).
            var reach = scale
            let numeric = centralDerivative(at: 0, step: h, roundoff: { configuration.c * Double.ulpOfOne * (reach + moved) / $0 }) { t in
                move(t)
                let sum = extended ? probe.weightedSum((probe.layer as! any ExtendedForward).forwardExtended(probe.input))
                    : probe.weightedSum(probe.output(piece: frozen).scalars)
                reach = max(reach, sum.reach)
                return sum.value
            }
            let noise = reach + moved
            let kind: ElementResult.Kind = crossesKink ? (frozen == nil ? .kink : .nearKink) : .smooth
            guard baseObjective.isFinite, numeric.value.isFinite, !numeric.truncation.isNaN else {
                // As for an element: skipped only where the objective itself is not finite along u
                // around θ; otherwise the numerical value is wrong here, and so is the check.
                move(h); let above = probe.objective(piece: frozen)
                move(-h); let below = probe.objective(piece: frozen)
                let finite = baseObjective.isFinite && above.isFinite && below.isFinite
                report.record(ElementResult(tensor: "direction", index: [d], analytic: a, numeric: numeric.value, oneSided: nil,
                                            abserr: numeric.truncation, tolerance: 0, kind: finite ? kind : .notFinite,
                                            ratio: finite ? .infinity : 0), keep: configuration.failuresKept)
                continue
            }
            let tol = configuration.k * numeric.truncation + configuration.c * Double.ulpOfOne * (a.magnitude + noise / numeric.step)
            report.record(ElementResult(tensor: "direction", index: [d], analytic: a, numeric: numeric.value, oneSided: nil,
                                        abserr: numeric.truncation, tolerance: tol, kind: kind,
                                        ratio: ratio((a - numeric.value).magnitude, tol)), keep: configuration.failuresKept)
        }
        return report
    }

    /// Checks that need no finite differences (PyTorch's gradcheck makes the same ones).
    func structuralChecks(_ outShape: [Int]) -> [StructuralCheck] {
        var checks: [StructuralCheck] = []
        let y = layer.forward(input)
        checks.append(StructuralCheck(name: "output shape", passed: y.shape == outShape,
                                      detail: "forward gave \(y.shape), outputShape says \(outShape)"))
        let again = layer.backward(input, outputGradient: upstream)
        let repeatable = again.input.isBitwiseEqual(to: analytic.input)
            && zip(again.parameters, analytic.parameters).allSatisfy { $0.isBitwiseEqual(to: $1) }
        checks.append(StructuralCheck(name: "backward repeatable", passed: repeatable,
                                      detail: repeatable ? "bitwise identical" : "two backward passes differ"))
        var shapesMatch = analytic.input.shape == input.shape && analytic.parameters.count == layer.parameters.count
        var shapeDetail = "dL/d\(layer.inputName) \(analytic.input.shape) for \(input.shape)"
        for (g, p) in zip(analytic.parameters, layer.parameters) where g.shape != p.tensor.shape {
            shapesMatch = false
            shapeDetail = "dL/d\(p.name) has shape \(g.shape), the parameter \(p.tensor.shape)"
        }
        checks.append(StructuralCheck(name: "gradient shapes", passed: shapesMatch, detail: shapeDetail))
        let zero = layer.backward(input, outputGradient: Tensor(zeros: upstream.shape))
        // 0·NaN and 0·∞ are NaN: a non-finite input or parameter may make a zero upstream's gradient NaN.
        let finite = (input.scalars + layer.parameters.flatMap(\.tensor.scalars)).allSatisfy(\.isFinite)
        let allZero = (zero.input.scalars + zero.parameters.flatMap(\.scalars)).allSatisfy { $0 == 0 || (!finite && $0.isNaN) }
        checks.append(StructuralCheck(name: "zero upstream gives zero", passed: allZero,
                                      detail: allZero ? "exact zeros" : "a zero upstream gave a nonzero gradient"))
        if let piecewise = layer as? any PiecewiseSmooth {
            // The frozen piece the kink checks differentiate must be the forward pass itself
            // at the point: forward(x, piece: activeSet(x)) == forward(x), bitwise.
            let piece = piecewise.activeSet(input)
            let frozen = piecewise.forward(input, piece: piece, accumulator: CompensatedSum.self)
            let plain = layer.forward(input, accumulator: CompensatedSum.self)
            let same = frozen.isBitwiseEqual(to: plain)
            let first = same ? nil : frozen.scalars.indices.first { frozen[$0].bitPattern != plain[$0].bitPattern }
            checks.append(StructuralCheck(name: "piece of the point is the forward pass", passed: same,
                                          detail: first.map { "forward(x, piece: activeSet(x)) gives \(frozen[$0]) at \(plain.index(ofFlat: $0)), forward(x) \(plain[$0])" } ?? "bitwise identical"))
        }
        return checks
    }
}

/// The outputs that read one element: marked where a forward pass with it moved differs
/// bitwise from the output at the point. One per element check, on one worker.
final class OutputMask: @unchecked Sendable {
    private var flags: [Bool]
    init(count: Int) { flags = Array(repeating: false, count: count) }
    func mark(changedFrom base: [Double], _ y: [Double]) {
        mark { y[$0].bitPattern != base[$0].bitPattern }
    }
    func mark(where changed: (Int) -> Bool) {
        for k in flags.indices where !flags[k] && changed(k) { flags[k] = true }
    }
    var marked: [Int] { flags.indices.filter { flags[$0] } }
}

/// One slot per element, written by exactly one worker each.
final class ResultSlots: @unchecked Sendable {
    private var slots: [ElementResult?]
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func store(_ i: Int, _ r: ElementResult) { lock.withLock { slots[i] = r } }
    var all: [ElementResult] { slots.map { $0! } }
}

/// |difference| / tolerance, with 0/0 = 0 (an exact match under a zero tolerance).
func ratio(_ difference: Double, _ tolerance: Double) -> Double {
    difference == 0 ? 0 : difference / tolerance
}

extension TensorReport {
    mutating func record(_ r: ElementResult, keep: Int) {
        checked += 1
        if r.kind == .kink { kinks += 1 }
        if r.kind == .notFinite { notFinite += 1 }
        if r.kind != .notFinite, r.analytic != 0, r.analytic.isFinite { resolutions.append(r.tolerance / r.analytic.magnitude) }
        if worst == nil || r.ratio > worst!.ratio || r.ratio.isNaN { worst = r }
        if !r.passed {
            failed += 1
            if failures.count < keep { failures.append(r) }
        }
    }
}
