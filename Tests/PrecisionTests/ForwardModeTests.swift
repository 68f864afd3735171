import CNNReference
import Foundation
import GoldenVectors
import PrecisionOracle
import Testing

/// The forward-mode vectors (`jvp/…`, `cnnref-case-2`): every golden JVP is the exact JVP
/// rounded once, by the oracle's own backward pass (ẏ_k = Σ⟨Jᵀe_k, tangent⟩, MPFR), at six
/// output positions of every case (all of a small output).
@Suite struct ForwardModeTests {
    static let twins = Catalogue().cases.filter { $0.tangents != nil }

    @Test func everyLayerWithGoldenJVPsHasVectorsAtThreePrecisions() {
        for layer in ForwardMode.layers {
            let tags = Set(Self.twins.filter { $0.layer == layer }.compactMap(\.tags.first))
            #expect(tags.isSuperset(of: ["exact-in-float32", "full-double"]), "\(layer): \(tags)")
        }
    }

    @Test(arguments: twins.map(\.id))
    func theGoldenJVPIsCorrectlyRounded(id: String) throws {
        let c = try #require(Self.twins.first { $0.id == id }).evaluated()
        let (checked, violations) = Oracle.jvpViolations(c)
        #expect(checked > 0)
        for v in violations { Issue.record("\(v.caseID) jvp\(v.index): ours \(v.ours), oracle \(v.truth) (\(v.ulps) ulp)") }
    }

    /// Every golden double backward (tangents as the cotangent) is the exact value rounded
    /// once: for conv2d and linear by the oracle's gradients of one-hot inputs, at four positions
    /// of x and of the weight; for the other layers with them it is exactly 0.
    @Test(arguments: twins.filter { ForwardMode.doubleBackwardLayers.contains($0.layer) }.map(\.id))
    func theGoldenDoubleBackwardIsCorrectlyRounded(id: String) throws {
        let c = try #require(Self.twins.first { $0.id == id }).evaluated()
        let (checked, violations) = Oracle.doubleBackwardViolations(c)
        #expect(checked > 0)
        for v in violations { Issue.record("\(v.caseID) \(v.tensor)\(v.index): ours \(v.ours), oracle \(v.truth) (\(v.ulps) ulp)") }
    }
}
