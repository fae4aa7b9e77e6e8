/* livenotify--0.1--0.2.sql: ALTER EXTENSION livenotify UPDATE TO '0.2' */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION livenotify UPDATE TO '0.2'" to load this file. \quit

-- Each section below is the upgrade half of one change to livenotify--0.2.sql; a database
-- upgraded from 0.1 must end up with the same objects, grants and data as a fresh 0.2 install
-- (test/upgrade checks it).

-- ==== bulk loads, rules cache snapshot, writes without preload (issue 11) ====

-- Without shared_preload_libraries the capture triggers and rules_changed warn once per
-- session and do nothing; this counts what they skipped.
CREATE FUNCTION livenotify.skipped_not_loaded() RETURNS bigint
	AS 'MODULE_PATHNAME', 'livenotify_skipped_not_loaded' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION livenotify.skipped_not_loaded() IS
	'Trigger calls of this session that queued nothing because livenotify is not preloaded';
