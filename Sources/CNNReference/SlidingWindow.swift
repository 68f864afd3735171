/// The geometry of a window sliding along one spatial axis, shared by
/// convolution and pooling.
///
/// Output size = ⌊(input + padBegin + padEnd − F_eff) / stride⌋ + 1 with
/// F_eff = dilation·(kernel − 1) + 1; in ceil mode ⌈…⌉ + 1, and a last window
/// that would start in the end padding is dropped (PyTorch's and ONNX's rule).
public struct SlidingWindow: Equatable, Sendable {
    public let input: Int, kernel: Int, stride: Int, padBegin: Int, padEnd: Int, dilation: Int
    public let ceilMode: Bool

    public init(input: Int, kernel: Int, stride: Int, padBegin: Int, padEnd: Int,
                dilation: Int, ceilMode: Bool = false) {
        self.input = input; self.kernel = kernel; self.stride = stride
        self.padBegin = padBegin; self.padEnd = padEnd; self.dilation = dilation
        self.ceilMode = ceilMode
    }

    public var effectiveKernel: Int { dilation * (kernel - 1) + 1 }
    var span: Int { input + padBegin + padEnd - effectiveKernel }

    /// The number of window positions; 0 when no window fits.
    public var outputSize: Int {
        guard span >= 0 else { return 0 }
        guard ceilMode else { return span / stride + 1 }
        var size = (span + stride - 1) / stride + 1
        if (size - 1) * stride >= input + padBegin { size -= 1 }
        return size
    }

    /// The input position of tap `tap` of window `window` (may lie in the padding).
    @inlinable public func position(window: Int, tap: Int) -> Int {
        window * stride - padBegin + tap * dilation
    }

    /// The arithmetic of the output size, as written in notes and errors:
    /// `(7 - 3 + 0)/3 + 1 = 2.33`.
    public var arithmetic: String {
        let exact = Double(span) / Double(stride) + 1
        let value = exact == exact.rounded() ? String(Int(exact)) : String(format2(exact))
        return "(\(input) - \(effectiveKernel) + \(padBegin + padEnd))/\(stride) + 1 = \(value)"
    }

    /// Rows (or columns) at the end of the input that no window reaches, when
    /// the windows do not tile the padded input; 0 when they tile.
    public var unusedAtEnd: Int {
        guard span >= 0, !ceilMode else { return 0 }
        let lastEnd = (outputSize - 1) * stride - padBegin + effectiveKernel  // one past the last tap
        return max(0, min(span % stride, input - lastEnd))
    }

    /// The taps of window `window` that land inside the input: positions grow with the
    /// tap, so they form one range, and kernels loop over it instead of testing every
    /// tap against the padding.
    public func tapsInside(window: Int) -> Range<Int> {
        let start = window * stride - padBegin              // position of tap 0
        let low = start >= 0 ? 0 : (-start + dilation - 1) / dilation
        let high = start > input - 1 ? 0 : min(kernel, (input - 1 - start) / dilation + 1)
        return low < high ? low..<high : low..<low
    }

    /// `tapsInside` for every window.
    public var tapRanges: [Range<Int>] { (0..<outputSize).map(tapsInside(window:)) }

    /// True when the window at `window` has at least one tap inside the input.
    public func windowTouchesInput(_ window: Int) -> Bool {
        (0..<kernel).contains { tap in (0..<input).contains(position(window: window, tap: tap)) }
    }
}

func format2(_ x: Double) -> String {
    let hundredths = Int((x * 100).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}

/// The two spatial axes of an NCHW layer.
public struct SpatialWindows: Equatable, Sendable {
    public let rows: SlidingWindow, columns: SlidingWindow

    /// Fails when no window fits along an axis, with the arithmetic.
    func check(layer: String, what: String, field: String) throws(CaseError) {
        for (axis, name) in [(rows, "rows"), (columns, "columns")] where axis.outputSize < 1 {
            throw CaseError(field, "\(layer): no window fits: the \(what) spans \(axis.effectiveKernel) \(name) (dilation \(axis.dilation)) but the padded input has \(axis.input + axis.padBegin + axis.padEnd) (\(axis.input) + \(axis.padBegin) + \(axis.padEnd)): \(axis.arithmetic) < 1")
        }
    }

    /// For pooling: every window must cover at least one input cell.
    func checkNoPaddingOnlyWindow(layer: String, field: String) throws(CaseError) {
        for (axis, name) in [(rows, "row"), (columns, "column")] {
            for w in 0..<axis.outputSize where !axis.windowTouchesInput(w) {
                throw CaseError(field, "\(layer): window \(w) along the \(name)s covers padding only (taps at \(axis.position(window: w, tap: 0)) + k*\(axis.dilation), input is 0..<\(axis.input)); reduce the padding")
            }
        }
    }

    /// The note for windows that do not tile the input (floor arithmetic), if any.
    func tilingNote(layer: String, what: String) -> [String] {
        let r = rows, c = columns
        let rowsLeft = r.unusedAtEnd, columnsLeft = c.unusedAtEnd
        let window = "\(r.kernel)x\(c.kernel) \(what)"
        let input = "\(r.input)x\(c.input) input"
        if r.span >= 0 && c.span >= 0 && r.span % r.stride == 0 && c.span % c.stride == 0 { return [] }
        if r.ceilMode {
            return ["\(layer): \(window) does not tile \(input) at stride \(r.stride)x\(c.stride): rows \(r.arithmetic), columns \(c.arithmetic); ceil mode rounds up to \(r.outputSize)x\(c.outputSize), so the last windows are partial"]
        }
        func unused(_ n: Int, _ noun: String) -> String {
            n == 1 ? "the last \(noun)" : "the last \(n) \(noun)s"
        }
        if r.stride == c.stride && r.arithmetic == c.arithmetic && rowsLeft == columnsLeft {
            let tail = rowsLeft == 0 ? "only padding is left unused"
                : (rowsLeft == 1 ? "the last row and column are never used" : "the last \(rowsLeft) rows and columns are never used")
            return ["\(layer): \(window) does not tile \(input) at stride \(r.stride): \(r.arithmetic); \(tail)"]
        }
        var parts: [String] = []
        if r.span % r.stride != 0 {
            parts.append("rows \(r.arithmetic) (\(rowsLeft == 0 ? "only padding unused" : unused(rowsLeft, "row") + " never used"))")
        }
        if c.span % c.stride != 0 {
            parts.append("columns \(c.arithmetic) (\(columnsLeft == 0 ? "only padding unused" : unused(columnsLeft, "column") + " never used"))")
        }
        return ["\(layer): \(window) does not tile \(input) at stride \(r.stride)x\(c.stride): " + parts.joined(separator: "; ")]
    }
}
