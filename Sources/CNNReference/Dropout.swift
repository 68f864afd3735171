import BigInt

/// `dropout`: inverted dropout with a given mask (values 0 or 1, x's shape, no
/// gradient): y = x·mask/(1 − p), PyTorch's `F.dropout` in training with its random
/// mask made an input. The scale is the real 1/(1 − p) of the given double p, and
/// y is x/(1 − p) rounded once — not x·fl(1/(1 − p)), which rounds twice. A
/// dropped element is x·0: ±0 with x's sign, NaN for x = ±∞ or NaN (as x·mask·scale
/// in any engine). dL/dx = dL/dy·mask/(1 − p), the same map.
public struct Dropout: Layer {
    public static let id = "dropout"
    public let p: Double
    public let mask: Tensor
    public var parameters: [NamedTensor] = []
    public var buffers: [NamedTensor] { [NamedTensor("mask", mask)] }
    /// 1 − p when it is a double (then IEEE division rounds x/(1 − p) once), else nil.
    let exactKeep: Double?
    /// 1 − p = keepNumerator·2^keepExponent exactly, for the BigInt path.
    let keepNumerator: BigUInt, keepExponent: Int

    /// `p` in [0, 1) and a mask of 0s and 1s, checked by `outputShape` and the registry.
    public init(p: Double, mask: Tensor) {
        self.p = p
        self.mask = mask
        let d = 1 - p
        // 1 − p is exact when p = 1 − d holds for the rounded d (TwoSum's error is zero).
        exactKeep = (p == 0 || (1 - d == p && d + p == 1 && (d - 1) + p == 0)) ? d : nil
        if p > 0 && p < 1 {
            let (m, e) = p.integerSignificandAndExponent       // p = m·2^e, e < 0
            keepNumerator = (BigUInt(1) << (-e)) - BigUInt(m)   // m > 0
            keepExponent = e
        } else {
            keepNumerator = 1
            keepExponent = 0
        }
    }

    public var configuration: [(String, JSON)] { [("p", .double(p))] }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        guard mask.shape == s else { throw CaseError("inputs.mask.shape", "expected x's shape \(s), found \(mask.shape)") }
        return s
    }

    /// v·mask/(1 − p) rounded once.
    func scaled(_ v: Double, _ m: Double) -> Double {
        if m == 0 { return v * 0 }
        if !v.isFinite || v == 0 { return v }
        if let exactKeep { return v / exactKeep }
        let (mv, ev) = v.integerSignificandAndExponent
        return roundToDouble(BigInt(mv), timesTwoToThe: ev - keepExponent, dividedBy: keepNumerator)
    }

    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        Tensor(shape: x.shape, scalars: zip(x.scalars, mask.scalars).map { scaled($0, $1) })
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        Gradients(input: Tensor(shape: x.shape, scalars: zip(dy.scalars, mask.scalars).map { scaled($0, $1) }))
    }
}
