import CMPFR

/// A multiple-precision binary float (MPFR), rounded to nearest after every
/// operation, at the precision the oracle sizes to each case (`Oracle.bits`):
/// enough that every sum of products of the case's doubles is exact, and at least
/// 1,024 bits for the transcendental layers.
final class BigFloat {
    @TaskLocal static var bits: mpfr_prec_t = 512
    static var precision: mpfr_prec_t { bits }
    /// MPFR writes results in place, often into an operand: a stable pointer, not a Swift property.
    let value = UnsafeMutablePointer<__mpfr_struct>.allocate(capacity: 1)

    init() { mpfr_init2(value, Self.precision) }
    convenience init(_ x: Double) {
        self.init()
        mpfr_set_d(value, x, MPFR_RNDN)
    }
    deinit {
        mpfr_clear(value)
        value.deallocate()
    }

    /// The nearest double (ties to even).
    var double: Double { mpfr_get_d(value, MPFR_RNDN) }
    var isNaN: Bool { mpfr_nan_p(value) != 0 }
    var isFinite: Bool { mpfr_number_p(value) != 0 }
    var sign: Int { Int(mpfr_sgn(value)) }

    static func binary(_ a: BigFloat, _ b: BigFloat,
                       _ op: (UnsafeMutablePointer<__mpfr_struct>, UnsafePointer<__mpfr_struct>, UnsafePointer<__mpfr_struct>, mpfr_rnd_t) -> Int32) -> BigFloat {
        let r = BigFloat()
        _ = op(r.value, a.value, b.value, MPFR_RNDN)
        return r
    }
    static func unary(_ a: BigFloat, _ op: (UnsafeMutablePointer<__mpfr_struct>, UnsafePointer<__mpfr_struct>, mpfr_rnd_t) -> Int32) -> BigFloat {
        let r = BigFloat()
        _ = op(r.value, a.value, MPFR_RNDN)
        return r
    }

    static func + (a: BigFloat, b: BigFloat) -> BigFloat { binary(a, b, mpfr_add) }
    static func - (a: BigFloat, b: BigFloat) -> BigFloat { binary(a, b, mpfr_sub) }
    static func * (a: BigFloat, b: BigFloat) -> BigFloat { binary(a, b, mpfr_mul) }
    static func / (a: BigFloat, b: BigFloat) -> BigFloat { binary(a, b, mpfr_div) }
    static prefix func - (a: BigFloat) -> BigFloat { unary(a, mpfr_neg) }
    static func > (a: BigFloat, b: BigFloat) -> Bool { mpfr_greater_p(a.value, b.value) != 0 }
    static func < (a: BigFloat, b: BigFloat) -> Bool { mpfr_less_p(a.value, b.value) != 0 }

    var exp: BigFloat { Self.unary(self, mpfr_exp) }
    var expm1: BigFloat { Self.unary(self, mpfr_expm1) }
    var log: BigFloat { Self.unary(self, mpfr_log) }
    var tanh: BigFloat { Self.unary(self, mpfr_tanh) }
    var magnitude: BigFloat { Self.unary(self, mpfr_abs) }

    /// self += a·b, rounded once.
    func addProduct(_ a: BigFloat, _ b: BigFloat) {
        _ = mpfr_fma(value, a.value, b.value, value, MPFR_RNDN)
    }
    func add(_ a: BigFloat) { _ = mpfr_add(value, value, a.value, MPFR_RNDN) }
}

extension BigFloat {
    static var zero: BigFloat { BigFloat(0) }
    static var one: BigFloat { BigFloat(1) }
    /// σ(x) = 1/(1 + e^−x), never 0 for a finite x.
    var logistic: BigFloat { (.one / (.one + (-self).exp)).positiveIfFinite(self) }
    /// e^x, never 0 for a finite x.
    var positiveExp: BigFloat { exp.positiveIfFinite(self) }

    /// A positive value of a finite argument that underflowed even MPFR's exponent range
    /// (e^−1e300) becomes the least positive MPFR number: times any double it still rounds
    /// to a zero of the right sign, and ∞ times it is ∞, not NaN.
    func positiveIfFinite(_ argument: BigFloat) -> BigFloat {
        guard isZero && mpfr_number_p(argument.value) != 0 else { return self }
        let r = BigFloat()
        mpfr_set_zero(r.value, 1)
        mpfr_nextabove(r.value)
        return r
    }
    var log1p: BigFloat { Self.unary(self, mpfr_log1p) }
    var cosh: BigFloat { Self.unary(self, mpfr_cosh) }
    var squareRoot: BigFloat { Self.unary(self, mpfr_sqrt) }
    /// self^e for a positive self.
    func power(_ e: BigFloat) -> BigFloat { Self.binary(self, e, mpfr_pow) }
    var isZero: Bool { mpfr_zero_p(value) != 0 }
    static func == (a: BigFloat, b: BigFloat) -> Bool { mpfr_equal_p(a.value, b.value) != 0 }
}

/// Whether `ours` is the correctly rounded value of `truth`: the same bits as
/// `truth` rounded to nearest (ties to even, gradual underflow, overflow to ±∞),
/// ±0 told apart; any NaN matches a NaN.
func isCorrectlyRounded(_ ours: Double, _ truth: BigFloat) -> Bool {
    if truth.isNaN { return ours.isNaN }
    return truth.double.bitPattern == ours.bitPattern
}

/// The error of `ours` in units in the last place of the true value `truth`:
/// |ours − truth| / ulp(truth rounded), with the ulp of a zero or subnormal result
/// taken as that of the subnormals, 2⁻¹⁰⁷⁴. A NaN or infinity must match exactly
/// (0 ulp) or counts as infinitely wrong.
func ulpError(_ ours: Double, _ truth: BigFloat) -> Double {
    let t = truth.double
    if truth.isNaN || !t.isFinite || !ours.isFinite {
        return (truth.isNaN && ours.isNaN) || t == ours ? 0 : .infinity
    }
    let difference = (BigFloat(ours) - truth).magnitude
    let ulp = max(t.magnitude.ulp, 0x1p-1074)
    // For a power of two, the ulp below it is half: measure on the side ours lies.
    // (Subnormals are evenly spaced: never below 2⁻¹⁰⁷⁴.)
    let spacing = ours.magnitude < t.magnitude && t.magnitude == t.magnitude.binade ? max(ulp / 2, 0x1p-1074) : ulp
    return (difference / BigFloat(spacing)).double
}
