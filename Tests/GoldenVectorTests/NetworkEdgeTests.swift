import CNNReference
import Foundation
import GoldenVectors
import GradientCheck
import Testing

/// Network validation at the edges: seeded networks whose input, parameters and upstream hold
/// ±0, subnormals, NaN, ±∞ and values near the top of the range (a residual block with a
/// fan-out: conv 1×1 → relu → conv 3×3 → add(·, x) → relu → max pool). The engines are
/// `NetworkValidationTests.run` (each node through the per-layer reference at the engine's own
/// values, stored in the engine's format), so the verdicts are checked against computations
/// that share nothing with the bounds.
@Suite struct NetworkEdgeTests {
    /// Values for the float64 family: every class of edge, with magnitudes up to the top of the range.
    static let edges64: [Double] = [0, -0.0, 5e-324, -5e-324, 0x1p-1022, -0x1.8p-1040, 1e-300, 0.75, -1, 3,
                                    1e300, -1.7e308, .nan, .infinity, -.infinity]
    /// Values exact in float32, small enough that no float32 sum in the block overflows: ±0,
    /// float32 subnormals, NaN, ±∞.
    static let edges32: [Double] = [0, -0.0, 0x1p-149, -0x1p-140, 0x1p-126, 0.75, -1, 3, 0x1p20, -0x1p-20,
                                    .nan, .infinity, -.infinity]

    static func json(_ v: Double) -> String {
        v.isNaN ? "\"NaN\"" : v.isInfinite ? (v > 0 ? "\"Infinity\"" : "\"-Infinity\"") : "\(v)"
    }

    /// The block with every tensor drawn from `pool` (a third of the elements; the rest signed
    /// uniform in [1/2, 2) at 8 bits, so the sums are not all non-finite), with its golden values.
    static func network(seed: UInt, pool: [Double]) throws -> NetworkFile {
        let rng = SeededRandom(seed: seed)
        func values(_ n: Int) -> String {
            (0..<n).map { _ in
                json(rng.below(3) == 0 ? pool[rng.below(pool.count)] : rng.sign() * (0.5 + Double(rng.below(384)) / 256))
            }.joined(separator: ", ")
        }
        func tensor(_ shape: [Int]) -> String { "{\"shape\": \(shape), \"data\": [\(values(shape.reduce(1, *)))]}" }
        let text = """
        {"schema": "cnnref-network-1", "id": "edges-\(seed)", "description": "adversarial",
         "input": {"name": "x", "shape": [1, 2, 3, 3], "data": [\(values(18))]},
         "nodes": [
          {"id": "conv1", "layer": "conv2d", "inputs": ["x"], "tensors": {"weight": \(tensor([2, 2, 1, 1])), "bias": \(tensor([2]))}},
          {"id": "relu1", "layer": "relu", "inputs": ["conv1"]},
          {"id": "conv2", "layer": "conv2d", "inputs": ["relu1"], "config": {"padding": [1, 1, 1, 1]},
           "tensors": {"weight": \(tensor([2, 2, 3, 3])), "bias": \(tensor([2]))}},
          {"id": "add", "layer": "add", "inputs": ["conv2", "x"]},
          {"id": "relu2", "layer": "relu", "inputs": ["add"]},
          {"id": "pool", "layer": "maxpool2d", "inputs": ["relu2"], "config": {"kernel": [2, 2]}}],
         "upstream": \(tensor([1, 2, 2, 2]))}
        """
        var file = try NetworkFile.decode(text: text)
        file.expected = try file.evaluated()
        return file
    }

    static let seeds: [UInt] = Array(1...40)

    /// The reference's own values pass at float64, every tensor judged, whatever the edges; at
    /// float32 a network with a value float32 does not hold is not applicable, and says which.
    @Test(arguments: seeds)
    func theGoldenValuesPassAtTheEdges(seed: UInt) throws {
        let file = try Self.network(seed: seed, pool: Self.edges64)
        let e = try #require(file.expected)
        let v = NetworkValidator.validate(file, result: NetworkResult(outputs: e.outputs, outputGradients: e.outputGradients, gradients: e.gradients),
                                          precision: .float64)
        #expect(v.status == .passed && v.endToEnd.status == .passed, "seed \(seed): \(v.reason)")
        #expect(NetworkValidationTests.judged(v) == e.outputs.count + e.outputGradients.count - 1 + e.gradients.count)
        let at32 = NetworkValidator.validate(file, result: NetworkResult(outputs: e.outputs), precision: .float32)
        if at32.status == .notApplicable { #expect(at32.reason.contains("not exact in float32"), "\(at32.reason)") }
    }

    /// An engine storing every value in float32, on networks with ±0, float32 subnormals, NaN
    /// and ±∞ in every tensor: no node fails node by node (no false failure at the kinks or in
    /// the underflow range), and end to end no element with a finite bound exceeds it. An
    /// element whose bound is not finite (a float32 sum that may overflow, or a value that
    /// depends on one) is reported as not judged, which fails, never passes.
    @Test(arguments: seeds)
    func float32StorageIsNeverFailedWhereABoundExists(seed: UInt) throws {
        let file = try Self.network(seed: seed, pool: Self.edges32)
        let r = try NetworkValidationTests.run(file, store: { Double(Float($0)) })
        for result in [r, NetworkValidationTests.endToEndOnly(r)] {
            let v = NetworkValidator.validate(file, result: result, precision: .float32)
            #expect(v.failingNode == nil, "seed \(seed): \(v.reason)")
            for t in v.endToEnd.tensors where t.status == .failed {
                #expect(t.ratio <= 1 && t.detail.hasPrefix("cannot be judged"), "seed \(seed): \(t.name) \(t.detail) \(String(describing: t.worst))")
            }
            if v.status == .failed { #expect(v.endToEnd.tensors.contains { $0.detail.hasPrefix("cannot be judged") }) }
        }
    }

    /// Most of those networks have a bound for every element, and pass.
    @Test func float32StorageMostlyPassesOutright() throws {
        let passed = try Self.seeds.filter { seed in
            let file = try Self.network(seed: seed, pool: Self.edges32)
            return NetworkValidator.validate(file, result: try NetworkValidationTests.run(file, store: { Double(Float($0)) }), precision: .float32).status == .passed
        }
        #expect(passed.count >= 30, "\(passed.count) of \(Self.seeds.count) passed")
    }

    /// NaN, +∞ or −∞ where the reference is finite, in one element of one node's output or of
    /// one parameter gradient: the network fails, that node is named, and the element is the
    /// worst of its tensor.
    @Test(arguments: seeds)
    func aNonFiniteValueWhereTheReferenceIsFiniteIsNamed(seed: UInt) throws {
        let file = try Self.network(seed: seed, pool: Self.edges64)
        let rng = SeededRandom(seed: seed + 1000)
        let bad: Double = [.nan, .infinity, -.infinity][Int(seed % 3)]
        let k = rng.below(file.nodes.count)
        let node = file.nodes[k]
        var element: [Int]?
        let inForward = seed % 2 == 0 || node.tensors.isEmpty
        let r = try NetworkValidationTests.run(file, forward: { n, c in
            guard inForward, n.id == node.id else { return nil }
            var y = try c.evaluated().expected!.outputs[0].tensor
            guard let i = (0..<y.count).first(where: { y[$0].isFinite }) else { return y }
            element = y.index(ofFlat: i)
            y[i] = bad
            return y
        }, backward: { n, g in
            guard !inForward, n.id == node.id else { return g }
            var g = g
            guard let p = g.firstIndex(where: { $0.name == "weight" }),
                  let i = (0..<g[p].tensor.count).first(where: { g[p].tensor[$0].isFinite }) else { return g }
            element = g[p].tensor.index(ofFlat: i)
            g[p].tensor[i] = bad
            return g
        })
        guard let element else { return }   // every value of that tensor non-finite already: nothing to break
        let v = NetworkValidator.validate(file, result: r, precision: .float64)
        #expect(v.status == .failed && v.failingNode == node.id, "seed \(seed): \(bad) in \(node.id) \(element): named \(v.failingNode ?? "none"): \(v.reason)")
        let name = inForward ? "outputs.\(node.id)" : "gradients.\(node.id).weight"
        let unit = v.nodes.first { $0.node == node.id }
        let t = unit?.tensors.first { $0.name == name }
        #expect(t?.status == .failed && t?.worst?.index == element, "seed \(seed): \(name) \(String(describing: t?.worst))")
    }

    /// A conv output whose terms cancel near the top of the range (1.5e308 − 1.5e308) has no
    /// finite bound: the exact value passes, and any other is failed as unjudgeable, never passed;
    /// the same for the end-to-end gradient an upstream of ±1.7e308 sends back.
    @Test func anElementWithoutAFiniteBoundIsNeverPassed() throws {
        let text = """
        {"schema": "cnnref-network-1", "id": "overflow", "description": "edges",
         "input": {"name": "x", "shape": [1, 2, 1, 1], "data": [1, 1]},
         "nodes": [
          {"id": "conv", "layer": "conv2d", "inputs": ["x"], "tensors": {"weight": {"shape": [2, 2, 1, 1], "data": [1.5e308, -1.5e308, 1, 1]},
           "bias": {"shape": [2], "data": [0, 0]}}},
          {"id": "relu", "layer": "relu", "inputs": ["conv"]}],
         "upstream": {"shape": [1, 2, 1, 1], "data": [1.7e308, -1.7e308]}}
        """
        var file = try NetworkFile.decode(text: text)
        let e = try file.evaluated()
        file.expected = e
        #expect(NetworkValidator.validate(file, result: NetworkResult(outputs: e.outputs, outputGradients: e.outputGradients, gradients: e.gradients),
                                          precision: .float64).status == .passed)
        var off = e
        off.outputs[0].tensor[0] = 0x1p-1074   // conv's y[0] is exactly 0
        let v = NetworkValidator.validate(file, result: NetworkResult(outputs: off.outputs, outputGradients: off.outputGradients, gradients: off.gradients),
                                          precision: .float64)
        #expect(v.status == .failed && v.failingNode == "conv", "\(v.reason)")
        let t = v.nodes.first { $0.node == "conv" }?.tensors.first { $0.name == "outputs.conv" }
        #expect(t?.status == .failed && (t?.detail.contains("cannot be judged") ?? false), "\(String(describing: t))")
        // relu's input y[0] is exactly 0 with no finite bound, so either piece may pass u[0] = 1.7e308:
        // dL/dx = Wᵀ(0, −1.7e308) is finite, but its end-to-end bound carries 1.5e308·1.7e308 = ∞.
        var g = e
        let dx = try #require(g.gradients.firstIndex { $0.name == "x" })
        if g.gradients[dx].tensor[1].isFinite {
            g.gradients[dx].tensor[1] = g.gradients[dx].tensor[1].nextUp
            let w = NetworkValidator.validate(file, result: NetworkResult(outputs: [e.outputs.last!], gradients: g.gradients), precision: .float64)
            #expect(w.status == .failed, "\(w.reason)")
        }
    }

    /// A golden network vector without the values it was evaluated at (`input.data` removed,
    /// read with --no-verify) is refused when the vectors are loaded, naming the file and the
    /// field; never a trap in validation.
    @Test func aNetworkVectorWithoutItsInputIsRefusedNamingTheField() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-edges-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.copyItem(at: vectors, to: dir)
        defer { try? FileManager.default.removeItem(at: dir) }
        let stem = dir.appendingPathComponent("networks/stem.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: stem)) as! [String: Any]
        var input = json["input"] as! [String: Any]
        input["data"] = nil
        json["input"] = input
        try JSONSerialization.data(withJSONObject: json).write(to: stem)
        #expect(throws: CaseError.self) { _ = try VectorSet.loadAll(dir, verify: false) }
        do { _ = try VectorSet.loadAll(dir, verify: false) } catch {
            #expect("\(error)".hasSuffix("networks/stem.json: input.data: missing: evaluating the network needs the input's elements"), "\(error)")
        }
        var file = try NetworkVectorTests.load("stem")
        file.inputData = nil
        let v = NetworkValidator.validate(file, result: NetworkResult(outputs: file.expected!.outputs), precision: .float64)
        #expect(v.status == .skipped && v.reason.contains("input.data"), "\(v.reason)")
    }
}
