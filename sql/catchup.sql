--
-- catchup: a reconnecting client gets a user's rows after an id from the table (the durable
-- log), as the same JSON and under the same rules as the live stream, in id order, with a
-- limit.  unread_counts: many users' unread counts in one call.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
SELECT coalesce(max(id), 0) AS before_id FROM api_notification \gset
SELECT last_seq AS base FROM livenotify.position() \gset

INSERT INTO api_notification (user_id, type, title, message, extra) VALUES
    (81, 'like', 'cu1', '', '{"k": 1}'),
    (82, 'like', 'cu2', '', NULL),
    (81, 'event', 'cu3', '', NULL),
    (81, 'comment', 'cu4', '', NULL),
    (81, 'message', 'cu5', '', NULL),
    (81, 'follow', 'cu6', '', NULL);

-- User 81's rows after before_id, skipped types left out, in id order.
SELECT id - :before_id AS n, payload::json->>'title' AS title
  FROM livenotify.catchup('api_notification', '81', :before_id);

-- The same JSON as the live stream carried.
SELECT count(*) AS rows, bool_and(c.payload::jsonb = r.payload::jsonb) AS same_json
  FROM livenotify.catchup('api_notification', '81', :before_id) c
  JOIN livenotify.read(:base, 100, 10) r ON (r.payload::json->>'id')::bigint = c.id
 WHERE r.kind = 'notification';

-- The limit, then the next page after the last id seen.
SELECT id - :before_id AS n, payload::json->>'title' AS title
  FROM livenotify.catchup('api_notification', '81', :before_id, 2);
SELECT id - :before_id AS n, payload::json->>'title' AS title
  FROM livenotify.catchup('api_notification', '81', :before_id + 4, 2);

-- After the newest row, or for a user without rows: zero rows.
SELECT count(*) AS rows FROM livenotify.catchup('api_notification', '81', :before_id + 6);
SELECT count(*) AS rows FROM livenotify.catchup('api_notification', '99999', :before_id);

-- The current rules apply: skip 'comment' and it disappears from the catch-up too.
INSERT INTO livenotify.rules VALUES ('api_notification', 'comment', 'skip');
SELECT payload::json->>'title' AS title
  FROM livenotify.catchup('api_notification', '81', :before_id);
DELETE FROM livenotify.rules WHERE source = 'api_notification' AND type = 'comment';

-- A row over livenotify.max_payload is the same stub as in the live stream.
SET livenotify.max_payload = '1kB';
UPDATE api_notification SET message = repeat('z', 5000) WHERE title = 'cu6';
SELECT id - :before_id AS n, payload::jsonb - 'id' AS payload_without_id,
       (payload::json->>'id')::bigint = id AS id_matches
  FROM livenotify.catchup('api_notification', '81', :before_id + 5);
RESET livenotify.max_payload;

-- Errors.
SELECT count(*) FROM livenotify.catchup('no_such_source', '81', 0);
SELECT count(*) FROM livenotify.catchup(NULL, '81', 0);
SELECT count(*) FROM livenotify.catchup('api_notification', NULL, 0);
SELECT count(*) FROM livenotify.catchup('api_notification', '81', NULL);
SELECT count(*) FROM livenotify.catchup('api_notification', '81', 0, 0);
-- A user key that is not an integer, for an integer user column.
SELECT count(*) FROM livenotify.catchup('api_notification', 'alice', 0);

-- unread_counts: one row per key given, 0 for users without unread rows.  Every unread
-- row counts, whatever its type (rules decide what is pushed, not what is unread): 81 has
-- cu1, cu3, cu5 and cu6 unread once cu4 is read; 82 has cu2.
UPDATE api_notification SET is_read = true WHERE title = 'cu4';
SELECT user_key, unread
  FROM livenotify.unread_counts('api_notification', '{81,82,99999}') ORDER BY user_key;
SELECT count(*) AS rows FROM livenotify.unread_counts('api_notification', '{}');
-- Unknown source, NULLs.
SELECT count(*) FROM livenotify.unread_counts('no_such_source', '{81}');
SELECT count(*) FROM livenotify.unread_counts(NULL, '{81}');
SELECT count(*) FROM livenotify.unread_counts('api_notification', NULL);
-- A source registered without a read column has no unread counts.
CREATE TABLE noread_notification (id bigserial PRIMARY KEY, user_id integer, type text);
SELECT livenotify.register('noread_notification');
SELECT count(*) FROM livenotify.unread_counts('noread_notification', '{81}');
SELECT livenotify.unregister('noread_notification');
DROP TABLE noread_notification;

-- unread_counts_query: the same counts from a statement prepared once (what livenotifyd
-- runs per batch), keys as a jsonb array, rows in the order of the keys given; the text is
-- schema-qualified, so it means the same table under any search_path.
SELECT livenotify.unread_counts_query('api_notification') ~ '"public"."api_notification"|public\.api_notification' AS qualified;
SELECT format('PREPARE counts(jsonb) AS %s', livenotify.unread_counts_query('api_notification')) AS prep \gset
:prep;
SET search_path = pg_catalog;
EXECUTE counts('["99999", "82", "81"]');
RESET search_path;
DEALLOCATE counts;
SELECT livenotify.unread_counts_query('no_such_source');
