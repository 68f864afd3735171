import ArgumentParser
import CNNReference
import Foundation
import GoldenVectors
import GradientCheck

extension CNNRef {
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure the speed targets and print the figures (build with -c release).",
            discussion: """
                gradcheck: conv2d x (2,3,8,8), weight (4,3,3,3), bias (4), stride 1, padding 1: all 496 elements \
                through GSL (target ≤ 30 ms), and one random direction (target < 1 ms). vectors: full generation \
                and full verify of the catalogue (target < 20 s each). accumulate: ns per multiply-add, correctly \
                rounded vs a plain fma loop, n = 9, 27, 576, 4608 (target ≤ 4×).
                """)

        @Option(help: "Repetitions per figure; the median is printed.")
        var repetitions: Int = 11

        func validate() throws {
            guard repetitions >= 1 else { throw ValidationError("--repetitions must be ≥ 1, found \(repetitions)") }
        }

        func run() throws {
            #if DEBUG
            printOut("note: a debug build; run `swift build -c release` and .build/release/cnnref bench for real figures\n")
            #endif
            let rng = SeededRandom(seed: 42)
            func tensor(_ shape: [Int]) -> Tensor {
                Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in rng.signedUnit() })
            }
            let conv = Conv2D(weight: tensor([4, 3, 3, 3]), bias: tensor([4]), padding: [1, 1, 1, 1])
            let x = tensor([2, 3, 8, 8])
            let full = try median(repetitions) {
                let r = try GradientChecker.check(conv, input: x)
                precondition(r.passed)
            }
            let direction = try median(repetitions * 10) {
                let r = try GradientChecker.check(conv, input: x, configuration: GradientCheckConfiguration(elementwise: false, directions: 1))
                precondition(r.passed)
            }
            let fwdC = median(repetitions) { for _ in 0..<100 { _ = conv.forward(x, accumulator: CompensatedSum.self) } } / 100
            let fwdP = median(repetitions) { for _ in 0..<100 { _ = conv.forward(x, accumulator: PlainSum.self) } } / 100
            let fwdE = median(repetitions) { for _ in 0..<100 { _ = conv.forward(x, accumulator: CorrectlyRounded.self) } } / 100
            printOut("conv2d forward: plain \(ms(fwdP)), compensated \(ms(fwdC)), correctly rounded \(ms(fwdE))\n")
            let structuralOnly = try median(repetitions * 10) {
                _ = try GradientChecker.check(conv, input: x, configuration: GradientCheckConfiguration(elementwise: false, directions: 0))
            }
            printOut("gradcheck conv2d (2,3,8,8)*(4,3,3,3)+bias, 496 elements: \(ms(full)) (target ≤ 30 ms; torch.autograd.gradcheck 300 ms)\n")
            printOut("gradcheck conv2d, one random direction:                  \(ms(direction)) for the whole check, \(ms(direction - structuralOnly)) for the direction itself (target < 1 ms; jax check_grads 9.5 ms)\n")

            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cnnref-bench-\(ProcessInfo.processInfo.processIdentifier)")
            defer { try? FileManager.default.removeItem(at: folder) }
            var count = 0
            let generate: Double
            do { generate = try median(min(repetitions, 3)) { count = try Generator.write(to: folder).count } } catch {
                throw InputError(folder.path, "cannot write the benchmark's vectors: \(error.localizedDescription)")
            }
            let verify = try median(min(repetitions, 3)) {
                let r = try Verifier.verify(folder)
                precondition(r.problems.isEmpty)
            }
            let bytes = (FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.fileSizeKey])?
                .compactMap { ($0 as? URL).flatMap { try? $0.resourceValues(forKeys: [.fileSizeKey]).fileSize } }
                .reduce(0, +)) ?? 0
            printOut("generate \(count) cases: \(seconds(generate)), \(String(format: "%.1f", Double(bytes) / 1e6)) MB (target < 20 s, < 20 MB)\n")
            printOut("verify \(count) cases:   \(seconds(verify)) (target < 20 s)\n")

            printOut("accumulate, ns per multiply-add (median):\n")
            printOut("     n  plain loop    fma loop   compensated   correctly rounded   ratio to plain / fma\n")
            for n in [9, 27, 576, 4608] {
                // Distinct rows, so no sum can be hoisted out of the timing loop.
                let rows = 16
                let a = (0..<(rows * n)).map { _ in rng.signedUnit() }, b = (0..<(rows * n)).map { _ in rng.signedUnit() }
                let sums = max(rows, 2_000_000 / n)
                var sink = 0.0
                func perMAC<A: Accumulator>(_: A.Type) -> Double {
                    let t = median(repetitions) {
                        a.withUnsafeBufferPointer { a in
                            b.withUnsafeBufferPointer { b in
                                for k in 0..<sums {
                                    let base = (k % rows) * n
                                    sink += A.sum { acc in for i in base..<(base + n) { acc.add(a[i], times: b[i]) } }
                                }
                            }
                        }
                    }
                    return t * 1e9 / Double(sums * n)
                }
                let plain = perMAC(PlainSum.self), fused = perMAC(FusedLoop.self)
                let compensated = perMAC(CompensatedSum.self), exact = perMAC(CorrectlyRounded.self)
                printOut(String(format: "%6d  %10.2f  %10.2f   %11.2f   %17.2f   %5.2fx / %5.2fx\n",
                                n, plain, fused, compensated, exact, exact / plain, exact / fused))
                if sink == .infinity { printOut("") }
            }
        }
    }
}

/// A plain loop of fused multiply-adds (`fma`, a libm call in a generic x86-64 build):
/// the like-for-like baseline for accumulators built on fma.
struct FusedLoop: Accumulator {
    var s = 0.0
    init() {}
    mutating func add(_ a: Double, times b: Double) { s = s.addingProduct(a, b) }
    mutating func add(_ a: Double) { s += a }
    static func sum(dividedBy divisor: Double, _ terms: (inout FusedLoop) -> Void) -> Double {
        var acc = FusedLoop()
        terms(&acc)
        return acc.s / divisor
    }
}

/// The median wall time of `body` in seconds.
func median(_ repetitions: Int, _ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    var times: [Double] = []
    for _ in 0..<repetitions {
        let start = clock.now
        try body()
        let d = clock.now - start
        times.append(Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
    }
    return times.sorted()[times.count / 2]
}

func ms(_ s: Double) -> String { String(format: "%.2f ms", s * 1e3) }
func seconds(_ s: Double) -> String { String(format: "%.2f s", s) }
