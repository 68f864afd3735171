import CNNReference
import Foundation

/// A layer whose forward pass is right and whose backward pass has a bug:
/// the checker must catch it.
struct Mutant: PiecewiseSmooth {
    static let id = "mutant"
    var base: any Layer
    let bug: @Sendable (any Layer, Tensor, Tensor) -> Gradients

    var inputName: String { base.inputName }
    var outputName: String { base.outputName }
    var parameters: [NamedTensor] {
        get { base.parameters }
        set { base.parameters = newValue }
    }
    func outputShape(forInput shape: [Int]) throws(CaseError) -> [Int] { try base.outputShape(forInput: shape) }
    func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor { base.forward(x, accumulator: A.self) }
    func backward(_ x: Tensor, outputGradient: Tensor) -> Gradients { bug(base, x, outputGradient) }
    func activeSet(_ x: Tensor) -> [Int] { base.activeSet(x) }
    func forward(_ x: Tensor, piece: [Int], accumulator: (some Accumulator).Type) -> Tensor {
        // A smooth base (swish, softmax) has no pieces: its one piece is the forward pass.
        (base as? any PiecewiseSmooth)?.forward(x, piece: piece, accumulator: accumulator) ?? base.forward(x, accumulator: accumulator)
    }
}

/// The same for a sum-of-products layer (conv2d, linear, avgpool2d): it keeps the
/// `SumOfProducts` conformance, so the checker takes the path `cnnref gradcheck` takes.
struct SumMutant: SumOfProducts {
    static let id = "sum-mutant"
    var base: any Layer
    let bug: @Sendable (any Layer, Tensor, Tensor) -> Gradients

    var inputName: String { base.inputName }
    var outputName: String { base.outputName }
    var parameters: [NamedTensor] {
        get { base.parameters }
        set { base.parameters = newValue }
    }
    func outputShape(forInput shape: [Int]) throws(CaseError) -> [Int] { try base.outputShape(forInput: shape) }
    func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor { base.forward(x, accumulator: A.self) }
    func backward(_ x: Tensor, outputGradient: Tensor) -> Gradients { bug(base, x, outputGradient) }
    func activeSet(_ x: Tensor) -> [Int] { base.activeSet(x) }
}

/// A mutant of `base` that keeps its kind: sum of products, or piecewise smooth.
func mutant(_ base: any Layer, _ bug: @escaping @Sendable (any Layer, Tensor, Tensor) -> Gradients) -> any Layer {
    base is any SumOfProducts ? SumMutant(base: base, bug: bug) : Mutant(base: base, bug: bug)
}

/// A naive conv2d input gradient, with switches for the classic bugs.
func naiveConvInputGradient(_ conv: Conv2D, _ x: Tensor, _ dy: Tensor, ignoreStride: Bool = false,
                            ignoreDilation: Bool = false, groupOfChannel: ((Int, Int) -> Int)? = nil) -> Tensor {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (k, cg, fh, fw) = (conv.weight.shape[0], conv.weight.shape[1], conv.weight.shape[2], conv.weight.shape[3])
    let (oh, ow) = (dy.shape[2], dy.shape[3])
    let sh = ignoreStride ? 1 : conv.stride[0], sw = ignoreStride ? 1 : conv.stride[1]
    let dh = ignoreDilation ? 1 : conv.dilation[0], dw = ignoreDilation ? 1 : conv.dilation[1]
    let kg = k / conv.groups
    var dx = Tensor(zeros: x.shape)
    for b in 0..<n { for ch in 0..<c { for r in 0..<h { for s in 0..<w {
        let g = groupOfChannel?(ch, conv.groups) ?? ch / cg
        var total = 0.0
        for o in g * kg..<(g + 1) * kg { for p in 0..<fh { for q in 0..<fw {
            let ti = r + conv.padding[0] - p * dh, tj = s + conv.padding[1] - q * dw
            guard ti >= 0, tj >= 0, ti % sh == 0, tj % sw == 0, ti / sh < oh, tj / sw < ow else { continue }
            total += dy[((b * k + o) * oh + ti / sh) * ow + tj / sw] * conv.weight[((o * cg + ch % cg) * fh + p) * fw + q]
        } } }
        dx[((b * c + ch) * h + r) * w + s] = total
    } } } }
    return dx
}

func logistic64(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

/// A layer whose forward and backward are right and whose piece code is not:
/// `forward(x, piece:)` scales the frozen piece by `factor`.
struct PieceMutant: PiecewiseSmooth {
    static let id = "piece-mutant"
    var base: any PiecewiseSmooth
    let factor: Double

    var inputName: String { base.inputName }
    var outputName: String { base.outputName }
    var parameters: [NamedTensor] {
        get { base.parameters }
        set { base.parameters = newValue }
    }
    func outputShape(forInput shape: [Int]) throws(CaseError) -> [Int] { try base.outputShape(forInput: shape) }
    func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor { base.forward(x, accumulator: A.self) }
    func backward(_ x: Tensor, outputGradient: Tensor) -> Gradients { base.backward(x, outputGradient: outputGradient) }
    func activeSet(_ x: Tensor) -> [Int] { base.activeSet(x) }
    func forward(_ x: Tensor, piece: [Int], accumulator: (some Accumulator).Type) -> Tensor {
        let y = base.forward(x, piece: piece, accumulator: accumulator)
        return Tensor(shape: y.shape, scalars: y.scalars.map { $0 * factor })
    }
}
