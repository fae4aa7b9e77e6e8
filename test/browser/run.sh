#!/usr/bin/env bash
# test/browser/run.sh: the demo page and the browser client in headless Chromium, against a
# private cluster, a real livenotifyd and the demo server serving the client as `npm pack`
# packs client/: test_demo.py (the page, a socket per tab) and test_shared_socket.py (the
# default: the tabs of a user share one socket).  Run by test/run-all.sh (suite `browser`) or
# alone, as root, after the extension is installed:
#
#   bash test/browser/run.sh
#
# Everything comes from Debian: Chromium (/usr/bin/chromium), its WebDriver (chromium-driver,
# built from the same source package, so it matches the browser through every Chromium update)
# and python3-selenium (test/browser/browserlib.py); no browser or driver is ever downloaded.
# Like the integration suite it starts its own cluster, because it kills and
# restarts the daemon and must not disturb the shared one.
#
# Environment: LIVENOTIFY_BROWSER_PORT (default LIVENOTIFY_TEST_PORT + 4 = 54333),
# LIVENOTIFY_BROWSER_SUITES (default "demo shared": which of the two to run),
# LIVENOTIFY_KEEP_CLUSTER=1 keeps the cluster directory; the daemon's and demo server's logs
# stay in build/browser/{demo,shared}/ either way.  The page's screenshot is saved as
# build/browser/screenshot.png and copied to docs/screenshot.png (the README's) when that is
# missing or LIVENOTIFY_UPDATE_SCREENSHOT=1: a test run does not dirty a tracked file.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
# shellcheck source=test/lib.sh
source test/lib.sh

PORT=${LIVENOTIFY_BROWSER_PORT:-$((${LIVENOTIFY_TEST_PORT:-54329} + 4))}
SUITES=${LIVENOTIFY_BROWSER_SUITES:-demo shared}
DAEMON=$ROOT/build/sidecar/livenotifyd
WORKDIR=$ROOT/build/browser
DB=livenotify_browser

[ "$(id -u)" -eq 0 ] || die "run as root (runuser postgres for the cluster)"
BROWSER_PACKAGES=(chromium chromium-driver python3-selenium python3-psycopg2 postgresql-15)
# The pages import the client as `npm pack` packs it (Debian's npm unless there is one).
command -v npm >/dev/null || BROWSER_PACKAGES+=(npm)
ensure_packages "${BROWSER_PACKAGES[@]}"
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium is missing"
[ -x /usr/bin/chromedriver ] || die "/usr/bin/chromedriver is missing"

if [ ! -x "$DAEMON" ]; then
	log "browser: $DAEMON is missing, building the sidecar"
	make -s sidecar >/dev/null || die "the sidecar did not build"
fi

rm -rf "$WORKDIR"
mkdir -p "$WORKDIR"
CLIENT_DIR=$(pack_client "$WORKDIR/client-package") || exit 1

# Processes a suite starts are listed in its workdir's pids; kill leftovers if it dies without
# stopping them, then lib.sh's trap stops the cluster.
kill_leftovers() {
	local pid pids
	for pids in "$WORKDIR"/*/pids; do
		[ -f "$pids" ] || continue
		while read -r pid; do
			[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || continue
			log "browser: killing leftover process $pid"
			kill -TERM "$pid" 2>/dev/null
			sleep 1
			kill -KILL "$pid" 2>/dev/null
		done <"$pids"
	done
	return 0
}

# Unix socket only: everything here connects through it, and a TCP port in Linux's
# ephemeral range can be held by another connection's TIME_WAIT on a busy machine.
CLUSTER=$(cluster_dir browser)
cluster_start "$CLUSTER" "$PORT" "listen_addresses = ''" || die "cluster did not start"
trap 'rc=$?; kill_leftovers; _livenotify_cleanup; exit $rc' EXIT

psql_admin() {
	"$LIVENOTIFY_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$CLUSTER" -p "$PORT" -U postgres "$@"
}
psql_admin -d postgres -c "CREATE DATABASE $DB" || die "CREATE DATABASE failed"
# Django's api_notification (test/api_notification.sql), registered with the documented call.
psql_admin -d "$DB" -f "$ROOT/test/api_notification.sql" >/dev/null || die "schema setup failed"
psql_admin -d "$DB" >/dev/null <<'SQL' || die "schema setup failed"
SELECT livenotify.register('api_notification', 'user_id', 'type', 'id', 'is_read');
INSERT INTO api_notification (user_id, type, title, message, is_read) VALUES
    (1, 'follow',  'Bob started following you', '', true),
    (1, 'comment', 'Bob commented on your post', '“Nice write-up!”', false),
    (2, 'like',    'Alice liked your photo', '', false);
SQL

rc=0
ARGS=(--root="$ROOT" --daemon="$DAEMON" --psql="$LIVENOTIFY_PG_BIN/psql"
	--pg-bin="$LIVENOTIFY_PG_BIN" --dsn="host=$CLUSTER port=$PORT user=postgres dbname=$DB"
	--cluster-dir="$CLUSTER" --port="$PORT" --db="$DB" --client-dir="$CLIENT_DIR")
# Debian's interpreter: python3-selenium is installed for it, not for a pyenv/venv python3.
if [[ " $SUITES " == *" demo "* ]]; then
	log "browser: test_demo.py (the demo page, a socket per tab)"
	timeout -k 10 900 /usr/bin/python3 test/browser/test_demo.py "${ARGS[@]}" \
		--workdir="$WORKDIR/demo" --screenshot="$WORKDIR/screenshot.png" || rc=$?
fi
if [[ " $SUITES " == *" shared "* ]]; then
	log "browser: test_shared_socket.py (one socket for the tabs of a user)"
	timeout -k 10 600 /usr/bin/python3 test/browser/test_shared_socket.py "${ARGS[@]}" \
		--workdir="$WORKDIR/shared" || rc=$?
fi
if [ $rc -eq 0 ] && [ -f "$WORKDIR/screenshot.png" ] &&
	{ [ ! -f docs/screenshot.png ] || [ "${LIVENOTIFY_UPDATE_SCREENSHOT:-0}" = 1 ]; }; then
	cp "$WORKDIR/screenshot.png" docs/screenshot.png && log "browser: updated docs/screenshot.png"
fi
if [ $rc -ne 0 ]; then
	log "browser: logs in $WORKDIR"
	cluster_log "$CLUSTER"
fi
exit $rc
