--
-- trust_boundary: nothing any role can call or attach puts an unbounded or malformed entry
-- in the ring that every database shares.  An ordinary role tries every function of the
-- extension and every trigger it could attach to a table of its own, with hostile
-- arguments (huge and odd source names, huge keys, a text id full of JSON); the superuser,
-- who may attach the trigger functions anywhere, tries the same arguments.  Each attempt is
-- refused with an ERROR (or, for the app's own INSERT, skipped with a WARNING) while the
-- transaction can still abort; none may crash a backend.  A crash restarts every backend
-- and makes a new shared memory: the epoch and the postmaster's start time at the end
-- prove there was none.
--
\set SHOW_CONTEXT never
SELECT pg_postmaster_start_time() AS start_time, epoch AS start_epoch
  FROM livenotify.position() \gset
CREATE ROLE regress_tb_owner;
CREATE SCHEMA regress_tb AUTHORIZATION regress_tb_owner;

SET ROLE regress_tb_owner;
CREATE TABLE regress_tb.t (id bigint, user_id text, type text, is_read boolean);
-- Internal functions are not the ordinary role's to call.
SELECT livenotify._counts_changed(repeat('x', 3 * 1024 * 1024));
SELECT livenotify._counts_changed('t');
SELECT livenotify._column('regress_tb.t', 'id', 'id_column', '{bigint}');
-- Nor may it attach the capture functions to its table by hand: register() does.
DO $$
BEGIN
    EXECUTE format('CREATE TRIGGER h AFTER TRUNCATE ON regress_tb.t FOR EACH STATEMENT '
                   'EXECUTE FUNCTION livenotify.capture_truncate(%L)', repeat('s', 70000));
END $$;
TRUNCATE regress_tb.t;
DO $$
BEGIN
    EXECUTE format('CREATE TRIGGER h AFTER INSERT ON regress_tb.t FOR EACH ROW '
                   'EXECUTE FUNCTION livenotify.capture_insert(%L, 2, 3, 1)', repeat('s', 70000));
END $$;
INSERT INTO regress_tb.t VALUES (1, 'u1', 'like', false);
CREATE TRIGGER h AFTER UPDATE ON regress_tb.t FOR EACH ROW
    EXECUTE FUNCTION livenotify.capture_read('t', 2, 4);
CREATE TRIGGER h AFTER INSERT ON regress_tb.t FOR EACH STATEMENT
    EXECUTE FUNCTION livenotify.rules_changed();
RESET ROLE;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'regress_tb.t'::regclass;

-- The superuser may attach them (and call the internal functions): the same arguments are
-- refused when the entry is queued, inside the transaction.
SELECT livenotify._counts_changed(repeat('x', 3 * 1024 * 1024));
SELECT livenotify._counts_changed(repeat('x', 64));
SELECT livenotify._counts_changed('bad name');
SELECT livenotify._counts_changed(E'a"b\\c');
SELECT livenotify._counts_changed('');
DO $$
BEGIN
    EXECUTE format('CREATE TRIGGER h1 AFTER TRUNCATE ON regress_tb.t FOR EACH STATEMENT '
                   'EXECUTE FUNCTION livenotify.capture_truncate(%L)', repeat('s', 70000));
    EXECUTE format('CREATE TRIGGER h2 AFTER INSERT ON regress_tb.t FOR EACH ROW '
                   'EXECUTE FUNCTION livenotify.capture_insert(%L, 2, 3, 1, 4)', repeat('s', 70000));
    EXECUTE format('CREATE TRIGGER h3 AFTER UPDATE ON regress_tb.t FOR EACH ROW '
                   'EXECUTE FUNCTION livenotify.capture_read(%L, 2, 4)', E'a"b\n');
END $$;
TRUNCATE regress_tb.t;
INSERT INTO regress_tb.t VALUES (1, 'u1', 'like', false);
SET livenotify.enabled = off;
INSERT INTO regress_tb.t VALUES (2, 'u1', 'like', false);
RESET livenotify.enabled;
UPDATE regress_tb.t SET is_read = true;
DROP TRIGGER h1 ON regress_tb.t;
DROP TRIGGER h2 ON regress_tb.t;
DROP TRIGGER h3 ON regress_tb.t;

-- A registered table of the ordinary role.  Its id column cannot become text (ALTER COLUMN
-- ... TYPE is refused at DDL time: a stub's id is always an integer), so an oversize row's
-- stub is small, valid JSON.  A huge user key is not queued (WARNING).
GRANT EXECUTE ON FUNCTION livenotify.register(regclass, name, name, name, name, text[], text)
    TO regress_tb_owner;
SET ROLE regress_tb_owner;
SELECT livenotify.register('regress_tb.t', 'user_id', 'type', 'id', 'is_read',
                           source => 'regress_tb');
ALTER TABLE regress_tb.t ADD COLUMN body text;
ALTER TABLE regress_tb.t ALTER COLUMN id TYPE text;
RESET ROLE;
SELECT last_seq AS base FROM livenotify.position() \gset
SET ROLE regress_tb_owner;
INSERT INTO regress_tb.t VALUES (7, 'u1', 'like', false, repeat('b', 10000));
INSERT INTO regress_tb.t VALUES (8, repeat('u', 100000), 'like', false, repeat('b', 10000));
UPDATE regress_tb.t SET is_read = true WHERE id = 8;
RESET ROLE;
SELECT seq - :base AS n, kind, user_key, payload::json AS stub, octet_length(payload) <= 100 AS small
  FROM livenotify.read(:base, 10, 0) ORDER BY seq;
SELECT livenotify.unregister('regress_tb');

-- send() (granted): a key or payload over livenotify.max_payload is refused.
GRANT EXECUTE ON FUNCTION livenotify.send(text, text, jsonb) TO regress_tb_owner;
SET ROLE regress_tb_owner;
SELECT livenotify.send(repeat('u', 3 * 1024 * 1024), 'k');
SELECT livenotify.send('u', 'k', jsonb_build_object('x', repeat('p', 3 * 1024 * 1024)));
SELECT livenotify.send('u', repeat('k', 70000));
RESET ROLE;
REVOKE ALL ON FUNCTION livenotify.send(text, text, jsonb) FROM regress_tb_owner;

REVOKE ALL ON FUNCTION livenotify.register(regclass, name, name, name, name, text[], text)
    FROM regress_tb_owner;
DROP SCHEMA regress_tb CASCADE;
DROP ROLE regress_tb_owner;

-- No backend crashed: the same postmaster and the same shared memory (a crash restart
-- makes a new epoch).
SELECT pg_postmaster_start_time() = :'start_time' AS same_postmaster,
       epoch = :start_epoch AS same_epoch
  FROM livenotify.position();
