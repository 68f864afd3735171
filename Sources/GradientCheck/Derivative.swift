@preconcurrency import CGSL

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
