--
-- xid: every entry carries the FullTransactionId (xid8) of the top-level transaction that
-- committed it, the same value pg_current_xact_id() returned inside that transaction, so that
-- a reader can tell whether a count it fetched under some pg_current_snapshot() already saw
-- the entry's rows.  A transaction that has no xid (send() alone) gives NULL.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
-- Each transaction below records its own pg_current_xact_id() here, compared after COMMIT.
CREATE TEMP TABLE tx (label text PRIMARY KEY, xid xid8 NOT NULL);

-- An INSERT: the entry's xid is the inserting transaction's.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message) VALUES (71, 'like', 'xid1', '');
INSERT INTO tx VALUES ('insert', pg_current_xact_id());
COMMIT;
SELECT r.kind, r.xid = tx.xid AS xid_is_the_inserter
  FROM livenotify.read(:base, 10, 10) r, tx WHERE tx.label = 'insert';

-- Every entry of one transaction (rows, a mark-as-read count, a send(), rows queued inside a
-- released savepoint) carries the one top-level xid, not a subtransaction's.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
INSERT INTO api_notification (user_id, type, title, message) VALUES
    (71, 'like', 'xid2', ''),
    (72, 'like', 'xid3', '');
SELECT livenotify.send('71', 'chat', '{"text": "hi"}');
SAVEPOINT s;
INSERT INTO api_notification (user_id, type, title, message) VALUES (73, 'like', 'xid4', '');
RELEASE SAVEPOINT s;
UPDATE api_notification SET is_read = true WHERE title = 'xid1';
INSERT INTO tx VALUES ('many', pg_current_xact_id());
COMMIT;
SELECT r.seq - :base AS n, r.user_key, r.kind, r.xid = tx.xid AS xid_is_the_transaction
  FROM livenotify.read(:base, 10, 10) r, tx WHERE tx.label = 'many' ORDER BY r.seq;

-- Two transactions: two xids, in the order the transactions took them.
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message) VALUES (71, 'like', 'xid5', '');
INSERT INTO api_notification (user_id, type, title, message) VALUES (71, 'like', 'xid6', '');
SELECT count(DISTINCT xid) AS xids, min(xid) < max(xid) AS later_commit_later_xid,
       (array_agg(xid ORDER BY seq))[1] < (array_agg(xid ORDER BY seq))[2] AS in_seq_order
  FROM livenotify.read(:base, 10, 10);

-- send() alone assigns no xid: the entry's xid is NULL.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
SELECT livenotify.send('71', 'chat', '{"text": "no xid"}');
SELECT pg_current_xact_id_if_assigned() IS NULL AS no_xid_before_commit;
COMMIT;
SELECT kind, xid IS NULL AS xid_is_null FROM livenotify.read(:base, 10, 10);

-- The xid is the commit record's, read at COMMIT: NOTIFY assigns one only after the
-- PRE_COMMIT callbacks (PreCommit_Notify in xact.c), and the entry still carries it.
INSERT INTO tx VALUES ('before notify', pg_current_xact_id());
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
SELECT livenotify.send('71', 'chat', '{"text": "with notify"}');
NOTIFY livenotify_xid_test;
SELECT pg_current_xact_id_if_assigned() IS NULL AS no_xid_before_commit;
COMMIT;
INSERT INTO tx VALUES ('after notify', pg_current_xact_id());
SELECT r.xid IS NOT NULL AS has_xid, r.xid > b.xid AND r.xid < a.xid AS assigned_at_commit
  FROM livenotify.read(:base, 10, 10) r, tx b, tx a
 WHERE b.label = 'before notify' AND a.label = 'after notify';

-- What the xid is for: a snapshot taken before the transaction committed does not see it
-- (a count fetched under it does not include the row), one taken after does.
SELECT pg_current_snapshot() AS snap_before \gset
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message) VALUES (71, 'like', 'xid7', '');
SELECT pg_current_snapshot() AS snap_after \gset
SELECT pg_visible_in_snapshot(xid, :'snap_before') AS in_snapshot_before,
       pg_visible_in_snapshot(xid, :'snap_after') AS in_snapshot_after
  FROM livenotify.read(:base, 10, 10);

DELETE FROM api_notification WHERE title LIKE 'xid%';
