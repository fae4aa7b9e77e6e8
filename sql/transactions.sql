--
-- transactions: entries become visible to readers at COMMIT, in insertion order; rolled
-- back (sub)transactions produce nothing.  Concurrent sessions: test/isolation/specs/.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never

-- Nothing is visible before COMMIT, everything after, in insertion order.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'c1', '');
INSERT INTO api_notification (user_id, type, title, message) VALUES (32, 'like', 'c2', '');
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'c3', '');
SELECT count(*) AS visible_before_commit FROM livenotify.read(:base, 10, 10);
COMMIT;
SELECT seq - :base AS n, payload::json->>'title' AS title
  FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- ROLLBACK: nothing.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'rb1', '');
ROLLBACK;
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- An error aborts the transaction: nothing.
BEGIN;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'err1', '');
SELECT 1 / 0;
COMMIT;
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- ROLLBACK TO SAVEPOINT drops exactly what was queued since the savepoint.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'sp1', '');
SAVEPOINT a;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'sp2', '');
ROLLBACK TO SAVEPOINT a;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'sp3', '');
COMMIT;
SELECT payload::json->>'title' AS title FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- RELEASE SAVEPOINT keeps it, in order.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'rel1', '');
SAVEPOINT a;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'rel2', '');
RELEASE SAVEPOINT a;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'rel3', '');
COMMIT;
SELECT payload::json->>'title' AS title FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- The same savepoint rolled back to twice.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
SAVEPOINT a;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'tw1', '');
ROLLBACK TO SAVEPOINT a;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'tw2', '');
ROLLBACK TO SAVEPOINT a;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'tw3', '');
COMMIT;
SELECT payload::json->>'title' AS title FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- Nested savepoints: an inner rollback, an inner release, then an outer rollback that
-- takes the released inner work with it.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'n1', '');
SAVEPOINT a;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'n2', '');
SAVEPOINT b;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'n3', '');
ROLLBACK TO SAVEPOINT b;
SAVEPOINT c;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'n4', '');
RELEASE SAVEPOINT c;
ROLLBACK TO SAVEPOINT a;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'n5', '');
COMMIT;
SELECT payload::json->>'title' AS title FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- Nested savepoints all released: everything, in insertion order.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
SAVEPOINT a;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'nr1', '');
SAVEPOINT b;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'nr2', '');
RELEASE SAVEPOINT b;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'nr3', '');
RELEASE SAVEPOINT a;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'nr4', '');
COMMIT;
SELECT payload::json->>'title' AS title FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- A PL/pgSQL EXCEPTION block that catches an error drops what its block queued.
SELECT last_seq AS base FROM livenotify.position() \gset
DO $$
BEGIN
    INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'ex1', '');
    BEGIN
        INSERT INTO api_notification (user_id, type, title, message)
        VALUES (31, 'like', 'ex2', '');
        RAISE EXCEPTION 'caught below';
    EXCEPTION WHEN raise_exception THEN
        INSERT INTO api_notification (user_id, type, title, message)
        VALUES (31, 'like', 'ex3', '');
    END;
    INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'ex4', '');
END
$$;
SELECT payload::json->>'title' AS title FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- PREPARE TRANSACTION with pending entries is refused with a clear error (as NOTIFY is);
-- the transaction is rolled back and nothing is left prepared.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'p1', '');
PREPARE TRANSACTION 'livenotify_pending';
SELECT count(*) AS prepared FROM pg_prepared_xacts;
SELECT last_seq - :base AS new_entries FROM livenotify.position();
SELECT count(*) AS rows_kept FROM api_notification WHERE title = 'p1';

-- PREPARE TRANSACTION without pending entries (only a skipped type, already read) works.
BEGIN;
INSERT INTO api_notification (user_id, type, title, message, is_read)
VALUES (31, 'event', 'p2', '', true);
PREPARE TRANSACTION 'livenotify_nothing_pending';
COMMIT PREPARED 'livenotify_nothing_pending';
SELECT count(*) AS rows_kept FROM api_notification WHERE title = 'p2';
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- Entries queued and then dropped by ROLLBACK TO SAVEPOINT do not block PREPARE.
BEGIN;
SAVEPOINT a;
INSERT INTO api_notification (user_id, type, title, message) VALUES (31, 'like', 'p3', '');
ROLLBACK TO SAVEPOINT a;
PREPARE TRANSACTION 'livenotify_dropped_pending';
ROLLBACK PREPARED 'livenotify_dropped_pending';
SELECT last_seq - :base AS new_entries FROM livenotify.position();
