--
-- catchup_cursor: catch-up by a resume cursor (horizon and the ids the tab had), with the
-- same JSON, rules and stub as the live stream; read_horizon() and origin() behind it.
-- The out-of-order commits it exists for are in test/isolation/specs/resume_cursor.spec.
--
\set SHOW_CONTEXT never
SELECT coalesce(max(id), 0) AS before_id FROM api_notification \gset
SELECT last_seq AS base FROM livenotify.position() \gset

-- No read() yet in this session: no horizon.
SELECT xmin IS NULL AS no_xmin, xmax IS NULL AS no_xmax FROM livenotify.read_horizon();

-- A horizon taken before the rows below: every one of them is at or above it.
SELECT count(*) FROM livenotify.read(:base, 100000, 0);
SELECT xmin AS h, xmin <= xmax AS ordered FROM livenotify.read_horizon() \gset
SELECT :'ordered' AS xmin_not_after_xmax;

INSERT INTO api_notification (user_id, type, title, message) VALUES
    (91, 'like', 'cc1', ''),
    (92, 'like', 'cc2', ''),
    (91, 'event', 'cc3', ''),
    (91, 'comment', 'cc4', '');

-- User 91's rows, the skipped type left out; the ids the tab had are left out too.
SELECT id - :before_id AS n, payload::json->>'title' AS title
  FROM livenotify.catchup_cursor('api_notification', '91', :'h', '{}', -1);
SELECT id - :before_id AS n, payload::json->>'title' AS title
  FROM livenotify.catchup_cursor('api_notification', '91', :'h',
                                 ARRAY[:before_id + 1]::bigint[], -1);
-- Keyset pages: after_id and max_rows.
SELECT id - :before_id AS n FROM livenotify.catchup_cursor('api_notification', '91', :'h', '{}', -1, 1);
SELECT id - :before_id AS n
  FROM livenotify.catchup_cursor('api_notification', '91', :'h', '{}', :before_id + 1, 1);

-- The same JSON as the live stream and as catchup().
SELECT bool_and(c.payload = o.payload) AS same_as_catchup
  FROM livenotify.catchup_cursor('api_notification', '91', :'h', '{}', -1) c
  JOIN livenotify.catchup('api_notification', '91', :before_id) o USING (id);

-- A horizon after the rows (read to the end once they committed): nothing is left.
SELECT count(*) > 0 AS read_them FROM livenotify.read(:base, 100000, 0);
SELECT xmin AS h2 FROM livenotify.read_horizon() \gset
SELECT count(*) FROM livenotify.catchup_cursor('api_notification', '91', :'h2', '{}', -1);

-- A read that stops short of the end has no horizon.
SELECT count(*) FROM livenotify.read(:base, 1, 0);
SELECT xmin IS NULL AS no_horizon FROM livenotify.read_horizon();

-- origin(): the system identifier (unsigned, as text) and this primary's timeline.
SELECT system_identifier = (SELECT system_identifier::text FROM pg_control_system())
       OR system_identifier::numeric > 9223372036854775807 AS same_system,
       timeline >= 1 AS has_timeline
  FROM livenotify.origin();

-- Bad arguments.
SELECT * FROM livenotify.catchup_cursor('api_notification', '91', NULL, '{}', -1);
SELECT * FROM livenotify.catchup_cursor('api_notification', '91', :'h', NULL, -1);
SELECT * FROM livenotify.catchup_cursor('api_notification', '91', :'h', '{1,NULL}', -1);
SELECT * FROM livenotify.catchup_cursor('api_notification', '91', :'h',
                                        array_fill(1::bigint, ARRAY[65]), -1);
SELECT * FROM livenotify.catchup_cursor('api_notification', '91', :'h', '{}', -1, 0);
SELECT * FROM livenotify.catchup_cursor('api_notification', 'x', :'h', '{}', -1);
SELECT * FROM livenotify.catchup_cursor('nope', '91', :'h', '{}', -1);
-- A horizon this server has not reached: another history (terse: the DETAIL names the next xid).
\set VERBOSITY terse
SELECT * FROM livenotify.catchup_cursor('api_notification', '91', '9000000000000000000', '{}', -1);
\set VERBOSITY default

-- Not for PUBLIC: the horizon of the reader and the system identifier.
SELECT has_function_privilege('public', 'livenotify.read_horizon()', 'EXECUTE') AS horizon_public,
       has_function_privilege('public', 'livenotify.origin()', 'EXECUTE') AS origin_public;
