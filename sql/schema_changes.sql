--
-- schema_changes: what happens to a registered table when its schema changes.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never

-- A partitioned table registers like a plain one: a row inserted through the parent is one
-- entry, under the parent's source name (not once per partition trigger).
CREATE TABLE part_notification (
    id      bigserial,
    user_id integer NOT NULL,
    type    text NOT NULL,
    title   text NOT NULL
) PARTITION BY RANGE (id);
CREATE TABLE part_notification_1 PARTITION OF part_notification FOR VALUES FROM (1) TO (1000);
SELECT livenotify.register('part_notification');
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO part_notification (user_id, type, title) VALUES (111, 'like', 'pa1');
SELECT seq - :base AS n, source, user_key, payload::json->>'title' AS title
  FROM livenotify.read(:base, 10, 10);

-- DROP TABLE takes the registration with it: catalog row and rules.
DROP TABLE part_notification;
SELECT count(*) AS sources FROM livenotify.sources WHERE source = 'part_notification';
SELECT count(*) AS rules FROM livenotify.rules WHERE source = 'part_notification';

-- A column the registration names cannot be dropped while registered: the DDL is refused,
-- with the way out (column_identity tests every column and partitioned tables).
CREATE TABLE renamed_notification (
    id      bigserial PRIMARY KEY,
    user_id integer NOT NULL,
    type    text NOT NULL,
    is_read boolean NOT NULL DEFAULT false
);
SELECT livenotify.register('renamed_notification', read_column => 'is_read');
ALTER TABLE renamed_notification DROP COLUMN is_read;
ALTER TABLE renamed_notification DROP COLUMN is_read CASCADE;

-- A renamed user column (a migration): the registration follows it (the event trigger writes
-- the new name into livenotify.source_tables), so capture, catch-up and unread counts go on
-- under the new name.
SELECT last_seq AS base FROM livenotify.position() \gset
ALTER TABLE renamed_notification RENAME COLUMN user_id TO owner_id;
INSERT INTO renamed_notification (owner_id, type) VALUES (112, 'like');
SELECT user_key, kind, payload::json->>'owner_id' AS owner_id
  FROM livenotify.read(:base, 10, 0);
SELECT user_column FROM livenotify.sources WHERE source = 'renamed_notification';
SELECT count(*) FROM livenotify.catchup('renamed_notification', '112', 0);
SELECT * FROM livenotify.unread_counts('renamed_notification', '{112}');

-- The type column dropped: refused like the others; the table keeps it and rows go on.
SELECT last_seq AS base FROM livenotify.position() \gset
ALTER TABLE renamed_notification DROP COLUMN type;
INSERT INTO renamed_notification (owner_id, type) VALUES (112, 'like');
SELECT count(*) AS queued FROM livenotify.read(:base, 10, 0);
SELECT count(*) AS stored FROM renamed_notification;
SELECT count(*) FROM livenotify.catchup('renamed_notification', '112', 0);
-- Unregistered, the table is the app's again: the column drops.
SELECT livenotify.unregister('renamed_notification');
ALTER TABLE renamed_notification DROP COLUMN type;
DROP TABLE renamed_notification;
