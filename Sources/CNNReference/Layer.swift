/// The contract every layer and loss of the package meets, and that a user's
/// own layer can meet to be gradient-checked, generated into vectors and
/// validated.
///
/// A layer is a value: its configuration (`let` properties) and its named
/// learnable parameters. `forward` maps the data input to the output;
/// `backward` maps the upstream gradient dL/d(output) to dL/d(input) and
/// dL/d(parameter) for every parameter, in `parameters` order.
///
/// A loss is a layer whose output is a scalar (shape `[]`); its labels are
/// configuration, and its upstream gradient is the scalar 1 unless a caller
/// scales the loss.
public protocol Layer: Sendable {
    /// The layer id of the case format (`conv2d`, `relu`, ...).
    static var id: String { get }
    /// The name of the data input in a case (`x`, or `scores` for losses).
    var inputName: String { get }
    /// The name of the output in a case (`y`, or `loss` for losses).
    var outputName: String { get }
    /// The learnable parameters in the order the case format lists them.
    var parameters: [NamedTensor] { get set }

    /// Checks the data input's shape against the configuration and the
    /// parameters, and returns the output's shape.
    func outputShape(forInput shape: [Int]) throws(CaseError) -> [Int]
    /// Remarks about a valid but surprising configuration (a window that does
    /// not tile the input), each with its arithmetic.
    func notes(forInput shape: [Int]) -> [String]

    func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor
    func backward(_ x: Tensor, outputGradient: Tensor) -> Gradients

    /// The discrete choices the forward pass makes at `x` (ReLU masks, argmax
    /// of pool windows and maxout pieces, active hinge terms). Where it changes
    /// between two nearby points, the function has a kink between them. Empty
    /// for layers that are smooth everywhere.
    func activeSet(_ x: Tensor) -> [Int]

    /// The configuration as the case format writes it, every field explicit.
    var configuration: [(String, JSON)] { get }

    // Several inputs and outputs (issue 14). The defaults describe the sixteen
    // single-input, single-output layers, whose cases do not change.

    /// The data inputs in case-format order: `[inputName]`, or `x0, x1, …` for add
    /// and concat. The first is the `x` of `forward` and `backward`; the others ride
    /// in `parameters` under their names, so every data input has a gradient, is
    /// perturbed by the gradient checker and appears in `expected.gradients` in order,
    /// with no second path through the tools. They are not learnable: `parameterCount`
    /// leaves them out.
    var dataInputNames: [String] { get }
    /// Inputs without gradients (batch norm's running statistics, dropout's mask):
    /// written in `inputs` after the parameters, never in `expected.gradients`.
    var buffers: [NamedTensor] { get }
    /// The outputs after the first (batch norm's updated running statistics), with
    /// their shapes: no upstream gradient flows into them.
    func auxiliaryOutputShapes(forInput shape: [Int]) -> [(String, [Int])]
    /// Their values at `x`, in `auxiliaryOutputShapes` order, each correctly rounded.
    func auxiliaryOutputs(_ x: Tensor) -> [NamedTensor]

    /// The multiply-adds of one forward pass on an input of shape `shape` (already checked
    /// by `outputShape`), as `cnnref arch` counts them: one per product of a sum of
    /// products of a convolution, linear or maxout layer over the dense window — padding
    /// taps included, bias additions not — and 0 for every other layer (SCHEMA.md,
    /// "Counting"). nil when the count exceeds `Int.max`.
    func multiplyAdds(forInput shape: [Int]) -> Int?
}

/// A layer that is smooth except where its forward pass switches between
/// smooth pieces (ReLU's mask, a pool's or maxout's argmax, a hinge's active
/// terms). `forward(_:piece:)` evaluates the piece that `activeSet` names, so
/// the derivative of the piece the forward pass selected — the pinned
/// convention at a kink or tie — can be checked numerically.
public protocol PiecewiseSmooth: Layer {
    func forward(_ x: Tensor, piece: [Int], accumulator: (some Accumulator).Type) -> Tensor
}

/// A piecewise-smooth layer each of whose pieces is affine in every single element of the
/// input and of each parameter (ReLU, leaky ReLU, PReLU, max pooling, maxout, the hinge),
/// and whose `forward(_:piece:accumulator:)` with `CorrectlyRounded` rounds each output at
/// most once. On a frozen piece the slope between any two points is then the derivative, with
/// no truncation error, which the gradient checker uses.
public protocol PiecewiseLinear: PiecewiseSmooth {}

/// A layer that gives its forward pass in double-double, every output to within 2⁻⁸⁰ of its
/// value relative (the transcendental layers, which compute in it and round once; their
/// `forward` with a non-certifying accumulator is this rounded). The gradient checker's
/// element objective is then accurate far beyond the doubles, so its noise does not hide a
/// derivative small beside the output (nearly saturated σ and tanh, small probabilities).
public protocol ExtendedForward: Layer {
    func forwardExtended(_ x: Tensor) -> [DoubleDouble]
    /// Mⱼ such that output j of `forwardExtended` is within 2⁻⁸⁰·Mⱼ + 2⁻¹⁰⁷⁴ of its value: |yⱼ|
    /// where the double-double arithmetic is relative (the default), more where it is absolute
    /// (a logarithm near 1) or where a factor below 2⁻¹⁰⁷⁴ flushes to 0 beside a large one.
    func extendedErrorScale(_ x: Tensor, _ y: [DoubleDouble]) -> [Double]
}

extension ExtendedForward {
    public func extendedErrorScale(_ x: Tensor, _ y: [DoubleDouble]) -> [Double] { y.map(\.hi.magnitude) }
}

/// A layer affine in every single element of the input and of each parameter, everywhere
/// (add, concat, flatten, dropout with its mask fixed), whose forward pass with
/// `CorrectlyRounded` rounds each output at most once: the gradient checker's slope between
/// any two points is the derivative, as for `PiecewiseLinear` on a piece.
public protocol AffineInEachElement: Layer {}

/// A layer each of whose outputs is one sum of products of its input and
/// parameter elements, formed through the accumulator (convolution, linear,
/// average pooling). Run with `TermMagnitude` or `TermCount` it measures its own
/// sums, which lets the gradient checker bound the rounding of a plain loop, and
/// on absolute values it gives Σ|terms| (the layer is multilinear).
public protocol SumOfProducts: Layer {}

/// dL/d(input) and dL/d(parameter) for each parameter, in `parameters` order.
public struct Gradients: Equatable, Sendable {
    public var input: Tensor
    public var parameters: [Tensor]
    public init(input: Tensor, parameters: [Tensor] = []) {
        self.input = input
        self.parameters = parameters
    }
}

extension Layer {
    public var inputName: String { "x" }
    public var outputName: String { "y" }
    public func notes(forInput shape: [Int]) -> [String] { [] }
    public func activeSet(_ x: Tensor) -> [Int] { [] }
    public var configuration: [(String, JSON)] { [] }
    public var dataInputNames: [String] { [inputName] }
    public var buffers: [NamedTensor] { [] }
    public func auxiliaryOutputShapes(forInput shape: [Int]) -> [(String, [Int])] { [] }
    public func auxiliaryOutputs(_ x: Tensor) -> [NamedTensor] { [] }
    public func multiplyAdds(forInput shape: [Int]) -> Int? { 0 }

    /// The parameters that are learnable: `parameters` without the further data inputs.
    public var learnableParameters: [NamedTensor] { parameters.filter { !dataInputNames.contains($0.name) } }

    /// The forward pass with every sum of products correctly rounded.
    public func forward(_ x: Tensor) -> Tensor { forward(x, accumulator: CorrectlyRounded.self) }

    /// The number of learnable scalars (the lecture's 760 for ten 5x5x3 filters with biases).
    public var parameterCount: Int { learnableParameters.reduce(0) { $0 + $1.tensor.count } }

    /// The parameter named `name`, if the layer has one.
    public func parameter(_ name: String) -> Tensor? { parameters.first { $0.name == name }?.tensor }
}

/// Elementwise layers map each element independently, so any shape is valid.
protocol ElementwiseLayer: Layer {}

/// A layer each of whose outputs reads one element of the input and at most one
/// element of each parameter (the activations; not softmax, whose outputs read a whole
/// row): one nonzero per row of the Jacobian and tensor, so J·|θ| of one tensor has no
/// cancellation, which the forward-mode check's rounding bound relies on.
public protocol Pointwise: Layer {}

extension ElementwiseLayer {
    public func outputShape(forInput shape: [Int]) throws(CaseError) -> [Int] { shape }
}

/// `true` when `shape` has rank `rank`; the error names the field and the expected layout.
func requireRank(_ shape: [Int], _ rank: Int, _ field: String, _ layout: String) throws(CaseError) {
    guard shape.count == rank else {
        throw CaseError(field, "expected rank \(rank) \(layout), found shape \(shape)")
    }
}

/// Π factors, or nil when it exceeds `Int.max` (shape arithmetic on untrusted files).
public func checkedProduct(_ factors: [Int]) -> Int? {
    var p = 1
    for f in factors {
        let (v, overflow) = p.multipliedReportingOverflow(by: f)
        if overflow { return nil }
        p = v
    }
    return p
}

extension ReLU: PiecewiseLinear {}
extension LeakyReLU: PiecewiseLinear {}
extension PReLU: PiecewiseLinear {}
extension MaxPool2D: PiecewiseLinear {}
extension Maxout: PiecewiseLinear {}
extension MulticlassHinge: PiecewiseLinear {}
extension Add: AffineInEachElement {}
extension Concat: AffineInEachElement {}
extension Flatten: AffineInEachElement {}
extension Dropout: AffineInEachElement {}
extension Sigmoid: ExtendedForward {}
extension Tanh: ExtendedForward {}
extension ELU: ExtendedForward {}
extension Swish: ExtendedForward {}
extension Softmax: ExtendedForward {}
extension LogSoftmax: ExtendedForward {}
extension SoftmaxCrossEntropy: ExtendedForward {}
extension BatchNorm2D: ExtendedForward {}
extension LRN: ExtendedForward {}
