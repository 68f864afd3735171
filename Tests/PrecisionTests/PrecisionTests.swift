import CNNReference
import Foundation
import GoldenVectors
import PrecisionOracle
import Testing

let vectors = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Vectors")

/// Every golden value against a 512-bit MPFR evaluation written independently
/// of the kernels: sums of products correctly rounded without exception, every
/// other value within its target.
@Suite struct PrecisionTests {
    @Test func everyGoldenValueMeetsItsTarget() throws {
        let cases = try VectorSet.load(vectors)
        let report = Oracle.measure(cases)
        #expect(report.layers.count == LayerRegistry.ids.count)
        for v in report.violations.prefix(10) {
            Issue.record("\(v.caseID) \(v.tensor)\(v.index): ours \(v.ours), oracle \(v.truth), \(String(format: "%.3f", v.ulps)) ulp > target \(Oracle.target(String(v.caseID.split(separator: "/")[0]))) ulp")
        }
        #expect(report.violations.isEmpty, "\(report.violations.count) values miss their target")
    }

    /// The oracle is not the code's own output: it disagrees with a deliberately
    /// wrong value by the expected number of ulps.
    @Test func theOracleSeesOneUlp() throws {
        let cases = try VectorSet.load(vectors)
        var c = try #require(cases.first { $0.id == "linear/n2-d3-m4-double" })
        let y = c.expected!.outputs[0].tensor
        c.expected!.outputs[0].tensor[0] = y[0].nextUp
        let report = Oracle.measure([c])
        #expect(report.worstPerCase[c.id]! >= 0.5 && report.worstPerCase[c.id]! <= 1.5)
        #expect(report.violations.count == 1 && report.violations[0].index == [0, 0])
    }
}
