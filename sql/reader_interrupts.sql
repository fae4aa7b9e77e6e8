--
-- reader_interrupts: a cancel delivered just before read() starts to wait is not lost.  The
-- signal handler sets the latch and the interrupt flag; read() resets its latch before it
-- looks for entries, and must then check for interrupts (shm_mq.c's loop: WaitLatch,
-- ResetLatch, CHECK_FOR_INTERRUPTS), or it sleeps the whole timeout with a cancel pending.
-- pg_cancel_backend() of the session itself, evaluated in the same target list right before
-- read(), delivers the cancel with no CHECK_FOR_INTERRUPTS in between.
--
\set SHOW_CONTEXT never
SELECT last_seq AS base FROM livenotify.position() \gset
SELECT clock_timestamp() AS t0 \gset
SELECT pg_cancel_backend(pg_backend_pid()), livenotify.read(:base, 10, 6000);
SELECT clock_timestamp() - :'t0' < interval '3 s' AS cancelled_at_once;
-- The session still reads afterwards.
SELECT count(*) AS entries FROM livenotify.read(:base, 10, 0);

-- An idle reader does not inflate stats.lost.  This session has read (its reader slot sits
-- at an old position); once it has not called read() for livenotify.reader_idle_timeout,
-- entries overwritten after its position no longer count as lost (the session itself
-- still learns of the gap from its next read(): its position is behind the ring).
-- 3 MB through the 1 MB ring, in transactions below livenotify.max_pending (one bigger
-- transaction would collapse into a single overflow entry and overwrite nothing).
CREATE PROCEDURE regress_fill_ring() LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 15 LOOP
        PERFORM livenotify.send('1', 'fill', jsonb_build_object('x', repeat('x', 1000)))
           FROM generate_series(1, 200);
        COMMIT;
    END LOOP;
END
$$;
ALTER SYSTEM SET livenotify.reader_idle_timeout = '3s';
SELECT pg_reload_conf();
SELECT pg_sleep(3.5);
SHOW livenotify.reader_idle_timeout;
SELECT lost AS lost0, last_seq AS pos FROM livenotify.stats \gset
CALL regress_fill_ring();
SELECT lost - :lost0 AS counted_lost FROM livenotify.stats;
SELECT kind, lost > 0 AS told_of_gap FROM livenotify.read(:pos, 1, 0);
-- An active reader (it just read) counts again.
SELECT lost AS lost0, last_seq AS pos FROM livenotify.stats \gset
SELECT count(*) >= 0 AS read_now FROM livenotify.read(:pos, 1, 0);
CALL regress_fill_ring();
SELECT lost - :lost0 > 0 AS counted_lost FROM livenotify.stats;
ALTER SYSTEM RESET livenotify.reader_idle_timeout;
SELECT pg_reload_conf();
DROP PROCEDURE regress_fill_ring();
