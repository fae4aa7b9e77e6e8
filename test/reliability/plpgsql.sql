-- The PL/pgSQL exception-block path of the randomized workload (test/reliability/txrun.py).
CREATE OR REPLACE FUNCTION rel_exc(u int, t text, fail bool, nonce text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO api_notification (user_id, type, title, message) VALUES (u, t, 'plpgsql-outer', 'm');
    BEGIN
        INSERT INTO api_notification (user_id, type, title, message)
            VALUES (u, t, 'plpgsql-inner', 'm');
        PERFORM livenotify.send(u::text, 'rel_msg', jsonb_build_object('nonce', nonce, 'user', u::text));
        IF fail THEN
            RAISE EXCEPTION 'rel_fail';
        END IF;
    EXCEPTION WHEN raise_exception THEN
        NULL;  -- the inner block's row and send() are rolled back with it
    END;
END $$;
