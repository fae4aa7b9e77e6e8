#!/usr/bin/env bash
# test/demo.sh (`make demo`): livenotify end to end on this machine, for a person to try.
#
#   1. install the Debian packages that are missing (as root, or through sudo)
#   2. build the extension and livenotifyd, install the extension, `npm pack` the browser
#      client (client/) into build/client-package: the page imports that package
#   3. start a private PostgreSQL cluster (port 54350, livenotify preloaded) with Django's
#      api_notification table registered, plus a few sample rows
#   4. start livenotifyd (JWT HS256 with a demo secret, Origin = the demo page) and the
#      demo web server (demo/server.py, demo only)
#   5. print the page's URL, a token per demo user and psql commands; Ctrl-C stops it all
#
# Run as root (the cluster runs as `postgres`) or as a user with sudo (packages and the
# extension's install go through sudo; the cluster runs as that user).
# Environment: LIVENOTIFY_DEMO_PG_PORT (54350), LIVENOTIFY_DEMO_WS_PORT (8765),
# LIVENOTIFY_DEMO_METRICS_PORT (WS port + 1000, the daemon's default),
# LIVENOTIFY_DEMO_WEB_PORT (8000), LIVENOTIFY_DEMO_SECRET; LIVENOTIFY_DEMO_CHECK=1 checks the
# page in headless Chromium with a row inserted by psql, then stops (no Ctrl-C needed).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
# shellcheck source=test/lib.sh
source test/lib.sh

PG_PORT=${LIVENOTIFY_DEMO_PG_PORT:-54350}
WS_PORT=${LIVENOTIFY_DEMO_WS_PORT:-8765}
METRICS_PORT=${LIVENOTIFY_DEMO_METRICS_PORT:-$((WS_PORT + 1000))}
WEB_PORT=${LIVENOTIFY_DEMO_WEB_PORT:-8000}
SECRET=${LIVENOTIFY_DEMO_SECRET:-livenotify-demo-secret-not-for-production}
DB=demo
DAEMON=$ROOT/build/sidecar/livenotifyd
# Debian's interpreter: python3-psycopg2 is installed for it, not for a pyenv/venv python3.
PYTHON=/usr/bin/python3
PSQL=$LIVENOTIFY_PG_BIN/psql

DEMO_PACKAGES=(
	postgresql-15 postgresql-server-dev-15 libpq-dev make g++
	libwebsockets-dev nlohmann-json3-dev libjwt-dev libsystemd-dev cmake pkg-config
	python3-psycopg2
)
# The page imports the client as the npm package `npm pack` makes of client/: Debian's npm
# (with Debian's nodejs) unless the machine has an npm already.
command -v npm >/dev/null || DEMO_PACKAGES+=(npm)

if [ "$(id -u)" -eq 0 ]; then
	SUDO=()
else
	command -v sudo >/dev/null || die "run as root, or as a user with sudo"
	SUDO=(sudo)
	# PostgreSQL only refuses root: a sudo user runs the demo cluster as themselves, so
	# lib.sh's hand-over to the `postgres` account (runuser, chown) is not needed.
	_as_postgres() { (cd /tmp && "$@"); }
	chown() { :; }
fi

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# --- 1. packages --------------------------------------------------------------------------
step "packages"
if [ ${#SUDO[@]} -eq 0 ]; then
	ensure_packages "${DEMO_PACKAGES[@]}"
else
	sudo bash -c 'source test/lib.sh && ensure_packages "$@"' demo "${DEMO_PACKAGES[@]}" ||
		die "package installation failed"
fi

# --- 2. build and install -----------------------------------------------------------------
step "build the extension and livenotifyd"
make -s PG_CONFIG="$PG_CONFIG" -o sidecar -j2 >/dev/null || die "the extension did not build"
"${SUDO[@]}" make -s PG_CONFIG="$PG_CONFIG" -o sidecar install >/dev/null ||
	die "the extension did not install"
make -s sidecar >/dev/null || die "livenotifyd did not build"
[ -x "$DAEMON" ] || die "$DAEMON is missing after the build"
CLIENT_DIR=$(pack_client "$ROOT/build/client-package") || exit 1
log "demo: serving the client package packed by npm ($CLIENT_DIR)"

# --- 3. cluster ---------------------------------------------------------------------------
# A previous run that was killed (not stopped with Ctrl-C) may have left its cluster and
# processes behind on our ports: stop them, so that running the demo again just works.  A
# demo that is still running is left alone.
for old in /tmp/livenotify-demo.*; do
	[ -d "$old" ] || continue
	owner=$(cat "$old/owner" 2>/dev/null)
	if [ -n "$owner" ] && grep -qs 'demo\.sh' "/proc/$owner/cmdline"; then
		die "a demo is already running (pid $owner, $old): stop it with Ctrl-C first"
	fi
	if [ -f "$old/pids" ]; then
		while read -r pid; do
			# Only our own processes: the pid may belong to someone else by now.
			grep -qsE 'livenotifyd|demo/server\.py' "/proc/$pid/cmdline" && kill "$pid"
		done <"$old/pids"
	fi
	if [ -f "$old/data/postmaster.pid" ]; then
		log "demo: stopping the cluster a previous run left in $old"
		_as_postgres "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$old/data" -m fast -w stop >/dev/null 2>&1
	fi
	rm -rf "$old" 2>/dev/null || "${SUDO[@]}" rm -rf "$old"
done
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_busy "$PG_PORT" && die "port $PG_PORT is taken: set LIVENOTIFY_DEMO_PG_PORT"
port_busy "$WS_PORT" && die "port $WS_PORT is taken: set LIVENOTIFY_DEMO_WS_PORT"
port_busy "$METRICS_PORT" && die "port $METRICS_PORT is taken: set LIVENOTIFY_DEMO_METRICS_PORT"
port_busy "$WEB_PORT" && die "port $WEB_PORT is taken: set LIVENOTIFY_DEMO_WEB_PORT"

step "PostgreSQL cluster on port $PG_PORT"
# The port lies in Linux's ephemeral range (32768-60999): on a busy machine an outgoing
# connection's TIME_WAIT can hold 127.0.0.1:$PG_PORT for a minute, and the TCP bind fails.
# Everything here connects through the Unix socket; TCP is for the person trying the demo
# with a client of their own, so the last try does without it.
for try in 1 2 3; do
	extra="listen_addresses = '127.0.0.1'"
	[ "$try" -lt 3 ] || extra="listen_addresses = ''"
	CLUSTER=$(cluster_dir demo)
	cluster_start "$CLUSTER" "$PG_PORT" "$extra" && break
	cluster_stop "$CLUSTER"
	[ "$try" -lt 3 ] || die "the cluster did not start on port $PG_PORT"
	log "demo: 127.0.0.1:$PG_PORT is busy; trying again"
	sleep 2
done
[ -z "$extra" ] || log "demo: the cluster listens on its Unix socket only ($CLUSTER, port $PG_PORT)"
echo $$ >"$CLUSTER/owner"

PIDS=()
stop_services() {
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
}
# lib.sh's EXIT trap (installed by cluster_start) stops the cluster; stop our processes first.
trap 'rc=$?; stop_services; _livenotify_cleanup; echo; log "demo: stopped"; exit $rc' EXIT

psql_demo() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$CLUSTER" -p "$PG_PORT" -U postgres "$@"; }
psql_demo -d postgres -c "CREATE DATABASE $DB" || die "CREATE DATABASE failed"
# Django's api_notification as `manage.py migrate` creates it, registered with livenotify
# and with the indexes docs/sql-api.md recommends for catch-up and unread counts.
psql_demo -d "$DB" -f "$ROOT/test/api_notification.sql" >/dev/null || die "schema setup failed"
psql_demo -d "$DB" >/dev/null <<'SQL' || die "schema setup failed"
SELECT livenotify.register('api_notification', 'user_id', 'type', 'id', 'is_read');
INSERT INTO api_notification (user_id, type, title, message, is_read) VALUES
    (1, 'follow',  'Bob started following you', '', true),
    (1, 'comment', 'Bob commented on your post', '“Nice write-up!”', false),
    (2, 'like',    'Alice liked your photo', '', false);
SQL

# --- 4. livenotifyd and the demo server ---------------------------------------------------
DSN="host=$CLUSTER port=$PG_PORT user=postgres dbname=$DB"
ORIGINS="http://127.0.0.1:$WEB_PORT,http://localhost:$WEB_PORT"
step "livenotifyd on port $WS_PORT, demo page on port $WEB_PORT"
# The secret goes through the environment, not argv (visible to every user in ps).
# Metrics are on their own loopback listener; tokens carry aud=livenotify (demo/server.py).
LIVENOTIFY_JWT_SECRET=$SECRET "$DAEMON" --listen-address=127.0.0.1 --port="$WS_PORT" \
	--metrics-listen="127.0.0.1:$METRICS_PORT" --jwt-audience=livenotify \
	--auth=jwt --allowed-origins="$ORIGINS" --database-url="$DSN" \
	--source=api_notification >"$CLUSTER/livenotifyd.log" 2>&1 </dev/null &
PIDS+=($!)
LIVENOTIFY_JWT_SECRET=$SECRET "$PYTHON" demo/server.py --listen=127.0.0.1 --port="$WEB_PORT" \
	--dsn="$DSN" --ws-port="$WS_PORT" --client-dir="$CLIENT_DIR" >"$CLUSTER/demo-server.log" 2>&1 </dev/null &
PIDS+=($!)
printf '%s\n' "${PIDS[@]}" >"$CLUSTER/pids"

wait_http() {
	local url=$1 what=$2 logfile=$3
	for _ in $(seq 1 100); do
		"$PYTHON" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
			"$url" 2>/dev/null && return 0
		sleep 0.1
	done
	die "$what did not come up; its log: $logfile"
}
wait_http "http://127.0.0.1:$WS_PORT/healthz" livenotifyd "$CLUSTER/livenotifyd.log"
wait_http "http://127.0.0.1:$WEB_PORT/healthz" "the demo server" "$CLUSTER/demo-server.log"

# --- 5. tell the person what to do --------------------------------------------------------
token() { LIVENOTIFY_JWT_SECRET=$SECRET "$PYTHON" demo/server.py --token-for="$1"; }
PSQL_CMD="$PSQL -h $CLUSTER -p $PG_PORT -U postgres $DB"
cat <<EOF

$(printf '\033[1m')livenotify demo is running$(printf '\033[0m')

  Open  http://127.0.0.1:$WEB_PORT/?user=1   (alice; open it in two tabs)
  and   http://127.0.0.1:$WEB_PORT/?user=2   (bob)

  Demo tokens (JWT HS256, 12 h, secret "$SECRET"):
    alice (1): $(token 1)
    bob   (2): $(token 2)
  WebSocket: ws://127.0.0.1:$WS_PORT/ws (send {"type":"auth","token":"..."} first)

  Insert a notification (any SQL path is delivered, no app code involved):
    $PSQL_CMD -c "INSERT INTO api_notification (user_id, type, title, message) VALUES (1, 'like', 'Bob liked your post', 'from psql')"
  Mark alice's notifications as read (both of her tabs update their badge):
    $PSQL_CMD -c "UPDATE api_notification SET is_read = true WHERE user_id = 1"
  A skipped type (the rules default to skipping event and message): nothing is pushed
    $PSQL_CMD -c "INSERT INTO api_notification (user_id, type, title, message) VALUES (1, 'event', 'not pushed', '')"
  An ephemeral chat popup (never stored):
    $PSQL_CMD -c "SELECT livenotify.send('1', 'new_message', '{\"message\": {\"from\": \"bob\", \"text\": \"hi\"}}')"
  What the queue does:
    $PSQL_CMD -c "SELECT * FROM livenotify.stats"
    curl -s http://127.0.0.1:$METRICS_PORT/metrics

  Logs: $CLUSTER/livenotifyd.log, $CLUSTER/demo-server.log
  Ctrl-C stops the daemon, the demo server and the cluster.
EOF

# LIVENOTIFY_DEMO_CHECK=1 (make check-fresh): instead of waiting for Ctrl-C, check that the
# page is served and a row inserted with psql reaches it in a real browser, then stop it all.
if [ "${LIVENOTIFY_DEMO_CHECK:-0}" = 1 ]; then
	step "check: the page in headless Chromium, a row inserted with psql"
	"${SUDO[@]}" bash -c 'source test/lib.sh && ensure_packages "$@"' demo \
		chromium chromium-driver python3-selenium || die "package installation failed"
	"$PYTHON" test/browser/demo_check.py --url="http://127.0.0.1:$WEB_PORT/?user=1" \
		--workdir="$CLUSTER/check" -- "$PSQL" -h "$CLUSTER" -p "$PG_PORT" -U postgres -d "$DB" ||
		die "the demo check failed (logs: $CLUSTER)"
	exit 0
fi

# Run until Ctrl-C, or until one of the two processes dies (then say so and stop the rest).
wait -n "${PIDS[@]}"
rc=$?
log "demo: a process exited (status $rc); last lines of the logs:"
tail -n 15 "$CLUSTER/livenotifyd.log" "$CLUSTER/demo-server.log" >&2
exit 1
