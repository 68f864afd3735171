import ArgumentParser
import CNNReference
import Foundation
import GoldenVectors

extension CNNRef {
    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the golden-vector catalogue: one file per case and manifest.json.",
            discussion: "Deterministic: the same commit writes the same bytes. Replaces the layer folders it writes.")

        @Option(help: "Folder to write into.")
        var output: String = "Vectors"

        func run() throws {
            let url = URL(fileURLWithPath: output)
            let entries: [ManifestEntry]
            do { entries = try Generator.write(to: url) } catch {
                throw InputError(output, "cannot write: \(error.localizedDescription)")
            }
            let networks = entries.filter { $0.layer == Network.id }.count
            printOut("wrote \(entries.count - networks) cases, \(networks) network vectors and \(Manifest.fileName) to \(output)\n")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check golden vectors against their manifest hashes and a fresh evaluation.",
            discussion: "Names every case that differs, every file missing or not in the manifest, and every entry outside the folder. Exit 1 when anything differs.")

        @Argument(help: "The vectors folder.")
        var directory: String = "Vectors"

        @OptionGroup var limits: InputLimits

        func run() throws {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw InputError(directory, "no such folder")
            }
            let result: (checked: Int, problems: [VerifyProblem])
            do { result = try Verifier.verify(URL(fileURLWithPath: directory), maxBytes: limits.maxBytes, maxWork: limits.maxWork) } catch let e as CaseError {
                throw InputError("", e.description)
            }
            for p in result.problems { printOut("\(directory)/\(p)\n") }
            printOut("\(result.checked) cases checked, \(result.problems.count) problems\n")
            if !result.problems.isEmpty { throw CheckFailed() }
        }
    }
}
