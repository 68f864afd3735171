@preconcurrency import CGSL
import Foundation

/// GSL's numerical derivative rules.
public enum DerivativeRule: Sendable {
    /// `gsl_deriv_central`: 5-point rule at x ± h, x ± h/2.
    case central
    /// `gsl_deriv_forward`: 4-point one-sided rule at x + h/4 … x + h.
    case forward
    /// `gsl_deriv_backward`: the same rule towards x − h.
    case backward
}

/// A numerical derivative and GSL's estimate of its absolute error.
public struct NumericalDerivative: Sendable {
    public var value: Double
    public var abserr: Double
}

/// d/dt f(t) at `x` with step `h` by a GSL rule. GSL evaluates `f` through a C
/// callback; the closure travels through its `params` pointer and is only
/// used for the duration of the call.
public func gslDerivative(_ rule: DerivativeRule, at x: Double, step h: Double,
                          _ f: (Double) -> Double) -> NumericalDerivative {
    _ = GSL.ready
    return withoutActuallyEscaping(f) { f in
        var body = f
        return withUnsafeMutablePointer(to: &body) { context in
            var function = gsl_function(
                function: { t, params in
                    params!.assumingMemoryBound(to: ((Double) -> Double).self).pointee(t)
                },
                params: UnsafeMutableRawPointer(context))
            var result = 0.0, abserr = 0.0
            // These rules always return GSL_SUCCESS; the error estimate is in abserr.
            switch rule {
            case .central: _ = gsl_deriv_central(&function, x, h, &result, &abserr)
            case .forward: _ = gsl_deriv_forward(&function, x, h, &result, &abserr)
            case .backward: _ = gsl_deriv_backward(&function, x, h, &result, &abserr)
            }
            return NumericalDerivative(value: result, abserr: abserr)
        }
    }
}

/// A central derivative whose step follows the caller's round-off bound.
public struct SteppedDerivative: Sendable {
    public var value: Double
    /// |r5 − r3|/h at the step used: the 3-point rule's error, GSL's truncation estimate.
    public var truncation: Double
    /// The step whose evaluations gave `value` (the rounding scales with 1/step).
    public var step: Double
}

/// `gsl_deriv_central`'s algorithm (deriv.c: the 5-point rule at x ± h, x ± h/2, then
/// one retry at h·(round/(2·trunc))^⅓ kept when its error estimate is smaller), with
/// the round-off estimate `roundoff(h)` of the caller in place of GSL's ε·|f|/h. GSL's
/// term cannot see noise that f's values do not show (cancellation in a sum, the
/// rounding of a moved point): with it, a steep f gets a retry step ~10³ below where
/// that noise takes over, and an error estimate that misses it. The retry step is
/// rounded down to a power of two, so callers differentiating many functions along one
/// line share the evaluations (`f` may cache by t).
public func centralDerivative(at x: Double, step h: Double, roundoff: (Double) -> Double,
                              _ f: (Double) -> Double) -> SteppedDerivative {
    func rule(_ h: Double) -> (value: Double, truncation: Double) {
        let fm1 = f(x - h), fp1 = f(x + h), fmh = f(x - h / 2), fph = f(x + h / 2)
        let r3 = 0.5 * (fp1 - fm1)
        let r5 = (4.0 / 3.0) * (fph - fmh) - (1.0 / 3.0) * r3
        return (r5 / h, ((r5 - r3) / h).magnitude)
    }
    let first = rule(h)
    let round = roundoff(h)
    var best = SteppedDerivative(value: first.value, truncation: first.truncation, step: h)
    guard round < first.truncation, round > 0, first.truncation.isFinite else { return best }
    let error = round + first.truncation
    let optimal = h * Foundation.pow(round / (2 * first.truncation), 1.0 / 3.0)
    guard optimal.isNormal, optimal < h else { return best }
    let retry = Double(sign: .plus, exponent: optimal.exponent, significand: 1)
    let second = rule(retry)
    if roundoff(retry) + second.truncation < error, (second.value - first.value).magnitude < 4 * error {
        best = SteppedDerivative(value: second.value, truncation: second.truncation, step: retry)
    }
    return best
}
