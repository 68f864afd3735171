import ArgumentParser
import CNNReference
import Foundation
import GoldenVectors

extension CNNRef {
    struct Arch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a network's shapes, parameters, buffers and multiply-adds, node by node, and the totals.",
            discussion: """
                NAME is a shipped architecture (\(Architectures.names.joined(separator: ", "))) or FILE a \
                cnnref-network-1 file (shapes suffice). Parameters are the learnable scalars (PyTorch's \
                parameters()), buffers batch norm's running statistics; multiply-adds count one per product \
                of a convolution, linear or maxout layer over the dense window, padding taps included, bias \
                additions and every other layer not (Vectors/SCHEMA.md, "Networks"). Computed from shapes alone.
                """)

        @Argument(help: "An architecture name or a network file (- for standard input).")
        var network: String

        @Option(help: "The input's sizes after N, e.g. 3,224,224 (default: the file's input shape).")
        var input: String?

        @Flag(help: "A window that does not tile its input is an error (the lecture's \"doesn't fit\"), not a note.")
        var strict = false

        @Option(help: "Output format: text or json.")
        var format: OutputFormat = .text

        func validate() throws {
            if let input, sizes(input) == nil {
                throw ValidationError("--input expects comma-separated positive integers such as 3,224,224, found \"\(input)\"")
            }
        }

        func sizes(_ text: String) -> [Int]? {
            let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
            return parts.map { $0! }
        }

        func run() throws {
            let (source, file) = try load()
            let summary: ArchitectureSummary
            do throws(CaseError) {
                var shape: [Int]? = nil
                if let input { shape = try file.input(replacingTrailing: sizes(input)!) }
                summary = try file.summary(input: shape, strict: strict)
            } catch {
                throw InputError(source, error)
            }
            switch format {
            case .text: printOut(ArchText.render(summary))
            case .json: printOut(ArchText.json(summary).formatted())
            }
        }

        /// The network file: a path that exists (or -), else a shipped architecture's name.
        func load() throws -> (String, NetworkFile) {
            let isFile = network == "-" || FileManager.default.fileExists(atPath: network)
            guard isFile || Architectures.url(network) != nil else {
                throw InputError(network, "no such file, and not an architecture name (\(Architectures.names.joined(separator: ", ")))")
            }
            let source = network == "-" ? "<stdin>" : network
            let text = isFile ? try readText(network) : String(decoding: try Data(contentsOf: Architectures.url(network)!), as: UTF8.self)
            do { return (source, try NetworkFile.decode(text: text)) } catch { throw InputError(source, error) }
        }
    }
}

enum ArchText {
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (k, c) in digits.enumerated() {
            if k > 0 && (digits.count - k) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    /// One row per node: a node reading anything but the node before it shows its inputs.
    static func render(_ s: ArchitectureSummary) -> String {
        var rows: [[String]] = [["node", "layer", "inputs", "output", "parameters", "buffers", "multiply-adds"]]
        var previous = "x"
        for n in s.nodes {
            // DenseNet's concatenations read up to 24 nodes: the first, the last and the count.
            let inputs = n.inputs == [previous] ? ""
                : n.inputs.count <= 3 ? n.inputs.joined(separator: " + ") : "\(n.inputs[0]) + … + \(n.inputs.last!) (\(n.inputs.count))"
            rows.append([n.id, n.layer, inputs, n.outputShape.shapeText, grouped(n.parameters), grouped(n.buffers), grouped(n.multiplyAdds)])
            previous = n.id
        }
        rows.append(["total", "", "", "", grouped(s.parameters), grouped(s.buffers), grouped(s.multiplyAdds)])
        let widths = (0..<7).map { c in rows.map { $0[c].count }.max()! }
        var text = "\(s.network): input \(s.input.shapeText), \(s.nodes.count) node\(s.nodes.count == 1 ? "" : "s")\n"
        for row in rows {
            let cells = row.enumerated().map { c, cell in
                let pad = String(repeating: " ", count: widths[c] - cell.count)
                return c < 4 ? cell + pad : pad + cell
            }
            text += cells.joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }
        let notes = s.nodes.flatMap { n in n.notes.map { "  \(n.id): \($0)" } }
        if !notes.isEmpty { text += "notes:\n" + notes.joined(separator: "\n") + "\n" }
        return text
    }

    static func json(_ s: ArchitectureSummary) -> JSON {
        .object([
            ("network", .string(s.network)),
            ("input", .array(s.input.map(JSON.int))),
            ("nodes", .array(s.nodes.map { n in
                .object([("id", .string(n.id)), ("layer", .string(n.layer)), ("inputs", .array(n.inputs.map(JSON.string))),
                         ("output_shape", .array(n.outputShape.map(JSON.int))), ("parameters", .int(n.parameters)),
                         ("buffers", .int(n.buffers)), ("multiply_adds", .int(n.multiplyAdds)),
                         ("notes", .array(n.notes.map(JSON.string)))])
            })),
            ("parameters", .int(s.parameters)), ("buffers", .int(s.buffers)), ("multiply_adds", .int(s.multiplyAdds)),
        ])
    }
}
