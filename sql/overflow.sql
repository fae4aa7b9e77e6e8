--
-- overflow: when the ring is full, writers overwrite the oldest entries and count them as
-- lost; a commit never waits for, or fails because of, a reader that is behind.  The reader
-- learns about the gap from a first row of kind 'lost'.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
SELECT ring_bytes FROM livenotify.stats;
-- Sessions of earlier tests may still be exiting: wait (at most 5 s) until no reader is left.
DO $$
BEGIN
    FOR i IN 1 .. 500 LOOP
        EXIT WHEN (SELECT readers FROM livenotify.stats) = 0;
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT lost AS lost0 FROM livenotify.stats \gset

-- This session becomes a reader (its first read() takes a reader slot) that has read up to
-- :base, and then stalls.  Meanwhile 20 transactions commit about 3MB into the 1MB ring.
SELECT count(*) AS entries FROM livenotify.read(:base, 10, 0);
CREATE PROCEDURE fill_ring(transactions int, rows_per_transaction int)
LANGUAGE plpgsql AS $$
BEGIN
    FOR t IN 1 .. transactions LOOP
        INSERT INTO api_notification (user_id, type, title, message)
        SELECT 91, 'overflow', 'of ' || t || '.' || i, repeat('x', 100)
          FROM generate_series(1, rows_per_transaction) i;
        COMMIT;
    END LOOP;
END
$$;
CALL fill_ring(20, 500);

-- Every transaction committed.
SELECT count(*) AS stored FROM api_notification WHERE type = 'overflow';
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- The stalled reader's next read starts with one 'lost' row: seq is the last lost entry,
-- lost how many there were; the other columns are NULL.  The 'lost' row is a marker, not
-- an entry: max_entries (1 here) entries follow it.
SELECT kind, lost > 0 AS some_lost, source IS NULL AS no_source, user_key IS NULL AS no_user,
       payload IS NULL AS no_payload, xid IS NULL AS no_xid, unread IS NULL AS no_unread
  FROM livenotify.read(:base, 1, 10);
SELECT seq AS lost_seq, lost AS n_lost FROM livenotify.read(:base, 1, 10) WHERE kind = 'lost' \gset
SELECT :lost_seq - :base = :n_lost AS lost_up_to_seq;

-- The rest of the entries are still there, from right after the lost ones, in order: lost
-- plus still readable is everything that was written.
SELECT kind, payload::json->>'title' = 'of ' || (1 + (:n_lost / 500)) || '.' || (1 + :n_lost % 500)
       AS first_kept_is_next
  FROM livenotify.read(:lost_seq, 1, 10);
SELECT :n_lost + count(*) AS lost_plus_readable
  FROM livenotify.read(:lost_seq, 100000, 10);

-- A reader that was not behind sees no 'lost' row.
SELECT count(*) FILTER (WHERE kind = 'lost') AS lost_rows
  FROM livenotify.read(:lost_seq, 100000, 10);

-- The stats counted exactly the entries the registered reader missed; the ring is full but
-- never over-full.
SELECT lost - :lost0 = :n_lost AS stats_lost_counted,
       ring_used_bytes <= ring_bytes AS within_ring,
       oldest_seq = :lost_seq + 1 AS oldest_is_first_kept
  FROM livenotify.stats;

-- Writers go on committing.
INSERT INTO api_notification (user_id, type, title, message) VALUES (91, 'like', 'after', '');
SELECT payload::json->>'title' AS title
  FROM livenotify.read((SELECT last_seq - 1 FROM livenotify.position()), 10, 10);

DROP PROCEDURE fill_ring(int, int);
DELETE FROM api_notification WHERE type = 'overflow';
