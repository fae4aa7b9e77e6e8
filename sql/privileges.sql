--
-- privileges: the application connects as an ordinary role (Django's database user is not
-- a superuser).  Its INSERT, UPDATE and COPY are captured with only its privileges on its
-- own table; reading the queue and sending messages need an explicit GRANT; the catalog
-- and the catch-up functions never bypass the table's privileges.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
CREATE ROLE regress_livenotify_app;
CREATE ROLE regress_livenotify_nobody;
GRANT SELECT, INSERT, UPDATE ON api_notification TO regress_livenotify_app;
GRANT USAGE ON SEQUENCE api_notification_id_seq TO regress_livenotify_app;
SELECT last_seq AS base FROM livenotify.position() \gset

-- The application role writes as usual; every path is captured.
SET ROLE regress_livenotify_app;
INSERT INTO api_notification (user_id, type, title, message) VALUES (121, 'like', 'pr1', '');
UPDATE api_notification SET is_read = true WHERE title = 'pr1';
COPY api_notification (user_id, type, title, message) FROM STDIN;
121	like	pr2	
\.
-- It may look at where the queue is; the stats count every database's traffic and are for
-- pg_read_all_stats (and pg_monitor, a member of it), as pg_stat_statements' are...
SELECT last_seq - :base AS new_entries FROM livenotify.position();
SELECT count(*) AS rows FROM livenotify.stats;
SELECT count(*) AS rows FROM livenotify.stats_raw();
-- ...and catch up on its own table.
SELECT payload::json->>'title' AS title FROM livenotify.catchup('api_notification', '121', 0);
-- It may not read the queue, send, change the rules or unregister.
SELECT count(*) FROM livenotify.read(:base, 10, 10);
SELECT livenotify.send('121', 'new_message', '{}');
INSERT INTO livenotify.rules VALUES ('api_notification', 'like', 'skip');
SELECT livenotify.unregister('api_notification');
RESET ROLE;

SELECT seq - :base AS n, user_key, kind, payload::json->>'title' AS title
  FROM livenotify.read(:base, 10, 10) ORDER BY seq;

-- A member of pg_monitor reads the stats.
GRANT pg_monitor TO regress_livenotify_nobody;
SET ROLE regress_livenotify_nobody;
SELECT count(*) AS rows FROM livenotify.stats;
RESET ROLE;
REVOKE pg_monitor FROM regress_livenotify_nobody;

-- What PUBLIC may execute: the public API, and the helpers the catch-up functions (which
-- run as their caller, so that the table's privileges apply) call; no internal function
-- that writes the queue or the catalog, no trigger function.
SELECT p.oid::regprocedure AS public_may_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'livenotify'::regnamespace
   AND has_function_privilege('regress_livenotify_nobody', p.oid, 'EXECUTE')
 ORDER BY p.proname;

-- A role without privileges on the table learns nothing through livenotify.
SET ROLE regress_livenotify_nobody;
SELECT count(*) FROM livenotify.catchup('api_notification', '121', 0);
SELECT count(*) FROM livenotify.unread_counts('api_notification', '{121}');
RESET ROLE;

-- The sidecar's role needs EXECUTE on read() (and the application's on send()).
GRANT EXECUTE ON FUNCTION livenotify.read(bigint, integer, integer) TO regress_livenotify_app;
GRANT EXECUTE ON FUNCTION livenotify.send(text, text, jsonb) TO regress_livenotify_app;
SET ROLE regress_livenotify_app;
SELECT livenotify.send('121', 'new_message', '{"text": "granted"}');
SELECT kind, payload::json->>'text' AS text
  FROM livenotify.read((SELECT last_seq - 1 FROM livenotify.position()), 10, 10);
RESET ROLE;

REVOKE ALL ON FUNCTION livenotify.read(bigint, integer, integer) FROM regress_livenotify_app;
REVOKE ALL ON FUNCTION livenotify.send(text, text, jsonb) FROM regress_livenotify_app;
REVOKE ALL ON api_notification FROM regress_livenotify_app;
REVOKE ALL ON SEQUENCE api_notification_id_seq FROM regress_livenotify_app;
DROP ROLE regress_livenotify_app;
DROP ROLE regress_livenotify_nobody;
