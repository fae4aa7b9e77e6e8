/* livenotify--0.1--0.2.sql: ALTER EXTENSION livenotify UPDATE TO '0.2' */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION livenotify UPDATE TO '0.2'" to load this file. \quit

-- Each section below is the upgrade half of one change to livenotify--0.2.sql; a database
-- upgraded from 0.1 must end up with the same objects, grants and data as a fresh 0.2 install
-- (test/upgrade checks it).

-- ==== trust boundary and privileges ====
-- No internal function is executable by PUBLIC; register() and unregister() run as the
-- extension's owner after checking that the calling role owns the table; the sql_drop event
-- trigger runs as its owner (an ordinary role's DROP no longer fails); the cluster-wide
-- stats are for pg_read_all_stats.  CREATE OR REPLACE keeps each function's grants and
-- comment; SECURITY DEFINER comes with the new definitions.
REVOKE ALL ON FUNCTION livenotify._counts_changed(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION livenotify.capture_insert() FROM PUBLIC;
REVOKE ALL ON FUNCTION livenotify.capture_read() FROM PUBLIC;
REVOKE ALL ON FUNCTION livenotify.capture_truncate() FROM PUBLIC;
REVOKE ALL ON FUNCTION livenotify.rules_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION livenotify._column(regclass, name, text, regtype[]) FROM PUBLIC;

CREATE FUNCTION livenotify._require_owner(tbl regclass) RETURNS void
	AS 'MODULE_PATHNAME', 'livenotify_require_owner' LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION livenotify._require_owner(regclass) FROM PUBLIC;

CREATE OR REPLACE FUNCTION livenotify.register(
	tbl			regclass,
	user_column	name DEFAULT 'user_id',
	type_column	name DEFAULT 'type',
	id_column	name DEFAULT 'id',
	read_column	name DEFAULT NULL,
	skip_types	text[] DEFAULT '{event,message}',
	source		text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	kind	"char";
	src		text;
	other	text;
	u		smallint;
	t		smallint;
	i		smallint;
	r		smallint;
BEGIN
	PERFORM livenotify.check_loaded();
	PERFORM livenotify._require_owner(tbl);
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'tbl must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF skip_types IS NULL THEN
		RAISE EXCEPTION 'skip_types must not be NULL'
			USING ERRCODE = 'null_value_not_allowed', HINT = 'Pass ''{}'' to deliver every type.';
	END IF;
	IF array_position(skip_types, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'skip_types must not contain NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;

	SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = tbl;
	-- A regclass made from a number need not name a relation.
	IF kind IS NULL THEN
		RAISE EXCEPTION 'relation with OID % does not exist', tbl::oid
			USING ERRCODE = 'undefined_table';
	END IF;
	IF kind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '% is not a table', tbl
			USING ERRCODE = 'wrong_object_type',
			      DETAIL = format('It is a%s; livenotify captures rows inserted into tables.',
			                      CASE kind WHEN 'v' THEN ' view' WHEN 'm' THEN ' materialized view'
			                                WHEN 'S' THEN ' sequence' WHEN 'f' THEN ' foreign table'
			                                WHEN 'i' THEN 'n index' WHEN 'I' THEN 'n index'
			                                WHEN 'c' THEN ' composite type' ELSE ' relation' END);
	END IF;

	src := coalesce(source, (SELECT c.relname FROM pg_class c WHERE c.oid = tbl));
	IF src !~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$' THEN
		RAISE EXCEPTION 'invalid livenotify source name "%"', src
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'A source name has 1 to 63 characters: letters, digits, _ . - (not first).';
	END IF;
	IF EXISTS (SELECT 1 FROM livenotify.source_tables s WHERE s.source = src) THEN
		RAISE EXCEPTION 'livenotify source "%" is already registered', src
			USING ERRCODE = 'duplicate_object',
			      HINT = 'Pass another name as source, or livenotify.unregister() it first.';
	END IF;
	SELECT s.source INTO other FROM livenotify.source_tables s WHERE s.relid = tbl;
	IF FOUND THEN
		RAISE EXCEPTION 'table % is already registered as livenotify source "%"', tbl, other
			USING ERRCODE = 'duplicate_object';
	END IF;

	u := livenotify._column(tbl, user_column, 'user_column',
		'{smallint,integer,bigint,text,character varying,character,uuid}');
	t := livenotify._column(tbl, type_column, 'type_column', '{text,character varying,character}');
	i := livenotify._column(tbl, id_column, 'id_column', '{smallint,integer,bigint}');
	IF read_column IS NOT NULL THEN
		r := livenotify._column(tbl, read_column, 'read_column', '{boolean}');
	END IF;

	INSERT INTO livenotify.source_tables (source, relid, user_attnum, type_attnum, id_attnum,
	                                      read_attnum)
	VALUES (src, tbl, u, t, i, r);
	INSERT INTO livenotify.rules (source, type, action)
	SELECT DISTINCT src, x, 'skip' FROM unnest(skip_types) AS x;

	-- Trigger arguments: the source and column numbers, 0 for no read column (trigger.cpp).
	EXECUTE format('CREATE TRIGGER livenotify_capture AFTER INSERT ON %s FOR EACH ROW '
	               'EXECUTE FUNCTION livenotify.capture_insert(%L, %L, %L, %L, %L)',
	               tbl, src, u, t, i, coalesce(r, 0));
	-- With a read column, every committed change to a user's unread count queues an
	-- unread_count (trigger.cpp decides exactly whose count moved): a changed read or user
	-- column, a deleted unread row, a TRUNCATE (and, in capture_insert, a skipped unread row).
	-- No UPDATE OF column list: it would miss a change made by the app's own BEFORE UPDATE
	-- trigger (CREATE TRIGGER, "column-specific trigger"); the WHEN clause does the filtering.
	IF read_column IS NOT NULL THEN
		EXECUTE format('CREATE TRIGGER livenotify_read AFTER UPDATE ON %1$s FOR EACH ROW '
		               'WHEN (OLD.%2$I IS DISTINCT FROM NEW.%2$I '
		               'OR OLD.%3$I IS DISTINCT FROM NEW.%3$I) '
		               'EXECUTE FUNCTION livenotify.capture_read(%4$L, %5$L, %6$L)',
		               tbl, read_column, user_column, src, u, r);
		EXECUTE format('CREATE TRIGGER livenotify_delete AFTER DELETE ON %1$s FOR EACH ROW '
		               'WHEN (OLD.%2$I IS FALSE) '
		               'EXECUTE FUNCTION livenotify.capture_read(%3$L, %4$L, %5$L)',
		               tbl, read_column, src, u, r);
		EXECUTE format('CREATE TRIGGER livenotify_truncate AFTER TRUNCATE ON %s '
		               'FOR EACH STATEMENT EXECUTE FUNCTION livenotify.capture_truncate(%L)',
		               tbl, src);
	END IF;
	-- Readers that cache unread counts drop this source's at commit (registered anew, perhaps
	-- on another read or user column).
	PERFORM livenotify._counts_changed(src);
	RETURN src;
END
$$;

CREATE OR REPLACE FUNCTION livenotify.unregister(source text) RETURNS void LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s livenotify.source_tables;
	trg name;
BEGIN
	PERFORM livenotify.check_loaded();
	PERFORM livenotify._require_owner(
		(SELECT x.relid FROM livenotify.source_tables x WHERE x.source = unregister.source));
	IF source IS NULL THEN
		RAISE EXCEPTION 'source must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO s FROM livenotify.source_tables x WHERE x.source = unregister.source;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'livenotify source "%" is not registered', source
			USING ERRCODE = 'undefined_object';
	END IF;
	FOR trg IN
		SELECT t.tgname FROM pg_trigger t
		 WHERE t.tgrelid = s.relid
		   AND t.tgname IN ('livenotify_capture', 'livenotify_read', 'livenotify_delete',
		                    'livenotify_truncate')
	LOOP
		EXECUTE format('DROP TRIGGER %I ON %s', trg, s.relid);
	END LOOP;
	DELETE FROM livenotify.source_tables x WHERE x.source = unregister.source;
	PERFORM livenotify._counts_changed(source);
END
$$;

CREATE OR REPLACE FUNCTION livenotify.on_sql_drop() RETURNS event_trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	DELETE FROM livenotify.source_tables s
	 USING pg_event_trigger_dropped_objects() d
	 WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND s.relid::oid = d.objid;
END
$$;
REVOKE ALL ON FUNCTION livenotify.on_sql_drop() FROM PUBLIC;
-- Registering a table lets its owner publish to every user of the app (the daemon delivers
-- every source's rows), as send() does: like send(), register() is for the roles granted
-- EXECUTE on it (the app's role), and for those only on a table they own.
REVOKE ALL ON FUNCTION livenotify.register(regclass, name, name, name, name, text[], text)
	FROM PUBLIC;

REVOKE ALL ON livenotify.stats FROM PUBLIC;
REVOKE ALL ON FUNCTION livenotify.stats_raw() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION livenotify.stats_raw() TO pg_read_all_stats;
GRANT SELECT ON livenotify.stats TO pg_read_all_stats;

-- unread_counts_query(): the generated SQL names its operator OPERATOR(pg_catalog.=).
CREATE OR REPLACE FUNCTION livenotify.unread_counts_query(source text) RETURNS text LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s livenotify.sources;
	utype regtype;
	tbl text;
BEGIN
	PERFORM livenotify.check_loaded();
	s := livenotify._source(source);
	IF s.read_column IS NULL THEN
		RAISE EXCEPTION 'livenotify source "%" has no read column', s.source
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Register the table with read_column to count unread rows.';
	END IF;
	SELECT a.atttypid::regtype INTO utype FROM pg_attribute a
	 WHERE a.attrelid = s.relid AND a.attname = s.user_column;
	-- Schema-qualified, so the text means the same table under any search_path; the reader
	-- prepares it under its own, where an operator planted in an earlier schema would win an
	-- unqualified "=": OPERATOR(pg_catalog.=) (NOT and casts involve no operator lookup).
	SELECT format('%I.%I', n.nspname, c.relname) INTO tbl
	  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = s.relid;
	RETURN format(
		'SELECT u.k AS user_key,
		        (SELECT pg_catalog.count(*) FROM %1$s t
		          WHERE t.%2$I OPERATOR(pg_catalog.=) u.k::%3$s AND NOT t.%4$I) AS unread
		   FROM pg_catalog.jsonb_array_elements_text($1::pg_catalog.jsonb)
		        WITH ORDINALITY AS u(k, n)
		  ORDER BY u.n',
		tbl, s.user_column, utype::text, s.read_column);
END
$$;
