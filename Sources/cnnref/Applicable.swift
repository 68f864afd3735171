import ArgumentParser
import CNNReference
import Foundation
import GoldenVectors

extension CNNRef {
    struct Applicable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Count, per layer, the golden cases each precision applies to.",
            discussion: """
                A case applies to a precision when that precision's input format holds every input exactly and \
                its output format holds every golden value (Vectors/SCHEMA.md, Tags). Prints a Markdown table.
                """)

        @Argument(help: "The vectors folder.")
        var directory: String = "Vectors"

        func run() throws {
            let cases: [Case]
            do { cases = try VectorSet.load(URL(fileURLWithPath: directory)) } catch { throw InputError("", "\(error)") }
            let precisions = Precision.tightestFirst
            var rows: [(String, Int, [Int])] = []
            for layer in LayerRegistry.ids {
                let own = cases.filter { $0.layer == layer }
                guard !own.isEmpty else { continue }
                rows.append((layer, own.count, precisions.map { p in own.filter { Validator.inapplicability($0, p) == nil }.count }))
            }
            rows.append(("all", cases.count, precisions.indices.map { k in rows.reduce(0) { $0 + $1.2[k] } }))
            printOut("| layer | cases | " + precisions.map(\.rawValue).joined(separator: " | ") + " |\n")
            printOut("| --- | --- | " + precisions.map { _ in "---" }.joined(separator: " | ") + " |\n")
            for (layer, n, counts) in rows {
                printOut("| \(layer) | \(n) | " + counts.map(String.init).joined(separator: " | ") + " |\n")
            }
        }
    }
}
