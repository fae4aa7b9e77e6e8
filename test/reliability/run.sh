#!/usr/bin/env bash
# test/reliability/run.sh: fault, overload and hostile-input tests with counted figures
# (docs/reliability.md).  Run by test/run-all.sh (suite `reliability`, and `sidecar_asan`
# with --daemon=build/sidecar-asan/livenotifyd) and by `make soak` (--long), as root:
#
#   bash test/reliability/run.sh [--long] [--daemon PATH] [--only NAME_PART]...
#
# It starts its own clusters: one test restarts PostgreSQL and one needs a tiny ring
# (livenotify.ring_size is fixed at server start), neither of which may disturb other suites.
# Ports: see PORT below (54370-54379, or 54380-54389 for --tag=soak).
# LIVENOTIFY_SEED=N replays a randomized run; LIVENOTIFY_KEEP_CLUSTER=1 keeps the clusters.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
# shellcheck source=test/lib.sh
source test/lib.sh

PORT=${LIVENOTIFY_RELIABILITY_PORT:-}
DAEMON=$ROOT/build/sidecar/livenotifyd
LONG=""
TAG=""
ARGS=()
while [ $# -gt 0 ]; do
	case $1 in
		--long) LONG=--long; ARGS+=(--long) ;;
		--daemon) DAEMON=$2; shift ;;
		--daemon=*) DAEMON=${1#--daemon=} ;;
		--tag=*) TAG=${1#--tag=} ;;
		*) ARGS+=("$1") ;;
	esac
	shift
done
WORKDIR=$ROOT/build/reliability${TAG:+-$TAG}
# Two halves of the private range 54370-54389, so that a soak run (which may wait for the
# benchmark lock and start late) never collides with a make-test run: 54370-54379 for
# make test, 54380-54389 for make soak.  In each: cluster, tiny-ring cluster, TCP proxy,
# then six daemon ports used round robin.
if [ -z "$PORT" ]; then
	if [ "$TAG" = soak ]; then PORT=54380; else PORT=54370; fi
fi
BASE=$PORT
DB=livenotify_reliability
PYTHON=/usr/bin/python3

[ "$(id -u)" -eq 0 ] || die "run as root (runuser postgres for the cluster)"
ensure_packages python3-websockets python3-psycopg2 postgresql-15
if [ ! -x "$DAEMON" ]; then
	log "reliability: $DAEMON is missing, building the sidecar"
	make -s sidecar >/dev/null || die "the sidecar did not build"
fi

rm -rf "$WORKDIR"
mkdir -p "$WORKDIR"

kill_daemons() {
	local pid
	[ -f "$WORKDIR/daemons.pid" ] || return 0
	while read -r pid; do
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || continue
		# A daemon left SIGSTOPped by a failed ring test must be continued to see SIGTERM.
		kill -CONT "$pid" 2>/dev/null
		kill -TERM "$pid" 2>/dev/null
		sleep 0.5
		kill -KILL "$pid" 2>/dev/null
	done <"$WORKDIR/daemons.pid"
	return 0
}

# The first four ports of the half hold the two clusters and the TCP proxy.  Ports in this
# range are also in the kernel's ephemeral range, so a benchmark's client socket may hold
# one for a while: take the next free one rather than fail.
SPARE=($PORT $((PORT + 1)) $((PORT + 2)) $((PORT + 3)))
port_free() {
	"$PYTHON" -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}
# start_on NAME CONF: start a cluster on the first free spare port; sets STARTED_DIR/PORT.
start_on() {
	local name=$1 conf=$2 p dir rest=()
	for p in "${SPARE[@]}"; do
		if [ -z "${STARTED_DIR:-}" ] && port_free "$p"; then
			dir=$(cluster_dir "$name")
			if cluster_start "$dir" "$p" "$conf"; then
				STARTED_DIR=$dir STARTED_PORT=$p
				continue
			fi
			cluster_stop "$dir"
		fi
		rest+=("$p")
	done
	SPARE=("${rest[@]}")
	[ -n "${STARTED_DIR:-}" ]
}
# 64 MB ring: the main workload must never overflow it (that is the ring test's job).
STARTED_DIR=""
# TCP as well: the database-outage test puts a TCP proxy in front of it.
start_on reliability "livenotify.ring_size = '64MB'
max_connections = 200
listen_addresses = '127.0.0.1'" || die "cluster did not start"
CLUSTER=$STARTED_DIR PORT=$STARTED_PORT
# The smallest ring the GUC allows: a stalled reader overflows it within a few hundred rows.
STARTED_DIR=""
start_on reliability-ring "livenotify.ring_size = '64kB'" || die "ring cluster did not start"
RING=$STARTED_DIR RING_PORT=$STARTED_PORT
# 0: the proxy takes a port from the daemons' pool.
PROXY_PORT=0
for p in "${SPARE[@]}"; do
	if port_free "$p"; then PROXY_PORT=$p; break; fi
done
trap 'rc=$?; kill_daemons; _livenotify_cleanup; exit $rc' EXIT

setup_db() {
	local dir=$1 port=$2
	"$LIVENOTIFY_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres \
		-d postgres -c "CREATE DATABASE $DB" || return 1
	"$LIVENOTIFY_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres \
		-d "$DB" -f test/api_notification.sql >/dev/null || return 1
	"$LIVENOTIFY_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres \
		-d "$DB" >/dev/null <<'SQL'
-- The shared Django-shaped table (test/api_notification.sql), registered the documented way.
SELECT livenotify.register('api_notification', 'user_id', 'type', 'id', 'is_read');
-- Django REST framework's token table, for the daemon in auth = sql mode.
CREATE TABLE authtoken_token (
    key      varchar(40) PRIMARY KEY,
    user_id  integer NOT NULL UNIQUE,
    created  timestamptz NOT NULL DEFAULT now()
);
SQL
	"$LIVENOTIFY_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres \
		-d "$DB" -f test/reliability/plpgsql.sql >/dev/null
}
setup_db "$CLUSTER" "$PORT" || die "schema setup failed"
setup_db "$RING" "$RING_PORT" || die "ring schema setup failed"

rc=0
"$PYTHON" test/reliability/reliability.py \
	--daemon="$DAEMON" \
	--conninfo="host=$CLUSTER port=$PORT user=postgres dbname=$DB" \
	--ring-conninfo="host=$RING port=$RING_PORT user=postgres dbname=$DB" \
	--ring-cluster="$RING" --cluster-dir="$CLUSTER" --pg-bin="$LIVENOTIFY_PG_BIN" \
	--pg-port="$PORT" --proxy-port="$PROXY_PORT" --port-base=$((BASE + 4)) \
	--port-max=$((BASE + 9)) --workdir="$WORKDIR" --figures="$WORKDIR/figures.json" \
	"${ARGS[@]}" || rc=$?

# A backend killed by a signal restarts the whole cluster: none may have happened.  (The
# immediate-shutdown test stops the server on purpose; that is not "terminated by signal".)
for d in "$CLUSTER" "$RING"; do
	if grep -E 'terminated by signal|PANIC|TRAP' "$d/log/postgresql.log" >&2; then
		log "reliability: the server log of $d shows a crash"
		rc=1
	fi
done
# Sanitizer builds print their reports into the daemon logs.
if grep -lE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$WORKDIR"/livenotifyd-*.log \
	2>/dev/null; then
	grep -hE -A12 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' \
		"$WORKDIR"/livenotifyd-*.log | head -n 80
	log "reliability: sanitizer reports in the daemon logs above"
	rc=1
fi
if [ $rc -ne 0 ]; then
	log "reliability: daemon logs in $WORKDIR"
	cluster_log "$CLUSTER"
	cluster_log "$RING"
fi
exit $rc
