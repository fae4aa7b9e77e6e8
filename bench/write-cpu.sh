#!/usr/bin/env bash
# bench/write-cpu.sh: what the livenotify trigger costs an INSERT, in instructions
# (`make bench-write-cpu`).
#
# bench/write-path.sh measures throughput, which is what an application sees, but on a shared
# virtual machine its passes drift by tens of percent within minutes: a regression of a few
# percent is not visible in it.  This script counts instructions instead, which do not drift:
# each config runs the same 2,000 single-row INSERT transactions (the row of write-path.sh,
# fixed values) in one PostgreSQL backend in single-user mode under valgrind's callgrind, and
# a run with no statements gives the start-up cost to subtract.  Two runs of one build agree
# to within 0.5%.  Configs:
#
#   t_plain           the Django-shaped table with no trigger
#   t_livenotify      the same table registered with livenotify.register()
#   t_livenotify_off  t_livenotify with livenotify.enabled = off: the trigger fires and
#                     returns at once, which is PostgreSQL's trigger machinery alone
#
# Reported: instructions per transaction, the trigger's cost per row (t_livenotify - t_plain)
# and plain / livenotify, the throughput ratio a CPU-bound server would show if nothing else
# differed (single-user mode has no network round trip: a real server's transaction costs
# more, so the real ratio is closer to 1).  What it does not see: waits (WAL flush, locks),
# contention between backends; write-path.sh covers those.
#
# To compare with another build (another commit's extension), install that build into a copy
# of the server and point LIVENOTIFY_PG_BIN at it with BENCH_CPU_BUILD=0, e.g.
#   git worktree add /tmp/old <commit>; cp -a /usr/lib/postgresql/15 ... (see docs/benchmarks.md)
#
# As root on Debian 12: installs what is missing (valgrind among them), builds and installs the
# extension, makes a private cluster (started once to create the tables, then used in
# single-user mode), prints the table and writes it into docs/benchmarks.md (section
# "Write path in instructions (issue 11)").  About 3 minutes.
#
# Environment: BENCH_CPU_ROWS (2000), BENCH_CPU_BUILD (1), BENCH_WRITE_DOCS (1),
# BENCH_PORT (54341, used only while the tables are made).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOG_TAG=bench
# shellcheck source=test/lib.sh
source test/lib.sh

ROWS=${BENCH_CPU_ROWS:-2000}
PORT=${BENCH_PORT:-54341}
WRITE_DOCS=${BENCH_WRITE_DOCS:-1}
DOC=docs/benchmarks.md
SECTION="## Write path in instructions (issue 11)"
CONFIGS=(t_plain t_livenotify t_livenotify_off)

case $PORT in 5432 | 54329 | 54330 | 54331) die "port $PORT belongs to another cluster" ;; esac
[ "$(id -u)" -eq 0 ] || die "run as root (packages, make install, runuser postgres)"

ensure_packages postgresql-15 postgresql-server-dev-15 libpq-dev g++ make valgrind
if [ "${BENCH_CPU_BUILD:-1}" = 1 ]; then
	log "build and install the extension"
	make PG_CONFIG="$PG_CONFIG" -o sidecar -j2 >/dev/null
	make PG_CONFIG="$PG_CONFIG" -o sidecar install >/dev/null
fi

WORK=$(mktemp -d /tmp/livenotify-bench-cpu.XXXXXX)
chown postgres "$WORK"
cleanup() {
	local rc=$?
	_livenotify_cleanup || true
	rm -rf "$WORK"
	exit $rc
}
_livenotify_trap_set=1
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The cluster: the write-path benchmark's settings that matter to one backend's work.
CLUSTER=$(cluster_dir bench-cpu)
cluster_start "$CLUSTER" "$PORT" "
# --- bench/write-cpu.sh ---
livenotify.ring_size = '64MB'
shared_buffers = '512MB'
fsync = on
synchronous_commit = on
autovacuum = off
max_wal_size = '8GB'
checkpoint_timeout = '30min'
"
q() {
	PGHOST=$CLUSTER PGPORT=$PORT PGUSER=postgres "$LIVENOTIFY_PG_BIN/psql" -X -q -At \
		-v ON_ERROR_STOP=1 "$@"
}
q -d postgres -c "CREATE DATABASE bench"
q -d bench -c "CREATE EXTENSION livenotify"
for t in t_plain t_livenotify; do
	q -d bench -c "CREATE TABLE $t (
    id bigserial PRIMARY KEY,
    user_id integer NOT NULL,
    type varchar(50) NOT NULL,
    title varchar(255) NOT NULL,
    message text NOT NULL,
    is_read boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    extra jsonb
)"
done
q -d bench -c "SELECT livenotify.register('t_livenotify', 'user_id', 'type', 'id', 'is_read')" \
	>/dev/null
# Single-user mode needs the cluster stopped.
_as_postgres "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$CLUSTER/data" -m fast -w stop >/dev/null

# The statements: write-path.sh's INSERT with the values its pgbench script draws, fixed.
# Single-user mode reads one statement per line, each its own transaction.
for t in t_plain t_livenotify; do
	awk -v t="$t" -v n="$ROWS" 'BEGIN {
		srand(1)
		split("comment like follow mention", kinds, " ")
		for (i = 0; i < n; i++) {
			u = int(rand() * 1000) + 1; a = int(rand() * 1000) + 1; p = int(rand() * 100000) + 1
			printf "INSERT INTO %s (user_id, type, title, message, extra) VALUES (%d, \x27%s\x27, " \
				"\x27user%d commented on your post \"Weekend photos from the lake house\"\x27, " \
				"\x27user%d wrote: Great pictures! The one with the boat at sunset is my favourite. " \
				"Are you going back there next summer? We should plan a trip together with the " \
				"others, let me know which weekend works for you.\x27, jsonb_build_object(" \
				"\x27post_id\x27, %d, \x27actor_id\x27, %d, \x27url\x27, \x27/posts/%d\x27))\n",
				t, u, kinds[i % 4 + 1], a, a, p, a, p
		}
	}' >"$WORK/$t.sql"
done
: >"$WORK/empty.sql"
chmod 644 "$WORK"/*.sql

# instructions INPUT [OPTION...]: instructions callgrind counts for one single-user backend
# running INPUT's statements.
instructions() {
	local input=$1 out
	shift
	out=$WORK/cg.$RANDOM
	runuser -u postgres -- valgrind --tool=callgrind --callgrind-out-file="$out" \
		"$LIVENOTIFY_PG_BIN/postgres" --single -D "$CLUSTER/data" "$@" bench \
		<"$input" >"$out.stdout" 2>"$out.stderr" ||
		{ tail -20 "$out.stderr" >&2; die "postgres --single failed under callgrind"; }
	grep -q "ERROR" "$out.stdout" && { grep "ERROR" "$out.stdout" | head -3 >&2; die "a statement failed"; }
	sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$out.stderr"
}

log "callgrind: start-up alone"
BASE=$(instructions "$WORK/empty.sql")
declare -A PER_TXN=()
for cfg in "${CONFIGS[@]}"; do
	log "callgrind: $cfg, $ROWS transactions"
	case $cfg in
	t_livenotify_off) total=$(instructions "$WORK/t_livenotify.sql" -c livenotify.enabled=off) ;;
	*) total=$(instructions "$WORK/$cfg.sql") ;;
	esac
	PER_TXN[$cfg]=$(((total - BASE) / ROWS))
done

# The rows really went through the trigger: a short run without callgrind, whose ring (a
# single-user backend has its own) must hold every row.
{ head -n 10 "$WORK/t_livenotify.sql"; echo "SELECT 'enqueued=' || enqueued FROM livenotify.stats"; } |
	runuser -u postgres -- "$LIVENOTIFY_PG_BIN/postgres" --single -D "$CLUSTER/data" bench \
		>"$WORK/check.out" 2>&1
grep -q '"enqueued=10"' "$WORK/check.out" ||
	{ cat "$WORK/check.out" >&2; die "the trigger did not queue the 10 rows of the check run"; }

plain=${PER_TXN[t_plain]}
ln=${PER_TXN[t_livenotify]}
off=${PER_TXN[t_livenotify_off]}
REPORT=$WORK/report.md
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$ROOT" diff --quiet HEAD -- extension 2>/dev/null || REV="$REV with uncommitted changes to extension/"
{
	printf '%s\n\n' "$SECTION"
	printf '`bash bench/write-cpu.sh` (%s UTC, commit %s): %s single-row INSERT transactions in\n' \
		"$(date -u '+%Y-%m-%d %H:%M')" "$REV" "$ROWS"
	printf 'one single-user backend under callgrind, start-up (%s instructions) subtracted.\n\n' "$BASE"
	printf '| config | instructions per transaction |\n|---|---:|\n'
	for cfg in "${CONFIGS[@]}"; do
		printf '| %s | %s |\n' "$cfg" "${PER_TXN[$cfg]}"
	done
	printf '\n- the trigger per row: %s instructions (%s of them PostgreSQL'"'"'s trigger machinery, the\n' \
		$((ln - plain)) $((off - plain))
	printf '  `enabled = off` config)\n'
	printf -- '- plain / livenotify: %s (the throughput ratio of a CPU-bound server if nothing else\n' \
		"$(awk -v a="$plain" -v b="$ln" 'BEGIN { printf "%.3f", a / b }')"
	printf '  differed; a real server'"'"'s transaction also pays for the protocol round trip)\n'
} >"$REPORT"
cat "$REPORT"

if [ "$WRITE_DOCS" = 1 ]; then
	# Replace the section (up to the next "## " heading), or append it.
	awk -v s="$SECTION" -v r="$REPORT" '
		/^## / { if (skip) skip = 0; if ($0 == s) { while ((getline l < r) > 0) print l; print ""; skip = 1; done = 1; next } }
		!skip
		END { if (!done) { print ""; while ((getline l < r) > 0) print l } }' "$DOC" >"$WORK/doc.md"
	cat "$WORK/doc.md" >"$DOC"
	log "written to $DOC ($SECTION)"
fi
