#!/usr/bin/env bash
# Bounded fuzzing of Convoy's untrusted-input paths with cargo fuzz (libFuzzer + ASan).
#
#   tests/fuzz/run.sh [SECONDS] [TARGETS...]
#
# Builds the targets, runs each for SECONDS (default 60) from its committed seeds
# (tests/fuzz/seeds/<target>) plus the corpus grown by earlier runs
# (tests/fuzz/corpus/<target>, git-ignored), and prints per target: executions,
# executions per second, coverage and crashes. Exits 1 when any target crashed (its
# input is kept under tests/fuzz/artifacts/<target>/), 2 when the build failed.
#
# Works from a fresh clone: installs cargo-fuzz (--locked) when missing; on a stable
# toolchain, lets it use libFuzzer's nightly-only compiler flags with RUSTC_BOOTSTRAP=1.
# Environment: FUZZ_SANITIZER (address | none; default address), FUZZ_RSS_LIMIT_MB
# (default 2048: one allocation or a resident set above it is a finding),
# FUZZ_CODEGEN_UNITS (default 16).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

seconds="${1:-60}"
shift || true
all_targets=(v2_json v2_binary image tokenizer)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
case "$seconds" in '' | *[!0-9]*)
    echo "usage: tests/fuzz/run.sh [SECONDS] [TARGETS...] (targets: ${all_targets[*]})" >&2
    exit 2
    ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked || exit 2
fi
# cargo fuzz passes -Z flags (sanitizer, coverage); stable accepts them only so.
if ! rustc --version | grep -q nightly; then export RUSTC_BOOTSTRAP=1; fi

sanitizer="${FUZZ_SANITIZER:-address}"
rss_limit="${FUZZ_RSS_LIMIT_MB:-2048}"
fuzz=(cargo fuzz)
# 16 codegen units: the instrumented build of the server's dependency tree takes about
# half as long on a small machine, for a few percent of executions per second.
common=(--fuzz-dir "$here" --sanitizer "$sanitizer" --debug-assertions
    --codegen-units "${FUZZ_CODEGEN_UNITS:-16}")

echo "== building ${targets[*]} (sanitizer: $sanitizer)"
build_start=$(date +%s)
for t in "${targets[@]}"; do
    "${fuzz[@]}" build "${common[@]}" "$t" || {
        echo "== build of $t failed" >&2
        exit 2
    }
done
echo "== built in $(($(date +%s) - build_start)) s"

logs="$here/target/run-logs"
mkdir -p "$logs"
crashed=0
summary=()
for t in "${targets[@]}"; do
    corpus="$here/corpus/$t"
    artifacts="$here/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    # Images need room for a real file; JSON and text find their paths in less.
    max_len=4096
    [ "$t" = image ] && max_len=65536
    echo "== fuzzing $t for ${seconds} s"
    start=$(date +%s.%N)
    "${fuzz[@]}" run "${common[@]}" "$t" "$corpus" "$here/seeds/$t" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
        -rss_limit_mb="$rss_limit" -malloc_limit_mb="$rss_limit" \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$logs/$t.log" 2>&1
    rc=$?
    wall=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')
    log="$logs/$t.log"
    stat() { awk -v k="stat::$1:" '$1 == k { print $2 }' "$log" | tail -1; }
    execs=$(stat number_of_executed_units)
    rate=$(stat average_exec_per_sec)
    rss=$(stat peak_rss_mb)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
    artifact=$(sed -nE 's/.*Test unit written to (.*)/\1/p' "$log" | tail -1)
    if [ "$rc" -ne 0 ] || [ -n "$artifact" ]; then
        crashed=1
        result="CRASH (exit $rc) ${artifact:-no artifact; see $log}"
        echo "-- $t crashed; the report:"
        grep -E -m 12 'panicked|ERROR|SUMMARY|out-of-memory|timeout|Test unit written|deadly signal' "$log" || tail -20 "$log"
        [ -n "$artifact" ] && echo "-- replay: cargo fuzz run --fuzz-dir tests/fuzz $t $artifact;" \
            "show: cargo fuzz fmt --fuzz-dir tests/fuzz $t $artifact"
    else
        result="ok"
    fi
    summary+=("$(printf '%-10s %6s %12s %10s %6s %7s %7s %7s  %s' \
        "$t" "$wall" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$result")")
done

echo
printf '%-10s %6s %12s %10s %6s %7s %7s %7s  %s\n' \
    target time_s execs execs/s cov ft corpus rss_mb result
printf '%s\n' "${summary[@]}"
echo "(logs: $logs)"
exit "$crashed"
