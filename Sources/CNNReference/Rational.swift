import BigInt
import CMPFR

/// An exact rational m·2^e/d (d ≥ 1), for the statistics of batch norm and the window
/// sums of LRN: every finite double is one, and sums, products and quotients of them stay
/// exact. The power of two is kept apart from d so that sums of doubles of different
/// exponents do not multiply denominators; d holds only the integers the formulas divide
/// by (a count, a window size) and whatever a quotient brings.
struct Rational: Sendable {
    var m: BigInt
    var e: Int
    var d: BigUInt

    init(_ m: BigInt, exponent e: Int = 0, over d: BigUInt = 1) {
        precondition(d > 0)
        self.m = m; self.e = e; self.d = d
    }

    /// The exact value of a finite double.
    init(_ x: Double) {
        precondition(x.isFinite)
        if x == 0 { self.init(BigInt(0)); return }
        let (mx, ex) = x.integerSignificandAndExponent
        self.init(BigInt(mx), exponent: ex)
    }

    static let zero = Rational(BigInt(0))
    static let one = Rational(BigInt(1))

    var isZero: Bool { m == 0 }
    /// −1, 0 or 1.
    var signum: Int { m == 0 ? 0 : (m < 0 ? -1 : 1) }

    static func + (a: Rational, b: Rational) -> Rational {
        if a.isZero { return b }
        if b.isZero { return a }
        let (am, bm, d): (BigInt, BigInt, BigUInt) = a.d == b.d ? (a.m, b.m, a.d) : (a.m * BigInt(b.d), b.m * BigInt(a.d), a.d * b.d)
        let e = min(a.e, b.e)
        return Rational((am << (a.e - e)) + (bm << (b.e - e)), exponent: e, over: d).normalised
    }

    static prefix func - (a: Rational) -> Rational { Rational(-a.m, exponent: a.e, over: a.d) }
    static func - (a: Rational, b: Rational) -> Rational { a + (-b) }

    static func * (a: Rational, b: Rational) -> Rational {
        if a.isZero || b.isZero { return .zero }
        return Rational(a.m * b.m, exponent: a.e + b.e, over: a.d * b.d).normalised
    }

    /// a / b for b ≠ 0, reduced.
    static func / (a: Rational, b: Rational) -> Rational {
        precondition(!b.isZero, "rational division by zero")
        if a.isZero { return .zero }
        let sign: BigInt = b.m < 0 ? -1 : 1
        return Rational(a.m * BigInt(b.d) * sign, exponent: a.e - b.e, over: a.d * b.m.magnitude).reduced
    }

    /// Powers of two of m moved into e (keeps the numbers small and equal values equal in form
    /// more often), without the cost of a gcd.
    var normalised: Rational {
        if m == 0 { return .zero }
        let tz = m.magnitude.trailingZeroBitCount
        var r = self
        if tz > 0 { r.m >>= tz; r.e += tz }
        let dz = d.trailingZeroBitCount
        if dz > 0 { r.d >>= dz; r.e -= dz }
        return r
    }

    /// In lowest terms (m odd or zero, d odd, gcd(|m|, d) = 1).
    var reduced: Rational {
        var r = normalised
        if r.m == 0 || r.d == 1 { return r }
        let g = r.m.magnitude.greatestCommonDivisor(with: r.d)
        if g > 1 { r.m /= BigInt(g); r.d /= g }
        return r
    }

    static func == (a: Rational, b: Rational) -> Bool { (a - b).isZero }
    static func < (a: Rational, b: Rational) -> Bool { (a - b).signum < 0 }

    /// The correctly rounded double (ties to even); an exact zero is +0.
    var double: Double { m == 0 ? 0 : roundToDouble(m, timesTwoToThe: e, dividedBy: d) }

    /// The exact square root when it is rational, else nil.
    var squareRoot: Rational? {
        let r = reduced
        guard r.m >= 0 else { return nil }
        if r.m == 0 { return .zero }
        guard r.e % 2 == 0 else { return nil }
        let a = r.m.magnitude, b = r.d
        let sa = a.squareRoot(), sb = b.squareRoot()
        guard sa * sa == a, sb * sb == b else { return nil }
        return Rational(BigInt(sa), exponent: r.e / 2, over: sb)
    }

    /// self^n for an integer n (self ≠ 0 when n < 0).
    func power(_ n: Int) -> Rational {
        if n == 0 { return .one }
        let r = reduced
        let base = n > 0 ? r : Rational.one / r
        let k = n.magnitude
        return Rational(base.m.power(Int(k)), exponent: base.e * Int(k), over: base.d.power(Int(k)))
    }

    /// self^x for a positive self and a double x, when the result is rational and its
    /// numerator and denominator stay below `maxBits` bits; else nil. With x = μ·2^−j (μ odd),
    /// self^x is rational exactly when self is a perfect 2^j-th power (self in lowest terms),
    /// found by j exact square roots.
    func power(_ x: Double, maxBits: Int = 1 << 16) -> Rational? {
        precondition(signum > 0 && x.isFinite)
        if x == 0 { return .one }
        var (mu, j) = x.integerSignificandAndExponent
        var root = reduced
        while j < 0 && mu % 2 == 0 { mu /= 2; j += 1 }
        while j > 0 {   // an integer exponent μ·2^j
            guard mu.magnitude < (1 << 40) else { return nil }
            mu *= 2; j -= 1
        }
        while j < 0 {
            guard let s = root.squareRoot else { return nil }
            root = s
            j += 1
        }
        if root.m == 1 && root.e == 0 && root.d == 1 { return .one }
        let bits = max(root.m.magnitude.bitWidth + max(root.e, 0), Int(root.d.bitWidth) + max(-root.e, 0))
        guard bits.multipliedReportingOverflow(by: Int(mu.magnitude)).overflow == false,
              bits * Int(mu.magnitude) <= maxBits else { return nil }
        return root.power(Int(mu))
    }
}

extension Interval {
    /// An interval holding the rational r at precision p (exact when p covers its bits).
    init(_ r: Rational, precision p: Int) {
        self.init(precision: p)
        let text = String(r.m, radix: 16)
        let dText = String(r.d, radix: 16)
        let den = Interval(precision: p)
        _ = mpfr_set_str(lo.v, text, 16, MPFR_RNDD)
        _ = mpfr_set_str(hi.v, text, 16, MPFR_RNDU)
        _ = mpfr_set_str(den.lo.v, dText, 16, MPFR_RNDD)
        _ = mpfr_set_str(den.hi.v, dText, 16, MPFR_RNDU)
        // Scaling by 2^e is exact (the exponent range is MPFR's widest).
        _ = mpfr_mul_2si(lo.v, lo.v, r.e, MPFR_RNDD)
        _ = mpfr_mul_2si(hi.v, hi.v, r.e, MPFR_RNDU)
        if r.d != 1 {
            let q = self / den
            mpfr_set(lo.v, q.lo.v, MPFR_RNDD)
            mpfr_set(hi.v, q.hi.v, MPFR_RNDU)
        }
    }

    /// √ of a nonnegative interval.
    var squareRoot: Interval { increasing(mpfr_sqrt) }

    /// self^x for a positive interval and a double x: monotone in the base, so the ends
    /// of the image are the powers of the ends, each rounded outward.
    func power(_ x: Double) -> Interval {
        let r = Interval(precision: precision)
        let e = MPNumber(53), t = MPNumber(precision)
        mpfr_set_d(e.v, x, MPFR_RNDN)
        mpfr_pow(r.lo.v, lo.v, e.v, MPFR_RNDD)
        mpfr_pow(t.v, hi.v, e.v, MPFR_RNDD)
        mpfr_min(r.lo.v, r.lo.v, t.v, MPFR_RNDD)
        mpfr_pow(r.hi.v, lo.v, e.v, MPFR_RNDU)
        mpfr_pow(t.v, hi.v, e.v, MPFR_RNDU)
        mpfr_max(r.hi.v, r.hi.v, t.v, MPFR_RNDU)
        return r
    }
}
