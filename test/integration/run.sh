#!/usr/bin/env bash
# test/integration/run.sh: livenotifyd end to end -- a private cluster, real daemons, real
# WebSocket clients (test/integration/test_livenotifyd.py).  Run by test/run-all.sh (suite
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
ensure_packages python3-websockets python3-psycopg2 postgresql-15
if [ ! -x "$DAEMON" ]; then
	log "integration: $DAEMON is missing, building the sidecar"
	make -s sidecar >/dev/null || die "the sidecar did not build"
fi

rm -rf "$WORKDIR"
mkdir -p "$WORKDIR"

# Daemons the tests start are killed by their pid (listed in daemons.pid) if the Python
# process dies without stopping them, then lib.sh's trap stops the cluster.
kill_daemons() {
	local pid
	[ -f "$WORKDIR/daemons.pid" ] || return 0
	while read -r pid; do
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || continue
		log "integration: killing leftover livenotifyd $pid"
		kill -TERM "$pid" 2>/dev/null
		sleep 1
		kill -KILL "$pid" 2>/dev/null
	done <"$WORKDIR/daemons.pid"
	return 0
}

CLUSTER=$(cluster_dir integration)
# A ring larger than lib.sh's 1 MB: the slow-client test commits ~1.6 MB in a burst, and an
# overwritten ring would turn its exact expectations into a `resync`.
cluster_start "$CLUSTER" "$PORT" "livenotify.ring_size = '64MB'" || die "cluster did not start"
# lib.sh's EXIT trap (installed by cluster_start) stops the cluster; run kill_daemons first.
trap 'rc=$?; kill_daemons; _livenotify_cleanup; exit $rc' EXIT

psql_admin() {
	"$LIVENOTIFY_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$CLUSTER" -p "$PORT" -U postgres "$@"
}
psql_admin -d postgres -c "CREATE DATABASE $DB" || die "CREATE DATABASE failed"
# The table is shaped like Django's api_notification (as in sql/setup.sql) and registered
# with the documented call; authtoken_token is Django REST framework's token table, for the
# daemon in auth = sql mode.
psql_admin -d "$DB" >/dev/null <<'SQL' || die "schema setup failed"
CREATE EXTENSION livenotify;
CREATE TABLE api_notification (
    id          bigserial PRIMARY KEY,
    user_id     integer NOT NULL,
    type        varchar(50) NOT NULL,
    title       varchar(255) NOT NULL,
    message     text NOT NULL,
    is_read     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    extra       jsonb
);
CREATE INDEX ON api_notification (user_id, id);
CREATE INDEX ON api_notification (user_id) WHERE NOT is_read;
SELECT livenotify.register('api_notification', 'user_id', 'type', 'id', 'is_read');
CREATE TABLE authtoken_token (
    key      varchar(40) PRIMARY KEY,
    user_id  integer NOT NULL UNIQUE,
    created  timestamptz NOT NULL DEFAULT now()
);
SQL

rc=0
"$PYTHON" test/integration/test_livenotifyd.py \
	--daemon="$DAEMON" \
	--conninfo="host=$CLUSTER port=$PORT user=postgres dbname=$DB" \
	--cluster-dir="$CLUSTER" --pg-bin="$LIVENOTIFY_PG_BIN" --workdir="$WORKDIR" "$@" || rc=$?
if [ $rc -ne 0 ]; then
	log "integration: daemon logs in $WORKDIR"
	cluster_log "$CLUSTER"
fi
exit $rc
