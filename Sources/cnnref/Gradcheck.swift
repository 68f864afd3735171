import ArgumentParser
import CNNReference
import Foundation
import GoldenVectors
import GradientCheck

extension CNNRef {
    struct Gradcheck: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every analytic gradient against GSL's numerical derivatives.",
            discussion: """
                With no files, runs the built-in matrix: every layer in many configurations, kinks and ties \
                included. Prints one row per (case, tensor): elements checked, kinks found, the worst \
                |analytic - numeric| / tolerance, and the verdict. Exit status 0 only when everything passes.
                """)

        @Argument(help: "Case files to check (default: the built-in matrix).")
        var files: [String] = []

        @Option(help: "Also check this many random signed directions per case.")
        var directions: Int = 0

        @Option(help: "Cases with more elements than this are checked along directions only (at least 4).")
        var maxElements: Int = 20_000

        @Option(help: "With --order 2: cases with more elements than this in x, the parameters and the upstream are checked along 8 directions only.")
        var maxSecondOrderElements: Int = 64

        @Option(help: "1: backward pass and JVPs (forward mode); 2: double backward (the VJP of the backward pass).")
        var order: Int = 1

        @Option(help: "Random tangents along which each case's JVP is checked at order 1 (0: none).")
        var tangents: Int = 2

        @Option(help: "Seed for the random upstream and directions.")
        var seed: UInt = 1

        @Option(help: "Output format: text or json.")
        var format: OutputFormat = .text

        @OptionGroup var limits: InputLimits

        func validate() throws {
            guard directions >= 0 else { throw ValidationError("--directions must be ≥ 0, found \(directions)") }
            guard order == 1 || order == 2 else { throw ValidationError("--order must be 1 or 2, found \(order)") }
            guard tangents >= 0 else { throw ValidationError("--tangents must be ≥ 0, found \(tangents)") }
            guard maxSecondOrderElements >= 0 else { throw ValidationError("--max-second-order-elements must be ≥ 0, found \(maxSecondOrderElements)") }
            guard maxElements >= 1 else { throw ValidationError("--max-elements must be ≥ 1, found \(maxElements)") }
        }

        /// A case, or a network file with its input's data (its upstream optional).
        struct Subject {
            var source: String, id: String, layer: any Layer, x: Tensor, upstream: Tensor?
        }

        func subject(_ source: String, _ c: Case) throws -> Subject {
            do { return Subject(source: source, id: c.id, layer: try LayerRegistry.makeLayer(c), x: c.inputs[0].tensor, upstream: c.upstream) } catch {
                throw InputError(source, error)
            }
        }

        func run() throws {
            let subjects: [Subject] = files.isEmpty
                ? try Catalogue().gradcheckMatrix.map { try subject($0.id, $0) }
                : try files.map { file in
                    switch try readCaseOrNetwork(file, limits: limits) {
                    case .testCase(let c):
                        return try subject(file, c)
                    case .network(let network):
                        guard let data = network.inputData else { throw InputError(file, "input.data: missing: checking the network's gradients needs the input's elements") }
                        let layer: Network
                        do throws(CaseError) { layer = try network.network(maxBytes: limits.maxBytes, maxWork: limits.maxWork) } catch {
                            throw InputError(file, error)
                        }
                        return Subject(source: file, id: network.id, layer: layer, x: Tensor(shape: network.inputShape, scalars: data),
                                       upstream: network.upstream)
                    }
                }
            var reports: [GradientCheckReport] = []
            for s in subjects {
                let (source, layer, x) = (s.source, s.layer, s.x)
                let size = x.count + layer.parameters.reduce(0) { $0 + $1.tensor.count }
                // Element checks run the layer a few times per element: past the budget, directions only.
                var elementwise = size <= maxElements && Work.elementwiseAffordable(layer, input: x.shape, elements: size)
                if order == 2, let out = try? layer.outputShape(forInput: x.shape) {
                    // Each element of x, θ and u costs 4–8 backward passes (certified ones for the
                    // activations, ~10 ms each at 96 elements in a debug build): past the budget,
                    // directions only, each reporting its own resolution.
                    elementwise = elementwise && size + out.reduce(1, *) <= maxSecondOrderElements
                }
                var config = GradientCheckConfiguration(elementwise: elementwise, directions: directions, seed: seed, order: order)
                config.tangents = tangents
                if !config.elementwise && config.directions == 0 { config.directions = order == 2 ? 8 : 4 }
                do {
                    reports.append(try GradientChecker.check(layer, input: x, upstream: s.upstream, caseID: s.id,
                                                             configuration: config))
                } catch { throw InputError(source, error) }
            }
            let failed = reports.filter { !$0.passed }.count
            switch format {
            case .text: printOut(GradcheckText.render(reports))
            case .json: printOut(GradcheckText.json(reports).formatted())
            }
            if failed > 0 { throw CheckFailed() }
        }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

enum GradcheckText {
    static func render(_ reports: [GradientCheckReport]) -> String {
        var out = "case".padding(toLength: 58, withPad: " ", startingAt: 0) + " tensor      elements  kinks  worst/tol  resolution (worst, median)  verdict\n"
        var passed = 0, failed = 0
        for r in reports {
            for t in r.tensors {
                out += r.caseID.padding(toLength: 58, withPad: " ", startingAt: 0) + " "
                out += t.name.padding(toLength: 11, withPad: " ", startingAt: 0)
                out += String(t.checked).leftPadded(9) + String(t.kinks).leftPadded(7)
                out += String(format: "%11.3g", t.worstRatio)
                out += "  " + (t.worstResolution.map { String(format: "%10.2g %10.2g      ", $0, t.medianResolution!) } ?? "      none                  ")
                out += "  " + (t.passed ? "pass" : "FAIL")
                out += (t.notFinite > 0 ? "  (\(t.notFinite) not finite: skipped)" : "") + "\n"
                for f in t.failures { out += "    \(r.caseID): \(f.summary)\n" }
            }
            for s in r.structural where !s.passed { out += "    \(r.caseID): \(s.name) FAILED: \(s.detail)\n" }
            for n in r.notes { out += "    \(r.caseID): note: \(n)\n" }
            if r.passed { passed += 1 } else { failed += 1 }
        }
        out += "\(passed) passed, \(failed) failed\n"
        return out
    }

    static func json(_ reports: [GradientCheckReport]) -> JSON {
        func element(_ e: ElementResult) -> JSON {
            var m: [(String, JSON)] = [("tensor", .string(e.tensor)), ("index", .array(e.index.map(JSON.int))),
                                       ("kind", .string(e.kind.rawValue)), ("analytic", .double(e.analytic)),
                                       ("numeric", .double(e.numeric)), ("abserr", .double(e.abserr)),
                                       ("tolerance", .double(e.tolerance)), ("ratio", .double(e.ratio))]
            if let s = e.oneSided { m.append(("one_sided", .array([.double(s.left), .double(s.right)]))) }
            return .object(m)
        }
        return .object([
            ("passed", .int(reports.filter(\.passed).count)),
            ("failed", .int(reports.filter { !$0.passed }.count)),
            ("cases", .array(reports.map { r in
                .object([
                    ("id", .string(r.caseID)), ("passed", .bool(r.passed)),
                    ("tensors", .array(r.tensors.map { t in
                        .object([("name", .string(t.name)), ("elements", .int(t.checked)), ("kinks", .int(t.kinks)), ("not_finite", .int(t.notFinite)),
                                 ("worst_ratio", .double(t.worstRatio)), ("passed", .bool(t.passed)),
                                 ("resolution", t.worstResolution.map { .object([("worst", .double($0)), ("median", .double(t.medianResolution!))]) } ?? .null),
                                 ("worst", t.worst.map(element) ?? .null), ("failures", .array(t.failures.map(element)))])
                    })),
                    ("structural", .array(r.structural.map { s in
                        .object([("name", .string(s.name)), ("passed", .bool(s.passed)), ("detail", .string(s.detail))])
                    })),
                    ("notes", .array(r.notes.map(JSON.string))),
                ])
            })),
        ])
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
