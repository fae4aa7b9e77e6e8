--
-- search_path_operator: the SQL text unread_counts_query() returns is prepared by the reader
-- under its own search_path, where anyone with CREATE on a schema in it may have planted an
-- operator that beats pg_catalog's (an exact match in an earlier schema wins).  The text
-- names every operator as OPERATOR(pg_catalog....), so a planted "=" is never called.
-- (catchup() and unread_counts() run their generated SQL inside the function, under its
-- fixed search_path = pg_catalog, pg_temp, where pg_catalog's operators come first.)
--
\set SHOW_CONTEXT never
CREATE SCHEMA regress_planted;
CREATE FUNCTION regress_planted.eq(integer, integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'planted operator called';
END $$;
CREATE OPERATOR regress_planted.= (LEFTARG = integer, RIGHTARG = integer,
                                   FUNCTION = regress_planted.eq);
-- Rows to compare (rolled back at the end).
BEGIN;
SET LOCAL livenotify.enabled = off;
INSERT INTO api_notification (user_id, type, title, message)
    VALUES (8801, 'like', 'sp1', ''), (8801, 'like', 'sp2', ''), (8802, 'like', 'sp3', '');
SET search_path = regress_planted, pg_catalog, public;
-- The planted operator does win an unqualified "=" under this search_path.
SAVEPOINT s;
SELECT 1 = 1;
ROLLBACK TO s;
SELECT livenotify.unread_counts_query('api_notification') AS q \gset
PREPARE planted_counts(jsonb) AS :q;
EXECUTE planted_counts('["8801", "8802", "999999"]');
DEALLOCATE planted_counts;
SELECT * FROM livenotify.unread_counts('api_notification', '{8801}');
SELECT count(*) FROM livenotify.catchup('api_notification', '8801', 0);
ROLLBACK;
DROP SCHEMA regress_planted CASCADE;
