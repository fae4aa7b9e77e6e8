--
-- stats: the livenotify.stats view, one row: enqueued, filtered, lost, oversize, ring size
-- and use, readers, waiting readers, epoch, last and oldest sequence numbers.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
\d livenotify.stats
SELECT count(*) AS rows FROM livenotify.stats;

-- The ring is livenotify.ring_size (1MB in the tests) and never over-full.
SELECT ring_bytes, ring_used_bytes BETWEEN 0 AND ring_bytes AS used_ok,
       ring_entries >= 0 AS entries_ok
  FROM livenotify.stats;

-- Sessions of earlier tests may still be exiting: wait (at most 5 s) until no reader is left.
DO $$
BEGIN
    FOR i IN 1 .. 500 LOOP
        EXIT WHEN (SELECT readers FROM livenotify.stats) = 0;
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;
-- No session is reading: no readers, none waiting.
SELECT readers, waiting_readers FROM livenotify.stats;
-- A session becomes a reader at its first read() and stays one; once read() has returned
-- (here after its 10 ms timeout) it is no longer waiting.
SELECT count(*) AS entries
  FROM livenotify.read((SELECT last_seq FROM livenotify.position()), 10, 10);
SELECT readers, waiting_readers FROM livenotify.stats;
-- Nor after a read() cancelled by statement_timeout.
SET statement_timeout = '100ms';
SELECT count(*) FROM livenotify.read((SELECT last_seq FROM livenotify.position()), 10, 60000);
RESET statement_timeout;
SELECT readers, waiting_readers FROM livenotify.stats;

-- Same epoch and last seq as position(); the oldest entry is not after the last.
SELECT s.epoch = p.epoch AS same_epoch, s.last_seq = p.last_seq AS same_last_seq,
       s.oldest_seq <= s.last_seq + 1 AS oldest_ok
  FROM livenotify.stats s, livenotify.position() p;

SELECT enqueued AS e0, filtered AS f0, oversize AS o0, last_seq AS s0,
       ring_entries AS r0
  FROM livenotify.stats \gset

-- A delivered row: enqueued + 1.
INSERT INTO api_notification (user_id, type, title, message) VALUES (101, 'like', 'st1', '');
SELECT enqueued - :e0 AS enqueued, filtered - :f0 AS filtered, oversize - :o0 AS oversize,
       last_seq - :s0 AS last_seq
  FROM livenotify.stats;

-- A skipped row (already read): filtered + 1.
INSERT INTO api_notification (user_id, type, title, message, is_read)
VALUES (101, 'event', 'st2', '', true);
SELECT enqueued - :e0 AS enqueued, filtered - :f0 AS filtered, oversize - :o0 AS oversize,
       last_seq - :s0 AS last_seq
  FROM livenotify.stats;

-- A send(): enqueued + 1.
SELECT livenotify.send('101', 'new_message', '{}');
SELECT enqueued - :e0 AS enqueued, filtered - :f0 AS filtered, oversize - :o0 AS oversize,
       last_seq - :s0 AS last_seq
  FROM livenotify.stats;

-- A rolled-back row: nothing enqueued.
BEGIN;
INSERT INTO api_notification (user_id, type, title, message) VALUES (101, 'like', 'st3', '');
ROLLBACK;
SELECT enqueued - :e0 AS enqueued, filtered - :f0 AS filtered, oversize - :o0 AS oversize,
       last_seq - :s0 AS last_seq
  FROM livenotify.stats;

-- An oversize row: enqueued + 1 (as a stub) and oversize + 1.
SET livenotify.max_payload = '1kB';
INSERT INTO api_notification (user_id, type, title, message)
VALUES (101, 'like', 'st4', repeat('x', 5000));
RESET livenotify.max_payload;
SELECT enqueued - :e0 AS enqueued, filtered - :f0 AS filtered, oversize - :o0 AS oversize,
       last_seq - :s0 AS last_seq
  FROM livenotify.stats;

-- A skipped row that is unread: filtered + 1, and enqueued + 1 (its user's unread_count).
INSERT INTO api_notification (user_id, type, title, message) VALUES (101, 'event', 'st5', '');
SELECT enqueued - :e0 AS enqueued, filtered - :f0 AS filtered, oversize - :o0 AS oversize,
       last_seq - :s0 AS last_seq
  FROM livenotify.stats;

-- Entries in the ring grew (the ring is not full of overflow leftovers: it was overwritten
-- by the 100k-row test long ago, so it may also have dropped as many as it gained).
SELECT ring_entries > 0 AS has_entries FROM livenotify.stats;
