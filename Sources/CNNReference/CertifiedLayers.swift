import Foundation

// The correctly rounded values of the transcendental layers (see Certified.swift).
// Non-finite and zero operands follow IEEE 754 applied to the exact formula; an
// exact zero that comes from a sum (a cancellation) is +0, as in round to nearest.

/// The IEEE product of the signs of the factors of a zero result.
@inline(__always) func signedZero(_ negative: Bool) -> Double { negative ? -0.0 : 0.0 }

enum CertifiedElementwise {
    static func iv(_ x: Double, _ p: Int) -> Interval { Interval(x, precision: p) }

    static func sigmoid(_ x: Double) -> Double {
        if x.isNaN { return x }
        if x == .infinity { return 1 }
        if x == -.infinity { return 0 }
        return Certified.round(sign: { .plus }) { p in iv(x, p).logistic }
    }

    /// dy·σ(x)·σ(−x).
    static func sigmoidGradient(_ x: Double, _ g: Double) -> Double {
        if x.isNaN || g.isNaN { return .nan }
        if x.isInfinite { return g * 0 }                 // σ'(±∞) = +0
        if g.isInfinite || g == 0 { return g * 0.25 }   // times a positive number
        return Certified.round(sign: { g.sign }) { p in iv(g, p) * iv(x, p).logistic * (-iv(x, p)).logistic }
    }

    static func tanh(_ x: Double) -> Double {
        if x.isNaN || x == 0 { return x }                 // tanh(±0) = ±0
        if x.isInfinite { return x > 0 ? 1 : -1 }
        return Certified.round(sign: { x.sign }) { p in Interval.tanh(x, precision: p) }
    }

    /// dy·sech²(x).
    static func tanhGradient(_ x: Double, _ g: Double) -> Double {
        if x.isNaN || g.isNaN { return .nan }
        if x.isInfinite { return g * 0 }
        if g.isInfinite || g == 0 { return g }
        return Certified.round(sign: { g.sign }) { p in iv(g, p) * Interval.sech2(x, precision: p) }
    }

    /// w·u·f″(x) rounded once, by IEEE's rules applied to the exact product: `f` is ±1, the sign
    /// of f″(x) when it is nonzero and finite (`second` encloses it), or the exact value of f″(x)
    /// when that is 0 or infinite.
    static func secondProduct(_ w: Double, _ u: Double, _ f: Double, _ second: (Int) -> Interval) -> Double {
        if w.isNaN || u.isNaN || f.isNaN { return .nan }
        let negative = ((w.sign == .minus) != (u.sign == .minus)) != (f.sign == .minus)
        let zero = f == 0 || w == 0 || u == 0, infinite = f.isInfinite || w.isInfinite || u.isInfinite
        // Not w·u·f in doubles: w·u may overflow (∞·0 = NaN) or underflow (0·∞) where the exact product does not.
        if zero && infinite { return .nan }
        if zero { return signedZero(negative) }
        if infinite { return negative ? -.infinity : .infinity }
        return Certified.round(sign: { negative ? .minus : .plus }) { p in Interval.product(w, u, precision: p) * second(p) }
    }

    /// w·u·σ″(x): σ″ is odd, negative for x > 0 (σ″(±0) = ∓0, σ″(±∞) = ∓0).
    static func sigmoidSecondProduct(_ x: Double, _ w: Double, _ u: Double) -> Double {
        if x.isNaN { return .nan }
        let f: Double = x == 0 || x.isInfinite ? (x.sign == .minus ? 0.0 : -0.0) : (x > 0 ? -1 : 1)
        return secondProduct(w, u, f) { p in sigmoidSecond(x, p) }
    }

    /// w·u·tanh″(x): odd, negative for x > 0, like σ″.
    static func tanhSecondProduct(_ x: Double, _ w: Double, _ u: Double) -> Double {
        if x.isNaN { return .nan }
        let f: Double = x == 0 || x.isInfinite ? (x.sign == .minus ? 0.0 : -0.0) : (x > 0 ? -1 : 1)
        return secondProduct(w, u, f) { p in tanhSecond(x, p) }
    }

    /// w·u·f″(x) for ELU: 0 for x > 0, α·eˣ for x ≤ 0 (the piece of the first derivative at 0).
    static func eluSecondProduct(_ x: Double, alpha: Double, _ w: Double, _ u: Double) -> Double {
        if x.isNaN || alpha.isNaN { return .nan }
        if x > 0 { return secondProduct(w, u, 0) { iv(0, $0) } }
        let f: Double = x == -.infinity ? (alpha.isInfinite ? .nan : alpha * 0)
            : alpha == 0 || alpha.isInfinite ? alpha : (alpha < 0 ? -1 : 1)
        return secondProduct(w, u, f) { p in iv(alpha, p) * iv(x, p).exp }
    }

    /// σ″(x) = σ(x)·σ(−x)·(σ(−x) − σ(x)), odd: its sign is −sign(x).
    static func sigmoidSecond(_ x: Double, _ p: Int) -> Interval {
        let s = iv(x, p).logistic, t = (-iv(x, p)).logistic
        return s * t * (t - s)
    }

    /// tanh″(x) = −2·tanh(x)·sech²(x).
    static func tanhSecond(_ x: Double, _ p: Int) -> Interval {
        iv(-2, p) * Interval.tanh(x, precision: p) * Interval.sech2(x, precision: p)
    }

    /// α·(e^x − 1) for x ≤ 0 (or NaN).
    static func elu(_ x: Double, alpha: Double) -> Double {
        if x.isNaN || alpha.isNaN { return .nan }
        if x == 0 { return alpha * x }                   // α·(±0)
        if x == -.infinity { return -alpha }
        if alpha == 0 || alpha.isInfinite { return alpha * -1 }   // times a negative number
        return Certified.round(sign: { alpha > 0 ? .minus : .plus }) { p in iv(alpha, p) * iv(x, p).expm1 }
    }

    /// dy·α·e^x for x ≤ 0.
    static func eluGradient(_ x: Double, alpha: Double, _ g: Double) -> Double {
        if x.isNaN || g.isNaN || alpha.isNaN { return .nan }
        if x == -.infinity { return g.isFinite && alpha.isFinite ? signedZero((g.sign == .minus) != (alpha.sign == .minus)) : .nan }
        if g == 0 || alpha == 0 || g.isInfinite || alpha.isInfinite { return g * alpha }
        let negative = (g < 0) != (alpha < 0)
        return Certified.round(sign: { negative ? .minus : .plus }) { p in iv(g, p) * iv(alpha, p) * iv(x, p).exp }
    }

    /// x·σ(βx), or nil for non-finite operands (the caller's double-double path, IEEE).
    static func swish(_ x: Double, beta: Double) -> Double? {
        guard x.isFinite && beta.isFinite else { return nil }
        if x == 0 || beta == 0 { return x * 0.5 }        // σ(0) = ½
        return Certified.round(sign: { x.sign }) { p in
            iv(x, p) * Interval.product(beta, x, precision: p).logistic
        }
    }

    /// dy·σ(z)·(1 + z·σ(−z)) with z = βx exactly, or nil for non-finite operands.
    static func swishGradient(_ x: Double, beta: Double, _ g: Double) -> Double? {
        guard x.isFinite && beta.isFinite else { return nil }
        if g.isNaN { return g }
        func factor(_ p: Int) -> Interval {
            let z = Interval.product(beta, x, precision: p)
            return iv(1, p) + z * (-z).logistic
        }
        // 1 + z·σ(−z) is never 0 for a rational z ≠ 0 (σ(−z) = −1/z would make e^z rational).
        let f = Certified.round(factor)
        if g == 0 { return signedZero((g.sign == .minus) != (f.sign == .minus)) }
        if g.isInfinite { return g * f }                 // σ(z) > 0 and f ≠ 0
        return Certified.round(sign: { (g < 0) != (f < 0) ? .minus : .plus }) { p in
            let z = Interval.product(beta, x, precision: p)
            return iv(g, p) * z.logistic * factor(p)
        }
    }

    /// The JVP ẋ·f_x + β̇·f_β = σ(z)·(ẋ + σ(−z)·(ẋ·z + β̇·x²)) with z = βx exactly, or nil for
    /// non-finite operands.
    static func swishJVP(_ x: Double, beta: Double, _ tx: Double, _ tb: Double) -> Double? {
        guard x.isFinite, beta.isFinite, tx.isFinite, tb.isFinite else { return nil }
        if tx == 0 && (tb == 0 || x == 0) {
            // Two exact zeros, ẋ·f_x and β̇·f_β (f_β = x²·σ′ ≥ 0): −0 only when both are −0.
            let fx = x == 0 || beta == 0 ? 0.5 : (swishGradient(x, beta: beta, 1) ?? 1)
            return (tx * fx) + (tb * (x == 0 ? 0 : 1))
        }
        if x == 0 || beta == 0 {
            // σ(0) = ½: ẋ/2 + β̇·x²/4, a rational.
            let r = Rational(tx) * Rational(0.5) + Rational(tb) * Rational(x) * Rational(x) * Rational(0.25)
            return r.double
        }
        // z ≠ 0 is rational, so e^z is not (Lindemann): the bracket vanishes only if ẋ = 0 and
        // ẋ·z + β̇·x² = 0, i.e. ẋ = β̇ = 0, handled above. The sign is asked only when the value
        // left MPFR's exponent range: for z ≪ 0, σ(−z) = 1 − σ(z) and the bracket is
        // ẋ·(1 + z) + β̇·x² up to σ(z)·(ẋ·z + β̇·x²); for z ≫ 0 it is ẋ + σ(−z)·β̇·x² when ẋ = 0.
        let z = Rational(beta) * Rational(x)
        func sign() -> FloatingPointSign? {
            if z.signum < 0 {
                let r = Rational(tx) * (Rational.one + z) + Rational(tb) * Rational(x) * Rational(x)
                return r.isZero ? tx.sign : (r.signum < 0 ? .minus : .plus)
            }
            return tx != 0 ? tx.sign : tb.sign
        }
        return Certified.round(sign: sign) { p in
            let z = Interval.product(beta, x, precision: p)
            let t = iv(tx, p)
            return z.logistic * (t + (-z).logistic * (t * z + iv(tb, p) * Interval.product(x, x, precision: p)))
        }
    }

    /// Swish's double backward for x: u·(β·w_x + x·w_β)·h(z), z = βx exactly, with
    /// h = f_xx/β = f_xβ/x = 2σ′(z) + z·σ″(z) = σ(z)σ(−z)·(2 + z·(σ(−z) − σ(z))); nil for
    /// non-finite operands. h(0) = ½; for rational z ≠ 0, h(z) = 0 would make
    /// tanh(z/2) = 2/z rational, so e^z algebraic (Lindemann): the value is 0 exactly iff
    /// u = 0 or β·w_x + x·w_β = 0. h < 0 for |z| ≥ 3 (z·tanh(z/2) > 2), the sign asked only
    /// when the value is below MPFR's exponent range.
    static func swishSecondInput(_ x: Double, beta: Double, _ w: Double, _ wb: Double, _ u: Double) -> Double? {
        guard x.isFinite, beta.isFinite, w.isFinite, wb.isFinite, u.isFinite else { return nil }
        let r = Rational(beta) * Rational(w) + Rational(x) * Rational(wb)
        if x == 0 || beta == 0 { return (Rational(u) * r * Rational(0.5)).double }
        if u == 0 || r.isZero { return 0 }
        let negative = (u < 0) != (r.signum < 0)
        return Certified.round(sign: { (beta * x).magnitude >= 3.5 ? (negative ? .plus : .minus) : nil }) { p in
            let z = Interval.product(beta, x, precision: p)
            let s = z.logistic, t = (-z).logistic
            return iv(u, p) * Interval(r, precision: p) * s * t * (iv(2, p) + z * (t - s))
        }
    }

    /// Swish's double backward for β: Σ u·x·(2·w_x·σ′(z) + x·(β·w_x + x·w_β)·σ″(z)), z = βx;
    /// nil for non-finite operands. σ′ is even and σ″ odd in z, so the terms of equal |x| = v
    /// share σ′(βv) and σ″(βv): A_v = Σ 2·x·u·w_x and B_v = Σ u·(β·x·|x|·w_x + |x|³·w_β),
    /// both exact rationals. The sum is 0 exactly iff every A_v and B_v is: with β ≠ 0 the βv
    /// are distinct multiples n·q of one rational q, σ′ = tⁿ/(1 + tⁿ)² and σ″ = tⁿ(1 − tⁿ)/(1 + tⁿ)³
    /// in the transcendental t = e^q, and at t = e^(iπ/N), N the largest n, only the group of N
    /// has a pole (σ″ of order 3, σ′ of order 2), so its B then its A vanish; and so on down.
    /// At β = 0 (σ′ = ¼, σ″ = 0) it is the rational Σ u·x·w_x/2.
    static func swishSecondBeta(_ x: [Double], beta: Double, _ w: [Double], _ wb: Double, _ u: [Double]) -> Double? {
        guard beta.isFinite, wb.isFinite, x.allSatisfy(\.isFinite), w.allSatisfy(\.isFinite), u.allSatisfy(\.isFinite) else { return nil }
        if beta == 0 {
            var total = Rational(0)
            for i in x.indices where x[i] != 0 && u[i] != 0 && w[i] != 0 { total = total + Rational(u[i]) * Rational(x[i]) * Rational(w[i]) }
            return (total * Rational(0.5)).double
        }
        var groups: [Double: (a: Rational, b: Rational)] = [:]
        let rb = Rational(beta), rwb = Rational(wb)
        for i in x.indices where x[i] != 0 && u[i] != 0 {
            let v = x[i].magnitude, rx = Rational(x[i]), ru = Rational(u[i]), rv = Rational(v), rw = Rational(w[i])
            let g = groups[v] ?? (Rational(0), Rational(0))
            groups[v] = (g.a + Rational(2) * rx * ru * rw, g.b + ru * (rb * rx * rv * rw + rv * rv * rv * rwb))
        }
        let live = groups.filter { !$0.value.a.isZero || !$0.value.b.isZero }.sorted { $0.key < $1.key }
        if live.isEmpty { return 0 }
        // The sign beyond MPFR's exponent range (|βx| > 3e18): e^−|z*| of the smallest live |z|
        // factored out, σ′(z) = e^−|z|/(1 + e^−|z|)². Undecided only if that group's A = ∓B
        // exactly there, when the value is far below the subnormals: then only a zero's sign is open.
        func sign() -> FloatingPointSign? {
            Certified.round { p in
                let top = Interval.product(beta.magnitude, live[0].key, precision: p)
                var total = iv(0, p)
                for (v, g) in live {
                    let z = Interval.product(beta, v, precision: p), m = Interval.product(beta.magnitude, v, precision: p)
                    let tail = (-m).exp, one = iv(1, p) + tail
                    total = total + (top - m).exp / (one * one) * (Interval(g.a, precision: p) + Interval(g.b, precision: p) * ((-z).logistic - z.logistic))
                }
                return total
            }.sign
        }
        return Certified.round(sign: sign) { p in
            var total = iv(0, p)
            for (v, g) in live {
                let z = Interval.product(beta, v, precision: p)
                let s = z.logistic, t = (-z).logistic
                total = total + s * t * (Interval(g.a, precision: p) + Interval(g.b, precision: p) * (t - s))
            }
            return total
        }
    }

    /// dL/dβ = Σ dy·x²·σ(βx)·σ(−βx), or nil for non-finite operands.
    static func swishBetaGradient(_ x: [Double], beta: Double, _ dy: [Double]) -> Double? {
        guard beta.isFinite, x.allSatisfy(\.isFinite), dy.allSatisfy(\.isFinite) else { return nil }
        // σ(z)σ(−z) is even in z: the terms of equal |x| share it. The sum is 0 exactly iff
        // every such group's Σ dy is 0 (Lindemann–Weierstrass; see Certified.swift): with
        // β ≠ 0 the |βx| are distinct rational multiples of one q and the functions
        // t^n/(1 + t^n)² of the transcendental t = e^q are linearly independent.
        var groups: [Double: [Double]] = [:]
        for (v, g) in zip(x, dy) where v != 0 && g != 0 { groups[v.magnitude, default: []].append(g) }
        var signs = Set<FloatingPointSign>()
        for (_, gs) in groups {
            let s = CorrectlyRounded.sum { acc in for g in gs { acc.add(g) } }
            if s != 0 { signs.insert(s.sign) }
        }
        if signs.isEmpty { return 0 }
        let terms = groups.map { ($0.key, $0.value) }
        // The sign when the sum is too small even for MPFR's exponent range (|βx| > 3e18):
        // σ(z)σ(−z) = e^−|z|/(1 + e^−|z|)², so factor out e^−|z*| of the smallest |z*|.
        func sign() -> FloatingPointSign? {
            if signs.count == 1 { return signs.first }
            let live = terms.filter { t in CorrectlyRounded.sum { acc in for g in t.1 { acc.add(g) } } != 0 }
            let nearest = live.map { $0.0 }.min()!
            return Certified.round { p in
                var total = iv(0, p)
                let zStar = Interval.product(beta.magnitude, nearest, precision: p)
                for (v, gs) in live {
                    var gsum = iv(0, p)
                    for g in gs { gsum = gsum + iv(g, p) }
                    let z = Interval.product(beta.magnitude, v, precision: p)
                    let tail = (-z).exp
                    let denominator = (iv(1, p) + tail) * (iv(1, p) + tail)
                    total = total + gsum * Interval.product(v, v, precision: p) * (zStar - z).exp / denominator
                }
                return total
            }.sign
        }
        return Certified.round(sign: sign) { p in
            var total = iv(0, p)
            for (v, gs) in terms {
                var gsum = iv(0, p)
                for g in gs { gsum = gsum + iv(g, p) }
                let z = Interval.product(beta, v, precision: p)
                total = total + gsum * Interval.product(v, v, precision: p) * z.logistic * (-z).logistic
            }
            return total
        }
    }
}

/// An exact rational (Σ terms)/divisor, divisor > 0, that scales a certified value before its
/// one rounding.
struct RationalScale {
    let terms: [Double], divisor: Double
    /// The sign of Σ terms (a correctly rounded sum is 0 exactly when the sum is).
    private let sum: Double

    init(_ terms: [Double], dividedBy divisor: Double = 1) {
        self.terms = terms
        self.divisor = divisor
        sum = CorrectlyRounded.sum { acc in for t in terms { acc.add(t) } }
    }

    static let one = RationalScale([1])
    var isOne: Bool { terms == [1] && divisor == 1 }
    var isZero: Bool { sum == 0 }
    var isNegative: Bool { sum < 0 }

    func enclosure(_ p: Int) -> Interval {
        var s = Interval(0, precision: p)
        for t in terms { s = s + Interval(t, precision: p) }
        return divisor == 1 ? s : s / Interval(divisor, precision: p)
    }
}

/// One slice of softmax logits (finite maximum, no NaN, no +∞), with its exponentials
/// e^(x_j − m) and their sum S = 1 + R as intervals, per precision.
final class CertifiedSlice {
    let x: [Double]
    let m: Double
    let firstMax: Int
    /// Every finite entry equals the maximum: p_j = 1/n for them, 0 for −∞ (rational).
    let allEqual: Bool
    let finiteCount: Int

    struct Level {
        var e: [Interval?]      // nil for −∞
        var total: Interval     // S
        var rest: Interval      // R = S − 1 (every term but the first maximum)
    }
    private var levels: [Int: Level] = [:]

    init?(_ values: [Double]) {
        guard !values.contains(where: \.isNaN), let m = values.max(), m.isFinite else { return nil }
        x = values
        self.m = m
        firstMax = values.firstIndex(of: m)!
        finiteCount = values.count { $0 != -.infinity }
        allEqual = values.allSatisfy { $0 == m || $0 == -.infinity }
    }

    func level(_ p: Int) -> Level {
        if let l = levels[p] { return l }
        let mi = Interval(m, precision: p)
        var rest = Interval(0, precision: p)
        var e: [Interval?] = []
        for (j, v) in x.enumerated() {
            guard v != -.infinity else { e.append(nil); continue }
            let ej = (Interval(v, precision: p) - mi).exp
            e.append(ej)
            if j != firstMax { rest = rest + ej }
        }
        let l = Level(e: e, total: Interval(1, precision: p) + rest, rest: rest)
        levels[p] = l
        return l
    }

    /// p_k.
    func probability(_ k: Int) -> Double {
        if x[k] == -.infinity { return 0 }
        if allEqual { return 1 / Double(finiteCount) }   // IEEE division: correctly rounded
        return Certified.round(sign: { .plus }) { p in let l = level(p); return l.e[k]! / l.total }
    }

    /// y_k = (x_k − m) − log S.
    func logProbability(_ k: Int) -> Double {
        if x[k] == -.infinity { return -.infinity }
        if allEqual && finiteCount == 1 { return 0 }
        return Certified.round(sign: { .minus }) { p in
            let l = level(p)
            return (Interval(x[k], precision: p) - Interval(m, precision: p)) - l.rest.log1p
        }
    }

    /// Softmax backward: r·p_k·(dy_k − Σ_j dy_j·p_j) for finite dy and an exact rational r
    /// (1 for the backward pass; −Σu for log-softmax's double backward, u/N for the
    /// cross-entropy's), rounded once.
    func softmaxGradient(_ dy: [Double], scaledBy r: RationalScale = .one) -> [Double] {
        let n = x.count
        if r.isZero { return dy.map { _ in 0 } }
        if allEqual {
            // p = 1/n on the finite entries: dx_k = r·(n·dy_k − T)/n² with T = Σ_finite dy_j.
            let nf = Double(finiteCount)
            func numerator(_ k: Int, dividedBy d: Double) -> Double {
                CorrectlyRounded.sum(dividedBy: d) { acc in
                    acc.add(dy[k], times: nf)
                    for j in 0..<n where x[j] != -.infinity { acc.add(-dy[j]) }
                }
            }
            return (0..<n).map { k in
                if r.isOne && x[k] != -.infinity { return numerator(k, dividedBy: nf * nf) }
                let sign = numerator(k, dividedBy: 1)   // 0 exactly when n·dy_k = T
                if sign == 0 { return 0 }
                let negative = (sign < 0) != r.isNegative
                if x[k] == -.infinity { return signedZero(negative) }
                return Certified.round(sign: { negative ? .minus : .plus }) { p in
                    var c = Interval.product(dy[k], nf, precision: p)
                    for j in 0..<n where x[j] != -.infinity { c = c - Interval(dy[j], precision: p) }
                    return c * r.enclosure(p) / Interval(nf * nf, precision: p)
                }
            }
        }
        let centred = CentredUpstream(self, dy)
        return (0..<n).map { k in
            if centred.isZero(k) { return 0 }
            // The sign is costly: asked only for −∞ entries and values below the subnormals.
            func negative() -> Bool { (centred.sign(k) == .minus) != r.isNegative }
            if x[k] == -.infinity { return signedZero(negative()) }
            return Certified.round(sign: { negative() ? .minus : .plus }) { p in
                let l = level(p)
                let value = l.e[k]! / l.total * centred.enclosure(k, p)
                return r.isOne ? value : value * r.enclosure(p)
            }
        }
    }

    /// Softmax's double backward p_k·(a_k·b_k − ⟨p, a ⊙ b⟩) with a = w − ⟨p, w⟩ and
    /// b = u − ⟨p, u⟩, for finite w and u, rounded once. With the finite logits grouped by value
    /// (`SoftmaxSecondOrderTerms`) it is e_k·Σ_σ C_σ·e^(σ − 3m)/S⁴ over the exact sums σ of three
    /// group values, so 0 exactly iff every rational C_σ is (Lindemann–Weierstrass); that test,
    /// d³ terms for d distinct logits, runs only where a 256-bit enclosure does not exclude 0.
    func softmaxDoubleBackward(_ w: [Double], _ u: [Double]) -> [Double] {
        let n = x.count
        if allEqual {
            // p = 1/n on the finite entries: rational.
            let finite = (0..<n).filter { x[$0] != -.infinity }, nf = Rational(Double(finiteCount))
            var sw = Rational.zero, su = Rational.zero
            for j in finite { sw = sw + Rational(w[j]); su = su + Rational(u[j]) }
            let wbar = sw / nf, ubar = su / nf
            var total = Rational.zero
            for j in finite { total = total + (Rational(w[j]) - wbar) * (Rational(u[j]) - ubar) }
            let mean = total / nf
            return (0..<n).map { k in
                x[k] == -.infinity ? 0 : (((Rational(w[k]) - wbar) * (Rational(u[k]) - ubar) - mean) / nf).double
            }
        }
        let a = CentredUpstream(self, w), b = CentredUpstream(self, u)
        var dots: [Int: Interval] = [:]
        /// ⟨p, a ⊙ b⟩ at p bits.
        func dot(_ p: Int) -> Interval {
            if let d = dots[p] { return d }
            let l = level(p)
            var s = Interval(0, precision: p)
            for j in 0..<n { if let e = l.e[j] { s = s + e * a.enclosure(j, p) * b.enclosure(j, p) } }
            let d = s / l.total
            dots[p] = d
            return d
        }
        func enclosure(_ k: Int, _ p: Int) -> Interval {
            let l = level(p)
            return l.e[k]! / l.total * (a.enclosure(k, p) * b.enclosure(k, p) - dot(p))
        }
        var terms: SoftmaxSecondOrderTerms?
        func expansion() -> SoftmaxSecondOrderTerms {
            let t = terms ?? SoftmaxSecondOrderTerms(x, w, u)
            terms = t
            return t
        }
        return (0..<n).map { k in
            if x[k] == -.infinity { return 0 }
            if enclosure(k, 256).containsZero && expansion().isZero(k) { return 0 }
            return Certified.round(sign: { expansion().sign(k) }) { p in enclosure(k, p) }
        }
    }

    /// dy_k − Σ_j p_j·dy_j for finite dy, correctly rounded (0 where it is exactly 0): the
    /// log-softmax JVP along dy.
    func centred(_ dy: [Double]) -> [Double] {
        if allEqual {
            // p = 1/n on the finite entries: (n·dy_k − T)/n, rational.
            let nf = Double(finiteCount)
            return dy.indices.map { k in
                CorrectlyRounded.sum(dividedBy: nf) { acc in
                    acc.add(dy[k], times: nf)
                    for j in dy.indices where x[j] != -.infinity { acc.add(-dy[j]) }
                }
            }
        }
        let centred = CentredUpstream(self, dy)
        return x.indices.map { k in
            centred.isZero(k) ? 0 : Certified.round(sign: { centred.sign(k) }) { p in centred.enclosure(k, p) }
        }
    }

    /// dy_k − Σ_j p_j·dy_j by IEEE's rules for an upstream with a NaN or an infinity.
    func centred(nonFinite dy: [Double]) -> [Double] {
        let terms = zip(x, dy).map { v, g in v == -.infinity ? g * 0 : g }   // dy_j·p_j with p_j = 0: NaN for NaN or ∞
        let (plus, minus, nan) = infinities(terms)
        if nan || (plus && minus) { return dy.map { _ in .nan } }
        let dot: Double = plus ? .infinity : -.infinity   // some finite-logit dy_j is infinite
        return dy.map { $0 - dot }                        // NaN when it is dot's infinity
    }

    /// The backward passes for an upstream with a NaN or an infinity, by IEEE's rules applied to
    /// the exact formula: p_k > 0 exactly for every finite logit (even when it is below the
    /// smallest double) and p_k = 0 for −∞, so no value depends on rounding. An infinity times
    /// p_k = 0, or ∞ − ∞, is NaN.
    func infinities(_ values: [Double]) -> (plus: Bool, minus: Bool, nan: Bool) {
        (values.contains(.infinity), values.contains(-.infinity), values.contains(where: \.isNaN))
    }

    /// Softmax: p_k·(dy_k − Σ_j dy_j·p_j).
    func softmaxGradient(nonFinite dy: [Double]) -> [Double] {
        zip(x, centred(nonFinite: dy)).map { v, difference in v == -.infinity ? 0 * difference : difference }
    }

    /// Log-softmax: dy_k − p_k·Σ_j dy_j.
    func logSoftmaxGradient(nonFinite dy: [Double]) -> [Double] {
        let (plus, minus, nan) = infinities(dy)
        if nan || (plus && minus) { return dy.map { _ in .nan } }
        let total: Double = plus ? .infinity : -.infinity
        return zip(x, dy).map { v, g in g - (v == -.infinity ? 0 * total : total) }
    }

    /// Log-softmax backward: dy_k − p_k·Σ_j dy_j for finite dy.
    func logSoftmaxGradient(_ dy: [Double]) -> [Double] {
        let n = x.count
        let t = CorrectlyRounded.sum { acc in for g in dy { acc.add(g) } }   // 0 iff Σ dy = 0 exactly
        return (0..<n).map { k in
            if t == 0 || x[k] == -.infinity { return dy[k] - signedZero(t.sign == .minus) }   // dy_k − 0·T
            if allEqual {
                // p_k = 1/n: (n·dy_k − Σ dy)/n.
                let nf = Double(finiteCount)
                return CorrectlyRounded.sum(dividedBy: nf) { acc in
                    acc.add(dy[k], times: nf)
                    for g in dy { acc.add(-g) }
                }
            }
            // The sign is certain only for dy_k = 0 (then −sign(T)); otherwise refine.
            return Certified.round(sign: { dy[k] != 0 ? nil : (t > 0 ? .minus : .plus) }) { p in
                let l = level(p)
                var total = Interval(0, precision: p)
                for g in dy { total = total + Interval(g, precision: p) }
                return Interval(dy[k], precision: p) - l.e[k]! / l.total * total
            }
        }
    }
}

/// dy_k − Σ_j p_j·dy_j of one slice for a finite upstream dy: its exact zeros, its signs and
/// its enclosures. Grouping the finite logits by value (groups g of n_g entries equal to v_g,
/// D_g = Σ_{j∈g} dy_j), dy_k − Σ_j p_j·dy_j = (1/S)·Σ_g e^(v_g − m)·(n_g·dy_k − D_g): 0 exactly
/// iff every coefficient is 0 (Lindemann–Weierstrass), i.e. every group's mean upstream is dy_k.
final class CentredUpstream {
    let slice: CertifiedSlice, dy: [Double]
    let members: [[Int]]
    private let uniform: Bool
    private var dots: [Int: Interval] = [:]

    init(_ slice: CertifiedSlice, _ dy: [Double]) {
        self.slice = slice
        self.dy = dy
        var groups: [Double: [Int]] = [:]
        for j in slice.x.indices where slice.x[j] != -.infinity { groups[slice.x[j], default: []].append(j) }
        members = groups.values.sorted { $0[0] < $1[0] }
        let first = members[0]
        uniform = members.dropFirst().allSatisfy { g in
            CorrectlyRounded.sum { acc in
                for j in g { acc.add(dy[j], times: Double(first.count)) }
                for j in first { acc.add(-dy[j], times: Double(g.count)) }
            } == 0
        }
    }

    /// n_g·dy_k − D_g, exactly 0 or not.
    private func coefficientIsZero(_ k: Int, _ g: [Int]) -> Bool {
        CorrectlyRounded.sum { acc in acc.add(dy[k], times: Double(g.count)); for j in g { acc.add(-dy[j]) } } == 0
    }

    func isZero(_ k: Int) -> Bool { uniform && coefficientIsZero(k, members[0]) }

    /// Σ_j p_j·dy_j, enclosed.
    private func dot(_ p: Int) -> Interval {
        if let d = dots[p] { return d }
        let l = slice.level(p)
        var s = Interval(0, precision: p)
        for j in dy.indices { if let e = l.e[j] { s = s + Interval(dy[j], precision: p) * e } }
        let d = s / l.total
        dots[p] = d
        return d
    }

    func enclosure(_ k: Int, _ p: Int) -> Interval { Interval(dy[k], precision: p) - dot(p) }

    /// The sign of dy_k − Σ p_j·dy_j (never 0 here): e^(v* − m) factored out, v* the largest v_g
    /// with a nonzero coefficient, so the sum is certain even when e^(v* − m) is beyond MPFR's
    /// exponent range.
    func sign(_ k: Int) -> FloatingPointSign {
        let live = members.filter { !coefficientIsZero(k, $0) }
        let top = live.map { slice.x[$0[0]] }.max()!
        return Certified.round { p in
            var total = Interval(0, precision: p)
            for g in live {
                var c = Interval.product(dy[k], Double(g.count), precision: p)
                for j in g { c = c - Interval(dy[j], precision: p) }
                total = total + c * (Interval(slice.x[g[0]], precision: p) - Interval(top, precision: p)).exp
            }
            return total
        }.sign
    }
}

/// Softmax's double backward of one slice as exponential sums: with the finite logits grouped
/// by value (group G: value v_G, n_G entries, W_G = Σw, U_G = Σu, P_G = Σw·u),
/// S·a_k = Σ_G e_G·(n_G·w_k − W_G) and S·b_k likewise, so
/// S⁴·DB_k/e_k = Σ_{L,H,K} e_L·e_H·e_K·(n_L·α_H·β_K − γ_LHK), α_H = n_H·w_k − W_H,
/// β_K = n_K·u_k − U_K, γ_LHK = n_H·n_K·P_L − n_H·U_K·W_L − n_K·W_H·U_L + n_L·W_H·U_K;
/// the triples are grouped by the exact sum σ = v_L + v_H + v_K (e_L·e_H·e_K = e^(σ − 3m)).
final class SoftmaxSecondOrderTerms {
    struct Group { let v: Double; let n: Rational, w: Rational, u: Rational, p: Rational }
    let groups: [Group]
    let w: [Double], u: [Double]
    /// γ_LHK and the key of σ, per triple (L, H, K).
    private let triples: [(l: Int, h: Int, k: Int, gamma: Rational, sigma: Rational)]

    init(_ x: [Double], _ w: [Double], _ u: [Double]) {
        self.w = w
        self.u = u
        var members: [Double: [Int]] = [:]
        for j in x.indices where x[j] != -.infinity { members[x[j], default: []].append(j) }
        groups = members.keys.sorted().map { v in
            let m = members[v]!
            var sw = Rational.zero, su = Rational.zero, sp = Rational.zero
            for j in m {
                sw = sw + Rational(w[j]); su = su + Rational(u[j])
                if w[j] != 0 && u[j] != 0 { sp = sp + Rational(w[j]) * Rational(u[j]) }
            }
            return Group(v: v, n: Rational(Double(m.count)), w: sw, u: su, p: sp)
        }
        var t: [(Int, Int, Int, Rational, Rational)] = []
        for (l, gl) in groups.enumerated() { for (h, gh) in groups.enumerated() { for (k, gk) in groups.enumerated() {
            let gamma = gh.n * gk.n * gl.p - gh.n * gk.u * gl.w - gk.n * gh.w * gl.u + gl.n * gh.w * gk.u
            t.append((l, h, k, gamma, (Rational(gl.v) + Rational(gh.v) + Rational(gk.v)).reduced))
        } } }
        triples = t
    }

    /// The live (σ, C_σ) of element k, C_σ ≠ 0.
    func coefficients(_ k: Int) -> [(sigma: Rational, c: Rational)] {
        let rw = Rational(w[k]), ru = Rational(u[k])
        let alpha = groups.map { $0.n * rw - $0.w }, beta = groups.map { $0.n * ru - $0.u }
        var sums: [String: (Rational, Rational)] = [:]
        for t in triples {
            let c = groups[t.l].n * alpha[t.h] * beta[t.k] - t.gamma
            if c.isZero { continue }
            let key = "\(t.sigma.m) \(t.sigma.e) \(t.sigma.d)"
            let old = sums[key]?.1 ?? .zero
            sums[key] = (t.sigma, old + c)
        }
        return sums.values.filter { !$0.1.isZero }.map { (sigma: $0.0, c: $0.1) }
    }

    func isZero(_ k: Int) -> Bool { coefficients(k).isEmpty }

    /// The sign of DB_k ≠ 0: that of Σ C_σ·e^(σ − σ*), σ* the largest live σ (its term is C_σ*,
    /// so no exponential of it leaves MPFR's range).
    func sign(_ k: Int) -> FloatingPointSign? {
        let live = coefficients(k)
        guard let top = live.map(\.sigma).max(by: <) else { return nil }
        return Certified.round { p in
            var total = Interval(0, precision: p)
            for (sigma, c) in live { total = total + Interval(c, precision: p) * Interval(sigma - top, precision: p).exp }
            return total
        }.sign
    }
}

enum CertifiedLosses {
    /// The JVP of the cross-entropy along the score tangents t (valid rows):
    /// Σ_i (Σ_j p_ij·t_ij − t_{i,y_i}) / N, each row's term −(t_y − Σ_j p_j·t_j) (`CentredUpstream`).
    static func crossEntropyJVP(_ rows: [CertifiedSlice], labels: [Int], tangents t: [[Double]], divisor: Double) -> Double {
        if t.contains(where: { !$0.allSatisfy(\.isFinite) }) {
            // Every term of a row with a NaN or an infinity is NaN or infinite (IEEE): the finite rows do not matter.
            let terms = zip(zip(rows, labels), t).compactMap { r, ti in ti.allSatisfy(\.isFinite) ? nil : -r.0.centred(nonFinite: ti)[r.1] }
            let (plus, minus, nan) = (terms.contains(.infinity), terms.contains(-.infinity), terms.contains(where: \.isNaN))
            return nan || (plus && minus) ? .nan : (plus ? .infinity : -.infinity) / divisor
        }
        let centred = zip(rows, t).map { CentredUpstream($0, $1) }
        let live = rows.indices.filter { !centred[$0].isZero(labels[$0]) }
        if live.isEmpty { return 0 }
        // Each live row's term has a certain sign; when they agree the total has it (else the loop decides).
        let signs = Set(live.map { centred[$0].sign(labels[$0]) })
        return Certified.round(sign: { signs.count == 1 ? (signs.first! == .minus ? .plus : .minus) : nil }) { p in
            var total = Interval(0, precision: p)
            for i in live { total = total - centred[i].enclosure(labels[i], p) }
            return total / Interval(divisor, precision: p)
        }
    }

    /// Σ_i (log S_i − (s_{i,y} − m_i)) / N for valid rows (the caller handles NaN rows).
    static func crossEntropy(_ rows: [CertifiedSlice], labels: [Int], divisor: Double) -> Double {
        if zip(rows, labels).contains(where: { $0.x[$1] == -.infinity }) { return .infinity }
        return Certified.round(sign: { .plus }) { p in
            var total = Interval(0, precision: p)
            for (row, y) in zip(rows, labels) {
                let l = row.level(p)
                total = total + (l.rest.log1p - (Interval(row.x[y], precision: p) - Interval(row.m, precision: p)))
            }
            return total / Interval(divisor, precision: p)
        }
    }

    /// dy·(p_j − [j = y])/N for one valid row and a finite upstream, p_y − 1 as −Σ_{j≠y} p_j.
    static func crossEntropyGradient(_ row: CertifiedSlice, label y: Int, upstream dy: Double, divisor: Double) -> [Double] {
        let c = row.x.count
        if dy.isNaN { return [Double](repeating: .nan, count: c) }
        if dy.isInfinite {
            // ∞ times p_j > 0 (or −Σ_{j≠y} p_j < 0); ∞·0 = NaN where that factor is exactly 0.
            let othersZero = (0..<c).allSatisfy { $0 == y || row.x[$0] == -.infinity }
            return (0..<c).map { j in
                j == y ? (othersZero ? .nan : -dy) : (row.x[j] == -.infinity ? .nan : dy)
            }
        }
        return (0..<c).map { j in
            if dy == 0 { return signedZero((dy.sign == .minus) != (j == y)) }
            if row.x[j] == -.infinity && j != y { return signedZero(dy < 0) }
            if row.allEqual || row.x[y] == -.infinity {
                // Rational: p = 1/n on the finite entries (or p_y = 0 and Σ_{j≠y} p_j = 1).
                let n = Double(row.finiteCount)
                if row.x[y] == -.infinity {
                    if j == y { return CorrectlyRounded.sum(dividedBy: divisor) { $0.add(-dy) } }
                    if row.allEqual { return CorrectlyRounded.sum(dividedBy: divisor * n) { $0.add(dy) } }
                } else {
                    if j != y { return CorrectlyRounded.sum(dividedBy: divisor * n) { $0.add(dy) } }
                    if n == 1 { return signedZero(dy > 0) }
                    return CorrectlyRounded.sum(dividedBy: divisor * n) { $0.add(-dy, times: n - 1) }
                }
            }
            let negative = (dy < 0) != (j == y)
            return Certified.round(sign: { negative ? .minus : .plus }) { p in
                let l = row.level(p)
                let numerator: Interval
                if j != y {
                    numerator = l.e[j]!
                } else {
                    var others = Interval(0, precision: p)
                    for (i, e) in l.e.enumerated() where i != y { if let e { others = others + e } }
                    numerator = -others
                }
                return Interval(dy, precision: p) * numerator / (l.total * Interval(divisor, precision: p))
            }
        }
    }
}
