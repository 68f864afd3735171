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
                gradcheck: conv2d W1, x (2,3,8,8), weight (4,3,3,3), bias (4), stride 1, padding 1: all 496 elements \
                (with --torch-python, against torch.autograd.gradcheck in full mode on the same function in the same \
                run, target ≥ 10x), the default check (with the JVP), one random direction (target < 1 ms), and the \
                order-2 check along 8 directions (target < 50 ms). vectors: full generation \
                and full verify of the catalogue (target < 20 s each). accumulate: ns per multiply-add, correctly \
                rounded vs a plain fma loop, n = 9, 27, 576, 4608 (target ≤ 4×).
                """)

        @Option(help: "Repetitions per figure; the median is printed.")
        var repetitions: Int = 11

        @Option(help: "A Python with torch (the PyTorch adapter's venv; Tools/bench.sh finds it): times torch.autograd.gradcheck in full mode on the same conv2d in this run and prints the ratio.")
        var torchPython: String?

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
            let firstOrder = try median(repetitions) {
                let r = try GradientChecker.check(conv, input: x, configuration: GradientCheckConfiguration(tangents: 0))
                precondition(r.passed)
            }
            let secondOrder = try median(repetitions) {
                let r = try GradientChecker.check(conv, input: x, configuration: GradientCheckConfiguration(elementwise: false, directions: 8, order: 2))
                precondition(r.passed)
            }
            printOut("gradcheck conv2d W1, the 496 elements only (no JVP):      \(ms(firstOrder))\n")
            printOut("gradcheck conv2d W1 --order 2 along 8 directions:         \(ms(secondOrder)) (target < 50 ms)\n")
            if let torchPython {
                let torch = try torchGradcheck(torchPython, conv: conv, x: x)
                printOut("torch.autograd.gradcheck full mode, same conv2d, this run: \(ms(torch)); ratio \(String(format: "%.1f", torch / firstOrder))x (target ≥ 10x)\n")
            }
            let fwdC = median(repetitions) { for _ in 0..<100 { _ = conv.forward(x, accumulator: CompensatedSum.self) } } / 100
            let fwdP = median(repetitions) { for _ in 0..<100 { _ = conv.forward(x, accumulator: PlainSum.self) } } / 100
            let fwdE = median(repetitions) { for _ in 0..<100 { _ = conv.forward(x, accumulator: CorrectlyRounded.self) } } / 100
            func us(_ s: Double) -> String { String(format: "%.1f µs", s * 1e6) }
            printOut("conv2d forward: plain \(us(fwdP)), compensated \(us(fwdC)), correctly rounded \(us(fwdE))\n")
            // The direction's own cost: the median of paired differences (the check with one
            // direction, then without, back to back), so the two share the machine's state; a
            // difference below the noise can be ≤ 0, and is printed as unresolved.
            var pairs: [Double] = []
            for _ in 0..<(repetitions * 10) {
                let with = try elapsed {
                    _ = try GradientChecker.check(conv, input: x, configuration: GradientCheckConfiguration(elementwise: false, directions: 1))
                }
                let without = try elapsed {
                    _ = try GradientChecker.check(conv, input: x, configuration: GradientCheckConfiguration(elementwise: false, directions: 0))
                }
                pairs.append(with - without)
            }
            let own = pairs.sorted()[pairs.count / 2]
            printOut("gradcheck conv2d (2,3,8,8)*(4,3,3,3)+bias, 496 elements and the JVP along 2 tangents (the default check): \(ms(full))\n")
            printOut("gradcheck conv2d, one random direction:                  \(ms(direction)) for the whole check, "
                     + (own > 0 ? "\(ms(own))" : "not resolved from the noise (median paired difference \(ms(own)))")
                     + " for the direction itself (target < 1 ms; jax check_grads 9.5 ms)\n")

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

extension CNNRef.Bench {
    /// The median time of torch.autograd.gradcheck (full mode) on the same conv2d, in a
    /// torch process started by this run (Tools/engines/bench_torch_gradcheck.py).
    func torchGradcheck(_ python: String, conv: Conv2D, x: Tensor) throws -> Double {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Tools/engines/bench_torch_gradcheck.py").standardized.path
        let spec = JSON.object([
            ("x", .array(x.scalars.map(JSON.double))), ("x_shape", .array(x.shape.map(JSON.int))),
            ("weight", .array(conv.weight.scalars.map(JSON.double))), ("weight_shape", .array(conv.weight.shape.map(JSON.int))),
            ("bias", .array((conv.bias?.scalars ?? []).map(JSON.double))), ("padding", .int(conv.padding[0])),
            ("repetitions", .int(repetitions)),
        ])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        do { try process.run() } catch { throw InputError(python, "cannot run: \(error.localizedDescription)") }
        input.fileHandleForWriting.write(spec.formatted().data(using: .utf8)!)
        try? input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let text = String(data: data, encoding: .utf8),
              let parsed = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let milliseconds = parsed["median_ms"] as? Double, parsed["passed"] as? Bool == true else {
            throw InputError(script, "expected {\"median_ms\": …, \"passed\": true} from torch, found \(String(decoding: data, as: UTF8.self).prefix(200))")
        }
        return milliseconds / 1e3
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
    var times: [Double] = []
    for _ in 0..<repetitions { times.append(try elapsed(body)) }
    return times.sorted()[times.count / 2]
}

/// Seconds one run of `body` takes.
func elapsed(_ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    try body()
    let d = clock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

func ms(_ s: Double) -> String { String(format: "%.2f ms", s * 1e3) }
func seconds(_ s: Double) -> String { String(format: "%.2f s", s) }
