#!/usr/bin/env bash
# test/column_identity/run.sh: a registration keeps its columns' identity when the database
# moves (issue 11).  Two checks, each a suite of test/run-all.sh (the third move, ALTER
# EXTENSION UPDATE, is test/upgrade/run.sh, which runs the same setup.sql and check.sql):
#
#   dump_restore   pg_dump a database with registrations whose attribute numbers do not
#                  survive a restore (a dropped column; a partition attached with another
#                  column order), pg_restore it into a new database, check every entry read
#   pg_upgrade     the same database, pg_upgrade'd into a second cluster (same binaries, the
#                  extension installed in both), then the same checks
#
# dump_restore uses the server PGHOST/PGPORT point at (test/run-all.sh's cluster);
# pg_upgrade starts its own two clusters on ports $2 and $2+1.  The checks are
# setup.sql (run in the source database) and check.sql (in the target; any mismatch of
# an entry's user is an ERROR).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=test/lib.sh
source test/lib.sh

HERE=test/column_identity
BIN=$LIVENOTIFY_PG_BIN

q() { # q DB ARGS...: psql on the server in PGHOST/PGPORT
	local db=$1
	shift
	PGOPTIONS="-c client_min_messages=warning" "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"
}

recreate() { # recreate DB...
	local db
	for db in "$@"; do
		q postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || return 1
	done
}

check() { # check DB: check.sql, its output shown; fails on any ERROR
	local out
	if out=$(PGOPTIONS="-c client_min_messages=notice" "$BIN/psql" -X -v ON_ERROR_STOP=1 \
		-d "$1" -f "$HERE/check.sql" 2>&1); then
		printf '%s\n' "$out"
		return 0
	fi
	printf '%s\n' "$out"
	echo "FAIL: check.sql in database $1"
	return 1
}

mode_dump_restore() {
	local dump=/tmp/livenotify-dump.$$ rc=0
	recreate livenotify_dump_src livenotify_dump_dst || return 1
	q livenotify_dump_src -c "CREATE EXTENSION livenotify" -f "$HERE/setup.sql" >/dev/null ||
		return 1
	"$BIN/pg_dump" -Fc -d livenotify_dump_src -f "$dump" || return 1
	"$BIN/pg_restore" --exit-on-error -d livenotify_dump_dst "$dump" || rc=1
	rm -f "$dump"
	[ $rc -eq 0 ] || { echo "FAIL: pg_restore"; return 1; }
	echo "ok: restored into livenotify_dump_dst"
	check livenotify_dump_dst || rc=1
	q postgres -c "DROP DATABASE livenotify_dump_src" -c "DROP DATABASE livenotify_dump_dst" ||
		rc=1
	return $rc
}

mode_pg_upgrade() {
	local port=${1:?port} old new rc=0
	old=$(cluster_dir upgrade-old)
	new=$(cluster_dir upgrade-new)
	cluster_start "$old" "$port" || return 1
	export PGHOST=$old PGPORT=$port PGUSER=postgres
	q postgres -c "CREATE DATABASE livenotify_upgrade" || return 1
	q livenotify_upgrade -c "CREATE EXTENSION livenotify" -f "$HERE/setup.sql" >/dev/null ||
		return 1
	# The new cluster: initdb'd and configured by cluster_start, then stopped for pg_upgrade.
	cluster_start "$new" $((port + 1)) || return 1
	_as_postgres "$BIN/pg_ctl" -D "$old/data" -m fast -w stop >/dev/null || return 1
	_as_postgres "$BIN/pg_ctl" -D "$new/data" -m fast -w stop >/dev/null || return 1
	log "pg_upgrade $old -> $new"
	if ! (cd "$new" && runuser -u postgres -- "$BIN/pg_upgrade" -b "$BIN" -B "$BIN" \
		-d "$old/data" -D "$new/data" -p "$port" -P $((port + 1)) -U postgres \
		-s "$new" >"$new/log/pg_upgrade.log" 2>&1); then
		tail -n 30 "$new/log/pg_upgrade.log"
		find "$new/data" -name '*.log' -path '*pg_upgrade_output*' -exec tail -n 20 {} + 2>/dev/null
		echo "FAIL: pg_upgrade"
		return 1
	fi
	echo "ok: pg_upgrade into a second cluster"
	_as_postgres "$BIN/pg_ctl" -D "$new/data" -l "$new/log/postgresql.log" -w -t 60 start \
		>/dev/null || { tail -n 30 "$new/log/postgresql.log"; return 1; }
	export PGHOST=$new PGPORT=$((port + 1))
	check livenotify_upgrade || rc=1
	cluster_stop "$new"
	cluster_stop "$old"
	return $rc
}

case ${1:-} in
	dump_restore) mode_dump_restore ;;
	pg_upgrade) mode_pg_upgrade "${2:-}" ;;
	*) die "usage: $0 dump_restore|pg_upgrade PORT" ;;
esac
