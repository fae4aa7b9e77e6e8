-- test/column_identity/check.sql: after a dump/restore, a pg_upgrade or an update from 0.1,
-- every captured row goes to its own user.  Prints "ok: ..." lines; any mismatch is an ERROR
-- (psql runs with ON_ERROR_STOP).
\set ON_ERROR_STOP on
SELECT extversion FROM pg_extension WHERE extname = 'livenotify';
SELECT source, user_column, type_column, id_column, coalesce(read_column, '-') AS read_column
  FROM livenotify.sources ORDER BY source;

SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title) VALUES (7, 'like', 'new for 7'),
                                                          (99, 'like', 'new for 99'),
                                                          (7, 'digest', 'skipped for 7');
INSERT INTO part_notification (user_id, type, secret) VALUES (7, 'like', 'secret of 7'),
                                                            (99, 'like', 'secret of 99');
-- A row moved to the other partition: no new notification.
UPDATE part_notification SET user_id = 99 WHERE secret = 'old secret of 7';
CREATE TEMP TABLE got AS SELECT * FROM livenotify.read(:base, 100, 1000);

SELECT source, user_key, kind, payload::json->>'user_id' AS row_user,
       coalesce(payload::json->>'title', payload::json->>'secret') AS what
  FROM got ORDER BY seq;
DO $$
DECLARE
	bad record;
	n bigint;
BEGIN
	SELECT * INTO bad FROM got
	 WHERE kind = 'notification' AND user_key IS DISTINCT FROM payload::json->>'user_id';
	IF FOUND THEN
		RAISE EXCEPTION 'entry % of source % for user % carries the row of user %',
			bad.seq, bad.source, bad.user_key, bad.payload::json->>'user_id';
	END IF;
	SELECT count(*) INTO n FROM got WHERE kind = 'notification';
	IF n <> 4 THEN
		RAISE EXCEPTION 'expected 4 notifications (2 per table, none for the skipped type or the moved row), got %', n;
	END IF;
	-- Catch-up gives each user their own rows, old and new, in both tables.
	SELECT count(*) INTO n FROM livenotify.catchup('api_notification', '7', 0) c
	 WHERE c.payload::json->>'user_id' <> '7';
	IF n <> 0 THEN
		RAISE EXCEPTION 'catch-up of user 7 returned % rows of other users', n;
	END IF;
	SELECT count(*) INTO n FROM livenotify.catchup('api_notification', '7', 0);
	IF n <> 2 THEN
		RAISE EXCEPTION 'catch-up of user 7 returned % rows, expected 2', n;
	END IF;
	SELECT count(*) INTO n FROM livenotify.catchup('part_notification', '99', 0) c
	 WHERE c.payload::json->>'user_id' = '99';
	IF n <> 3 THEN
		RAISE EXCEPTION 'catch-up of user 99 in part_notification returned % of their rows, expected 3', n;
	END IF;
	SELECT u.unread INTO n FROM livenotify.unread_counts('api_notification', '{7}') u;
	IF n <> 3 THEN
		RAISE EXCEPTION 'unread count of user 7 is %, expected 3', n;
	END IF;
	RAISE NOTICE 'ok: every entry and every caught-up row belongs to its user';
END
$$;
-- A registered column is still protected, and a rename is still followed.
ALTER TABLE api_notification RENAME COLUMN user_id TO owner_id;
SELECT user_column FROM livenotify.sources WHERE source = 'api_notification';
ALTER TABLE api_notification RENAME COLUMN owner_id TO user_id;
DO $$
BEGIN
	ALTER TABLE api_notification DROP COLUMN type;
	RAISE EXCEPTION 'a registered column was dropped';
EXCEPTION WHEN dependent_objects_still_exist THEN
	RAISE NOTICE 'ok: dropping a registered column is refused';
END
$$;
