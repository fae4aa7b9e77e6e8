#!/usr/bin/env bash
# test/reliability/asan.sh: livenotifyd built with AddressSanitizer and
# UndefinedBehaviorSanitizer (build/sidecar-asan), driven by the reliability tests that
# exercise the daemon's paths (delivery, reconnects, restarts, slow clients, storms,
# hostile tokens), then by the integration suite.  Any sanitizer report in a daemon log,
# including leaks at exit, fails.
# Run by test/run-all.sh (suite `sidecar_asan`).
#
#   bash test/reliability/asan.sh [--long]
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
# shellcheck source=test/lib.sh
source test/lib.sh

OUT=build/sidecar-asan
[ "$(id -u)" -eq 0 ] || die "run as root"
ensure_packages cmake pkg-config g++ libwebsockets-dev libjwt-dev libsystemd-dev libpq-dev \
	nlohmann-json3-dev

# -O1 keeps the instrumented daemon fast enough for the timing of the tests; recovery is
# off for UBSan so the first report stops the daemon (and the test notices).
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S sidecar -B "$OUT" -DCMAKE_BUILD_TYPE=Debug -DLIVENOTIFY_TESTS=OFF \
	-DCMAKE_CXX_FLAGS="-O1 -g $SAN" -DCMAKE_EXE_LINKER_FLAGS="$SAN" >/dev/null ||
	die "configure of $OUT failed"
cmake --build "$OUT" -j2 --target livenotifyd >"$OUT.build.log" 2>&1 ||
	{ tail -n 40 "$OUT.build.log"; die "build of $OUT failed"; }

# A shorter randomized run: the instrumented daemon is several times slower.
export LIVENOTIFY_TX=${LIVENOTIFY_TX:-3000}
rc=0
test/reliability/run.sh --daemon="$OUT/livenotifyd" --tag=asan \
	--only transactions --only kill9 --only pg_restart_fast --only ring_overflow \
	--only slow_client --only connection_storm --only forged_tokens --only sql_auth \
	--only admission --sanitized "$@" || rc=1

# The integration suite (test/integration, its own cluster) against the same build: its
# script passes extra arguments on, and a later --daemon wins.  Its daemon logs are then
# checked for sanitizer reports here.
if [ -x test/integration/run.sh ]; then
	printf '\n--- integration tests against %s ---\n' "$OUT/livenotifyd"
	# Its cluster on the last port of this suite's half of the private range (the daemons
	# of the runs above are gone by now), not on the integration suite's own port.
	LIVENOTIFY_INTEGRATION_PORT=${LIVENOTIFY_ASAN_INTEGRATION_PORT:-54379} \
		test/integration/run.sh --daemon="$ROOT/$OUT/livenotifyd" || rc=1
	if grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' build/integration/*.log \
		2>/dev/null; then
		grep -hE -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
			build/integration/*.log | head -n 80
		log "sidecar_asan: sanitizer reports in the integration daemon logs above"
		rc=1
	fi
fi
exit $rc
