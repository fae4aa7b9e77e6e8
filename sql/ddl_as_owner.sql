--
-- ddl_as_owner: with the extension installed, an ordinary role's DDL on its own tables
-- works as without it (Django runs its migrations as the app's role).  The extension's
-- sql_drop event trigger fires for every DROP in the database, as whoever runs it: it must
-- do its work with the privileges it needs (SECURITY DEFINER, fixed search_path), and a
-- dropped registered table still takes its registration with it.
--
\set SHOW_CONTEXT never
CREATE ROLE regress_ddl_owner;
CREATE SCHEMA regress_ddl AUTHORIZATION regress_ddl_owner;
SET ROLE regress_ddl_owner;
CREATE TABLE regress_ddl.plain (id bigserial PRIMARY KEY, user_id int, type text, note text);
CREATE INDEX plain_note ON regress_ddl.plain (note);
CREATE TABLE regress_ddl.reg (id bigserial PRIMARY KEY, user_id int, type text, note text,
                              is_read boolean NOT NULL DEFAULT false);
CREATE INDEX reg_note ON regress_ddl.reg (note);
RESET ROLE;
SELECT livenotify.register('regress_ddl.reg', read_column => 'is_read', source => 'regress_ddl');

-- A table that is not registered: every kind of DROP works.
SET ROLE regress_ddl_owner;
DROP INDEX regress_ddl.plain_note;
ALTER TABLE regress_ddl.plain DROP COLUMN note;
ALTER TABLE regress_ddl.plain DROP CONSTRAINT plain_pkey;
CREATE VIEW regress_ddl.v AS SELECT id FROM regress_ddl.plain;
DROP VIEW regress_ddl.v;
CREATE FUNCTION regress_ddl.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
DROP FUNCTION regress_ddl.f();
DROP TABLE regress_ddl.plain;

-- A registered table: its DDL works too, and the registration stays until the table goes.
DROP INDEX regress_ddl.reg_note;
ALTER TABLE regress_ddl.reg DROP COLUMN note;
INSERT INTO regress_ddl.reg (user_id, type) VALUES (1, 'like');
SELECT source FROM livenotify.source_tables WHERE source = 'regress_ddl';
DROP TABLE regress_ddl.reg;
SELECT count(*) AS registered FROM livenotify.source_tables WHERE source = 'regress_ddl';
SELECT count(*) AS rules FROM livenotify.rules WHERE source = 'regress_ddl';

-- A schema dropped with a registered table in it, by its owner.
RESET ROLE;
SET ROLE regress_ddl_owner;
CREATE TABLE regress_ddl.reg2 (id bigserial PRIMARY KEY, user_id int, type text);
RESET ROLE;
SELECT livenotify.register('regress_ddl.reg2', source => 'regress_ddl2');
SET ROLE regress_ddl_owner;
DROP SCHEMA regress_ddl CASCADE;
SELECT count(*) AS registered FROM livenotify.source_tables WHERE source = 'regress_ddl2';
RESET ROLE;

-- The event trigger's function runs as its owner with a fixed search_path.
SELECT p.proname, p.prosecdef, p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace = 'livenotify'::regnamespace AND p.proname = 'on_sql_drop';
DROP ROLE regress_ddl_owner;
