--
-- hostile_args: every SQL function of the extension called with NULLs, wrong types,
-- negative or huge limits and timeouts, unknown sources and tables.  Each call either works
-- or raises a clear ERROR; none may crash the backend (a crash restarts the whole cluster,
-- which would also fail every test after this one).  The reliability suite runs this file
-- again on its own cluster and checks the server log for "terminated by signal".
--
-- Nothing here is left behind: calls that would enqueue or register run inside a
-- transaction that is rolled back.
\set SHOW_CONTEXT never
-- A waiting read() with a huge timeout must still end: statement_timeout stops it.
SET statement_timeout = '2s';

-- send(): NULLs, empty and reserved kinds, bad kinds, bad JSON, wrong types.
SELECT livenotify.send(NULL, 'k', '{}');
SELECT livenotify.send('1', NULL, '{}');
SELECT livenotify.send('1', 'k', NULL);
SELECT livenotify.send('', 'k');
SELECT livenotify.send('1', '');
SELECT livenotify.send('1', 'notification');
SELECT livenotify.send('1', 'resync');
SELECT livenotify.send('1', 'Hello');
SELECT livenotify.send('1', 'bad kind!');
SELECT livenotify.send('1', E'k\n');
SELECT livenotify.send('1', repeat('k', 64));
SELECT livenotify.send('1', repeat('k', 200));
SELECT livenotify.send('1', 'k', 'not json');
SELECT livenotify.send('1', 'k', jsonb_build_object('big', repeat('x', 100000)));
SELECT livenotify.send(1, 2, 3);
SELECT livenotify.send('1', 'k', '{}', 'extra');
-- A huge user key is not a kind: accepted, rolled back so nothing is queued.
BEGIN;
SELECT livenotify.send(repeat('u', 5000), 'k') IS NULL AS sent;
ROLLBACK;

-- read(): NULLs, negative and huge positions, limits and timeouts.
SELECT count(*) FROM livenotify.read(NULL);
SELECT count(*) FROM livenotify.read(0, NULL);
SELECT count(*) FROM livenotify.read(0, 10, NULL);
SELECT count(*) FROM livenotify.read(-1, 10, 0);
SELECT count(*) FROM livenotify.read(-9223372036854775808, 10, 0);
-- (the queue's last position differs between runs: the message is shown without it)
DO $$
BEGIN
    PERFORM * FROM livenotify.read(9223372036854775807, 10, 0);
EXCEPTION WHEN others THEN
    RAISE NOTICE 'refused: %', regexp_replace(SQLERRM, '\(last is \d+\)', '(last is N)');
END $$;
SELECT count(*) FROM livenotify.read(0, -1, 0);
SELECT count(*) FROM livenotify.read(0, 0, 0);
SELECT count(*) FROM livenotify.read(0, -2147483648, 0);
SELECT count(*) >= 0 AS ok FROM livenotify.read(0, 2147483647, 0);
SELECT count(*) FROM livenotify.read(0, 10, -1);
SELECT count(*) FROM livenotify.read(0, 10, -2147483648);
-- Nothing after the last position: waits, and statement_timeout interrupts the huge timeout.
SELECT last_seq AS last FROM livenotify.position() \gset
SELECT count(*) FROM livenotify.read(:last, 10, 3600000);
SELECT count(*) FROM livenotify.read('x');
SELECT count(*) FROM livenotify.read(1.5e30);

-- catchup(): unknown sources, NULLs, keys of the wrong type, negative and huge limits.
SELECT count(*) FROM livenotify.catchup(NULL, '1', 0);
SELECT count(*) FROM livenotify.catchup('no_such_source', '1', 0);
SELECT count(*) FROM livenotify.catchup('api_notification', NULL, 0);
SELECT count(*) FROM livenotify.catchup('api_notification', '1', NULL);
SELECT count(*) FROM livenotify.catchup('api_notification', '1', 0, NULL);
SELECT count(*) FROM livenotify.catchup('api_notification', 'not-an-int', 0);
SELECT count(*) FROM livenotify.catchup('api_notification', '99999999999999999999', 0);
SELECT count(*) FROM livenotify.catchup('api_notification', '1', -9223372036854775808);
SELECT count(*) FROM livenotify.catchup('api_notification', '999999', 0, -1);
SELECT count(*) FROM livenotify.catchup('api_notification', '999999', 0, 0);
SELECT count(*) FROM livenotify.catchup('api_notification', '999999', 0, 2147483647);
SELECT count(*) FROM livenotify.catchup('api_notification', E'1\'; DROP TABLE api_notification; --', 0);

-- unread_counts(): unknown sources, NULLs, bad keys, empty and huge arrays.
SELECT count(*) FROM livenotify.unread_counts(NULL, '{1}');
SELECT count(*) FROM livenotify.unread_counts('no_such_source', '{1}');
SELECT count(*) FROM livenotify.unread_counts('api_notification', NULL);
SELECT count(*) FROM livenotify.unread_counts('api_notification', '{}');
SELECT count(*) FROM livenotify.unread_counts('api_notification', '{NULL}');
SELECT count(*) FROM livenotify.unread_counts('api_notification', '{abc}');
SELECT count(*) FROM livenotify.unread_counts('api_notification', '{{1,2},{3,4}}');
SELECT count(*) FROM livenotify.unread_counts('api_notification',
    (SELECT array_agg(i::text) FROM generate_series(1, 100000) i));

-- register(): unknown tables and columns, wrong column types, system catalogs, NULLs.
CREATE TABLE hostile_t (id bigint, user_id int, type text, flag int, note text);
BEGIN;
SELECT livenotify.register(NULL);
ROLLBACK;
SELECT livenotify.register('no_such_table');
SELECT livenotify.register(0::regclass);
SELECT livenotify.register('hostile_t', 'no_such_column');
SELECT livenotify.register('hostile_t', 'user_id', 'flag');
SELECT livenotify.register('hostile_t', 'user_id', 'type', 'note');
SELECT livenotify.register('hostile_t', 'user_id', 'type', 'id', 'flag');
SELECT livenotify.register('hostile_t', NULL, NULL, NULL);
SELECT livenotify.register('hostile_t', 'user_id', 'type', 'id', NULL, NULL);
SELECT livenotify.register('hostile_t', source => '');
SELECT livenotify.register('pg_class', 'relowner', 'relname', 'oid');
SELECT livenotify.register('hostile_t', 'user_id', 'type', 'id', source => 'api_notification');
-- unregister(): NULL and unknown sources.
SELECT livenotify.unregister(NULL);
SELECT livenotify.unregister('no_such_source');
DROP TABLE hostile_t;

-- The rules table refuses what its constraints forbid.
INSERT INTO livenotify.rules VALUES ('api_notification', 'x', 'explode');
INSERT INTO livenotify.rules VALUES (NULL, 'x', 'skip');

-- The session is still alive and the queue still works.
RESET statement_timeout;
SELECT 1 AS alive;
SELECT epoch > 0 AS epoch_ok FROM livenotify.position();
