#!/usr/bin/env bash
# test/upgrade/run.sh: ALTER EXTENSION livenotify UPDATE from every shipped version.
#
# For each older version V: a database is created at V with a registered source holding
# rows and a rule, then updated to the default version; a second database gets a fresh
# install of the default version with the same table, registration and rule.  The suite
# fails unless
#   - the two describe alike (test/upgrade/describe.sql: every member object's definition
#     and ACL, config-dump settings, the catalog's rows, the triggers on the app's table),
#   - the updated database keeps delivering: a row inserted after the update is read back
#     from the queue under the right source and user, and catch-up returns the rows that
#     were inserted before the update;
#   - registrations made at V after DDL that moves attribute numbers (test/column_identity)
#     route every entry read after the update to its own user.
# Run by test/run-all.sh (suite `upgrade`) against the shared cluster (PGHOST, PGPORT, PGUSER).
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=test/lib.sh
source test/lib.sh

OUT=build/upgrade
rm -rf "$OUT"
mkdir -p "$OUT"
default=$(sed -n "s/^default_version = '\(.*\)'/\1/p" livenotify.control)
[ -n "$default" ] || die "no default_version in livenotify.control"

psql_db() {
	local db=$1
	shift
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"
}

# setup DB VERSION: the application's table at VERSION of the extension, registered, with a
# rule and two rows (one for user 7, one of a skipped type).
setup_db() {
	local db=$1 version=$2
	PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres \
		-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" || return 1
	psql_db "$db" <<SQL || return 1
CREATE EXTENSION livenotify VERSION '$version';
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
SELECT livenotify.register('api_notification', 'user_id', 'type', 'id', 'is_read') \gset
INSERT INTO livenotify.rules VALUES ('api_notification', 'system', 'skip');
INSERT INTO api_notification (user_id, type, title, message) VALUES
    (7, 'like', 'before update', ''), (7, 'event', 'skipped', '');
SQL
}

rc=0
for script in extension/livenotify--*--"$default".sql; do
	[ -f "$script" ] || continue
	from=${script#extension/livenotify--}
	from=${from%%--*}
	old=livenotify_upgrade_from_${from//./_}
	new=livenotify_upgrade_fresh
	log "upgrade: $from -> $default"
	setup_db "$old" "$from" || { log "FAIL: setting up a database at $from"; rc=1; continue; }
	psql_db "$old" -c "ALTER EXTENSION livenotify UPDATE TO '$default'" ||
		{ log "FAIL: ALTER EXTENSION livenotify UPDATE from $from"; rc=1; continue; }
	setup_db "$new" "$default" || { log "FAIL: setting up a fresh $default database"; rc=1; continue; }

	psql_db "$old" -f test/upgrade/describe.sql >"$OUT/from-$from.txt" &&
		psql_db "$new" -f test/upgrade/describe.sql >"$OUT/fresh.txt" ||
		{ log "FAIL: describing the databases"; rc=1; continue; }
	if diff -u "$OUT/fresh.txt" "$OUT/from-$from.txt" >"$OUT/from-$from.diff"; then
		echo "ok: $from updated to $default describes like a fresh $default" \
			"($(wc -l <"$OUT/fresh.txt") lines)"
	else
		echo "FAIL: $from updated to $default differs from a fresh install (- fresh, + updated):"
		cat "$OUT/from-$from.diff"
		rc=1
	fi

	# The registration made at the old version keeps delivering, and catch-up still finds the
	# rows from before the update.
	got=$(psql_db "$old" -At <<'SQL'
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message) VALUES (7, 'like', 'after update', '');
SELECT string_agg(concat_ws('|', source, user_key, kind, payload::json->>'title'), ',' ORDER BY seq)
  FROM livenotify.read(:base, 10, 1000);
SELECT string_agg(payload::json->>'title', ',' ORDER BY id)
  FROM livenotify.catchup('api_notification', '7', 0);
SQL
	) || { log "FAIL: delivery after the update"; rc=1; continue; }
	want=$'api_notification|7|notification|after update\nbefore update,after update'
	if [ "$got" = "$want" ]; then
		echo "ok: the source registered at $from delivers after the update"
	else
		printf 'FAIL: after the update from %s, expected\n%s\ngot\n%s\n' "$from" "$want" "$got"
		rc=1
	fi
	psql -X -q -d postgres -c "DROP DATABASE $old" -c "DROP DATABASE $new" || rc=1

	# Registrations whose attribute numbers a 0.1 catalog got wrong after some DDL (a dropped
	# column; a partition attached with another column order), made at the old version and
	# updated: every entry read afterwards carries its own user's row (check.sql ERRORs if not).
	PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres \
		-c "DROP DATABASE IF EXISTS $old" -c "CREATE DATABASE $old" || { rc=1; continue; }
	if psql_db "$old" -c "CREATE EXTENSION livenotify VERSION '$from'" \
		-f test/column_identity/setup.sql >/dev/null &&
		psql_db "$old" -c "ALTER EXTENSION livenotify UPDATE TO '$default'" &&
		out=$(psql -X -v ON_ERROR_STOP=1 -d "$old" -f test/column_identity/check.sql 2>&1); then
		printf '%s\n' "$out"
		echo "ok: registrations made at $from after DDL route every entry to its user once updated"
	else
		printf '%s\n' "${out:-}"
		echo "FAIL: the column identity checks after the update from $from"
		rc=1
	fi
	psql -X -q -d postgres -c "DROP DATABASE $old" || rc=1
done
exit $rc
