#!/usr/bin/env bash
# bench/bulk-load.sh: what a bulk load costs a backend with livenotify (issue 11).
#
# A transaction keeps its entries in backend memory until COMMIT, bounded by
# livenotify.max_pending (8MB by default); past it they collapse into one 'overflow' entry
# per source.  This measures, on one private cluster, for each row count in BULK_ROWS and
# each load in BULK_MODES (insert: INSERT ... SELECT FROM generate_series; copy: COPY FROM
# PROGRAM), into
#
#   t_plain   the Django-shaped table, not registered (no trigger)
#   t_live    the same table registered with livenotify.register(..., read_column => 'is_read')
#   t_live_off  t_live in a session with livenotify.enabled = off: the trigger fires and
#             returns at once, so this is what PostgreSQL's AFTER ROW trigger machinery
#             (its after-trigger event queue, kept until the end of the statement) costs
#             by itself
#
#   - the backend's peak private memory during the load: the largest RssAnon of
#     /proc/PID/status, sampled every 20 ms from a fresh session's backend (RssAnon leaves
#     out the shared buffers and the ring the backend touches, which VmHWM counts);
#   - the load's and the COMMIT's duration (psql \timing), and the entries the commit put
#     into the ring (livenotify.position() before and after);
#
# and the COMMIT duration of t_live transactions of 1 row, of BULK_UNDER_ROWS rows (under
# the bound: every entry is copied into the ring under its exclusive lock) and of 200k rows
# (overflowed: one entry), median of 5, beside t_plain's COMMITs of as many rows: the
# difference is the time the commit callback holds the ring's lock (the rest is the WAL
# flush every commit pays, larger after a large transaction).
#
# As root on Debian 12, after `make install`: starts a private cluster (fsync on,
# livenotify.ring_size 64MB, shared_buffers 128MB), prints a table, writes it into
# docs/benchmarks.md (section "Bulk loads (issue 11)") with BENCH_WRITE_DOCS=1 (the
# default), stops the cluster on exit.  The measuring part holds /tmp/livenotify-bench.lock
# (LIVENOTIFY_BENCH_LOCKED=1 when the caller holds it).
#
# Environment: BENCH_PORT (54345), BULK_ROWS ("1000000"; e.g. "1000000 10000000"),
# BULK_MODES ("insert copy"), BULK_UNDER_ROWS (20000), BENCH_WRITE_DOCS (1),
# LIVENOTIFY_PG_BIN (the PostgreSQL 15 bin directory), LIVENOTIFY_KEEP_CLUSTER=1.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOG_TAG=bench
# shellcheck source=test/lib.sh
source test/lib.sh

PORT=${BENCH_PORT:-54345}
ROWS_LIST=${BULK_ROWS:-1000000}
MODES=${BULK_MODES:-insert copy}
UNDER_ROWS=${BULK_UNDER_ROWS:-20000}
WRITE_DOCS=${BENCH_WRITE_DOCS:-1}
PSQL=$LIVENOTIFY_PG_BIN/psql
DB=bulk
DOC=docs/benchmarks.md

case $PORT in 5432 | 54329 | 54330 | 54331) die "port $PORT belongs to another cluster" ;; esac
[ "$(id -u)" -eq 0 ] || die "run as root (runuser postgres, /proc of the backend)"

WORK=$(mktemp -d /tmp/livenotify-bulk-work.XXXXXX)
CLUSTER=$(cluster_dir bulk)
cluster_start "$CLUSTER" "$PORT" "livenotify.ring_size = '64MB'
shared_buffers = '128MB'
max_wal_size = '8GB'
checkpoint_timeout = '30min'" || die "cluster did not start"
trap 'rc=$?; rm -rf "$WORK"; _livenotify_cleanup; exit $rc' EXIT

if [ "${LIVENOTIFY_BENCH_LOCKED:-0}" != 1 ]; then
	exec 8>/tmp/livenotify-bench.lock
	log "bench: waiting for /tmp/livenotify-bench.lock"
	flock 8
fi

q() { env PGOPTIONS="${SESSION_OPTIONS:-}" "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -h "$CLUSTER" -p "$PORT" -U postgres -d "$DB" "$@"; }
"$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$CLUSTER" -p "$PORT" -U postgres -d postgres \
	-c "CREATE DATABASE $DB" >/dev/null
q >/dev/null <<'SQL'
CREATE EXTENSION livenotify;
CREATE TABLE t_plain (
    id bigserial PRIMARY KEY, user_id integer NOT NULL, type varchar(50) NOT NULL,
    title varchar(255) NOT NULL, message text NOT NULL, is_read boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(), extra jsonb);
CREATE TABLE t_live (LIKE t_plain INCLUDING ALL);
SELECT livenotify.register('t_live', read_column => 'is_read');
SQL

load_sql() { # TABLE MODE ROWS
	case $2 in
		insert)
			echo "INSERT INTO $1 (user_id, type, title, message)
			      SELECT i % 1000, 'bulk', 'bulk ' || i, 'm' FROM generate_series(1, $3) i;" ;;
		copy)
			echo "COPY $1 (user_id, type, title, message) FROM PROGRAM
			      \$p\$seq 1 $3 | awk -v OFS='\\t' '{print \$1 % 1000, \"bulk\", \"bulk \" \$1, \"m\"}'\$p\$;" ;;
	esac
}

# One load in a fresh session; prints "peak_rssanon_kB start_rssanon_kB load_ms commit_ms entries".
measure() { # CONFIG MODE ROWS
	local table=${1%_off} mode=$2 rows=$3 script=$WORK/load.sql out=$WORK/load.out pid="" psql_pid
	local peak=0 start="" v pos0 pos1
	q -c "TRUNCATE $table" >/dev/null
	q -c "CHECKPOINT" >/dev/null
	rm -f "$WORK/pid"
	cat >"$script" <<-EOF
		\o $WORK/pid.tmp
		SELECT pg_backend_pid();
		\o
		\! mv $WORK/pid.tmp $WORK/pid
		SELECT pg_sleep(0.3);
		BEGIN;
		\timing on
		$(load_sql "$table" "$mode" "$rows")
		COMMIT;
		\timing off
		SELECT pg_sleep(0.2);
	EOF
	pos0=$(q -c "SELECT last_seq FROM livenotify.position()")
	if [ "$1" != "$table" ]; then
		SESSION_OPTIONS="-c livenotify.enabled=off" q -f "$script" >"$out" 2>&1 &
	else
		q -f "$script" >"$out" 2>&1 &
	fi
	psql_pid=$!
	while [ -z "$pid" ] && kill -0 "$psql_pid" 2>/dev/null; do
		[ -s "$WORK/pid" ] && pid=$(cat "$WORK/pid")
		sleep 0.01
	done
	while kill -0 "$psql_pid" 2>/dev/null; do
		v=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
		if [ -n "$v" ]; then
			[ -n "$start" ] || start=$v
			[ "$v" -gt "$peak" ] && peak=$v
		fi
		sleep 0.02
	done
	wait "$psql_pid" || { cat "$out" >&2; die "load failed: $table $mode $rows"; }
	pos1=$(q -c "SELECT last_seq FROM livenotify.position()")
	[ -z "${BULK_DEBUG:-}" ] || { cat "$script" "$out" >&2; echo "peak=$peak start=$start pid=$pid" >&2; }
	# psql prints "Time: 1234.567 ms (...)" for the load, then for the COMMIT.
	read -r load_ms commit_ms < <(awk '/^Time:/ {printf "%s ", $2} END {print ""}' "$out")
	echo "$peak $start $load_ms $commit_ms $((pos1 - pos0))"
}

# Median COMMIT duration of 5 transactions of ROWS rows into TABLE (one session).
commit_median() { # TABLE ROWS
	local script=$WORK/commit.sql i
	: >"$script"
	echo '\timing off' >>"$script"
	for i in 1 2 3 4 5; do
		printf 'BEGIN;\n%s\n\\timing on\nCOMMIT;\n\\timing off\n' "$(load_sql "$1" insert "$2")" >>"$script"
	done
	q -c "TRUNCATE $1" >/dev/null
	q -f "$script" | awk '/^Time:/ {print $2}' | sort -n | sed -n 3p
}

mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
s() { awk -v m="$1" 'BEGIN {printf "%.1f", m / 1000}'; }

RESULTS=$WORK/results.md
{
	echo "| rows | load | table | backend peak RssAnon (MB; at start) | load (s) | COMMIT (ms) | entries into the ring |"
	echo "|---:|---|---|---:|---:|---:|---:|"
} >"$RESULTS"
for rows in $ROWS_LIST; do
	for mode in $MODES; do
		for table in t_plain t_live t_live_off; do
			log "bench: $rows rows, $mode, $table"
			read -r peak start load_ms commit_ms entries < <(measure "$table" "$mode" "$rows")
			echo "| $rows | $mode | $table | $(mb "$peak") ($(mb "$start")) | $(s "$load_ms") | $commit_ms | $entries |" >>"$RESULTS"
		done
	done
done

log "bench: COMMIT durations"
c_plain=$(commit_median t_plain 1)
c_one=$(commit_median t_live 1)
c_under=$(commit_median t_live "$UNDER_ROWS")
under_bytes=$(q -c "SELECT pg_size_pretty(sum(octet_length(row_to_json(t)::text) + 80)) FROM (SELECT * FROM t_live LIMIT $UNDER_ROWS) t")
c_over=$(commit_median t_live 200000)
c_plain_under=$(commit_median t_plain "$UNDER_ROWS")
c_plain_over=$(commit_median t_plain 200000)
{
	echo
	echo "| COMMIT of (median of 5) | ms |"
	echo "|---|---:|"
	echo "| t_plain, 1 row | $c_plain |"
	echo "| t_live, 1 row (1 entry copied) | $c_one |"
	echo "| t_live, $UNDER_ROWS rows (under max_pending: $UNDER_ROWS entries, about $under_bytes, copied under the lock) | $c_under |"
	echo "| t_plain, $UNDER_ROWS rows | $c_plain_under |"
	echo "| t_live, 200000 rows (overflowed: 1 entry copied) | $c_over |"
	echo "| t_plain, 200000 rows | $c_plain_over |"
} >>"$RESULTS"

cat "$RESULTS"

if [ "$WRITE_DOCS" = 1 ]; then
	cpus=$(nproc)
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	/usr/bin/python3 - "$DOC" "$RESULTS" "$cpus" "$load" "$commit" "$ROWS_LIST" "$MODES" <<'PY'
import re, sys, datetime
doc, results, cpus, load, commit, rows, modes = sys.argv[1:]
now = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
body = f"""## Bulk loads (issue 11)

Measured {now} by `BULK_ROWS="{rows}" BULK_MODES="{modes}" bash bench/bulk-load.sh`
(commit {commit}); {cpus} CPUs shared with other work (load average {load} at the end).
PostgreSQL 15, private cluster, fsync on, shared_buffers 128MB, livenotify.ring_size 64MB,
livenotify.max_pending 8MB (the default). Each load is one transaction in a fresh session;
"backend peak RssAnon" is the largest private (anonymous) resident memory of that backend,
sampled every 20 ms (shared buffers and the ring are not in it).

{open(results).read()}"""
text = open(doc).read()
m = re.search(r"^## Bulk loads \(issue 11\)\n.*?(?=^## |\Z)", text, re.S | re.M)
text = text[:m.start()] + body + "\n" + text[m.end():] if m else text.rstrip("\n") + "\n\n" + body
open(doc, "w").write(text)
PY
	log "bench: wrote $DOC"
fi
