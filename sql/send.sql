--
-- send: ephemeral messages (the seed app's chat `new_message` popups) go through the same
-- queue with the same transactional rules, and are never stored.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT count(*) AS rows_before FROM api_notification \gset

-- One message: no source, the given user key and kind, the payload as JSON text.
SELECT livenotify.send('42', 'new_message', '{"from": "ann", "text": "hi", "n": 3, "urgent": true}');
SELECT source IS NULL AS no_source, user_key, kind, lost, payload::jsonb AS payload
  FROM livenotify.read(:base, 10, 10);

-- The payload defaults to an empty object.
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT livenotify.send('42', 'ping');
SELECT kind, payload FROM livenotify.read(:base, 10, 10);

-- Kinds may use [a-z0-9_.-], up to 63 characters.
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT livenotify.send('42', 'chat.typing-started_2');
SELECT livenotify.send('42', repeat('k', 63));
SELECT length(kind) AS kind_length FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- Delivered at COMMIT, in order with the rows inserted by the same transaction.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message) VALUES (42, 'like', 's1', '');
SELECT livenotify.send('42', 'new_message', '{"text": "between"}');
INSERT INTO api_notification (user_id, type, title, message) VALUES (42, 'like', 's2', '');
SELECT count(*) AS visible_before_commit FROM livenotify.read(:base, 10, 10);
COMMIT;
SELECT kind, coalesce(payload::json->>'title', payload::json->>'text') AS what
  FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- Dropped on ROLLBACK.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
SELECT livenotify.send('42', 'new_message', '{"text": "rolled back"}');
ROLLBACK;
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- Dropped on ROLLBACK TO SAVEPOINT, kept on RELEASE.
BEGIN;
SAVEPOINT a;
SELECT livenotify.send('42', 'new_message', '{"text": "dropped"}');
ROLLBACK TO SAVEPOINT a;
SAVEPOINT b;
SELECT livenotify.send('42', 'new_message', '{"text": "kept"}');
RELEASE SAVEPOINT b;
COMMIT;
SELECT payload::json->>'text' AS text FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- Never stored: the table has only the two rows inserted above.
SELECT count(*) - :rows_before AS new_rows FROM api_notification;

-- Errors, each with nothing queued.
SELECT last_seq AS base FROM livenotify.position() \gset
-- Reserved kinds.
SELECT livenotify.send('42', 'notification', '{}');
SELECT livenotify.send('42', 'unread_count', '{}');
SELECT livenotify.send('42', 'hello', '{}');
SELECT livenotify.send('42', 'resync', '{}');
SELECT livenotify.send('42', 'lost', '{}');
SELECT livenotify.send('42', 'overflow', '{}');
-- Malformed kinds: empty, upper case, a space, 64 characters.
SELECT livenotify.send('42', '', '{}');
SELECT livenotify.send('42', 'New_Message', '{}');
SELECT livenotify.send('42', 'new message', '{}');
SELECT livenotify.send('42', repeat('k', 64), '{}');
-- NULL arguments.
SELECT livenotify.send(NULL, 'new_message', '{}');
SELECT livenotify.send('42', NULL, '{}');
SELECT livenotify.send('42', 'new_message', NULL);
-- A payload larger than livenotify.max_payload (the caller asked for it: ERROR).
SET livenotify.max_payload = '1kB';
SELECT livenotify.send('42', 'new_message', jsonb_build_object('text', repeat('x', 2000)));
-- The same ERROR inside a transaction aborts it, taking earlier sends with it.
BEGIN;
SELECT livenotify.send('42', 'new_message', '{"text": "before the error"}');
SELECT livenotify.send('42', 'new_message', jsonb_build_object('text', repeat('x', 2000)));
COMMIT;
RESET livenotify.max_payload;
SELECT last_seq - :base AS new_entries FROM livenotify.position();
