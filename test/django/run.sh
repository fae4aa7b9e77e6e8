#!/usr/bin/env bash
# test/django/run.sh: livenotify-django (integrations/django/) end to end.  A real Django 3.2
# project (test/django/project/, copied to build/django/project) whose app has the seed app's
# Notification model, livenotify_django installed with pip into a venv, a private cluster,
# `manage.py check` / `migrate` as a non-superuser role, a real livenotifyd with JWT auth
# matching the project's settings, real WebSocket clients for two users (test/django/e2e.py,
# on test/integration/lntest.py's clients).  Run by test/run-all.sh (suite `django`) or alone,
# as root, after the extension is installed and the sidecar built:
#
#   bash test/django/run.sh
#
# Why a venv: the test installs the package the way a user does (`pip install` of the
# directory), without PyPI: `--system-site-packages` gives it Debian's Django, PyJWT,
# psycopg2 and websockets; --no-index --no-deps --no-build-isolation builds with Debian's
# setuptools and wheel, offline.
#
# Ports: the cluster on LIVENOTIFY_TEST_PORT + 9, a second one without the library preloaded
# on + 3 (for a minute), the daemons on + 10 and up.  Logs stay in build/django/.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
# shellcheck source=test/lib.sh
source test/lib.sh
LOG_TAG=django

BASE=${LIVENOTIFY_TEST_PORT:-54329}
PORT=$((BASE + 9))
PORT_UNPRELOADED=$((BASE + 3))
# The first free port from BASE + 10 (e2e.py's own daemons take the free ones after it).
DAEMON_PORT=$(free_port_from $((BASE + 10))) || die "no free port from $((BASE + 10))"
DAEMON=$ROOT/build/sidecar/livenotifyd
WORK=$ROOT/build/django
VENV=$WORK/venv
DB=livenotify_django
# The Debian interpreter (the venv is made from it): a python3 earlier in PATH may be another.
PYTHON=/usr/bin/python3
SECRET=django-test-secret-of-at-least-32-bytes

[ "$(id -u)" -eq 0 ] || die "run as root (runuser postgres for the cluster)"
# python3-cryptography: PyJWT's RS256 (a Recommends of python3-jwt, which ensure_packages
# does not install).  python3-venv and python3-pip: the venv and the pip install.
ensure_packages python3-django python3-jwt python3-cryptography python3-websockets \
	python3-psycopg2 python3-venv python3-pip postgresql-15 openssl
[ -x "$DAEMON" ] || die "$DAEMON is missing: build the sidecar first (make sidecar)"

mkdir -p "$ROOT/build"
exec 9>"$ROOT/build/django.lock"
flock -w 1800 9 || die "build/django.lock still held after 30 minutes"
rm -rf "$WORK"
mkdir -p "$WORK"

PY_PID=
kill_daemons() {
	local pid
	if [ -n "$PY_PID" ] && kill -0 "$PY_PID" 2>/dev/null; then
		kill -TERM "$PY_PID" 2>/dev/null
		wait "$PY_PID" 2>/dev/null
	fi
	[ -f "$WORK/daemons.pid" ] || return 0
	while read -r pid; do
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	done <"$WORK/daemons.pid"
	return 0
}

FAILED=0
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }

# ---- the package, installed as a user installs it
log "venv $VENV (system site packages), pip install integrations/django"
"$PYTHON" -m venv --system-site-packages "$VENV" || die "python3 -m venv failed"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q --no-index --no-deps \
	--no-build-isolation "$ROOT/integrations/django" >"$WORK/pip.log" 2>&1 ||
	{ cat "$WORK/pip.log"; die "pip install of integrations/django failed"; }
rm -rf "$ROOT/integrations/django/build" "$ROOT"/integrations/django/*.egg-info
cp -r test/django/project "$WORK/project"
export PYTHONDONTWRITEBYTECODE=1

CLUSTER=$(cluster_dir django)
cluster_start "$CLUSTER" "$PORT" "livenotify.ring_size = '8MB'" 9>&- || die "cluster did not start"
trap 'rc=$?; kill_daemons; _livenotify_cleanup; exit $rc' EXIT

psql_admin() {
	"$LIVENOTIFY_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$CLUSTER" -p "$PORT" -U postgres "$@"
}
psql_app() {
	"$LIVENOTIFY_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$CLUSTER" -p "$PORT" -U app -d "$DB" "$@"
}
# The app's role is no superuser, as in production: it owns its database and its tables.
psql_admin -d postgres -c "CREATE ROLE app LOGIN" -c "CREATE DATABASE $DB OWNER app" ||
	die "role and database setup failed"

export LN_DB_HOST=$CLUSTER LN_DB_PORT=$PORT LN_DB_NAME=$DB LN_DB_USER=app LN_JWT_SECRET=$SECRET
export LN_WS_URL=ws://127.0.0.1:$DAEMON_PORT/ws
manage() { (cd "$WORK/project" && "$VENV/bin/python" manage.py "$@" 9>&-); }

# check_says WHAT RC PATTERN ARGS...: `manage.py ARGS` exits with RC (0 or "fail") and its
# output matches the extended regex PATTERN.
check_says() {
	local what=$1 want=$2 pattern=$3 out rc
	shift 3
	out=$(manage "$@" 2>&1)
	rc=$?
	printf '%s\n' "$out" >>"$WORK/manage.log"
	if { [ "$want" = 0 ] && [ $rc -ne 0 ]; } || { [ "$want" = fail ] && [ $rc -eq 0 ]; }; then
		fail "$what: manage.py $* exited $rc:"
		printf '%s\n' "$out" | sed 's/^/    | /'
	elif ! printf '%s\n' "$out" | grep -Eq -- "$pattern"; then
		fail "$what: manage.py $* does not say /$pattern/:"
		printf '%s\n' "$out" | sed 's/^/    | /'
	else
		ok "$what: $(printf '%s\n' "$out" | grep -E -m1 -- "$pattern" | sed 's/^ *//' | cut -c1-160)"
	fi
	LAST_OUT=$out
}

# ---- the system checks and the migration, each missing piece in turn
LN_BREAK_SETTINGS=1 check_says "settings without JWT_KEY" fail 'livenotify\.E001.*JWT_KEY' check
check_says "before migrate, no extension, role app may not create it" fail \
	'livenotify\.E002.*may not create it' check --database default
check_says "the migration says why it cannot run" fail \
	'may not create it.*CREATE EXTENSION livenotify; GRANT EXECUTE ON FUNCTION livenotify\.register' \
	migrate --skip-checks
psql_admin -d "$DB" -c "CREATE EXTENSION livenotify" \
	-c "GRANT EXECUTE ON FUNCTION livenotify.register(regclass, name, name, name, name, text[], text) TO app" ||
	die "CREATE EXTENSION failed"
check_says "extension there, send() not granted" 0 'livenotify\.W003' check --database default
psql_admin -d "$DB" -c "GRANT EXECUTE ON FUNCTION livenotify.send(text, text, jsonb) TO app" || die "GRANT failed"
check_says "extension there, migration pending" 0 'api\.Notification: \(livenotify\.W002\).*0002_livenotify is not applied' \
	check --database default
check_says "migrate registers the model" 0 'Applying api\.0002_livenotify\.\.\. OK' migrate
check_says "after migrate" 0 '^System check identified no issues' check --database default
out=$(psql_app -c "SELECT source, user_column, type_column, id_column, read_column FROM livenotify.sources")
[ "$out" = "api_notification|user_id|type|id|is_read" ] &&
	ok "registered with the columns behind the fields: $out" ||
	fail "livenotify.sources after migrate: '$out'"
out=$(psql_app -c "SELECT string_agg(type || ':' || action, ',' ORDER BY type) FROM livenotify.rules")
[ "$out" = "event:skip,message:skip" ] && ok "skipped types: $out" || fail "rules: '$out'"
check_says "sqlmigrate shows the registration" 0 \
	"livenotify\.register\('\"api_notification\"'::regclass, 'user_id', 'type', 'id', 'is_read', ARRAY\['event','message'\]::text\[\], 'api_notification'\)" \
	sqlmigrate api 0002
check_says "the operation changes no model state" 0 'No changes detected' makemigrations --check --dry-run

idx=$(psql_app -c "SELECT indexname FROM pg_indexes WHERE tablename = 'api_notification' AND indexdef LIKE '%WHERE (NOT is_read)%'")
[ -n "$idx" ] && ok "the unread index: $idx" || fail "no unread index after migrate"
psql_app -c "DROP INDEX \"$idx\"" >/dev/null
check_says "an index dropped" 0 'livenotify\.W001.*WHERE NOT is_read' check --database default
fix=$(printf '%s\n' "$LAST_OUT" | sed -n 's/^[[:space:]]*HINT: \(CREATE INDEX.*\)$/\1/p' | head -1)
psql_app -c "$fix" >/dev/null && ok "the hint recreates it: $fix" || fail "the hint's SQL failed: $fix"
check_says "index back" 0 '^System check identified no issues' check --database default

psql_app -c "SELECT livenotify.unregister('api_notification')" >/dev/null
check_says "unregistered behind Django's back" fail 'livenotify\.E004.*not registered' check --database default
fix=$(printf '%s\n' "$LAST_OUT" | sed -n 's/^[[:space:]]*HINT: \(SELECT livenotify.register.*\)$/\1/p' | head -1)
psql_app -c "$fix" >/dev/null && ok "the hint registers it again: $fix" || fail "the hint's SQL failed: $fix"
check_says "registered again" 0 '^System check identified no issues' check --database default

# A table registered by hand before RegisterSource runs (the manual migration of older docs, a
# restored dump): the same columns are left as they are, other columns stop the migration.
check_says "migrate back" 0 'Unapplying api\.0002_livenotify\.\.\. OK' migrate api 0001
psql_app -c "$fix" >/dev/null
check_says "registered by hand with the same columns" 0 'Applying api\.0002_livenotify\.\.\. OK' migrate
check_says "migrate back" 0 'Unapplying api\.0002_livenotify\.\.\. OK' migrate api 0001
psql_app -c "SELECT livenotify.register('api_notification', 'user_id', 'type', 'id', NULL)" >/dev/null
check_says "registered by hand with other columns" fail \
	"already registered as a livenotify source with other settings.*'read_column': None.*livenotify\.unregister\('api_notification'\)" migrate
psql_app -c "SELECT livenotify.unregister('api_notification')" >/dev/null
check_says "unregistered, migrate" 0 'Applying api\.0002_livenotify\.\.\. OK' migrate
check_says "after it" 0 '^System check identified no issues' check --database default

# The library not preloaded: a second cluster without it, the extension installed.
UNPRE=$(cluster_dir django-unpreloaded)
if cluster_start "$UNPRE" "$PORT_UNPRELOADED" "shared_preload_libraries = ''" 9>&-; then
	"$LIVENOTIFY_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$UNPRE" -p "$PORT_UNPRELOADED" -U postgres \
		-d postgres -c "CREATE ROLE app LOGIN" -c "CREATE DATABASE $DB OWNER app" >/dev/null &&
		"$LIVENOTIFY_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$UNPRE" -p "$PORT_UNPRELOADED" \
			-U postgres -d "$DB" -c "CREATE EXTENSION livenotify" >/dev/null || fail "unpreloaded setup"
	LN_DB_HOST=$UNPRE LN_DB_PORT=$PORT_UNPRELOADED check_says "library not preloaded" fail \
		'livenotify\.E003.*shared_preload_libraries' check --database default
	cluster_stop "$UNPRE"
else
	fail "the unpreloaded cluster did not start"
fi

# ---- the live part: tokens, daemon, WebSocket clients, every write path
"$VENV/bin/python" test/django/e2e.py \
	--daemon="$DAEMON" --venv="$VENV" --project="$WORK/project" --workdir="$WORK" \
	--admin-conninfo="host=$CLUSTER port=$PORT user=postgres dbname=$DB" \
	--port="$DAEMON_PORT" --secret="$SECRET" --client-js="$ROOT/client/livenotify.js" 9>&- &
PY_PID=$!
wait "$PY_PID"
rc=$?
PY_PID=
[ $rc -eq 0 ] || fail "e2e.py (daemon logs in $WORK)"

if [ $FAILED -ne 0 ]; then
	cluster_log "$CLUSTER"
	echo "django: $FAILED failed"
	exit 1
fi
echo "django: all passed"
