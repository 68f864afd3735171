/// A dense tensor of `Double`: a shape and its elements in row-major order.
///
/// Images are NCHW (batch, channel, row, column), convolution weights are
/// OIHW (output map, input channel of the group, filter row, filter column).
/// A scalar has shape `[]` and one element.
public struct Tensor: Equatable, Sendable {
    public let shape: [Int]
    public var scalars: [Double]

    /// Builds a tensor; the element count must equal the product of the shape.
    /// Callers that read untrusted input check that first (see `CaseDecoder`).
    public init(shape: [Int], scalars: [Double]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(scalars.count == shape.reduce(1, *),
                     "shape \(shape) needs \(shape.reduce(1, *)) elements, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, scalars: Array(repeating: 0, count: shape.reduce(1, *)))
    }

    public init(scalar: Double) { self.init(shape: [], scalars: [scalar]) }

    /// A tensor with a shape and no elements. `outputShape`, `notes`, `multiplyAdds` and
    /// the parameter counts read shapes only, so a network's architecture (VGG-16's 138
    /// million parameters) is worked out without allocating its elements. Only the shape
    /// pass of a network (`NetworkFile.summary`) and the data inputs a `Network` node
    /// receives at each pass make these; neither evaluates a layer on them.
    init(shapeOnly shape: [Int]) {
        self.shape = shape
        self.scalars = []
    }

    /// Π shape: the element count, also of a shape-only tensor.
    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }

    public subscript(i: Int) -> Double {
        get { scalars[i] }
        set { scalars[i] = newValue }
    }

    /// The multi-index of flat position `flat`, for messages that name an element.
    public func index(ofFlat flat: Int) -> [Int] {
        var rest = flat
        var index = Array(repeating: 0, count: shape.count)
        for axis in shape.indices.reversed() where shape[axis] > 0 {
            index[axis] = rest % shape[axis]
            rest /= shape[axis]
        }
        return index
    }

    /// True when both tensors have the same shape and bit-identical elements
    /// (so `-0.0 != 0.0` and NaN equals a NaN of the same payload).
    public func isBitwiseEqual(to other: Tensor) -> Bool {
        shape == other.shape && zip(scalars, other.scalars).allSatisfy { $0.bitPattern == $1.bitPattern }
    }
}

/// A tensor with the name it has in a case file ("x", "weight", "bias", ...).
public struct NamedTensor: Equatable, Sendable {
    public var name: String
    public var tensor: Tensor
    public init(_ name: String, _ tensor: Tensor) {
        self.name = name
        self.tensor = tensor
    }
}

extension Array where Element == Int {
    /// `[2, 3, 5, 5]` written as `2x3x5x5` for messages; `[]` is `scalar`.
    public var shapeText: String { isEmpty ? "scalar" : map(String.init).joined(separator: "x") }
}
