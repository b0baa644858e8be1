#!/bin/sh
# A rustc wrapper (RUSTC_WRAPPER) for the short fuzz runs of `./lab test`: adds libFuzzer's
# coverage instrumentation, the flags cargo-fuzz passes, to rtclab's crates under test and to
# the fuzz targets themselves (generic code, such as serde's parsers for rtclab's types, is
# compiled into the crate that uses it), and to nothing else, so that every other crate is the
# main build's copy. See Cargo.toml.
for arg in "$@"; do
  case "$prev $arg" in
    "--crate-name rtclab_events" | "--crate-name rtclab_signaling" | \
    "--crate-name rtclab_scenarios" | "--crate-name rtclab_netem" | \
    "--crate-name rtclab_report" | "--crate-name rtclab_turn" | "--crate-name rtclab_peer" | \
    "--crate-name rtclab_fuzz" | "--crate-name signaling" | "--crate-name scenario" | \
    "--crate-name event_log" | "--crate-name rtp" | "--crate-name turn_guard")
      exec "$@" \
        -Cpasses=sancov-module \
        -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
        -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares \
        -Cllvm-args=-sanitizer-coverage-stack-depth \
        -Cllvm-args=-simplifycfg-branch-fold-threshold=0
      ;;
  esac
  prev=$arg
done
exec "$@"
