--
-- register_as_owner: an ordinary role granted EXECUTE on register() (the app's role: Django's
-- migrations run as it) registers and unregisters a table it owns; nobody registers or
-- unregisters a table they do not own (a member of the owning role counts as the owner, as
-- for ALTER TABLE).  Without the grant even the owner may not register: a registered table
-- publishes to every user of the app, as send() does.  The role that counts is the current
-- one (SET ROLE), not the session's login role.  Refusals are ERRORs with SQLSTATE 42501
-- (insufficient_privilege).
--
\set SHOW_CONTEXT never
CREATE ROLE regress_reg_owner;
CREATE ROLE regress_reg_other;
CREATE SCHEMA regress_reg AUTHORIZATION regress_reg_owner;
GRANT USAGE ON SCHEMA regress_reg TO regress_reg_other;
SET ROLE regress_reg_owner;
CREATE TABLE regress_reg.mine (id bigserial PRIMARY KEY, user_id int NOT NULL,
                               type text NOT NULL, is_read boolean NOT NULL DEFAULT false);
RESET ROLE;
SELECT last_seq AS base FROM livenotify.position() \gset

-- Not granted: refused, even for its own table.
SET ROLE regress_reg_owner;
SELECT livenotify.register('regress_reg.mine', read_column => 'is_read', source => 'regress_mine');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT EXECUTE ON FUNCTION livenotify.register(regclass, name, name, name, name, text[], text)
    TO regress_reg_owner, regress_reg_other;

-- The owner registers its table; its rows are captured.
SET ROLE regress_reg_owner;
SELECT livenotify.register('regress_reg.mine', read_column => 'is_read', source => 'regress_mine');
SELECT source, relid, user_column, read_column FROM livenotify.sources
 WHERE source = 'regress_mine';
INSERT INTO regress_reg.mine (user_id, type) VALUES (5, 'like');
RESET ROLE;
SELECT kind, source, user_key FROM livenotify.read(:base, 10, 0) ORDER BY seq;

-- Another role may neither unregister it nor register it again, nor register a table of
-- someone else's.
SET ROLE regress_reg_other;
SELECT livenotify.unregister('regress_mine');
\echo :LAST_ERROR_SQLSTATE
SELECT livenotify.register('regress_reg.mine', source => 'regress_mine2');
\echo :LAST_ERROR_SQLSTATE
SELECT livenotify.register('api_notification', source => 'regress_theirs');
\echo :LAST_ERROR_SQLSTATE
SELECT livenotify.unregister('api_notification');
\echo :LAST_ERROR_SQLSTATE
-- Nor change the catalog behind register()'s back.
DELETE FROM livenotify.source_tables WHERE source = 'regress_mine';
INSERT INTO livenotify.source_tables VALUES ('x', 'regress_reg.mine', 2, 3, 1, NULL);
RESET ROLE;
SELECT source FROM livenotify.source_tables WHERE source LIKE 'regress_%' ORDER BY 1;

-- The session's login role is a superuser here; the current role is what counts.
SET ROLE regress_reg_other;
SELECT session_user = 'postgres' AS superuser_session, current_user;
SELECT livenotify.unregister('regress_mine');
RESET ROLE;

-- A member of the owning role may.
GRANT regress_reg_owner TO regress_reg_other;
SET ROLE regress_reg_other;
SELECT livenotify.unregister('regress_mine');
SELECT livenotify.register('regress_reg.mine', source => 'regress_mine');
RESET ROLE;
REVOKE regress_reg_owner FROM regress_reg_other;

-- And the owner unregisters its own table.
SET ROLE regress_reg_owner;
SELECT livenotify.unregister('regress_mine');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'regress_reg.mine'::regclass;
RESET ROLE;

REVOKE ALL ON FUNCTION livenotify.register(regclass, name, name, name, name, text[], text)
    FROM regress_reg_owner, regress_reg_other;
DROP SCHEMA regress_reg CASCADE;
DROP ROLE regress_reg_owner;
DROP ROLE regress_reg_other;
