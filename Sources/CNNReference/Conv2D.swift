/// 2-D convolution (cross-correlation, no kernel flip, as in PyTorch, ONNX and TensorFlow).
///
/// - x: [N, C, H, W]; weight: [K, C/groups, FH, FW] (OIHW); bias: [K] or absent.
/// - padding is `[top, left, bottom, right]` zeros; dilation 1 is dense.
/// - Output [N, K, H2, W2], H2 = ⌊(H − F_eff + top + bottom)/sh⌋ + 1 with
///   F_eff = dh·(FH − 1) + 1 (likewise W2). Windows that do not tile the input
///   use the floor, and the case gets a note.
/// - Group g maps input channels g·C/groups ..< (g+1)·C/groups to output maps
///   g·K/groups ..< (g+1)·K/groups.
///
/// y[n,k,i,j] = bias[k] + Σ_{c,p,q} x[n, g·Cg + c, i·sh − top + p·dh, j·sw − left + q·dw] · w[k,c,p,q]
/// with padding cells contributing nothing; each element is one correctly
/// rounded sum, and so is every element of every gradient.
public struct Conv2D: SumOfProducts {
    public static let id = "conv2d"
    public let stride: [Int]      // [sh, sw]
    public let padding: [Int]     // [top, left, bottom, right]
    public let dilation: [Int]    // [dh, dw]
    public let groups: Int
    public var parameters: [NamedTensor]

    public init(weight: Tensor, bias: Tensor?, stride: [Int] = [1, 1], padding: [Int] = [0, 0, 0, 0],
                dilation: [Int] = [1, 1], groups: Int = 1) {
        self.stride = stride; self.padding = padding; self.dilation = dilation; self.groups = groups
        parameters = [NamedTensor("weight", weight)] + (bias.map { [NamedTensor("bias", $0)] } ?? [])
    }

    public var weight: Tensor { parameters[0].tensor }
    public var bias: Tensor? { parameters.count > 1 ? parameters[1].tensor : nil }

    public func windows(forInput s: [Int]) -> SpatialWindows {
        SpatialWindows(
            rows: SlidingWindow(input: s[2], kernel: weight.shape[2], stride: stride[0], padBegin: padding[0],
                                padEnd: padding[2], dilation: dilation[0]),
            columns: SlidingWindow(input: s[3], kernel: weight.shape[3], stride: stride[1], padBegin: padding[1],
                                   padEnd: padding[3], dilation: dilation[1]))
    }

    public func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] {
        try requireRank(s, 4, "inputs.x.shape", "[N, C, H, W]")
        try requireRank(weight.shape, 4, "inputs.weight.shape", "[K, C/groups, FH, FW]")
        let k = weight.shape[0], c = s[1]
        guard c % groups == 0 else {
            throw CaseError("config.groups", "input channels \(c) are not divisible by groups \(groups)")
        }
        guard k % groups == 0 else {
            throw CaseError("config.groups", "output maps K = \(k) (inputs.weight.shape[0]) are not divisible by groups \(groups)")
        }
        guard weight.shape[1] == c / groups else {
            throw CaseError("inputs.weight.shape", "expected [K, C/groups, FH, FW] = [\(k), \(c)/\(groups) = \(c / groups), FH, FW], found \(weight.shape)")
        }
        guard weight.shape[2] >= 1, weight.shape[3] >= 1 else {
            throw CaseError("inputs.weight.shape", "filter must be at least 1x1, found \(weight.shape)")
        }
        if let bias, bias.shape != [k] {
            throw CaseError("inputs.bias.shape", "expected [K] = [\(k)], found \(bias.shape)")
        }
        let w = windows(forInput: s)
        try w.check(layer: Self.id, what: "filter", field: "inputs.weight.shape")
        return [s[0], k, w.rows.outputSize, w.columns.outputSize]
    }

    public func notes(forInput s: [Int]) -> [String] {
        windows(forInput: s).tilingNote(layer: Self.id, what: "filter")
    }

    /// N·K·H2·W2 outputs × (C/groups)·FH·FW products each (the lecture's 32·32·10·(5·5·3)).
    public func multiplyAdds(forInput s: [Int]) -> Int? {
        let w = windows(forInput: s)
        return checkedProduct([s[0], weight.shape[0], w.rows.outputSize, w.columns.outputSize,
                               weight.shape[1], weight.shape[2], weight.shape[3]])
    }

    @_specialize(where A == CorrectlyRounded)
    @_specialize(where A == CompensatedSum)
    @_specialize(where A == PlainSum)
    public func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (k, cg, fh, fw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        let win = windows(forInput: x.shape)
        let (oh, ow) = (win.rows.outputSize, win.columns.outputSize)
        let kg = k / groups
        let rowTaps = win.rows.tapRanges, columnTaps = win.columns.tapRanges
        let (sh, sw, dh, dw) = (stride[0], stride[1], dilation[0], dilation[1])
        let (top, left) = (padding[0], padding[1])
        let bs = bias?.scalars
        // Unsafe buffers: the gradient checker runs this pass twice per checked element.
        let y = [Double](unsafeUninitializedCapacity: n * k * oh * ow) { ys, count in
            x.scalars.withUnsafeBufferPointer { xs in
                weight.scalars.withUnsafeBufferPointer { ws in
                    for b in 0..<n {
                        for o in 0..<k {
                            let firstChannel = (o / kg) * cg
                            for i in 0..<oh {
                                let rows = rowTaps[i], r0 = i * sh - top
                                for j in 0..<ow {
                                    let columns = columnTaps[j], c0 = j * sw - left
                                    ys[((b * k + o) * oh + i) * ow + j] = A.sum { acc in
                                        for ci in 0..<cg {
                                            let xBase = (b * c + firstChannel + ci) * h
                                            let wBase = (o * cg + ci) * fh
                                            for p in rows {
                                                let xRow = (xBase + r0 + p * dh) * w + c0, wRow = (wBase + p) * fw
                                                for q in columns {
                                                    acc.add(xs[xRow + q * dw], times: ws[wRow + q])
                                                }
                                            }
                                        }
                                        if let bs { acc.add(bs[o]) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            count = n * k * oh * ow
        }
        return Tensor(shape: [n, k, oh, ow], scalars: y)
    }

    public func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (k, cg, fh, fw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        let win = windows(forInput: x.shape)
        let (oh, ow) = (win.rows.outputSize, win.columns.outputSize)
        let kg = k / groups
        let xs = x.scalars, ws = weight.scalars, g = dy.scalars
        typealias A = CorrectlyRounded

        // dx[n,c,r,s] = Σ over the outputs whose window tap (p,q) lands on (r,s): only those
        // taps are visited (`tapsCovering` solves for them), so padding costs nothing.
        let rowCover = (0..<h).map(win.rows.tapsCovering), columnCover = (0..<w).map(win.columns.tapsCovering)
        var dx = [Double](repeating: 0, count: x.count)
        for b in 0..<n {
            for ch in 0..<c {
                let group = ch / cg, ci = ch % cg
                for r in 0..<h where !rowCover[r].isEmptyStride {
                    for s in 0..<w where !columnCover[s].isEmptyStride {
                        dx[((b * c + ch) * h + r) * w + s] = A.sum { acc in
                            for o in group * kg..<(group + 1) * kg {
                                for p in rowCover[r] {
                                    let i = win.rows.window(covering: r, tap: p)
                                    for q in columnCover[s] {
                                        let j = win.columns.window(covering: s, tap: q)
                                        acc.add(g[((b * k + o) * oh + i) * ow + j], times: ws[((o * cg + ci) * fh + p) * fw + q])
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        // dw[o,c,p,q] = Σ_{n,i,j} dy[n,o,i,j] · x[n, group·Cg + c, tap position], over the
        // windows whose tap (p,q) lies inside the input.
        let rowWindows = (0..<fh).map(win.rows.windowsInside), columnWindows = (0..<fw).map(win.columns.windowsInside)
        var dw = [Double](repeating: 0, count: weight.count)
        for o in 0..<k {
            let firstChannel = (o / kg) * cg
            for ci in 0..<cg {
                for p in 0..<fh where !rowWindows[p].isEmpty {
                    for q in 0..<fw where !columnWindows[q].isEmpty {
                        dw[((o * cg + ci) * fh + p) * fw + q] = A.sum { acc in
                            for b in 0..<n {
                                for i in rowWindows[p] {
                                    let r = win.rows.position(window: i, tap: p)
                                    for j in columnWindows[q] {
                                        let col = win.columns.position(window: j, tap: q)
                                        acc.add(g[((b * k + o) * oh + i) * ow + j],
                                                times: xs[((b * c + firstChannel + ci) * h + r) * w + col])
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var gradients = [Tensor(shape: weight.shape, scalars: dw)]

        // db[o] = Σ_{n,i,j} dy[n,o,i,j].
        if bias != nil {
            var db = [Double](repeating: 0, count: k)
            for o in 0..<k {
                db[o] = A.sum { acc in
                    for b in 0..<n {
                        for t in 0..<(oh * ow) { acc.add(g[(b * k + o) * oh * ow + t]) }
                    }
                }
            }
            gradients.append(Tensor(shape: [k], scalars: db))
        }
        return Gradients(input: Tensor(shape: x.shape, scalars: dx), parameters: gradients)
    }
}
