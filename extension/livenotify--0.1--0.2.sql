/* livenotify--0.1--0.2.sql: ALTER EXTENSION livenotify UPDATE TO '0.2' */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION livenotify UPDATE TO '0.2'" to load this file. \quit

-- Each section below is the upgrade half of one change to livenotify--0.2.sql; a database
-- upgraded from 0.1 must end up with the same objects, grants and data as a fresh 0.2 install
-- (test/upgrade checks it).

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
