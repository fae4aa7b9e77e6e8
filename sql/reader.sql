--
-- reader: livenotify.read(after, max_entries, timeout_ms) returns the entries of the current
-- database after a sequence number, at most max_entries, in seq order; with none it waits
-- until one is committed or the timeout passes.  Reading does not consume.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
SELECT last_seq AS base, epoch AS epoch0 FROM livenotify.position() \gset

-- Nothing after the last seq: zero rows once the timeout (200 ms) has passed, not before,
-- and not much later.
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) AS entries FROM livenotify.read(:base, 10, 200);
SELECT clock_timestamp() - :'t0' >= interval '150 ms' AS waited,
       clock_timestamp() - :'t0' < interval '5 s' AS returned;

-- A zero timeout returns at once.
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) AS entries FROM livenotify.read(:base, 10, 0);
SELECT clock_timestamp() - :'t0' < interval '1 s' AS returned;

INSERT INTO api_notification (user_id, type, title, message) VALUES
    (71, 'like', 'rd1', ''), (71, 'like', 'rd2', ''), (72, 'like', 'rd3', ''),
    (72, 'like', 'rd4', ''), (71, 'like', 'rd5', '');

-- With entries available it returns at once, even with a long timeout.
SELECT clock_timestamp() AS t0 \gset
SELECT seq - :base AS n, user_key, payload::json->>'title' AS title
  FROM livenotify.read(:base, 10, 60000);
SELECT clock_timestamp() - :'t0' < interval '5 s' AS returned;

-- At most max_entries, the oldest first; the next call continues after the last seq seen.
SELECT seq - :base AS n, payload::json->>'title' AS title FROM livenotify.read(:base, 2, 10);
SELECT seq - :base AS n, payload::json->>'title' AS title FROM livenotify.read(:base + 2, 2, 10);
SELECT seq - :base AS n, payload::json->>'title' AS title FROM livenotify.read(:base + 4, 2, 10);

-- Reading does not consume: a second reader (or a second read) sees the same entries.
SELECT count(*) AS first_read FROM livenotify.read(:base, 100, 10);
SELECT count(*) AS second_read FROM livenotify.read(:base, 100, 10);

-- Every row carries the epoch of this server start, the one position() and stats report.
SELECT count(DISTINCT epoch) AS epochs, min(epoch) = :epoch0 AS same_as_position,
       min(epoch) = (SELECT epoch FROM livenotify.stats) AS same_as_stats,
       sum(lost) AS lost
  FROM livenotify.read(:base, 100, 10);

-- position() and stats agree on the last seq.
SELECT p.last_seq - :base AS last, s.last_seq - :base AS stats_last
  FROM livenotify.position() p, livenotify.stats s;

-- 'after' equal to the last seq: wait, then zero rows (not an error).
SELECT count(*) AS entries FROM livenotify.read(:base + 5, 10, 10);
-- 'after' beyond the last seq (a position from before a restart): ERROR.  The message
-- carries positions and the epoch, which vary: they are shown as N.
CREATE FUNCTION pg_temp.error_masked(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    msg text;
    hint text;
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN regexp_replace(format('ERROR: %s HINT: %s', msg, hint), '[0-9]+', 'N', 'g');
END
$$;
SELECT pg_temp.error_masked(format('SELECT * FROM livenotify.read(%s, 10, 10)', :base + 1000));
-- Bad arguments.
SELECT count(*) FROM livenotify.read(NULL, 10, 10);
SELECT count(*) FROM livenotify.read(:base, 0, 10);
SELECT count(*) FROM livenotify.read(:base, -1, 10);
SELECT count(*) FROM livenotify.read(:base, 10, -1);

-- statement_timeout interrupts a waiting read.
SET statement_timeout = '200ms';
SELECT count(*) FROM livenotify.read(:base + 5, 10, 60000);
RESET statement_timeout;

-- Entries of another database are not returned here.
SELECT current_database() AS regress_db \gset
CREATE DATABASE livenotify_reader_other;
\c livenotify_reader_other
CREATE EXTENSION livenotify;
CREATE TABLE api_notification (
    id bigserial PRIMARY KEY, user_id integer NOT NULL, type varchar(50) NOT NULL,
    title varchar(255) NOT NULL, message text NOT NULL,
    is_read boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL DEFAULT now(),
    extra jsonb);
SELECT livenotify.register('api_notification', read_column => 'is_read');
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO api_notification (user_id, type, title, message) VALUES (73, 'like', 'other db', '');
SELECT count(*) AS seen_in_own_db FROM livenotify.read(:base, 10, 10);
\c :regress_db
SELECT last_seq - :base AS new_entries FROM livenotify.position();
SELECT count(*) AS seen_in_other_db FROM livenotify.read(:base, 10, 10);
DROP DATABASE livenotify_reader_other;
