--
-- capture: every inserted row whose type is not skipped becomes one queue entry: source,
-- user key (text), kind 'notification', and the row as JSON with JSON types preserved.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
SELECT last_seq AS base FROM livenotify.position() \gset

-- One row.
INSERT INTO api_notification (user_id, type, title, message, is_read, extra)
VALUES (7, 'like', 'Liked', 'Ann liked your post', false,
        '{"post": 12, "tags": ["a", "b"], "by": {"name": "Ann"}, "ok": true, "none": null}');

SELECT source, user_key, kind, lost, epoch = (SELECT epoch FROM livenotify.position()) AS epoch_ok
  FROM livenotify.read(:base, 10, 10);

-- The payload is the row as row_to_json() makes it: same keys, same values, same types.
SELECT r.payload::jsonb = row_to_json(n)::jsonb AS is_row_to_json
  FROM livenotify.read(:base, 10, 10) r
  JOIN api_notification n ON n.id = (r.payload::json->>'id')::bigint;
SELECT json_typeof(p->'id') AS id, json_typeof(p->'user_id') AS user_id,
       json_typeof(p->'type') AS type, json_typeof(p->'is_read') AS is_read,
       json_typeof(p->'created_at') AS created_at, json_typeof(p->'extra') AS extra
  FROM (SELECT payload::json AS p FROM livenotify.read(:base, 10, 10)) s;
-- jsonb stays an object (not a string holding JSON), with its own types inside.
SELECT (payload::json->'extra')::jsonb AS extra
  FROM livenotify.read(:base, 10, 10);

-- Skipped types produce no notification.  A skipped row that is read produces nothing; one
-- that is unread still counts, so its transaction queues the user's unread_count instead
-- (see unread_count).
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message, is_read) VALUES (7, 'event', 'e', '', true);
INSERT INTO api_notification (user_id, type, title, message, is_read) VALUES (7, 'message', 'm', '', true);
SELECT last_seq - :base AS new_entries FROM livenotify.position();
INSERT INTO api_notification (user_id, type, title, message) VALUES (7, 'event', 'e2', '');
SELECT user_key, kind, payload FROM livenotify.read(:base, 10, 10);

-- Capture can be switched off for one session (e.g. a bulk backfill).
SELECT last_seq AS base FROM livenotify.position() \gset
SET livenotify.enabled = off;
INSERT INTO api_notification (user_id, type, title, message) VALUES (7, 'like', 'off', '');
RESET livenotify.enabled;
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- Multi-row INSERT: one entry per qualifying row, in row order (the skipped unread row: its
-- user's unread_count).
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message) VALUES
    (8, 'like', 'multi1', ''),
    (9, 'event', 'multi2', ''),
    (8, 'comment', 'multi3', ''),
    (10, 'follow', 'multi4', '');
SELECT seq - :base AS n, user_key, kind, payload::json->>'title' AS title
  FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- INSERT ... SELECT of 100k rows (a tenth of them skipped) in one statement.  Its 90000
-- entries would take far more than livenotify.max_pending (capped at 256kB by the test's
-- 1MB ring), so they collapse into one 'overflow' entry for the source (sql/bulk_load.sql):
-- readers resync its users from the table.
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT enqueued AS enqueued0 FROM livenotify.stats \gset
INSERT INTO api_notification (user_id, type, title, message)
SELECT i % 1000, CASE WHEN i % 10 = 0 THEN 'event' ELSE 'bulk' END, 'bulk ' || i, ''
  FROM generate_series(1, 100000) i;
SELECT enqueued - :enqueued0 AS enqueued FROM livenotify.stats;
SELECT last_seq - :base AS new_entries FROM livenotify.position();
SELECT kind, source, user_key IS NULL AS no_user, payload IS NULL AS no_payload
  FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- COPY FROM STDIN.
SELECT last_seq AS base FROM livenotify.position() \gset
COPY api_notification (user_id, type, title, message, extra) FROM STDIN;
5	like	copy1	first	{"n": 1}
5	event	copy2	skipped	\N
6	comment	copy3	third	\N
\.
SELECT seq - :base AS n, user_key, kind, payload::json->>'title' AS title,
       payload::json->'extra' AS extra
  FROM livenotify.read(:base, 10, 10) ORDER BY seq;

DELETE FROM api_notification WHERE type = 'bulk' OR title LIKE 'bulk %';
