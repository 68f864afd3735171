import Foundation
import GoldenVectors

// The fuzz target for the case and results decoders. Built with
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
        let tried = Fuzzing.run(iterations: .max, seconds: seconds, seed: seed)
        print("cnnref-fuzz: \(tried) inputs in \(seconds) s (seed \(seed)), none crashed")
    }
}
#endif
