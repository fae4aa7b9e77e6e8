#!/usr/bin/env bash
# bench/peers/run.sh: livenotify against what a team would build instead (issue 6).
#
#   bash bench/peers/run.sh            (as root; `make bench-peers`; a few minutes; not in CI)
#
# Systems, all on one private PostgreSQL 15 cluster (port 54391) and one table, the Django
# seed's api_notification:
#   livenotify  the extension's commit-time capture + build/sidecar/livenotifyd (auth=none)
#   node        PL/pgSQL pg_notify trigger + one LISTEN client + ws rooms (bench/peers/node)
#   django      post_save signal -> channels_redis -> Daphne consumer (bench/peers/django)
# Only the measured system's capture is installed during its runs (livenotify registered, the
# pg_notify trigger, or neither), so no system pays for another's.
#
# Workload per run: USERS users x 2 tabs connected through bench/peers/wsload (C++, epoll),
# then inserts at a fixed rate for SECONDS from a separate process:
#   sql  bench/peers/writer (C++, libpq): evenly spaced autocommit INSERTs on 16 connections
#   orm  bench/peers/django/orm_writer.py: Notification.objects.create() in BENCH_ORM_PROCS
#        processes, the seed stack's only captured path (raw SQL never fires post_save)
# Each row carries bench_n and bench_ts (when the INSERT was sent); both writers log per row
# when the COMMIT was acknowledged, the client logs per row when its frame arrived, and the
# report subtracts: commit-to-frame latency.  Rates alternate between systems (rate-major
# order) so drift hits all alike.
# After the writer stops, the run waits until frames stop arriving (max 20 s): a frame later
# than that counts as lost.  Every delivery process is started fresh for each run, so CPU
# seconds and peak RSS (VmHWM) belong to that run.
#
# Then writer TPS at 16 clients (pgbench, no rate limit, median of 3 alternating rounds) with
# no capture, with livenotify (daemon reading) and with the pg_notify trigger (bridge
# listening).  Results: docs/benchmarks.md, section "Against the alternatives (issue 6)",
# and docs/peers.png; raw files stay in $BENCH_OUT.
#
# Environment: BENCH_USERS (500), BENCH_RATES ("100 500 1000 2000 5000"), BENCH_SECONDS (8),
# BENCH_TPS_SECONDS (10), BENCH_DJANGO_SQL_RATE (500: the one raw-SQL run of the seed stack),
# BENCH_OUT (a fresh /tmp directory), BENCH_NO_DOCS=1 (leave docs/ alone).
# The measuring part holds /tmp/livenotify-bench.lock: the machine is shared, and two
# benchmarks at once would each measure the other.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
# shellcheck source=test/lib.sh
source test/lib.sh

USERS=${BENCH_USERS:-500}
TABS=2
RATES=${BENCH_RATES:-"100 500 1000 2000 5000"}
SECS=${BENCH_SECONDS:-8}
TPS_SECS=${BENCH_TPS_SECONDS:-10}
DJANGO_SQL_RATE=${BENCH_DJANGO_SQL_RATE:-500}
ORM_PROCS=${BENCH_ORM_PROCS:-4}
WRITER_CONNS=${BENCH_WRITER_CONNS:-16}
PG_PORT=54391
REDIS_PORT=56391
LN_PORT=18391
DAPHNE_PORT=18392
NODE_PORT=18393
PY=/usr/bin/python3 # Debian's: the Django/Channels packages are installed for it
PGBIN=$LIVENOTIFY_PG_BIN
OUT=${BENCH_OUT:-$(mktemp -d /tmp/livenotify-peers.XXXXXX)}
mkdir -p "$OUT"
chmod 755 "$OUT"

blog() { printf '[bench] %s\n' "$*" >&2; }

# --- setup (outside the lock: installs and builds are not measurements) ---------------------
ensure_packages
ensure_packages python3-django python3-django-channels python3-channels-redis python3-daphne \
	daphne redis-server python3-matplotlib nodejs
# npm: Debian's package, unless the installed nodejs brings its own (NodeSource's does, and
# conflicts with Debian's npm).
command -v npm >/dev/null || ensure_packages npm
if [ ! -f "$PGBIN/../lib/livenotify.so" ] && [ ! -f "$(pg_config --pkglibdir 2>/dev/null)/livenotify.so" ]; then
	make -s install >/dev/null
fi
make -s sidecar >/dev/null
[ -x build/sidecar/livenotifyd ] || die "build/sidecar/livenotifyd missing (make sidecar)"
mkdir -p build/bench
g++ -O2 -std=c++17 -Wall -Wextra -o build/bench/wsload "$HERE/wsload.cpp"
g++ -O2 -std=c++17 -Wall -Wextra -I"$("$PG_CONFIG" --includedir)" -o build/bench/writer \
	"$HERE/writer.cpp" -lpq
if [ ! -d "$HERE/node/node_modules/ws" ] || [ ! -d "$HERE/node/node_modules/pg" ]; then
	(cd "$HERE/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# --- the lock ------------------------------------------------------------------------------
# LIVENOTIFY_BENCH_LOCKED=1: the caller already holds it (as bench/e2e/run.sh allows), e.g.
# `flock /tmp/livenotify-bench.lock env LIVENOTIFY_BENCH_LOCKED=1 bash bench/peers/run.sh`;
# taking it again here would wait for ourselves.
if [ "${LIVENOTIFY_BENCH_LOCKED:-0}" != 1 ]; then
	exec 9>/tmp/livenotify-bench.lock
	blog "waiting for /tmp/livenotify-bench.lock"
	flock 9
fi
blog "lock held; results in $OUT"

CLUSTER=$(cluster_dir peers)
cluster_start "$CLUSTER" "$PG_PORT" "livenotify.ring_size = '64MB'
max_connections = 200
listen_addresses = '127.0.0.1'"

STARTED=() # pids of everything this script started besides the cluster
stop_started() {
	local p
	for p in "${STARTED[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${STARTED[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	STARTED=()
}
trap 'stop_started; _livenotify_cleanup' EXIT

export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=postgres
export PGOPTIONS='-c client_min_messages=warning' # no "trigger does not exist, skipping"
psql -X -q -d postgres -c 'CREATE DATABASE app' >/dev/null
export PGDATABASE=app
export BENCH_PGHOST=127.0.0.1 BENCH_PGPORT=$PG_PORT BENCH_PGDATABASE=app BENCH_REDIS_PORT=$REDIS_PORT
sql() { psql -X -q -t -A -v ON_ERROR_STOP=1 "$@"; }

# The Django schema (auth_user for the foreign key, api_notification with its indexes), the
# users, the extension, the sequence the writers number rows with.
(cd "$HERE/django" && $PY manage.py migrate -v 0)
sql <<SQL
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
	is_staff, is_active, date_joined)
SELECT '', false, 'user' || g, '', '', '', false, true, now() FROM generate_series(1, $USERS) g;
CREATE EXTENSION livenotify;
CREATE SEQUENCE bench_n;
SQL

# set_capture livenotify|notify|none: install exactly one system's capture mechanism.
set_capture() {
	case $1 in
	livenotify)
		sql -c "DROP TRIGGER IF EXISTS bench_notify_notification ON api_notification" -c \
			"SELECT livenotify.register('api_notification', 'user_id', 'type', 'id', 'is_read')
			 WHERE NOT EXISTS (SELECT FROM livenotify.sources WHERE source = 'api_notification')" \
			>/dev/null
		;;
	notify)
		sql -c "SELECT livenotify.unregister(source) FROM livenotify.sources" >/dev/null
		sql -f "$HERE/node/notify.sql" >/dev/null
		;;
	none)
		sql -c "SELECT livenotify.unregister(source) FROM livenotify.sources" \
			-c "DROP TRIGGER IF EXISTS bench_notify_notification ON api_notification" >/dev/null
		;;
	esac
}

reset_table() {
	sql -c "TRUNCATE api_notification RESTART IDENTITY" -c "SELECT setval('bench_n', 1, false)" \
		-c "VACUUM ANALYZE api_notification" >/dev/null
}

# wait_http URL: until the server answers HTTP at all (any status), max 30 s.
wait_http() {
	local i code
	for i in $(seq 300); do
		code=$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null || true)
		[ "$code" != 000 ] && [ -n "$code" ] && { [ "${2:-}" = "" ] || [ "$code" = "$2" ]; } && return 0
		sleep 0.1
	done
	die "no answer from $1"
}

DELIVERY=() # pids whose CPU and RSS are the system's delivery cost
start_delivery() {
	local log=$OUT/$2.server.log
	DELIVERY=()
	case $1 in
	livenotify)
		build/sidecar/livenotifyd --auth=none --listen-address=127.0.0.1 --port=$LN_PORT \
			--database-url="host=127.0.0.1 port=$PG_PORT user=postgres dbname=app" \
			--log-level=warn 2>"$log" &
		DELIVERY+=($!)
		STARTED+=($!)
		wait_http "http://127.0.0.1:$LN_PORT/healthz" 200 # 200 once its reader is connected
		;;
	node)
		BENCH_PORT=$NODE_PORT node "$HERE/node/server.js" 2>"$log" &
		DELIVERY+=($!)
		STARTED+=($!)
		wait_http "http://127.0.0.1:$NODE_PORT/"
		;;
	django)
		redis-server --port $REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no \
			--loglevel warning >"$OUT/$2.redis.log" 2>&1 &
		DELIVERY+=($!)
		STARTED+=($!)
		PYTHONPATH="$HERE/django" /usr/bin/daphne -v 0 -b 127.0.0.1 -p $DAPHNE_PORT \
			benchproj.asgi:application 2>"$log" &
		DELIVERY+=($!)
		STARTED+=($!)
		wait_http "http://127.0.0.1:$DAPHNE_PORT/"
		;;
	esac
}

ws_path() {
	case $1 in
	livenotify) echo '/ws?user=%d' ;;
	node) echo '/?user=%d' ;;
	django) echo '/ws/notifications/?user=%d' ;;
	esac
}
ws_port() {
	case $1 in
	livenotify) echo $LN_PORT ;;
	node) echo $NODE_PORT ;;
	django) echo $DAPHNE_PORT ;;
	esac
}

# CPU ticks (utime + stime) and peak RSS (VmHWM, kB) of the delivery processes, summed.
cpu_ticks() {
	local p t=0
	for p in "${DELIVERY[@]}"; do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo $t
}
peak_rss_kb() {
	local p t=0
	for p in "${DELIVERY[@]}"; do
		t=$((t + $(awk '/^VmHWM/ {print $2}' "/proc/$p/status")))
	done
	echo $t
}

last_progress() { awk '$1 == "P" {n = $2} END {print n + 0}' "$1"; }

# run_one SYSTEM WRITER RATE: one measured run; appends a line to $OUT/runs.tsv.
run_one() {
	local sys=$1 writer=$2 rate=$3 tag=$1-$2-$3 cap expected i n prev stable c0 c1 rss wl
	blog "run $tag"
	reset_table
	case $sys in livenotify) cap=livenotify ;; node) cap=notify ;; *) cap=none ;; esac
	set_capture $cap
	start_delivery "$sys" "$tag"
	build/bench/wsload --port "$(ws_port "$sys")" --path "$(ws_path "$sys")" --users "$USERS" \
		--tabs $TABS --out "$OUT/$tag" >"$OUT/$tag.progress" 2>"$OUT/$tag.wsload.err" &
	wl=$!
	STARTED+=($wl)
	for i in $(seq 600); do
		grep -qs '^READY' "$OUT/$tag.progress" && break
		kill -0 $wl 2>/dev/null || die "wsload failed for $tag: $(cat "$OUT/$tag.wsload.err")"
		sleep 0.1
	done
	grep -q '^READY' "$OUT/$tag.progress" || die "sockets not open for $tag"
	sleep 1 # let group joins (Channels: a redis round trip each) settle
	c0=$(cpu_ticks)
	if [ "$writer" = sql ]; then
		# 16 connections, an app's worth of workers: one connection commits at most ~1/fsync
		# per second, and the top rates need many commits in flight (group commit).
		build/bench/writer --conninfo "host=127.0.0.1 port=$PG_PORT user=postgres dbname=app" \
			--rate "$rate" --seconds "$SECS" --conns "$WRITER_CONNS" --users "$USERS" --out "$OUT/$tag" \
			>"$OUT/$tag.writer" 2>&1 || die "writer failed: $(cat "$OUT/$tag.writer")"
	else
		(cd "$HERE/django" && $PY orm_writer.py --rate "$rate" --seconds "$SECS" --procs "$ORM_PROCS" \
			--users "$USERS" --out "$OUT/$tag" \
			--signals "$([ "$sys" = django ] && echo on || echo off)") \
			>"$OUT/$tag.writer" 2>&1 || die "orm writer failed: $(cat "$OUT/$tag.writer")"
	fi
	expected=$(sql -c "SELECT count(*) * $TABS FROM api_notification WHERE type NOT IN ('event', 'message')")
	# Drain: wait until every expected frame arrived, or nothing arrived for 2 s, max 20 s.
	prev=-1
	stable=0
	for i in $(seq 40); do
		n=$(last_progress "$OUT/$tag.progress")
		[ "$n" -ge "$expected" ] && break
		if [ "$n" -eq "$prev" ]; then
			stable=$((stable + 1))
			[ $stable -ge 4 ] && break
		else
			stable=0
		fi
		prev=$n
		sleep 0.5
	done
	c1=$(cpu_ticks)
	rss=$(peak_rss_kb)
	kill -TERM $wl
	wait $wl || die "wsload exited with an error for $tag"
	stop_started
	sql -c "COPY (SELECT user_id, count(*) FROM api_notification
		WHERE type NOT IN ('event', 'message') GROUP BY user_id) TO STDOUT" >"$OUT/$tag.expected"
	printf '%s\t%s\t%s\t%s\t%s\n' "$sys" "$writer" "$rate" "$((c1 - c0))" "$rss" >>"$OUT/runs.tsv"
}

# want SYSTEM-WRITER: whether BENCH_ONLY (a list like "django-orm node-sql") selects that pair.
want() { [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" $1 "* ]]; }

# tps_one CONFIG: writer TPS at 16 clients with that capture on and its reader running.
tps_one() {
	local cfg=$1 tps
	reset_table
	set_capture "$cfg"
	case $cfg in
	livenotify) start_delivery livenotify "tps-$cfg" ;;
	notify) start_delivery node "tps-$cfg" ;;
	esac
	"$PGBIN/pgbench" -n -c 16 -j 2 -T "$TPS_SECS" -D users="$USERS" -f "$HERE/insert.sql" \
		>"$OUT/tps-$cfg.$2.out" 2>&1 || die "pgbench failed: $(cat "$OUT/tps-$cfg.$2.out")"
	stop_started
	tps=$(awk '/^tps = / {print $3; exit}' "$OUT/tps-$cfg.$2.out")
	blog "tps $cfg round $2: $tps"
	printf '%s\t%s\t%s\n' "$cfg" "$2" "$tps" >>"$OUT/tps.tsv"
}

: >"$OUT/runs.tsv"
: >"$OUT/tps.tsv"
printf 'users\t%s\ntabs\t%s\nseconds\t%s\nrates\t%s\nwriter_conns\t%s\norm_procs\t%s\n' \
	"$USERS" $TABS "$SECS" "$RATES" "$WRITER_CONNS" "$ORM_PROCS" >"$OUT/params.tsv"
printf 'started\t%s\nload_start\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" \
	"$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/params.tsv"
for rate in $RATES; do
	for pair in livenotify-sql node-sql django-orm livenotify-orm django-sql; do
		[ "$pair" != django-sql ] || [ "$rate" = "$DJANGO_SQL_RATE" ] || continue
		want $pair || continue
		run_one "${pair%-*}" "${pair#*-}" "$rate"
	done
done
for round in $(seq "${BENCH_TPS_ROUNDS:-3}"); do
	for cfg in none livenotify notify; do
		tps_one $cfg $round
	done
done

stop_started
cluster_stop "$CLUSTER"
printf 'load_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/params.tsv"
[ "${LIVENOTIFY_BENCH_LOCKED:-0}" = 1 ] || exec 9>&- # release the lock: the report measures nothing

if [ "${BENCH_NO_DOCS:-0}" = 1 ]; then
	$PY "$HERE/report.py" "$OUT" --no-docs
else
	$PY "$HERE/report.py" "$OUT" --docs "$ROOT/docs/benchmarks.md" --png "$ROOT/docs/peers.png"
fi
