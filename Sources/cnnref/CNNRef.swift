import ArgumentParser
import CNNReference
import GoldenVectors
import Foundation

/// The command-line tool: thin; it parses, calls the library, prints.
///
/// Exit status: 0 when everything checked passed, 1 when something was checked
/// and failed, 2 for bad input (a file, a field or an argument), with one line
/// on standard error that names it.
@main
struct CNNRef: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cnnref",
        abstract: "Reference CNN layers in Double: evaluate cases, check gradients, generate, verify and validate golden vectors, measure their precision.",
        subcommands: [Evaluate.self, Arch.self, Gradcheck.self, Generate.self, Verify.self, Validate.self, PrecisionCommand.self, Applicable.self, Bench.self])

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as InputError {
            FileHandle.standardError.write(Data("cnnref: \(error)\n".utf8))
            Foundation.exit(2)
        } catch let failure as CheckFailed {
            if !failure.message.isEmpty { FileHandle.standardError.write(Data("cnnref: \(failure.message)\n".utf8)) }
            Foundation.exit(1)
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }
            // Usage errors: one line, status 2 like every other bad input.
            var message = fullMessage(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
            FileHandle.standardError.write(Data("cnnref: \(message)\n".utf8))
            Foundation.exit(2)
        }
    }
}

/// Bad input: a file that cannot be read or parsed, or a field that is wrong.
struct InputError: Error, CustomStringConvertible {
    var file: String
    var message: String
    var description: String { file.isEmpty ? message : "\(file): \(message)" }
    init(_ file: String, _ message: String) {
        self.file = file
        self.message = message
    }
    init(_ file: String, _ error: CaseError) { self.init(file, error.description) }
}

/// Something was checked and did not pass (exit status 1).
struct CheckFailed: Error {
    var message = ""
}

/// The limit every command that reads cases shares.
struct InputLimits: ParsableArguments {
    @Option(help: "Refuse a case whose tensors would need more than this many bytes (checked before allocating).")
    var maxBytes: Int = CaseFormat.defaultMaxBytes
    @Option(help: "Refuse a case whose layer would run more than this many loop steps in one pass (terms visited inside the input + outputs + inputs; checked before any work).")
    var maxWork: Int = CaseFormat.defaultMaxWork

    func validate() throws {
        guard maxBytes >= 1 else { throw ValidationError("--max-bytes must be at least 1, found \(maxBytes)") }
        guard maxWork >= 1 else { throw ValidationError("--max-work must be at least 1, found \(maxWork)") }
    }

    var decoder: CaseDecoder { CaseDecoder(maxBytes: maxBytes, maxWork: maxWork) }

    /// The vectors folder's cases, its manifest verified unless `verify` is false.
    func loadVectors(_ directory: String, verify: Bool) throws -> [Case] {
        try loadVectorsAndNetworks(directory, verify: verify).cases
    }

    func loadVectorsAndNetworks(_ directory: String, verify: Bool) throws -> (cases: [Case], networks: [NetworkFile]) {
        do { return try VectorSet.loadAll(URL(fileURLWithPath: directory), maxBytes: maxBytes, maxWork: maxWork, verify: verify) } catch {
            throw InputError("", "\(error)")
        }
    }
}

/// Reads a file, or standard input for `-`.
func readText(_ path: String) throws -> String {
    let data: Data
    if path == "-" {
        data = FileHandle.standardInput.readDataToEndOfFile()
    } else {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw InputError(path, "no such file")
        }
        guard !isDirectory.boolValue else { throw InputError(path, "is a directory, expected a case file") }
        guard let d = FileManager.default.contents(atPath: path) else { throw InputError(path, "cannot read the file") }
        data = d
    }
    guard let text = String(data: data, encoding: .utf8) else { throw InputError(path, "not UTF-8 text") }
    return text
}

/// Reads and decodes a case file; every problem becomes one `InputError` line.
func readCase(_ path: String, limits: InputLimits) throws -> Case {
    let text = try readText(path)
    do {
        return try limits.decoder.decode(text: text)
    } catch let error as CaseError {
        throw InputError(path == "-" ? "<stdin>" : path, error)
    }
}

/// What a file (or - for standard input) holds: a case, or a network file when it declares
/// `cnnref-network-1`. Read once, so standard input works for both.
enum CaseOrNetwork {
    case testCase(Case)
    case network(NetworkFile)
}

func readCaseOrNetwork(_ path: String, limits: InputLimits) throws -> CaseOrNetwork {
    let text = try readText(path)
    let name = path == "-" ? "<stdin>" : path
    let json: JSON
    do { json = try JSON.parse(text) } catch { throw InputError(name, "malformed JSON: \(error)") }
    do throws(CaseError) {
        return NetworkFile.declares(json) ? .network(try NetworkFile.decode(json, maxBytes: limits.maxBytes)) : .testCase(try limits.decoder.decode(json))
    } catch {
        throw InputError(name, error)
    }
}

func printOut(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}
