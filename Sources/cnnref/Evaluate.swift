import ArgumentParser
import CNNReference

extension CNNRef {
    struct Evaluate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compute a case's outputs and gradients and print the complete case.",
            discussion: "Reads a cnnref-case-1 file (or - for standard input), without or with `expected`, and prints the case with every config field written out, its notes, and `expected` computed by the reference. A cnnref-network-1 file with every tensor's data, input.data and upstream gets `expected` with every node's output, the gradient reaching every node's output, and the gradients of the input and of every parameter (node.param).")

        @Argument(help: "The case file, or - for standard input.")
        var file: String

        @OptionGroup var limits: InputLimits

        func run() throws {
            let source = file == "-" ? "<stdin>" : file
            switch try readCaseOrNetwork(file, limits: limits) {
            case .network(let network):
                do { printOut(try network.evaluatedJSON(maxBytes: limits.maxBytes, maxWork: limits.maxWork).formatted()) } catch {
                    throw InputError(source, error)
                }
            case .testCase(let input):
                do { printOut(try input.evaluated().json.formatted()) } catch { throw InputError(source, error) }
            }
        }
    }
}
