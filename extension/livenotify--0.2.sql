/* livenotify--0.2.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION livenotify" to load this file. \quit

-- The triggers read livenotify.rules as the inserting role.
GRANT USAGE ON SCHEMA livenotify TO PUBLIC;

CREATE FUNCTION livenotify.check_loaded() RETURNS void
	AS 'MODULE_PATHNAME', 'livenotify_check_loaded' LANGUAGE C;

CREATE FUNCTION livenotify.max_payload() RETURNS integer
	AS 'MODULE_PATHNAME', 'livenotify_max_payload' LANGUAGE C STABLE;
COMMENT ON FUNCTION livenotify.max_payload() IS
	'Effective largest queued payload in bytes (livenotify.max_payload capped by the ring)';

------------------------------------------------------------------------------
-- Catalog
------------------------------------------------------------------------------

-- Columns are kept by number, as the triggers keep them: renaming a column of
-- the app's table (a migration) changes nothing for livenotify.
CREATE TABLE livenotify.source_tables (
	source		text PRIMARY KEY
				CHECK (source ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
	relid		regclass NOT NULL UNIQUE,
	user_attnum	smallint NOT NULL,
	type_attnum	smallint NOT NULL,
	id_attnum	smallint NOT NULL,
	read_attnum	smallint
);
COMMENT ON TABLE livenotify.source_tables IS 'Tables registered with livenotify.register()';

-- The same with today's column names (NULL for a column dropped since).
CREATE VIEW livenotify.sources AS
SELECT s.source, s.relid,
       u.attname AS user_column, t.attname AS type_column,
       i.attname AS id_column, r.attname AS read_column
  FROM livenotify.source_tables s
  LEFT JOIN pg_catalog.pg_attribute u
         ON u.attrelid = s.relid AND u.attnum = s.user_attnum AND NOT u.attisdropped
  LEFT JOIN pg_catalog.pg_attribute t
         ON t.attrelid = s.relid AND t.attnum = s.type_attnum AND NOT t.attisdropped
  LEFT JOIN pg_catalog.pg_attribute i
         ON i.attrelid = s.relid AND i.attnum = s.id_attnum AND NOT i.attisdropped
  LEFT JOIN pg_catalog.pg_attribute r
         ON r.attrelid = s.relid AND r.attnum = s.read_attnum AND NOT r.attisdropped;

CREATE TABLE livenotify.rules (
	source		text NOT NULL REFERENCES livenotify.source_tables ON DELETE CASCADE ON UPDATE CASCADE,
	type		text NOT NULL,
	action		text NOT NULL CHECK (action IN ('skip', 'deliver')),
	PRIMARY KEY (source, type)
);
COMMENT ON TABLE livenotify.rules IS
	'Per-type delivery rules; type ''*'' is the source''s default; no rule means deliver';

GRANT SELECT ON livenotify.source_tables, livenotify.sources, livenotify.rules TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('livenotify.source_tables', '');
SELECT pg_catalog.pg_extension_config_dump('livenotify.rules', '');

-- Plain DML does not invalidate caches: this trigger makes every backend
-- reload its rules from its next transaction.
CREATE FUNCTION livenotify.rules_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'livenotify_rules_changed' LANGUAGE C;
CREATE TRIGGER rules_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON livenotify.rules
	FOR EACH STATEMENT EXECUTE FUNCTION livenotify.rules_changed();

------------------------------------------------------------------------------
-- Capture triggers (installed by register())
------------------------------------------------------------------------------

CREATE FUNCTION livenotify.capture_insert() RETURNS trigger
	AS 'MODULE_PATHNAME', 'livenotify_capture_insert' LANGUAGE C;
CREATE FUNCTION livenotify.capture_read() RETURNS trigger
	AS 'MODULE_PATHNAME', 'livenotify_capture_read' LANGUAGE C;
CREATE FUNCTION livenotify._counts_changed(source text) RETURNS void
	AS 'MODULE_PATHNAME', 'livenotify_counts_changed' LANGUAGE C VOLATILE;
-- Left to PUBLIC: register() and unregister() run as their caller (any table owner), and the
-- entry carries nothing but the source name; a reader only counts that source again.

CREATE FUNCTION livenotify.capture_truncate() RETURNS trigger
	AS 'MODULE_PATHNAME', 'livenotify_capture_truncate' LANGUAGE C;

------------------------------------------------------------------------------
-- Registration
------------------------------------------------------------------------------

-- The number of column col of tbl, or an ERROR naming the argument.
CREATE FUNCTION livenotify._column(tbl regclass, col name, argname text, allowed regtype[])
RETURNS smallint LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	typ regtype;
	num smallint;
BEGIN
	IF col IS NULL THEN
		RAISE EXCEPTION '% must not be NULL', argname USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT a.atttypid::regtype, a.attnum INTO typ, num
	  FROM pg_attribute a
	 WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of table % does not exist', col, tbl
			USING ERRCODE = 'undefined_column',
			      HINT = format('Pass the name of an existing column as %s.', argname);
	END IF;
	IF NOT typ = ANY (allowed) THEN
		RAISE EXCEPTION '% "%" of table % has type %, expected %',
			argname, col, tbl, typ,
			CASE WHEN cardinality(allowed) = 1 THEN allowed[1]::text
			     ELSE 'one of ' || array_to_string(allowed::text[], ', ') END
			USING ERRCODE = 'datatype_mismatch';
	END IF;
	RETURN num;
END
$$;

CREATE FUNCTION livenotify.register(
	tbl			regclass,
	user_column	name DEFAULT 'user_id',
	type_column	name DEFAULT 'type',
	id_column	name DEFAULT 'id',
	read_column	name DEFAULT NULL,
	skip_types	text[] DEFAULT '{event,message}',
	source		text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql
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
COMMENT ON FUNCTION livenotify.register(regclass, name, name, name, name, text[], text) IS
	'Capture rows inserted into tbl (and, with read_column, changes of unread counts) as livenotify entries';

CREATE FUNCTION livenotify.unregister(source text) RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s livenotify.source_tables;
	trg name;
BEGIN
	PERFORM livenotify.check_loaded();
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

-- A dropped source table takes its registration with it.
CREATE FUNCTION livenotify.on_sql_drop() RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	DELETE FROM livenotify.source_tables s
	 USING pg_event_trigger_dropped_objects() d
	 WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND s.relid::oid = d.objid;
END
$$;
CREATE EVENT TRIGGER livenotify_sql_drop ON sql_drop
	EXECUTE FUNCTION livenotify.on_sql_drop();

------------------------------------------------------------------------------
-- Ephemeral messages
------------------------------------------------------------------------------

CREATE FUNCTION livenotify.send(user_key text, kind text, payload jsonb DEFAULT '{}')
RETURNS void AS 'MODULE_PATHNAME', 'livenotify_send' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION livenotify.send(text, text, jsonb) IS
	'Deliver an ephemeral message to a user''s sockets at commit; never stored';

------------------------------------------------------------------------------
-- Reader (the sidecar)
------------------------------------------------------------------------------

CREATE FUNCTION livenotify.position(OUT epoch bigint, OUT last_seq bigint)
RETURNS record AS 'MODULE_PATHNAME', 'livenotify_position' LANGUAGE C VOLATILE;

CREATE FUNCTION livenotify.read(after bigint, max_entries integer DEFAULT 1000,
                                timeout_ms integer DEFAULT 10000)
RETURNS TABLE (epoch bigint, seq bigint, lost bigint, source text, user_key text,
               kind text, payload text, xid xid8, unread boolean)
AS 'MODULE_PATHNAME', 'livenotify_read' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION livenotify.read(bigint, integer, integer) IS
	'Committed entries of this database after seq "after"; waits up to timeout_ms for one';

-- Reading sees every user's notifications; sending reaches any user.
REVOKE ALL ON FUNCTION livenotify.read(bigint, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION livenotify.send(text, text, jsonb) FROM PUBLIC;

------------------------------------------------------------------------------
-- Catch-up from the table (the durable log)
------------------------------------------------------------------------------

-- A registered source with today's column names, or a clear ERROR.
CREATE FUNCTION livenotify._source(source text) RETURNS livenotify.sources
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
	IF s.user_column IS NULL OR s.type_column IS NULL OR s.id_column IS NULL THEN
		RAISE EXCEPTION 'a column of livenotify source "%" was dropped from table %',
			s.source, s.relid
			USING ERRCODE = 'undefined_column',
			      HINT = 'Unregister the source and register it again with existing columns.';
	END IF;
	RETURN s;
END
$$;

-- The type of the user column, after checking that every key casts to it.
CREATE FUNCTION livenotify._check_user_keys(s livenotify.sources, user_keys text[])
RETURNS regtype LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	utype regtype;
	bad text;
BEGIN
	SELECT a.atttypid::regtype INTO utype FROM pg_attribute a
	 WHERE a.attrelid = s.relid AND a.attname = s.user_column;
	BEGIN
		EXECUTE format('SELECT $1::%s[]', utype) USING user_keys;
	EXCEPTION WHEN data_exception THEN
		-- Name the first bad key (the array cast's message does not).
		FOR i IN 1 .. cardinality(user_keys) LOOP
			BEGIN
				EXECUTE format('SELECT $1::%s', utype) USING user_keys[i];
			EXCEPTION WHEN data_exception THEN
				bad := user_keys[i];
				EXIT;
			END;
		END LOOP;
		RAISE EXCEPTION 'user key "%" is not a valid % for livenotify source "%"',
			bad, utype, s.source
			USING ERRCODE = 'invalid_text_representation',
			      DETAIL = format('Column %I of %s has type %s.', s.user_column, s.relid, utype);
	END;
	RETURN utype;
END
$$;

CREATE FUNCTION livenotify.catchup(source text, user_key text, after_id bigint,
                                   max_rows integer DEFAULT 100)
RETURNS TABLE (id bigint, payload text) LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s livenotify.sources;
	utype regtype;
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
	utype := livenotify._check_user_keys(s, ARRAY[user_key]);

	-- Same JSON, same rules and same stub as the live stream (trigger.cpp).
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
		s.id_column, s.relid, s.user_column, utype, s.type_column)
	USING user_key, after_id, max_rows, livenotify.max_payload(), s.source;
END
$$;
COMMENT ON FUNCTION livenotify.catchup(text, text, bigint, integer) IS
	'A user''s rows after after_id as the live stream would have sent them; index (user, id)';

-- The query behind unread_counts(), for a reader that prepares it once per session
-- (livenotifyd does, per batch of notifications): $1 is a jsonb array of user keys; it
-- returns (user_key, unread) per key, in order.  PL/pgSQL plans its dynamic SQL on every
-- call; a prepared statement is planned once.
CREATE FUNCTION livenotify.unread_counts_query(source text) RETURNS text LANGUAGE plpgsql STABLE
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
	-- Schema-qualified, so the text means the same table under any search_path.
	SELECT format('%I.%I', n.nspname, c.relname) INTO tbl
	  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = s.relid;
	RETURN format(
		'SELECT u.k AS user_key,
		        (SELECT pg_catalog.count(*) FROM %1$s t
		          WHERE t.%2$I = u.k::%3$s AND NOT t.%4$I) AS unread
		   FROM pg_catalog.jsonb_array_elements_text($1::pg_catalog.jsonb)
		        WITH ORDINALITY AS u(k, n)
		  ORDER BY u.n',
		tbl, s.user_column, utype::text, s.read_column);
END
$$;
COMMENT ON FUNCTION livenotify.unread_counts_query(text) IS
	'SQL text of unread_counts() for one source, taking a jsonb array of keys as $1: prepare it';

CREATE FUNCTION livenotify.unread_counts(source text, user_keys text[])
RETURNS TABLE (user_key text, unread bigint) LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s livenotify.sources;
BEGIN
	PERFORM livenotify.check_loaded();
	s := livenotify._source(source);
	IF user_keys IS NULL OR array_position(user_keys, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'user_keys of livenotify.unread_counts() must not be or contain NULL'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF s.read_column IS NOT NULL THEN
		PERFORM livenotify._check_user_keys(s, user_keys);
	END IF;
	RETURN QUERY EXECUTE livenotify.unread_counts_query(source) USING to_jsonb(user_keys);
END
$$;
COMMENT ON FUNCTION livenotify.unread_counts(text, text[]) IS
	'Unread rows per user key, one row per key given; index (user) WHERE NOT read';

------------------------------------------------------------------------------
-- Observability
------------------------------------------------------------------------------

CREATE FUNCTION livenotify.stats_raw(
	OUT enqueued bigint, OUT filtered bigint, OUT lost bigint, OUT oversize bigint,
	OUT ring_bytes bigint, OUT ring_used_bytes bigint, OUT ring_entries bigint,
	OUT readers integer, OUT waiting_readers integer, OUT epoch bigint,
	OUT last_seq bigint, OUT oldest_seq bigint)
RETURNS record AS 'MODULE_PATHNAME', 'livenotify_stats_raw' LANGUAGE C VOLATILE;

CREATE VIEW livenotify.stats AS SELECT * FROM livenotify.stats_raw();
GRANT SELECT ON livenotify.stats TO PUBLIC;

------------------------------------------------------------------------------
-- Resume cursors: catch-up that misses nothing when ids commit out of order
------------------------------------------------------------------------------

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
	utype regtype;
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
	utype := livenotify._check_user_keys(s, ARRAY[user_key]);

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
		s.id_column, s.relid, s.user_column, utype, s.type_column)
	USING user_key, after_id, max_rows, livenotify.max_payload(), s.source, had_ids,
	      next_xid, h;
END
$$;
COMMENT ON FUNCTION livenotify.catchup_cursor(text, text, xid8, bigint[], bigint, integer) IS
	'A user''s rows not had by a tab resuming with a cursor (xmin at or above horizon, not in had_ids)';
