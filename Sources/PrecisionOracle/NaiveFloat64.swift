import CNNReference
import Foundation

/// conv2d and softmax cross-entropy as an engine would write them in float64:
/// plain loops with `+=`, log(Σ e^(s − m)) without log1p. Used only to show, beside
/// the reference, what the precision work changes (`cnnref precision`).
public enum NaiveFloat64 {
    public static func conv2d(_ c: Case) -> [Double] {
        let x = c.input("x")!, w = c.input("weight")!, b = c.input("bias")
        let layer = try! LayerRegistry.makeLayer(c) as! Conv2D
        let (n, ch, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (k, cg, fh, fw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
        let out = try! layer.outputShape(forInput: x.shape)
        let (s, p, d) = (layer.stride, layer.padding, layer.dilation)
        var y = [Double](repeating: 0, count: out.reduce(1, *))
        for bi in 0..<n { for o in 0..<k { for i in 0..<out[2] { for j in 0..<out[3] {
            var acc = b?[o] ?? 0
            for ci in 0..<cg { for pi in Oracle.within(i * s[0] - p[0], d[0], fh, 0, h) { for qi in Oracle.within(j * s[1] - p[1], d[1], fw, 0, wd) {
                let r = i * s[0] - p[0] + pi * d[0], col = j * s[1] - p[1] + qi * d[1]
                acc += x[((bi * ch + (o / (k / layer.groups)) * cg + ci) * h + r) * wd + col] * w[((o * cg + ci) * fh + pi) * fw + qi]
            } } }
            y[((bi * k + o) * out[2] + i) * out[3] + j] = acc
        } } } }
        return y
    }

    public static func crossEntropy(_ c: Case) -> [Double] {
        let s = c.input("scores")!, labels = c.labels!
        let (n, cl) = (s.shape[0], s.shape[1])
        var total = 0.0
        for i in 0..<n {
            let row = Array(s.scalars[i * cl..<(i + 1) * cl])
            let m = row.max()!
            total += log(row.reduce(0) { $0 + exp($1 - m) }) - (row[labels[i]] - m)
        }
        if case .string("mean")? = c.config.first(where: { $0.0 == "reduction" })?.1 { total /= Double(n) }
        return [total]
    }
}
