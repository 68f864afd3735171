import BigInt
import CNNReference

/// Exact rational arithmetic on Doubles, written independently of the
/// package's accumulators: every finite Double is an integer times a power of
/// two, so a sum of products is exactly `mantissa · 2^exponent`.
struct Dyadic {
    var mantissa: BigInt
    var exponent: Int

    init(_ x: Double) {
        precondition(x.isFinite)
        if x == 0 { mantissa = 0; exponent = 0; return }
        let bits = x.isSubnormal ? x.significandBitPattern : x.significandBitPattern | (1 << 52)
        mantissa = BigInt(bits)
        exponent = x.isSubnormal ? -1074 : Int(x.exponent) - 52
        if x < 0 { mantissa.negate() }
    }

    init(mantissa: BigInt, exponent: Int) {
        self.mantissa = mantissa
        self.exponent = exponent
    }

    static func * (a: Dyadic, b: Dyadic) -> Dyadic {
        Dyadic(mantissa: a.mantissa * b.mantissa, exponent: a.exponent + b.exponent)
    }

    static func + (a: Dyadic, b: Dyadic) -> Dyadic {
        let e = min(a.exponent, b.exponent)
        return Dyadic(mantissa: (a.mantissa << (a.exponent - e)) + (b.mantissa << (b.exponent - e)), exponent: e)
    }

    /// -1, 0, 1 as a <, =, > b.
    static func compare(_ a: Dyadic, _ b: Dyadic) -> Int {
        let e = min(a.exponent, b.exponent)
        let x = a.mantissa << (a.exponent - e), y = b.mantissa << (b.exponent - e)
        return x < y ? -1 : (x == y ? 0 : 1)
    }

    static let zero = Dyadic(mantissa: 0, exponent: 0)
}

/// True when `r` is the exact value `v / divisor` rounded to nearest, ties to
/// even: v/divisor lies between the midpoints to r's neighbours.
func isCorrectlyRounded(_ r: Double, exact v: Dyadic, divisor: Int = 1) -> Bool {
    guard r.isFinite else { return false }
    // Compare 2·divisor·r ± divisor·gap with 2·v, all exact.
    let k = Dyadic(mantissa: BigInt(divisor), exponent: 0)
    let twoV = v + v
    func twiceMidpointTimesK(_ a: Double, _ b: Double) -> Dyadic {
        // (a + b) · k, which is 2·midpoint·k
        (Dyadic(a) + Dyadic(b)) * k
    }
    let up = r.nextUp, down = r.nextDown
    let upper = up.isFinite ? twiceMidpointTimesK(r, up) : nil
    let lower = down.isFinite ? twiceMidpointTimesK(r, down) : nil
    let evenR = r.significandBitPattern & 1 == 0
    if let upper {
        let c = Dyadic.compare(twoV, upper)
        if c > 0 || (c == 0 && !evenR) { return false }
    }
    if let lower {
        let c = Dyadic.compare(twoV, lower)
        if c < 0 || (c == 0 && !evenR) { return false }
    }
    return true
}

/// Σ aᵢ·bᵢ exactly.
func exactDot(_ a: [Double], _ b: [Double]) -> Dyadic {
    zip(a, b).reduce(Dyadic.zero) { $0 + Dyadic($1.0) * Dyadic($1.1) }
}
