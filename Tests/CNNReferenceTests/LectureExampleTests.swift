import Testing
@testable import CNNReference

/// The lecture's worked convolution example (cs231n's demo), typed in from the
/// slides: the oracle is the published output, which must come out exactly.
@Suite struct LectureExampleTests {
    static let x: [[[Double]]] = [
        [[0, 0, 2, 0, 2], [1, 2, 2, 2, 0], [0, 2, 1, 0, 0], [0, 2, 0, 2, 1], [1, 0, 2, 2, 0]],
        [[1, 0, 0, 2, 0], [1, 0, 1, 0, 1], [0, 0, 2, 1, 2], [1, 2, 1, 0, 0], [1, 2, 2, 0, 2]],
        [[0, 2, 2, 1, 0], [0, 2, 0, 0, 1], [1, 1, 1, 2, 1], [2, 0, 1, 2, 2], [2, 1, 1, 0, 0]],
    ]
    static let w0: [[[Double]]] = [
        [[-1, 0, -1], [1, -1, 1], [-1, 0, -1]], [[0, -1, 1], [1, 1, 1], [-1, 1, -1]], [[0, 0, 0], [-1, 1, -1], [1, 1, -1]],
    ]
    static let w1: [[[Double]]] = [
        [[0, 1, 1], [-1, -1, -1], [1, -1, 1]], [[-1, 0, -1], [1, 1, 1], [-1, 1, -1]], [[0, 1, 0], [0, 0, -1], [1, -1, 0]],
    ]
    static let expected: [Double] = [-3, -1, 0, -1, -8, 2, 3, 0, 3, 1, 4, 2, -1, 4, 5, 3, 1, 3]

    static var layer: Conv2D {
        Conv2D(weight: Tensor(shape: [2, 3, 3, 3], scalars: (w0 + w1).flatMap { $0.flatMap { $0 } }),
               bias: Tensor(shape: [2], scalars: [1, 0]), stride: [2, 2], padding: [1, 1, 1, 1])
    }

    @Test func outputIsThePublishedOneExactly() throws {
        let input = Tensor(shape: [1, 3, 5, 5], scalars: Self.x.flatMap { $0.flatMap { $0 } })
        #expect(try Self.layer.outputShape(forInput: input.shape) == [1, 2, 3, 3])
        let y = Self.layer.forward(input)
        #expect(y.scalars == Self.expected)
        #expect(Self.layer.notes(forInput: input.shape).isEmpty)
    }

    @Test func shippedVectorMatchesTheSlides() throws {
        let text = try String(contentsOfFile: vectorsDirectory + "/conv2d/cs231n-demo.json", encoding: .utf8)
        let c = try CaseDecoder().decode(text: text)
        #expect(c.expected?.outputs.first?.tensor.scalars == Self.expected)
        #expect(c.input("x")?.scalars == Self.x.flatMap { $0.flatMap { $0 } })
    }

    /// "Input volume 32x32x3, 10 5x5 filters with stride 1, pad 2": output
    /// 32x32x10 and 5·5·3·10 + 10 = 760 parameters.
    @Test func tenFiveByFiveFiltersHave760Parameters() throws {
        let conv = Conv2D(weight: Tensor(zeros: [10, 3, 5, 5]), bias: Tensor(zeros: [10]),
                          stride: [1, 1], padding: [2, 2, 2, 2])
        #expect(try conv.outputShape(forInput: [1, 3, 32, 32]) == [1, 10, 32, 32])
        #expect(conv.parameterCount == 760)
    }

    /// "3x3 filter on a 7x7 input at stride 3: doesn't fit!" is computed with
    /// the floor, as engines do, and the note shows the arithmetic.
    @Test func windowThatDoesNotTileIsFlooredWithANote() throws {
        let conv = Conv2D(weight: Tensor(zeros: [1, 1, 3, 3]), bias: nil, stride: [3, 3])
        #expect(try conv.outputShape(forInput: [1, 1, 7, 7]) == [1, 1, 2, 2])
        #expect(conv.notes(forInput: [1, 1, 7, 7]) == [
            "conv2d: 3x3 filter does not tile 7x7 input at stride 3: (7 - 3 + 0)/3 + 1 = 2.33; the last row and column are never used",
        ])
        // Stride 1 and 2 tile: (7 − 3)/1 + 1 = 5, (7 − 3)/2 + 1 = 3.
        for (s, size) in [(1, 5), (2, 3)] {
            let tiled = Conv2D(weight: Tensor(zeros: [1, 1, 3, 3]), bias: nil, stride: [s, s])
            #expect(try tiled.outputShape(forInput: [1, 1, 7, 7]) == [1, 1, size, size])
            #expect(tiled.notes(forInput: [1, 1, 7, 7]).isEmpty)
        }
    }

    @Test func noWindowFitsIsAnErrorWithTheArithmetic() {
        let conv = Conv2D(weight: Tensor(zeros: [1, 1, 5, 5]), bias: nil)
        #expect {
            try conv.outputShape(forInput: [1, 1, 3, 3])
        } throws: { error in
            let e = error as! CaseError
            return e.field == "inputs.weight.shape" && e.message.contains("no window fits") && e.message.contains("(3 - 5 + 0)/1 + 1")
        }
    }
}
