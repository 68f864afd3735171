import CNNReference
import Foundation

/// The arithmetic an engine computes in: unit roundoffs of its inputs (when it
/// rounds them internally), of its accumulation, and of its stored outputs.
public enum Precision: String, CaseIterable, Sendable {
    case float64, float32, tf32, float16, bfloat16

    /// Inputs are rounded to this (0: used as given).
    public var inputUnit: Double {
        switch self {
        case .float64, .float32: return 0
        case .tf32, .float16: return 0x1p-11
        case .bfloat16: return 0x1p-8
        }
    }
    /// Sums are accumulated with this: float64 in double, every other precision in
    /// float32 (what cuDNN, oneDNN and XLA do for TF32, float16 and bfloat16).
    public var accumulationUnit: Double { self == .float64 ? 0x1p-53 : 0x1p-24 }
    /// Results are stored with this.
    public var outputUnit: Double {
        switch self {
        case .float64: return 0x1p-53
        case .float32, .tf32: return 0x1p-24
        case .float16: return 0x1p-11
        case .bfloat16: return 0x1p-8
        }
    }

    /// The smallest normal number of the accumulation format.
    public var underflowUnit: Double { self == .float64 ? 0x1p-1022 : 0x1p-126 }

    /// True when `x` is exactly representable in the format the engine receives its
    /// inputs in (float32 for TF32: it rounds internally).
    public func represents(_ x: Double) -> Bool {
        guard x.isFinite, x != 0 else { return true }
        switch self {
        case .float64: return true
        case .float32, .tf32: return Double(Float(x)) == x
        case .float16:
            // 11 significant bits, exponent ≥ −14 (subnormals down to 2⁻²⁴), ≤ 65504.
            guard x.magnitude <= 65504, x.magnitude >= 0x1p-24 else { return false }
            let lsb = max(Int(x.exponent) - 10, -24)
            return (x / Double(sign: .plus, exponent: lsb, significand: 1)).rounded() == x / Double(sign: .plus, exponent: lsb, significand: 1)
        case .bfloat16:
            guard Double(Float(x)) == x else { return false }
            return Float(x).bitPattern & 0xFFFF == 0
        }
    }
}

/// For every element of a case's outputs and gradients, the quantities its
/// forward error bound is made of: `terms`, how many rounding steps lie behind
/// it (n, or a stated constant for elementwise functions), and `magnitude`, the
/// Σ|terms| (or a stated magnitude) they act on.
public struct ErrorScale: Sendable {
    public var terms: [Double]
    public var magnitude: [Double]

    /// |engine − exact| ≤ γ_terms(u_acc)·M + (2u_in + u_in²)·M + u_out·|golden|
    /// + terms·η (underflow: η is the smallest normal number of the accumulation format,
    /// so engines that flush subnormals to zero pass) + 2⁻⁵³·|golden| (the golden
    /// value's own rounding).
    public func bound(_ i: Int, golden: Double, precision p: Precision) -> Double {
        gamma(terms[i], p.accumulationUnit) * magnitude[i]
            + (2 * p.inputUnit + p.inputUnit * p.inputUnit) * magnitude[i]
            + (p.outputUnit + 0x1p-53) * golden.magnitude
            + max(terms[i], 1) * p.underflowUnit
    }
}

public enum ErrorModel {
    static func abs(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, scalars: t.scalars.map(\.magnitude)) }
    static func ones(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, scalars: Array(repeating: 1, count: t.count)) }
    static func scale(_ n: Tensor, _ s: Tensor) -> ErrorScale { ErrorScale(terms: n.scalars, magnitude: s.scalars) }
    static func constant(_ n: Double, _ s: [Double]) -> ErrorScale { ErrorScale(terms: Array(repeating: n, count: s.count), magnitude: s) }

    /// The error scales of a case's output (first) and gradients (input, then parameters).
    public static func scales(_ c: Case, golden: Expected) throws -> (output: ErrorScale, gradients: [ErrorScale]) {
        let layer = try LayerRegistry.makeLayer(c)
        let x = c.inputs[0].tensor
        let dy = c.upstream ?? Tensor(scalar: 1)
        let y = golden.outputs[0].tensor
        let g = golden.gradients.map(\.tensor)
        func withParameters(_ f: (Tensor) -> Tensor) -> any Layer {
            var l = layer
            for k in l.parameters.indices { l.parameters[k].tensor = f(l.parameters[k].tensor) }
            return l
        }
        switch layer {
        case is Conv2D, is Linear, is AvgPool2D:
            // Multilinear: Σ|terms| is the layer applied to absolute values; the number
            // of terms is the layer applied to ones (for an average, the window area).
            let absolute = withParameters(abs), counting = withParameters(ones)
            let s = absolute.forward(abs(x), accumulator: PlainSum.self)
            let gs = absolute.backward(abs(x), outputGradient: abs(dy))
            if let pool = layer as? AvgPool2D {
                let area = Double(pool.window.kernel[0] * pool.window.kernel[1] + 1)
                return (constant(area, s.scalars), [constant(area, gs.input.scalars)])
            }
            let n = counting.forward(ones(x), accumulator: PlainSum.self)
            let gn = counting.backward(ones(x), outputGradient: ones(dy))
            return (scale(n, s), [scale(gn.input, gs.input)] + zip(gn.parameters, gs.parameters).map(scale))
        case let pool as MaxPool2D:
            let routed = pool.backward(x, outputGradient: abs(dy)).input
            let count = pool.backward(x, outputGradient: ones(dy)).input
            return (constant(0, y.scalars.map(\.magnitude)), [scale(count, routed)])
        case let maxout as Maxout:
            let (n, d, m, k) = (x.shape[0], x.shape[1], maxout.weight.shape[1], maxout.pieces)
            let s = (withParameters(abs) as! Maxout).forward(abs(x), accumulator: PlainSum.self)
            var dx = [Double](repeating: 0, count: n * d)
            for b in 0..<n { for i in 0..<d { for o in 0..<m {
                let w = (0..<k).map { maxout.weight[($0 * m + o) * d + i].magnitude }.max()!
                dx[b * d + i] += dy[b * m + o].magnitude * w
            } } }
            var dw = [Double](repeating: 0, count: maxout.weight.count), db = [Double](repeating: 0, count: maxout.bias.count)
            for j in 0..<k { for o in 0..<m {
                for b in 0..<n {
                    db[j * m + o] += dy[b * m + o].magnitude
                    for i in 0..<d { dw[(j * m + o) * d + i] += dy[b * m + o].magnitude * x[b * d + i].magnitude }
                }
            } }
            return (constant(Double(d + 1), s.scalars),
                    [constant(Double(m), dx), constant(Double(n), dw), constant(Double(n), db)])
        case is ReLU, is LeakyReLU:
            return (constant(1, y.scalars.map(\.magnitude)), [constant(1, g[0].scalars.map(\.magnitude))])
        case let prelu as PReLU:
            let members = prelu.backward(x, outputGradient: abs(dy)).parameters[0].scalars.map(\.magnitude)
            return (constant(1, y.scalars.map(\.magnitude)),
                    [constant(1, g[0].scalars.map(\.magnitude)), constant(Double(x.count), members)])
        case is Sigmoid:
            // σ' = σ·(1 − σ) as engines write it: 1 − σ carries an absolute error of u·σ.
            // exp within 2 ulp (vectorised libraries), then an add and a divide.
            return (constant(8, y.scalars.map(\.magnitude)),
                    [constant(8, x.scalars.indices.map { dy[$0].magnitude * logistic(x[$0]) })])
        case is Tanh:
            // 1 − t² carries an absolute error of about 2u·t².
            return (constant(8, y.scalars.map(\.magnitude)),
                    [constant(8, x.scalars.indices.map { dy[$0].magnitude * (1 + y[$0] * y[$0]) })])
        case let elu as ELU:
            // For x ≤ 0 engines may form α·eˣ as y + α, which carries an absolute error of u·α.
            // Engines that form α·(eˣ − 1) without expm1 carry an absolute error of about u·α.
            return (constant(8, x.scalars.indices.map { y[$0].magnitude + (x[$0] > 0 ? 0 : elu.alpha.magnitude) }),
                    [constant(8, x.scalars.indices.map { dy[$0].magnitude * (x[$0] > 0 ? 1 : exp(x[$0]) * elu.alpha.magnitude + elu.alpha.magnitude) })])
        case let swish as Swish:
            let b = swish.beta
            let dxM = x.scalars.indices.map { i -> Double in
                let bx = b * x[i]
                return dy[i].magnitude * logistic(bx) * (1 + bx.magnitude)
            }
            // The factor σ(1 − σ) carries an absolute error of u·σ (see sigmoid).
            let dbM = x.scalars.indices.reduce(0.0) { $0 + dy[$1].magnitude * x[$1] * x[$1] * logistic(b * x[$1]) }
            // x·σ(βx): the sigmoid's 8 steps, a product by β and by x; σ(βx) is
            // conditioned by |βx|·σ(−βx) in the rounding of βx.
            let yM = x.scalars.indices.map { i in y[i].magnitude * (1 + (b * x[i]).magnitude) }
            return (constant(10, yM), [constant(10, dxM), constant(Double(x.count + 10), [dbM])])
        case let softmax as Softmax:
            let axis = softmax.axis < 0 ? softmax.axis + x.rank : softmax.axis
            let len = Double(x.shape[axis])
            var dxM = [Double](repeating: 0, count: x.count)
            for slice in AxisSlices(shape: x.shape, axis: axis).all {
                let dot = slice.reduce(0.0) { $0 + (dy[$1] * y[$1]).magnitude }
                for i in slice { dxM[i] = y[i].magnitude * (dy[i].magnitude + dot) }
            }
            return (constant(len + 6, y.scalars.map(\.magnitude)), [constant(len + 8, dxM)])
        case let logSoftmax as LogSoftmax:
            let axis = logSoftmax.axis < 0 ? logSoftmax.axis + x.rank : logSoftmax.axis
            let len = Double(x.shape[axis])
            var yM = [Double](repeating: 0, count: x.count), dxM = [Double](repeating: 0, count: x.count)
            for slice in AxisSlices(shape: x.shape, axis: axis).all {
                let m = slice.map { x[$0] }.max() ?? 0
                let logSum = log(slice.reduce(0.0) { $0 + exp(x[$1] - m) })
                let total = slice.reduce(0.0) { $0 + dy[$1].magnitude }
                for i in slice {
                    // y = x − (m + log S): the magnitudes of x, m and log S, and the absolute
                    // error u of log S once S ≥ 1 is rounded (no log1p assumed).
                    yM[i] = x[i].magnitude + m.magnitude + logSum + 1
                    dxM[i] = dy[i].magnitude + exp(y[i]) * total
                }
            }
            return (constant(len + 6, yM), [constant(len + 6, dxM)])
        case let ce as SoftmaxCrossEntropy:
            let (n, cl) = (x.shape[0], x.shape[1])
            let divisor = ce.reduction == .mean ? Double(n) : 1
            var lossM = 0.0
            var dxM = [Double](repeating: 0, count: x.count)
            for i in 0..<n {
                let row = Array(x.scalars[i * cl..<(i + 1) * cl])
                let m = row.max() ?? 0
                let s = row.reduce(0.0) { $0 + exp($1 - m) }
                // log S − (s_y − m) with S ≥ 1 rounded: an absolute error of u in log S (no log1p assumed).
                lossM += (log(s) + row[ce.labels[i]].magnitude + m.magnitude + 1) / divisor
                for j in 0..<cl { dxM[i * cl + j] = (exp(row[j] - m) / s + (j == ce.labels[i] ? 1 : 0)) / divisor * dy[0].magnitude }
            }
            return (constant(Double(cl + n + 8), [lossM]), [constant(Double(cl + 8), dxM)])
        case let hinge as MulticlassHinge:
            let (n, cl) = (x.shape[0], x.shape[1])
            let active = hinge.activeSet(x)
            let divisor = hinge.reduction == .mean ? Double(n) : 1
            var lossM = 0.0
            for t in 0..<(n * cl) where active[t] == 1 {
                lossM += (x[t].magnitude + x[(t / cl) * cl + hinge.labels[t / cl]].magnitude + hinge.margin.magnitude) / divisor
            }
            // The label's gradient counts up to C − 1 active terms (PyTorch sums C terms of 1/C).
            return (constant(Double(3 * n * cl + 2), [lossM]), [constant(Double(cl + 2), g[0].scalars.map(\.magnitude))])
        default:
            // A layer the model does not know: only exact agreement passes.
            return (constant(0, y.scalars.map { _ in 0 }), g.map { constant(0, $0.scalars.map { _ in 0 }) })
        }
    }
}

