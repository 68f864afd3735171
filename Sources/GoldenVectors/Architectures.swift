import CNNReference
import Foundation

/// The architectures `cnnref arch` knows by name: network files shipped as resources
/// (`Networks/NAME.json`, shapes only), so the networks are data, not code.
public enum Architectures {
    /// The folder of the shipped network files.
    public static var directory: URL { Bundle.module.url(forResource: "Networks", withExtension: nil)! }

    /// The names, sorted.
    public static var names: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// The file of architecture `name`, if it is one.
    public static func url(_ name: String) -> URL? {
        names.contains(name) ? directory.appendingPathComponent("\(name).json") : nil
    }

    /// The decoded network file of architecture `name`.
    public static func load(_ name: String) throws -> NetworkFile {
        guard let url = url(name) else {
            throw CaseError("", "unknown architecture \"\(name)\"; expected one of \(names.joined(separator: ", "))")
        }
        return try NetworkFile.decode(text: String(decoding: try Data(contentsOf: url), as: UTF8.self))
    }

    /// The small signature blocks and the small whole network (`Networks/blocks/NAME.json`,
    /// shapes only, written by `Tools/python/cnnref_networks.py`): the structures of the
    /// whole-network golden vectors and of the engines' network check. Sorted by name.
    public static var blockNames: [String] {
        let folder = directory.appendingPathComponent("blocks")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// The decoded block file `name` (one of `blockNames`).
    public static func loadBlock(_ name: String) throws -> NetworkFile {
        let url = directory.appendingPathComponent("blocks/\(name).json")
        return try NetworkFile.decode(text: String(decoding: try Data(contentsOf: url), as: UTF8.self))
    }
}
