import Foundation
import Testing
@testable import CNNReference

/// Small hand-checkable cases for every layer and every pinned convention.
/// Expected values are worked out by hand in the comments.
@Suite struct ConventionTests {
    func t(_ shape: [Int], _ v: [Double]) -> Tensor { Tensor(shape: shape, scalars: v) }

    @Test func maxPoolRoutesToTheFirstMaximumInRowMajorOrder() {
        // One 2x2 window holding 5 twice: the first (row 0, col 1) takes all the gradient.
        let pool = MaxPool2D(window: PoolWindow(kernel: [2, 2], stride: [2, 2]))
        let x = t([1, 1, 2, 2], [1, 5, 5, 2])
        #expect(pool.forward(x).scalars == [5])
        #expect(pool.backward(x, outputGradient: t([1, 1, 1, 1], [3])).input.scalars == [0, 3, 0, 0])
    }

    @Test func maxPoolLectureExample() {
        // The lecture's 4x4 max pool 2x2 stride 2: [[1,1,2,4],[5,6,7,8],[3,2,1,0],[1,2,3,4]] -> [[6,8],[3,4]].
        let pool = MaxPool2D(window: PoolWindow(kernel: [2, 2], stride: [2, 2]))
        let x = t([1, 1, 4, 4], [1, 1, 2, 4, 5, 6, 7, 8, 3, 2, 1, 0, 1, 2, 3, 4])
        #expect(pool.forward(x).scalars == [6, 8, 3, 4])
    }

    @Test func overlappingMaxPoolSumsWhatEveryWindowRoutes() {
        // 1x3 input, kernel 1x2, stride 1: windows (a,b) and (b,c); b = 9 wins both.
        let pool = MaxPool2D(window: PoolWindow(kernel: [1, 2]))
        let x = t([1, 1, 1, 3], [1, 9, 2])
        #expect(pool.backward(x, outputGradient: t([1, 1, 1, 2], [0.5, 0.25])).input.scalars == [0, 0.75, 0])
    }

    @Test func paddedCellsNeverWinAMaxPool() {
        // All-negative input with padding 1: a zero pad would win if padding were 0, not −∞/skipped.
        let pool = MaxPool2D(window: PoolWindow(kernel: [2, 2], stride: [2, 2], padding: [1, 1, 1, 1]))
        let x = t([1, 1, 2, 2], [-1, -2, -3, -4])
        #expect(pool.forward(x).scalars == [-1, -2, -3, -4])
    }

    @Test func ceilModeDropsAWindowThatStartsInThePadding() {
        // H = 5, k = 2, s = 2, pad 1 both sides: ceil((5+2−2)/2)+1 = 4, but window 3 starts at
        // 3·2 − 1 = 5 ≥ H, inside the end padding, so it is dropped: 3 (PyTorch gives 3 too).
        let w = SlidingWindow(input: 5, kernel: 2, stride: 2, padBegin: 1, padEnd: 1, dilation: 1, ceilMode: true)
        #expect(w.outputSize == 3)
        // Without padding: ceil((5 − 2)/2) + 1 = 3, the last window [4, 5] is partial and kept.
        #expect(SlidingWindow(input: 5, kernel: 2, stride: 2, padBegin: 0, padEnd: 0, dilation: 1, ceilMode: true).outputSize == 3)
        #expect(SlidingWindow(input: 5, kernel: 2, stride: 2, padBegin: 0, padEnd: 0, dilation: 1).outputSize == 2)
    }

    @Test func averagePoolDivisorsFollowCountIncludePad() {
        // 1x3 input [3, 6, 9], kernel 1x2, stride 2, padding left 1, ceil mode:
        // windows cover (pad, 3), (6, 9); size ⌈(3+1−2)/2⌉+1 = 2.
        let window = PoolWindow(kernel: [1, 2], stride: [1, 2], padding: [0, 1, 0, 0], ceilMode: true)
        let x = t([1, 1, 1, 3], [3, 6, 9])
        // count_include_pad false: 3/1, (6+9)/2.
        #expect(AvgPool2D(window: window, countIncludePad: false).forward(x).scalars == [3, 7.5])
        // true: the left pad counts: 3/2; (6+9)/2.
        #expect(AvgPool2D(window: window, countIncludePad: true).forward(x).scalars == [1.5, 7.5])
        // Ceil-mode overhang never counts: 1x4 [1,2,3,4], kernel 3, stride 2, ceil: windows [1,2,3], [3,4,∅];
        // the second divides by 2 even with count_include_pad.
        let overhang = PoolWindow(kernel: [1, 3], stride: [1, 2], ceilMode: true)
        let y = AvgPool2D(window: overhang, countIncludePad: true).forward(t([1, 1, 1, 4], [1, 2, 3, 4]))
        #expect(y.scalars == [2, 3.5])
        // Backward of the first: Σ dy/d per cell: cell 3 is in both windows: 1/3 + 1/2 = 5/6, rounded once.
        let g = AvgPool2D(window: overhang, countIncludePad: true).backward(t([1, 1, 1, 4], [1, 2, 3, 4]), outputGradient: t([1, 1, 1, 2], [1, 1]))
        let expected: [Double] = [1.0 / 3, 1.0 / 3, 5.0 / 6, 0.5]
        #expect(g.input.scalars == expected)
    }

    @Test func kinkDerivativesArePyTorchs() {
        let x = t([3], [-1, 0, 2])
        let ones = t([3], [1, 1, 1])
        #expect(ReLU().backward(x, outputGradient: ones).input.scalars == [0, 0, 1])           // ReLU'(0) = 0
        #expect(LeakyReLU(slope: 0.1).backward(x, outputGradient: ones).input.scalars == [0.1, 0.1, 1])  // slope at 0
        #expect(ELU(alpha: 2).backward(x, outputGradient: ones).input.scalars == [2 * exp(-1.0), 2, 1])  // α at 0
        let p = PReLU(slope: t([1], [0.25]))
        let g = p.backward(x, outputGradient: ones)
        #expect(g.input.scalars == [0.25, 0.25, 1])
        #expect(g.parameters[0].scalars == [-1])  // Σ_{x≤0} dy·x = −1 + 0
        #expect(ReLU().forward(t([1], [-0.0])).scalars[0].sign == .plus)
    }

    @Test func preluSlopeIsPerChannelAndSummedOverBatchAndSpace() {
        // x [2, 2, 1, 2]: channel 0 holds −1, −2, −3, 4; channel 1 holds 1, −1, 2, −2.
        let x = t([2, 2, 1, 2], [-1, -2, 1, -1, -3, 4, 2, -2])
        let p = PReLU(slope: t([2], [0.5, 0.25]))
        #expect(p.forward(x).scalars == [-0.5, -1, 1, -0.25, -1.5, 4, 2, -0.5])
        let g = p.backward(x, outputGradient: Tensor(shape: x.shape, scalars: Array(repeating: 1, count: 8)))
        #expect(g.parameters[0].scalars == [-6, -3])
    }

    @Test func maxoutTiesGoToTheLowestPiece() {
        // Two identical pieces: piece 0 wins and gets the whole gradient.
        let w = t([2, 1, 2], [1, 2, 1, 2]), b = t([2, 1], [0, 0])
        let layer = Maxout(pieces: 2, weight: w, bias: b)
        let x = t([1, 2], [3, 4])
        #expect(layer.forward(x).scalars == [11])
        let g = layer.backward(x, outputGradient: t([1, 1], [1]))
        #expect(g.parameters[0].scalars == [3, 4, 0, 0])
        #expect(g.parameters[1].scalars == [1, 0])
    }

    @Test func hingeTermExactlyAtTheMarginContributesNothing() {
        // scores [2, 1, 3], label 0, margin 1: j=1: 1−2+1 = 0 (inactive), j=2: 3−2+1 = 2.
        let loss = MulticlassHinge(labels: [0], margin: 1, reduction: .sum)
        let s = t([1, 3], [2, 1, 3])
        #expect(loss.forward(s).scalars == [2])
        #expect(loss.backward(s, outputGradient: Tensor(scalar: 1)).input.scalars == [-1, 0, 1])
        // Mean over N = 2 and no division by C.
        let mean = MulticlassHinge(labels: [0, 2], margin: 1, reduction: .mean)
        let s2 = t([2, 3], [2, 1, 3, 0, 0, 0])
        // row 1, label 2: j=0: 0−0+1 = 1, j=1: 1 → L = 2. (2 + 2)/2 = 2.
        #expect(mean.forward(s2).scalars == [2])
    }

    @Test func softmaxSubtractsTheMaximum() {
        // Logits near 1000 would overflow exp without the shift.
        let y = Softmax(axis: 1).forward(t([1, 2], [1000, 1000]))
        #expect(y.scalars == [0.5, 0.5])
        let ly = LogSoftmax(axis: -1).forward(t([1, 2], [1000, -Double.infinity]))
        #expect(ly.scalars == [0, -.infinity])
        // An all −∞ row is NaN, as PyTorch.
        let allNegative = Softmax(axis: 0).forward(t([2], [-.infinity, -.infinity]))
        #expect(allNegative.scalars.allSatisfy { $0.isNaN })
    }

    @Test func softmaxOnAnInnerAxis() {
        // x [2, 2]: along axis 0 each column is normalised: columns (0, 0) and (0, ln 3).
        let y = Softmax(axis: 0).forward(t([2, 2], [0, 0, 0, log(3.0)]))
        #expect(y.scalars[0] == 0.5 && y.scalars[2] == 0.5)
        #expect(abs(y.scalars[1] - 0.25) < 1e-16 && abs(y.scalars[3] - 0.75) < 1e-16)
    }

    @Test func crossEntropyMeanDividesByN() {
        // Two rows of equal logits over C = 4: each L_i = log 4; mean = log 4, sum = 2 log 4.
        let s = t([2, 4], Array(repeating: 0, count: 8))
        #expect(SoftmaxCrossEntropy(labels: [0, 3], reduction: .mean).forward(s).scalars == [log(4.0)])
        #expect(SoftmaxCrossEntropy(labels: [0, 3], reduction: .sum).forward(s).scalars == [2 * log(4.0)])
        let g = SoftmaxCrossEntropy(labels: [0, 3], reduction: .mean).backward(s, outputGradient: Tensor(scalar: 1))
        // (1/4 − 1)/2 = −0.375 on the label, (1/4)/2 = 0.125 elsewhere.
        #expect(g.input.scalars == [-0.375, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125, -0.375])
    }

    @Test func swishBetaGradient() {
        // At x = 0 every term vanishes: dy/dx = σ(0) = 1/2, dL/dβ = 0.
        let s = Swish(beta: t([1], [1.5]))
        let g = s.backward(t([2], [0, 0]), outputGradient: t([2], [1, 1]))
        #expect(g.input.scalars == [0.5, 0.5])
        #expect(g.parameters[0].scalars == [0])
    }

    @Test func groupedConvolutionKeepsGroupsApart() {
        // 2 channels, 2 groups, 1x1 filters [2] and [3]: each map sees only its own channel.
        let conv = Conv2D(weight: t([2, 1, 1, 1], [2, 3]), bias: nil, groups: 2)
        let x = t([1, 2, 1, 2], [1, 2, 10, 20])
        #expect(conv.forward(x).scalars == [2, 4, 30, 60])
    }

    @Test func dilatedConvolutionSkipsTaps() {
        // 1x5 input, 1x2 filter [1, 1] with dilation 3: y_j = x_j + x_{j+3}.
        let conv = Conv2D(weight: t([1, 1, 1, 2], [1, 1]), bias: nil, dilation: [1, 3])
        #expect(conv.forward(t([1, 1, 1, 5], [1, 2, 3, 4, 5])).scalars == [5, 7])
    }
}
