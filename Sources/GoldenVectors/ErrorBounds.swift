import CNNReference
import Foundation

/// A binary floating-point format: its significand bits (the hidden bit
/// included), the exponent of its smallest normal number and of its largest
/// binade. Rounding is to nearest, ties to even, with gradual underflow.
public struct FloatFormat: Sendable, Equatable {
    public let name: String
    public let significandBits: Int
    public let minExponent: Int
    public let maxExponent: Int

    public static let float64 = FloatFormat(name: "float64", significandBits: 53, minExponent: -1022, maxExponent: 1023)
    public static let float32 = FloatFormat(name: "float32", significandBits: 24, minExponent: -126, maxExponent: 127)
    /// TF32: float32's exponent range with float16's 11 significant bits.
    public static let tf32 = FloatFormat(name: "tf32", significandBits: 11, minExponent: -126, maxExponent: 127)
    public static let float16 = FloatFormat(name: "float16", significandBits: 11, minExponent: -14, maxExponent: 15)
    public static let bfloat16 = FloatFormat(name: "bfloat16", significandBits: 8, minExponent: -126, maxExponent: 127)

    /// u = 2⁻ᵖ.
    public var unitRoundoff: Double { Double(sign: .plus, exponent: -significandBits, significand: 1) }
    public var smallestNormal: Double { Double(sign: .plus, exponent: minExponent, significand: 1) }
    public var greatestFinite: Double {
        Double(sign: .plus, exponent: maxExponent, significand: 2 - Double(sign: .plus, exponent: 1 - significandBits, significand: 1))
    }

    /// `x` rounded to this format (±∞ past its largest finite number).
    public func rounded(_ x: Double) -> Double {
        guard x.isFinite, x != 0, significandBits < 53 else { return x }
        let ulp = Double(sign: .plus, exponent: max(Int(x.exponent), minExponent) - significandBits + 1, significand: 1)
        let r = (x / ulp).rounded(.toNearestOrEven) * ulp
        return r.magnitude > greatestFinite ? Double(sign: x.sign, exponent: 0, significand: .infinity) : r
    }

    /// True when the format holds `x` exactly (NaN and ±∞ included).
    public func represents(_ x: Double) -> Bool { !x.isFinite || rounded(x) == x }
}

/// The arithmetic an engine computes in: the format its inputs must be exact in
/// for a case to apply, the unit roundoff of its accumulation, and the format
/// it stores results (and the intermediates it saves between forward and
/// backward) in.
public enum Precision: String, CaseIterable, Sendable {
    case float64, float32, tf32, float16, bfloat16

    /// From the tightest to the loosest: the order in which a fingerprint names them.
    public static let tightestFirst: [Precision] = [.float64, .float32, .tf32, .float16, .bfloat16]

    /// A case applies when every input is exact in this format: then the engine
    /// receives exactly the reference's inputs and no input rounding enters the
    /// bound (TF32 rounds float32 inputs to 11 bits inside its sums, so only
    /// inputs TF32 holds exactly apply, and a TF32 engine cannot pass as float32).
    public var inputFormat: FloatFormat {
        switch self {
        case .float64: return .float64
        case .float32: return .float32
        case .tf32: return .tf32
        case .float16: return .float16
        case .bfloat16: return .bfloat16
        }
    }
    /// Results are stored in this format.
    public var outputFormat: FloatFormat {
        switch self {
        case .float64: return .float64
        case .float32, .tf32: return .float32
        case .float16: return .float16
        case .bfloat16: return .bfloat16
        }
    }
    /// Sums are accumulated with this: float64 in double, every other precision in
    /// float32 (what cuDNN, oneDNN and XLA do for TF32, float16 and bfloat16).
    public var accumulationUnit: Double { self == .float64 ? 0x1p-53 : 0x1p-24 }
    public var outputUnit: Double { outputFormat.unitRoundoff }
    /// The smallest normal number of the accumulation format.
    public var underflowUnit: Double { self == .float64 ? 0x1p-1022 : 0x1p-126 }
    /// The largest finite number of the accumulation format.
    public var accumulationLimit: Double { self == .float64 ? FloatFormat.float64.greatestFinite : FloatFormat.float32.greatestFinite }

    /// True when `x` is exactly representable in the precision's input format.
    public func represents(_ x: Double) -> Bool { inputFormat.represents(x) }

    /// What an engine of this precision does, for reports.
    public var arithmetic: String {
        switch self {
        case .float64: return "float64 throughout"
        case .float32: return "float32 throughout"
        case .tf32: return "inputs of sums of products rounded to 11 significant bits (TF32), float32 accumulation and outputs"
        case .float16: return "float16 inputs and outputs (11 significant bits), float32 accumulation"
        case .bfloat16: return "bfloat16 inputs and outputs (8 significant bits), float32 accumulation"
        }
    }
}

/// For every element of a case's outputs and gradients, the quantities its
/// forward error bound is made of: `terms`, how many rounding steps lie behind
/// it (n, or a stated constant for elementwise functions), and the magnitude M
/// they act on — the Σ|terms| (or a stated magnitude) — held as
/// `magnitude · 2^exponent` so that M never overflows to ∞ or NaN.
/// `storage` counts the roundings to the output format of intermediates an
/// engine saves between its steps (σ saved for σ', x − m for log-softmax); they
/// matter where the output format is narrower than the accumulation (float16,
/// bfloat16). `isSum`: M is a Σ|terms| the engine's accumulator must hold.
public struct ErrorScale: Sendable {
    public var terms: [Double]
    public var magnitude: [Double]
    public var exponent: [Int]
    public var storage: Double = 0
    public var isSum = false
    /// What multiplies an intermediate after it may have been flushed to zero (σ(βx), then times
    /// x): the underflow term is terms·η_acc·max(1, underflowScale[i]).
    public var underflowScale: [Double]?

    public init(terms: [Double], magnitude: [Double], exponent: [Int]? = nil, storage: Double = 0, isSum: Bool = false) {
        self.terms = terms
        self.magnitude = magnitude
        self.exponent = exponent ?? Array(repeating: 0, count: magnitude.count)
        self.storage = storage
        self.isSum = isSum
    }

    /// M of element i, as a double (∞ when it exceeds the double range).
    public func trueMagnitude(_ i: Int) -> Double { scalbn(magnitude[i], exponent[i]) }

    /// |engine − exact| ≤ γ_terms(u_acc)·M + storage·(u_out − u_acc)·M + u_out·|golden|
    /// + terms·η_acc + η_out + 2⁻⁵³·|golden|: η the smallest normal number of the
    /// accumulation and of the output format (engines that flush subnormals pass),
    /// 2⁻⁵³·|golden| the golden value's own rounding.
    public func bound(_ i: Int, golden: Double, precision p: Precision) -> Double {
        let stored = storage * max(0, p.outputUnit - p.accumulationUnit) * magnitude[i]
        return scalbn(gamma(terms[i], p.accumulationUnit) * magnitude[i] + stored, exponent[i])
            + (p.outputUnit + 0x1p-53) * golden.magnitude
            + max(terms[i], 1) * p.underflowUnit * max(1, underflowScale?[i] ?? 1) + p.outputFormat.smallestNormal
    }

    /// Why element i has no usable bound at precision p, or nil when it has one.
    /// `bound` is `bound(i, golden:, precision:)`, computed once by the caller.
    public func unjudgeable(_ i: Int, bound b: Double, precision p: Precision) -> String? {
        let m = trueMagnitude(i)
        if magnitude[i].isNaN { return "its error magnitude is NaN (a non-finite value feeds a finite result)" }
        if isSum && m > p.accumulationLimit {
            return "Σ|terms| = \(String(format: "%.3g", m)) exceeds the largest \(p.accumulationUnit == 0x1p-53 ? "float64" : "float32") (\(String(format: "%.3g", p.accumulationLimit))): an engine's sum may overflow, so no rounding bound holds"
        }
        if !b.isFinite {
            return gamma(terms[i], p.accumulationUnit).isInfinite
                ? "\(Int(terms[i])) rounding steps at u = \(p.accumulationUnit) leave no finite bound (n·u ≥ 1)"
                : "the bound \(b) is not finite (M = \(String(format: "%.3g", m)))"
        }
        return nil
    }
}

/// Σ values (non-negative), capped at the largest double: an underflow multiplier that stays
/// finite when upstreams near ±1.8e308 add past the range (η·1.8e308 is then already far
/// below the other terms of such an element's bound).
func finiteTotal(_ values: [Double]) -> Double {
    min(values.reduce(0, +), .greatestFiniteMagnitude)
}

public enum ErrorModel {
    static func abs(_ t: Tensor) -> Tensor { t.magnitudes }
    static func ones(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, scalars: Array(repeating: 1, count: t.count)) }
    /// `t`·2⁻ᵏ (exact unless it underflows).
    static func scaled(_ t: Tensor, _ k: Int) -> Tensor { k == 0 ? t : Tensor(shape: t.shape, scalars: t.scalars.map { scalbn($0, -k) }) }
    /// The binary exponent that brings the largest finite |value| of `t` below 2 (0 when it already is).
    static func normalising(_ t: Tensor) -> Int {
        let m = t.scalars.lazy.filter(\.isFinite).map(\.magnitude).max() ?? 0
        return m < 2 ? 0 : Int(m.exponent)
    }
    static func scale(_ n: Tensor, _ s: Tensor, _ e: Int, storage: Double = 0, sum: Bool = true) -> ErrorScale {
        ErrorScale(terms: n.scalars, magnitude: s.scalars, exponent: Array(repeating: e, count: s.count), storage: storage, isSum: sum)
    }
    static func constant(_ n: Double, _ s: [Double], _ e: Int = 0, storage: Double = 0, sum: Bool = false) -> ErrorScale {
        ErrorScale(terms: Array(repeating: n, count: s.count), magnitude: s, exponent: Array(repeating: e, count: s.count),
                   storage: storage, isSum: sum)
    }
    /// Σ parts (non-negative) without overflow: (sum, 0), or (sum·2⁻ᵏ, k) when the plain sum overflows.
    static func wide(_ parts: [Double]) -> (Double, Int) {
        let s = parts.reduce(0, +)
        if s.isFinite || parts.contains(where: \.isNaN) { return (s, 0) }
        let k = 4 + Int(Double(parts.count).exponent) + 1
        return (parts.reduce(0) { $0 + scalbn($1, -k) }, k)
    }
    /// `wide` per element, as an ErrorScale.
    static func wideConstant(_ n: Double, _ parts: [[Double]], storage: Double = 0) -> ErrorScale {
        let w = parts.map(wide)
        return ErrorScale(terms: Array(repeating: n, count: w.count), magnitude: w.map(\.0), exponent: w.map(\.1), storage: storage)
    }

    /// The error scales of a case's output (first) and gradients (input, then parameters).
    ///
    /// Magnitudes are first computed as they are; where one overflows (inputs or
    /// upstreams near the top of the double range), it is computed again on inputs
    /// scaled by powers of two — every magnitude is linear in the upstream and, for
    /// the multilinear layers, in x and in the weights — and carried with its exponent.
    public static func scales(_ c: Case, golden: Expected) throws -> (output: ErrorScale, gradients: [ErrorScale], auxiliary: [ErrorScale]) {
        let plain = try raw(c, golden: golden, x: 0, parameters: 0, upstream: 0)
        let auxiliary = try auxiliaryScales(c, golden: golden)
        let all = [plain.output] + plain.gradients
        guard all.contains(where: { s in s.magnitude.indices.contains { !s.trueMagnitude($0).isFinite && !s.magnitude[$0].isNaN } }) else {
            return (plain.output, plain.gradients, auxiliary)
        }
        let layer = try LayerRegistry.makeLayer(c)
        let multilinear = layer is Conv2D || layer is Linear || layer is Maxout || layer is AvgPool2D
        let a = multilinear ? normalising(c.inputs[0].tensor) : 0
        let b = multilinear ? (layer.parameters.map { normalising($0.tensor) }.max() ?? 0) : 0
        let u = normalising(c.upstream ?? Tensor(scalar: 1))
        let wide = try raw(c, golden: golden, x: a, parameters: b, upstream: u)
        func merge(_ p: ErrorScale, _ w: ErrorScale) -> ErrorScale {
            var out = p
            for i in p.magnitude.indices where !p.trueMagnitude(i).isFinite && !p.magnitude[i].isNaN {
                out.magnitude[i] = w.magnitude[i]
                out.exponent[i] = w.exponent[i]
            }
            return out
        }
        return (merge(plain.output, wide.output), zip(plain.gradients, wide.gradients).map(merge), auxiliary)
    }

    /// The scales of the outputs after the first (batch norm's updated running statistics), in
    /// `expected.outputs` order; a tensor the model does not know is judged exactly.
    static func auxiliaryScales(_ c: Case, golden: Expected) throws -> [ErrorScale] {
        let extra = golden.outputs.dropFirst()
        guard !extra.isEmpty else { return [] }
        let layer = try LayerRegistry.makeLayer(c)
        if let bn = layer as? BatchNorm2D, extra.count == 2 {
            return BatchNormErrorModel(bn, x: c.inputs[0].tensor, dy: c.upstream ?? Tensor(scalar: 1)).runningStatistics()
        }
        return extra.map { constant(0, $0.tensor.scalars.map { _ in 0 }) }
    }

    /// The scales computed with x·2⁻ᵃ, parameters·2⁻ᵇ (a bias 2⁻⁽ᵃ⁺ᵇ⁾) and upstream·2⁻ᵘ.
    static func raw(_ c: Case, golden: Expected, x a: Int, parameters b: Int, upstream u: Int) throws -> (output: ErrorScale, gradients: [ErrorScale]) {
        let layer = try LayerRegistry.makeLayer(c)
        let x = c.inputs[0].tensor
        let dy = scaled(c.upstream ?? Tensor(scalar: 1), u)
        let y = golden.outputs[0].tensor
        let g = golden.gradients.map(\.tensor)
        func withParameters(_ f: (Tensor) -> Tensor) -> any Layer {
            var l = layer
            for k in l.parameters.indices {
                let isBias = l.parameters[k].name == "bias"
                l.parameters[k].tensor = scaled(f(l.parameters[k].tensor), isBias ? a + b : b)
            }
            return l
        }
        switch layer {
        case is Conv2D, is Linear, is AvgPool2D:
            // Multilinear: Σ|terms| is the layer applied to absolute values; the number
            // of terms is the layer applied to ones (for an average, the window area).
            let absolute = withParameters(abs)
            let ax = scaled(abs(x), a)
            let s = absolute.forward(ax, accumulator: PlainSum.self)
            let gs = absolute.backward(ax, outputGradient: abs(dy))
            if let pool = layer as? AvgPool2D {
                let area = Double(pool.window.kernel[0] * pool.window.kernel[1] + 1)
                return (constant(area, s.scalars, a, sum: true), [constant(area, gs.input.scalars, u, sum: true)])
            }
            var counting = layer
            for k in counting.parameters.indices { counting.parameters[k].tensor = ones(counting.parameters[k].tensor) }
            let n = counting.forward(ones(x), accumulator: PlainSum.self)
            let gn = counting.backward(ones(x), outputGradient: ones(dy))
            let parameterExponents = layer.parameters.map { $0.name == "bias" ? u : a + u }
            // Engines that add the bias after the product sum store that sum first (storage 1).
            return (scale(n, s, a + b, storage: 1), [scale(gn.input, gs.input, b + u)]
                    + zip(zip(gn.parameters, gs.parameters), parameterExponents).map { scale($0.0, $0.1, $1) })
        case let pool as AdaptiveAvgPool2D:
            // As avgpool2d: a window sum and one division; a cell's gradient sums dy/size over
            // the windows covering it (more than one where windows overlap or the output is larger).
            let (h, w) = (x.shape[2], x.shape[3])
            let rows = AdaptiveAvgPool2D.windows(input: h, output: pool.outputSize[0]), cols = AdaptiveAvgPool2D.windows(input: w, output: pool.outputSize[1])
            let area = (rows.map(\.count).max() ?? 1) * (cols.map(\.count).max() ?? 1)
            let cover = (0..<h).map { r in rows.filter { $0.contains(r) }.count }.max()! * (0..<w).map { c in cols.filter { $0.contains(c) }.count }.max()!
            let s = pool.forward(abs(x), accumulator: PlainSum.self)
            let gs = pool.backward(x, outputGradient: abs(dy))
            return (constant(Double(area + 1), s.scalars, sum: true), [constant(Double(cover + 1), gs.input.scalars, u, sum: true)])
        case is Add:
            // A float loop over the k inputs: γ_k·Σₖ|xₖ|; every gradient is a copy of dy.
            let s = withParameters(abs).forward(abs(x), accumulator: PlainSum.self)
            return (constant(Double(layer.parameters.count + 1), s.scalars, sum: true), g.map { constant(0, $0.scalars.map { _ in 0 }) })
        case is Concat, is Flatten:
            // Copies: only exact agreement passes.
            return (constant(0, y.scalars.map { _ in 0 }), g.map { constant(0, $0.scalars.map { _ in 0 }) })
        case is Dropout:
            // x·mask·scale with the scale fl(1/(1 − p)) stored in the format (storage 1) and
            // up to two products: three roundings of |y|, the same for dx.
            return (constant(3, y.scalars.map(\.magnitude), storage: 1), [constant(3, g[0].scalars.map(\.magnitude), storage: 1)])
        case let bn as BatchNorm2D:
            let model = BatchNormErrorModel(bn, x: x, dy: dy)
            // The gradients are linear in dy, here scaled by 2⁻ᵘ.
            return (model.output(y), model.gradients(g).map { var t = $0; t.exponent = t.magnitude.map { _ in u }; return t })
        case let lrn as LRN:
            // PyTorch's composition (a², the window average, ·α + k, pow, a/·), each step rounded and
            // a², S, S^β stored in the format: S carries (size + 4) roundings of positive terms
            // (relative), S^β then β times that plus pow's own 2 ulp, and the quotient one more.
            let s = x.shape, plane = s[2] * s[3], channels = s[1]
            var dxM = [Double](repeating: 0, count: x.count)
            let bases = (0..<x.count).map { i -> Double in
                let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
                let q = lrn.window(c, channels: channels).reduce(0.0) { let v = x[(n * channels + $1) * plane + p]; return $0 + v * v }
                return lrn.k + lrn.alpha * q / Double(lrn.size)
            }
            let b = lrn.beta.magnitude
            for i in 0..<x.count {
                let (n, c, p) = (i / (channels * plane), (i / plane) % channels, i % plane)
                var cover = 0.0
                for o in 0..<channels where lrn.window(o, channels: channels).contains(c) {
                    let j = (n * channels + o) * plane + p
                    cover += (dy[j] * x[j]).magnitude * pow(bases[j], -lrn.beta - 1)
                }
                dxM[i] = (dy[i].magnitude * pow(bases[i], -lrn.beta) + 2 * lrn.alpha * b / Double(lrn.size) * x[i].magnitude * cover) * (2 + b)
            }
            let terms = Double(2 * min(lrn.size, channels) + 10)
            return (constant(Double(min(lrn.size, channels) + 6), y.scalars.map { $0.magnitude * (1 + b) }, storage: 3),
                    [constant(terms, dxM, u, storage: 4)])
        case let pool as MaxPool2D:
            let routed = pool.backward(x, outputGradient: abs(dy)).input
            let count = pool.backward(x, outputGradient: ones(dy)).input
            return (constant(0, y.scalars.map(\.magnitude)), [scale(count, routed, u)])
        case let maxout as Maxout:
            let (n, d, m, k) = (x.shape[0], x.shape[1], maxout.weight.shape[1], maxout.pieces)
            let ax = scaled(abs(x), a)
            let s = (withParameters(abs) as! Maxout).forward(ax, accumulator: PlainSum.self)
            let w = scaled(abs(maxout.weight), b)
            var dx = [Double](repeating: 0, count: n * d)
            for r in 0..<n { for i in 0..<d { for o in 0..<m {
                let wmax = (0..<k).map { w[($0 * m + o) * d + i] }.max()!
                dx[r * d + i] += dy[r * m + o].magnitude * wmax
            } } }
            var dw = [Double](repeating: 0, count: maxout.weight.count), db = [Double](repeating: 0, count: maxout.bias.count)
            for j in 0..<k { for o in 0..<m {
                for r in 0..<n {
                    db[j * m + o] += dy[r * m + o].magnitude
                    for i in 0..<d { dw[(j * m + o) * d + i] += dy[r * m + o].magnitude * ax[r * d + i] }
                }
            } }
            // The pieces are rounded to the output format before the maximum (storage 1).
            return (constant(Double(d + 1), s.scalars, a + b, storage: 1, sum: true),
                    [constant(Double(m), dx, b + u, storage: 1, sum: true), constant(Double(n), dw, a + u, sum: true),
                     constant(Double(n), db, u, sum: true)])
        case is ReLU:
            return (constant(1, y.scalars.map(\.magnitude)), [constant(1, g[0].scalars.map(\.magnitude))])
        case is LeakyReLU:
            // Engines may store the slope (a configuration double) in the format: storage 1.
            return (constant(1, y.scalars.map(\.magnitude), storage: 1), [constant(1, g[0].scalars.map(\.magnitude), storage: 1)])
        case let prelu as PReLU:
            let members = prelu.backward(x, outputGradient: abs(dy)).parameters[0].scalars.map(\.magnitude)
            return (constant(1, y.scalars.map(\.magnitude)),
                    [constant(1, g[0].scalars.map(\.magnitude)), constant(Double(x.count), members, u, sum: true)])
        case is Sigmoid:
            // σ' = σ·(1 − σ) as engines write it: 1 − σ carries an absolute error of u·σ.
            // exp within 2 ulp (vectorised libraries), then an add and a divide. The
            // backward reads σ as saved in the output format, then 1 − σ, the products.
            var dx = constant(8, x.scalars.indices.map { dy[$0].magnitude * logistic(x[$0]) }, u, storage: 4)
            dx.underflowScale = c.upstream.map { $0.scalars.map(\.magnitude) }   // σ(1 − σ) flushed, times dy
            // Composed engines store eˣ, 1 + eˣ and the quotient in the output format (storage 3).
            return (constant(8, y.scalars.map(\.magnitude), storage: 3), [dx])
        case is Tanh:
            // 1 − t² carries an absolute error of about 2u·t².
            var dx = constant(8, x.scalars.indices.map { dy[$0].magnitude * (1 + y[$0] * y[$0]) }, u, storage: 4)
            dx.underflowScale = c.upstream.map { $0.scalars.map(\.magnitude) }   // 1 − t² flushed, times dy
            return (constant(8, y.scalars.map(\.magnitude), storage: 3), [dx])
        case let elu as ELU:
            // For x ≤ 0 engines may form α·eˣ as y + α, which carries an absolute error of u·α.
            // Engines that form α·(eˣ − 1) without expm1 carry an absolute error of about u·α.
            var dx = constant(8, x.scalars.indices.map { dy[$0].magnitude * (x[$0] > 0 ? 1 : exp(x[$0]) * elu.alpha.magnitude + elu.alpha.magnitude) }, u, storage: 3)
            dx.underflowScale = c.upstream.map { $0.scalars.map { $0.magnitude * max(1, elu.alpha.magnitude) } }   // eˣ flushed, times α·dy
            return (wideConstant(8, x.scalars.indices.map { [y[$0].magnitude, x[$0] > 0 ? 0 : elu.alpha.magnitude] }, storage: 1), [dx])
        case let swish as Swish:
            let beta = swish.beta
            let dxM = x.scalars.indices.map { i -> Double in
                let bx = beta * x[i]
                return dy[i].magnitude * logistic(bx) * (1 + bx.magnitude)
            }
            // The factor σ(1 − σ) carries an absolute error of u·σ (see sigmoid).
            let dbM = x.scalars.indices.reduce(0.0) { $0 + dy[$1].magnitude * x[$1] * x[$1] * logistic(beta * x[$1]) }
            // x·σ(βx): the sigmoid's 8 steps, a product by β and by x; σ(βx) is
            // conditioned by |βx|·σ(−βx) in the rounding of βx. Composed engines store
            // βx and σ(βx) in the output format.
            let yParts = x.scalars.indices.map { i -> [Double] in
                let bx = beta * x[i]
                return [y[i].magnitude, y[i].magnitude * bx.magnitude * logistic(-bx)]
            }
            // σ(βx) flushed to zero, then times x (forward) or dy·(1 + |βx|) (backward).
            var yS = wideConstant(10, yParts, storage: 3)
            yS.underflowScale = x.scalars.map(\.magnitude)
            var dx = constant(10, dxM, u, storage: 4)
            dx.underflowScale = c.upstream.map { up in x.scalars.indices.map { up[$0].magnitude * (1 + (beta * x[$0]).magnitude) } }
            return (yS, [dx, constant(Double(x.count + 10), [dbM], u, storage: 4, sum: true)])
        case let softmax as Softmax:
            let axis = softmax.axis < 0 ? softmax.axis + x.rank : softmax.axis
            let len = Double(x.shape[axis])
            var yM = [Double](repeating: 0, count: x.count), dxM = yM, flushed = yM
            let up = c.upstream?.scalars.map(\.magnitude) ?? []
            for slice in AxisSlices(shape: x.shape, axis: axis).all {
                // x − m is rounded once: p = e^(x − m)/S moves by p·|x − m|·u (exp's condition).
                let m = slice.map { x[$0] }.max() ?? 0
                let p = slice.map { i in x[i].isFinite && m.isFinite ? y[i].magnitude * (1 + (x[i] - m).magnitude) : y[i].magnitude }
                let dot = zip(slice, p).reduce(0.0) { $0 + dy[$1.0].magnitude * $1.1 }
                let upTotal = finiteTotal(slice.map { up.isEmpty ? 0 : up[$0] })
                for (k, i) in slice.enumerated() {
                    yM[i] = p[k]
                    dxM[i] = p[k] * (dy[i].magnitude + dot)
                    // p_k (or a p_j of the dot product) flushed to zero, then times the upstream:
                    // at most η·(|dy_k| + Σ|dy_j|) ≤ 2η·Σ|dy_j|, within terms·η·Σ|dy_j| (terms ≥ 2).
                    flushed[i] = upTotal
                }
            }
            // Stored in the output format: x − m, each exponential, the saved y.
            var dx = constant(len + 8, dxM, u, storage: 3)
            dx.underflowScale = flushed
            return (constant(len + 6, yM, storage: 3), [dx])
        case let logSoftmax as LogSoftmax:
            let axis = logSoftmax.axis < 0 ? logSoftmax.axis + x.rank : logSoftmax.axis
            let len = Double(x.shape[axis])
            var yParts = [[Double]](repeating: [], count: x.count)
            var dxS = [Double](repeating: 0, count: x.count), flushedTotal = dxS
            let up = c.upstream?.scalars.map(\.magnitude) ?? []
            for slice in AxisSlices(shape: x.shape, axis: axis).all {
                let m = slice.map { x[$0] }.max() ?? 0
                let logSum = log(slice.reduce(0.0) { $0 + exp(x[$1] - m) })
                let total = slice.reduce(0.0) { $0 + dy[$1].magnitude }
                let upTotal = finiteTotal(slice.map { up.isEmpty ? 0 : up[$0] })
                for i in slice {
                    flushedTotal[i] = upTotal
                    // y = x − (m + log S): the magnitudes of x, m and log S, and the absolute
                    // error u of log S once S ≥ 1 is rounded (no log1p assumed).
                    yParts[i] = [x[i].magnitude, m.magnitude, logSum, 1]
                    // The backward reads y as stored: e^y moves by e^y·|y|·u.
                    dxS[i] = dy[i].magnitude + (y[i].isFinite ? exp(y[i]) * (1 + y[i].magnitude) : 0) * total
                }
            }
            // The stored y's rounding acts at every precision (float64 engines also save y):
            // the magnitude is dxS, and e^y flushed to zero is then times Σ|dy|.
            var dx = constant(len + 6, dxS, u, storage: 3)
            dx.underflowScale = flushedTotal
            return (wideConstant(len + 6, yParts, storage: 3), [dx])
        case let ce as SoftmaxCrossEntropy:
            let (n, cl) = (x.shape[0], x.shape[1])
            let divisor = ce.reduction == .mean ? Double(n) : 1
            var lossParts: [Double] = []
            var dxS = [Double](repeating: 0, count: x.count)
            for i in 0..<n {
                let row = Array(x.scalars[i * cl..<(i + 1) * cl])
                let m = row.max() ?? 0
                let s = row.reduce(0.0) { $0 + exp($1 - m) }
                // log S − (s_y − m) with S ≥ 1 rounded: an absolute error of u in log S (no log1p assumed).
                lossParts += [log(s), row[ce.labels[i]].magnitude, m.magnitude, 1].map { $0 / divisor }
                for j in 0..<cl {
                    let p = exp(row[j] - m) / s
                    // Engines save log p in the output format and take exp: p moves by p·|log p|·u.
                    dxS[i * cl + j] = ((p > 0 ? p * (1 + (row[j] - m - log(s)).magnitude) : 0) + (j == ce.labels[i] ? 1 : 0)) / divisor * dy[0].magnitude
                }
            }
            // Engines that save log p round it at every precision (float64 too): the magnitude is dxS.
            var dx = constant(Double(cl + 8), dxS, u, storage: 3)
            dx.underflowScale = x.scalars.map { _ in dy[0].magnitude / divisor }   // p flushed, times dy/N
            return (wideConstant(Double(cl + n + 8), [lossParts], storage: 3), [dx])
        case let hinge as MulticlassHinge:
            let (n, cl) = (x.shape[0], x.shape[1])
            let active = hinge.activeSet(x)
            let divisor = hinge.reduction == .mean ? Double(n) : 1
            var lossParts: [Double] = []
            for t in 0..<(n * cl) where active[t] == 1 {
                lossParts += [x[t].magnitude, x[(t / cl) * cl + hinge.labels[t / cl]].magnitude, hinge.margin.magnitude].map { $0 / divisor }
            }
            // The label's gradient counts up to C − 1 active terms (PyTorch sums C terms of 1/C).
            return (wideConstant(Double(3 * n * cl + 2), [lossParts], storage: 2),
                    [constant(Double(cl + 2), g[0].scalars.map(\.magnitude), storage: 1)])
        default:
            // A layer the model does not know: only exact agreement passes.
            return (constant(0, y.scalars.map { _ in 0 }), g.map { constant(0, $0.scalars.map { _ in 0 }) })
        }
    }
}

/// Batch norm as engines compute it in the precision's arithmetic: μ̃ by a float sum
/// (error γ_m·mean|x|), σ̃² by two passes or by E[x²] − μ̃² (an error up to γ·mean(x²) plus
/// what μ̃'s error does to Σ(x − μ̃)²), √(σ̃² + ε), and the normalised x̂ = (x − μ̃)/σ̃ carried
/// into y and the backward pass. Each value's error is written as T·u·M with T about m = N·H·W
/// (the sums) and M the magnitudes those roundings act on, in units of u; x̂'s relative error
/// E_x̂ (per u) feeds every later step.
struct BatchNormErrorModel {
    let layer: BatchNorm2D
    let x: Tensor, dy: Tensor
    /// Per element: |x − μ|, x̂, E_x̂ (x̂'s error per unit roundoff, absolute); per channel:
    /// σ̂, mean|x|, the variance error per u relative to σ² + ε.
    var centred: [Double], xhat: [Double], xhatError: [Double]
    var sigma: [Double], meanAbs: [Double], varianceError: [Double], meanSquare: [Double]
    let m: Int

    init(_ layer: BatchNorm2D, x: Tensor, dy: Tensor) {
        self.layer = layer; self.x = x; self.dy = dy
        let s = x.shape
        m = s[0] * s[2] * s[3]
        centred = Array(repeating: 0, count: x.count); xhat = centred; xhatError = centred
        sigma = Array(repeating: 0, count: s[1]); meanAbs = sigma; varianceError = sigma; meanSquare = sigma
        for c in 0..<s[1] {
            let idx = layer.indices(s, c), values = idx.map { x[$0] }
            let n = Double(values.count)
            let mu = layer.training ? values.reduce(0, +) / n : layer.runningMean[c]
            let variance = layer.training ? values.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / n : layer.runningVar[c]
            let abs = (layer.training ? values.reduce(0) { $0 + $1.magnitude } / n : layer.runningMean[c].magnitude)
            let square = layer.training ? values.reduce(0) { $0 + $1 * $1 } / n : 0
            let spread = values.reduce(0) { $0 + ($1 - mu).magnitude } / n
            let denominator = variance + layer.eps
            sigma[c] = denominator.squareRoot()
            meanAbs[c] = abs
            meanSquare[c] = square + 2 * abs * spread
            // ½·|δσ²|/(σ² + ε) per u, plus the add of ε and the root: σ̃'s relative error.
            varianceError[c] = layer.training ? meanSquare[c] / denominator + 2 : 2
            for i in idx {
                centred[i] = (x[i] - mu).magnitude
                xhat[i] = (x[i] - mu) / sigma[c]
                // (δμ + u|x − μ|)/σ̂ + |x̂|·δσ/σ̂, per u.
                xhatError[i] = (abs + centred[i]) / sigma[c] + xhat[i].magnitude * varianceError[c] + xhat[i].magnitude
            }
        }
    }

    var terms: Double { Double(m + 10) }

    func output(_ y: Tensor) -> ErrorScale {
        let s = x.shape
        var magnitude = [Double](repeating: 0, count: x.count)
        for c in 0..<s[1] {
            let g = layer.weight[c].magnitude, b = layer.bias[c].magnitude
            for i in layer.indices(s, c) {
                // Eval engines fold γ/σ̂ and β − μ·γ/σ̂ first: the folded constants' roundings act on
                // |γ|·(|x| + |μ|)/σ̂.
                let folded = layer.training ? 0 : g * (x[i].magnitude + layer.runningMean[c].magnitude) / sigma[c]
                magnitude[i] = g * xhatError[i] + folded + g * xhat[i].magnitude + b + y[i].magnitude
            }
        }
        // Stored in the format: x − μ̃, σ̃ (or 1/σ̃), x̂.
        return ErrorScale(terms: Array(repeating: terms, count: x.count), magnitude: magnitude, storage: 3)
    }

    func gradients(_ golden: [Tensor]) -> [ErrorScale] {
        let s = x.shape
        var dxM = [Double](repeating: 0, count: x.count)
        var dgM = [Double](repeating: 0, count: s[1]), dbM = dgM
        for c in 0..<s[1] {
            let idx = layer.indices(s, c), n = Double(idx.count)
            let g = layer.weight[c].magnitude
            let meanDy = idx.reduce(0) { $0 + dy[$1].magnitude } / n
            let meanDyXhat = idx.reduce(0) { $0 + (dy[$1] * xhat[$1]).magnitude } / n
            let meanDyError = idx.reduce(0) { $0 + dy[$1].magnitude * xhatError[$1] } / n
            dbM[c] = n * meanDy
            dgM[c] = n * (meanDyXhat + meanDyError)
            for i in idx {
                if layer.training {
                    // γ/σ̂·(dy − mean dy − x̂·mean(dy·x̂)): the means' sums, x̂'s error in both places,
                    // and σ̃'s relative error on the whole.
                    let inner = dy[i].magnitude + meanDy + xhat[i].magnitude * (meanDyXhat + meanDyError)
                        + xhatError[i] * meanDyXhat
                    dxM[i] = g / sigma[c] * inner * (1 + varianceError[c])
                } else {
                    dxM[i] = g / sigma[c] * dy[i].magnitude * (1 + varianceError[c])
                }
            }
        }
        return [ErrorScale(terms: Array(repeating: terms, count: x.count), magnitude: dxM, storage: 4),
                ErrorScale(terms: Array(repeating: terms, count: s[1]), magnitude: dgM, storage: 2, isSum: true),
                ErrorScale(terms: Array(repeating: Double(m), count: s[1]), magnitude: dbM, isSum: true)]
    }

    /// (1 − momentum)·old + momentum·batch: μ̃'s error, and σ̃²'s scaled by m/(m − 1).
    func runningStatistics() -> [ErrorScale] {
        let keep = (1 - layer.momentum).magnitude, mom = layer.momentum.magnitude
        let c = x.shape[1], n = Double(m)
        let meanM = (0..<c).map { keep * layer.runningMean[$0].magnitude + mom * meanAbs[$0] + layer.runningMean[$0].magnitude }
        let varM = (0..<c).map { keep * layer.runningVar[$0].magnitude + mom * n / (n - 1) * (meanSquare[$0] + sigma[$0] * sigma[$0]) + layer.runningVar[$0] }
        return [ErrorScale(terms: Array(repeating: terms, count: c), magnitude: meanM, storage: 1),
                ErrorScale(terms: Array(repeating: terms, count: c), magnitude: varM, storage: 1)]
    }
}
