import Foundation
import Testing

/// `cnnref arch`: the whole text of the lecture's example, the json totals, --input,
/// --strict's "doesn't fit", and bad input (one line, exit 2).
@Suite struct ArchCLITests {
    @Test func lectureConvolutionText() throws {
        let r = try run(["arch", "lecture-conv"])
        #expect(r.status == 0)
        #expect(r.stdout == """
            lecture-conv: input 1x3x32x32, 1 node
            node   layer   inputs  output      parameters  buffers  multiply-adds
            conv   conv2d          1x10x32x32         760        0        768,000
            total                                     760        0        768,000

            """)
    }

    @Test func jsonTotals() throws {
        let r = try run(["arch", "resnet18", "--format", "json"])
        #expect(r.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(object["parameters"] as? Int == 11_689_512)
        #expect(object["buffers"] as? Int == 9_600)
        #expect(object["multiply_adds"] as? Int == 1_814_073_344)
        let nodes = object["nodes"] as! [[String: Any]]
        #expect(nodes.count == 69)
        #expect(nodes.first?["output_shape"] as? [Int] == [1, 64, 112, 112])
        #expect(nodes.first { $0["id"] as? String == "layer2.0.add" }?["inputs"] as? [String] == ["layer2.0.bn2", "layer2.0.downsample.1"])
    }

    /// A residual add reads two nodes: the text names them.
    @Test func residualInputsAreShown() throws {
        let r = try run(["arch", "resnet18"])
        #expect(r.status == 0)
        let line = r.stdout.split(separator: "\n").first { $0.hasPrefix("layer1.0.add ") }
        #expect(line?.contains("layer1.0.bn2 + maxpool") == true)
        #expect(r.stdout.contains("total") && r.stdout.contains("11,689,512"))
    }

    @Test func inputOption() throws {
        let r = try run(["arch", "lecture-conv", "--input", "3,64,64", "--format", "json"])
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(object["input"] as? [Int] == [1, 3, 64, 64])
        #expect(object["multiply_adds"] as? Int == 64 * 64 * 10 * (5 * 5 * 3))
        // The paper's AlexNet at 224 without padding: 54, 26, 12, 5 — fc6 no longer fits.
        let bad = try run(["arch", "alexnet-paper", "--input", "3,224,224"])
        #expect(bad.status == 2)
        #expect(bad.stderr == "cnnref: alexnet-paper: nodes[16] (fc6).tensors.weight.shape: expected [M, D] with D = 6400 (inputs[0] (flatten).shape[1]), found [4096, 9216]\n")
    }

    static let sevenBySeven = """
        {"schema": "cnnref-network-1", "id": "lecture-7x7", "input": {"shape": [1, 1, 7, 7]}, "nodes": [
         {"id": "conv", "layer": "conv2d", "inputs": ["x"], "config": {"stride": [3, 3]}, "tensors": {"weight": {"shape": [1, 1, 3, 3]}}}]}
        """

    @Test func doesNotFit() throws {
        let noted = try run(["arch", "-"], input: Self.sevenBySeven)
        #expect(noted.status == 0)
        #expect(noted.stdout.contains("notes:\n  conv: conv2d: 3x3 filter does not tile 7x7 input at stride 3: (7 - 3 + 0)/3 + 1 = 2.33"))
        let strict = try run(["arch", "-", "--strict"], input: Self.sevenBySeven)
        #expect(strict.status == 2)
        #expect(strict.stderr == "cnnref: <stdin>: nodes[0] (conv): doesn't fit: conv2d: 3x3 filter does not tile 7x7 input at stride 3: (7 - 3 + 0)/3 + 1 = 2.33; the last row and column are never used (--strict)\n")
    }

    @Test(arguments: [
        (["arch", "lenet"], "cnnref: lenet: no such file, and not an architecture name (alexnet, alexnet-paper, densenet121, googlenet, lecture-conv, resnet18, resnet50, resnext50_32x4d, vgg16, zfnet)\n"),
        (["arch", "alexnet", "--input", "3,x,224"], "cnnref: --input expects comma-separated positive integers such as 3,224,224, found \"3,x,224\"\n"),
        (["arch", "alexnet", "--input", "224,224"], "cnnref: alexnet: input.shape: --input gives 2 sizes, but the network input [1, 3, 224, 224] has 3 after N\n"),
        (["arch", "alexnet", "--input", "3,32,32"], "cnnref: alexnet: nodes[12] (features.12).config.kernel: maxpool2d: no window fits: the window spans 3 rows (dilation 1) but the padded input has 1 (1 + 0 + 0): (1 - 3 + 0)/2 + 1 = 0 < 1\n"),
    ])
    func badInput(arguments: [String], message: String) throws {
        let r = try run(arguments)
        #expect(r.status == 2)
        #expect(r.stderr == message)
        #expect(r.stdout.isEmpty)
    }

    @Test func aCaseFileIsNotANetwork() throws {
        let r = try run(["arch", "Vectors/conv2d/cs231n-demo.json"])
        #expect(r.status == 2)
        #expect(r.stderr == "cnnref: Vectors/conv2d/cs231n-demo.json: schema: expected \"cnnref-network-1\", found \"cnnref-case-1\"\n")
    }
}

/// `cnnref evaluate` and `cnnref gradcheck` on a network file with data: every node's
/// output, the gradient reaching it, and every gradient, against the arithmetic by hand.
@Suite struct NetworkEvaluateCLITests {
    // x = [1, −2]; fc: h = [1·1 + 2·(−2) + 0, 3·1 + (−1)(−2) + 1] = [−3, 6]; relu [0, 6]; add x: [1, 4].
    // Upstream [1, 2]: dL/d(relu) = [1, 2], dL/d(fc) = [0, 2] (masked), dL/dx = Wᵀ[0, 2] + [1, 2] = [7, 0],
    // dL/dW = [0, 2] ⊗ [1, −2] = [[0, 0], [2, −4]], dL/db = [0, 2].
    static let file = """
        {"schema": "cnnref-network-1", "id": "by-hand", "input": {"shape": [1, 2], "data": [1, -2]}, "nodes": [
         {"id": "fc", "layer": "linear", "inputs": ["x"], "tensors": {"weight": {"shape": [2, 2], "data": [1, 2, 3, -1]}, "bias": {"shape": [2], "data": [0, 1]}}},
         {"id": "relu", "layer": "relu", "inputs": ["fc"]},
         {"id": "add", "layer": "add", "inputs": ["relu", "x"]}],
         "upstream": {"shape": [1, 2], "data": [1, 2]}}
        """

    @Test func evaluateGivesEveryNode() throws {
        let path = try writeTemporary(Self.file)
        let r = try run(["evaluate", path])
        #expect(r.status == 0, "\(r.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let expected = object["expected"] as! [String: [String: [String: Any]]]
        func data(_ block: String, _ name: String) -> [Double]? { (expected[block]?[name]?["data"] as? [NSNumber])?.map(\.doubleValue) }
        #expect(data("outputs", "fc") == [-3, 6] && data("outputs", "relu") == [0, 6] && data("outputs", "add") == [1, 4])
        #expect(data("output_gradients", "add") == [1, 2] && data("output_gradients", "relu") == [1, 2] && data("output_gradients", "fc") == [0, 2])
        #expect(data("gradients", "x") == [7, 0] && data("gradients", "fc.weight") == [0, 0, 2, -4] && data("gradients", "fc.bias") == [0, 2])
    }

    @Test func gradcheckANetworkFile() throws {
        let path = try writeTemporary(Self.file)
        let r = try run(["gradcheck", path])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(["x", "fc.weight", "fc.bias"].allSatisfy { name in r.stdout.split(separator: "\n").contains { $0.hasPrefix("by-hand") && $0.contains(" \(name) ") } })
    }

    @Test func anArchitectureCannotBeEvaluated() throws {
        let r = try run(["evaluate", "Sources/GoldenVectors/Networks/resnet18.json"])
        #expect(r.status == 2)
        #expect(r.stderr == "cnnref: Sources/GoldenVectors/Networks/resnet18.json: nodes[0] (conv1).tensors.weight.data: missing: this file describes an architecture (shapes only); evaluating the network needs every tensor's data\n")
    }

    @Test func aNetworkOverTheWorkLimitIsRefusedBeforeAnyWork() throws {
        let path = try writeTemporary(Self.file)
        let r = try run(["evaluate", path, "--max-work", "10"])
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix("cnnref: \(path): nodes[0] (fc): the nodes up to here run 14 loop steps per pass, over the work limit of 10 (--max-work); this node: linear:"))
    }
}

extension NetworkEvaluateCLITests {
    @Test func evaluateANetworkOnStandardInput() throws {
        let r = try run(["evaluate", "-"], input: Self.file)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("\"output_gradients\""))
    }

    @Test(arguments: [
        ("{\"schema\": \"cnnref-network-1\", \"id\": \"t\",", "cnnref: <stdin>: malformed JSON: line 1, column"),
        ("{\"schema\": \"cnnref-network-1\", \"id\": \"t\", \"input\": {\"shape\": [1, 2]}, \"nodes\": []}", "cnnref: <stdin>: nodes: expected at least one node, found none"),
        ("{\"schema\": \"cnnref-network-1\", \"id\": \"t\", \"input\": {\"shape\": [1, 2], \"data\": [1]}, \"nodes\": [{\"id\": \"r\", \"layer\": \"relu\", \"inputs\": [\"x\"]}]}",
         "cnnref: <stdin>: input.data: shape [1, 2] needs 2 elements (1·2), found 1"),
        ("{\"schema\": \"cnnref-network-1\", \"id\": \"t\", \"input\": {\"shape\": [1, 2], \"data\": [1, 2]}, \"nodes\": [{\"id\": \"r\", \"layer\": \"relu\", \"inputs\": [\"x\"]}]}",
         "cnnref: <stdin>: upstream: missing required field: dL/d(output), shape [1, 2]"),
    ])
    func badNetworkOnStandardInput(text: String, message: String) throws {
        let r = try run(["evaluate", "-"], input: text)
        #expect(r.status == 2)
        #expect(r.stderr.hasPrefix(message), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }
}
