#!/usr/bin/env bash
# test/reliability/soak.sh: the long variants (`make soak`): 100,000 randomized
# transactions, the p99 latency of 1,000 clients with and without a never-reading one,
# 50,000-connection storm, 10,000 forged tokens, and every fuzz target for longer.
# Figures go to build/reliability-soak/figures.json (docs/reliability.md quotes them).
#
# Heavy: it holds /tmp/livenotify-bench.lock so it never overlaps a benchmark (make soak
# takes the lock; run this script directly only when nothing else is measuring).
#
#   LIVENOTIFY_FUZZ_SECONDS=60 (per target)   LIVENOTIFY_SEED=N (replay)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

passed=0 failed=0
run() {
	printf '\n===== soak: %s =====\n' "$*"
	if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}
run test/reliability/run.sh --long --tag=soak
run test/fuzz/run.sh "${LIVENOTIFY_FUZZ_SECONDS:-60}"
printf '\nsoak: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
