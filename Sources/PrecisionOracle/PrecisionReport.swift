import CNNReference

/// Where one value of a case stands against the oracle.
public struct ValueError: Sendable {
    public var caseID: String
    public var tensor: String     // "outputs.y", "gradients.weight"
    public var index: [Int]
    public var ours: Double
    public var truth: Double      // the oracle's value rounded to Double
    public var ulps: Double
}

/// The measured precision of every golden value, per case and per layer.
public struct PrecisionReport: Sendable {
    public struct Layer: Sendable {
        public var id: String
        public var values = 0
        public var correctlyRounded = 0
        public var worst: ValueError?
    }
    public var layers: [Layer]
    /// The worst ulp error of each case, by id.
    public var worstPerCase: [String: Double]
    /// Every value above its target, worst first.
    public var violations: [ValueError]
}

extension Oracle {
    /// Layers whose every value must be correctly rounded (sums of products and selections).
    public static let correctlyRoundedLayers: Set<String> = [
        "conv2d", "linear", "maxout", "avgpool2d", "maxpool2d", "relu", "leaky_relu", "prelu",
    ]

    /// The measured worst case of a layer whose target is out of reach in `Double`
    /// with the current kernels, stated in the README; nil: 1 ulp.
    public static let statedLimits: [String: Double] = [:]

    /// The target, in ulps, of a value of `layer`.
    public static func target(_ layer: String) -> Double {
        correctlyRoundedLayers.contains(layer) ? 0.5 : (statedLimits[layer] ?? 1)
    }

    /// Measures `cases` (each with `expected`) against the oracle.
    public static func measure(_ cases: [Case]) -> PrecisionReport {
        var layers: [String: PrecisionReport.Layer] = [:]
        var worstPerCase: [String: Double] = [:]
        var violations: [ValueError] = []
        for c in cases {
            guard let expected = c.expected else { continue }
            let truth = evaluate(c)
            var layer = layers[c.layer] ?? PrecisionReport.Layer(id: c.layer)
            var caseWorst = 0.0
            for (section, ours, theirs) in [("outputs", expected.outputs, truth.outputs), ("gradients", expected.gradients, truth.gradients)] {
                for (name, values) in theirs {
                    guard let tensor = ours.first(where: { $0.name == name })?.tensor else { continue }
                    for (i, t) in values.enumerated() {
                        let e = ulpError(tensor[i], t)
                        let error = ValueError(caseID: c.id, tensor: "\(section).\(name)", index: tensor.index(ofFlat: i),
                                               ours: tensor[i], truth: t.double, ulps: e)
                        layer.values += 1
                        if e <= 0.5 { layer.correctlyRounded += 1 }
                        if layer.worst == nil || e > layer.worst!.ulps { layer.worst = error }
                        caseWorst = max(caseWorst, e)
                        if e > target(c.layer) { violations.append(error) }
                    }
                }
            }
            layers[c.layer] = layer
            worstPerCase[c.id] = caseWorst
        }
        return PrecisionReport(layers: layers.values.sorted { $0.id < $1.id }, worstPerCase: worstPerCase,
                               violations: violations.sorted { $0.ulps > $1.ulps })
    }

    /// The ulp errors of values computed another way (a naive engine), for comparison.
    public static func errors(of values: [Double], tensor: String, output: Bool, in c: Case) -> [Double] {
        let truth = evaluate(c)
        guard let t = (output ? truth.outputs : truth.gradients).first(where: { $0.0 == tensor })?.1 else { return [] }
        return zip(values, t).map { ulpError($0, $1) }
    }
}
