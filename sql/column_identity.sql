--
-- column_identity: a registration follows its columns by name through the table's whole
-- life: renames, type changes, added and dropped columns, partitions with another column
-- order.  What it cannot follow is refused at DDL time, never found at INSERT time.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never

-- Triggers carry the source name only; the columns are in livenotify.source_tables.
CREATE TABLE ci_notification (
    id      serial PRIMARY KEY,
    dropme  integer,
    user_id integer NOT NULL,
    type    varchar(50) NOT NULL,
    is_read boolean NOT NULL DEFAULT false
);
SELECT livenotify.register('ci_notification', read_column => 'is_read');
SELECT tgname, pg_get_triggerdef(oid) AS definition
  FROM pg_trigger WHERE tgrelid = 'ci_notification'::regclass ORDER BY tgname;
SELECT source, user_column, type_column, id_column, read_column
  FROM livenotify.sources WHERE source = 'ci_notification';

-- An unregistered column dropped, one added: every row still goes to its own user.
ALTER TABLE ci_notification DROP COLUMN dropme;
ALTER TABLE ci_notification ADD COLUMN note text;
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO ci_notification (user_id, type, note) VALUES (7, 'like', 'n1');
SELECT user_key, payload::json->>'user_id' AS user_id, payload::json->>'note' AS note
  FROM livenotify.read(:base, 10, 0);

-- Django's BigAutoField migration retypes the id and the user column to bigint; a CharField
-- change retypes the type column to text.  Capture, catch-up and counts go on.
ALTER TABLE ci_notification ALTER COLUMN user_id TYPE bigint;
ALTER TABLE ci_notification ALTER COLUMN id TYPE bigint;
ALTER TABLE ci_notification ALTER COLUMN type TYPE text;
ALTER TABLE ci_notification ALTER COLUMN type TYPE varchar(80);
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO ci_notification (user_id, type) VALUES (8000000000, 'like');
UPDATE ci_notification SET is_read = true WHERE user_id = 7;
SELECT kind, user_key FROM livenotify.read(:base, 10, 0) ORDER BY seq;
SELECT id FROM livenotify.catchup('ci_notification', '8000000000', 0);
SELECT * FROM livenotify.unread_counts('ci_notification', '{7,8000000000}');

-- Renamed columns: the registration follows the column, sources shows today's names.
ALTER TABLE ci_notification RENAME COLUMN user_id TO owner_id;
ALTER TABLE ci_notification RENAME COLUMN type TO kind;
ALTER TABLE ci_notification RENAME COLUMN is_read TO seen;
SELECT source, user_column, type_column, id_column, read_column
  FROM livenotify.sources WHERE source = 'ci_notification';
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO ci_notification (owner_id, kind) VALUES (9, 'like');
INSERT INTO ci_notification (owner_id, kind) VALUES (9, 'event');
UPDATE ci_notification SET seen = true WHERE owner_id = 9;
SELECT kind, user_key, payload::json->>'owner_id' AS owner_id
  FROM livenotify.read(:base, 10, 0) ORDER BY seq;
SELECT count(*) FROM livenotify.catchup('ci_notification', '9', 0);
SELECT * FROM livenotify.unread_counts('ci_notification', '{9}');

-- The user column retyped to uuid (a user model moved to uuid keys).
DELETE FROM ci_notification;
ALTER TABLE ci_notification ALTER COLUMN owner_id TYPE uuid USING NULL;
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO ci_notification (owner_id, kind) VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'like');
SELECT kind, user_key FROM livenotify.read(:base, 10, 0) ORDER BY seq;
SELECT count(*) FROM livenotify.catchup('ci_notification', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 0);

-- What cannot be followed is refused at DDL time, and the table is left as it was.
ALTER TABLE ci_notification DROP COLUMN kind;
ALTER TABLE ci_notification DROP COLUMN owner_id;
ALTER TABLE ci_notification DROP COLUMN seen;
ALTER TABLE ci_notification ALTER COLUMN owner_id TYPE jsonb USING to_jsonb(owner_id);
ALTER TABLE ci_notification ALTER COLUMN kind TYPE integer USING 0;
ALTER TABLE ci_notification ALTER COLUMN id TYPE text;
ALTER TABLE ci_notification ALTER COLUMN seen DROP DEFAULT, ALTER COLUMN seen TYPE integer USING 0;
SELECT source, user_column, type_column, id_column, read_column
  FROM livenotify.sources WHERE source = 'ci_notification';

-- With event triggers off (session_replication_role = replica, a superuser's choice), a rename
-- goes unnoticed: the rows of the next statement are not captured, with one WARNING for the
-- statement (not one per row); catch-up says what is wrong.
SET session_replication_role = replica;
ALTER TABLE ci_notification RENAME COLUMN kind TO category;
RESET session_replication_role;
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO ci_notification (owner_id, category)
SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'like' FROM generate_series(1, 3);
SELECT last_seq - :base AS new_entries FROM livenotify.position();
SELECT count(*) FROM livenotify.catchup('ci_notification', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 0);
ALTER TABLE ci_notification RENAME COLUMN category TO kind;

-- Attribute numbers copied from another cluster (a data-only restore with triggers disabled
-- skips the trigger that derives them from the names): the next ALTER TABLE derives them
-- again instead of taking the column now at the old number for a rename, and a drop is
-- checked by name.
SET session_replication_role = replica;
UPDATE livenotify.source_tables SET user_attnum = type_attnum, type_attnum = user_attnum
 WHERE source = 'ci_notification';
RESET session_replication_role;
ALTER TABLE ci_notification ADD COLUMN other integer;
SELECT user_column, type_column,
       user_attnum = (SELECT attnum FROM pg_attribute WHERE attrelid = relid AND attname = user_column) AS user_attnum_right,
       type_attnum = (SELECT attnum FROM pg_attribute WHERE attrelid = relid AND attname = type_column) AS type_attnum_right
  FROM livenotify.source_tables WHERE source = 'ci_notification';
ALTER TABLE ci_notification DROP COLUMN other;
ALTER TABLE ci_notification RENAME COLUMN kind TO category;
SELECT user_column, type_column FROM livenotify.sources WHERE source = 'ci_notification';
ALTER TABLE ci_notification RENAME COLUMN category TO kind;

-- An unregistered column still drops; after unregister, the registered ones do too.
ALTER TABLE ci_notification DROP COLUMN note;
SELECT livenotify.unregister('ci_notification');
ALTER TABLE ci_notification DROP COLUMN kind;
DROP TABLE ci_notification;

-- A trigger that register() did not create is refused with a clear ERROR.
CREATE TABLE ci_forged (id serial, user_id integer, type text);
CREATE TRIGGER forged AFTER INSERT ON ci_forged FOR EACH ROW
    EXECUTE FUNCTION livenotify.capture_insert('api_notification');
INSERT INTO ci_forged (user_id, type) VALUES (1, 'like');
DROP TRIGGER forged ON ci_forged;
CREATE TRIGGER forged AFTER INSERT ON ci_forged FOR EACH ROW
    EXECUTE FUNCTION livenotify.capture_insert('no_such_source');
INSERT INTO ci_forged (user_id, type) VALUES (1, 'like');
DROP TRIGGER forged ON ci_forged;
CREATE TRIGGER forged AFTER INSERT ON ci_forged FOR EACH ROW
    EXECUTE FUNCTION livenotify.capture_insert(
        'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');
INSERT INTO ci_forged (user_id, type) VALUES (1, 'like');
DROP TRIGGER forged ON ci_forged;
CREATE TRIGGER forged AFTER INSERT ON ci_forged FOR EACH ROW
    EXECUTE FUNCTION livenotify.capture_insert('api_notification', '2', '3', '1');
INSERT INTO ci_forged (user_id, type) VALUES (1, 'like');
DROP TABLE ci_forged;

--
-- Partitions: columns are resolved by name in each partition, whatever its column order.
--
CREATE TABLE ci_part (
    id      bigserial,
    user_id integer NOT NULL,
    secret  text,
    type    text NOT NULL,
    is_read boolean NOT NULL DEFAULT false
) PARTITION BY LIST (user_id);
CREATE TABLE ci_part_42 PARTITION OF ci_part FOR VALUES IN (42);
SELECT livenotify.register('ci_part', read_column => 'is_read');
-- Created after registration: gets the triggers.
CREATE TABLE ci_part_43 PARTITION OF ci_part FOR VALUES IN (43);
-- Attached with another column order (and a dropped column): rows still go to their user.
CREATE TABLE ci_part_44 (
    gone    integer,
    is_read boolean NOT NULL DEFAULT false,
    type    text NOT NULL,
    secret  text,
    id      bigint NOT NULL,
    user_id integer NOT NULL
);
ALTER TABLE ci_part_44 DROP COLUMN gone;
ALTER TABLE ci_part ATTACH PARTITION ci_part_44 FOR VALUES IN (44);
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO ci_part (user_id, type, secret) VALUES (42, 'like', 'for 42'), (43, 'like', 'for 43'),
                                                  (44, 'like', 'for 44');
SELECT source, user_key, payload::json->>'secret' AS secret
  FROM livenotify.read(:base, 10, 0) ORDER BY seq;

-- A row moved to another partition by an UPDATE is not a new notification; the counts of
-- both users are refreshed.
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE ci_part SET user_id = 44 WHERE secret = 'for 43';
SELECT kind, user_key FROM livenotify.read(:base, 10, 0) ORDER BY seq;
-- ... also when the moved row is read (no count changed: nothing queued).
UPDATE ci_part SET is_read = true WHERE user_id = 44;
SELECT last_seq AS base FROM livenotify.position() \gset
UPDATE ci_part SET user_id = 42 WHERE secret = 'for 43';
SELECT kind, user_key FROM livenotify.read(:base, 10, 0) ORDER BY seq;
-- A deleted row followed by a new row with the same id in one transaction: both are real.
SELECT last_seq AS base FROM livenotify.position() \gset
BEGIN;
DELETE FROM ci_part WHERE secret = 'for 42';
INSERT INTO ci_part (id, user_id, type, secret) VALUES (1, 42, 'like', 'again');
COMMIT;
SELECT kind, user_key, payload::json->>'secret' AS secret
  FROM livenotify.read(:base, 10, 0) ORDER BY seq;

-- Detached, a partition is no longer captured.
ALTER TABLE ci_part DETACH PARTITION ci_part_44;
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO ci_part_44 (id, user_id, type) VALUES (100, 44, 'like');
SELECT last_seq - :base AS new_entries FROM livenotify.position();
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'ci_part_44'::regclass;
DROP TABLE ci_part_44;

-- A registered column of a partitioned table is protected the same way.
ALTER TABLE ci_part DROP COLUMN type;
ALTER TABLE ci_part RENAME COLUMN user_id TO owner_id;
SELECT user_column FROM livenotify.sources WHERE source = 'ci_part';
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO ci_part (owner_id, type) VALUES (43, 'like');
SELECT user_key FROM livenotify.read(:base, 10, 0);
DROP TABLE ci_part;
SELECT count(*) FROM livenotify.sources WHERE source = 'ci_part';
