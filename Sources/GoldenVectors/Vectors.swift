import CNNReference
import Crypto
import PrecisionOracle
import Foundation

/// The version written into every manifest, so a consumer knows which
/// generator produced the vectors.
public let generatorVersion = "cnnref 0.1.0"

/// One entry of `Vectors/manifest.json`.
public struct ManifestEntry: Equatable, Sendable {
    public var id: String
    public var layer: String
    public var path: String
    public var tags: [String]
    public var sha256: String
    /// The largest error of any value of the case, in ulps, against the 512-bit oracle.
    public var worstUlp: Double?

    public init(id: String, layer: String, path: String, tags: [String], sha256: String, worstUlp: Double? = nil) {
        self.id = id; self.layer = layer; self.path = path; self.tags = tags; self.sha256 = sha256; self.worstUlp = worstUlp
    }
}

public enum Manifest {
    public static let schema = "cnnref-manifest-1"
    public static let fileName = "manifest.json"

    /// Forward-mode cases (`cnnref-case-2`) have ids under this prefix.
    public static let forwardModePrefix = "jvp/"

    /// The manifest of `entries`: cases under `cases`, forward-mode cases (`jvp/…`,
    /// `cnnref-case-2`) under `jvp_cases` and network vectors (layer `network`) under
    /// `networks`: separate lists, so that a reader of `cases` sees only `cnnref-case-1`
    /// files, as before either existed.
    public static func json(_ entries: [ManifestEntry]) -> JSON {
        let networks = entries.filter { $0.layer == Network.id }
        let forward = entries.filter { $0.layer != Network.id && $0.id.hasPrefix(forwardModePrefix) }
        let cases = entries.filter { $0.layer != Network.id && !$0.id.hasPrefix(forwardModePrefix) }
        func list(_ entries: [ManifestEntry]) -> JSON {
            .array(entries.map { e in
                .object([("id", .string(e.id)), ("layer", .string(e.layer)), ("path", .string(e.path)),
                         ("tags", .array(e.tags.map(JSON.string))), ("sha256", .string(e.sha256))]
                        + (e.worstUlp.map { [("worst_ulp", JSON.number(String(format: "%.3f", $0)))] } ?? []))
            })
        }
        var members: [(String, JSON)] = [
            ("schema", .string(schema)),
            ("case_schema", .string(CaseFormat.schema)),
            ("generator", .string(generatorVersion)),
            ("cases", list(cases)),
        ]
        if !forward.isEmpty {
            members.append(("jvp_case_schema", .string(ForwardMode.schema)))
            members.append(("jvp_cases", list(forward)))
        }
        if !networks.isEmpty {
            members.append(("network_schema", .string(NetworkFormat.schema)))
            members.append(("networks", .array(networks.map { e in
                .object([("id", .string(e.id)), ("path", .string(e.path)), ("sha256", .string(e.sha256))])
            })))
        }
        return .object(members)
    }

    /// The network vectors a manifest lists (`networks`, absent before issue 15), as
    /// entries of layer `network`; errors name the field.
    public static func decodeNetworks(_ text: String) throws -> [ManifestEntry] {
        guard case .object = try JSON.parse(text) else { return [] }
        let json = try JSON.parse(text)
        guard let list = json["networks"] else { return [] }
        guard case .array(let items) = list else { throw CaseError("networks", "expected an array of network vectors, found \(list.typeName)") }
        return try items.enumerated().map { k, item in
            func field(_ name: String) throws -> String {
                guard case .string(let v)? = item[name] else { throw CaseError("networks[\(k)].\(name)", "expected a string") }
                return v
            }
            return ManifestEntry(id: try field("id"), layer: Network.id, path: try field("path"), tags: [], sha256: try field("sha256"))
        }
    }

    /// Reads a manifest; errors name the field.
    public static func decode(_ text: String) throws -> [ManifestEntry] {
        let json: JSON
        do { json = try JSON.parse(text) } catch { throw CaseError("", "malformed JSON: \(error)") }
        guard case .object = json else { throw CaseError("", "expected an object, found \(json.typeName)") }
        guard case .string(let s)? = json["schema"], s == schema else {
            throw CaseError("schema", "expected \"\(schema)\", found \(json["schema"].map { "\($0)" } ?? "nothing")")
        }
        guard case .array(let items)? = json["cases"] else { throw CaseError("cases", "expected an array of cases") }
        var listed: [(String, Int, JSON)] = items.enumerated().map { ("cases", $0, $1) }
        if let forward = json["jvp_cases"] {   // absent before issue 11's forward-mode vectors
            guard case .array(let more) = forward else { throw CaseError("jvp_cases", "expected an array of cases") }
            listed += more.enumerated().map { ("jvp_cases", $0, $1) }
        }
        var out: [ManifestEntry] = []
        for (list, k, item) in listed {
            func field(_ name: String) throws -> String {
                guard case .string(let v)? = item[name] else { throw CaseError("\(list)[\(k)].\(name)", "expected a string") }
                return v
            }
            var tags: [String] = []
            if case .array(let t)? = item["tags"] {
                for tag in t { if case .string(let s) = tag { tags.append(s) } }
            }
            var worst: Double? = nil
            if case .number(let w)? = item["worst_ulp"] { worst = Double(w) }
            out.append(ManifestEntry(id: try field("id"), layer: try field("layer"), path: try field("path"),
                                     tags: tags, sha256: try field("sha256"), worstUlp: worst))
        }
        return out
    }
}

public func sha256Hex(_ data: Data) -> String {
    SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
}

/// Writes the catalogue as golden vectors: evaluated cases, one file each, and the manifest.
public enum Generator {
    /// The file text of every case, in catalogue order, with its manifest entry.
    /// Network vectors (layer `network`, `networks/ID.json`) come after the cases.
    public static func render(_ catalogue: Catalogue = Catalogue()) -> [(ManifestEntry, String)] {
        renderCases(catalogue) + catalogue.networks.map { file in
            let text = try! file.evaluatedJSON().formatted()   // the catalogue is ours: a failure here is a bug
            return (ManifestEntry(id: "networks/\(file.id)", layer: Network.id, path: "networks/\(file.id).json", tags: [],
                                  sha256: sha256Hex(Data(text.utf8))), text)
        }
    }

    static func renderCases(_ catalogue: Catalogue) -> [(ManifestEntry, String)] {
        catalogue.cases.map { c in
            let evaluated = try! c.evaluated()   // the catalogue is ours: a failure here is a bug
            let text = evaluated.json.formatted()
            let worst = Oracle.measure([evaluated]).worstPerCase[c.id]
            let entry = ManifestEntry(id: c.id, layer: c.layer, path: "\(c.id).json", tags: c.tags,
                                      sha256: sha256Hex(Data(text.utf8)), worstUlp: worst)
            return (entry, text)
        }
    }

    /// Writes every case and the manifest under `directory`, replacing what is there.
    public static func write(to directory: URL, catalogue: Catalogue = Catalogue()) throws -> [ManifestEntry] {
        let fm = FileManager.default
        let rendered = render(catalogue)
        for path in Set(rendered.map { ($0.0.path as NSString).deletingLastPathComponent }) {
            let folder = directory.appendingPathComponent(path)
            if fm.fileExists(atPath: folder.path) { try fm.removeItem(at: folder) }
            try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        for (entry, text) in rendered {
            try Data(text.utf8).write(to: directory.appendingPathComponent(entry.path), options: .atomic)
        }
        let entries = rendered.map(\.0)
        try Data(Manifest.json(entries).formatted().utf8)
            .write(to: directory.appendingPathComponent(Manifest.fileName), options: .atomic)
        return entries
    }
}

/// One problem `verify` found.
public struct VerifyProblem: Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
}

/// Checks a vectors folder: every file against its manifest hash and against
/// a fresh evaluation, no file missing, none extra, none outside the folder.
public enum Verifier {
    /// The manifest's entries, the bytes of every listed file that could be read (by entry
    /// path), and the problems with the files themselves: a hash that differs, a file
    /// missing, not in the manifest, a symbolic link, or an entry pointing outside.
    /// `entries` are the cases; the network vectors (`networks`) are checked the same way
    /// and returned in `networks`.
    public static func scan(_ directory: URL, hashes: Bool = true) throws -> (entries: [ManifestEntry], files: [String: Data], problems: [VerifyProblem]) {
        let s = try scanAll(directory, hashes: hashes)
        return (s.entries, s.files, s.problems)
    }

    public static func scanAll(_ directory: URL, hashes: Bool = true) throws -> (entries: [ManifestEntry], networks: [ManifestEntry], files: [String: Data], problems: [VerifyProblem]) {
        let fm = FileManager.default
        let manifestURL = directory.appendingPathComponent(Manifest.fileName)
        guard let manifestData = fm.contents(atPath: manifestURL.path) else {
            throw CaseError(manifestURL.path, "no manifest: expected \(Manifest.fileName) in \(directory.path)")
        }
        let entries: [ManifestEntry], networks: [ManifestEntry]
        do {
            entries = try Manifest.decode(String(decoding: manifestData, as: UTF8.self))
            networks = try Manifest.decodeNetworks(String(decoding: manifestData, as: UTF8.self))
        } catch let e as CaseError {
            throw CaseError("\(manifestURL.path): \(e.field)", e.message)
        }
        var problems: [VerifyProblem] = []
        var files: [String: Data] = [:]
        var listed = Set<String>()
        let root = directory.standardizedFileURL.path
        for entry in entries + networks {
            let url = directory.appendingPathComponent(entry.path).standardizedFileURL
            guard !entry.path.hasPrefix("/"), url.path.hasPrefix(root + "/") else {
                problems.append(VerifyProblem(path: entry.path, message: "manifest entry \(entry.id) points outside \(root)"))
                continue
            }
            listed.insert(url.path)
            if let type = try? fm.attributesOfItem(atPath: url.path)[.type] as? FileAttributeType, type == .typeSymbolicLink {
                problems.append(VerifyProblem(path: entry.path, message: "is a symbolic link; vectors must be regular files"))
                continue
            }
            guard let data = fm.contents(atPath: url.path) else {
                problems.append(VerifyProblem(path: entry.path, message: "missing (listed in the manifest as \(entry.id))"))
                continue
            }
            files[entry.path] = data
            if hashes {
                let digest = sha256Hex(data)
                if digest != entry.sha256 {
                    problems.append(VerifyProblem(path: entry.path, message: "sha256 \(digest) differs from the manifest's \(entry.sha256)"))
                }
            }
        }
        // Files nobody listed.
        if let walker = fm.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey, .isSymbolicLinkKey]) {
            for case let url as URL in walker where url.pathExtension == "json" {
                let path = url.standardizedFileURL.path
                if path == manifestURL.standardizedFileURL.path || listed.contains(path) { continue }
                let relative = String(path.dropFirst(root.count + 1))
                problems.append(VerifyProblem(path: relative, message: "not in the manifest"))
            }
        }
        return (entries, networks, files, problems)
    }

    public static func verify(_ directory: URL, maxBytes: Int = CaseFormat.defaultMaxBytes, maxWork: Int = CaseFormat.defaultMaxWork) throws -> (checked: Int, problems: [VerifyProblem]) {
        let (entries, networks, files, fileProblems) = try scanAll(directory)
        var problems = fileProblems
        for entry in networks {
            if let data = files[entry.path], let problem = verifyNetwork(entry, data, maxBytes: maxBytes, maxWork: maxWork) { problems.append(problem) }
        }
        for entry in entries {
            guard let data = files[entry.path] else { continue }
            do {
                let c = try CaseDecoder(maxBytes: maxBytes, maxWork: maxWork).decode(text: String(decoding: data, as: UTF8.self))
                if c.id != entry.id {
                    problems.append(VerifyProblem(path: entry.path, message: "id \"\(c.id)\" differs from the manifest's \"\(entry.id)\""))
                }
                guard let stored = c.expected else {
                    problems.append(VerifyProblem(path: entry.path, message: "has no expected values"))
                    continue
                }
                var fresh = c
                fresh.expected = nil
                let recomputed = try fresh.evaluated()
                if let difference = firstDifference(stored, recomputed.expected!) {
                    problems.append(VerifyProblem(path: entry.path, message: "expected values differ from a fresh evaluation: \(difference)"))
                }
            } catch let e as CaseError {
                problems.append(VerifyProblem(path: entry.path, message: e.description))
            }
        }
        return (entries.count + networks.count, problems.sorted { $0.path < $1.path })
    }

    /// A network vector is the text `cnnref evaluate` prints for it: re-evaluating the file
    /// and comparing bytes checks every stored value.
    static func verifyNetwork(_ entry: ManifestEntry, _ data: Data, maxBytes: Int, maxWork: Int) -> VerifyProblem? {
        let text = String(decoding: data, as: UTF8.self)
        let file: NetworkFile
        let fresh: String
        do {
            file = try NetworkFile.decode(text: text, maxBytes: maxBytes)
            fresh = try file.evaluatedJSON(maxBytes: maxBytes, maxWork: maxWork).formatted()
        } catch {
            return VerifyProblem(path: entry.path, message: error.description)
        }
        if "networks/\(file.id)" != entry.id {
            return VerifyProblem(path: entry.path, message: "id \"\(file.id)\" differs from the manifest's \"\(entry.id)\"")
        }
        if file.expected == nil { return VerifyProblem(path: entry.path, message: "has no expected values") }
        if fresh == text { return nil }
        let a = fresh.split(separator: "\n", omittingEmptySubsequences: false), b = text.split(separator: "\n", omittingEmptySubsequences: false)
        var line = 0
        while line < min(a.count, b.count), a[line] == b[line] { line += 1 }
        return VerifyProblem(path: entry.path, message: "differs from a fresh evaluation from line \(line + 1)")
    }

    /// The first element where two expectations differ bitwise, named.
    public static func firstDifference(_ a: Expected, _ b: Expected) -> String? {
        for (section, x, y) in [("outputs", a.outputs, b.outputs), ("gradients", a.gradients, b.gradients)] {
            if x.map(\.name) != y.map(\.name) {
                return "\(section) are \(x.map(\.name)), expected \(y.map(\.name))"
            }
            for (p, q) in zip(x, y) {
                if p.tensor.shape != q.tensor.shape { return "\(section).\(p.name) has shape \(p.tensor.shape), expected \(q.tensor.shape)" }
                for i in 0..<p.tensor.count where p.tensor[i].bitPattern != q.tensor[i].bitPattern
                    && !(p.tensor[i].isNaN && q.tensor[i].isNaN) {
                    return "\(section).\(p.name)\(p.tensor.index(ofFlat: i)) is \(p.tensor[i]), a fresh evaluation gives \(q.tensor[i])"
                }
            }
        }
        return nil
    }
}

/// The golden cases of a vectors folder, in manifest order.
public enum VectorSet {
    /// Loads every case of the manifest. With `verify` (the default) the folder must match
    /// its manifest first — every hash, no file missing, none extra, no link, no entry
    /// outside — or the first problem is thrown, naming the file: a tampered vector is never
    /// judged against. Without it, only missing files are an error.
    public static func load(_ directory: URL, maxBytes: Int = CaseFormat.defaultMaxBytes, maxWork: Int = CaseFormat.defaultMaxWork, verify: Bool = true) throws -> [Case] {
        try loadAll(directory, maxBytes: maxBytes, maxWork: maxWork, verify: verify).cases
    }

    /// The cases and the network vectors (`networks`, in manifest order), checked as `load` checks.
    public static func loadAll(_ directory: URL, maxBytes: Int = CaseFormat.defaultMaxBytes, maxWork: Int = CaseFormat.defaultMaxWork, verify: Bool = true) throws -> (cases: [Case], networks: [NetworkFile]) {
        let (entries, networkEntries, files, problems) = try Verifier.scanAll(directory, hashes: verify)
        if let first = problems.sorted(by: { $0.path < $1.path }).first(where: { verify || $0.message.hasPrefix("missing") }) {
            let more = problems.count > 1 ? " (and \(problems.count - 1) more problems)" : ""
            throw CaseError(directory.appendingPathComponent(first.path).path,
                            "\(first.message)\(more): the vectors do not match \(Manifest.fileName) (run cnnref verify; --no-verify skips this check)")
        }
        func text(_ entry: ManifestEntry) throws -> (URL, String) {
            let url = directory.appendingPathComponent(entry.path)
            guard let data = files[entry.path] else { throw CaseError(url.path, "missing (listed in the manifest as \(entry.id))") }
            return (url, String(decoding: data, as: UTF8.self))
        }
        let cases = try entries.map { entry in
            let (url, text) = try text(entry)
            do { return try CaseDecoder(maxBytes: maxBytes, maxWork: maxWork).decode(text: text) } catch let e as CaseError {
                throw CaseError("\(url.path): \(e.field)", e.message)
            }
        }
        let networks = try networkEntries.map { entry in
            let (url, text) = try text(entry)
            do {
                let file = try NetworkFile.decode(text: text, maxBytes: maxBytes)
                // A golden network is judged by evaluating it: the values it was evaluated at must be there.
                if file.expected != nil { _ = try file.evaluationInputs(maxBytes: maxBytes, maxWork: maxWork) }
                return file
            } catch let e as CaseError {
                throw CaseError("\(url.path): \(e.field)", e.message)
            }
        }
        return (cases, networks)
    }
}
