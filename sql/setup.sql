--
-- setup: the extension and the table the other tests share.
--
-- The table is shaped exactly like Django's api_notification: livenotify must register it
-- with no change to the table.  This file runs first (see REGRESS in the Makefile).
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
CREATE EXTENSION livenotify;
SELECT extname, extversion, extnamespace::regnamespace AS schema
  FROM pg_extension WHERE extname = 'livenotify';

CREATE TABLE api_notification (
    id          bigserial PRIMARY KEY,
    user_id     integer NOT NULL,
    type        varchar(50) NOT NULL,
    title       varchar(255) NOT NULL,
    message     text NOT NULL,
    is_read     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    extra       jsonb
);

-- The indexes docs/sql-api.md recommends for catchup() and unread_counts().
CREATE INDEX api_notification_user_id_id ON api_notification (user_id, id);
CREATE INDEX api_notification_user_unread ON api_notification (user_id) WHERE NOT is_read;

-- The documented call for Django; it returns the source name (the table's name).
SELECT livenotify.register('api_notification', 'user_id', 'type', 'id', 'is_read');

SELECT source, relid::regclass AS tbl, user_column, type_column, id_column, read_column
  FROM livenotify.sources;

-- The seed app's skipped types are the default rules.
SELECT source, type, action FROM livenotify.rules ORDER BY source, type;

-- The settings the suite runs with (test/lib.sh: cluster_start).
SHOW livenotify.ring_size;
SHOW livenotify.max_payload;
SHOW livenotify.enabled;
