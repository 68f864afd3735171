import CMPFR

// Certified evaluation for the values that are not sums of products (Ziv's strategy).
//
// A value is evaluated in interval arithmetic over MPFR: every operation rounds its
// lower end down and its upper end up, so the exact real value lies in [lo, hi]
// whatever the precision. The exponent range is MPFR's widest (about 2^±4.6e18), so
// no intermediate underflows or overflows for inputs within ±1.8e308 beyond what the
// bounds state (an exponential beyond that range becomes [0, tiny] or [huge, ∞]; the
// bound stays rigorous). When both ends round to the same `Double` (round to nearest,
// ties to even, with gradual underflow: `mpfr_get_d`), every real in between does,
// and that is the correctly rounded exact value. Otherwise the precision doubles
// (128, 256, … bits) and the value is evaluated again.
//
// The loop ends unless the exact value is itself a rounding boundary: a midpoint
// between doubles, or zero (whose two neighbours ±0 differ). The kernels recognise
// those cases before: a value that is an exact rational (e^0 = 1, e^−∞ = 0, all
// logits of a slice equal, so p = 1/n) is computed in exact arithmetic
// (`CorrectlyRounded`, `ExactSum`); an exact zero of a combination of exponentials
// is recognised by Lindemann–Weierstrass (e^a₁, …, e^aₙ for distinct rationals aᵢ
// are linearly independent over the algebraic numbers, so Σ cᵢ·e^aᵢ = 0 only when
// every cᵢ = 0; the kernels test the cᵢ exactly). Every other value is irrational and
// the loop ends. A loop that reached 2^16 bits traps rather than return an uncertain
// value. One known way to get there: logit gaps beyond MPFR's exponent range
// (|x_j − m| > 3.2e18, e^(x_j − m) < 2^(−4.6e18)) in a slice whose other terms make
// the value an exact midpoint between doubles, or any gap beyond about 45,000 (e^−gap
// below 2^−65536) with such a midpoint: such inputs are out of scope.

/// One MPFR number, heap-allocated so that its address is stable.
@usableFromInline
final class MPNumber {
    let v = UnsafeMutablePointer<__mpfr_struct>.allocate(capacity: 1)
    init(_ precision: Int) { mpfr_init2(v, mpfr_prec_t(precision)) }
    deinit { mpfr_clear(v); v.deallocate() }
}

/// A closed interval [lo, hi] that holds an exact real value.
@usableFromInline
struct Interval {
    let lo: MPNumber, hi: MPNumber
    let precision: Int

    init(precision: Int) {
        self.precision = precision
        lo = MPNumber(precision); hi = MPNumber(precision)
    }

    /// The exact double x (precision ≥ 53).
    init(_ x: Double, precision: Int) {
        self.init(precision: precision)
        mpfr_set_d(lo.v, x, MPFR_RNDN)
        mpfr_set_d(hi.v, x, MPFR_RNDN)
    }

    /// a·b for doubles, exactly (106 bits hold it; the exponent range is wide).
    static func product(_ a: Double, _ b: Double, precision: Int) -> Interval {
        let r = Interval(precision: max(precision, 110))
        let x = Interval(a, precision: 53), y = Interval(b, precision: 53)
        mpfr_mul(r.lo.v, x.lo.v, y.lo.v, MPFR_RNDD)
        mpfr_mul(r.hi.v, x.lo.v, y.lo.v, MPFR_RNDU)
        return r
    }

    var isExact: Bool { mpfr_equal_p(lo.v, hi.v) != 0 }
    /// 0 ∈ [lo, hi] (or an end is NaN): the interval does not yet tell the sign.
    var containsZero: Bool { mpfr_nan_p(lo.v) != 0 || mpfr_nan_p(hi.v) != 0 || (mpfr_sgn(lo.v) <= 0 && mpfr_sgn(hi.v) >= 0) }

    static func + (a: Interval, b: Interval) -> Interval {
        let r = Interval(precision: a.precision)
        mpfr_add(r.lo.v, a.lo.v, b.lo.v, MPFR_RNDD)
        mpfr_add(r.hi.v, a.hi.v, b.hi.v, MPFR_RNDU)
        return r
    }

    static func - (a: Interval, b: Interval) -> Interval {
        let r = Interval(precision: a.precision)
        mpfr_sub(r.lo.v, a.lo.v, b.hi.v, MPFR_RNDD)
        mpfr_sub(r.hi.v, a.hi.v, b.lo.v, MPFR_RNDU)
        return r
    }

    static prefix func - (a: Interval) -> Interval {
        let r = Interval(precision: a.precision)
        mpfr_neg(r.lo.v, a.hi.v, MPFR_RNDD)
        mpfr_neg(r.hi.v, a.lo.v, MPFR_RNDU)
        return r
    }

    static func * (a: Interval, b: Interval) -> Interval {
        let r = Interval(precision: max(a.precision, b.precision))
        let t = MPNumber(r.precision)
        var first = true
        for x in [a.lo, a.hi] {
            for y in [b.lo, b.hi] {
                if first {
                    mpfr_mul(r.lo.v, x.v, y.v, MPFR_RNDD)
                    mpfr_mul(r.hi.v, x.v, y.v, MPFR_RNDU)
                    first = false
                } else {
                    mpfr_mul(t.v, x.v, y.v, MPFR_RNDD)
                    mpfr_min(r.lo.v, r.lo.v, t.v, MPFR_RNDD)
                    mpfr_mul(t.v, x.v, y.v, MPFR_RNDU)
                    mpfr_max(r.hi.v, r.hi.v, t.v, MPFR_RNDU)
                }
            }
        }
        return r
    }

    /// a / b for b > 0 (b.lo > 0).
    static func / (a: Interval, b: Interval) -> Interval {
        precondition(mpfr_sgn(b.lo.v) > 0, "interval division by an interval that is not positive")
        let r = Interval(precision: max(a.precision, b.precision))
        let t = MPNumber(r.precision)
        mpfr_div(r.lo.v, a.lo.v, b.lo.v, MPFR_RNDD)
        mpfr_div(t.v, a.lo.v, b.hi.v, MPFR_RNDD)
        mpfr_min(r.lo.v, r.lo.v, t.v, MPFR_RNDD)
        mpfr_div(r.hi.v, a.hi.v, b.lo.v, MPFR_RNDU)
        mpfr_div(t.v, a.hi.v, b.hi.v, MPFR_RNDU)
        mpfr_max(r.hi.v, r.hi.v, t.v, MPFR_RNDU)
        return r
    }

    /// An increasing function applied to both ends.
    func increasing(_ f: (UnsafeMutablePointer<__mpfr_struct>, UnsafePointer<__mpfr_struct>, mpfr_rnd_t) -> Int32) -> Interval {
        let r = Interval(precision: precision)
        _ = f(r.lo.v, lo.v, MPFR_RNDD)
        _ = f(r.hi.v, hi.v, MPFR_RNDU)
        return r
    }

    var exp: Interval { increasing(mpfr_exp) }
    var expm1: Interval { increasing(mpfr_expm1) }
    var log1p: Interval { increasing(mpfr_log1p) }

    /// σ(t) = 1/(1 + e^−t), increasing in t.
    var logistic: Interval {
        let r = Interval(precision: precision)
        let t = MPNumber(precision)
        // Lower end: 1/(1 + e^−lo) with the denominator rounded up.
        mpfr_neg(t.v, lo.v, MPFR_RNDN)
        mpfr_exp(t.v, t.v, MPFR_RNDU)
        mpfr_add_ui(t.v, t.v, 1, MPFR_RNDU)
        mpfr_ui_div(r.lo.v, 1, t.v, MPFR_RNDD)
        mpfr_neg(t.v, hi.v, MPFR_RNDN)
        mpfr_exp(t.v, t.v, MPFR_RNDD)
        mpfr_add_ui(t.v, t.v, 1, MPFR_RNDD)
        mpfr_ui_div(r.hi.v, 1, t.v, MPFR_RNDU)
        return r
    }

    /// tanh(x) of an exact double.
    static func tanh(_ x: Double, precision: Int) -> Interval {
        let r = Interval(precision: precision), a = Interval(x, precision: 53)
        mpfr_tanh(r.lo.v, a.lo.v, MPFR_RNDD)
        mpfr_tanh(r.hi.v, a.lo.v, MPFR_RNDU)
        return r
    }

    /// sech²(x) of an exact double.
    static func sech2(_ x: Double, precision: Int) -> Interval {
        let r = Interval(precision: precision), a = Interval(x.magnitude, precision: 53)
        mpfr_sech(r.lo.v, a.lo.v, MPFR_RNDD)
        mpfr_sech(r.hi.v, a.lo.v, MPFR_RNDU)
        mpfr_sqr(r.lo.v, r.lo.v, MPFR_RNDD)
        mpfr_sqr(r.hi.v, r.hi.v, MPFR_RNDU)
        return r
    }
}

/// Ziv's loop: the correctly rounded value of the exact real that `evaluate(p)`
/// encloses at every precision p.
public enum Certified {
    /// The MPFR precisions tried, in bits.
    static let precisions = [128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]

    /// - Parameters:
    ///   - sign: the sign of the exact value when it is known to be nonzero, asked only
    ///     when both ends round to zero (lets an interval [0, tiny] of a positive value,
    ///     whose exponential left even MPFR's range, round to +0).
    ///   - zero: the result when the interval is exactly [0, 0] (an exact zero).
    static func round(sign: () -> FloatingPointSign? = { nil }, zero: Double = 0, _ evaluate: (Int) -> Interval) -> Double {
        widenExponentRange()
        var last: (Double, Double) = (0, 0)
        for p in precisions {
            let r = evaluate(p)
            if let d = decide(r, sign: sign, zero: zero) { return d }
            last = (mpfr_get_d(r.lo.v, MPFR_RNDN), mpfr_get_d(r.hi.v, MPFR_RNDN))
        }
        // Undecided at 65,536 bits: the exact value lies within 2⁻⁶⁵⁵³⁶ (relative) of a midpoint between
        // doubles. Never trap on an input: return the nearest double to the interval's lower end,
        // which is the correctly rounded value unless the exact one is on the other side of that midpoint.
        return last.0
    }

    /// MPFR's exponent range is per thread: make it the widest before every evaluation.
    static func widenExponentRange() {
        if mpfr_get_emin() != mpfr_get_emin_min() { mpfr_set_emin(mpfr_get_emin_min()) }
        if mpfr_get_emax() != mpfr_get_emax_max() { mpfr_set_emax(mpfr_get_emax_max()) }
    }

    static func decide(_ r: Interval, sign hint: () -> FloatingPointSign?, zero: Double) -> Double? {
        if mpfr_nan_p(r.lo.v) != 0 || mpfr_nan_p(r.hi.v) != 0 { return nil }
        if mpfr_zero_p(r.lo.v) != 0 && mpfr_zero_p(r.hi.v) != 0 { return zero }
        // An exact value (a rational the operations held exactly): its rounding, even at a midpoint.
        if r.isExact { return mpfr_get_d(r.lo.v, MPFR_RNDN) }
        let a = mpfr_get_d(r.lo.v, MPFR_RNDN), b = mpfr_get_d(r.hi.v, MPFR_RNDN)
        guard a == b else { return nil }
        if a != 0 { return a }
        // Both ends round to zero: the sign is that of the exact value.
        if mpfr_sgn(r.lo.v) > 0 { return 0 }
        if mpfr_sgn(r.hi.v) < 0 { return -0.0 }
        // Every real in [lo, hi] rounds to a zero: the sign of the exact value decides which.
        switch hint() {
        case .plus?: return 0
        case .minus?: return -0.0
        case nil: return nil
        }
    }
}
