import CNNReference
import Foundation
import GoldenVectors
import GradientCheck
import Testing

/// The whole-network vectors of `Vectors/networks/`: complete, each stored value what the
/// per-layer reference gives at the stored values it depends on, and gradient-checked.
@Suite struct NetworkVectorTests {
    static func load(_ name: String) throws -> NetworkFile {
        let url = vectors.appendingPathComponent("networks/\(name).json")
        return try NetworkFile.decode(text: String(decoding: try Data(contentsOf: url), as: UTF8.self))
    }

    static func tensor(_ list: [NamedTensor], _ name: String) -> Tensor? { list.first { $0.name == name }?.tensor }

    static func same(_ a: Tensor, _ b: Tensor) -> Bool {
        a.shape == b.shape && (0..<a.count).allSatisfy { a[$0].bitPattern == b[$0].bitPattern || (a[$0].isNaN && b[$0].isNaN) }
    }

    @Test func theManifestListsOneVectorPerBlock() throws {
        let text = String(decoding: try Data(contentsOf: vectors.appendingPathComponent(Manifest.fileName)), as: UTF8.self)
        let entries = try Manifest.decodeNetworks(text)
        #expect(entries.map(\.id) == Architectures.blockNames.map { "networks/\($0)" })
        // The case list is untouched: a reader of `cases` sees cnnref-case-1 files only.
        #expect(try Manifest.decode(text).allSatisfy { $0.layer != Network.id && !$0.path.hasPrefix("networks/") })
        // The signature blocks the issue names, and a whole network ending in the loss.
        for name in ["stem", "vgg-block", "inception", "resnet-basic", "resnet-basic-projection", "resnet-bottleneck",
                     "resnext-bottleneck", "dense-block", "small-resnet"] {
            #expect(Architectures.blockNames.contains(name), "\(name)")
        }
        #expect(try Self.load("small-resnet").nodes.last!.layer == "softmax_cross_entropy")
    }

    /// Every node, rebuilt as a case of its layer from the vector's stored values (its inputs'
    /// stored outputs, its parameters, the stored gradient reaching it) and evaluated by the
    /// per-layer reference: its output and its parameters' gradients are the stored ones bit
    /// for bit, and the gradient reaching each output is the rounded exact sum (the `add`
    /// case) of what its readers' cases give, so each value is correctly rounded given the
    /// stored values it comes from.
    @Test(arguments: Architectures.blockNames)
    func everyStoredValueIsTheLayerReferenceAtTheStoredInputs(name: String) throws {
        let file = try Self.load(name)
        let e = try #require(file.expected)
        #expect(e.outputs.map(\.name) == file.nodes.map(\.id))
        #expect(e.outputGradients.map(\.name) == file.nodes.map(\.id))
        let x = Tensor(shape: file.inputShape, scalars: try #require(file.inputData))
        func value(_ id: String) -> Tensor { id == file.inputName ? x : Self.tensor(e.outputs, id)! }
        var contributions: [String: [Tensor]] = [:]
        var parameterNames = [file.inputName]
        for node in file.nodes {
            let spec = try #require(LayerRegistry.spec(node.layer))
            let dataNames = spec.variadicPrefix.map { p in node.inputs.indices.map { "\(p)\($0)" } } ?? [spec.inputs[0]]
            let inputs = zip(dataNames, node.inputs).map { NamedTensor($0, value($1)) }
                + node.tensors.map { NamedTensor($0.name, Tensor(shape: $0.shape, scalars: $0.data!)) }
            let reaching = Self.tensor(e.outputGradients, node.id)!
            let c = try Case(id: node.id, layer: node.layer, config: node.config, inputs: inputs, labels: node.labels,
                             upstream: spec.isLoss ? nil : reaching).evaluated()
            let expected = try #require(c.expected)
            #expect(Self.same(expected.outputs[0].tensor, Self.tensor(e.outputs, node.id)!), "\(name) \(node.id): output")
            for (j, source) in node.inputs.enumerated() {
                contributions[source, default: []].append(Self.tensor(expected.gradients, dataNames[j])!)
            }
            let buffers: Set<String> = ["running_mean", "running_var", "mask"]
            for t in node.tensors where !buffers.contains(t.name) {
                parameterNames.append("\(node.id).\(t.name)")
                #expect(Self.same(Self.tensor(expected.gradients, t.name)!, Self.tensor(e.gradients, "\(node.id).\(t.name)")!),
                        "\(name) \(node.id).\(t.name): gradient")
            }
        }
        #expect(e.gradients.map(\.name) == parameterNames)
        func summed(_ parts: [Tensor]) throws -> Tensor {
            if parts.count == 1 { return parts[0] }
            let c = try Case(id: "sum", layer: "add", inputs: parts.enumerated().map { NamedTensor("x\($0.offset)", $0.element) },
                             upstream: parts[0]).evaluated()
            return c.expected!.outputs[0].tensor
        }
        for node in file.nodes.dropLast() {
            let parts = try #require(contributions[node.id])
            #expect(Self.same(try summed(parts), Self.tensor(e.outputGradients, node.id)!), "\(name) \(node.id): gradient reaching it (\(parts.count) readers)")
        }
        #expect(Self.same(try summed(contributions[file.inputName]!), Self.tensor(e.gradients, file.inputName)!), "\(name): input gradient")
    }

    /// GSL's derivatives of the whole network along random directions of the input and of
    /// every parameter at once (element by element, `cnnref gradcheck Vectors/networks/*.json`,
    /// takes minutes in a debug build; the signature blocks are checked element by element in
    /// NetworkTests), with the vector's stored upstream.
    @Test(arguments: Architectures.blockNames)
    func networkVectorsPassTheGradientCheckAlongDirections(name: String) throws {
        let file = try Self.load(name)
        let net = try file.network()
        let x = Tensor(shape: file.inputShape, scalars: file.inputData!)
        let report = try GradientChecker.check(net, input: x, upstream: file.upstream, caseID: name,
                                               configuration: GradientCheckConfiguration(elementwise: false, directions: 6))
        for t in report.tensors { #expect(t.passed, "\(name) \(t.name): \(t.failures.map(\.summary))") }
        #expect(report.structural.allSatisfy { $0.passed }, "\(name): \(report.structural.filter { !$0.passed }.map(\.detail))")
        #expect(report.tensors.map(\.name) == ["directions"] && report.tensors[0].checked == 6, "\(name): \(report.tensors.map(\.name))")
    }

    @Test func aTamperedNetworkVectorIsNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-verify-net-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: vectors, to: dir)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("networks/resnet-basic.json")
        var text = try String(contentsOf: url, encoding: .utf8)
        let marker = "\"output_gradients\": {\n      \"conv1\": {\n        \"shape\": [1, 4, 6, 6],\n        \"data\": ["
        let range = try #require(text.range(of: marker))
        // The first stored gradient reaching conv1, its last digit changed.
        let end = text[range.upperBound...].firstIndex(of: ",")!
        let digit = text.index(before: end)
        text.replaceSubrange(digit...digit, with: text[digit] == "1" ? "2" : "1")
        try text.write(to: url, atomically: true, encoding: .utf8)
        try "{}".write(to: dir.appendingPathComponent("networks/stray.json"), atomically: true, encoding: .utf8)
        let problems = try Verifier.verify(dir).problems.map(\.description)
        #expect(problems.contains { $0.hasPrefix("networks/resnet-basic.json") && $0.contains("sha256") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("networks/resnet-basic.json") && $0.contains("fresh evaluation") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("networks/stray.json") && $0.contains("not in the manifest") }, "\(problems)")
        #expect(problems.count == 3, "\(problems)")
    }
}
