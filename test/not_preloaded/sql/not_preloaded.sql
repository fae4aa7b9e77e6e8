--
-- not_preloaded: on a server without shared_preload_libraries = 'livenotify', every
-- function raises an error that says how to fix it.  (test/run-all.sh starts a second
-- cluster for this test.)
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
