import Foundation
import GoldenVectors

// The fuzz target for the case and results decoders. Built with
// `-Xswiftc -sanitize=fuzzer -Xswiftc -DLIBFUZZER` (Tools/fuzz.sh) it is a libFuzzer
// target; built normally it runs the seeded mutation loop:
//   cnnref-fuzz [SECONDS] [SEED]

#if LIBFUZZER
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    Fuzzing.one(Data(bytes: start, count: count))
    return 0
}
#else
let arguments = CommandLine.arguments.dropFirst()
let seconds = arguments.first.flatMap(Double.init) ?? 10
let seed = arguments.dropFirst().first.flatMap(UInt.init) ?? 1
let tried = Fuzzing.run(iterations: .max, seconds: seconds, seed: seed)
print("cnnref-fuzz: \(tried) inputs in \(seconds) s (seed \(seed)), none crashed")
#endif
