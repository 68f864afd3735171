import BigInt
import GradientCheck
import Testing
@testable import CNNReference

/// Every sum of products is the exact sum rounded once. The oracle is exact
/// dyadic arithmetic with BigInt (ExactOracle.swift), which shares no code
/// with the accumulators.
@Suite struct CorrectRoundingTests {
    /// Full 53-bit values with exponents spread over ±2^10, so that terms cancel and
    /// sums land anywhere in a binade.
    static func randomTensor(_ shape: [Int], _ rng: SeededRandom) -> Tensor {
        Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in
            rng.signedUnit() * Double(sign: .plus, exponent: rng.below(21) - 10, significand: 1)
        })
    }

    @Test(arguments: 0..<8)
    func linearForwardAndBackwardAreCorrectlyRounded(seed: Int) {
        let rng = SeededRandom(seed: UInt(seed))
        let (n, d, m) = (3, 17, 5)
        let x = Self.randomTensor([n, d], rng), w = Self.randomTensor([m, d], rng)
        let b = Self.randomTensor([m], rng), dy = Self.randomTensor([n, m], rng)
        let layer = Linear(weight: w, bias: b)
        let y = layer.forward(x)
        let g = layer.backward(x, outputGradient: dy)
        for r in 0..<n {
            for o in 0..<m {
                let row = Array(x.scalars[r * d..<(r + 1) * d]) + [b[o]]
                let col = Array(w.scalars[o * d..<(o + 1) * d]) + [1]
                #expect(isCorrectlyRounded(y[r * m + o], exact: exactDot(row, col)), "y[\(r),\(o)]")
            }
            for i in 0..<d {
                let exact = exactDot((0..<m).map { dy[r * m + $0] }, (0..<m).map { w[$0 * d + i] })
                #expect(isCorrectlyRounded(g.input[r * d + i], exact: exact), "dx[\(r),\(i)]")
            }
        }
        for o in 0..<m {
            for i in 0..<d {
                let exact = exactDot((0..<n).map { dy[$0 * m + o] }, (0..<n).map { x[$0 * d + i] })
                #expect(isCorrectlyRounded(g.parameters[0][o * d + i], exact: exact), "dW[\(o),\(i)]")
            }
            let exact = exactDot((0..<n).map { dy[$0 * m + o] }, Array(repeating: 1, count: n))
            #expect(isCorrectlyRounded(g.parameters[1][o], exact: exact), "db[\(o)]")
        }
    }

    @Test(arguments: 0..<4)
    func convForwardAndWeightGradientAreCorrectlyRounded(seed: Int) {
        let rng = SeededRandom(seed: UInt(100 + seed))
        let x = Self.randomTensor([2, 4, 6, 5], rng), w = Self.randomTensor([6, 2, 3, 2], rng)
        let b = Self.randomTensor([6], rng)
        let layer = Conv2D(weight: w, bias: b, stride: [2, 1], padding: [1, 0, 2, 1], dilation: [1, 2], groups: 2)
        let shape = try! layer.outputShape(forInput: x.shape)
        let dy = Self.randomTensor(shape, rng)
        let y = layer.forward(x)
        let g = layer.backward(x, outputGradient: dy)
        let win = layer.windows(forInput: x.shape)
        let (oh, ow) = (shape[2], shape[3])
        // Forward, from the definition: taps inside the input only.
        for n in 0..<2 { for k in 0..<6 { for i in 0..<oh { for j in 0..<ow {
            var a: [Double] = [b[k]], c: [Double] = [1]
            for ci in 0..<2 { for p in 0..<3 { for q in 0..<2 {
                let r = i * 2 - 1 + p, s = j * 1 - 0 + q * 2
                if r >= 0 && r < 6 && s >= 0 && s < 5 {
                    a.append(x[((n * 4 + (k / 3) * 2 + ci) * 6 + r) * 5 + s]); c.append(w[((k * 2 + ci) * 3 + p) * 2 + q])
                }
            } } }
            #expect(isCorrectlyRounded(y[((n * 6 + k) * oh + i) * ow + j], exact: exactDot(a, c)))
        } } } }
        #expect(win.rows.outputSize == oh)
        // Weight gradient: Σ over batch and output positions.
        for k in 0..<6 { for ci in 0..<2 { for p in 0..<3 { for q in 0..<2 {
            var a: [Double] = [], c: [Double] = []
            for n in 0..<2 { for i in 0..<oh { for j in 0..<ow {
                let r = i * 2 - 1 + p, s = j + q * 2
                if r >= 0 && r < 6 && s >= 0 && s < 5 {
                    a.append(dy[((n * 6 + k) * oh + i) * ow + j]); c.append(x[((n * 4 + (k / 3) * 2 + ci) * 6 + r) * 5 + s])
                }
            } } }
            #expect(isCorrectlyRounded(g.parameters[0][((k * 2 + ci) * 3 + p) * 2 + q], exact: exactDot(a, c)))
        } } } }
    }

    /// Sums built to sit on or next to a rounding boundary, where a compensated
    /// sum alone cannot decide: the exact path must.
    @Test func sumsOnAndNearRoundingBoundaries() {
        let cases: [[Double]] = [
            [1, 0x1p-53],                       // exactly half an ulp above 1: ties to even, 1
            [1, 0x1p-53, 0x1p-106],             // a hair above the midpoint: rounds up
            [1, 0x1p-53, -0x1p-106],            // a hair below: rounds down
            [1 + 0x1p-52, 0x1p-53],             // midpoint with an odd neighbour: rounds up to even
            [0x1p600, 1, -0x1p600],             // huge cancellation: 1
            [0x1p1023, 0x1p1023, -0x1p1023],    // the running sum overflows, the result does not
            [0x1p-1074, 0x1p-1074, 0x1p-1075 * 0], // subnormals
            [0.1, 0.2, -0.3],
            [1e300, -1e300, 1e-300],
        ]
        for terms in cases {
            let r = CorrectlyRounded.sum { acc in for t in terms { acc.add(t) } }
            let exact = terms.reduce(Dyadic.zero) { $0 + Dyadic($1) }
            #expect(isCorrectlyRounded(r, exact: exact), "\(terms) gave \(r)")
            // The oracle itself rejects the neighbours.
            #expect(!isCorrectlyRounded(r.nextUp, exact: exact) && !isCorrectlyRounded(r.nextDown, exact: exact))
        }
        #expect(CorrectlyRounded.sum { $0.add(1); $0.add(0x1p-53) } == 1)
        #expect(CorrectlyRounded.sum { $0.add(1); $0.add(0x1p-53); $0.add(0x1p-106) } == 1 + 0x1p-52)
    }

    /// Products that underflow: fma's error term is no longer exact, so the
    /// exact path must take over.
    @Test func productsThatUnderflow() {
        let rng = SeededRandom(seed: 7)
        for _ in 0..<200 {
            let a = (0..<6).map { _ in rng.signedUnit() * 0x1p-540 }
            let b = (0..<6).map { _ in rng.signedUnit() * 0x1p-530 }
            let r = CorrectlyRounded.sum { acc in for (x, y) in zip(a, b) { acc.add(x, times: y) } }
            #expect(isCorrectlyRounded(r, exact: exactDot(a, b)), "\(a) · \(b) gave \(r)")
        }
    }

    @Test func quotientsByAWindowSizeAreCorrectlyRounded() {
        let rng = SeededRandom(seed: 11)
        for k in [3, 7, 9, 25] {
            for _ in 0..<100 {
                let terms = (0..<k).map { _ in rng.signedUnit() }
                let r = CorrectlyRounded.sum(dividedBy: Double(k)) { acc in for t in terms { acc.add(t) } }
                let exact = terms.reduce(Dyadic.zero) { $0 + Dyadic($1) }
                #expect(isCorrectlyRounded(r, exact: exact, divisor: k), "Σ\(terms)/\(k) gave \(r)")
            }
        }
        // (1 + 2 + 2^-52)/3 and other exactly representable quotients come out exact.
        #expect(CorrectlyRounded.sum(dividedBy: 3) { $0.add(1); $0.add(2) } == 1)
    }

    /// The divided sum's fast path certifies nearly every random average pool (its
    /// remainder is r − q·d, exact by fma); the exact path decides the rest, and both
    /// agree with exact dyadic arithmetic.
    @Test func theDividedFastPathNearlyAlwaysCertifies() {
        let rng = SeededRandom(seed: 12)
        var certified = 0, total = 0
        for k in [2, 3, 4, 6, 9, 12, 25] {
            for _ in 0..<300 {
                let terms = (0..<k).map { _ in rng.signedUnit() }
                var fast = CorrectlyRounded()
                for t in terms { fast.add(t) }
                total += 1
                let exact = terms.reduce(Dyadic.zero) { $0 + Dyadic($1) }
                if let r = fast.certifiedResult(dividedBy: Double(k)) {
                    certified += 1
                    #expect(isCorrectlyRounded(r, exact: exact, divisor: k), "fast Σ\(terms)/\(k) gave \(r)")
                }
                let r = CorrectlyRounded.sum(dividedBy: Double(k)) { acc in for t in terms { acc.add(t) } }
                #expect(isCorrectlyRounded(r, exact: exact, divisor: k))
            }
        }
        #expect(Double(certified) >= 0.99 * Double(total), "\(certified) of \(total) certified by the fast path")
    }

    @Test func nonFiniteTermsFollowIEEE() {
        #expect(CorrectlyRounded.sum { $0.add(.infinity); $0.add(1) } == .infinity)
        #expect(CorrectlyRounded.sum { $0.add(.infinity); $0.add(-.infinity) }.isNaN)
        #expect(CorrectlyRounded.sum { $0.add(.infinity, times: 0) }.isNaN)
        #expect(CorrectlyRounded.sum { $0.add(.nan); $0.add(1) }.isNaN)
    }
}

/// Average-pool gradients whose window divisors have an lcm beyond 2⁵³ take the
/// double-double path: still within half an ulp of Σ dy/d, computed here exactly.
@Suite struct AveragePoolLargeDivisorTests {
    @Test func gradientWithHugeDivisorLcmIsCorrectlyRounded() {
        // 1x64 input, 1x48 window, stride 1, count_include_pad false, padding 47 both sides:
        // the windows covering a cell hold every count from 1 to 48, whose lcm is ~3·10²⁰.
        let pool = AvgPool2D(window: PoolWindow(kernel: [1, 48], padding: [0, 47, 0, 47]), countIncludePad: false)
        let x = Tensor(zeros: [1, 1, 1, 64])
        let shape = try! pool.outputShape(forInput: x.shape)
        let rng = SeededRandom(seed: 5)
        let dy = Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in rng.signedUnit() })
        let dx = pool.backward(x, outputGradient: dy).input
        let divisors = pool.divisors(forInput: x.shape)
        let w = pool.window.windows(forInput: x.shape).columns
        for cell in 0..<64 {
            // Σ dy_j / d_j exactly: a common denominator as a BigInt.
            var numerator = Dyadic.zero
            var denominator = BigInt(1)
            #expect(cell != 0 || (1...48).reduce(BigInt(1)) { $0 * BigInt($1) / $0.greatestCommonDivisor(with: BigInt($1)) } > BigInt(1) << 53)
            var terms: [(Dyadic, BigInt)] = []
            for j in 0..<w.outputSize where (0..<48).contains(where: { w.position(window: j, tap: $0) == cell }) {
                terms.append((Dyadic(dy[j]), BigInt(divisors[j])))
                denominator *= BigInt(divisors[j])
            }
            for (value, d) in terms { numerator = numerator + value * Dyadic(mantissa: denominator / d, exponent: 0) }
            // |dx·D − N| ≤ ulp(dx)/2 · D
            let error = Dyadic(dx[cell]) * Dyadic(mantissa: denominator, exponent: 0) + Dyadic(mantissa: -numerator.mantissa, exponent: numerator.exponent)
            let halfUlp = Dyadic(dx[cell].magnitude.ulp / 2) * Dyadic(mantissa: denominator, exponent: 0)
            let magnitude = Dyadic(mantissa: BigInt(error.mantissa.magnitude), exponent: error.exponent)
            #expect(Dyadic.compare(magnitude, halfUlp) <= 0, "cell \(cell): \(dx[cell])")
        }
    }
}
