--
-- mark_read: when the registered is-read column changes, the user gets an entry of kind
-- 'unread_count' with no payload, one per user per transaction, so that the sidecar pushes
-- a fresh count to all of the user's tabs.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
INSERT INTO api_notification (user_id, type, title, message) VALUES
    (61, 'like', 'mr1', ''),
    (61, 'like', 'mr2', ''),
    (61, 'like', 'mr3', ''),
    (62, 'like', 'mr4', ''),
    (62, 'like', 'mr5', '');

-- Marking one notification as read.
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE api_notification SET is_read = true WHERE title = 'mr1';
SELECT source, user_key, kind, payload FROM livenotify.read(:base, 10, 10);

-- Marking several of one user's notifications: still one entry.
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE api_notification SET is_read = true WHERE title IN ('mr2', 'mr3');
SELECT user_key, kind FROM livenotify.read(:base, 10, 10);

-- Marking as unread changes the count too.
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE api_notification SET is_read = false WHERE title = 'mr3';
SELECT user_key, kind FROM livenotify.read(:base, 10, 10);

-- Two users in one statement: one entry each.
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE api_notification SET is_read = true WHERE user_id IN (61, 62);
SELECT user_key, kind FROM livenotify.read(:base, 10, 10) ORDER BY user_key;

-- Several statements in one transaction: one entry per user for the transaction.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
UPDATE api_notification SET is_read = false WHERE title = 'mr1';
UPDATE api_notification SET is_read = false WHERE title = 'mr2';
UPDATE api_notification SET is_read = false WHERE title = 'mr4';
UPDATE api_notification SET is_read = true WHERE title = 'mr1';
COMMIT;
SELECT user_key, kind FROM livenotify.read(:base, 10, 10) ORDER BY user_key;

-- An UPDATE that leaves the column as it was: nothing.
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE api_notification SET is_read = true WHERE title = 'mr1';
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- An UPDATE of another column: nothing.
UPDATE api_notification SET title = 'mr5 edited' WHERE title = 'mr5';
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- Rolled back: nothing.
BEGIN;
UPDATE api_notification SET is_read = true WHERE user_id = 62;
ROLLBACK;
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- Rolled back to a savepoint: nothing from it.
BEGIN;
SAVEPOINT a;
UPDATE api_notification SET is_read = true WHERE user_id = 62;
ROLLBACK TO SAVEPOINT a;
COMMIT;
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- Inserting a row and marking it read in the same transaction: the notification, then the
-- count.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message) VALUES (63, 'like', 'mr6', '');
UPDATE api_notification SET is_read = true WHERE title = 'mr6';
COMMIT;
SELECT user_key, kind, payload::json->>'title' AS title
  FROM livenotify.read(:base, 10, 10) ORDER BY seq;
