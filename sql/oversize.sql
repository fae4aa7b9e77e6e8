--
-- oversize: an inserted row whose JSON is larger than livenotify.max_payload becomes a stub
-- {"id": N, "truncated": true}.  The INSERT never fails because of livenotify.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
SET livenotify.max_payload = '1kB';
SHOW livenotify.max_payload;
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT oversize AS oversize0 FROM livenotify.stats \gset

-- A row far over the limit: the INSERT succeeds and the entry is a stub.
INSERT INTO api_notification (user_id, type, title, message)
VALUES (51, 'like', 'big', repeat('x', 5000));
SELECT count(*) AS stored FROM api_notification WHERE title = 'big';
SELECT source, user_key, kind,
       payload::jsonb = jsonb_build_object('id', n.id, 'truncated', true) AS is_stub
  FROM livenotify.read(:base, 10, 10) r
  JOIN api_notification n ON n.title = 'big';
SELECT oversize - :oversize0 AS oversize FROM livenotify.stats;

-- A row under the limit is sent whole.
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message)
VALUES (51, 'like', 'small', repeat('x', 100));
SELECT payload::json->>'title' AS title, length(payload::json->>'message') AS message_length,
       payload::json->>'truncated' AS truncated
  FROM livenotify.read(:base, 10, 10);

-- The stub keeps the row's place among its transaction's entries.
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message) VALUES
    (51, 'like', 'o1', ''),
    (51, 'like', 'o2', repeat('y', 5000)),
    (51, 'like', 'o3', '');
SELECT seq - :base AS n, coalesce(payload::json->>'title', 'truncated') AS title
  FROM livenotify.read(:base, 10, 10) ORDER BY seq;
RESET livenotify.max_payload;

-- With the default limit (8kB) the same 5000-byte row is sent whole.
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message)
VALUES (51, 'like', 'big again', repeat('x', 5000));
SELECT payload::json->>'title' AS title FROM livenotify.read(:base, 10, 10);
