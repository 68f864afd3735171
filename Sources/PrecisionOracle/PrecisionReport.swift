import CNNReference

/// Where one value of a case stands against the oracle.
public struct ValueError: Sendable {
    public var caseID: String
    public var tensor: String     // "outputs.y", "gradients.weight"
    public var index: [Int]
    public var ours: Double
    public var truth: Double      // the oracle's value rounded to Double
    public var ulps: Double
    /// The same bits as the oracle's value rounded to nearest (±0 told apart, NaN matches NaN).
    public var correctlyRounded: Bool
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
    /// Every value that is not the correctly rounded exact value, worst first.
    public var violations: [ValueError]
}

extension Oracle {
    /// Every value of every layer must be the correctly rounded exact value: the
    /// oracle's value rounded once (the ulp error, kept for reports, cannot tell the
    /// two sides of a tie apart; the comparison of bits can).
    public static func target(_ layer: String) -> Double { 0.5 }

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
                        let exact = isCorrectlyRounded(tensor[i], t)
                        let error = ValueError(caseID: c.id, tensor: "\(section).\(name)", index: tensor.index(ofFlat: i),
                                               ours: tensor[i], truth: t.double, ulps: e, correctlyRounded: exact)
                        layer.values += 1
                        if exact { layer.correctlyRounded += 1 }
                        if layer.worst == nil || e > layer.worst!.ulps { layer.worst = error }
                        caseWorst = max(caseWorst, e)
                        if !exact { violations.append(error) }
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
