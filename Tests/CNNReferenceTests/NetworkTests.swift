import Foundation
import GradientCheck
import Testing
@testable import CNNReference

/// Networks (issue 15): a network file's layer against exact integer arithmetic written
/// here, its gradients against GSL's finite differences, its shape pass on a network no
/// machine could allocate, and its errors.
@Suite struct NetworkTests {
    /// A node of a test network: layer, inputs, config and tensors (with data).
    struct N {
        var id: String, layer: String, inputs: [String]
        var config: [(String, JSON)] = []
        var tensors: [(String, Tensor)] = []
        var shapesOnly = false
    }

    static func file(_ input: [Int], _ nodes: [N]) -> String {
        JSON.object([
            ("schema", .string("cnnref-network-1")), ("id", .string("test")),
            ("input", .object([("shape", .array(input.map(JSON.int)))])),
            ("nodes", .array(nodes.map { n in
                .object([("id", .string(n.id)), ("layer", .string(n.layer)), ("inputs", .array(n.inputs.map(JSON.string))),
                         ("config", .object(n.config)),
                         ("tensors", .object(n.tensors.map { ($0.0, n.shapesOnly ? .object([("shape", .array($0.1.shape.map(JSON.int)))]) : $0.1.json) }))])
            })),
        ]).formatted()
    }

    static func network(_ input: [Int], _ nodes: [N]) throws -> Network {
        try NetworkFile.decode(text: file(input, nodes)).network()
    }

    static func t(_ shape: [Int], _ values: [Double]) -> Tensor { Tensor(shape: shape, scalars: values) }

    static func random(_ shape: [Int], _ rng: SeededRandom) -> Tensor {
        Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in rng.signedUnit() })
    }

    // MARK: - Forward and backward against exact arithmetic

    /// y = fc2(relu(fc1(x))) + x with small integers: every value is exact in Double, so
    /// the loops below (the chain rule written out by hand) are an exact oracle.
    @Test func residualChainIsTheChainRuleExactly() throws {
        let w1: [[Double]] = [[1, -2, 0, 3], [2, 1, -1, 0], [-1, 0, 2, 1], [0, 3, 1, -2]], b1: [Double] = [1, 0, -3, 2]
        let w2: [[Double]] = [[2, 0, 1, -1], [-1, 1, 0, 2], [0, -2, 3, 1], [1, 1, 1, 1]], b2: [Double] = [0, 1, -1, 2]
        let x: [Double] = [1, -2, 3, 4], u: [Double] = [1, -1, 2, 3]
        let net = try Self.network([1, 4], [
            N(id: "fc1", layer: "linear", inputs: ["x"], tensors: [("weight", Self.t([4, 4], w1.flatMap { $0 })), ("bias", Self.t([4], b1))]),
            N(id: "relu", layer: "relu", inputs: ["fc1"]),
            N(id: "fc2", layer: "linear", inputs: ["relu"], tensors: [("weight", Self.t([4, 4], w2.flatMap { $0 })), ("bias", Self.t([4], b2))]),
            N(id: "add", layer: "add", inputs: ["fc2", "x"]),
        ])
        func affine(_ w: [[Double]], _ b: [Double], _ v: [Double]) -> [Double] {
            (0..<4).map { i -> Double in (0..<4).reduce(b[i]) { (s: Double, j: Int) -> Double in s + w[i][j] * v[j] } }
        }
        func transposed(_ w: [[Double]], _ v: [Double]) -> [Double] {
            (0..<4).map { j -> Double in (0..<4).reduce(0.0) { (s: Double, i: Int) -> Double in s + w[i][j] * v[i] } }
        }
        let h = affine(w1, b1, x)
        let r = h.map { max($0, 0) }
        let y = zip(affine(w2, b2, r), x).map { $0 + $1 }
        #expect(h.contains { $0 < 0 } && h.contains { $0 > 0 }, "the ReLU masks something")
        #expect(net.forward(Self.t([1, 4], x)).scalars == y)

        // Backward: the identity path and fc2's path both reach x, and their sum is dL/dx.
        let dr = transposed(w2, u)
        let dh = (0..<4).map { h[$0] > 0 ? dr[$0] : 0 }
        let dx = zip(transposed(w1, dh), u).map { $0 + $1 }
        let g = net.backward(Self.t([1, 4], x), outputGradient: Self.t([1, 4], u))
        #expect(g.input.scalars == dx)
        #expect(net.parameters.map(\.name) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
        let dw1: [Double] = (0..<4).flatMap { i in x.map { dh[i] * $0 } }
        let dw2: [Double] = (0..<4).flatMap { i in r.map { u[i] * $0 } }
        #expect(g.parameters[0].scalars == dw1)
        #expect(g.parameters[1].scalars == dh)
        #expect(g.parameters[2].scalars == dw2)
        #expect(g.parameters[3].scalars == u)
        #expect(net.parameterCount == 40)
        // Work: fc 4·4 terms + 4 outputs + 24 inputs (x, weight, bias) = 44, relu 4 + 4 + 4, fc2 44, add 4 + 4 + 8.
        #expect(Work.of(net, input: [1, 4], output: [1, 4]).total == 44 + 12 + 44 + 16)
    }

    /// The fan-out sum is the exact sum rounded once: 1e16 + 1 − 1e16 reaches x as 1,
    /// where adding the contributions in a float loop gives 0 (or 2).
    @Test func fanOutGradientsAreOneRoundedSum() throws {
        // y = x·1e16 (fc), x·1 (identity), x·(−1e16) (fc): three paths from x, summed by one add.
        let net = try Self.network([1, 1], [
            N(id: "big", layer: "linear", inputs: ["x"], tensors: [("weight", Self.t([1, 1], [1e16])), ("bias", Self.t([1], [0]))]),
            N(id: "minus", layer: "linear", inputs: ["x"], tensors: [("weight", Self.t([1, 1], [-1e16])), ("bias", Self.t([1], [0]))]),
            N(id: "sum", layer: "add", inputs: ["big", "x", "minus"]),
        ])
        let g = net.backward(Self.t([1, 1], [3]), outputGradient: Self.t([1, 1], [1]))
        #expect(g.input.scalars == [1])
        #expect((1e16 + 1) + -1e16 != 1, "a float loop would not give 1")
    }

    // MARK: - Gradient checks (GSL finite differences)

    /// A ResNet-style basic block (conv, ReLU, conv, identity add, ReLU) and an
    /// Inception-style module (1x1 and 3x3 branches and a pool branch, concatenated),
    /// every element of the input and of every parameter.
    @Test(arguments: ["residual", "inception"])
    func smallNetworksPassTheGradientCheck(kind: String) throws {
        let rng = SeededRandom(seed: 15)
        let conv: (String, String, Int, Int, Int, Int) -> N = { id, x, cin, cout, k, pad in
            N(id: id, layer: "conv2d", inputs: [x], config: [("padding", .array(Array(repeating: .int(pad), count: 4)))],
              tensors: [("weight", Self.random([cout, cin, k, k], rng)), ("bias", Self.random([cout], rng))])
        }
        let nodes: [N] = kind == "residual" ? [
            conv("conv1", "x", 2, 2, 3, 1), N(id: "relu1", layer: "relu", inputs: ["conv1"]),
            conv("conv2", "relu1", 2, 2, 3, 1), N(id: "add", layer: "add", inputs: ["conv2", "x"]),
            N(id: "relu2", layer: "relu", inputs: ["add"]),
        ] : [
            conv("b1", "x", 2, 2, 1, 0), conv("b2", "x", 2, 3, 3, 1),
            N(id: "pool", layer: "maxpool2d", inputs: ["x"], config: [("kernel", .array([.int(3), .int(3)])), ("padding", .array(Array(repeating: .int(1), count: 4)))]),
            conv("b3", "pool", 2, 1, 1, 0),
            N(id: "cat", layer: "concat", inputs: ["b1", "b2", "b3"], config: [("axis", .int(1))]),
        ]
        let net = try Self.network([1, 2, 4, 4], nodes)
        let x = Self.random([1, 2, 4, 4], rng)
        let report = try GradientChecker.check(net, input: x, caseID: kind)
        #expect(report.tensors.map(\.name) == ["x"] + net.parameters.map(\.name))
        for t in report.tensors {
            #expect(t.passed, "\(kind) \(t.name): \(t.failures.map(\.summary))")
            #expect(t.checked == (t.name == "x" ? 32 : net.parameters.first { $0.name == t.name }!.tensor.count))
        }
        #expect(report.structural.allSatisfy { $0.passed })
    }

    /// The signature blocks of the architectures as networks, each gradient-checked element by
    /// element (GSL): an AlexNet stem (strided conv, ReLU, LRN, overlapping 3x3/2 max pool), a
    /// ResNet basic block with batch norm (evaluation and training), a ResNeXt grouped bottleneck
    /// with a projection shortcut, a DenseNet dense block with its transition, and a small
    /// network ending in a linear layer and softmax cross-entropy.
    @Test(arguments: ["stem", "basic-eval", "basic-train", "bottleneck", "dense", "classifier"])
    func signatureBlocksPassTheGradientCheck(kind: String) throws {
        let rng = SeededRandom(seed: 1515)
        let pad: (Int) -> (String, JSON) = { p in ("padding", .array(Array(repeating: .int(p), count: 4))) }
        func conv(_ id: String, _ x: String, _ cin: Int, _ cout: Int, _ k: Int, stride: Int = 1, padding: Int = 0, groups: Int = 1, bias: Bool = false) -> N {
            N(id: id, layer: "conv2d", inputs: [x], config: [("stride", .array([.int(stride), .int(stride)])), pad(padding), ("groups", .int(groups))],
              tensors: [("weight", Self.random([cout, cin / groups, k, k], rng))] + (bias ? [("bias", Self.random([cout], rng))] : []))
        }
        func bn(_ id: String, _ x: String, _ c: Int, training: Bool = false) -> N {
            let variance = Tensor(shape: [c], scalars: (0..<c).map { _ in 0.5 + rng.unit() })
            return N(id: id, layer: "batchnorm2d", inputs: [x], config: [("training", .bool(training)), ("eps", .double(1e-5)), ("momentum", .double(0.1))],
                     tensors: [("weight", Self.random([c], rng)), ("bias", Self.random([c], rng)), ("running_mean", Self.random([c], rng)), ("running_var", variance)])
        }
        func relu(_ id: String, _ x: String) -> N { N(id: id, layer: "relu", inputs: [x]) }
        let input: [Int]
        let nodes: [N]
        switch kind {
        case "stem":
            input = [1, 2, 9, 9]
            nodes = [conv("conv1", "x", 2, 3, 3, stride: 2, bias: true), relu("relu1", "conv1"),
                     N(id: "norm1", layer: "lrn", inputs: ["relu1"], config: [("size", .int(3)), ("alpha", .double(0.5)), ("beta", .double(0.75)), ("k", .double(2))]),
                     N(id: "pool1", layer: "maxpool2d", inputs: ["norm1"], config: [("kernel", .array([.int(3), .int(3)])), ("stride", .array([.int(2), .int(2)]))])]
        case "basic-eval", "basic-train":
            let training = kind == "basic-train"
            input = [training ? 2 : 1, 2, 4, 4]
            nodes = [conv("conv1", "x", 2, 2, 3, padding: 1), bn("bn1", "conv1", 2, training: training), relu("relu1", "bn1"),
                     conv("conv2", "relu1", 2, 2, 3, padding: 1), bn("bn2", "conv2", 2, training: training),
                     N(id: "add", layer: "add", inputs: ["bn2", "x"]), relu("relu_out", "add")]
        case "bottleneck":
            input = [1, 4, 4, 4]
            nodes = [conv("conv1", "x", 4, 4, 1), bn("bn1", "conv1", 4), relu("relu1", "bn1"),
                     conv("conv2", "relu1", 4, 4, 3, stride: 2, padding: 1, groups: 2), bn("bn2", "conv2", 4), relu("relu2", "bn2"),
                     conv("conv3", "relu2", 4, 6, 1), bn("bn3", "conv3", 6),
                     conv("downsample.0", "x", 4, 6, 1, stride: 2), bn("downsample.1", "downsample.0", 6),
                     N(id: "add", layer: "add", inputs: ["bn3", "downsample.1"]), relu("relu_out", "add")]
        case "dense":
            input = [1, 2, 4, 4]
            nodes = [bn("l1.norm1", "x", 2), relu("l1.relu1", "l1.norm1"), conv("l1.conv1", "l1.relu1", 2, 2, 1),
                     bn("l1.norm2", "l1.conv1", 2), relu("l1.relu2", "l1.norm2"), conv("l1.conv2", "l1.relu2", 2, 1, 3, padding: 1),
                     N(id: "l2.concat", layer: "concat", inputs: ["x", "l1.conv2"], config: [("axis", .int(1))]),
                     bn("l2.norm1", "l2.concat", 3), relu("l2.relu1", "l2.norm1"), conv("l2.conv2", "l2.relu1", 3, 1, 3, padding: 1),
                     N(id: "concat", layer: "concat", inputs: ["x", "l1.conv2", "l2.conv2"], config: [("axis", .int(1))]),
                     bn("t.norm", "concat", 4), relu("t.relu", "t.norm"), conv("t.conv", "t.relu", 4, 2, 1),
                     N(id: "t.pool", layer: "avgpool2d", inputs: ["t.conv"], config: [("kernel", .array([.int(2), .int(2)])), ("stride", .array([.int(2), .int(2)])), ("count_include_pad", .bool(true))])]
        default:
            input = [2, 1, 4, 4]
            nodes = [conv("conv", "x", 1, 2, 3, padding: 1, bias: true), relu("relu", "conv"),
                     N(id: "pool", layer: "maxpool2d", inputs: ["relu"], config: [("kernel", .array([.int(2), .int(2)])), ("stride", .array([.int(2), .int(2)]))]),
                     N(id: "flatten", layer: "flatten", inputs: ["pool"]),
                     N(id: "fc", layer: "linear", inputs: ["flatten"], tensors: [("weight", Self.random([3, 8], rng)), ("bias", Self.random([3], rng))]),
                     N(id: "loss", layer: "softmax_cross_entropy", inputs: ["fc"], config: [("reduction", .string("mean"))])]
        }
        var text = Self.file(input, nodes)
        if kind == "classifier" { text = text.replacingOccurrences(of: "\"layer\": \"softmax_cross_entropy\",", with: "\"layer\": \"softmax_cross_entropy\", \"labels\": [2, 0],") }
        let net = try NetworkFile.decode(text: text).network()
        let x = Self.random(input, rng)
        let report = try GradientChecker.check(net, input: x, caseID: kind)
        #expect(report.tensors.map(\.name) == ["x"] + net.parameters.map(\.name))
        for t in report.tensors { #expect(t.passed && t.checked > 0, "\(kind) \(t.name): \(t.failures.map(\.summary))") }
        #expect(report.structural.allSatisfy { $0.passed }, "\(report.structural.filter { !$0.passed }.map(\.detail))")
        if kind == "classifier" { #expect(try net.outputShape(forInput: input) == []) }
        if kind.hasPrefix("basic") {
            #expect(net.buffers.map(\.name) == ["bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.running_var"])
            #expect(net.auxiliaryOutputShapes(forInput: input).map(\.0) == (kind == "basic-train" ? net.buffers.map(\.name) : []))
        }
    }

    /// A ReLU whose backward forgets its mask.
    struct MasklessReLU: Layer {
        static let id = "relu"
        var parameters: [NamedTensor] = []
        func outputShape(forInput s: [Int]) throws(CaseError) -> [Int] { s }
        func forward<A: Accumulator>(_ x: Tensor, accumulator: A.Type) -> Tensor { ReLU().forward(x, accumulator: A.self) }
        func backward(_ x: Tensor, outputGradient dy: Tensor) -> Gradients { Gradients(input: dy) }
        func activeSet(_ x: Tensor) -> [Int] { ReLU().activeSet(x) }
    }

    /// One wrong node: the checker fails the tensors its error reaches (x and fc1's
    /// parameters, upstream of it) and passes fc2's, downstream of it.
    @Test func aWrongNodeFailsExactlyTheTensorsUpstreamOfIt() throws {
        let rng = SeededRandom(seed: 3)
        var net = try Self.network([3, 4], [
            N(id: "fc1", layer: "linear", inputs: ["x"], tensors: [("weight", Self.random([5, 4], rng)), ("bias", Self.random([5], rng))]),
            N(id: "relu", layer: "relu", inputs: ["fc1"]),
            N(id: "fc2", layer: "linear", inputs: ["relu"], tensors: [("weight", Self.random([2, 5], rng)), ("bias", Self.random([2], rng))]),
        ])
        let x = Self.random([3, 4], rng)
        #expect(try GradientChecker.check(net, input: x).passed)
        net.nodes[1] = Network.Node(id: "relu", layer: MasklessReLU(), inputs: [0])
        let report = try GradientChecker.check(net, input: x)
        let failed = report.tensors.filter { !$0.passed }.map(\.name)
        #expect(failed == ["x", "fc1.weight", "fc1.bias"])
    }

    // MARK: - Shapes without elements

    /// A linear layer of 2⁴⁰ weights (8 TiB of doubles): the shape pass counts them without
    /// allocating one, and `network()` refuses for want of data.
    @Test func theShapePassAllocatesNoElements() throws {
        let text = """
            {"schema": "cnnref-network-1", "id": "huge", "input": {"shape": [2, 1048576]}, "nodes": [
             {"id": "fc", "layer": "linear", "inputs": ["x"], "tensors": {"weight": {"shape": [1048576, 1048576]}, "bias": {"shape": [1048576]}}}]}
            """
        let file = try NetworkFile.decode(text: text)
        let s = try file.summary()
        #expect(s.parameters == (1 << 40) + (1 << 20))
        #expect(s.multiplyAdds == 2 << 40)
        #expect(s.nodes[0].outputShape == [2, 1048576])
        var refused: CaseError? = nil
        do { _ = try file.network() } catch { refused = error }
        #expect(refused == CaseError("nodes[0] (fc).tensors.weight.data", "missing: this file describes an architecture (shapes only); evaluating the network needs every tensor's data"))
    }

    /// The lecture: ten 5x5 filters, stride 1, pad 2 on 32x32x3 give 32x32x10, 10·(5·5·3 + 1) = 760
    /// parameters and 32·32·10·(5·5·3) = 768,000 multiply-adds.
    @Test func theLectureConvolution() throws {
        let text = """
            {"schema": "cnnref-network-1", "id": "lecture", "input": {"shape": [1, 3, 32, 32]}, "nodes": [
             {"id": "conv", "layer": "conv2d", "inputs": ["x"], "config": {"padding": [2, 2, 2, 2]},
              "tensors": {"weight": {"shape": [10, 3, 5, 5]}, "bias": {"shape": [10]}}}]}
            """
        let s = try NetworkFile.decode(text: text).summary()
        #expect(s.nodes[0].outputShape == [1, 10, 32, 32])
        #expect(s.parameters == 10 * (5 * 5 * 3 + 1) && s.parameters == 760)
        #expect(s.multiplyAdds == 32 * 32 * 10 * (5 * 5 * 3) && s.multiplyAdds == 768_000)
        #expect(s.buffers == 0 && s.nodes[0].notes.isEmpty)
    }

    // MARK: - Errors

    static let base = """
        {"schema": "cnnref-network-1", "id": "t", "input": {"shape": [1, 1, 7, 7]}, "nodes": [
         {"id": "conv", "layer": "conv2d", "inputs": ["x"], "config": {"stride": [3, 3]}, "tensors": {"weight": {"shape": [2, 1, 3, 3]}}},
         {"id": "relu", "layer": "relu", "inputs": ["conv"]}]}
        """

    static func error(_ text: String, strict: Bool = false) -> String? {
        do { _ = try NetworkFile.decode(text: text).summary(strict: strict); return nil } catch { return error.description }
    }

    /// The lecture's 7x7 input, 3x3 filter, stride 3: (7 − 3)/3 + 1 = 2.33 — a note, and
    /// with `strict` the error, naming the node.
    @Test func aConfigurationThatDoesNotFit() throws {
        let s = try NetworkFile.decode(text: Self.base).summary()
        #expect(s.nodes[0].outputShape == [1, 2, 2, 2])
        #expect(s.nodes[0].notes.first?.contains("(7 - 3 + 0)/3 + 1 = 2.33") == true)
        #expect(Self.error(Self.base, strict: true)
                == "nodes[0] (conv): doesn't fit: conv2d: 3x3 filter does not tile 7x7 input at stride 3: (7 - 3 + 0)/3 + 1 = 2.33; the last row and column are never used (--strict)")
        #expect(Self.error(Self.base.replacingOccurrences(of: "[2, 1, 3, 3]", with: "[2, 1, 9, 9]"))
                == "nodes[0] (conv).tensors.weight.shape: conv2d: no window fits: the filter spans 9 rows (dilation 1) but the padded input has 7 (7 + 0 + 0): (7 - 9 + 0)/3 + 1 = 0.33 < 1")
    }

    @Test(arguments: [
        ("\"inputs\": [\"conv\"]", "\"inputs\": [\"nothing\"]", "nodes[1] (relu).inputs[0]: unknown input \"nothing\"; expected the network input \"x\" or an earlier node (conv)"),
        ("\"id\": \"relu\"", "\"id\": \"conv\"", "nodes[1].id: \"conv\" is already the id of an earlier node; ids are unique"),
        ("\"inputs\": [\"conv\"]", "\"inputs\": [\"x\"]", "nodes[0] (conv): no later node reads this node's output; only the last node (relu) is the network's output"),
        ("\"inputs\": [\"conv\"]", "\"inputs\": [\"conv\", \"x\"]", "nodes[1] (relu).inputs: relu takes one input, found 2"),
        ("[2, 1, 3, 3]", "[2, 2, 3, 3]", "nodes[0] (conv).tensors.weight.shape: expected [K, C/groups, FH, FW] = [2, 1/1 = 1, FH, FW], found [2, 2, 3, 3]"),
        ("\"stride\": [3, 3]", "\"stride\": [0, 3]", "nodes[0] (conv).config.stride[0]: expected an integer in 1...2147483648, found 0"),
        ("\"stride\": [3, 3]", "\"strides\": [3, 3]", "nodes[0] (conv).config.strides: unknown field; expected one of stride, padding, dilation, groups"),
        ("{\"weight\": {\"shape\": [2, 1, 3, 3]}}", "{}", "nodes[0] (conv).tensors.weight: missing required tensor of conv2d (tensors: weight, bias)"),
        ("\"layer\": \"relu\"", "\"layer\": \"relu6\"", "nodes[1] (relu).layer: unknown layer \"relu6\"; expected one of"),
        ("[1, 1, 7, 7]", "[1, 1, 0, 7]", "input.shape[2]: expected a dimension in 1...2147483648, found 0"),
        ("\"cnnref-network-1\"", "\"cnnref-case-1\"", "schema: expected \"cnnref-network-1\", found \"cnnref-case-1\""),
    ])
    func badNetworkFilesNameTheNodeAndField(find: String, replace: String, message: String) {
        let text = Self.base.replacingOccurrences(of: find, with: replace)
        #expect(text != Self.base)
        let e = Self.error(text)
        #expect(e?.hasPrefix(message) == true, "\(e ?? "no error")")
    }

    /// The formats stay apart: a case reader refuses a network file by its schema, and back.
    @Test func caseReadersRefuseNetworkFiles() {
        var caseError: CaseError? = nil
        do { _ = try CaseDecoder().decode(text: Self.base) } catch { caseError = error as? CaseError }
        #expect(caseError == CaseError("schema", "expected \"cnnref-case-1\" (or \"cnnref-case-2\", with tangents), found \"cnnref-network-1\""))
    }

    /// A concat whose second input has the wrong height names that input's node.
    @Test func aMismatchedConcatNamesTheInputNode() {
        let text = """
            {"schema": "cnnref-network-1", "id": "t", "input": {"shape": [1, 1, 4, 4]}, "nodes": [
             {"id": "pool", "layer": "maxpool2d", "inputs": ["x"], "config": {"kernel": [2, 2], "stride": [2, 2]}},
             {"id": "cat", "layer": "concat", "inputs": ["x", "pool"], "config": {"axis": 1}}]}
            """
        #expect(Self.error(text) == "nodes[1] (cat).inputs[1] (pool).shape: expected [1, *, 4, 4] (x0's shape [1, 1, 4, 4] except on axis 1), found [1, 1, 2, 2]")
    }
}
