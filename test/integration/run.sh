#!/usr/bin/env bash
# test/integration/run.sh: livenotifyd end to end -- a private cluster, real daemons, real
# WebSocket clients (test/integration/test_livenotifyd.py runs the test_*.py modules, one per
# concern, with the helpers of lntest.py).  Run by test/run-all.sh (suite
# `integration`) or alone, as root, after the extension is installed and the sidecar built:
#
#   bash test/integration/run.sh [--only NAME_PART]... [-v]
#
# It starts its own cluster instead of using the one run-all.sh passes in PGHOST/PGPORT:
# one test stops and restarts PostgreSQL, which must not disturb the other suites.
#
# Environment: LIVENOTIFY_INTEGRATION_PORT (default LIVENOTIFY_TEST_PORT + 2 = 54331),
# LIVENOTIFY_INTEGRATION_STRESS=N repeats the resume seam rounds N times,
# LIVENOTIFY_KEEP_CLUSTER=1 keeps the cluster directory; the daemons' logs stay in
# build/integration/ either way.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
# shellcheck source=test/lib.sh
source test/lib.sh

PORT=${LIVENOTIFY_INTEGRATION_PORT:-$((${LIVENOTIFY_TEST_PORT:-54329} + 2))}
DAEMON=$ROOT/build/sidecar/livenotifyd
WORKDIR=$ROOT/build/integration
DB=livenotify_integration
# The Debian interpreter: python3-websockets and python3-psycopg2 are installed for it, and a
# python3 earlier in PATH (pyenv, a virtualenv) may not have them.
PYTHON=/usr/bin/python3

[ "$(id -u)" -eq 0 ] || die "run as root (runuser postgres for the cluster)"
ensure_packages python3-websockets python3-psycopg2 postgresql-15 openssl
if [ ! -x "$DAEMON" ]; then
	log "integration: $DAEMON is missing, building the sidecar"
	make -s sidecar >/dev/null || die "the sidecar did not build"
fi

# One run at a time per checkout: every run uses $WORKDIR (its daemons.pid and the logs), so a
# second run would wipe the first one's logs and its EXIT trap would stop the first one's
# daemons (seen with the sidecar_asan suite running this script while another run was on).
# The lock is on fd 9, which the cluster and the test process must not inherit (9>&- below),
# or a leftover server would hold it.
mkdir -p "$ROOT/build"
exec 9>"$ROOT/build/integration.lock"
if ! flock -n 9; then
	log "integration: another run in this checkout holds build/integration.lock, waiting"
	flock -w 1800 9 || die "build/integration.lock still held after 30 minutes"
fi

rm -rf "$WORKDIR"
mkdir -p "$WORKDIR"

# On any exit: the Python process (if a signal interrupted the run), then the daemons it
# started, by their pids (daemons.pid), which it cannot stop itself when it is killed; then
# lib.sh's trap stops the cluster.
PY_PID=
kill_daemons() {
	local pid alive=() i
	if [ -n "$PY_PID" ] && kill -0 "$PY_PID" 2>/dev/null; then
		kill -TERM "$PY_PID" 2>/dev/null
		wait "$PY_PID" 2>/dev/null
	fi
	[ -f "$WORKDIR/daemons.pid" ] || return 0
	while read -r pid; do
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive+=("$pid")
	done <"$WORKDIR/daemons.pid"
	[ ${#alive[@]} -gt 0 ] || return 0
	log "integration: stopping leftover livenotifyd ${alive[*]}"
	kill -TERM "${alive[@]}" 2>/dev/null
	# SIGTERM stops a daemon within 2 s (docs); past that, SIGKILL.
	for i in $(seq 1 30); do
		kill -0 "${alive[@]}" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "${alive[@]}" 2>/dev/null
	return 0
}

CLUSTER=$(cluster_dir integration)
# A ring larger than lib.sh's 1 MB: the slow-client test commits a few MB in a burst, and an
# overwritten ring would turn its exact expectations into a `resync`.
cluster_start "$CLUSTER" "$PORT" "livenotify.ring_size = '64MB'" 9>&- || die "cluster did not start"
# lib.sh's EXIT trap (installed by cluster_start) stops the cluster; run kill_daemons first.
trap 'rc=$?; kill_daemons; _livenotify_cleanup; exit $rc' EXIT

psql_admin() {
	"$LIVENOTIFY_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$CLUSTER" -p "$PORT" -U postgres "$@"
}
psql_admin -d postgres -c "CREATE DATABASE $DB" || die "CREATE DATABASE failed"
# The table is shaped like Django's api_notification (as in sql/setup.sql) and registered
# with the documented call; authtoken_token is Django REST framework's token table, for the
# daemon in auth = sql mode.
psql_admin -d "$DB" -f "$ROOT/test/api_notification.sql" >/dev/null || die "schema setup failed"
psql_admin -d "$DB" >/dev/null <<'SQL' || die "schema setup failed"
SELECT livenotify.register('api_notification', 'user_id', 'type', 'id', 'is_read');
CREATE TABLE authtoken_token (
    key      varchar(40) PRIMARY KEY,
    user_id  integer NOT NULL UNIQUE,
    created  timestamptz NOT NULL DEFAULT now()
);
SQL

# In the background and waited for: bash runs a trap only once the foreground command ends,
# so a SIGTERM (e.g. from a CI timeout) would otherwise wait for the whole run.
"$PYTHON" test/integration/test_livenotifyd.py \
	--daemon="$DAEMON" \
	--conninfo="host=$CLUSTER port=$PORT user=postgres dbname=$DB" \
	--cluster-dir="$CLUSTER" --pg-bin="$LIVENOTIFY_PG_BIN" --workdir="$WORKDIR" "$@" 9>&- &
PY_PID=$!
wait "$PY_PID"
rc=$?
PY_PID=
if [ $rc -ne 0 ]; then
	log "integration: daemon logs in $WORKDIR"
	cluster_log "$CLUSTER"
fi
exit $rc
