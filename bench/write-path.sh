#!/usr/bin/env bash
# bench/write-path.sh: the write-path benchmark of issue 2 (`make bench-write`).
#
# What does the livenotify trigger cost an application that INSERTs notifications?  Measured
# in one run, on one private cluster, against two baselines:
#
#   t_plain       the Django-shaped table with no trigger
#   t_livenotify  the same table registered with livenotify.register()
#   t_notify      the same table with the usual PL/pgSQL AFTER INSERT trigger calling
#                 pg_notify(), and one listener connection LISTENing and draining
#
# and a fourth config, t_livenotify with livenotify.enabled = off (PGOPTIONS): the triggers
# fire and return at once, which is what PostgreSQL's row-trigger machinery costs by itself.
#
# pgbench runs one INSERT per transaction (fsync on: every transaction is a real commit) at
# 1 and 16 clients.  A virtual machine's speed drifts by tens of percent within minutes, so
# the configs of one client count run back to back, ROUNDS times, in an order reversed every
# round, and each ratio is the median of the per-round ratios of those neighbouring passes
# (a drift hits both sides of a ratio alike).  Targets: livenotify >= 0.95x plain at 1 and 16
# clients, >= 3x pg_notify at 16 clients.
#
# As root on Debian 12: installs what is missing, builds and installs the extension, starts
# a private cluster on port 54340, prints the table and the ratios, writes them into
# docs/benchmarks.md (section "Write path (issue 2)") and stops the cluster on exit.
#
# The machine is shared: the measuring part holds /tmp/livenotify-bench.lock, as every
# benchmark here does, so that no two benchmarks overlap (each would measure the other).  Set
# LIVENOTIFY_BENCH_LOCKED=1 when the caller already holds it.
#
# Environment: BENCH_PORT (54340), BENCH_SECONDS (6, per pass), BENCH_ROUNDS (10),
# BENCH_WRITE_DOCS (1; 0 leaves docs/benchmarks.md alone), LIVENOTIFY_KEEP_CLUSTER=1 keeps
# the cluster directory (data, server log) for a post-mortem.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOG_TAG=bench
# shellcheck source=test/lib.sh
source test/lib.sh

PORT=${BENCH_PORT:-54340}
SECONDS_PER_PASS=${BENCH_SECONDS:-6}
ROUNDS=${BENCH_ROUNDS:-10}
WRITE_DOCS=${BENCH_WRITE_DOCS:-1}
CLIENTS=(1 16)
TABLES=(t_plain t_livenotify t_notify)
# The configs of one client count, in the order of odd rounds (even rounds reverse it).  A
# config is a table, or t_livenotify_off: t_livenotify with livenotify.enabled = off.
CONFIG_TABLES=(t_plain t_livenotify t_livenotify_off t_notify)
DB=bench
DOC=docs/benchmarks.md
PGBENCH=$LIVENOTIFY_PG_BIN/pgbench
PSQL=$LIVENOTIFY_PG_BIN/psql
# The listener uses psycopg2 from Debian's python3-psycopg2, whatever python3 is first in PATH.
PYTHON=/usr/bin/python3

# The test suites' ports (54329, 54330, 54331) and the system cluster (5432) stay clear.
case $PORT in 5432 | 54329 | 54330 | 54331) die "port $PORT belongs to another cluster" ;; esac
[ "$(id -u)" -eq 0 ] || die "run as root (packages, make install, runuser postgres)"

# ---------------------------------------------------------------------------------------
# 1. Packages, build, install.  Only what the extension and this script need: the sidecar
#    plays no part in the write path.
ensure_packages postgresql-15 postgresql-server-dev-15 libpq-dev g++ make python3-psycopg2

log "build and install the extension"
# `-o sidecar`: the Makefile's `all` also builds the sidecar, which the write path does not use.
make PG_CONFIG="$PG_CONFIG" -o sidecar -j2 >/dev/null
make PG_CONFIG="$PG_CONFIG" -o sidecar install >/dev/null

# ---------------------------------------------------------------------------------------
# 2. Private cluster, once no other benchmark is measuring.
if [ "${LIVENOTIFY_BENCH_LOCKED:-0}" != 1 ]; then
	exec 9>/tmp/livenotify-bench.lock
	log "waiting for /tmp/livenotify-bench.lock (other benchmarks on this machine)"
	flock 9
	log "lock held"
fi

WORK=$(mktemp -d /tmp/livenotify-bench-work.XXXXXX)
CLUSTER=""
LISTENER_PID=""

cleanup() {
	local rc=$?
	if [ -n "$LISTENER_PID" ]; then
		kill "$LISTENER_PID" 2>/dev/null || true
		wait "$LISTENER_PID" 2>/dev/null || true
	fi
	# Stops every cluster lib.sh started (ours), unless LIVENOTIFY_KEEP_CLUSTER=1 keeps it.
	_livenotify_cleanup || true
	rm -rf "$WORK"
	exit $rc
}
# Set before cluster_start so that lib.sh's own trap (installed once) is not the one left:
# ours also stops the listener and removes the scratch directory.
_livenotify_trap_set=1
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before the run: $LOAD_BEFORE"
if awk -v l="${LOAD_BEFORE%% *}" 'BEGIN { exit !(l > 0.7) }'; then
	log "WARNING: the machine is busy (load ${LOAD_BEFORE%% *}): figures will be noisy"
fi

CLUSTER=$(cluster_dir bench)
# Appended after lib.sh's test settings, so these win:
#   - the default 64MB ring (the tests use 1MB to exercise overflow);
#   - shared_buffers large enough that the three tables never leave memory;
#   - no checkpoint during a pass (one is forced between passes instead), so that no
#     config pays for another's dirty pages;
#   - fsync and synchronous_commit on: each INSERT transaction waits for its WAL flush,
#     which is where the pg_notify trigger's commit lock hurts.
cluster_start "$CLUSTER" "$PORT" "
# --- bench/write-path.sh ---
livenotify.ring_size = '64MB'
shared_buffers = '512MB'
max_connections = 40
fsync = on
synchronous_commit = on
max_wal_size = '8GB'
checkpoint_timeout = '30min'
autovacuum = off
"

q() {
	PGHOST=$CLUSTER PGPORT=$PORT PGUSER=postgres "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"
}

PGHOST=$CLUSTER PGPORT=$PORT PGUSER=postgres "$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres \
	-c "CREATE DATABASE $DB"

# ---------------------------------------------------------------------------------------
# 3. Three tables shaped like Django's api_notification.
q -c "CREATE EXTENSION livenotify"
# The same definition three times: each table with its own id sequence, as Django makes it.
for t in "${TABLES[@]}"; do
	q -c "CREATE TABLE $t (
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
q >/dev/null <<'SQL'
SELECT livenotify.register('t_livenotify', 'user_id', 'type', 'id', 'is_read');

-- The usual hand-written alternative.
CREATE FUNCTION t_notify_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('notifications', row_to_json(NEW)::text);
    RETURN NEW;
END;
$$;
CREATE TRIGGER t_notify_after_insert AFTER INSERT ON t_notify
    FOR EACH ROW EXECUTE FUNCTION t_notify_trigger();
SQL

# One pgbench script per table (a table name cannot be a pgbench parameter).  A random user
# among 1000, a type the default rules deliver (not event/message), a title and message of
# the size a web app writes (row JSON ~450 bytes).  Variables only appear as values, so the
# script works in any pgbench query mode.
for t in "${TABLES[@]}"; do
	cat >"$WORK/$t.sql" <<EOF
\\set uid random(1, 1000)
\\set actor random(1, 1000)
\\set post random(1, 100000)
\\set k random(1, 4)
INSERT INTO $t (user_id, type, title, message, extra) VALUES (
    :uid,
    (ARRAY['comment', 'like', 'follow', 'mention'])[:k],
    'user' || :actor || ' commented on your post "Weekend photos from the lake house"',
    'user' || :actor || ' wrote: Great pictures! The one with the boat at sunset is my favourite. '
        'Are you going back there next summer? We should plan a trip together with the others, '
        'let me know which weekend works for you.',
    jsonb_build_object('post_id', :post, 'actor_id', :actor, 'url', '/posts/' || :post)
);
EOF
done

# ---------------------------------------------------------------------------------------
# The pg_notify config's listener: LISTENs and drains every notification, so that the
# NOTIFY queue never fills (a listener that does not read would stall the writers instead).
# It counts what it received into a file, for the sanity check at the end.
cat >"$WORK/listener.py" <<'EOF'
import select, signal, sys
import psycopg2

conninfo, countfile = sys.argv[1], sys.argv[2]
conn = psycopg2.connect(conninfo)
conn.set_session(autocommit=True)
conn.cursor().execute("LISTEN notifications")
received = 0
running = True

def stop(*_):
    global running
    running = False

signal.signal(signal.SIGTERM, stop)

def save():
    with open(countfile + ".tmp", "w") as f:
        f.write("%d\n" % received)
    import os
    os.replace(countfile + ".tmp", countfile)

save()
print("listening", flush=True)
while running:
    try:
        ready = select.select([conn], [], [], 0.5)[0]
    except InterruptedError:
        continue
    if ready:
        conn.poll()
        received += len(conn.notifies)
        conn.notifies.clear()
    save()
EOF

# ---------------------------------------------------------------------------------------
# 4. The passes.

# ln_stat NAME: one column of livenotify.stats.
ln_stat() {
	q -c "SELECT $1 FROM livenotify.stats"
}

# run_pass CONFIG CLIENTS SECONDS: one pgbench pass; prints "tps transactions faults", faults
# being the page faults of the whole machine during the pass (/proc/vmstat).
run_pass() {
	local cfg=$1 c=$2 s=$3 t=$1 options="" out tps n failed f0 f1
	if [ "$cfg" = t_livenotify_off ]; then
		t=t_livenotify
		options="-c livenotify.enabled=off"
	fi
	# Each pass starts from a clean checkpoint: none happens during the pass.
	q -c CHECKPOINT
	f0=$(awk '$1 == "pgfault" { print $2 }' /proc/vmstat)
	out=$(PGOPTIONS=$options PGHOST=$CLUSTER PGPORT=$PORT PGUSER=postgres "$PGBENCH" -n -c "$c" \
		-j $((c < 2 ? c : 2)) -T "$s" -f "$WORK/$t.sql" "$DB" 2>&1) ||
		{ printf '%s\n' "$out" >&2; die "pgbench failed"; }
	f1=$(awk '$1 == "pgfault" { print $2 }' /proc/vmstat)
	tps=$(printf '%s\n' "$out" | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p')
	n=$(printf '%s\n' "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
	failed=$(printf '%s\n' "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
	if [ -z "$tps" ] || [ -z "$n" ]; then
		printf '%s\n' "$out" >&2
		die "cannot read pgbench's output"
	fi
	[ "${failed:-0}" = 0 ] || { printf '%s\n' "$out" >&2; die "pgbench: $failed failed transactions"; }
	printf '%s %s %s\n' "$tps" "$n" $((f1 - f0))
}

log "start the pg_notify listener"
"$PYTHON" "$WORK/listener.py" "host=$CLUSTER port=$PORT user=postgres dbname=$DB" \
	"$WORK/listener.count" >"$WORK/listener.out" 2>&1 &
LISTENER_PID=$!
for _ in $(seq 1 50); do
	grep -q listening "$WORK/listener.out" 2>/dev/null && break
	kill -0 "$LISTENER_PID" 2>/dev/null || { cat "$WORK/listener.out" >&2; die "listener exited"; }
	sleep 0.1
done
grep -q listening "$WORK/listener.out" || die "listener did not start"
[ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN notifications'")" = 1 ] ||
	die "the listener's LISTEN is not visible in pg_stat_activity"

ENQ0=$(ln_stat enqueued)
LOST0=$(ln_stat lost)
FILT0=$(ln_stat filtered)
OVER0=$(ln_stat oversize)

CONFIGS=()
for c in "${CLIENTS[@]}"; do
	for t in "${CONFIG_TABLES[@]}"; do
		CONFIGS+=("$t:$c")
	done
done
declare -A ROUND_TPS=() FPT=()

# passes CONFIG:CLIENTS: that config's TPS in each round, in round order.
passes() {
	local r
	for ((r = 0; r < ROUNDS; r++)); do
		printf '%s\n' "${ROUND_TPS[$r:$1]}"
	done
}
TOTAL_TXNS_LN=0
TOTAL_TXNS_OFF=0
TOTAL_TXNS_NOTIFY=0
MAX_NOTIFY_QUEUE=0

# count_pass CONFIG TRANSACTIONS: add a pass's transactions to the totals the checks use.
count_pass() {
	case $1 in
		t_livenotify) TOTAL_TXNS_LN=$((TOTAL_TXNS_LN + $2)) ;;
		t_livenotify_off) TOTAL_TXNS_OFF=$((TOTAL_TXNS_OFF + $2)) ;;
		t_notify) TOTAL_TXNS_NOTIFY=$((TOTAL_TXNS_NOTIFY + $2)) ;;
	esac
}

# Warm-up (not counted in the figures): backends, caches, the first pages of each table.
log "warm-up: 3 s per table at 16 clients"
for t in "${TABLES[@]}"; do
	out=$(run_pass "$t" 16 3)
	read -r _ n _ <<<"$out"
	count_pass "$t" "$n"
done

NT=${#CONFIG_TABLES[@]}
for ((r = 0; r < ROUNDS; r++)); do
	for c in "${CLIENTS[@]}"; do
		for ((i = 0; i < NT; i++)); do
			# Odd rounds in the base order, even rounds reversed: no config always follows
			# the same one, and the neighbours of a ratio are never far apart in time.
			if ((r % 2 == 0)); then t=${CONFIG_TABLES[$i]}; else t=${CONFIG_TABLES[$((NT - 1 - i))]}; fi
			out=$(run_pass "$t" "$c" "$SECONDS_PER_PASS")
			read -r tps n faults <<<"$out"
			FPT[$t:$c]="${FPT[$t:$c]:-} $(awk -v f="$faults" -v n="$n" 'BEGIN { printf "%.3f", f / n }')"
			ROUND_TPS[$r:$t:$c]=$tps
			count_pass "$t" "$n"
			if [ "$t" = t_notify ]; then
				usage=$(q -c "SELECT round(pg_notification_queue_usage()::numeric * 100, 2)")
				MAX_NOTIFY_QUEUE=$(awk -v a="$MAX_NOTIFY_QUEUE" -v b="$usage" 'BEGIN { print (b > a) ? b : a }')
			fi
			log "round $((r + 1))/$ROUNDS  $(printf '%-16s %2s clients  %8.1f tps' "$t" "$c" "$tps")"
		done
	done
done

# ---------------------------------------------------------------------------------------
# 5. Results and sanity checks.

# median of the numbers given
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}
# verdict VALUE TARGET: "met" or "NOT met"
verdict() {
	awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "met" : "NOT met" }'
}

declare -A MED=()
for cfg in "${CONFIGS[@]}"; do
	# shellcheck disable=SC2086 # the list of pass figures, split on purpose
	MED[$cfg]=$(median $(passes "$cfg"))
done

# The listener gets the last notifications shortly after the last commit.
for _ in $(seq 1 50); do
	[ "$(cat "$WORK/listener.count")" -ge "$TOTAL_TXNS_NOTIFY" ] && break
	sleep 0.2
done
LISTENED=$(cat "$WORK/listener.count")

ENQ=$(($(ln_stat enqueued) - ENQ0))
LOST=$(($(ln_stat lost) - LOST0))
FILT=$(($(ln_stat filtered) - FILT0))
OVER=$(($(ln_stat oversize) - OVER0))
ROWS_LN=$(q -c "SELECT count(*) FROM t_livenotify")
RING=$(q -c "SELECT pg_size_pretty(ring_bytes::bigint) || ' ring, ' || pg_size_pretty(ring_used_bytes::bigint) || ' used, ' || ring_entries || ' entries, oldest_seq ' || oldest_seq || ', last_seq ' || last_seq || CASE WHEN oldest_seq > 1 THEN ' (wrapped: older entries overwritten, which with no reader is not a loss)' ELSE ' (never wrapped)' END FROM livenotify.stats")
# What one queue entry carries (and one pg_notify payload): the row as JSON.
ROWJSON=$(q -c "SELECT round(avg(octet_length(row_to_json(t)::text))) FROM (SELECT * FROM t_plain LIMIT 1000) t")
PGVERSION=$(q -c "SHOW server_version")

# paired A B CLIENTS: the per-round ratios A/B at that client count, one per line.
paired() {
	local r
	for ((r = 0; r < ROUNDS; r++)); do
		awk -v a="${ROUND_TPS[$r:$1:$3]}" -v b="${ROUND_TPS[$r:$2:$3]}" 'BEGIN { printf "%.4f\n", a / b }'
	done
}
# ratio_of A B CLIENTS: the median of the per-round ratios, two decimals.
ratio_of() {
	# shellcheck disable=SC2046 # one ratio per round, split on purpose
	awk -v m="$(median $(paired "$1" "$2" "$3"))" 'BEGIN { printf "%.2f", m }'
}
# spread_of A B CLIENTS: "lowest-highest" of the per-round ratios.
spread_of() {
	paired "$1" "$2" "$3" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'
}

R1=$(ratio_of t_livenotify t_plain 1)
R16=$(ratio_of t_livenotify t_plain 16)
RN16=$(ratio_of t_livenotify t_notify 16)
RN1=$(ratio_of t_livenotify t_notify 1)
ROFF1=$(ratio_of t_livenotify_off t_plain 1)
ROFF16=$(ratio_of t_livenotify_off t_plain 16)

SANITY=ok
# enabled = off queues nothing: its rows are in the table, not in the ring.
[ "$ENQ" -eq "$TOTAL_TXNS_LN" ] && [ "$ROWS_LN" -eq $((TOTAL_TXNS_LN + TOTAL_TXNS_OFF)) ] ||
	SANITY=FAILED
[ "$LOST" -eq 0 ] && [ "$FILT" -eq 0 ] && [ "$OVER" -eq 0 ] || SANITY=FAILED
[ "$LISTENED" -eq "$TOTAL_TXNS_NOTIFY" ] || SANITY=FAILED

# What each config is, in the tables.
describe() {
	case $1 in
		t_plain) echo "no trigger" ;;
		t_livenotify) echo "livenotify" ;;
		t_livenotify_off) echo "livenotify's triggers, livenotify.enabled = off" ;;
		t_notify) echo "PL/pgSQL trigger calling pg_notify" ;;
	esac
}
TABLE=$(
	printf '| config | clients | median TPS | passes (TPS, in round order) | page faults per transaction |\n'
	printf '|---|---:|---:|---|---:|\n'
	for cfg in "${CONFIGS[@]}"; do
		# shellcheck disable=SC2086
		printf '| %s | %s | %.0f | %s | %.2f |\n' "$(describe "${cfg%%:*}")" "${cfg##*:}" "${MED[$cfg]}" \
			"$(printf '%.0f ' $(passes "$cfg") | sed 's/ $//; s/ /, /g')" "$(median ${FPT[$cfg]})"
	done
)
RATIOS=$(
	printf '| ratio (median of the %s per-round ratios) | value | rounds | target | |\n' "$ROUNDS"
	printf '|---|---:|---|---:|---|\n'
	printf '| livenotify / no trigger, 1 client | %s | %s | >= 0.95 | %s |\n' "$R1" \
		"$(spread_of t_livenotify t_plain 1)" "$(verdict "$R1" 0.95)"
	printf '| livenotify / no trigger, 16 clients | %s | %s | >= 0.95 | %s |\n' "$R16" \
		"$(spread_of t_livenotify t_plain 16)" "$(verdict "$R16" 0.95)"
	printf '| livenotify / pg_notify, 16 clients | %s | %s | >= 3 | %s |\n' "$RN16" \
		"$(spread_of t_livenotify t_notify 16)" "$(verdict "$RN16" 3)"
	printf '| livenotify / pg_notify, 1 client | %s | %s | (none) | |\n' "$RN1" \
		"$(spread_of t_livenotify t_notify 1)"
	printf '| triggers only (enabled = off) / no trigger, 1 client | %s | %s | (PostgreSQL'"'"'s share) | |\n' \
		"$ROFF1" "$(spread_of t_livenotify_off t_plain 1)"
	printf '| triggers only (enabled = off) / no trigger, 16 clients | %s | %s | (PostgreSQL'"'"'s share) | |\n' \
		"$ROFF16" "$(spread_of t_livenotify_off t_plain 16)"
)
CHECKS=$(
	printf -- '- livenotify.stats enqueued delta: %s; livenotify INSERT transactions (pgbench, incl. warm-up): %s; with enabled = off: %s; rows in t_livenotify: %s\n' \
		"$ENQ" "$TOTAL_TXNS_LN" "$TOTAL_TXNS_OFF" "$ROWS_LN"
	printf -- '- lost: %s, filtered: %s, oversize: %s (no reader was connected: nothing may count as lost; all types delivered)\n' \
		"$LOST" "$FILT" "$OVER"
	printf -- '- ring at the end: %s\n' "$RING"
	printf -- '- pg_notify listener received %s notifications for %s t_notify INSERT transactions; NOTIFY queue usage after a pass, max: %s%%\n' \
		"$LISTENED" "$TOTAL_TXNS_NOTIFY" "$MAX_NOTIFY_QUEUE"
	printf -- '- sanity: %s\n' "$SANITY"
)

CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
NPROC=$(nproc)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')

printf '\n===== write path: INSERT TPS (%s rounds, passes of %s s) =====\n%s\n\n%s\n\n%s\n' \
	"$ROUNDS" "$SECONDS_PER_PASS" "$TABLE" "$RATIOS" "$CHECKS"

# ---------------------------------------------------------------------------------------
# 6. docs/benchmarks.md: replace the section of this benchmark, keep any other.
SECTION=$(
	cat <<EOF
## Write path (issue 2)

Measured $DATE by \`bench/write-path.sh\`.

- Machine: $NPROC CPUs ($CPU), load average $LOAD_BEFORE before the run, $LOAD_AFTER after.
- PostgreSQL $PGVERSION, private cluster: fsync and synchronous_commit on,
  shared_buffers 512MB, autovacuum off, a checkpoint before each pass and none during it,
  livenotify.ring_size 64MB (the default).
- Method: three tables shaped like Django's \`api_notification\` (id bigserial, user_id
  integer, type varchar(50), title varchar(255), message text, is_read boolean, created_at
  timestamptz, extra jsonb). \`t_plain\` has no trigger; \`t_livenotify\` is registered with
  \`livenotify.register('t_livenotify', 'user_id', 'type', 'id', 'is_read')\`; \`t_notify\`
  has a PL/pgSQL AFTER INSERT trigger running \`pg_notify('notifications',
  row_to_json(NEW)::text)\`, with one psycopg2 connection that LISTENs and drains every
  notification. A fourth config inserts into \`t_livenotify\` with \`livenotify.enabled = off\`
  (\`PGOPTIONS\`): livenotify's four triggers are copied into every INSERT's executor state and
  the capture trigger fires and returns at once, so it measures PostgreSQL's row-trigger
  machinery alone. pgbench (simple query protocol, \`-j 2\` at 16 clients) runs one INSERT per
  transaction: a random user among 1000, a delivered type (comment, like, follow, mention),
  a ~60-byte title and ~200-byte message, a small jsonb (row JSON $ROWJSON bytes on average).
  After a 3 s warm-up per table, $ROUNDS rounds; in each, for 1 and then 16 clients, the four
  configs run back to back for $SECONDS_PER_PASS s each, in an order reversed every round. This
  virtual machine's speed drifts by tens of percent from one minute to the next, so a ratio is
  taken within a round, between passes a few seconds apart, and the figure is the median of
  those per-round ratios (the *rounds* column gives the lowest and highest). Page faults are
  the whole machine's (\`/proc/vmstat\`) during a pass, over its transactions (median of the
  passes). pgbench runs on the same machine as the server.
$TABLE

$RATIOS

Checks:

$CHECKS

Reproduce (as root on Debian 12, from the repository root):

\`\`\`sh
make bench-write      # or: bash bench/write-path.sh  (make bench also runs the other benchmarks)
\`\`\`

(\`BENCH_SECONDS\` and \`BENCH_ROUNDS\` change the pass length and count; passes on a shared
or virtual machine vary by tens of percent, so compare configs only within one round, as the
ratios above do.)
EOF
)

# The analysis kept by hand (profiles, experiments) follows the figures.
if [ -f bench/write-path-notes.md ]; then
	SECTION="$SECTION

$(cat bench/write-path-notes.md)"
fi

if [ "$WRITE_DOCS" = 1 ]; then
	if [ ! -f "$DOC" ]; then
		printf '# livenotify benchmarks\n\nEach section is written by the script it names; rerun it to refresh the figures.\n' >"$DOC"
	fi
	# Drop the old section (from its heading to the next "## " heading), append the new one.
	awk '/^## / { skip = ($0 == "## Write path (issue 2)") } !skip' "$DOC" >"$WORK/doc.md"
	# Exactly one blank line before the section.
	sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$WORK/doc.md" >"$DOC"
	printf '\n%s\n' "$SECTION" >>"$DOC"
	log "wrote $ROOT/$DOC"
fi

[ "$SANITY" = ok ] || die "sanity checks failed (see above)"
