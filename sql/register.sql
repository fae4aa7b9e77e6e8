--
-- register: one call marks an existing table as a source and installs its triggers;
-- unregister removes them.  Bad arguments raise a clear ERROR and leave nothing behind.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never

-- What registration creates, summed over the whole database: catalog rows, rules, and
-- triggers whose function lives in schema livenotify (two of them are on
-- livenotify.source_tables itself).  Checked after every failure.
CREATE TEMP VIEW registrations AS
SELECT (SELECT count(*) FROM livenotify.sources) AS sources,
       (SELECT count(*) FROM livenotify.rules) AS rules,
       (SELECT count(*)
          FROM pg_trigger t
          JOIN pg_proc p ON p.oid = t.tgfoid
         WHERE p.pronamespace = 'livenotify'::regnamespace) AS triggers;

-- The Django table from setup is the only source so far.
SELECT * FROM registrations;

--
-- Other user column types.
--

-- uuid user column, every argument left at its default (user_id, type, id, no read column,
-- skip {event,message}, source = table name).
CREATE TABLE uuid_notification (
    id      bigserial PRIMARY KEY,
    user_id uuid NOT NULL,
    type    text NOT NULL,
    body    text
);
SELECT livenotify.register('uuid_notification');

-- text user column, every name different from the defaults, named arguments, own skip list
-- and own source name.
CREATE TABLE text_notification (
    pk       integer PRIMARY KEY,
    username text NOT NULL,
    kind     varchar(20) NOT NULL,
    seen     boolean NOT NULL DEFAULT false
);
SELECT livenotify.register('text_notification', user_column => 'username',
                           type_column => 'kind', id_column => 'pk', read_column => 'seen',
                           skip_types => '{debug}', source => 'texts');

SELECT source, relid::regclass AS tbl, user_column, type_column, id_column, read_column
  FROM livenotify.sources ORDER BY source;
SELECT source, type, action FROM livenotify.rules ORDER BY source, type;
SELECT tgrelid::regclass AS tbl, count(*) AS triggers
  FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE p.pronamespace = 'livenotify'::regnamespace
 GROUP BY tgrelid ORDER BY tgrelid::regclass::text;
SELECT * FROM registrations;

-- Without a read column: the insert trigger and the delete trigger (which also sees a row
-- move to another partition).  With one, also the two that queue an unread_count for every
-- other change of a count: an update (read or user column changed), a truncate.  The only
-- argument is the source name: the columns are found by name (column_identity).
SELECT tgname, pg_get_triggerdef(oid) AS definition
  FROM pg_trigger WHERE tgrelid = 'uuid_notification'::regclass ORDER BY tgname;
SELECT tgname, pg_get_triggerdef(oid) AS definition
  FROM pg_trigger WHERE tgrelid = 'text_notification'::regclass ORDER BY tgname;

-- Rows of both tables are captured; the user key is the user column's text form.  texts
-- skips 'debug': that row, unread, queues alice's unread_count instead.
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO uuid_notification (user_id, type, body)
VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'like', 'u1');
INSERT INTO text_notification VALUES (1, 'alice', 'mention');
INSERT INTO text_notification VALUES (2, 'alice', 'debug');
SELECT source, user_key, kind, payload::json->>'body' AS body,
       payload::json->>'kind' AS text_kind
  FROM livenotify.read(:base, 10, 10) ORDER BY seq;

--
-- Bad arguments: each is an ERROR and creates nothing.
--
CREATE VIEW notification_view AS SELECT * FROM api_notification;
CREATE TABLE odd_notification (
    n       integer PRIMARY KEY,
    owner   boolean,
    user_id jsonb,
    type    integer,
    label   text,
    category text,
    tid     text,
    is_read text
);

-- Not a table: a view.
SELECT livenotify.register('notification_view');
SELECT * FROM registrations;
-- Not a table: a sequence.
SELECT livenotify.register('api_notification_id_seq');
SELECT * FROM registrations;
-- Not a table: an index.
SELECT livenotify.register('api_notification_user_id_id');
SELECT * FROM registrations;
-- No such relation (rejected by the regclass input already).
SELECT livenotify.register('no_such_table');
SELECT * FROM registrations;

-- Missing user column.
SELECT livenotify.register('odd_notification', user_column => 'owner_id', type_column => 'category',
                           id_column => 'n');
SELECT * FROM registrations;
-- Missing type column.
SELECT livenotify.register('odd_notification', user_column => 'label', type_column => 'kind',
                           id_column => 'n');
SELECT * FROM registrations;
-- Missing id column.
SELECT livenotify.register('odd_notification', user_column => 'label', type_column => 'category',
                           id_column => 'id');
SELECT * FROM registrations;
-- Missing read column.
SELECT livenotify.register('odd_notification', user_column => 'label', type_column => 'category',
                           id_column => 'n', read_column => 'seen');
SELECT * FROM registrations;

-- Wrong type: boolean user column.
SELECT livenotify.register('odd_notification', user_column => 'owner', type_column => 'category',
                           id_column => 'n');
SELECT * FROM registrations;
-- Wrong type: jsonb user column.
SELECT livenotify.register('odd_notification', user_column => 'user_id', type_column => 'category',
                           id_column => 'n');
SELECT * FROM registrations;
-- Wrong type: integer type column.
SELECT livenotify.register('odd_notification', user_column => 'label', type_column => 'type',
                           id_column => 'n');
SELECT * FROM registrations;
-- Wrong type: text id column.
SELECT livenotify.register('odd_notification', user_column => 'label', type_column => 'category',
                           id_column => 'tid');
SELECT * FROM registrations;
-- Wrong type: text read column.
SELECT livenotify.register('odd_notification', user_column => 'label', type_column => 'category',
                           id_column => 'n', read_column => 'is_read');
SELECT * FROM registrations;

-- NULL table.
SELECT livenotify.register(NULL);
SELECT * FROM registrations;
-- NULL user column.
SELECT livenotify.register('odd_notification', user_column => NULL, type_column => 'category',
                           id_column => 'n');
SELECT * FROM registrations;
-- NULL type column.
SELECT livenotify.register('odd_notification', user_column => 'label', type_column => NULL,
                           id_column => 'n');
SELECT * FROM registrations;
-- NULL id column.
SELECT livenotify.register('odd_notification', user_column => 'label', type_column => 'category',
                           id_column => NULL);
SELECT * FROM registrations;
-- NULL skip list.
SELECT livenotify.register('odd_notification', user_column => 'label', type_column => 'category',
                           id_column => 'n', skip_types => NULL);
SELECT * FROM registrations;

-- Already registered: the same table again (under its default source name).
SELECT livenotify.register('api_notification');
SELECT * FROM registrations;
-- Already registered: the same table under another source name.
SELECT livenotify.register('api_notification', source => 'api_again');
SELECT * FROM registrations;
-- Already registered: another table under a source name in use.
SELECT livenotify.register('uuid_notification', source => 'texts');
SELECT * FROM registrations;

-- A failed registration inside a transaction leaves the transaction usable after a
-- savepoint rollback, and still nothing half-created.
BEGIN;
SAVEPOINT before_register;
SELECT livenotify.register('notification_view');
ROLLBACK TO SAVEPOINT before_register;
SELECT * FROM registrations;
COMMIT;

--
-- unregister: drops the triggers (all four with a read column), the rules and the catalog
-- row.
--
SELECT livenotify.unregister('uuid_notification');
SELECT livenotify.unregister('texts');
SELECT source FROM livenotify.sources ORDER BY source;
SELECT count(*) AS rules_left FROM livenotify.rules WHERE source IN ('uuid_notification', 'texts');
SELECT count(*) AS triggers_left FROM pg_trigger
 WHERE tgrelid IN ('uuid_notification'::regclass, 'text_notification'::regclass);
SELECT * FROM registrations;

-- The tables themselves are untouched, and their changes are no longer captured: inserts,
-- an unread row deleted, a truncate.
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO uuid_notification (user_id, type, body)
VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'like', 'u2');
INSERT INTO text_notification VALUES (3, 'alice', 'mention');
DELETE FROM text_notification WHERE pk = 1;
TRUNCATE text_notification;
SELECT last_seq - :base AS new_entries FROM livenotify.position();

-- Unregistering an unknown source.
SELECT livenotify.unregister('uuid_notification');
-- Unregistering NULL.
SELECT livenotify.unregister(NULL);

-- A table can be registered again after unregister.
SELECT livenotify.register('uuid_notification');
SELECT livenotify.unregister('uuid_notification');
SELECT * FROM registrations;

DROP VIEW notification_view;
DROP TABLE uuid_notification, text_notification, odd_notification;
