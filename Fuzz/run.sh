#!/usr/bin/env bash
# Coverage-guided fuzzing of vnet's input parsers with libFuzzer (Swift's -sanitize=fuzzer).
#   Fuzz/run.sh TARGET [RUNS]      TARGET: conf, envelope, dhcp, probe, preload, omapi, leases, dhcp-frame, lldp, ec2; RUNS default 1000000
# Seeds each corpus with the valid inputs vnet-bench fuzz starts from; crashes are written to
# .build-fuzz/crashes/TARGET/ (add each as a regression test). Not part of the test command: a build
# with the fuzzer instrumentation takes minutes; the test suite runs a seeded mutation smoke run instead.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: Fuzz/run.sh TARGET [RUNS]}
runs=${2:-1000000}
swift build --package-path Fuzz -c release --sanitize fuzzer --scratch-path .build-fuzz >&2
binary=.build-fuzz/release/vnet-fuzz
corpus=.build-fuzz/corpus/$target
crashes=.build-fuzz/crashes/$target
mkdir -p "$corpus" "$crashes"
swift build -c release --product vnet-bench >&2
.build/release/vnet-bench fuzz --write-corpus "$corpus" --only "$target" >&2
VNET_FUZZ_TARGET=$target "$binary" -runs="$runs" -max_len=4096 -timeout=5 -artifact_prefix="$crashes/" -print_final_stats=1 "$corpus"
