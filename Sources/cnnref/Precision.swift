import ArgumentParser
import CNNReference
import Foundation
import GoldenVectors
import PrecisionOracle

extension CNNRef {
    struct PrecisionCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "precision",
            abstract: "Measure every golden value in ulps against a 512-bit MPFR oracle.",
            discussion: """
                Prints per layer: values checked, the worst error in ulps (and where), and how many are \
                correctly rounded; then a naive float64 conv2d and softmax cross-entropy on the same cases. \
                Exit 1 when a value misses its target (0.5 ulp for sums of products, 1 ulp otherwise).
                """)

        @Argument(help: "The vectors folder.")
        var directory: String = "Vectors"

        @Flag(help: "Do not check the vectors against the manifest's SHA-256 hashes (the report says so).")
        var noVerify = false

        @OptionGroup var limits: InputLimits

        func run() throws {
            let cases = try limits.loadVectors(directory, verify: !noVerify)
            if noVerify { printOut(ValidationText.notVerified + "\n") }
            let report = Oracle.measure(cases)
            printOut("layer                   values  correctly rounded  worst ulp  target  worst at\n")
            for l in report.layers {
                let w = l.worst
                printOut(l.id.padding(toLength: 22, withPad: " ", startingAt: 0)
                         + String(l.values).leftPadded(8) + String(l.correctlyRounded).leftPadded(19)
                         + String(format: "%11.3f", w?.ulps ?? 0) + String(format: "%8.1f", Oracle.target(l.id))
                         + "  " + (w.map { "\($0.caseID) \($0.tensor)\($0.index)" } ?? "") + "\n")
            }
            let total = report.layers.reduce(0) { $0 + $1.values }
            let rounded = report.layers.reduce(0) { $0 + $1.correctlyRounded }
            printOut("all                     \(String(total).leftPadded(6))\(String(rounded).leftPadded(19))\n")

            printOut("\nnaive float64 loops on the same cases (outputs), ulp error: worst / median\n")
            for (layer, naive) in [("conv2d", NaiveFloat64.conv2d), ("softmax_cross_entropy", NaiveFloat64.crossEntropy)] {
                var theirs: [Double] = [], ours: [Double] = []
                var worstCase = ("", 0.0)
                for c in cases where c.layer == layer {
                    guard let output = c.expected?.outputs.first else { continue }
                    let errors = Oracle.errors(of: naive(c), tensor: output.name, output: true, in: c)
                    if let m = errors.max(), m > worstCase.1 { worstCase = (c.id, m) }
                    theirs += errors
                    ours += Oracle.errors(of: output.tensor.scalars, tensor: output.name, output: true, in: c)
                }
                func stats(_ v: [Double]) -> String {
                    let s = v.sorted()
                    return String(format: "%.3f / %.3f", s.last ?? 0, s.isEmpty ? 0 : s[s.count / 2])
                }
                printOut("\(layer.padding(toLength: 22, withPad: " ", startingAt: 0)) naive \(stats(theirs))   reference \(stats(ours))   (\(theirs.count) values; naive worst in \(worstCase.0))\n")
            }
            if !report.violations.isEmpty {
                for v in report.violations.prefix(10) {
                    printOut("MISSED: \(v.caseID) \(v.tensor)\(v.index): ours \(v.ours), oracle \(v.truth), \(String(format: "%.3f", v.ulps)) ulp\n")
                }
                throw CheckFailed()
            }
        }
    }
}
