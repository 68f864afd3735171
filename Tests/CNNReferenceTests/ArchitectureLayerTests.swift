import BigInt
import GradientCheck
import Testing
@testable import CNNReference

/// The layers of issue 14 against exact dyadic arithmetic (ExactOracle.swift) and
/// index arithmetic written here, independently of the kernels.
@Suite struct ArchitectureLayerTests {
    static func values(_ n: Int, _ rng: SeededRandom) -> [Double] {
        (0..<n).map { _ in rng.signedUnit() * Double(sign: .plus, exponent: rng.below(41) - 20, significand: 1) }
    }

    @Test(arguments: 0..<4)
    func addIsTheExactSumRoundedOnce(seed: Int) {
        let rng = SeededRandom(seed: UInt(100 + seed))
        let xs = (0..<4).map { _ in Tensor(shape: [2, 3, 5], scalars: Self.values(30, rng)) }
        let layer = Add(others: Array(xs.dropFirst()))
        let y = layer.forward(xs[0])
        for i in 0..<30 {
            let exact = xs.reduce(Dyadic.zero) { $0 + Dyadic($1[i]) }
            #expect(isCorrectlyRounded(y[i], exact: exact), "y[\(i)] = \(y[i])")
        }
        let dy = Tensor(shape: [2, 3, 5], scalars: Self.values(30, rng))
        let g = layer.backward(xs[0], outputGradient: dy)
        #expect(([g.input] + g.parameters).allSatisfy { $0.isBitwiseEqual(to: dy) })
    }

    @Test func addSignedZeros() {
        let y = Add(others: [Tensor(shape: [3], scalars: [-0.0, 0, -1])]).forward(Tensor(shape: [3], scalars: [-0.0, -0.0, 1]))
        #expect(y[0].sign == .minus && y[0] == 0)
        #expect(y[1].sign == .plus && y[1] == 0)
        #expect(y[2].sign == .plus && y[2] == 0)
    }

    /// x/(1 − p) exactly: 1 − p = M·2^E (dyadic, computed here), so x/(1 − p) = x·2^(−E)/M.
    @Test(arguments: [0.1, 0.2, 0.3, 1.0 / 3, 0.5, 0.9, 0.999, 0x1p-30])
    func dropoutIsOneRoundingOfXOverOneMinusP(p: Double) {
        let rng = SeededRandom(seed: 7)
        let n = 400
        let x = Tensor(shape: [n], scalars: Self.values(n, rng))
        let mask = Tensor(shape: [n], scalars: (0..<n).map { $0 % 5 == 0 ? 0 : 1 })
        let layer = Dropout(p: p, mask: mask)
        var keep = Dyadic(1) + Dyadic(-p)
        while keep.mantissa % 2 == 0 { keep.mantissa /= 2; keep.exponent += 1 }   // M odd, so it fits an Int
        let y = layer.forward(x), dx = layer.backward(x, outputGradient: x).input
        var twoRoundingsDiffer = false
        for i in 0..<n {
            if mask[i] == 0 {
                #expect(y[i] == 0 && y[i].sign == x[i].sign && dx[i].bitPattern == y[i].bitPattern, "dropped \(i)")
                continue
            }
            let v = Dyadic(x[i]) * Dyadic(mantissa: 1, exponent: -keep.exponent)
            let divisor = Int(keep.mantissa)
            let signed = divisor < 0 ? Dyadic(mantissa: -v.mantissa, exponent: v.exponent) : v
            #expect(isCorrectlyRounded(y[i], exact: signed, divisor: abs(divisor)), "y[\(i)] = \(y[i]) for p \(p)")
            #expect(dx[i].bitPattern == y[i].bitPattern)
            if x[i] * (1 / (1 - p)) != y[i] { twoRoundingsDiffer = true }
        }
        // The test sees the difference one rounding makes: x·fl(1/(1 − p)) is off somewhere
        // (for p whose 1/(1 − p) is not a power of two).
        if p != 0.5 { #expect(twoRoundingsDiffer, "x·fl(1/(1 − \(p))) equals the correctly rounded quotient on all \(n) samples") }
    }

    @Test func dropoutEdges() {
        let x = Tensor(shape: [4], scalars: [.infinity, .nan, -0.0, .infinity])
        let y = Dropout(p: 0.25, mask: Tensor(shape: [4], scalars: [0, 1, 1, 1])).forward(x)
        #expect(y[0].isNaN && y[1].isNaN && y[2] == 0 && y[2].sign == .minus && y[3] == .infinity)
        let z = Dropout(p: 0, mask: Tensor(shape: [4], scalars: [1, 1, 1, 1])).forward(Tensor(shape: [4], scalars: [0.1, -3, 0x1p-1074, 1e308]))
        #expect(z.scalars == [0.1, -3, 0x1p-1074, 1e308])
    }

    func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    @Test(arguments: [([1, 2, 5, 7], [3, 4]), ([2, 1, 6, 6], [4, 4]), ([1, 1, 3, 2], [5, 3]), ([1, 3, 4, 4], [1, 1])])
    func adaptivePoolIsExactlyDivided(shape: [Int], out: [Int]) {
        let rng = SeededRandom(seed: 11)
        let x = Tensor(shape: shape, scalars: Self.values(shape.reduce(1, *), rng))
        let layer = AdaptiveAvgPool2D(outputSize: out)
        let (h, w, oh, ow) = (shape[2], shape[3], out[0], out[1])
        // PyTorch's start_index/end_index, written out.
        func window(_ i: Int, _ n: Int, _ o: Int) -> Range<Int> { (i * n / o)..<(((i + 1) * n + o - 1) / o) }
        let y = layer.forward(x)
        let dy = Tensor(shape: y.shape, scalars: Self.values(y.count, rng))
        let dx = layer.backward(x, outputGradient: dy).input
        for plane in 0..<(shape[0] * shape[1]) {
            for i in 0..<oh {
                for j in 0..<ow {
                    let rows = window(i, h, oh), cols = window(j, w, ow)
                    var exact = Dyadic.zero
                    for r in rows { for c in cols { exact = exact + Dyadic(x[(plane * h + r) * w + c]) } }
                    #expect(isCorrectlyRounded(y[(plane * oh + i) * ow + j], exact: exact, divisor: rows.count * cols.count))
                }
            }
            for r in 0..<h {
                for c in 0..<w {
                    var terms: [(Double, Int)] = []
                    for i in 0..<oh where window(i, h, oh).contains(r) {
                        for j in 0..<ow where window(j, w, ow).contains(c) {
                            terms.append((dy[(plane * oh + i) * ow + j], window(i, h, oh).count * window(j, w, ow).count))
                        }
                    }
                    let l = terms.reduce(1) { $0 / gcd($0, $1.1) * $1.1 }
                    let exact = terms.reduce(Dyadic.zero) { $0 + Dyadic($1.0) * Dyadic(Double(l / $1.1)) }
                    #expect(isCorrectlyRounded(dx[(plane * h + r) * w + c], exact: exact, divisor: l), "dx at \(plane), \(r), \(c)")
                }
            }
        }
    }

    @Test(arguments: 0..<4)
    func concatCopiesEveryElementToItsPlace(axis: Int) {
        let rng = SeededRandom(seed: 13)
        let shapes = (0..<3).map { k -> [Int] in var s = [2, 3, 2, 2]; s[axis] = k + 1; return s }
        let xs = shapes.map { Tensor(shape: $0, scalars: Self.values($0.reduce(1, *), rng)) }
        let layer = Concat(axis: axis, others: Array(xs.dropFirst()))
        let y = layer.forward(xs[0])
        let dy = Tensor(shape: y.shape, scalars: Self.values(y.count, rng))
        let g = layer.backward(xs[0], outputGradient: dy)
        let grads = [g.input] + g.parameters
        var offset = 0
        for (k, x) in xs.enumerated() {
            for flat in 0..<x.count {
                var index = x.index(ofFlat: flat)
                index[axis] += offset
                let target = zip(index, y.shape).reduce(0) { $0 * $1.1 + $1.0 }
                #expect(y[target].bitPattern == x[flat].bitPattern && grads[k][flat].bitPattern == dy[target].bitPattern)
            }
            offset += x.shape[axis]
        }
    }

    @Test func flattenIsRowMajor() throws {
        let x = Tensor(shape: [2, 3, 2], scalars: (0..<12).map(Double.init))
        for (start, shape) in [(0, [12]), (1, [2, 6]), (2, [2, 3, 2])] {
            let layer = Flatten(startAxis: start)
            #expect(try layer.outputShape(forInput: x.shape) == shape)
            #expect(layer.forward(x).scalars == x.scalars)
        }
    }

    /// Data inputs after the first are not learnable parameters; buffers are written as inputs.
    @Test func contractExtensions() throws {
        let add = Add(others: [Tensor(shape: [2], scalars: [1, 2])])
        #expect(add.parameterCount == 0 && add.dataInputNames == ["x0", "x1"])
        let c = Case(id: "t", layer: "dropout", config: [("p", .double(0.5))],
                     inputs: [NamedTensor("x", Tensor(shape: [2], scalars: [1, 2])), NamedTensor("mask", Tensor(shape: [2], scalars: [1, 0]))],
                     upstream: Tensor(shape: [2], scalars: [1, 1]))
        let e = try c.evaluated()
        #expect(e.inputs.map(\.name) == ["x", "mask"])
        #expect(e.expected?.gradients.map(\.name) == ["x"])
        #expect(e.expected?.outputs[0].tensor.scalars == [2, 0])
    }
}
