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
    public func tapsInside(window: Int) -> Range<Int> { taps(window: window, within: 0, input) }

    /// The taps of window `window` whose positions lie in `low..<high` (one range: positions
    /// grow with the tap). O(1), whatever the kernel size.
    public func taps(window: Int, within low: Int, _ high: Int) -> Range<Int> {
        let start = window * stride - padBegin              // position of tap 0
        guard high - 1 >= start else { return 0..<0 }
        let first = start >= low ? 0 : (low - start + dilation - 1) / dilation
        let last = min(kernel, (high - 1 - start) / dilation + 1)
        return first < last ? first..<last : 0..<0
    }

    /// The windows whose tap `tap` lies inside the input (one range). O(1).
    public func windowsInside(tap: Int) -> Range<Int> {
        // position = i·stride − padBegin + tap·dilation ∈ 0..<input, i ∈ 0..<outputSize.
        let offset = tap * dilation - padBegin              // position of window 0's tap
        let size = outputSize
        guard size > 0, offset + (size - 1) * stride >= 0, offset <= input - 1 else { return 0..<0 }
        let first = offset >= 0 ? 0 : (-offset + stride - 1) / stride
        let last = min(size, (input - 1 - offset) / stride + 1)
        return first < last ? first..<last : 0..<0
    }

    /// The taps, in decreasing order (so the windows come in increasing order), of every
    /// window that covers input position `position`: tap p of window
    /// `window(covering: position, tap: p)`. Solves p·dilation ≡ position + padBegin
    /// (mod stride) instead of trying every tap, so the cost is the number of windows
    /// covering the position, whatever the kernel size.
    public func tapsCovering(_ position: Int) -> StrideThrough<Int> {
        let empty = Swift.stride(from: -1, through: 0, by: -1)   // yields nothing
        let size = outputSize
        let a = position + padBegin                         // = i·stride + p·dilation
        guard size > 0, a >= 0 else { return empty }
        let highest = min(kernel - 1, a / dilation)         // window index i ≥ 0
        let reach = a - (size - 1) * stride                 // window index i ≤ size − 1
        let lowest = reach <= 0 ? 0 : (reach + dilation - 1) / dilation
        guard lowest <= highest else { return empty }
        let g = gcd(dilation, stride)
        guard a % g == 0 else { return empty }
        let m = stride / g                                  // period of the solutions in p
        let p0 = m == 1 ? 0 : ((a / g) % m) * modularInverse(dilation / g % m, m) % m
        // The largest p ≤ highest with p ≡ p0 (mod m).
        let top = highest - ((highest % m - p0) % m + m) % m
        guard top >= lowest else { return empty }
        return Swift.stride(from: top, through: lowest, by: -m)
    }

    /// The window whose tap `tap` lands on `position` (for taps from `tapsCovering`).
    @inlinable public func window(covering position: Int, tap: Int) -> Int {
        (position + padBegin - tap * dilation) / stride
    }

    /// `tapsInside` for every window.
    public var tapRanges: [Range<Int>] { (0..<outputSize).map(tapsInside(window:)) }

    /// True when the window at `window` has at least one tap inside the input.
    public func windowTouchesInput(_ window: Int) -> Bool { !tapsInside(window: window).isEmpty }

    /// Σ over the windows of the taps inside the input: the taps the kernels visit along
    /// this axis. O(outputSize).
    public var tapsInsideTotal: Int { (0..<outputSize).reduce(0) { $0 + tapsInside(window: $1).count } }
}

extension StrideThrough<Int> {
    /// True when the stride yields nothing (without iterating it).
    var isEmptyStride: Bool { first(where: { _ in true }) == nil }
}

func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

/// x with a·x ≡ 1 (mod m), for coprime a and m > 1 (extended Euclid).
func modularInverse(_ a: Int, _ m: Int) -> Int {
    var (r0, r1, s0, s1) = (m, a, 0, 1)
    while r1 != 0 {
        let q = r0 / r1
        (r0, r1) = (r1, r0 - q * r1)
        (s0, s1) = (s1, s0 - q * s1)
    }
    return ((s0 % m) + m) % m
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
