--
-- serialize: a captured row's payload is byte for byte row_to_json() of the stored row,
-- whatever its column types, the session's output settings and the schema changes the
-- table went through (the trigger writes the JSON itself from a per-table cache,
-- serialize.cpp; clients and catchup() rely on the two being the same).
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never

CREATE TYPE ser_mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN ser_text AS text;
CREATE DOMAIN ser_int AS integer CHECK (VALUE > 0);
CREATE TYPE ser_pair AS (a integer, b text);

CREATE TABLE ser_notification (
    id      bigserial PRIMARY KEY,
    user_id integer NOT NULL,
    type    varchar(50) NOT NULL,
    i2      smallint,
    i4      integer,
    i8      bigint,
    num     numeric,
    f4      real,
    f8      double precision,
    flag    boolean,
    txt     text,
    vc      varchar(40),
    ch      char(5),
    d       date,
    ts      timestamp,
    tstz    timestamptz,
    t       time,
    ttz     timetz,
    iv      interval,
    j       json,
    jb      jsonb,
    u       uuid,
    b       bytea,
    ip      inet,
    m       money,
    mood    ser_mood,
    dt      ser_text,
    di      ser_int,
    pair    ser_pair,
    ia      integer[],
    ta      text[],
    "odd ""key"" \ ü" text
);
-- Long values leave the row (TOAST pointers in the trigger's tuple).
ALTER TABLE ser_notification ALTER COLUMN txt SET STORAGE EXTERNAL,
                             ALTER COLUMN jb SET STORAGE EXTERNAL;
SELECT livenotify.register('ser_notification', skip_types => '{}');

-- Each entry after base: its payload against row_to_json() of the row it names.  A missing
-- row shows same as NULL.
CREATE FUNCTION ser_same(base bigint) RETURNS TABLE (n bigint, same boolean)
LANGUAGE sql AS $$
    SELECT r.seq - base, r.payload = row_to_json(src)::text
      FROM livenotify.read(base, 1000, 0) r
      LEFT JOIN ser_notification src ON src.id = (r.payload::json->>'id')::bigint
     ORDER BY r.seq
$$;

-- Insert a copy of rows first..last (every column but id), through the trigger.
CREATE FUNCTION ser_copy(first bigint, last bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    cols text;
BEGIN
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
      FROM pg_attribute
     WHERE attrelid = 'ser_notification'::regclass AND attnum > 0 AND NOT attisdropped
       AND attname <> 'id';
    EXECUTE format('INSERT INTO ser_notification (%1$s) SELECT %1$s FROM ser_notification '
                   'WHERE id BETWEEN %2$s AND %3$s ORDER BY id', cols, first, last);
END
$$;

SELECT last_seq AS base FROM livenotify.position() \gset

-- 1: ordinary values of every type.
INSERT INTO ser_notification VALUES (1, 1, 'like',
    1, 2, 3, 1.50, 1.5, 0.1, true, 'hello', 'v', 'ab',
    '2024-02-29', '2024-01-02 03:04:05.123456', '2024-06-01 12:00:00.000001+02',
    '23:59:59.999999', '12:00:00+05:30', '1 year 2 mons 3 days 04:05:06.789',
    '  { "a" :  [1, 2 ,3] ,"b":"\u00e9" , "a": 0 }  ',
    '{"b": 1, "a": [true, null, 1.50, "x\"y"], "c": {"d": []}}',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff10', '192.168.0.1/24', 12.34,
    'happy', 'dom"ain', 42, ROW(1, 'x"y'), '{1,NULL,3}', '{"a\"b",NULL,"c d"}', 'k');
-- 2: lowest numbers, not-a-number and infinities, every escape a string can need.
INSERT INTO ser_notification VALUES (2, 2, 'like',
    -32768, -2147483648, -9223372036854775808, 'NaN', 'Infinity', '-Infinity', false,
    E'quote " backslash \\ slash / tab \t nl \n cr \r bs \b ff \f ctl \x01 \x1f del \x7f',
    'ünïcödé 日本 😀', '', 'infinity', 'infinity', 'infinity',
    '00:00', '00:00:00-12', '-1 day -00:00:01', 'null', '"just a string"',
    '00000000-0000-0000-0000-000000000000', '\x', '::1', -0.01,
    'sad', '', 1, ROW(NULL, NULL), '{{1,2},{3,4}}', '{}', E'\u00fc "\\"');
-- 3: highest numbers, big numeric, -0, minus infinities.
INSERT INTO ser_notification VALUES (3, 3, 'like',
    32767, 2147483647, 9223372036854775807,
    123456789012345678901234567890.123456789012345678901234567890, 'NaN', '-0', NULL,
    'x', NULL, 'abcde', '-infinity', '-infinity', '-infinity',
    '12:34:56.5', '23:59:59.999999+14', '178000000 years', '12.50', '[1, "two", {"3": 3.0}]',
    NULL, '\xdeadbeef', '10.0.0.0/8', 0,
    'ok', NULL, 2147483647, ROW(-1, ''), '{}', '{"",NULL," "}', '');
-- 4: tiny numbers, BC dates, escapes inside json and jsonb.
INSERT INTO ser_notification VALUES (4, 4, 'like',
    0, 0, 0, -0.000000000000000000001, 1.17549435e-38, 1e300, true,
    '', '', NULL, '4713-01-01 BC', '0044-03-15 12:00:00 BC', '0001-01-01 00:00:00+00 BC',
    '00:00:00.000001', '00:00:00.000001+00', '-0.000001 seconds',
    '"esc \" \\ \u0041 \ud83d\ude00"', '{"k\"ey": "v\nal\u0001", "n": -1.0e10, "e": 1e-7}',
    NULL, NULL, NULL, NULL, NULL, E'tab\there', NULL, NULL, NULL, NULL, NULL);
-- 5: other extremes; numeric and float4 -Infinity.
INSERT INTO ser_notification VALUES (5, 5, 'like',
    NULL, NULL, NULL, '-Infinity', '-Infinity', 5e-324, NULL,
    NULL, NULL, NULL, '2000-01-01', '2000-01-01 00:00:00', '2000-01-01 00:00:00+00',
    NULL, NULL, NULL, '{}', '{}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL);
INSERT INTO ser_notification (id, user_id, type, num, f4, f8)
VALUES (6, 6, 'like', 'Infinity', 3.4028235e38, 1.7976931348623157e308),
       (7, 7, 'like', 1e-1000, 1e-45, 123456789.123456789);
-- 8: NULL in every column that allows it.
INSERT INTO ser_notification (id, user_id, type) VALUES (8, 8, 'like');
-- 9: every control character and values long enough to be stored out of line.
INSERT INTO ser_notification (id, user_id, type, txt, vc, jb)
SELECT 9, 9, 'like', string_agg(chr(i), '') || repeat('long "text" \ ', 200) ||
       -- an escape at every offset of a 16-byte block, between multibyte characters
       (SELECT string_agg(repeat('a', j) || '"' || repeat('é', j % 3) || '\' || chr(1 + j % 31), '')
          FROM generate_series(0, 17) j),
       chr(127),
       jsonb_build_object('long', repeat('é"\', 600), 'ctl', string_agg(chr(i), ''))
  FROM generate_series(1, 31) i;
SELECT setval('ser_notification_id_seq', 9);

SELECT * FROM ser_same(:base);
-- What a reviewer would see on the wire, for three rows.
SELECT seq - :base AS n, payload FROM livenotify.read(:base, 1000, 0)
 WHERE seq - :base IN (1, 3, 8) ORDER BY seq;

-- The same rows under other output settings (the trigger renders them anew under each).
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'sql_standard';
SET TimeZone = 'Asia/Kathmandu';
SET extra_float_digits = 0;
SET bytea_output = 'escape';
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT ser_copy(1, 9);
SELECT * FROM ser_same(:base);
SELECT payload FROM livenotify.read(:base, 1, 0);

SET DateStyle = 'German, YMD';
SET IntervalStyle = 'iso_8601';
SET TimeZone = 'America/St_Johns';
SET extra_float_digits = -15;
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT ser_copy(1, 9);
SELECT * FROM ser_same(:base);
RESET DateStyle;
RESET IntervalStyle;
RESET TimeZone;
RESET extra_float_digits;
RESET bytea_output;

-- Schema changes take effect at the next row (the cache above is warm).
-- A new column, with a default.
ALTER TABLE ser_notification ADD COLUMN added text DEFAULT 'dflt';
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT ser_copy(1, 2);
SELECT * FROM ser_same(:base);
SELECT payload::jsonb->'added' AS added FROM livenotify.read(:base, 1, 0);

-- A column dropped in the middle of the table.
ALTER TABLE ser_notification DROP COLUMN f4;
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT ser_copy(1, 2);
SELECT * FROM ser_same(:base);
SELECT payload::jsonb ? 'f4' AS has_f4, payload::jsonb ? 'f8' AS has_f8
  FROM livenotify.read(:base, 1, 0);

-- A renamed column.
ALTER TABLE ser_notification RENAME COLUMN txt TO body;
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT ser_copy(1, 2);
SELECT * FROM ser_same(:base);
SELECT payload::jsonb ? 'txt' AS has_txt, payload::jsonb->'body' AS body
  FROM livenotify.read(:base, 1, 0);

-- Columns of another type: numeric to text (a number becomes a string), json to jsonb
-- (whitespace and duplicate keys go), an int to a domain over text.
ALTER TABLE ser_notification ALTER COLUMN num TYPE text,
                             ALTER COLUMN j TYPE jsonb USING j::jsonb,
                             ALTER COLUMN i4 TYPE ser_text;
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT ser_copy(1, 3);
SELECT * FROM ser_same(:base);
SELECT json_typeof(payload::json->'num') AS num, payload::json->'j' AS j,
       json_typeof(payload::json->'i4') AS i4
  FROM livenotify.read(:base, 1, 0);

-- Changes between rows of one transaction.  The table is not what it was when the first two
-- rows went in, so each row's row_to_json() is taken right after its INSERT.
BEGIN;
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT ser_copy(1, 1);
SELECT row_to_json(s)::text AS expect1 FROM ser_notification s ORDER BY id DESC LIMIT 1 \gset
ALTER TABLE ser_notification ADD COLUMN late integer DEFAULT 7, DROP COLUMN added;
SELECT ser_copy(1, 1);
SELECT row_to_json(s)::text AS expect2 FROM ser_notification s ORDER BY id DESC LIMIT 1 \gset
ALTER TABLE ser_notification DROP COLUMN late;
SELECT ser_copy(1, 1);
SELECT row_to_json(s)::text AS expect3 FROM ser_notification s ORDER BY id DESC LIMIT 1 \gset
COMMIT;
SELECT seq - :base AS n,
       payload = (ARRAY[:'expect1', :'expect2', :'expect3'])[seq - :base] AS same,
       payload::jsonb->'late' AS late, payload::jsonb ? 'added' AS has_added
  FROM livenotify.read(:base, 10, 0) ORDER BY seq;

-- A cast to json changes how row_to_json() writes a non-built-in type (here the enum), and
-- dropping it changes it back, with no change to the table.  The first row caches the table
-- with the enum written as its label.
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT ser_copy(1, 1);
SELECT * FROM ser_same(:base);
CREATE FUNCTION ser_mood_json(ser_mood) RETURNS json LANGUAGE sql IMMUTABLE
AS $$ SELECT json_build_object('mood', $1::text) $$;
CREATE CAST (ser_mood AS json) WITH FUNCTION ser_mood_json(ser_mood);
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT ser_copy(1, 3);
SELECT * FROM ser_same(:base);
SELECT payload::json->'mood' AS mood FROM livenotify.read(:base, 1, 0);
DROP CAST (ser_mood AS json);
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT ser_copy(1, 1);
SELECT * FROM ser_same(:base);
SELECT payload::json->'mood' AS mood FROM livenotify.read(:base, 1, 0);

SELECT livenotify.unregister('ser_notification');
DROP TABLE ser_notification;
DROP FUNCTION ser_same(bigint), ser_copy(bigint, bigint), ser_mood_json(ser_mood);
DROP TYPE ser_pair;
DROP DOMAIN ser_int;
DROP DOMAIN ser_text;
DROP TYPE ser_mood;
