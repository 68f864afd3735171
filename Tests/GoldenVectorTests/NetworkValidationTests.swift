import CNNReference
import Foundation
import GoldenVectors
import Testing

/// `cnnref validate` on network vectors: node by node and end to end. The engines here run
/// each node through the per-layer reference at the engine's own values and store the result
/// in a narrower format (a float32 or bfloat16 engine that rounds every stored intermediate),
/// so errors enter at every node and accumulate through the network as in a real run; the
/// mutants make one node wrong as engines have (issue 15's list).
@Suite struct NetworkValidationTests {
    static let names = Architectures.blockNames

    /// What one node of a mutant computes instead, given its case at the engine's values.
    typealias Forward = (_ node: NetworkFile.Node, _ c: Case) throws -> Tensor?
    typealias Backward = (_ node: NetworkFile.Node, _ gradients: [NamedTensor]) -> [NamedTensor]

    /// An engine storing every value rounded by `store`: forward node by node, then backward
    /// in reverse node order with each output's gradient the sum of its readers'.
    static func run(_ file: NetworkFile, store: (Double) -> Double = { $0 }, forward: Forward? = nil, backward: Backward? = nil,
                    sum: (([Tensor]) -> Tensor)? = nil) throws -> NetworkResult {
        let golden = try #require(file.expected)
        func stored(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, scalars: t.scalars.map(store)) }
        let x = Tensor(shape: file.inputShape, scalars: file.inputData!)
        var values: [String: Tensor] = [file.inputName: x]
        for (k, node) in file.nodes.enumerated() {
            let ins = node.inputs.map { values[$0]! }
            let c = try node.nodeCase(dataInputs: ins, upstream: golden.outputGradients[k].tensor)
            values[node.id] = stored(try forward?(node, c) ?? c.evaluated().expected!.outputs[0].tensor)
        }
        var contributions: [String: [Tensor]] = [:]
        var reaching: [String: Tensor] = [:]
        var gradients: [NamedTensor] = []
        for (k, node) in file.nodes.enumerated().reversed() {
            let upstream = k == file.nodes.count - 1 ? (file.upstream ?? Tensor(scalar: 1)) : stored((sum ?? Network.gradientSum)(contributions[node.id]!))
            reaching[node.id] = upstream
            var g = try node.nodeCase(dataInputs: node.inputs.map { values[$0]! }, upstream: upstream).evaluated().expected!.gradients
            g = backward?(node, g) ?? g
            for (name, source) in zip(node.dataInputNames, node.inputs) {
                contributions[source, default: []].append(g.first { $0.name == name }!.tensor)
            }
            for t in node.tensors where golden.gradients.contains(where: { $0.name == "\(node.id).\(t.name)" }) {
                gradients.insert(NamedTensor("\(node.id).\(t.name)", stored(g.first { $0.name == t.name }!.tensor)), at: 0)
            }
        }
        gradients.insert(NamedTensor(file.inputName, stored((sum ?? Network.gradientSum)(contributions[file.inputName]!))), at: 0)
        return NetworkResult(outputs: file.nodes.map { NamedTensor($0.id, values[$0.id]!) },
                             outputGradients: file.nodes.map { NamedTensor($0.id, reaching[$0.id]!) }, gradients: gradients)
    }

    /// Only what an engine without intermediates reports: the output and the gradients.
    static func endToEndOnly(_ r: NetworkResult) -> NetworkResult {
        NetworkResult(outputs: [r.outputs.last!], gradients: r.gradients)
    }

    static func judged(_ v: NetworkVerdict) -> Int { v.nodes.flatMap(\.tensors).filter { $0.status != .skipped }.count }

    @Test(arguments: names)
    func theGoldenValuesPassEveryTensorJudged(name: String) throws {
        let file = try NetworkVectorTests.load(name)
        let e = try #require(file.expected)
        let v = NetworkValidator.validate(file, result: NetworkResult(outputs: e.outputs, outputGradients: e.outputGradients, gradients: e.gradients), precision: .float64)
        #expect(v.status == .passed, "\(name): \(v.reason)")
        #expect(v.endToEnd.status == .passed && v.endToEnd.tensors.count == e.gradients.count + 1)
        // Every node output, every parameter gradient, every reaching gradient and the input's.
        #expect(Self.judged(v) == e.outputs.count + e.outputGradients.count - 1 + e.gradients.count, "\(name)")
    }

    /// An engine that stores every intermediate in float32 passes float32, node by node and
    /// end to end, and fails float64 both ways; with only the output and the gradients, the
    /// end-to-end bound alone still tells them apart.
    @Test(arguments: names)
    func float32StorageTellsPrecisionsApart(name: String) throws {
        let file = try NetworkVectorTests.load(name)
        let r = try Self.run(file, store: { Double(Float($0)) })
        let at32 = NetworkValidator.validate(file, result: r, precision: .float32)
        #expect(at32.status == .passed, "\(name) at float32: \(at32.reason)")
        let at64 = NetworkValidator.validate(file, result: r, precision: .float64)
        #expect(at64.status == .failed && at64.endToEnd.status == .failed, "\(name) at float64: \(at64.reason)")
        let only = Self.endToEndOnly(r)
        #expect(NetworkValidator.validate(file, result: only, precision: .float32).status == .passed, "\(name)")
        let v = NetworkValidator.validate(file, result: only, precision: .float64)
        #expect(v.status == .failed && v.failingNode == nil, "\(name): \(v.reason)")
    }

    /// A bfloat16-storing engine never passes as float32, end to end.
    @Test(arguments: names)
    func bfloat16StorageFailsFloat32(name: String) throws {
        let file = try NetworkVectorTests.load(name)
        let r = try Self.run(file, store: { FloatFormat.bfloat16.rounded($0) })
        let v = NetworkValidator.validate(file, result: Self.endToEndOnly(r), precision: .float32)
        #expect(v.status == .failed, "\(name): \(v.reason)")
        // float32 itself does not hold the network's inputs in bfloat16: the network is not applicable there.
        #expect(NetworkValidator.validate(file, result: r, precision: .bfloat16).status == .notApplicable)
    }

    /// One wrong node fails, named, and only the end-to-end verdict fails without intermediates.
    func expectNamed(_ name: String, _ node: String, forward: Forward? = nil, backward: Backward? = nil, sum: (([Tensor]) -> Tensor)? = nil,
                     precision: Precision = .float32) throws {
        let file = try NetworkVectorTests.load(name)
        let store: (Double) -> Double = precision == .float32 ? { Double(Float($0)) } : { $0 }
        let r = try Self.run(file, store: store, forward: forward, backward: backward, sum: sum)
        let v = NetworkValidator.validate(file, result: r, precision: precision)
        #expect(v.status == .failed && v.failingNode == node, "\(name): expected \(node) to be named, found \(v.failingNode ?? "none"): \(v.reason)")
        #expect(v.reason.contains(node))
        // Every other node's own computation passes: the error is the named node's.
        for u in v.nodes where u.node != node { #expect(u.status != .failed, "\(name): \(u.node) failed too") }
        let e2e = NetworkValidator.validate(file, result: Self.endToEndOnly(r), precision: precision)
        #expect(e2e.status == .failed && e2e.failingNode == nil, "\(name) end to end: \(e2e.reason)")
    }

    @Test func batchNormWithTheUnbiasedVarianceIsNamed() throws {
        // y = γ(x − μ)/√(σ²·m/(m − 1) + ε) + β in training mode.
        try expectNamed("resnet-basic-training", "bn1", forward: { node, c in
            guard node.id == "bn1" else { return nil }
            let x = c.inputs[0].tensor, s = x.shape
            let bn = try LayerRegistry.makeLayer(c) as! BatchNorm2D
            var y = Tensor(zeros: s)
            for ch in 0..<s[1] {
                let idx = bn.indices(s, ch), m = Double(idx.count)
                let mu = idx.reduce(0) { $0 + x[$1] } / m
                let unbiased = idx.reduce(0) { $0 + (x[$1] - mu) * (x[$1] - mu) } / (m - 1)
                for i in idx { y[i] = bn.weight[ch] * (x[i] - mu) / (unbiased + bn.eps).squareRoot() + bn.bias[ch] }
            }
            return y
        })
    }

    @Test func lrnWithAlphaNotDividedBySizeIsNamed() throws {
        try expectNamed("stem", "norm1", forward: { node, c in
            guard node.id == "norm1" else { return nil }
            var wrong = c
            let lrn = try LayerRegistry.makeLayer(c) as! LRN
            wrong.config = c.config.map { $0.0 == "alpha" ? ("alpha", .double(lrn.alpha * Double(lrn.size))) : $0 }
            return try wrong.evaluated().expected!.outputs[0].tensor
        })
    }

    @Test func aResidualAddedAfterTheReLUIsNamed() throws {
        try expectNamed("resnet-basic", "add", forward: { node, c in
            guard node.id == "add" else { return nil }
            var wrong = c
            wrong.inputs[0].tensor = ReLU().forward(c.inputs[0].tensor)
            return try wrong.evaluated().expected!.outputs[0].tensor
        })
    }

    @Test func aConvWeightGradientOffByOneElementIsNamed() throws {
        // A float64 engine whose conv2 dW is off by a relative 1e-9 in one element.
        try expectNamed("vgg-block", "conv2", backward: { node, g in
            guard node.id == "conv2" else { return g }
            return g.map { t in
                guard t.name == "weight" else { return t }
                var w = t.tensor
                w[7] *= 1 + 1e-9
                return NamedTensor(t.name, w)
            }
        }, precision: .float64)
    }

    @Test func aFanOutThatDropsAGradientIsNamedAsTheSum() throws {
        // The identity path's gradient lost: x receives only what conv1 sends back.
        try expectNamed("resnet-basic", "conv1+add", sum: { parts in parts[0] }, precision: .float64)
    }

    @Test func resultsFilesNameTheNetworkFieldThatIsWrong() throws {
        let file = try NetworkVectorTests.load("stem")
        let networks = ["networks/stem": file]
        func error(_ networkBlock: String) -> String {
            let text = #"{"engine": "e", "precision": "float64", "results": {}, "networks": \#(networkBlock)}"#
            do { _ = try ResultsFile.decode(text, cases: [:], networks: networks); return "" } catch { return "\(error)" }
        }
        #expect(error(#"{"networks/nope": {}}"#).hasPrefix("networks.networks/nope: unknown network"))
        #expect(error(#"{"networks/stem": {"outputs": {"conv9": {"shape": [1], "data": [0]}}}}"#).hasPrefix("networks.networks/stem.outputs.conv9: unknown tensor"))
        #expect(error(#"{"networks/stem": {"outputs": {"conv1": {"shape": [1], "data": [0]}}}}"#).contains("networks.networks/stem.outputs"))
        #expect(error(#"{"networks/stem": {"grads": {}}}"#).hasPrefix("networks.networks/stem.grads: unknown field"))
        #expect(error(#"[]"#).hasPrefix("networks: expected an object"))
        #expect(error(#"{"networks/stem": {"outputs": {}}}"#) == "")
    }

    /// A network the engine did not run is skipped, never passed; forward-only results are partial.
    @Test func missingResultsAreNeverPassed() throws {
        let file = try NetworkVectorTests.load("resnet-basic")
        #expect(NetworkValidator.validate(file, result: nil, precision: .float64).status == .skipped)
        let e = try #require(file.expected)
        let forward = NetworkValidator.validate(file, result: NetworkResult(outputs: e.outputs), precision: .float64)
        #expect(forward.status == .partial && forward.endToEnd.reason.hasPrefix("forward only"), "\(forward.reason)")
    }
}
