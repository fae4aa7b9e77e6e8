--
-- unread_count: every committed change to what livenotify.unread_counts() counts (rows of a
-- user whose read column is false) queues one entry of kind 'unread_count' for that user per
-- transaction, so a reader can keep a cached count exact: a changed read column (see
-- mark_read), a row given to another user, a deleted unread row, an unread row of a skipped
-- type, and TRUNCATE (one entry with user_key NULL: every count of the source changed).
-- Changes that move no count queue nothing.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
-- A nullable read column and user column, to cover NULL as well.
CREATE TABLE counted (
    id      bigserial PRIMARY KEY,
    user_id integer,
    type    text NOT NULL DEFAULT 'like',
    title   text NOT NULL,
    is_read boolean DEFAULT false
);
SELECT livenotify.register('counted', read_column => 'is_read');
INSERT INTO counted (user_id, title, is_read) VALUES
    (1, 'u1 unread a', false), (1, 'u1 unread b', false), (1, 'u1 unread c', false),
    (1, 'u1 read a', true), (1, 'u1 null a', NULL),
    (2, 'u2 unread a', false), (2, 'u2 unread b', false), (2, 'u2 read a', true),
    (3, 'u3 unread a', false), (3, 'u3 read a', true), (3, 'u3 read b', true);

--
-- DELETE
--

-- An unread row: its user's unread_count, no payload.
SELECT last_seq AS base FROM livenotify.position() \gset
DELETE FROM counted WHERE title = 'u1 unread a';
SELECT source, user_key, kind, payload IS NULL AS no_payload, unread IS NULL AS no_unread
  FROM livenotify.read(:base, 10, 10);

-- A read row, a NULL one: no count moved, nothing.
SELECT last_seq AS base FROM livenotify.position() \gset
DELETE FROM counted WHERE title IN ('u1 read a', 'u1 null a');
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- Two deletes of one user's unread rows in one transaction: one entry.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
DELETE FROM counted WHERE title = 'u1 unread b';
DELETE FROM counted WHERE title = 'u1 unread c';
COMMIT;
SELECT user_key, kind FROM livenotify.read(:base, 10, 10);

-- One DELETE of two users' unread rows: one entry each.
SELECT last_seq AS base FROM livenotify.position() \gset
DELETE FROM counted WHERE title IN ('u2 unread a', 'u3 unread a');
SELECT user_key, kind FROM livenotify.read(:base, 10, 10) ORDER BY user_key;

-- Rolled back: nothing.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
DELETE FROM counted WHERE title = 'u2 unread b';
ROLLBACK;
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- ROLLBACK TO SAVEPOINT drops the entry queued inside it.
BEGIN;
SAVEPOINT a;
DELETE FROM counted WHERE title = 'u2 unread b';
ROLLBACK TO SAVEPOINT a;
COMMIT;
SELECT last_seq - :base AS new_entries FROM livenotify.position();
SELECT count(*) AS rows_kept FROM counted WHERE title = 'u2 unread b';

-- After that rollback, the same user's next changes in the transaction queue again, once.
BEGIN;
SAVEPOINT a;
DELETE FROM counted WHERE title = 'u2 unread b';
ROLLBACK TO SAVEPOINT a;
INSERT INTO counted (user_id, title, type) VALUES (2, 'u2 skipped', 'event');
DELETE FROM counted WHERE title = 'u2 skipped';
COMMIT;
SELECT user_key, kind FROM livenotify.read(:base, 10, 10);

-- An entry queued before a savepoint survives its rollback, and is not queued twice.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
DELETE FROM counted WHERE title = 'u2 unread b';
SAVEPOINT a;
INSERT INTO counted (user_id, title, type) VALUES (2, 'u2 skipped 2', 'event');
ROLLBACK TO SAVEPOINT a;
COMMIT;
SELECT user_key, kind FROM livenotify.read(:base, 10, 10);

--
-- UPDATE of the user column
--
INSERT INTO counted (user_id, title, is_read) VALUES
    (4, 'move unread', false), (4, 'move read', true), (4, 'move and read', false),
    (4, 'move and unread', true), (4, 'to nobody', false), (NULL, 'from nobody', false);

-- An unread row moved to another user: both counts moved, old user then new.
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE counted SET user_id = 5 WHERE title = 'move unread';
SELECT seq - :base AS n, user_key, kind FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- A read row moved: no count moved, nothing.
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE counted SET user_id = 5 WHERE title = 'move read';
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- Moved and marked read in one UPDATE: only the old user lost an unread row.
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE counted SET user_id = 5, is_read = true WHERE title = 'move and read';
SELECT user_key, kind FROM livenotify.read(:base, 10, 10);

-- Moved and marked unread: only the new user gained one.
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE counted SET user_id = 6, is_read = false WHERE title = 'move and unread';
SELECT user_key, kind FROM livenotify.read(:base, 10, 10);

-- To or from a NULL user (counted for nobody): only the user with a key.
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE counted SET user_id = NULL WHERE title = 'to nobody';
UPDATE counted SET user_id = 7 WHERE title = 'from nobody';
SELECT seq - :base AS n, user_key, kind FROM livenotify.read(:base, 10, 10) ORDER BY seq;

--
-- UPDATE of the read column (more in mark_read)
--

-- false -> NULL moves the count; true -> NULL and NULL -> true do not.
INSERT INTO counted (user_id, title, is_read) VALUES (8, 'r8 a', false), (9, 'r9 a', true);
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE counted SET is_read = NULL WHERE title IN ('r8 a', 'r9 a');
UPDATE counted SET is_read = true WHERE title = 'r9 a';
SELECT user_key, kind FROM livenotify.read(:base, 10, 10);

-- A change made by the app's own BEFORE UPDATE trigger is seen too (no UPDATE OF list).
INSERT INTO counted (user_id, title, is_read) VALUES (8, 'r8 b', false);
CREATE FUNCTION archive_reads() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.title LIKE 'archived%' THEN
        NEW.is_read := true;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER archive_reads BEFORE UPDATE ON counted FOR EACH ROW EXECUTE FUNCTION archive_reads();
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE counted SET title = 'archived r8' WHERE title = 'r8 b';
SELECT is_read FROM counted WHERE title = 'archived r8';
SELECT user_key, kind FROM livenotify.read(:base, 10, 10);
DROP TRIGGER archive_reads ON counted;
DROP FUNCTION archive_reads();

--
-- INSERT of a skipped type
--

-- Unread: no notification (and counted as filtered), one unread_count for the user.
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT filtered AS f0 FROM livenotify.stats \gset
INSERT INTO counted (user_id, title, type) VALUES (10, 's1', 'event');
SELECT user_key, kind, payload FROM livenotify.read(:base, 10, 10);
SELECT filtered - :f0 AS filtered FROM livenotify.stats;

-- Read or NULL: nothing.
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO counted (user_id, title, type, is_read) VALUES
    (10, 's2', 'event', true), (10, 's3', 'message', NULL);
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- Several skipped unread rows of one user and a delivered one: the notification, one count.
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO counted (user_id, title, type) VALUES
    (10, 's4', 'event'), (10, 's5', 'like'), (10, 's6', 'message'), (11, 's7', 'event');
SELECT seq - :base AS n, user_key, kind, payload::json->>'title' AS title, unread
  FROM livenotify.read(:base, 10, 10) ORDER BY seq;

--
-- TRUNCATE
--

-- One entry, source set, user key and payload NULL: every count of the source changed.
SELECT last_seq AS base FROM livenotify.position() \gset
TRUNCATE counted;
SELECT source, user_key IS NULL AS no_user, kind, payload IS NULL AS no_payload,
       unread IS NULL AS no_unread, xid IS NOT NULL AS has_xid
  FROM livenotify.read(:base, 10, 10);

-- Rolled back: nothing.  Twice in one transaction: once.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
TRUNCATE counted;
ROLLBACK;
SELECT last_seq - :base AS new_entries FROM livenotify.position();
BEGIN;
TRUNCATE counted;
INSERT INTO counted (user_id, title) VALUES (12, 't1');
TRUNCATE counted;
COMMIT;
SELECT user_key, kind FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- Two sources in one statement: one entry each.  (A source without a read column has no
-- counts and no TRUNCATE trigger.)
CREATE TABLE counted_too (LIKE counted INCLUDING DEFAULTS);
SELECT livenotify.register('counted_too', id_column => 'id', read_column => 'is_read');
CREATE TABLE uncounted (id bigserial PRIMARY KEY, user_id integer, type text NOT NULL);
SELECT livenotify.register('uncounted');
SELECT last_seq AS base FROM livenotify.position() \gset
TRUNCATE counted, counted_too, uncounted;
SELECT source, user_key IS NULL AS no_user, kind FROM livenotify.read(:base, 10, 10) ORDER BY source;

-- No read column: DELETE and UPDATE of rows queue nothing either.
INSERT INTO uncounted (user_id, type) VALUES (13, 'like');
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE uncounted SET user_id = 14;
DELETE FROM uncounted;
SELECT last_seq - :base AS new_entries FROM livenotify.position();

--
-- Capture switched off for the session: nothing.
--
INSERT INTO counted (user_id, title) VALUES (15, 'off a'), (15, 'off b');
SELECT last_seq AS base FROM livenotify.position() \gset
SET livenotify.enabled = off;
DELETE FROM counted WHERE title = 'off a';
UPDATE counted SET user_id = 16 WHERE title = 'off b';
INSERT INTO counted (user_id, title, type) VALUES (15, 'off c', 'event');
TRUNCATE counted;
RESET livenotify.enabled;
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- unregister removes every trigger it installed; changes are no longer captured.
SELECT livenotify.unregister('counted');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'counted'::regclass;
INSERT INTO counted (user_id, title) VALUES (17, 'gone');
SELECT last_seq AS base FROM livenotify.position() \gset
DELETE FROM counted;
TRUNCATE counted;
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- register() and unregister() queue the same user-less entry at commit (the source may now
-- count on another column), even with the capture off; rolled back, nothing.
SELECT last_seq AS base FROM livenotify.position() \gset
SET livenotify.enabled = off;
SELECT livenotify.register('counted', read_column => 'is_read');
RESET livenotify.enabled;
BEGIN;
SELECT livenotify.unregister('counted');
ROLLBACK;
SELECT livenotify.unregister('counted');
SELECT source, user_key IS NULL AS no_user, kind, payload IS NULL AS no_payload
  FROM livenotify.read(:base, 10, 10) ORDER BY seq;
SELECT livenotify._counts_changed(NULL);

SELECT livenotify.unregister('counted_too');
SELECT livenotify.unregister('uncounted');
DROP TABLE counted, counted_too, uncounted;
