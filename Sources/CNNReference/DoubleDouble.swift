import Foundation

/// An unevaluated sum hi + lo of two doubles with |lo| ≤ ulp(hi)/2: about 106
/// significant bits. The transcendental layers compute in it and round once at
/// the end, so their results are correctly rounded unless the true value lies
/// within about 2⁻⁹⁵ relative of a rounding boundary.
public struct DoubleDouble: Sendable, Equatable {
    public var hi: Double
    public var lo: Double

    @inlinable public init(_ x: Double) { hi = x; lo = 0 }
    @inlinable init(hi: Double, lo: Double) { self.hi = hi; self.lo = lo }

    /// The nearest double.
    @inlinable public var value: Double { hi + lo }

    /// a + b exactly, as a normalised pair (Knuth's TwoSum).
    @inlinable static func twoSum(_ a: Double, _ b: Double) -> DoubleDouble {
        let s = a + b
        guard s.isFinite else { return DoubleDouble(s) }
        let bb = s - a
        return DoubleDouble(hi: s, lo: (a - (s - bb)) + (b - bb))
    }

    /// a + b exactly when |a| ≥ |b| (Dekker's FastTwoSum).
    @inlinable static func fastTwoSum(_ a: Double, _ b: Double) -> DoubleDouble {
        let s = a + b
        guard s.isFinite else { return DoubleDouble(s) }
        return DoubleDouble(hi: s, lo: b - (s - a))
    }

    /// a·b exactly (TwoProduct with fma), barring underflow.
    @inlinable public static func product(_ a: Double, _ b: Double) -> DoubleDouble {
        let p = a * b
        guard p.isFinite else { return DoubleDouble(p) }
        return DoubleDouble(hi: p, lo: (-p).addingProduct(a, b))
    }

    /// a − b exactly.
    @inlinable public static func difference(_ a: Double, _ b: Double) -> DoubleDouble { twoSum(a, -b) }

    @inlinable public static func + (a: DoubleDouble, b: DoubleDouble) -> DoubleDouble {
        guard a.hi.isFinite && b.hi.isFinite else { return DoubleDouble(a.hi + b.hi) }
        var s = twoSum(a.hi, b.hi)
        let t = twoSum(a.lo, b.lo)
        s.lo += t.hi
        s = fastTwoSum(s.hi, s.lo)
        s.lo += t.lo
        return fastTwoSum(s.hi, s.lo)
    }

    @inlinable public static prefix func - (a: DoubleDouble) -> DoubleDouble { DoubleDouble(hi: -a.hi, lo: -a.lo) }
    @inlinable public static func - (a: DoubleDouble, b: DoubleDouble) -> DoubleDouble { a + (-b) }

    @inlinable public static func * (a: DoubleDouble, b: DoubleDouble) -> DoubleDouble {
        guard a.hi.isFinite && b.hi.isFinite else { return DoubleDouble(a.hi * b.hi) }
        var p = product(a.hi, b.hi)
        guard p.hi.isFinite else { return p }   // the cross terms could overflow the other way: ∞ − ∞
        p.lo += a.hi * b.lo + a.lo * b.hi
        return fastTwoSum(p.hi, p.lo)
    }

    @inlinable public static func / (a: DoubleDouble, b: DoubleDouble) -> DoubleDouble {
        let q1 = a.hi / b.hi
        guard q1.isFinite && q1 != 0 && b.hi.isFinite else { return DoubleDouble(q1) }
        var r = a - b * DoubleDouble(q1)
        let q2 = r.hi / b.hi
        r = r - b * DoubleDouble(q2)
        let q3 = r.hi / b.hi
        return fastTwoSum(q1, q2) + DoubleDouble(q3)
    }

    /// self · 2^k, exactly (outside the subnormal range).
    @inlinable func scaled(_ k: Int) -> DoubleDouble {
        DoubleDouble(hi: Foundation.scalbn(hi, k), lo: Foundation.scalbn(lo, k))
    }

    static let ln2 = DoubleDouble(hi: 0.6931471805599453, lo: 2.3190468138462996e-17)

    /// e^x to about 2⁻¹⁰⁰ relative: x = k·ln2 + r, e^(r/1024) by its Taylor series,
    /// squared ten times, scaled by 2^k.
    public static func exp(_ x: DoubleDouble) -> DoubleDouble {
        if x.hi.isNaN { return DoubleDouble(.nan) }
        if x.hi > 709.8 { return DoubleDouble(.infinity) }
        if x.hi < -745.2 { return DoubleDouble(0) }
        let k = (x.hi / ln2.hi).rounded()
        let r = (x - ln2 * DoubleDouble(k)).scaled(-10)
        var term = DoubleDouble(1), sum = DoubleDouble(1)
        for i in 1...11 {
            term = term * r / DoubleDouble(Double(i))
            sum = sum + term
        }
        for _ in 0..<10 { sum = sum * sum }
        let kk = Int(k)
        // Scale in two steps so that neither factor overflows or underflows needlessly.
        return sum.scaled(kk / 2).scaled(kk - kk / 2)
    }

    /// e^x − 1 without cancellation for small |x|.
    public static func expm1(_ x: DoubleDouble) -> DoubleDouble {
        if x.hi.magnitude >= 0x1p-8 { return exp(x) - DoubleDouble(1) }
        var term = x, sum = x
        for i in 2...16 {
            term = term * x / DoubleDouble(Double(i))
            sum = sum + term
        }
        return sum
    }

    /// log x for x > 0, to about 2⁻¹⁰⁰ relative (absolute near x = 1): two Newton
    /// steps y ← y + x·e^−y − 1 from the double logarithm.
    public static func log(_ x: DoubleDouble) -> DoubleDouble {
        if x.hi.isNaN || x.hi < 0 { return DoubleDouble(.nan) }
        if x.hi == 0 { return DoubleDouble(-.infinity) }
        if x.hi.isInfinite { return DoubleDouble(.infinity) }
        var y = DoubleDouble(Foundation.log(x.hi))
        for _ in 0..<2 { y = y + x * exp(-y) - DoubleDouble(1) }
        return y
    }

    /// √x to about 2⁻¹⁰⁴ relative: the double root s, then one Newton step s + (x − s²)/2s
    /// with x − s² exact (s² as a TwoProduct).
    public static func squareRoot(_ x: DoubleDouble) -> DoubleDouble {
        let s = x.hi.squareRoot()
        guard s.isFinite, s > 0 else { return DoubleDouble(s) }
        return DoubleDouble(s) + (x - product(s, s)) / DoubleDouble(2 * s)
    }

    /// xʸ = e^(y·log x) for x > 0, relative to about 2⁻⁹⁰·(1 + |y|·(1 + |log x|)).
    public static func power(_ x: DoubleDouble, _ y: Double) -> DoubleDouble {
        exp(DoubleDouble(y) * log(x))
    }

    /// σ(x) = 1/(1 + e^−x), arranged so that e^(−|x|) never overflows.
    public static func logistic(_ x: DoubleDouble) -> DoubleDouble {
        let e = exp(DoubleDouble(hi: -x.hi.magnitude, lo: x.hi < 0 ? x.lo : -x.lo))
        let one = DoubleDouble(1)
        return x.hi >= 0 ? one / (one + e) : e / (one + e)
    }
}

/// A running sum of double-double terms (for sums of transcendental values).
public struct DoubleDoubleSum {
    public var total = DoubleDouble(0)
    public init() {}
    public mutating func add(_ x: DoubleDouble) { total = total + x }
}
