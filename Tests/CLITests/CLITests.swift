import Foundation
import Testing

/// The built `cnnref`, next to the test bundle.
let cnnref: URL = {
    var dir = Bundle.main.bundleURL
    for _ in 0..<4 where !FileManager.default.fileExists(atPath: dir.appendingPathComponent("cnnref").path) {
        dir = dir.deletingLastPathComponent()
    }
    return dir.appendingPathComponent("cnnref")
}()

let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs cnnref with `arguments`, feeding `input` on standard input.
func run(_ arguments: [String], input: String? = nil) throws -> Run {
    let process = Process()
    process.executableURL = cnnref
    process.arguments = arguments
    process.currentDirectoryURL = repository
    let out = Pipe(), err = Pipe(), inp = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = inp
    try process.run()
    if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
    try inp.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Run(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}
