#!/usr/bin/env bash
# test/fuzz/run.sh: build the libFuzzer targets and run each for a bounded time; any crash,
# sanitizer report, leak or timeout fails the run.  Run by test/run-all.sh (suite `fuzz`,
# 12 s per target) and by `make soak` (longer).
#
#   bash test/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# The committed seeds (test/fuzz/corpus/TARGET) are read-only input; what the fuzzer finds
# goes to build/fuzz/corpus-TARGET, crash inputs to build/fuzz/artifacts/ (replay one with
# `build/fuzz/TARGET FILE`).
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
# shellcheck source=test/lib.sh
source test/lib.sh

SECONDS_PER=${1:-${LIVENOTIFY_FUZZ_SECONDS:-12}}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_client_message fuzz_http_args fuzz_jwt fuzz_jwt_claims
	fuzz_config fuzz_frame)
OUT=$ROOT/build/fuzz

ensure_packages clang-14 libclang-rt-14-dev libjwt-dev nlohmann-json3-dev libssl-dev pkg-config make
make -s -C test/fuzz -j2 OUT="$OUT" || die "fuzz targets did not build"

passed=0 failed=0
mkdir -p "$OUT/artifacts"
for t in "${TARGETS[@]}"; do
	work=$OUT/corpus-$t
	mkdir -p "$work"
	log=$OUT/$t.log
	# -timeout: one input taking 10 s is a hang; -rss_limit_mb: a parser must not balloon.
	"$OUT/$t" -max_total_time="$SECONDS_PER" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
		-print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t-" \
		"$work" "test/fuzz/corpus/$t" >"$log" 2>&1
	rc=$?
	runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
	corpus=$(ls "$work" | wc -l)
	if [ $rc -eq 0 ] && ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
		echo "ok $t: ${runs:-?} inputs in ${SECONDS_PER}s, 0 crashes, corpus $corpus"
		passed=$((passed + 1))
	else
		echo "FAILED $t (exit $rc): crash input in $OUT/artifacts/"
		grep -E -A25 'ERROR: |runtime error:|deadly signal' "$log" | head -n 40
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
