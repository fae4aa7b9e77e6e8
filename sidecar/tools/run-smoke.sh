#!/usr/bin/env bash
# sidecar/tools/run-smoke.sh: manual end-to-end check of livenotifyd (not part of `make test`).
#
# As root, with the extension installed into PostgreSQL 15 and the sidecar built:
#   bash sidecar/tools/run-smoke.sh
# Starts a private cluster (port $SMOKE_PG_PORT, default 55433, in a temporary directory),
# creates a Django-like api_notification table, registers it, starts livenotifyd in auth none
# mode on 127.0.0.1:$SMOKE_WS_PORT (default 18765), runs tools/smoke.py, and stops both.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PGBIN=/usr/lib/postgresql/15/bin
PG_PORT=${SMOKE_PG_PORT:-55433}
WS_PORT=${SMOKE_WS_PORT:-18765}
DIR=$(mktemp -d /tmp/livenotify-smoke.XXXXXX)
chown postgres "$DIR"
DAEMON_PID=""

cleanup() {
	[ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
	(cd /tmp && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DIR/data" stop -m fast >/dev/null 2>&1) || true
	rm -rf "$DIR"
}
trap cleanup EXIT

cd /tmp
runuser -u postgres -- "$PGBIN/initdb" -D "$DIR/data" -A trust >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
	-o "-p $PG_PORT -k $DIR -c listen_addresses='' -c shared_preload_libraries=livenotify" start >/dev/null
CONNINFO="host=$DIR port=$PG_PORT user=postgres dbname=postgres"
psql "$CONNINFO" -qX -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION livenotify;
CREATE TABLE api_notification (id bigserial PRIMARY KEY, user_id int NOT NULL, type text NOT NULL,
	text text, is_read boolean NOT NULL DEFAULT false, created timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON api_notification (user_id, id);
CREATE INDEX ON api_notification (user_id) WHERE NOT is_read;
SELECT livenotify.register('api_notification', 'user_id', 'type', 'id', 'is_read');
SQL

"$ROOT/build/sidecar/livenotifyd" --auth=none --port="$WS_PORT" --database-url="$CONNINFO" \
	2>"$DIR/livenotifyd.log" &
DAEMON_PID=$!
for _ in $(seq 50); do
	curl -sf "http://127.0.0.1:$WS_PORT/healthz" >/dev/null && break
	sleep 0.1
done
rc=0
/usr/bin/python3 "$ROOT/sidecar/tools/smoke.py" --port "$WS_PORT" --pg "$CONNINFO" || rc=$?
[ $rc -eq 0 ] || cat "$DIR/livenotifyd.log"
exit $rc
