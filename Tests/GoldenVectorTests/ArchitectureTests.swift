import CNNReference
import Foundation
import GoldenVectors
import Testing

/// The shipped architectures against published numbers: torchvision's `num_params` and
/// `_ops` (GFLOPS, printed to 3–4 digits) of its weight enums, the papers' shapes, the
/// Keras Applications counts, and the lecture's hand arithmetic.
@Suite struct ArchitectureTests {
    static func summary(_ name: String) throws -> ArchitectureSummary { try Architectures.load(name).summary() }

    /// (name, torchvision num_params, torchvision _ops in GFLOPS as printed).
    @Test(arguments: [
        ("alexnet", 61_100_840, "0.714"), ("vgg16", 138_357_544, "15.47"), ("googlenet", 6_624_904, "1.498"),
        ("resnet18", 11_689_512, "1.814"), ("resnet50", 25_557_032, "4.089"), ("resnext50_32x4d", 25_028_904, "4.23"),
        ("densenet121", 7_978_856, "2.834"),
    ])
    func torchvisionsPublishedCounts(name: String, parameters: Int, gflops: String) throws {
        let s = try Self.summary(name)
        #expect(s.parameters == parameters)
        #expect(s.input == [1, 3, 224, 224] && s.nodes.last!.outputShape == [1, 1000])
        // _ops are multiply-adds of convolutions and linear layers, in units of 10⁹, rounded to the digits printed.
        let digits = gflops.split(separator: ".")[1].count
        #expect(String(format: "%.\(digits)f", Double(s.multiplyAdds) / 1e9) == gflops, "\(name): \(s.multiplyAdds) multiply-adds")
    }

    /// BN running statistics are buffers: 2 per channel, `num_batches_tracked` not counted.
    /// Keras counts them as parameters — DenseNet-121's 8,062,504 and a converted
    /// ResNet-18's 11,699,112 (pytorch2keras#34) are parameters + buffers — and Keras's
    /// ResNet-50 also has a bias on every conv before a BN (as many as the BN channels,
    /// buffers/2): 25,636,712.
    @Test func kerasCountsRunningStatisticsAsParameters() throws {
        let densenet = try Self.summary("densenet121"), resnet18 = try Self.summary("resnet18"), resnet50 = try Self.summary("resnet50")
        #expect(densenet.parameters + densenet.buffers == 8_062_504)
        #expect(resnet18.parameters + resnet18.buffers == 11_699_112)
        #expect(resnet50.parameters + resnet50.buffers == 25_610_152)
        #expect(resnet50.parameters + resnet50.buffers + resnet50.buffers / 2 == 25_636_712)
        #expect(try Self.summary("alexnet").buffers == 0 && Self.summary("vgg16").buffers == 0)
    }

    /// The feature maps before the classifier, as the papers and torchvision's code give them,
    /// and ZFNet's published 110-55-26-13-6 path (ceil-mode pools).
    @Test func featureMapShapes() throws {
        func shape(_ name: String, _ node: String) throws -> [Int] { try Self.summary(name).nodes.first { $0.id == node }!.outputShape }
        #expect(try shape("alexnet", "features.12") == [1, 256, 6, 6])
        #expect(try shape("alexnet-paper", "conv1") == [1, 96, 55, 55])
        #expect(try shape("alexnet-paper", "pool5") == [1, 256, 6, 6])
        #expect(try shape("vgg16", "features.30") == [1, 512, 7, 7])
        #expect(try shape("googlenet", "inception5b.concat") == [1, 1024, 7, 7])
        #expect(try shape("resnet18", "layer4.1.relu_out") == [1, 512, 7, 7])
        #expect(try shape("resnet50", "layer4.2.relu_out") == [1, 2048, 7, 7])
        #expect(try shape("resnext50_32x4d", "layer4.2.relu_out") == [1, 2048, 7, 7])
        #expect(try shape("densenet121", "features.norm5") == [1, 1024, 7, 7])
        #expect(try ["conv1", "pool1", "conv2", "pool2", "pool5"].map { try shape("zfnet", $0)[2] } == [110, 55, 26, 13, 6])
    }

    /// The paper's AlexNet and ZFNet, recounted by hand: K·(C/groups)·F² + K per conv, M·D + M per linear.
    @Test func paperNetworksByHand() throws {
        func conv(_ c: Int, _ k: Int, _ f: Int, groups: Int = 1) -> Int { k * (c / groups) * f * f + k }
        let fc = 9216 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
        let paper = conv(3, 96, 11) + conv(96, 256, 5, groups: 2) + conv(256, 384, 3) + conv(384, 384, 3, groups: 2) + conv(384, 256, 3, groups: 2) + fc
        let zf = conv(3, 96, 7) + conv(96, 256, 5) + conv(256, 384, 3) + conv(384, 384, 3) + conv(384, 256, 3) + fc
        #expect(try Self.summary("alexnet-paper").parameters == paper && paper == 60_965_224)
        #expect(try Self.summary("zfnet").parameters == zf && zf == 62_357_608)
    }

    @Test func theLectureConvolution() throws {
        let s = try Self.summary("lecture-conv")
        #expect(s.nodes.map(\.outputShape) == [[1, 10, 32, 32]])
        #expect(s.parameters == 10 * (5 * 5 * 3 + 1))
        #expect(s.multiplyAdds == 32 * 32 * 10 * (5 * 5 * 3))
    }

    /// Every shipped file is the generator's output, byte for byte.
    @Test func theShippedFilesAreTheGeneratorsOutput() throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-networks-\(getpid())")
        defer { try? FileManager.default.removeItem(at: out) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let blocks = out.appendingPathComponent("blocks"), architectures = out.appendingPathComponent("architectures")
        process.arguments = ["python3", repository.appendingPathComponent("Tools/python/cnnref_networks.py").path, architectures.path, blocks.path]
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: architectures.path).sorted()
        #expect(names.map { String($0.dropLast(5)) }.sorted() == Architectures.names)
        // The small signature blocks the engine check runs (Sources/GoldenVectors/Networks/blocks).
        let shippedBlocks = repository.appendingPathComponent("Sources/GoldenVectors/Networks/blocks")
        let blockNames = try FileManager.default.contentsOfDirectory(atPath: blocks.path).sorted()
        #expect(try FileManager.default.contentsOfDirectory(atPath: shippedBlocks.path).sorted() == blockNames)
        for (folder, shipped, name) in names.map({ (architectures, Architectures.directory, $0) }) + blockNames.map({ (blocks, shippedBlocks, $0) }) {
            let generated = try Data(contentsOf: folder.appendingPathComponent(name))
            #expect(generated == (try Data(contentsOf: shipped.appendingPathComponent(name))), "\(name) differs from the generator's output")
            #expect(throws: Never.self) { try NetworkFile.decode(text: String(decoding: generated, as: UTF8.self)).summary() }
        }
    }
}
