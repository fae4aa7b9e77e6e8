#!/usr/bin/env bash
# test/run-all.sh: everything `make test` does, on a fresh Debian 12 machine, as root.
#
#   1. install the Debian packages that are missing (test/lib.sh: ensure_packages)
#   2. build and install the extension (and the sidecar when it exists)
#   3. start a private cluster (port 54329, socket directory under /tmp, livenotify preloaded)
#   4. run the suites below, each one independent of the others' result
#   5. stop the cluster (also on failure or ^C), print "N passed, N failed", exit non-zero
#      if any suite failed
#
# Environment: LIVENOTIFY_TEST_PORT (54329), LIVENOTIFY_KEEP_CLUSTER=1 keeps the cluster's
# directory (data and server log) for a post-mortem.  Extra arguments name the suites to run
# (default: all), e.g. `bash test/run-all.sh regress`.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
# shellcheck source=test/lib.sh
source test/lib.sh

PORT=${LIVENOTIFY_TEST_PORT:-54329}
PORT_UNPRELOADED=$((PORT + 1))
CLUSTER=""

# The suites, in order.  Each is a function suite_<name> returning 0 (pass), SKIP (nothing
# to test yet) or anything else (fail).  Integration and browser suites are added here as
# the sidecar and the product work land.
SUITES=(build harness regress isolation not_preloaded restart horizon reader_xmin standby shmem_magic upgrade
	dump_restore pg_upgrade sidecar_build sidecar_unit integration django browser
	reliability failover fuzz sidecar_asan)
SKIP=77
# Suites that need another suite to have passed.  (sidecar_unit does not need the whole
# sidecar build: CTest reports the tests whose executable failed to build as not run.)
declare -A NEEDS=(
	[harness]=build [regress]=build [isolation]=build [not_preloaded]=build [restart]=build [upgrade]=build
	[dump_restore]=build [pg_upgrade]=build
	[reader_xmin]=build [standby]=build [shmem_magic]=build
	[horizon]=build
	[integration]="build sidecar_build" [django]="build sidecar_build" [browser]="build sidecar_build"
	[reliability]="build sidecar_build" [failover]="build sidecar_build" [sidecar_asan]=build
)
# Suites with nothing to run yet are skipped, whatever happened before them.
present_isolation() { ls test/isolation/specs/*.spec >/dev/null 2>&1; }
present_sidecar_build() { [ -f sidecar/CMakeLists.txt ]; }
present_sidecar_unit() { [ -f sidecar/CMakeLists.txt ]; }
present_integration() { [ -x test/integration/run.sh ]; }
present_django() { [ -x test/django/run.sh ]; }
present_browser() { [ -x test/browser/run.sh ]; }
present_reliability() { [ -x test/reliability/run.sh ]; }
present_failover() { [ -x test/failover/run.sh ]; }
present_fuzz() { [ -x test/fuzz/run.sh ]; }
present_sidecar_asan() { [ -x test/reliability/asan.sh ]; }
declare -A RESULT=()

# The extension alone: `-o sidecar` keeps the Makefile's `all: sidecar` prerequisite from
# running, so that a broken sidecar does not hide the extension's results (and vice versa).
suite_build() {
	make PG_CONFIG="$PG_CONFIG" -o sidecar -j2 &&
		make PG_CONFIG="$PG_CONFIG" -o sidecar install
}

suite_sidecar_build() {
	[ -f sidecar/CMakeLists.txt ] || return $SKIP
	make PG_CONFIG="$PG_CONFIG" sidecar
}

# Start the shared private cluster once, for the suites that need it.
need_cluster() {
	if [ -z "$CLUSTER" ]; then
		CLUSTER=$(cluster_dir regress)
		cluster_start "$CLUSTER" "$PORT" || return 1
	fi
}

pg_env() {
	env PGHOST="$CLUSTER" PGPORT="$PORT" PGUSER=postgres "$@"
}

# pg_regress (sql/*.sql against expected/*.out).  pg_regress is only a client here: it runs
# as root and writes results/ and regression.diffs into the source tree.
# Any backend killed by a signal during the run fails it too, even if the output matched.
suite_regress() {
	local log before
	need_cluster || return 1
	log="$CLUSTER/log/postgresql.log"
	before=$(stat -c %s "$log")
	rm -rf results regression.diffs regression.out
	if pg_env make PG_CONFIG="$PG_CONFIG" installcheck ISOLATION= \
		PGHOST="$CLUSTER" PGPORT="$PORT" PGUSER=postgres; then
		if tail -c +"$((before + 1))" "$log" | grep -E 'terminated by signal|PANIC'; then
			echo "FAIL: a backend crashed during the regression tests"
			return 1
		fi
		return 0
	fi
	[ -f regression.diffs ] && cat regression.diffs
	cluster_log "$CLUSTER"
	return 1
}

# Isolation specs (test/isolation/specs/*.spec against test/isolation/expected/*.out).
suite_isolation() {
	need_cluster || return 1
	if [ -z "$(ls test/isolation/specs/*.spec 2>/dev/null)" ]; then
		return $SKIP
	fi
	rm -rf output_iso
	if pg_env make PG_CONFIG="$PG_CONFIG" installcheck REGRESS= \
		PGHOST="$CLUSTER" PGPORT="$PORT" PGUSER=postgres; then
		return 0
	fi
	[ -f output_iso/regression.diffs ] && cat output_iso/regression.diffs
	cluster_log "$CLUSTER"
	return 1
}

# pg_dump a database with a registered source (rules, rows) from the preloaded cluster and
# restore it with ON_ERROR_STOP into livenotify_restored on the unpreloaded one (in DIR).
not_preloaded_dump() {
	local dir=$1 db=livenotify_dump_source
	need_cluster || return 1
	PGOPTIONS="-c client_min_messages=warning" pg_env psql -X -q -v ON_ERROR_STOP=1 -d postgres \
		-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || return 1
	pg_env psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<-'EOF' >/dev/null || return 1
		CREATE EXTENSION livenotify;
		CREATE TABLE api_notification (
		    id bigserial PRIMARY KEY, user_id integer NOT NULL, type varchar(50) NOT NULL,
		    title varchar(255) NOT NULL, message text NOT NULL,
		    is_read boolean NOT NULL DEFAULT false, extra jsonb);
		SELECT livenotify.register('api_notification', read_column => 'is_read');
		INSERT INTO livenotify.rules VALUES ('api_notification', 'digest', 'skip');
		INSERT INTO api_notification (user_id, type, title, message)
		VALUES (1, 'like', 'dumped', 'row 1');
	EOF
	PGOPTIONS="-c client_min_messages=warning" env PGHOST="$dir" PGPORT="$PORT_UNPRELOADED" \
		PGUSER=postgres psql -X -q -v ON_ERROR_STOP=1 -d postgres \
		-c "DROP DATABASE IF EXISTS livenotify_restored" -c "CREATE DATABASE livenotify_restored" ||
		return 1
	# The restore's own output (and its WARNINGs) are not the test: the SQL test checks
	# what was restored.  A failing statement stops it (ON_ERROR_STOP) and fails the suite.
	if ! pg_env "$($PG_CONFIG --bindir)/pg_dump" -d "$db" |
		env PGHOST="$dir" PGPORT="$PORT_UNPRELOADED" PGUSER=postgres \
			psql -X -q -v ON_ERROR_STOP=1 -d livenotify_restored >"$ROOT/build/not_preloaded/restore.log" 2>&1; then
		echo "FAIL: the dump did not restore onto the unpreloaded cluster:"
		cat "$ROOT/build/not_preloaded/restore.log"
		return 1
	fi
	pg_env psql -X -q -d postgres -c "DROP DATABASE $db"
}

# Behaviour 1 of issue 2: without shared_preload_libraries every function says how to fix
# it.  Needs a second cluster that does not preload the library.
suite_not_preloaded() {
	local dir rc=0 out="$ROOT/build/not_preloaded"
	dir=$(cluster_dir unpreloaded)
	cluster_start "$dir" "$PORT_UNPRELOADED" "shared_preload_libraries = ''" || return 1
	rm -rf "$out"
	mkdir -p "$out"
	# A dump of a database with a registered source (made on the preloaded cluster, where
	# register() works) restores onto the unpreloaded one; the SQL test then writes to the
	# restored table.
	not_preloaded_dump "$dir" || rc=1
	env PGHOST="$dir" PGPORT="$PORT_UNPRELOADED" PGUSER=postgres \
		"$(dirname "$($PG_CONFIG --pgxs)")/../test/regress/pg_regress" \
		--bindir="$($PG_CONFIG --bindir)" --inputdir=test/not_preloaded --outputdir="$out" \
		--dbname=livenotify_not_preloaded not_preloaded || rc=1
	if [ $rc -ne 0 ]; then
		[ -f "$out/regression.diffs" ] && cat "$out/regression.diffs"
		cluster_log "$dir"
	fi
	cluster_stop "$dir"
	return $rc
}

# Behaviour 8 of issue 2 across a server restart (pg_regress cannot restart the server):
# the epoch changes, and a position from before the restart is refused with an ERROR.
suite_restart() {
	local db=livenotify_restart e1 l1 e2 out rc=0
	need_cluster || return 1
	q() { pg_env psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
	PGOPTIONS="-c client_min_messages=warning" pg_env psql -X -q -d postgres \
		-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" ||
		return 1
	q "CREATE EXTENSION livenotify" || return 1
	q "SELECT livenotify.send('1', 'ping')" >/dev/null || return 1
	e1=$(q "SELECT epoch FROM livenotify.position()") &&
		l1=$(q "SELECT last_seq FROM livenotify.position()") || return 1
	cluster_restart "$CLUSTER" || return 1
	e2=$(q "SELECT epoch FROM livenotify.position()") || return 1
	if [ "$e1" = "$e2" ]; then
		echo "FAIL: the epoch did not change across the restart ($e1)"
		rc=1
	else
		echo "ok: new epoch after restart"
	fi
	if out=$(q "SELECT count(*) FROM livenotify.read($l1, 10, 0)" 2>&1); then
		echo "FAIL: read() after a position from before the restart returned: $out"
		rc=1
	elif printf '%s' "$out" | grep -q 'past the end of the livenotify queue'; then
		echo "ok: read() from an old position is refused: $out"
	else
		echo "FAIL: unexpected error from read() at an old position: $out"
		rc=1
	fi
	# After the restart the queue works: a new entry is read back from position().
	out=$(q "SELECT last_seq FROM livenotify.position()") &&
		q "SELECT livenotify.send('1', 'ping')" >/dev/null &&
		out=$(q "SELECT kind FROM livenotify.read($out, 10, 1000)") || rc=1
	if [ "$out" = ping ]; then
		echo "ok: entries flow after the restart"
	else
		echo "FAIL: no entry read back after the restart: $out"
		rc=1
	fi
	# A delivered row survives a crash when its commit was synchronous: entries are published
	# at commit, after the commit record is flushed (synchronous_commit = on).  Deliver one,
	# stop the server without a shutdown checkpoint, start it: catch-up returns the row, and
	# the cursor made from that read is still valid on this history.
	q "CREATE TABLE durable (id bigserial PRIMARY KEY, user_id int NOT NULL, type text NOT NULL)
	   ; SELECT livenotify.register('durable')" >/dev/null || rc=1
	out=$(q "SELECT last_seq FROM livenotify.position()") || rc=1
	PGOPTIONS="-c synchronous_commit=on" q "INSERT INTO durable (user_id, type) VALUES (7, 'x')" ||
		rc=1
	local read_out horizon
	read_out=$(pg_env psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" \
		-c "SELECT payload::json->>'id' FROM livenotify.read($out, 10, 1000) WHERE kind = 'notification'" \
		-c "SELECT xmin FROM livenotify.read_horizon()") || rc=1
	horizon=$(printf '%s\n' "$read_out" | sed -n 2p)
	if [ "$(printf '%s\n' "$read_out" | sed -n 1p)" != 1 ] || [ -z "$horizon" ]; then
		echo "FAIL: the row was not delivered with a horizon: $read_out"
		rc=1
	fi
	_as_postgres "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$CLUSTER/data" -m immediate -w stop >/dev/null &&
		_as_postgres "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$CLUSTER/data" -l "$CLUSTER/log/postgresql.log" \
			-w -t 60 start >/dev/null || { echo "FAIL: crash restart"; rc=1; }
	out=$(q "SELECT string_agg(id::text, ',') FROM livenotify.catchup('durable', '7', 0)") || rc=1
	if [ "$out" = 1 ]; then
		echo "ok: a row delivered with synchronous_commit = on survives a crash (catch-up returns it)"
	else
		echo "FAIL: after the crash catch-up returned '$out', expected the delivered row 1"
		rc=1
	fi
	out=$(q "SELECT count(*) FROM livenotify.catchup_cursor('durable', '7', '$horizon', '{1}', 0)") ||
		rc=1
	if [ "$out" = 0 ]; then
		echo "ok: the cursor from before the crash is valid after it (nothing new to replay)"
	else
		echo "FAIL: catch-up by the pre-crash cursor returned $out rows, expected 0"
		rc=1
	fi
	# A standby shares the primary's system identifier; promotion starts a new timeline at
	# once (no checkpoint needed): origin() tells the two histories apart, so a cursor from
	# the old primary is not trusted on the promoted standby.
	local sb sbport=$((PORT + 5)) o1 o2 o3
	o1=$(q "SELECT system_identifier || '.' || timeline FROM livenotify.origin()") || rc=1
	sb=$(cluster_dir standby)
	if _as_postgres "$LIVENOTIFY_PG_BIN/pg_basebackup" -D "$sb/data" -R -X stream \
		-h "$CLUSTER" -p "$PORT" -U postgres >/dev/null 2>&1; then
		mkdir -p "$sb/log" && chown postgres:postgres "$sb/log"
		printf "port = %s\nunix_socket_directories = '%s'\n" "$sbport" "$sb" \
			>>"$sb/data/postgresql.conf"
		_as_postgres "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$sb/data" -l "$sb/log/postgresql.log" -w \
			-t 60 start >/dev/null || rc=1
		sq() { env PGHOST="$sb" PGPORT="$sbport" PGUSER=postgres \
			psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
		o2=$(sq "SELECT system_identifier || '.' || coalesce(timeline::text, 'recovery')
		         FROM livenotify.origin()") || rc=1
		_as_postgres "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$sb/data" -w -t 60 promote >/dev/null || rc=1
		o3=$(sq "SELECT system_identifier || '.' || timeline FROM livenotify.origin()") || rc=1
		_as_postgres "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$sb/data" -m fast -w stop >/dev/null 2>&1
		if [ "$o2" = "${o1%.*}.recovery" ] && [ "$o3" = "${o1%.*}.$((${o1##*.} + 1))" ]; then
			echo "ok: origin() $o1 on the primary, $o2 on its standby, $o3 once promoted"
		else
			echo "FAIL: origin() $o1 on the primary, $o2 on its standby, $o3 once promoted"
			rc=1
		fi
	else
		echo "FAIL: pg_basebackup of the test cluster"
		rc=1
	fi
	rm -rf "$sb"
	pg_env psql -X -q -d postgres -c "DROP DATABASE $db" || rc=1
	[ $rc -eq 0 ] || cluster_log "$CLUSTER"
	return $rc
}

# Resume cursors under concurrent commits: catch-up by each cursor the reader made returns
# exactly the rows not delivered by then (test/horizon/stress.py).
suite_horizon() {
	need_cluster || return 1
	ensure_packages python3-psycopg2 >/dev/null || return 1
	pg_env psql -X -q -d postgres -c "DROP DATABASE IF EXISTS livenotify_horizon" \
		-c "CREATE DATABASE livenotify_horizon" || return 1
	pg_env psql -X -q -d livenotify_horizon -c "CREATE EXTENSION livenotify" || return 1
	/usr/bin/python3 test/horizon/stress.py \
		"host=$CLUSTER port=$PORT user=postgres dbname=livenotify_horizon" \
		"${LIVENOTIFY_HORIZON_SECONDS:-6}"
	local rc=$?
	pg_env psql -X -q -d postgres -c "DROP DATABASE livenotify_horizon" || rc=1
	return $rc
}

# ALTER EXTENSION livenotify UPDATE from every shipped version: the updated database describes
# like a fresh install and its registrations keep delivering (test/upgrade/run.sh).
suite_upgrade() {
	need_cluster || return 1
	pg_env bash test/upgrade/run.sh
}

# A registration keeps its columns' identity when the database moves (issue 11,
# test/column_identity/run.sh): pg_dump/pg_restore into a new database, pg_upgrade into a
# second cluster (ports PORT+4, PORT+5); every entry read afterwards must carry its own user's row.
suite_dump_restore() {
	need_cluster || return 1
	pg_env test/column_identity/run.sh dump_restore || { cluster_log "$CLUSTER"; return 1; }
}

suite_pg_upgrade() {
	test/column_identity/run.sh pg_upgrade $((PORT + 4))
}

# read() waiting for entries must not hold back vacuum: while it sleeps, its backend
# advertises no xmin (pg_stat_activity.backend_xmin, seen from a second session) when the
# statement is read() alone in READ COMMITTED; a statement that does more with its snapshot
# (count(*) over read()) or a REPEATABLE READ transaction keeps it, as documented.
suite_reader_xmin() {
	local db=livenotify_xmin rc=0 last pid xmin
	need_cluster || return 1
	q() { pg_env psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
	PGOPTIONS="-c client_min_messages=warning" pg_env psql -X -q -d postgres \
		-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || return 1
	q "CREATE EXTENSION livenotify" || return 1
	# waiting_xmin NAME SQL: run SQL (a read() that waits 3 s) in the background, and print
	# the backend_xmin of its session while it waits ("none" when NULL).
	waiting_xmin() {
		local out
		last=$(q "SELECT last_seq FROM livenotify.position()") || return 1
		pg_env psql -X -q -At -d "$db" -c "SET application_name = 'xmin_$1'" \
			-c "${2//LAST/$last}" >/dev/null 2>&1 &
		pid=$!
		sleep 1.5
		out=$(q "SELECT coalesce(backend_xmin::text, 'none') FROM pg_stat_activity
		          WHERE application_name = 'xmin_$1' AND wait_event = 'Extension'")
		wait "$pid"
		printf '%s\n' "${out:-not waiting}"
	}
	xmin=$(waiting_xmin alone "SELECT * FROM livenotify.read(LAST, 10, 3000)")
	if [ "$xmin" = none ]; then echo "ok: read() alone advertises no xmin while it waits"
	else echo "FAIL: read() alone waits with backend_xmin $xmin"; rc=1; fi
	xmin=$(waiting_xmin params "SELECT seq, kind FROM livenotify.read(LAST, 10, 3000) ORDER BY seq LIMIT 5")
	if [ "$xmin" = none ]; then echo "ok: ... also with ORDER BY and LIMIT"
	else echo "FAIL: read() ORDER BY/LIMIT waits with backend_xmin $xmin"; rc=1; fi
	# Prepared with parameters and a generic plan, as livenotifyd prepares it.
	xmin=$(waiting_xmin prepared "SET plan_cache_mode = force_generic_plan; PREPARE r(bigint, int, int) AS SELECT epoch, seq, kind FROM livenotify.read(\$1, \$2, \$3); EXECUTE r(LAST, 10, 3000)")
	if [ "$xmin" = none ]; then echo "ok: ... also prepared, with a generic plan"
	else echo "FAIL: prepared read() waits with backend_xmin $xmin"; rc=1; fi
	xmin=$(waiting_xmin count "SELECT count(*) FROM livenotify.read(LAST, 10, 3000)")
	case $xmin in none | "not waiting") echo "FAIL: count(*) over read(): backend_xmin $xmin"; rc=1 ;;
		*) echo "ok: a statement that does more with its snapshot keeps its xmin ($xmin)" ;; esac
	xmin=$(waiting_xmin rr "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM livenotify.read(LAST, 10, 3000); COMMIT")
	case $xmin in none | "not waiting") echo "FAIL: REPEATABLE READ: backend_xmin $xmin"; rc=1 ;;
		*) echo "ok: a REPEATABLE READ transaction keeps its xmin ($xmin)" ;; esac
	pg_env psql -X -q -d postgres -c "DROP DATABASE $db" || rc=1
	return $rc
}

# On a hot standby (pg_basebackup -R of the shared cluster, on PORT+2, same preload) read()
# and send() raise a clear ERROR at once: livenotify runs on the primary.  Without it read()
# waited silently and send() queued into a ring nobody reads.
suite_standby() {
	local db=livenotify_standby dir sport=$((PORT + 2)) rc=0 out i t0 t1
	need_cluster || return 1
	PGOPTIONS="-c client_min_messages=warning" pg_env psql -X -q -d postgres \
		-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || return 1
	pg_env psql -X -q -d "$db" -c "CREATE EXTENSION livenotify" || return 1
	dir=$(cluster_dir standby)
	mkdir -p "$dir/log" && chown postgres:postgres "$dir/log"
	LIVENOTIFY_CLUSTERS+=("$dir")
	_as_postgres "$LIVENOTIFY_PG_BIN/pg_basebackup" -h "$CLUSTER" -p "$PORT" -U postgres \
		-D "$dir/data" -R -X stream -c fast >"$dir/log/basebackup.log" 2>&1 ||
		{ cat "$dir/log/basebackup.log"; cluster_stop "$dir"; return 1; }
	printf "port = %s\nunix_socket_directories = '%s'\nhot_standby = on\n" "$sport" "$dir" \
		>>"$dir/data/postgresql.conf"
	if ! _as_postgres "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log/postgresql.log" \
		-w -t 60 start >/dev/null; then
		tail -n 30 "$dir/log/postgresql.log"
		cluster_stop "$dir"
		return 1
	fi
	sq() { env PGHOST="$dir" PGPORT="$sport" PGUSER=postgres psql -X -q -At -d "$db" -c "$1" 2>&1; }
	for i in $(seq 1 60); do
		[ "$(sq "SELECT pg_is_in_recovery()")" = t ] && break
		sleep 0.5
	done
	if out=$(sq "SELECT livenotify.send('1', 'ping')"); then
		echo "FAIL: send() on the standby succeeded: $out"; rc=1
	elif printf '%s' "$out" | grep -q 'primary'; then
		echo "ok: send() on the standby: $out"
	else
		echo "FAIL: unexpected error from send() on the standby: $out"; rc=1
	fi
	t0=$(date +%s%N)
	if out=$(sq "SELECT count(*) FROM livenotify.read(0, 10, 5000)"); then
		echo "FAIL: read() on the standby returned: $out"; rc=1
	elif printf '%s' "$out" | grep -q 'primary'; then
		t1=$(date +%s%N)
		if [ $(((t1 - t0) / 1000000)) -lt 2000 ]; then
			echo "ok: read() on the standby, at once: $out"
		else
			echo "FAIL: read() on the standby waited $(((t1 - t0) / 1000000)) ms before: $out"; rc=1
		fi
	else
		echo "FAIL: unexpected error from read() on the standby: $out"; rc=1
	fi
	# The standby's own catalog still answers (monitoring).
	out=$(sq "SELECT count(*) FROM livenotify.sources") || { echo "FAIL: sources: $out"; rc=1; }
	# Promoted, it is a primary with its own epoch: send() and read() work there.
	local e1 e2
	e1=$(pg_env psql -X -q -At -d "$db" -c "SELECT epoch FROM livenotify.position()")
	_as_postgres "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$dir/data" -w -t 60 promote >/dev/null || rc=1
	for i in $(seq 1 60); do
		[ "$(sq "SELECT pg_is_in_recovery()")" = f ] && break
		sleep 0.5
	done
	e2=$(sq "SELECT epoch FROM livenotify.position()")
	sq "SELECT livenotify.send('1', 'ping')" >/dev/null
	out=$(sq "SELECT kind FROM livenotify.read(0, 10, 1000)")
	if [ "$out" = ping ] && [ -n "$e2" ] && [ "$e1" != "$e2" ]; then
		echo "ok: promoted, it queues and reads, with another epoch ($e1 -> $e2)"
	else
		echo "FAIL: after promote: epochs $e1 / $e2, read: $out"; rc=1
	fi
	[ $rc -eq 0 ] || cluster_log "$dir"
	cluster_stop "$dir"
	pg_env psql -X -q -d postgres -c "DROP DATABASE $db" || rc=1
	return $rc
}

# The ring's shared memory starts with a magic and a layout version (ring.cpp): memory laid
# out by another build is refused with a clear ERROR, not misread.  The test changes the
# version word in the running server's shared memory (test/shmem_magic/poke.py, as root
# through /proc/PID/mem), checks every entry point refuses, then puts it back.
suite_shmem_magic() {
	local db=livenotify_magic rc=0 out pm
	local good=4c764e7452696e6702000000 bad=4c764e7452696e6763000000
	need_cluster || return 1
	q() { pg_env psql -X -q -At -d "$db" -c "$1" 2>&1; }
	PGOPTIONS="-c client_min_messages=warning" pg_env psql -X -q -d postgres \
		-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || return 1
	q "CREATE EXTENSION livenotify; CREATE TABLE n (id bigserial, user_id int, type text);
	   SELECT livenotify.register('n')" >/dev/null || return 1
	pm=$(head -1 "$CLUSTER/data/postmaster.pid")
	python3 test/shmem_magic/poke.py "$pm" "$good" "$bad" || return 1
	for sql in "SELECT * FROM livenotify.position()" "SELECT * FROM livenotify.stats" \
		"SELECT livenotify.send('1', 'k')" "SELECT count(*) FROM livenotify.read(0, 1, 0)" \
		"INSERT INTO n (user_id, type) VALUES (1, 'x')"; do
		out=$(q "$sql")
		if printf '%s' "$out" | grep -q 'livenotify shared memory has another layout'; then
			echo "ok: $sql: $(printf '%s' "$out" | head -1)"
		else
			echo "FAIL: $sql with a foreign layout: $out"; rc=1
		fi
	done
	python3 test/shmem_magic/poke.py "$pm" "$bad" "$good" || rc=1
	out=$(q "SELECT count(*) >= 0 FROM livenotify.read(0, 1, 0)")
	[ "$out" = t ] && echo "ok: the layout restored, the queue answers again" ||
		{ echo "FAIL: after restoring: $out"; rc=1; }
	pg_env psql -X -q -d postgres -c "DROP DATABASE $db" || rc=1
	return $rc
}

# Sidecar unit tests (GoogleTest through CTest), once the sidecar builds.
suite_sidecar_unit() {
	[ -d build/sidecar ] || { echo "build/sidecar is missing: the sidecar did not configure"; return 1; }
	ctest --test-dir build/sidecar --output-on-failure
}

# End-to-end suites: real cluster, real sidecar, WebSocket clients / headless Chromium.
suite_integration() {
	[ -x test/integration/run.sh ] || return $SKIP
	need_cluster || return 1
	pg_env test/integration/run.sh
}

# livenotify-django (integrations/django/) in a real Django project: migrate, checks, token
# view, a real daemon and WebSocket clients (test/django/run.sh).  Its own cluster on PORT+9.
suite_django() {
	[ -x test/django/run.sh ] || return $SKIP
	LIVENOTIFY_TEST_PORT=$PORT test/django/run.sh
}

suite_browser() {
	[ -x test/browser/run.sh ] || return $SKIP
	need_cluster || return 1
	pg_env test/browser/run.sh
}

# Faults, overload and hostile input with counted figures (docs/reliability.md).  Its own
# clusters (ports 54370-54371): it restarts PostgreSQL and needs a tiny ring.
suite_reliability() {
	[ -x test/reliability/run.sh ] || return $SKIP
	test/reliability/run.sh
}

# The daemon against a hot standby, a promoted replica and a silent network partition, with
# real parts (test/failover/run.sh): its own clusters on PORT+6..PORT+8, a network namespace
# and iptables rules of its own (SKIP where network namespaces are not available).
# The test harness itself: a cluster starts while its TCP port is held (test/lib.sh).
suite_harness() {
	LIVENOTIFY_TEST_PORT=$PORT bash test/harness_port_held.sh
}

suite_failover() {
	[ -x test/failover/run.sh ] || return $SKIP
	LIVENOTIFY_TEST_PORT=$PORT test/failover/run.sh
}

# libFuzzer targets for the sidecar's parsers of outside input, each for a bounded time.
suite_fuzz() {
	[ -x test/fuzz/run.sh ] || return $SKIP
	test/fuzz/run.sh
}

# The daemon built with AddressSanitizer and UndefinedBehaviorSanitizer (build/sidecar-asan),
# driven by a subset of the reliability tests; any sanitizer report fails the suite.
suite_sidecar_asan() {
	[ -x test/reliability/asan.sh ] || return $SKIP
	test/reliability/asan.sh
}

main() {
	local selected=("$@") name rc dep missing passed=0 failed=0 results=()
	[ ${#selected[@]} -gt 0 ] || selected=("${SUITES[@]}")
	[ "$(id -u)" -eq 0 ] || die "run as root (packages, make install, runuser postgres)"

	ensure_packages

	for name in "${selected[@]}"; do
		declare -F "suite_$name" >/dev/null || die "no such suite: $name"
		printf '\n===== suite %s =====\n' "$name"
		if declare -F "present_$name" >/dev/null && ! "present_$name"; then
			RESULT[$name]=skipped
			results+=("skipped  $name (nothing to run yet)")
			echo "skipped: nothing to run yet"
			continue
		fi
		missing=""
		for dep in ${NEEDS[$name]:-}; do
			# A prerequisite that failed (not one that was skipped or not selected).
			[ "${RESULT[$dep]:-}" = failed ] && missing="$missing $dep"
		done
		if [ -n "$missing" ]; then
			echo "not run: failed before it:$missing"
			rc=1
		else
			"suite_$name"
			rc=$?
		fi
		case $rc in
			0) RESULT[$name]=passed; passed=$((passed + 1)); results+=("ok       $name") ;;
			"$SKIP") RESULT[$name]=skipped; results+=("skipped  $name (it could not run here: see its SKIP lines above)") ;;
			*) RESULT[$name]=failed; failed=$((failed + 1)); results+=("FAILED   $name") ;;
		esac
	done

	if [ -n "$CLUSTER" ]; then
		cluster_stop "$CLUSTER"
		CLUSTER=""
	fi

	printf '\n===== summary =====\n'
	printf '%s\n' "${results[@]}"
	printf '%d passed, %d failed\n' "$passed" "$failed"
	[ "$failed" -eq 0 ]
}

main "$@"
