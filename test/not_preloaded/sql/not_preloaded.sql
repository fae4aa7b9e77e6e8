--
-- not_preloaded: on a server without shared_preload_libraries = 'livenotify', every
-- function a user calls raises an error that says how to fix it, while the app's own writes
-- and DDL (and a dump's restore) go through.  (test/run-all.sh starts a second cluster for
-- this test.)
--
\set SHOW_CONTEXT never
SHOW shared_preload_libraries;
CREATE EXTENSION livenotify;
SELECT * FROM livenotify.position();
SELECT * FROM livenotify.read(0, 10, 10);
SELECT livenotify.send('1', 'new_message', '{}');
SELECT * FROM livenotify.stats;
CREATE TABLE api_notification (
    id bigserial PRIMARY KEY, user_id integer NOT NULL, type varchar(50) NOT NULL,
    title varchar(255) NOT NULL, message text NOT NULL,
    is_read boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL DEFAULT now(),
    extra jsonb);
SELECT livenotify.register('api_notification', read_column => 'is_read');
SELECT * FROM livenotify.catchup('api_notification', '1', 0);
SELECT * FROM livenotify.unread_counts('api_notification', '{1}');
SELECT livenotify.unregister('api_notification');
DROP TABLE api_notification;
DROP EXTENSION livenotify;
--
-- The app never fails because livenotify is not loaded: its writes and DDL on a registered
-- table go through, and the capture triggers only warn, once per session.
-- livenotify_restored holds a dump restored onto this cluster (test/run-all.sh,
-- not_preloaded_dump): the source, its rules and its triggers, made by register() on a
-- preloaded server.
--
\c livenotify_restored
SELECT source, relid, user_column, type_column, id_column, read_column FROM livenotify.sources;
SELECT source, type, action FROM livenotify.rules ORDER BY type;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'api_notification'::regclass ORDER BY tgname;
SELECT id, user_id, type, title FROM api_notification;
SELECT livenotify.skipped_not_loaded();
-- One WARNING for the session, on the first row; the count goes on.
INSERT INTO api_notification (user_id, type, title, message) VALUES (1, 'like', 't', 'm');
INSERT INTO api_notification (user_id, type, title, message) VALUES (2, 'like', 't', 'm');
INSERT INTO api_notification (user_id, type, title, message)
SELECT 3, 'like', 't', 'm' FROM generate_series(1, 3);
SELECT livenotify.skipped_not_loaded();
UPDATE api_notification SET is_read = true WHERE user_id = 1;
DELETE FROM api_notification WHERE user_id = 2;
COPY api_notification (user_id, type, title, message) FROM stdin;
4	like	copied	m
4	event	copied	m
\.
SELECT user_id, count(*) FROM api_notification GROUP BY user_id ORDER BY user_id;
TRUNCATE api_notification;
ALTER TABLE api_notification ADD COLUMN priority integer;
ALTER TABLE api_notification RENAME COLUMN title TO heading;
INSERT INTO api_notification (user_id, type, heading, message) VALUES (5, 'like', 't', 'm');
-- Plain DML on the rules table: livenotify's own catalog, changed without a warning.
INSERT INTO livenotify.rules VALUES ('api_notification', 'like', 'skip');
UPDATE livenotify.rules SET action = 'deliver' WHERE type = 'like';
DELETE FROM livenotify.rules WHERE type = 'like';
SELECT livenotify.skipped_not_loaded() > 0 AS counted;
-- A new session: rules DML neither warns nor counts; the first captured row warns again, once.
\c livenotify_restored
DELETE FROM livenotify.rules WHERE type = 'digest';
INSERT INTO livenotify.rules VALUES ('api_notification', 'digest', 'skip');
SELECT livenotify.skipped_not_loaded();
INSERT INTO api_notification (user_id, type, heading, message) VALUES (6, 'like', 't', 'm');
INSERT INTO api_notification (user_id, type, heading, message) VALUES (6, 'like', 't', 'm');
SELECT livenotify.skipped_not_loaded();
-- DROP TABLE of a registered table takes its registration (and rules) with it.
DROP TABLE api_notification;
SELECT count(*) FROM livenotify.source_tables;
SELECT count(*) FROM livenotify.rules;
-- The functions a user calls explicitly still say how to fix it.
CREATE TABLE api_notification (
    id bigserial PRIMARY KEY, user_id integer NOT NULL, type varchar(50) NOT NULL,
    title varchar(255) NOT NULL, message text NOT NULL, is_read boolean NOT NULL DEFAULT false);
SELECT livenotify.register('api_notification', read_column => 'is_read');
SELECT livenotify.send('1', 'new_message', '{}');
