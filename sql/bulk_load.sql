--
-- bulk_load: a transaction's pending entries are bounded in memory by
-- livenotify.max_pending (capped at a quarter of the ring).  Past the bound the
-- transaction's entries collapse into one 'overflow' entry per source, published at commit:
-- the reader resyncs that source's users from the table.  Memory and the commit's copy into
-- the ring stay small whatever the number of rows; nothing is lost without a resync.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
SHOW livenotify.max_pending;

-- The entries after :base, without the row payloads.
CREATE FUNCTION bulk_entries(after bigint)
RETURNS TABLE (kind text, source text, user_key text, has_payload boolean, has_xid boolean)
LANGUAGE sql AS $$
    SELECT kind, source, user_key, payload IS NOT NULL, xid IS NOT NULL
      FROM livenotify.read(after, 100000, 10) ORDER BY seq
$$;
CREATE FUNCTION bulk_count(after bigint) RETURNS TABLE (kind text, n bigint)
LANGUAGE sql AS $$
    SELECT kind, count(*) FROM livenotify.read(after, 100000, 10) GROUP BY kind ORDER BY kind
$$;

-- An entry of the table is about 300 bytes: 16kB holds about 50.
SET livenotify.max_pending = '16kB';
SHOW livenotify.max_pending;

-- Under the bound: every row is an entry.
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message)
SELECT 700, 'bulk', 'small ' || i, '' FROM generate_series(1, 10) i;
SELECT * FROM bulk_count(:base);

-- Past it: one 'overflow' entry for the source, no user, no payload, with the xid.
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT enqueued AS enqueued0 FROM livenotify.stats \gset
INSERT INTO api_notification (user_id, type, title, message)
SELECT 700 + i % 10, 'bulk', 'big ' || i, '' FROM generate_series(1, 1000) i;
SELECT * FROM bulk_entries(:base);
SELECT enqueued - :enqueued0 AS enqueued FROM livenotify.stats;
-- The rows themselves are stored as usual.
SELECT count(*) FROM api_notification WHERE title LIKE 'big %';

-- The next transaction starts with an empty pending list again.
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message) VALUES (700, 'like', 'after', '');
SELECT kind, user_key, payload::json->>'title' AS title FROM livenotify.read(:base, 10, 10);

-- A rolled-back savepoint gives its bytes back: 2 + 40 + 40 rows would overflow, the 42
-- that commit do not.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message)
SELECT 701, 'bulk', 'sp ' || i, '' FROM generate_series(1, 2) i;
SAVEPOINT s;
INSERT INTO api_notification (user_id, type, title, message)
SELECT 701, 'bulk', 'rolled back ' || i, '' FROM generate_series(1, 40) i;
ROLLBACK TO s;
INSERT INTO api_notification (user_id, type, title, message)
SELECT 701, 'bulk', 'kept ' || i, '' FROM generate_series(1, 40) i;
COMMIT;
SELECT * FROM bulk_count(:base);
SELECT count(*) FILTER (WHERE payload::json->>'title' LIKE 'rolled back%') AS rolled_back
  FROM livenotify.read(:base, 1000, 10);

-- The overflow happened inside a savepoint that then rolled back: the entries of the
-- transaction before it were already collapsed, so the marker stays (a spurious resync is
-- the price; a lost notification would not be acceptable).
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message) VALUES (702, 'like', 'before', '');
SAVEPOINT s;
INSERT INTO api_notification (user_id, type, title, message)
SELECT 702, 'bulk', 'sp big ' || i, '' FROM generate_series(1, 1000) i;
ROLLBACK TO s;
INSERT INTO api_notification (user_id, type, title, message) VALUES (702, 'like', 'after', '');
COMMIT;
SELECT * FROM bulk_entries(:base);

-- A whole rollback publishes nothing, overflow or not.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message)
SELECT 703, 'bulk', 'aborted ' || i, '' FROM generate_series(1, 1000) i;
ROLLBACK;
SELECT count(*) FROM livenotify.read(:base, 10, 10);

-- An overflow released by a savepoint (RELEASE) stays, of course.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
SAVEPOINT s;
INSERT INTO api_notification (user_id, type, title, message)
SELECT 703, 'bulk', 'released ' || i, '' FROM generate_series(1, 1000) i;
RELEASE s;
COMMIT;
SELECT * FROM bulk_entries(:base);

-- PL/pgSQL with an EXCEPTION block per row (a subtransaction each) overflows the same way.
SELECT last_seq AS base FROM livenotify.position() \gset
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        BEGIN
            INSERT INTO api_notification (user_id, type, title, message)
            VALUES (704, 'bulk', 'loop ' || i, '');
        EXCEPTION WHEN others THEN NULL;
        END;
    END LOOP;
END
$$;
SELECT * FROM bulk_entries(:base);

-- A mark-as-read UPDATE of many users: one unread_count per user would be too many; the
-- dedup hash of pending unread counts is bounded by the same limit.
SELECT last_seq AS base FROM livenotify.position() \gset
SET livenotify.max_pending = '1MB';
INSERT INTO api_notification (user_id, type, title, message)
SELECT 10000 + i, 'event', 'unread ' || i, '' FROM generate_series(1, 1000) i;
SELECT * FROM bulk_count(:base);
SET livenotify.max_pending = '16kB';
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE api_notification SET is_read = true WHERE user_id > 10000;
SELECT * FROM bulk_entries(:base);
DELETE FROM api_notification WHERE user_id > 10000;

-- An ephemeral message in an overflowed transaction: it is dropped with the rest, and since
-- its user cannot be told apart, the marker is for every source (source NULL).
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
SELECT livenotify.send('705', 'new_message', '{"text": "hi"}');
INSERT INTO api_notification (user_id, type, title, message)
SELECT 705, 'bulk', 'with send ' || i, '' FROM generate_series(1, 1000) i;
COMMIT;
SELECT * FROM bulk_entries(:base);

-- Several sources overflow together: one marker each, in the order they were touched.
CREATE TABLE bulk_other (id bigserial PRIMARY KEY, user_id integer NOT NULL, type text NOT NULL);
SELECT livenotify.register('bulk_other', skip_types => '{}');
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO bulk_other (user_id, type) SELECT 1, 'x' FROM generate_series(1, 3);
INSERT INTO api_notification (user_id, type, title, message)
SELECT 706, 'bulk', 'two sources ' || i, '' FROM generate_series(1, 1000) i;
INSERT INTO bulk_other (user_id, type) SELECT 1, 'x' FROM generate_series(1, 3);
COMMIT;
SELECT * FROM bulk_entries(:base);

-- More than 8 sources: a single marker for every source.
DO $$
BEGIN
    FOR i IN 1 .. 9 LOOP
        EXECUTE format('CREATE TABLE bulk_src%s (id bigserial PRIMARY KEY, user_id int NOT NULL, '
                       'type text NOT NULL)', i);
        PERFORM livenotify.register(format('bulk_src%s', i)::regclass, skip_types => '{}');
    END LOOP;
END
$$;
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message)
SELECT 707, 'bulk', 'nine sources ' || i, '' FROM generate_series(1, 1000) i;
DO $$
BEGIN
    FOR i IN 1 .. 9 LOOP
        EXECUTE format('INSERT INTO bulk_src%s (user_id, type) VALUES (1, ''x'')', i);
    END LOOP;
END
$$;
COMMIT;
SELECT * FROM bulk_entries(:base);

-- PREPARE TRANSACTION of an overflowed transaction is refused like any with entries.
BEGIN;
INSERT INTO api_notification (user_id, type, title, message)
SELECT 708, 'bulk', 'prepared ' || i, '' FROM generate_series(1, 1000) i;
PREPARE TRANSACTION 'bulk';
SELECT count(*) FROM pg_prepared_xacts;

-- The limit: superuser-only, at least 16kB, and capped at a quarter of the ring (1MB
-- here): 8MB (the default) behaves as 256kB.
SET livenotify.max_pending = '8kB';
CREATE ROLE bulk_user;
SET ROLE bulk_user;
SET livenotify.max_pending = '1MB';
RESET ROLE;
DROP ROLE bulk_user;
RESET livenotify.max_pending;
SHOW livenotify.max_pending;
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message)
SELECT 709, 'bulk', 'capped ' || i, '' FROM generate_series(1, 700) i;
SELECT * FROM bulk_count(:base);
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message)
SELECT 709, 'bulk', 'capped ' || i, '' FROM generate_series(1, 1500) i;
SELECT * FROM bulk_count(:base);

DO $$
BEGIN
    FOR i IN 1 .. 9 LOOP
        PERFORM livenotify.unregister(format('bulk_src%s', i));
        EXECUTE format('DROP TABLE bulk_src%s', i);
    END LOOP;
END
$$;
SELECT livenotify.unregister('bulk_other');
DROP TABLE bulk_other;
DROP FUNCTION bulk_entries(bigint), bulk_count(bigint);
DELETE FROM api_notification WHERE user_id BETWEEN 700 AND 709;
