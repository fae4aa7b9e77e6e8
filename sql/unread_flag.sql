--
-- unread_flag: a 'notification' entry of a source with a read column says whether its row
-- counts as unread (read() column unread), as livenotify.unread_counts() counts it: the read
-- column is false.  A NULL read column does not count.  Sources without a read column and
-- every other kind of entry have unread NULL.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never

-- The Django table (read column is_read, NOT NULL DEFAULT false).
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message, is_read) VALUES
    (81, 'like', 'uf false', '', false),
    (81, 'like', 'uf true', '', true);
INSERT INTO api_notification (user_id, type, title, message) VALUES (81, 'like', 'uf default', '');
SELECT payload::json->>'title' AS title, unread FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- A row over livenotify.max_payload becomes a stub that keeps the flag.
SET livenotify.max_payload = '1kB';
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message, is_read) VALUES
    (81, 'like', 'uf big unread', repeat('x', 5000), false),
    (81, 'like', 'uf big read', repeat('x', 5000), true);
SELECT payload::json->>'truncated' AS truncated, unread
  FROM livenotify.read(:base, 10, 10) ORDER BY seq;
RESET livenotify.max_payload;

-- Every other kind has unread NULL: a mark-as-read count, a send().
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
UPDATE api_notification SET is_read = true WHERE title = 'uf false';
SELECT livenotify.send('81', 'chat', '{}');
COMMIT;
SELECT kind, unread IS NULL AS unread_is_null FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- A nullable read column: NULL is neither read nor unread.
CREATE TABLE nullable_read (
    id      bigserial PRIMARY KEY,
    user_id integer NOT NULL,
    type    text NOT NULL,
    is_read boolean
);
SELECT livenotify.register('nullable_read', read_column => 'is_read');
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO nullable_read (user_id, type, is_read) VALUES
    (82, 'like', false), (82, 'like', true), (82, 'like', NULL);
SELECT payload::json->'is_read' AS is_read, unread FROM livenotify.read(:base, 10, 10) ORDER BY seq;
SELECT * FROM livenotify.unread_counts('nullable_read', '{82}');

-- The read column travels by number: renamed, it still decides.
SELECT last_seq AS base FROM livenotify.position() \gset
ALTER TABLE nullable_read RENAME COLUMN is_read TO seen;
INSERT INTO nullable_read (user_id, type, seen) VALUES (82, 'like', false);
SELECT payload::json->'seen' AS seen, unread FROM livenotify.read(:base, 10, 10);

-- The read column cannot be dropped while registered, not even with CASCADE (the triggers do
-- not depend on it: the registration does, and says so); the rows go on being captured.
ALTER TABLE nullable_read DROP COLUMN seen CASCADE;
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO nullable_read (user_id, type) VALUES (82, 'like');
SELECT count(*) AS stored FROM nullable_read;
SELECT kind, user_key, unread FROM livenotify.read(:base, 10, 0);
SELECT livenotify.unregister('nullable_read');
DROP TABLE nullable_read;

-- A source without a read column: unread NULL.
CREATE TABLE no_read (
    id      bigserial PRIMARY KEY,
    user_id integer NOT NULL,
    type    text NOT NULL
);
SELECT livenotify.register('no_read');
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO no_read (user_id, type) VALUES (83, 'like');
SELECT kind, unread IS NULL AS unread_is_null FROM livenotify.read(:base, 10, 10);
SELECT livenotify.unregister('no_read');
DROP TABLE no_read;

DELETE FROM api_notification WHERE title LIKE 'uf %';
