-- The application table every end-to-end script starts from: shaped like Django's
-- api_notification (the seed app's model), with the two indexes docs/sql-api.md recommends
-- for catch-up and unread counts.  Registration is left to the caller (the documented call
-- is livenotify.register('api_notification', 'user_id', 'type', 'id', 'is_read')).
CREATE EXTENSION livenotify;
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
CREATE INDEX ON api_notification (user_id, id);
CREATE INDEX ON api_notification (user_id) WHERE NOT is_read;
