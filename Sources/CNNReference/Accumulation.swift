import BigInt

/// γₙ(u) = n·u/(1 − n·u), the bound on the relative error of n rounded operations
/// (Higham 2002, §3.1); infinite once n·u ≥ 1.
@inlinable
public func gamma(_ n: Double, _ u: Double) -> Double {
    n * u >= 1 ? .infinity : n * u / (1 - n * u)
}

/// How a kernel adds up a sum of products.
///
/// Every layer kernel is written once, generic over its accumulator. The
/// reference results use `CorrectlyRounded`; the gradient checker, which runs
/// thousands of forward passes that need ~1e-13 rather than correct rounding,
/// runs the same loops with `CompensatedSum` (or `PlainSum`, with a bound measured
/// by `TermMagnitude` and `TermCount`).
public protocol Accumulator {
    init()
    /// Adds the exact product `a·b` to the sum.
    mutating func add(_ a: Double, times b: Double)
    /// Adds `a` to the sum.
    mutating func add(_ a: Double)
    /// The sum of the terms that `terms` adds, divided by `divisor` (a positive
    /// integer or 1). `terms` may be called more than once and must add the
    /// same terms each time.
    static func sum(dividedBy divisor: Double, _ terms: (inout Self) -> Void) -> Double
}

extension Accumulator {
    @inlinable
    public static func sum(_ terms: (inout Self) -> Void) -> Double {
        sum(dividedBy: 1, terms)
    }
}

/// A plain multiply-add loop: what an engine would write. Fast, with the usual
/// error of recursive summation (γₙ·Σ|terms|).
public struct PlainSum: Accumulator {
    @usableFromInline var s = 0.0
    @inlinable public init() {}
    @inlinable public mutating func add(_ a: Double, times b: Double) { s += a * b }
    @inlinable public mutating func add(_ a: Double) { s += a }
    @inlinable
    public static func sum(dividedBy divisor: Double, _ terms: (inout PlainSum) -> Void) -> Double {
        var acc = PlainSum()
        terms(&acc)
        return divisor == 1 ? acc.s : acc.s / divisor
    }
}

/// The exact sum of the exact products, rounded once to nearest (ties to even).
///
/// A fast pass keeps the sum as an unevaluated pair `s + c` with error-free
/// transformations (TwoProduct with `fma`, TwoSum), together with a rigorous
/// bound on the error of `c`. When the bound proves which `Double` the exact
/// value rounds to, that is the result; otherwise (a result on or near a
/// rounding boundary, underflowing products, overflow) the terms are replayed
/// into exact integer arithmetic and rounded from there. Either way the result
/// is the correctly rounded exact value.
///
/// Non-finite inputs follow IEEE 754: a NaN, `∞·0` or `∞ − ∞` gives NaN, an
/// infinity otherwise gives that infinity. A sum that is exactly zero is `+0`, as
/// in a plain loop that starts from `+0`.
public struct CorrectlyRounded: Accumulator {
    @usableFromInline var s = 0.0          // running sum of the rounded terms
    @usableFromInline var c = 0.0          // running sum of the rounding errors
    @usableFromInline var errorMass = 0.0  // Σ|errors|, for the bound on c
    @usableFromInline var count = 0
    @usableFromInline var needsExact = false
    @usableFromInline var nan = false, positiveInfinity = false, negativeInfinity = false
    /// Set only while replaying the terms into exact arithmetic.
    @usableFromInline var exact: ExactSumBox? = nil

    @inlinable public init() {}

    @inlinable
    public mutating func add(_ a: Double, times b: Double) {
        // One test keeps the common case fast: non-finite values, underflowing products
        // (whose fma error term is no longer exact) and the exact replay all go aside.
        let p = a * b
        if !(p.magnitude >= 0x1p-968) || !p.isFinite || exact != nil {
            addUnusual(a, times: b)
            return
        }
        addTerm(p, error: (-p).addingProduct(a, b))   // a·b − p exactly (TwoProduct)
    }

    @inlinable
    public mutating func add(_ a: Double) {
        if !(a.magnitude >= 0x1p-968) || !a.isFinite || exact != nil { addUnusual(a, times: 1); return }
        addTerm(a, error: 0)
    }

    @usableFromInline
    mutating func addUnusual(_ a: Double, times b: Double) {
        if let exact { exact.sum.add(a, times: b); return }
        let p = a * b
        guard a.isFinite && b.isFinite else { noteNonFinite(p); return }
        if !p.isFinite || (a != 0 && b != 0) { needsExact = true }   // overflow, or an inexact error term
        addTerm(p, error: p.isFinite ? (-p).addingProduct(a, b) : 0)   // the exact path decides anyway
    }

    @inlinable
    mutating func addTerm(_ p: Double, error pe: Double) {
        let t = s + p                      // TwoSum (Knuth): s + p = t + se exactly
        let bp = t - s
        let se = (s - (t - bp)) + (p - bp)
        s = t
        let e = pe + se
        c += e
        errorMass += e.magnitude
        count += 1
    }

    @usableFromInline
    mutating func noteNonFinite(_ p: Double) {
        if p.isNaN { nan = true } else if p > 0 { positiveInfinity = true } else { negativeInfinity = true }
    }

    @inlinable
    public static func sum(dividedBy divisor: Double, _ terms: (inout CorrectlyRounded) -> Void) -> Double {
        var fast = CorrectlyRounded()
        terms(&fast)
        if fast.nan || (fast.positiveInfinity && fast.negativeInfinity) { return .nan }
        if fast.positiveInfinity { return .infinity }
        if fast.negativeInfinity { return -.infinity }
        if let certified = fast.certifiedResult(dividedBy: divisor) { return certified }
        var slow = CorrectlyRounded()
        let box = ExactSumBox()
        slow.exact = box
        terms(&slow)
        return box.sum.rounded(dividedBy: divisor)
    }

    /// The correctly rounded result when the fast pass can prove it, else nil.
    @usableFromInline
    func certifiedResult(dividedBy divisor: Double) -> Double? {
        guard !needsExact, s.isFinite, c.isFinite else { return nil }
        // c sums the n rounded pairs eᵢ = fl(peᵢ + seᵢ): |c − Σ(peᵢ + seᵢ)| ≤ γₙ₊₁·Σ|eᵢ|·(1 + u)
        // (recursive summation, Higham 2002, eq. 4.4, plus the rounding of each pair);
        // γ₂ₙ₊₂ and a factor 2 cover that and the rounding of errorMass itself.
        let u = 0x1p-53
        let bound = errorMass == 0 ? 0 : 2 * gamma(Double(2 * count + 2), u) * errorMass
        let r = s + c
        let bp = r - s
        let e = (s - (r - bp)) + (c - bp)  // s + c = r + e exactly
        guard r.isFinite else { return nil }
        if divisor == 1 {
            if bound == 0 { return r }      // every step was exact
            return (e.magnitude + bound) * (1 + 0x1p-50) < halfGap(r) ? r : nil
        }
        // exact/k = q + (r − q·k + e + δ)/k with the remainder r − q·k exact (fma).
        let q = r / divisor
        let remainder = r.addingProduct(-q, divisor)
        guard q.magnitude >= 0x1p-960 || q == 0 else { return nil }
        let rest = remainder + e
        let correction = rest / divisor
        let result = q + correction
        let bq = result - q
        let e2 = (q - (result - bq)) + (correction - bq)  // q + correction = result + e2
        if bound == 0 && rest == 0 { return result }
        let slack = e2.magnitude + 4 * u * correction.magnitude + (4 * u * rest.magnitude + bound) / divisor
        return slack * (1 + 0x1p-50) < halfGap(result) ? result : nil
    }

    /// Half the distance from r to its nearer neighbour (a quarter ulp at a power of
    /// two, where the spacing below halves): any real value closer to r than this
    /// rounds to r. Zero for r = 0, which the fast pass never certifies.
    @usableFromInline
    func halfGap(_ r: Double) -> Double {
        r == 0 ? 0 : r.magnitude.ulp / (r.significandBitPattern == 0 ? 4 : 2)
    }
}

/// The exact sum the replay writes into (a reference, so the fast path tests one pointer).
@usableFromInline
final class ExactSumBox {
    @usableFromInline var sum = ExactSum()
    @usableFromInline init() {}
}

/// Exact arithmetic for the slow path: Σ aᵢ·bᵢ as an integer times a power of two.
public struct ExactSum: Sendable {
    @usableFromInline var mantissa: BigInt = 0
    @usableFromInline var exponent = Int.max

    public init() {}

    @usableFromInline
    mutating func add(_ a: Double, times b: Double) {
        guard a != 0, b != 0 else { return }
        let (ma, ea) = a.integerSignificandAndExponent
        let (mb, eb) = b.integerSignificandAndExponent
        let e = ea + eb
        let term = BigInt(ma) * BigInt(mb)
        if exponent == Int.max { exponent = e }
        if e < exponent {
            mantissa <<= (exponent - e)
            exponent = e
        }
        mantissa += term << (e - exponent)
    }

    /// The exact sum divided by `divisor` (a positive integer), rounded once.
    @usableFromInline
    func rounded(dividedBy divisor: Double) -> Double {
        if mantissa == 0 { return 0 }
        return roundToDouble(mantissa, timesTwoToThe: exponent,
                             dividedBy: BigUInt(UInt64(divisor)))
    }
}

extension Double {
    /// `self = m · 2^e` with `m` a signed integer of at most 53 bits (finite, nonzero `self`).
    @inlinable
    public var integerSignificandAndExponent: (Int64, Int) {
        let bits = significandBitPattern
        let m: Int64, e: Int
        if exponentBitPattern == 0 {
            m = Int64(bits); e = -1074
        } else {
            m = Int64(bits | (1 << 52)); e = Int(exponentBitPattern) - 1075
        }
        return (sign == .minus ? -m : m, e)
    }
}

/// `n · 2^e / d` rounded to the nearest `Double`, ties to even, with gradual
/// underflow and overflow to infinity.
public func roundToDouble(_ n: BigInt, timesTwoToThe e: Int, dividedBy d: BigUInt = 1) -> Double {
    precondition(d > 0)
    if n == 0 { return 0 }
    let negative = n.sign == .minus
    let magnitude = n.magnitude
    // Scale so the integer quotient has at least 66 bits, then keep a sticky bit.
    let shift = 66 - (magnitude.bitWidth - d.bitWidth)
    let numerator = shift >= 0 ? magnitude << shift : magnitude
    let denominator = shift >= 0 ? d : d << (-shift)
    let (quotient, remainder) = numerator.quotientAndRemainder(dividingBy: denominator)
    if quotient == 0 { return negative ? -0.0 : 0.0 }
    let q = quotient
    let qExponent = e - shift           // value = (q + frac) · 2^qExponent
    let sticky = remainder != 0
    let top = q.bitWidth - 1 + qExponent  // exponent of the leading bit
    if top > 1023 { return negative ? -.infinity : .infinity }
    let lsb = max(top - 52, -1074)         // exponent of the result's last bit
    let drop = lsb - qExponent
    var kept: BigUInt
    if drop <= 0 {
        kept = q << (-drop)
    } else if drop > q.bitWidth + 1 {
        return negative ? -0.0 : 0.0    // below half the smallest subnormal
    } else {
        kept = q >> drop
        let droppedBits = q - (kept << drop)
        let half = BigUInt(1) << (drop - 1)
        if droppedBits > half || (droppedBits == half && (sticky || kept & 1 == 1)) {
            kept += 1
        }
    }
    let significand = Double(UInt64(kept))   // at most 2^53: exact
    let result = Double(sign: .plus, exponent: lsb, significand: significand)
    return negative ? -result : result
}

/// A compensated dot product (Ogita, Rump & Oishi 2005, Dot2): error at most
/// u·|result| + γₙ²·Σ|terms|, so a result is as good as correctly rounded to
/// within about one ulp, at a fraction of `CorrectlyRounded`'s cost. The
/// gradient checker evaluates its objective with it, so the objective's
/// rounding noise is about ε·Σ|terms| and can be bounded in the tolerance.
public struct CompensatedSum: Accumulator {
    // Two interleaved lanes (terms alternate between them), so consecutive additions
    // do not wait on each other; the lanes are merged with one more TwoSum.
    @usableFromInline var s = 0.0, c = 0.0, s2 = 0.0, c2 = 0.0
    @inlinable public init() {}
    @inlinable public mutating func add(_ a: Double, times b: Double) {
        let p = a * b
        let pe = (-p).addingProduct(a, b)
        let t = s + p
        let bp = t - s
        let c1 = c + (((s - (t - bp)) + (p - bp)) + pe)
        (s, c, s2, c2) = (s2, c2, t, c1)
    }
    @inlinable public mutating func add(_ a: Double) {
        let t = s + a
        let bp = t - s
        let c1 = c + ((s - (t - bp)) + (a - bp))
        (s, c, s2, c2) = (s2, c2, t, c1)
    }
    @inlinable
    public static func sum(dividedBy divisor: Double, _ terms: (inout CompensatedSum) -> Void) -> Double {
        var acc = CompensatedSum()
        terms(&acc)
        let t = acc.s + acc.s2
        let bp = t - acc.s
        let e = (acc.s - (t - bp)) + (acc.s2 - bp)
        let r = t + (acc.c + acc.c2 + e)
        return divisor == 1 ? r : r / divisor
    }
}

/// Measures instead of summing: the sum of |terms| (divided by the divisor). Run
/// through a `SumOfProducts` layer, it gives every output's Σ|terms|, the scale of
/// that output's rounding error.
public struct TermMagnitude: Accumulator {
    @usableFromInline var m = 0.0
    @inlinable public init() {}
    @inlinable public mutating func add(_ a: Double, times b: Double) { m += (a * b).magnitude }
    @inlinable public mutating func add(_ a: Double) { m += a.magnitude }
    @inlinable
    public static func sum(dividedBy divisor: Double, _ terms: (inout TermMagnitude) -> Void) -> Double {
        var acc = TermMagnitude()
        terms(&acc)
        return acc.m / divisor
    }
}

/// Measures instead of summing: the number of terms (plus one for a division).
public struct TermCount: Accumulator {
    @usableFromInline var n = 0.0
    @inlinable public init() {}
    @inlinable public mutating func add(_ a: Double, times b: Double) { n += 1 }
    @inlinable public mutating func add(_ a: Double) { n += 1 }
    @inlinable
    public static func sum(dividedBy divisor: Double, _ terms: (inout TermCount) -> Void) -> Double {
        var acc = TermCount()
        terms(&acc)
        return acc.n + (divisor == 1 ? 0 : 1)
    }
}
