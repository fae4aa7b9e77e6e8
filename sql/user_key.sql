--
-- user_key: one canonical user key, the user column's value as PostgreSQL prints it with
-- ::text (char(n) without trailing blanks).  Live entries carry it; catch-up and counts take
-- only it: a key that does not round-trip through the column's type (key::type::text <> key)
-- is refused, so '042' is never user 42 in one place and nobody in another.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never

CREATE TABLE uk_char (id serial PRIMARY KEY, user_id char(5) NOT NULL, type text NOT NULL,
                      is_read boolean NOT NULL DEFAULT false);
CREATE TABLE uk_int (id serial PRIMARY KEY, user_id integer NOT NULL, type text NOT NULL,
                     is_read boolean NOT NULL DEFAULT false);
CREATE TABLE uk_bigint (id serial PRIMARY KEY, user_id bigint NOT NULL, type text NOT NULL);
CREATE TABLE uk_text (id serial PRIMARY KEY, user_id text NOT NULL, type text NOT NULL);
CREATE TABLE uk_varchar (id serial PRIMARY KEY, user_id varchar(5) NOT NULL, type text NOT NULL);
CREATE TABLE uk_uuid (id serial PRIMARY KEY, user_id uuid NOT NULL, type text NOT NULL);
SELECT livenotify.register('uk_char', read_column => 'is_read'),
       livenotify.register('uk_int', read_column => 'is_read'),
       livenotify.register('uk_bigint'), livenotify.register('uk_text'),
       livenotify.register('uk_varchar'), livenotify.register('uk_uuid');

SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO uk_char (user_id, type) VALUES ('a', 'like'), ('alice', 'like');
INSERT INTO uk_int (user_id, type) VALUES (42, 'like'), (7, 'like');
INSERT INTO uk_bigint (user_id, type) VALUES (8000000000, 'like');
INSERT INTO uk_text (user_id, type) VALUES ('42', 'like'), (' 42', 'like');
INSERT INTO uk_varchar (user_id, type) VALUES ('bob', 'like');
INSERT INTO uk_uuid (user_id, type) VALUES ('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'like');
UPDATE uk_char SET is_read = true WHERE user_id = 'a';
-- Live keys: the ::text form (no blank padding for char(5), lower case for uuid).
SELECT source, kind, '[' || user_key || ']' AS user_key FROM livenotify.read(:base, 20, 0)
 ORDER BY seq;

-- Catch-up compares that form: 'alice' is not 'a' (char(5) is not char(1)), 'a' is not 'alice'.
SELECT id, payload::json->>'user_id' AS user_id FROM livenotify.catchup('uk_char', 'alice', 0);
SELECT id, payload::json->>'user_id' AS user_id FROM livenotify.catchup('uk_char', 'a', 0);
SELECT * FROM livenotify.unread_counts('uk_char', '{a,alice}');
-- Keys that are not the canonical form of a value are refused, for every type.
SELECT * FROM livenotify.catchup('uk_char', 'a ', 0);
SELECT * FROM livenotify.catchup('uk_char', 'alicebob', 0);
SELECT * FROM livenotify.unread_counts('uk_char', '{alice,"a "}');
SELECT id FROM livenotify.catchup('uk_int', '42', 0);
SELECT * FROM livenotify.catchup('uk_int', '042', 0);
SELECT * FROM livenotify.catchup('uk_int', ' 42', 0);
SELECT * FROM livenotify.catchup('uk_int', '+42', 0);
SELECT * FROM livenotify.catchup('uk_int', '42 ', 0);
SELECT * FROM livenotify.catchup('uk_int', 'forty-two', 0);
SELECT * FROM livenotify.unread_counts('uk_int', '{42,7}');
SELECT * FROM livenotify.unread_counts('uk_int', '{7,042}');
SELECT id FROM livenotify.catchup('uk_bigint', '8000000000', 0);
SELECT * FROM livenotify.catchup('uk_bigint', '08000000000', 0);
-- text: every string is its own canonical form; ' 42' is another user than '42'.
SELECT payload::json->>'user_id' AS user_id FROM livenotify.catchup('uk_text', '42', 0);
SELECT payload::json->>'user_id' AS user_id FROM livenotify.catchup('uk_text', ' 42', 0);
-- varchar(5): a longer key would be cut to five characters by the cast: refused.
SELECT count(*) FROM livenotify.catchup('uk_varchar', 'bob', 0);
SELECT * FROM livenotify.catchup('uk_varchar', 'bobbybob', 0);
-- uuid: lower case, as uuid_out prints it.
SELECT count(*) FROM livenotify.catchup('uk_uuid', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 0);
SELECT * FROM livenotify.catchup('uk_uuid', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 0);

-- The prepared query behind unread_counts() (what livenotifyd runs) counts nothing for a key
-- that is not canonical, even without the check in front of it.
SELECT livenotify.unread_counts_query('uk_int') AS q \gset
PREPARE counts(jsonb) AS :q;
EXECUTE counts('["42", "042", "+42", "42 "]');
DEALLOCATE counts;

-- A user key too long to queue: the row is not delivered, with one WARNING per statement
-- (not one per row).
SELECT last_seq AS base FROM livenotify.position() \gset
INSERT INTO uk_text (user_id, type) SELECT repeat('k', 10000), 'like' FROM generate_series(1, 3);
SELECT last_seq - :base AS new_entries FROM livenotify.position();

DROP TABLE uk_char, uk_int, uk_bigint, uk_text, uk_varchar, uk_uuid;
