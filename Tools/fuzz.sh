#!/usr/bin/env bash
# Fuzzes the case and results decoders, and every command through the structure-aware mutator,
# for a bounded time.
#   Tools/fuzz.sh [SECONDS]   (default 60)
# With libFuzzer (in .build-fuzz): coverage-guided under AddressSanitizer, corpus in
# .build-fuzz/corpus seeded from Vectors/. `-sanitize=fuzzer` cannot be used as it is: SwiftPM
# defines `main` for every executable and so does libFuzzer, so the target is instrumented with
# ASan and inline 8-bit counters and linked with libFuzzer's no-main runtime, and its own @main
# calls LLVMFuzzerRunDriver. Where that build fails, the seeded mutation loop (`cnnref-fuzz
# SECONDS`) runs instead. Prints how many inputs were tried; exits non-zero on a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
bash Tools/setup.sh
runtime=$(dirname "$(dirname "$(command -v swiftc)")")/lib/clang
runtime=$(ls "$runtime"/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a 2>/dev/null | head -1 || true)
if [ -n "$runtime" ] && swift build --scratch-path .build-fuzz --product cnnref-fuzz \
        -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
        -Xswiftc -DLIBFUZZER -Xlinker "$runtime" -Xlinker -lstdc++ >/tmp/cnnref-fuzz-build.log 2>&1; then
    corpus=.build-fuzz/corpus
    mkdir -p "$corpus"
    # Seeds: a few vectors, each prefixed with the selector byte 0 (case decoder).
    for f in Vectors/conv2d/cs231n-demo.json Vectors/relu/on-kink.json Vectors/multiclass_hinge/margin-exactly-zero.json; do
        { printf '\0'; cat "$f"; } > "$corpus/$(basename "$f")"
    done
    # Structural seeds: selector byte 2, then the mutator's decisions.
    for k in 1 2 3 4 5 6 7 8; do
        { printf '\2'; head -c 64 /dev/urandom; } > "$corpus/structural-$k"
    done
    # Static caches (the golden cases) are alive at exit: not leaks worth failing on.
    ASAN_OPTIONS=detect_leaks=0 .build-fuzz/debug/cnnref-fuzz "$corpus" -max_total_time="$seconds" \
        -max_len=65536 -rss_limit_mb=4096 -artifact_prefix=.build-fuzz/ > /tmp/cnnref-fuzz.log 2>&1
    runs=$(grep -o 'Done [0-9]* runs' /tmp/cnnref-fuzz.log | tail -1 || true)
    echo "fuzz: libFuzzer, ${runs:-see /tmp/cnnref-fuzz.log}, no crash"
else
    echo "fuzz: libFuzzer build failed (see /tmp/cnnref-fuzz-build.log); running the seeded mutation loop" >&2
    swift build --product cnnref-fuzz >/dev/null
    .build/debug/cnnref-fuzz "$seconds"
fi
