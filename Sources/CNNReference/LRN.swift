import BigInt

/// `lrn`: local response normalisation across channels (AlexNet), PyTorch's
/// `F.local_response_norm`: b_c = a_c / (k + α/size·Σ_j a_j²)^β, the sum over the
/// channels j = c − ⌊size/2⌋ … c + ⌊(size − 1)/2⌋ that exist (the square map zero-padded
/// ⌊size/2⌋ channels before and ⌊(size − 1)/2⌋ after), so an even size reaches one
/// channel further back than forward. α is divided by `size` whatever the count of
/// channels inside the input (Caffe's and ONNX's form; TensorFlow's
/// `local_response_normalization` takes α without the division and a depth radius,
/// size = 2·radius + 1).
///
/// dL/da_j = dy_j·S_j^−β − (2αβ/size)·a_j·Σ_{c: j ∈ window(c)} dy_c·a_c·S_c^(−β−1).
///
/// Every value is one rounding of its exact real: the S_c are exact rationals and the
/// powers go through the certified interval loop. When S^β is rational (β an integer,
/// or S a perfect power, as 16^0.75 = 8), the value is rational and rounded exactly; the
/// gradient's terms are grouped by equal S and by powers in a rational ratio, an exactly zero
/// group drops out, and what remains is irrational unless it is one group with a rational
/// power (then rounded exactly), or nothing (an exact +0): never a rounding boundary handed
/// to the loop (up to powers too large to form exactly, beyond 2^4096). Config: k > 0 and α ≥ 0, so that
/// S > 0 for every input.
public struct LRN: Layer {
    public static let id = "lrn"
    public let size: Int
    public let alpha: Double
    public let beta: Double
    public let k: Double
    public var parameters: [NamedTensor] = []

    public init(size: Int, alpha: Double, beta: Double, k: Double) {
        self.size = size; self.alpha = alpha; self.beta = beta; self.k = k
    }

    public var configuration: [(String, JSON)] {
        [("size", .int(size)), ("alpha", .double(alpha)), ("beta", .double(beta)), ("k", .double(k))]
    }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        try requireRank(s, 4, "inputs.x.shape", "[N, C, H, W]")
        return s
    }

    /// The channels whose squares enter S_c.
    public func window(_ c: Int, channels: Int) -> ClosedRange<Int> {
        max(0, c - size / 2)...min(channels - 1, c + (size - 1) / 2)
    }

    /// S for every element, exact, and the same in double-double for the fast path.
    func bases(_ x: Tensor) -> [Rational] {
        let s = x.shape, plane = s[2] * s[3]
        let scale = Rational(alpha) / Rational(BigInt(size))
        let squares = x.scalars.map { Rational($0) * Rational($0) }
        var out: [Rational] = []
        out.reserveCapacity(x.count)
        for n in 0..<s[0] {
            for c in 0..<s[1] {
                for p in 0..<plane {
                    var q = Rational.zero
                    for j in window(c, channels: s[1]) { q = q + squares[(n * s[1] + j) * plane + p] }
                    out.append((Rational(k) + scale * q).reduced)
                }
            }
        }
        return out
    }

    func plainBases(_ x: Tensor) -> [Double] {
        let s = x.shape, plane = s[2] * s[3]
        return (0..<x.count).map { i in
            let (n, c, p) = (i / (s[1] * plane), (i / plane) % s[1], i % plane)
            let q = CompensatedSum.sum { acc in
                for j in window(c, channels: s[1]) { let v = x[(n * s[1] + j) * plane + p]; acc.add(v, times: v) }
            }
            return k + alpha * q / Double(size)
        }
    }

    /// x_c·S_c^−β in double-double, S_c = k + α·Σ x_j²/size: for the gradient checker's
    /// element objective.
    public func forwardExtended(_ x: Tensor) -> [DoubleDouble] {
        let s = x.shape, plane = s[2] * s[3]
        return (0..<x.count).map { i in
            let (n, c, p) = (i / (s[1] * plane), (i / plane) % s[1], i % plane)
            var q = DoubleDoubleSum()
            for j in window(c, channels: s[1]) { let v = x[(n * s[1] + j) * plane + p]; q.add(DoubleDouble.product(v, v)) }
            let base = DoubleDouble(k) + DoubleDouble(alpha) * q.total / DoubleDouble(Double(size))
            return DoubleDouble(x[i]) * DoubleDouble.power(base, -beta)
        }
    }

    /// |y|·(1 + |β|·(1 + |log S|)) + |x|·2⁻⁹⁹⁵: the power is e^(−β·log S), relative to about that,
    /// and flushes to 0 below 2⁻¹⁰⁷⁵.
    public func extendedErrorScale(_ x: Tensor, _ y: [DoubleDouble]) -> [Double] {
        zip(zip(y, plainBases(x)), x.scalars).map { yb, a in
            yb.0.hi.magnitude * (1 + beta.magnitude * (1 + Foundation.log(yb.1).magnitude)) + a.magnitude * 0x1p-995
        }
    }

    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        guard certifies(A.self), x.scalars.allSatisfy(\.isFinite) else {
            let b = plainBases(x)
            return Tensor(shape: x.shape, scalars: zip(x.scalars, b).map { $0 / Foundation.pow($1, beta) })
        }
        let b = bases(x)
        return Tensor(shape: x.shape, scalars: zip(x.scalars, b).map { a, base in
            if a == 0 || beta == 0 { return a }                   // a·S^−β with S^−β > 0
            if let pw = base.power(-beta) { return (Rational(a) * pw).double }
            // S^−β > 0: the sign is a's, even when the power leaves MPFR's exponent range.
            return Certified.round(sign: { a.sign }) { p in Interval(a, precision: p) * Interval(base, precision: p).power(-beta) }
        })
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        let s = x.shape, plane = s[2] * s[3], channels = s[1]
        guard x.scalars.allSatisfy(\.isFinite), dy.scalars.allSatisfy(\.isFinite) else {
            let b = plainBases(x)
            let t = (0..<x.count).map { dy[$0] * x[$0] * Foundation.pow(b[$0], -beta - 1) }
            return Gradients(input: Tensor(shape: s, scalars: (0..<x.count).map { i in
                let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
                var cover = 0.0
                for o in 0..<channels where window(o, channels: channels).contains(c) { cover += t[(n * channels + o) * plane + p] }
                return dy[i] * Foundation.pow(b[i], -beta) - 2 * alpha * beta / Double(size) * x[i] * cover
            }))
        }
        let b = bases(x)
        let coefficient = Rational(2.0) * Rational(alpha) * Rational(beta) / Rational(BigInt(size))
        let powers = PowerSums(bases: b, beta: beta)
        var dx = [Double](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
            var terms: [(Int, Rational)] = []
            if dy[i] != 0 { terms.append((i, Rational(dy[i]) * b[i])) }                  // dy·S^−β = dy·S·S^(−β−1)
            if x[i] != 0 && !coefficient.isZero {
                let factor = -coefficient * Rational(x[i])
                for o in 0..<channels where window(o, channels: channels).contains(c) {
                    let j = (n * channels + o) * plane + p
                    if dy[j] != 0 && x[j] != 0 { terms.append((j, factor * Rational(dy[j]) * Rational(x[j]))) }
                }
            }
            dx[i] = powers.sum(terms)
        }
        return Gradients(input: Tensor(shape: s, scalars: dx))
    }

    /// The double backward for the upstream u and the cotangent w, rounded once. With
    /// A = 2αβ/size, B = 2α/size and T_c = Σ_{j ∈ window(c)} w_j·a_j, ⟨w, g⟩ is
    /// Σ_c (w_c·u_c·S_c^−β − A·u_c·a_c·T_c·S_c^(−β−1)), so
    /// ∂/∂a_k = Σ_{c: k ∈ window(c)} R_kc·S_c^(−β−2) − A·u_k·T_k·S_k^(−β−1) with the rational
    /// R_kc = −A·(a_k·w_c·u_c + u_c·a_c·w_k)·S_c + A·B·(β + 1)·a_k·u_c·a_c·T_c: a sum of rationals
    /// times S_c^(−β−1) (`PowerSums`, R_kc/S_c). Non-finite operands: the double-double
    /// `doubleBackward` (IEEE).
    public func certifiedDoubleBackward(_ x: Tensor, upstream u: Tensor, cotangent w: Tensor) -> Tensor {
        guard x.scalars.allSatisfy(\.isFinite), u.scalars.allSatisfy(\.isFinite), w.scalars.allSatisfy(\.isFinite) else {
            return doubleBackward(x, outputGradient: u, cotangents: Tangents(input: w, parameters: [])).gradients.input
        }
        let s = x.shape, plane = s[2] * s[3], channels = s[1], b = bases(x)
        let a = Rational(2.0) * Rational(alpha) * Rational(beta) / Rational(BigInt(size))
        let ab = a * Rational(2.0) * Rational(alpha) / Rational(BigInt(size)) * (Rational(beta) + .one)
        let powers = PowerSums(bases: b, beta: beta)
        // T_c per element.
        let t = (0..<x.count).map { i -> Rational in
            let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
            var dot = Rational.zero
            for j in window(c, channels: channels) {
                let k = (n * channels + j) * plane + p
                if x[k] != 0 && w[k] != 0 { dot = dot + Rational(x[k]) * Rational(w[k]) }
            }
            return dot
        }
        return Tensor(shape: s, scalars: (0..<x.count).map { i in
            guard !a.isZero else { return 0 }   // α = 0 or β = 0: y = a·k^−β is linear
            let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
            let ak = Rational(x[i]), wk = Rational(w[i])
            var terms: [(Int, Rational)] = []
            if u[i] != 0 && !t[i].isZero { terms.append((i, -a * Rational(u[i]) * t[i])) }
            for o in 0..<channels where window(o, channels: channels).contains(c) {
                let j = (n * channels + o) * plane + p
                guard u[j] != 0 else { continue }
                let uj = Rational(u[j]), aj = Rational(x[j])
                let r = -a * (ak * Rational(w[j]) * uj + uj * aj * wk) * b[j] + ab * ak * uj * aj * t[j]
                if !r.isZero { terms.append((j, r / b[j])) }
            }
            return powers.sum(terms)
        })
    }

    /// The JVP along ȧ, rounded once: ḃ_c = S_c^(−β−1)·R_c with the rational
    /// R_c = ȧ_c·S_c − (2αβ/size)·a_c·Σ_{j ∈ window(c)} a_j·ȧ_j, so it is 0 exactly when R_c is
    /// (an exact zero, +0), rational when S_c^(−β−1) is, and has R_c's sign. Non-finite operands:
    /// the double-double `jvp` (IEEE).
    public func certifiedJVP(_ x: Tensor, tangent t: Tensor) -> Tensor {
        guard x.scalars.allSatisfy(\.isFinite), t.scalars.allSatisfy(\.isFinite) else {
            return jvp(x, tangents: Tangents(input: t, parameters: []))
        }
        let s = x.shape, plane = s[2] * s[3], channels = s[1], b = bases(x)
        let coefficient = Rational(2.0) * Rational(alpha) * Rational(beta) / Rational(BigInt(size))
        return Tensor(shape: s, scalars: (0..<x.count).map { i in
            let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
            var dot = Rational.zero
            for j in window(c, channels: channels) {
                let k = (n * channels + j) * plane + p
                if x[k] != 0 && t[k] != 0 { dot = dot + Rational(x[k]) * Rational(t[k]) }
            }
            let r = Rational(t[i]) * b[i] - coefficient * Rational(x[i]) * dot
            if r.isZero { return 0 }
            if let pw = b[i].power(-beta - 1) { return (r * pw).double }
            return Certified.round(sign: { r.signum < 0 ? .minus : .plus }) { prec in
                Interval(r, precision: prec) * Interval(b[i], precision: prec).power(-beta - 1)
            }
        })
    }
}

/// Σ_j C_j·S_j^(−β−1) for exact rationals C_j and S_j > 0, rounded once (LRN's backward pass
/// and double backward). The terms are grouped by equal S and by powers in a rational ratio,
/// an exactly zero group drops out, and what remains is irrational unless it is one group with
/// a rational power (then rounded exactly), or nothing (an exact +0): never a rounding
/// boundary handed to the loop (up to powers too large to form exactly, beyond 2^4096).
final class PowerSums {
    let bases: [Rational], beta: Double
    /// S^−β/S per index, rational when it is.
    private var rationalPowers: [Int: Rational?] = [:]

    init(bases: [Rational], beta: Double) {
        self.bases = bases
        self.beta = beta
    }

    private func rationalPower(_ i: Int) -> Rational? {
        if let r = rationalPowers[i] { return r }
        let r = bases[i].power(-beta).map { $0 / bases[i] }
        rationalPowers[i] = r
        return r
    }

    /// (S_a/S_c)^−β when it is rational (and not too large to form), else nil.
    private func ratioPower(_ a: Rational, _ c: Rational) -> Rational? {
        if a == c { return .one }
        return (a / c).power(-beta, maxBits: 1 << 12)
    }

    /// Σ C_j·S_j^(−β−1) over `terms` (j, C_j), correctly rounded.
    func sum(_ terms: [(Int, Rational)]) -> Double {
        let b = bases
        // Grouped by equal S_g: (representative index, C_g).
        var groups: [(Int, Rational)] = []
        for (j, value) in terms where !value.isZero {
            if let g = groups.firstIndex(where: { b[$0.0] == b[j] }) { groups[g].1 = groups[g].1 + value } else { groups.append((j, value)) }
        }
        // Groups whose powers are rational multiples of each other ((S_h/S_g)^−β rational, as
        // for S_h = 16·S_g and β = 0.75) are one term: S_h^(−β−1) = (S_h/S_g)^−β·(S_g/S_h)·S_g^(−β−1).
        var merged: [(Int, Rational)] = []
        for (j, cj) in groups where !cj.isZero {
            if let k = merged.firstIndex(where: { ratioPower(b[j], b[$0.0]) != nil }) {
                merged[k].1 = merged[k].1 + cj * ratioPower(b[j], b[merged[k].0])! * (b[merged[k].0] / b[j])
            } else {
                merged.append((j, cj))
            }
        }
        groups = merged.filter { !$0.1.isZero }
        // What is left is a combination of real radicals no two of which have a rational ratio:
        // linearly independent over the rationals (Besicovitch 1940, Mordell 1953), so it is 0
        // only with no group, and rational only as one group with a rational power.
        if groups.isEmpty { return 0 }
        if groups.count == 1, let pw = rationalPower(groups[0].0) { return (groups[0].1 * pw).double }
        return Certified.round { prec in
            var total = Interval(0, precision: prec)
            for (j, cg) in groups {
                let base = Interval(b[j], precision: prec)
                total = total + Interval(cg, precision: prec) * base.power(-beta) / base
            }
            return total
        }
    }
}

import Foundation
