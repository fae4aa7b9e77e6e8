/* livenotify--0.1--0.2.sql: ALTER EXTENSION livenotify UPDATE TO '0.2' */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION livenotify UPDATE TO '0.2'" to load this file. \quit

-- Each section below is the upgrade half of one change to livenotify--0.2.sql; a database
-- upgraded from 0.1 must end up with the same objects, grants and data as a fresh 0.2 install
-- (test/upgrade checks it).

-- ==== column identity and one user key (issue 11, sections 3 and 4) ====
-- Registrations know their columns by name, triggers carry only the source name (0.1 kept
-- attribute numbers in both: a restored table without its dropped columns, or a partition with
-- another column order, delivered rows to the wrong user).  The 0.1 rows are migrated by their
-- numbers, which are right in the cluster being updated; then every source's triggers are made
-- anew.

-- A 0.1 registration whose column was dropped since has nothing to migrate to.
DO $$
DECLARE
	bad text;
BEGIN
	SELECT string_agg(s.source, ', ' ORDER BY s.source) INTO bad
	  FROM livenotify.source_tables s
	 WHERE EXISTS (SELECT 1
	                 FROM unnest(ARRAY[s.user_attnum, s.type_attnum, s.id_attnum,
	                                   nullif(s.read_attnum, 0)]) AS n(num)
	                WHERE n.num IS NOT NULL
	                  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
	                                   WHERE a.attrelid = s.relid AND a.attnum = n.num
	                                     AND NOT a.attisdropped));
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'livenotify sources % name a column that was dropped', bad
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Their rows were not captured since; livenotify.unregister() them, update, and register them again.';
	END IF;
END
$$;

ALTER TABLE livenotify.source_tables
	ADD COLUMN user_column name, ADD COLUMN type_column name, ADD COLUMN id_column name,
	ADD COLUMN read_column name;
UPDATE livenotify.source_tables s
   SET user_column = (SELECT a.attname FROM pg_catalog.pg_attribute a
                       WHERE a.attrelid = s.relid AND a.attnum = s.user_attnum),
       type_column = (SELECT a.attname FROM pg_catalog.pg_attribute a
                       WHERE a.attrelid = s.relid AND a.attnum = s.type_attnum),
       id_column = (SELECT a.attname FROM pg_catalog.pg_attribute a
                     WHERE a.attrelid = s.relid AND a.attnum = s.id_attnum),
       read_column = (SELECT a.attname FROM pg_catalog.pg_attribute a
                       WHERE a.attrelid = s.relid AND a.attnum = s.read_attnum);
ALTER TABLE livenotify.source_tables
	ALTER COLUMN user_column SET NOT NULL, ALTER COLUMN type_column SET NOT NULL,
	ALTER COLUMN id_column SET NOT NULL;

-- Same columns as 0.1's view (whose rowtype _source() and others use), now from the names.
CREATE OR REPLACE VIEW livenotify.sources AS
SELECT s.source, s.relid, s.user_column, s.type_column, s.id_column, s.read_column
  FROM livenotify.source_tables s;

CREATE TRIGGER source_tables_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON livenotify.source_tables
	FOR EACH STATEMENT EXECUTE FUNCTION livenotify.rules_changed();

-- The types each column of a source may have (the capture triggers read them so: trigger.cpp).
CREATE FUNCTION livenotify._column_types(argname text) RETURNS regtype[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT CASE argname
	       WHEN 'user_column' THEN '{smallint,integer,bigint,text,character varying,character,uuid}'
	       WHEN 'type_column' THEN '{text,character varying,character}'
	       WHEN 'id_column' THEN '{smallint,integer,bigint}'
	       WHEN 'read_column' THEN '{boolean}' END::regtype[]
$$;

-- BEFORE INSERT OR UPDATE on source_tables: the attribute numbers follow the names, checked
-- as register() checks them.  A row restored from a dump gets this cluster's numbers.
CREATE FUNCTION livenotify._source_columns() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	NEW.user_attnum := livenotify._column(NEW.relid, NEW.user_column, 'user_column',
	                                      livenotify._column_types('user_column'));
	NEW.type_attnum := livenotify._column(NEW.relid, NEW.type_column, 'type_column',
	                                      livenotify._column_types('type_column'));
	NEW.id_attnum := livenotify._column(NEW.relid, NEW.id_column, 'id_column',
	                                    livenotify._column_types('id_column'));
	NEW.read_attnum := CASE WHEN NEW.read_column IS NOT NULL THEN
		livenotify._column(NEW.relid, NEW.read_column, 'read_column',
		                   livenotify._column_types('read_column')) END;
	RETURN NEW;
END
$$;
CREATE TRIGGER source_columns BEFORE INSERT OR UPDATE ON livenotify.source_tables
	FOR EACH ROW EXECUTE FUNCTION livenotify._source_columns();

-- The capture triggers of a source (register(); the 0.1 -> 0.2 update recreates them).
CREATE FUNCTION livenotify._install_triggers(tbl regclass, source text, with_read boolean)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- The only trigger argument is the source name: the triggers find the columns by name in
	-- the relation they fire on (trigger.cpp), so partitions with another column order,
	-- restored tables and renamed or retyped columns route every row to its user.
	EXECUTE format('CREATE TRIGGER livenotify_capture AFTER INSERT ON %s FOR EACH ROW '
	               'EXECUTE FUNCTION livenotify.capture_insert(%L)', tbl, source);
	-- Every deleted row: an unread one changes a count, and a row moved to another partition
	-- by an UPDATE is deleted here and inserted there (not a new notification: trigger.cpp).
	EXECUTE format('CREATE TRIGGER livenotify_delete AFTER DELETE ON %s FOR EACH ROW '
	               'EXECUTE FUNCTION livenotify.capture_read(%L)', tbl, source);
	-- With a read column, every committed change to a user's unread count queues an
	-- unread_count (trigger.cpp decides exactly whose count moved): a changed read or user
	-- column, a deleted unread row, a TRUNCATE (and, in capture_insert, a skipped unread row).
	-- No UPDATE OF column list: it would miss a change made by the app's own BEFORE UPDATE
	-- trigger (CREATE TRIGGER, "column-specific trigger"); and no WHEN clause: ALTER COLUMN
	-- TYPE refuses a column that a trigger's WHEN uses (Django's BigAutoField migration).
	IF with_read THEN
		EXECUTE format('CREATE TRIGGER livenotify_read AFTER UPDATE ON %s FOR EACH ROW '
		               'EXECUTE FUNCTION livenotify.capture_read(%L)', tbl, source);
		EXECUTE format('CREATE TRIGGER livenotify_truncate AFTER TRUNCATE ON %s '
		               'FOR EACH STATEMENT EXECUTE FUNCTION livenotify.capture_truncate(%L)',
		               tbl, source);
	END IF;
END
$$;

-- A registration follows its columns through the table's life; what it cannot follow is
-- refused by the DDL that would break it, never found at INSERT time.  Both functions run as
-- the extension's owner: they read and write livenotify.source_tables for any table owner.

-- DROP of a registered column (ALTER TABLE DROP COLUMN, DROP TYPE ... CASCADE, on the table
-- or on a partitioned table above it): refused.  Known by name (address_names ends with the
-- column's), as the registration knows its columns.
CREATE FUNCTION livenotify.on_column_drop() RETURNS event_trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s record;
BEGIN
	SELECT x.source, x.relid, r.role, r.col INTO s
	  FROM pg_event_trigger_dropped_objects() d
	  JOIN livenotify.source_tables x ON x.relid::oid = d.objid
	 CROSS JOIN LATERAL (VALUES (1, 'user', x.user_column), (2, 'type', x.type_column),
	                            (3, 'id', x.id_column), (4, 'read', x.read_column)) AS r(n, role, col)
	 WHERE d.classid = 'pg_class'::regclass AND d.objsubid <> 0
	   AND d.address_names[cardinality(d.address_names)] = r.col
	 ORDER BY r.n
	 LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'cannot drop column "%" of table %: it is the % column of livenotify source "%"',
			s.col, s.relid, s.role, s.source
			USING ERRCODE = 'dependent_objects_still_exist',
			      HINT = format('Unregister the source first: SELECT livenotify.unregister(%L);',
			                    s.source);
	END IF;
END
$$;
CREATE EVENT TRIGGER livenotify_column_drop ON sql_drop
	EXECUTE FUNCTION livenotify.on_column_drop();

-- After ALTER TABLE: a renamed column's new name is written back (the numbers do not
-- change), and a registered column retyped to a type the triggers cannot read is refused.
-- Every source is checked: an ALTER of a partitioned table reaches the partitions below it,
-- which may be registered themselves.
CREATE FUNCTION livenotify.on_alter_table() RETURNS event_trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s livenotify.source_tables;
	c record;
	renamed boolean;
BEGIN
	FOR s IN SELECT * FROM livenotify.source_tables LOOP
		-- Numbers that do not match the names (a data-only restore with triggers disabled
		-- copies another cluster's): derive them from the names again before using them.
		IF EXISTS (SELECT 1
		             FROM (VALUES (s.user_attnum, s.user_column), (s.type_attnum, s.type_column),
		                          (s.id_attnum, s.id_column), (s.read_attnum, s.read_column))
		                  AS r(num, registered)
		             JOIN pg_attribute a ON a.attrelid = s.relid AND a.attname = r.registered
		                                AND NOT a.attisdropped
		            WHERE a.attnum <> r.num) THEN
			UPDATE livenotify.source_tables x SET relid = x.relid WHERE x.source = s.source
			RETURNING * INTO s;
		END IF;
		renamed := false;
		FOR c IN
			SELECT r.role, r.registered, a.attname, a.atttypid::regtype AS typ
			  FROM (VALUES ('user', s.user_attnum, s.user_column),
			               ('type', s.type_attnum, s.type_column),
			               ('id', s.id_attnum, s.id_column),
			               ('read', s.read_attnum, s.read_column)) AS r(role, num, registered)
			  JOIN pg_attribute a ON a.attrelid = s.relid AND a.attnum = r.num
			                     AND NOT a.attisdropped
		LOOP
			IF NOT c.typ = ANY (livenotify._column_types(c.role || '_column')) THEN
				RAISE EXCEPTION 'cannot change the type of column "%" of table % to %: it is the % column of livenotify source "%"',
					c.attname, s.relid, c.typ, c.role, s.source
					USING ERRCODE = 'datatype_mismatch',
					      DETAIL = format('The %s column must have one of the types %s.', c.role,
					                      array_to_string(livenotify._column_types(c.role || '_column')::text[], ', ')),
					      HINT = format('Unregister the source first: SELECT livenotify.unregister(%L);',
					                    s.source);
			END IF;
			-- A rename: the number's name changed and the registered name is gone.
			renamed := renamed OR (c.attname <> c.registered AND NOT EXISTS (
				SELECT 1 FROM pg_attribute a
				 WHERE a.attrelid = s.relid AND a.attname = c.registered AND NOT a.attisdropped));
		END LOOP;
		IF renamed THEN
			UPDATE livenotify.source_tables x
			   SET user_column = (SELECT a.attname FROM pg_attribute a
			                       WHERE a.attrelid = x.relid AND a.attnum = x.user_attnum),
			       type_column = (SELECT a.attname FROM pg_attribute a
			                       WHERE a.attrelid = x.relid AND a.attnum = x.type_attnum),
			       id_column = (SELECT a.attname FROM pg_attribute a
			                     WHERE a.attrelid = x.relid AND a.attnum = x.id_attnum),
			       read_column = (SELECT a.attname FROM pg_attribute a
			                       WHERE a.attrelid = x.relid AND a.attnum = x.read_attnum)
			 WHERE x.source = s.source;
		END IF;
	END LOOP;
END
$$;
CREATE EVENT TRIGGER livenotify_alter_table ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
	EXECUTE FUNCTION livenotify.on_alter_table();
-- Internal: register() and the update call it; the others are (event) trigger functions.
REVOKE ALL ON FUNCTION livenotify._install_triggers(regclass, text, boolean),
                       livenotify._source_columns(), livenotify.on_column_drop(),
                       livenotify.on_alter_table() FROM PUBLIC;

CREATE OR REPLACE FUNCTION livenotify._source(source text) RETURNS livenotify.sources
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s livenotify.sources;
BEGIN
	IF source IS NULL THEN
		RAISE EXCEPTION 'source must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO s FROM livenotify.sources x WHERE x.source = _source.source;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'livenotify source "%" is not registered', source
			USING ERRCODE = 'undefined_object';
	END IF;
	-- The event triggers keep the names right and refuse dropping a registered column; with
	-- event triggers disabled (session_replication_role = replica) a name may be stale.
	IF (SELECT count(*) FROM pg_attribute a
	     WHERE a.attrelid = s.relid AND NOT a.attisdropped
	       AND a.attname IN (s.user_column, s.type_column, s.id_column, s.read_column))
	   < (SELECT count(DISTINCT n) FROM unnest(ARRAY[s.user_column, s.type_column, s.id_column,
	                                                  s.read_column]) AS n) THEN
		RAISE EXCEPTION 'a column of livenotify source "%" is missing from table %',
			s.source, s.relid
			USING ERRCODE = 'undefined_column',
			      HINT = 'Unregister the source and register it again with existing columns.';
	END IF;
	RETURN s;
END
$$;

-- One user key (the ::text form) for catch-up and counts, as for live entries and the daemon.
-- The type of the user column, with its modifier (char(5), not char(1)), as SQL spells it.
CREATE FUNCTION livenotify._user_key_type(s livenotify.sources) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
	SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
	 WHERE a.attrelid = s.relid AND a.attname = s.user_column AND NOT a.attisdropped
$$;

-- The type of the user column, after checking that every key is a user key: the ::text form of
-- a value of that type (docs/sql-api.md, "User keys").  A key that casts but does not come
-- back the same ('042' for an integer, 'a ' or a longer string for char(5), upper-case uuid)
-- would name a user under another key than live entries and the daemon's groups use.
CREATE OR REPLACE FUNCTION livenotify._check_user_keys(s livenotify.sources, user_keys text[])
RETURNS regtype LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	utype regtype;
	ftype text := livenotify._user_key_type(s);
	bad text;
	printed text;
BEGIN
	SELECT a.atttypid::regtype INTO utype FROM pg_attribute a
	 WHERE a.attrelid = s.relid AND a.attname = s.user_column;
	BEGIN
		EXECUTE format('SELECT $1::%s[]', ftype) USING user_keys;
	EXCEPTION WHEN data_exception THEN
		-- Name the first bad key (the array cast's message does not).
		FOR i IN 1 .. cardinality(user_keys) LOOP
			BEGIN
				EXECUTE format('SELECT $1::%s', ftype) USING user_keys[i];
			EXCEPTION WHEN data_exception THEN
				bad := user_keys[i];
				EXIT;
			END;
		END LOOP;
		RAISE EXCEPTION 'user key "%" is not a valid % for livenotify source "%"',
			bad, utype, s.source
			USING ERRCODE = 'invalid_text_representation',
			      DETAIL = format('Column %I of %s has type %s.', s.user_column, s.relid, ftype);
	END;
	EXECUTE format('SELECT k, k::%s::text FROM unnest($1) AS k WHERE k::%s::text <> k LIMIT 1',
	               ftype, ftype)
	   INTO bad, printed USING user_keys;
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'user key "%" is not in canonical form for livenotify source "%"',
			bad, s.source
			USING ERRCODE = 'invalid_text_representation',
			      DETAIL = format('Column %I of %s has type %s, which reads it as "%s".',
			                      s.user_column, s.relid, ftype, printed),
			      HINT = 'A user key is the user column''s value as PostgreSQL prints it (::text).';
	END IF;
	RETURN utype;
END
$$;

CREATE OR REPLACE FUNCTION livenotify.catchup(source text, user_key text, after_id bigint,
                                   max_rows integer DEFAULT 100)
RETURNS TABLE (id bigint, payload text) LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s livenotify.sources;
BEGIN
	PERFORM livenotify.check_loaded();
	s := livenotify._source(source);
	IF user_key IS NULL OR after_id IS NULL OR max_rows IS NULL THEN
		RAISE EXCEPTION 'user_key, after_id and max_rows of livenotify.catchup() must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF max_rows < 1 OR max_rows > 10000 THEN
		RAISE EXCEPTION 'max_rows must be between 1 and 10000, got %', max_rows
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM livenotify._check_user_keys(s, ARRAY[user_key]);

	-- Same JSON, same rules and same stub as the live stream (trigger.cpp).  The key is
	-- canonical (checked above), so comparing as the column's type (the index's) is comparing
	-- the ::text forms.
	RETURN QUERY EXECUTE format(
		'SELECT t.%1$I::bigint,
		        CASE WHEN octet_length(j.j) > $4
		             THEN ''{"id":'' || t.%1$I || '',"truncated":true}''
		             ELSE j.j END
		   FROM %2$s t CROSS JOIN LATERAL (SELECT row_to_json(t)::text) AS j(j)
		  WHERE t.%3$I = $1::%4$s AND t.%1$I > $2
		    AND coalesce((SELECT r.action = ''deliver'' FROM livenotify.rules r
		                   WHERE r.source = $5 AND r.type = coalesce(t.%5$I::text, '''')),
		                 (SELECT r.action = ''deliver'' FROM livenotify.rules r
		                   WHERE r.source = $5 AND r.type = ''*''),
		                 true)
		  ORDER BY t.%1$I
		  LIMIT $3',
		s.id_column, s.relid, s.user_column, livenotify._user_key_type(s), s.type_column)
	USING user_key, after_id, max_rows, livenotify.max_payload(), s.source;
END
$$;

-- Every source's triggers anew, with the source name as their only argument (and no WHEN
-- clause, which kept the user and read columns from being retyped).
DO $$
DECLARE
	s livenotify.source_tables;
	trg name;
BEGIN
	FOR s IN SELECT * FROM livenotify.source_tables ORDER BY source LOOP
		FOR trg IN
			SELECT t.tgname FROM pg_catalog.pg_trigger t
			 WHERE t.tgrelid = s.relid AND t.tgparentid = 0
			   AND t.tgname IN ('livenotify_capture', 'livenotify_read', 'livenotify_delete',
			                    'livenotify_truncate')
		LOOP
			EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', trg, s.relid);
		END LOOP;
		PERFORM livenotify._install_triggers(s.relid, s.source, s.read_column IS NOT NULL);
	END LOOP;
END
$$;
-- register() and unread_counts_query() get their 0.2 definitions in the trust boundary
-- section below (SECURITY DEFINER, qualified operators, names instead of numbers).

-- ==== bulk loads, rules cache snapshot, writes without preload (issue 11) ====

-- Without shared_preload_libraries the capture triggers and rules_changed warn once per
-- session and do nothing; this counts what they skipped.
CREATE FUNCTION livenotify.skipped_not_loaded() RETURNS bigint
	AS 'MODULE_PATHNAME', 'livenotify_skipped_not_loaded' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION livenotify.skipped_not_loaded() IS
	'Trigger calls of this session that queued nothing because livenotify is not preloaded';

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

	-- Checked in this order, with these messages, by livenotify._source_columns().
	INSERT INTO livenotify.source_tables (source, relid, user_column, type_column, id_column,
	                                      read_column)
	VALUES (src, tbl, user_column, type_column, id_column, read_column);
	INSERT INTO livenotify.rules (source, type, action)
	SELECT DISTINCT src, x, 'skip' FROM unnest(skip_types) AS x;

	PERFORM livenotify._install_triggers(tbl, src, read_column IS NOT NULL);
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
	utype text;
	tbl text;
BEGIN
	PERFORM livenotify.check_loaded();
	s := livenotify._source(source);
	IF s.read_column IS NULL THEN
		RAISE EXCEPTION 'livenotify source "%" has no read column', s.source
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Register the table with read_column to count unread rows.';
	END IF;
	utype := livenotify._user_key_type(s);
	-- Schema-qualified, so the text means the same table under any search_path; the reader
	-- prepares it under its own, where an operator planted in an earlier schema would win an
	-- unqualified "=": OPERATOR(pg_catalog.=) (NOT and casts involve no operator lookup).
	SELECT format('%I.%I', n.nspname, c.relname) INTO tbl
	  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = s.relid;
	RETURN format(
		'SELECT u.k AS user_key,
		        CASE WHEN u.k::%3$s::pg_catalog.text OPERATOR(pg_catalog.=) u.k
		             THEN (SELECT pg_catalog.count(*) FROM %1$s t
		                    WHERE t.%2$I OPERATOR(pg_catalog.=) u.k::%3$s AND NOT t.%4$I)
		             ELSE 0 END AS unread
		   FROM pg_catalog.jsonb_array_elements_text($1::pg_catalog.jsonb)
		        WITH ORDINALITY AS u(k, n)
		  ORDER BY u.n',
		tbl, s.user_column, utype, s.read_column);
END
$$;

-- ==== resume cursors (gap-free resume when ids commit out of order) ====
-- What this session's last read() covered (extension/inflight.cpp): NULLs unless it read to
-- the end of the ring.  Every transaction whose top-level xid is below xmin had all its
-- entries returned by that read() or an earlier one; every entry returned belongs to a
-- transaction whose xids are all below xmax.
CREATE FUNCTION livenotify.read_horizon(OUT xmin xid8, OUT xmax xid8)
RETURNS record AS 'MODULE_PATHNAME', 'livenotify_read_horizon' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION livenotify.read_horizon() IS
	'Horizon of this session''s last livenotify.read(): rows of transactions below xmin were all read';
REVOKE ALL ON FUNCTION livenotify.read_horizon() FROM PUBLIC;

-- Which history a cursor belongs to: a standby shares its primary's system identifier, and
-- promotion starts a new timeline.
CREATE FUNCTION livenotify.origin(OUT system_identifier text, OUT timeline integer)
RETURNS record AS 'MODULE_PATHNAME', 'livenotify_origin' LANGUAGE C STABLE;
COMMENT ON FUNCTION livenotify.origin() IS
	'System identifier and timeline: a resume cursor from another one is not trusted';
-- As PostgreSQL's own pg_control_system(): not for PUBLIC.
REVOKE ALL ON FUNCTION livenotify.origin() FROM PUBLIC;

-- The rows of a user that a tab resuming with a cursor has not had: every row whose xmin
-- (as xid8) is at or above horizon, except the ids in had_ids.  Rows with xmin below horizon
-- were committed, and read, before the cursor was made (read_horizon()).  Keyset pages:
-- id > after_id, in id order.  Same JSON, rules and stub as catchup().
CREATE FUNCTION livenotify.catchup_cursor(source text, user_key text, horizon xid8,
                                          had_ids bigint[], after_id bigint,
                                          max_rows integer DEFAULT 100)
RETURNS TABLE (id bigint, payload text) LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s livenotify.sources;
	next_xid bigint;
	h bigint;
BEGIN
	PERFORM livenotify.check_loaded();
	s := livenotify._source(source);
	IF user_key IS NULL OR horizon IS NULL OR had_ids IS NULL OR after_id IS NULL
	   OR max_rows IS NULL THEN
		RAISE EXCEPTION 'user_key, horizon, had_ids, after_id and max_rows of livenotify.catchup_cursor() must not be NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF max_rows < 1 OR max_rows > 10000 THEN
		RAISE EXCEPTION 'max_rows must be between 1 and 10000, got %', max_rows
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF cardinality(had_ids) > 64 OR array_position(had_ids, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'had_ids must hold at most 64 ids and no NULL, got % elements',
			cardinality(had_ids)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- The next xid of this snapshot: an xmin of a visible row is below it.
	next_xid := pg_snapshot_xmax(pg_current_snapshot())::text::bigint;
	h := horizon::text::bigint;
	-- A horizon this server has not reached comes from another history (a crash that lost
	-- transactions, a restored backup): it cannot tell what was read.
	IF h > next_xid THEN
		RAISE EXCEPTION 'cursor horizon % is ahead of this server''s next transaction id', horizon
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('The next transaction id is %s.', next_xid),
			      HINT = 'The cursor was made on another history of this database: resync.';
	END IF;
	-- The key is canonical (checked here), so comparing as the column's type (the index's) is
	-- comparing the ::text forms, as catchup() does.
	PERFORM livenotify._check_user_keys(s, ARRAY[user_key]);

	-- xmin is 32 bits: widen it against next_xid (a visible row's xmin precedes it).  0, 1
	-- and 2 (invalid, bootstrap, frozen) are older than any horizon.  A row whose xmin is
	-- more than 2^32 xids old widens too high: it is returned again, never skipped.
	RETURN QUERY EXECUTE format(
		'SELECT t.%1$I::bigint,
		        CASE WHEN octet_length(j.j) > $4
		             THEN ''{"id":'' || t.%1$I || '',"truncated":true}''
		             ELSE j.j END
		   FROM %2$s t CROSS JOIN LATERAL (SELECT row_to_json(t)::text) AS j(j)
		        CROSS JOIN LATERAL (SELECT t.xmin::text::bigint) AS x(x)
		  WHERE t.%3$I = $1::%4$s AND t.%1$I > $2 AND t.%1$I <> ALL ($6)
		    AND x.x > 2
		    AND ((($7 >> 32) << 32) + x.x
		         - CASE WHEN x.x > ($7 & 4294967295) THEN 4294967296 ELSE 0 END) >= $8
		    AND coalesce((SELECT r.action = ''deliver'' FROM livenotify.rules r
		                   WHERE r.source = $5 AND r.type = coalesce(t.%5$I::text, '''')),
		                 (SELECT r.action = ''deliver'' FROM livenotify.rules r
		                   WHERE r.source = $5 AND r.type = ''*''),
		                 true)
		  ORDER BY t.%1$I
		  LIMIT $3',
		s.id_column, s.relid, s.user_column, livenotify._user_key_type(s), s.type_column)
	USING user_key, after_id, max_rows, livenotify.max_payload(), s.source, had_ids,
	      next_xid, h;
END
$$;
COMMENT ON FUNCTION livenotify.catchup_cursor(text, text, xid8, bigint[], bigint, integer) IS
	'A user''s rows not had by a tab resuming with a cursor (xmin at or above horizon, not in had_ids)';
