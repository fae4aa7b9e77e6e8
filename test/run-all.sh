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
SUITES=(build regress isolation not_preloaded restart horizon upgrade dump_restore pg_upgrade sidecar_build
	sidecar_unit integration browser
	reliability fuzz sidecar_asan)
SKIP=77
# Suites that need another suite to have passed.  (sidecar_unit does not need the whole
# sidecar build: CTest reports the tests whose executable failed to build as not run.)
declare -A NEEDS=(
	[regress]=build [isolation]=build [not_preloaded]=build [restart]=build [horizon]=build
	[upgrade]=build [dump_restore]=build [pg_upgrade]=build
	[integration]="build sidecar_build" [browser]="build sidecar_build"
	[reliability]="build sidecar_build" [sidecar_asan]=build
)
# Suites with nothing to run yet are skipped, whatever happened before them.
present_isolation() { ls test/isolation/specs/*.spec >/dev/null 2>&1; }
present_sidecar_build() { [ -f sidecar/CMakeLists.txt ]; }
present_sidecar_unit() { [ -f sidecar/CMakeLists.txt ]; }
present_integration() { [ -x test/integration/run.sh ]; }
present_browser() { [ -x test/browser/run.sh ]; }
present_reliability() { [ -x test/reliability/run.sh ]; }
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
suite_regress() {
	need_cluster || return 1
	rm -rf results regression.diffs regression.out
	if pg_env make PG_CONFIG="$PG_CONFIG" installcheck ISOLATION= \
		PGHOST="$CLUSTER" PGPORT="$PORT" PGUSER=postgres; then
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

# Behaviour 1 of issue 2: without shared_preload_libraries every function says how to fix
# it.  Needs a second cluster that does not preload the library.
suite_not_preloaded() {
	local dir rc=0 out="$ROOT/build/not_preloaded"
	dir=$(cluster_dir unpreloaded)
	cluster_start "$dir" "$PORT_UNPRELOADED" "shared_preload_libraries = ''" || return 1
	rm -rf "$out"
	mkdir -p "$out"
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
			"$SKIP") RESULT[$name]=skipped; results+=("skipped  $name (nothing to run yet)") ;;
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
