@preconcurrency import CGSL

/// GSL's process-wide set-up: its default error handler calls `abort()`, so it
/// is switched off once, before any GSL call, and status codes are read instead.
enum GSL {
    static let ready: Bool = {
        gsl_set_error_handler_off()
        return true
    }()
}

/// Reproducible random numbers from GSL's Mersenne Twister (`gsl_rng_mt19937`):
/// the same seed gives the same sequence on every machine.
public final class SeededRandom {
    private let rng: OpaquePointer

    public init(seed: UInt) {
        _ = GSL.ready
        rng = OpaquePointer(gsl_rng_alloc(gsl_rng_mt19937))
        gsl_rng_set(UnsafePointer(rng), seed)
    }

    deinit { gsl_rng_free(UnsafeMutablePointer(rng)) }

    private var pointer: UnsafePointer<gsl_rng> { UnsafePointer(rng) }

    /// 32 random bits.
    public func bits() -> UInt64 { UInt64(gsl_rng_get(pointer)) }

    /// Uniform in [0, 1) with all 53 bits of the significand random
    /// (two 32-bit draws, 26 + 27 bits, as CPython's `random()`).
    public func unit() -> Double {
        let a = bits() >> 6, b = bits() >> 5
        return (Double(a) * 134217728.0 + Double(b)) / 9007199254740992.0
    }

    /// Uniform in [-1, 1) with a full 53-bit significand.
    public func signedUnit() -> Double { 2 * unit() - 1 }

    /// An integer in 0..<n.
    public func below(_ n: Int) -> Int { Int(gsl_rng_uniform_int(pointer, UInt(n))) }

    /// A standard normal draw (`gsl_ran_gaussian`).
    public func gaussian() -> Double { gsl_ran_gaussian(pointer, 1) }

    /// A random sign, ±1.
    public func sign() -> Double { bits() & 1 == 0 ? 1 : -1 }
}
