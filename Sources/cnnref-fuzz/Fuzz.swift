import Foundation
import GoldenVectors

// The fuzz target for the case and results decoders and, with a selector byte of 2 or 3 mod 4,
// the structure-aware mutator (evaluate, gradcheck, verify, precision, validate). Built with
// `-Xswiftc -sanitize=fuzzer -Xswiftc -DLIBFUZZER` (Tools/fuzz.sh) it hands every
// input libFuzzer generates to `Fuzzing.one`; built normally it runs the seeded
// mutation loop:  cnnref-fuzz [SECONDS] [SEED]

#if LIBFUZZER
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

@main
struct FuzzDriver {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { start, count in
            Fuzzing.one(Data(bytes: start, count: count))
            return 0
        })
    }
}
#else
@main
struct MutationLoop {
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        let seconds = arguments.first.flatMap(Double.init) ?? 10
        let seed = arguments.dropFirst().first.flatMap(UInt.init) ?? 1
        // Half the time on bytes (the decoders), half on structural mutants (every command's path).
        let tried = Fuzzing.run(iterations: .max, seconds: seconds / 2, seed: seed)
        let stats = Fuzzing.runStructured(iterations: .max, seconds: seconds / 2, seed: seed)
        print("cnnref-fuzz: \(tried) byte-level inputs and \(stats.tried) structural inputs (\(stats.decoded) decoded, \(stats.rejected) rejected with one line; slowest \(String(format: "%.3f", stats.slowest)) s) in \(seconds) s (seed \(seed)), \(stats.findings.count) findings, none crashed")
        for f in stats.findings.prefix(5) { print("finding: \(f)") }
        if !stats.findings.isEmpty { exit(1) }
    }
}
#endif
