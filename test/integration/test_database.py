"""A failing database: frozen backends, a lost privilege, max_connections exhausted.

Every daemon here connects as a role of its own, a non-superuser with the grants
docs/operations.md lists (the other tests' daemons connect as postgres), so that its
backends are found in pg_stat_activity by role and application_name, and so that a
REVOKE or a full max_connections hits it as it would hit a real deployment.

A frozen backend is SIGSTOPped (as root), which is what a hung server, a stuck disk or a
silent partition look like from the daemon: the socket is open and nothing comes back.
Every test continues the backends it stopped.

Registered with @test (lntest.py); run by test_livenotifyd.py."""
# flake8: noqa: F403,F405
import lntest
from lntest import *

ROLE = "livenotifyd_t"
# Short deadlines so that each test stays well within TEST_TIMEOUT: read() waits 1 s, every
# database call may take 1 s beyond its own wait.  The environment can set others, e.g. the
# daemon's defaults (10000 and 5000) to measure those (docs/reliability.md).
READ_TIMEOUT_MS = int(os.environ.get("LIVENOTIFY_DB_TEST_READ_TIMEOUT_MS", "1000"))
DB_TIMEOUT_MS = int(os.environ.get("LIVENOTIFY_DB_TEST_DB_TIMEOUT_MS", "1000"))


def role_conninfo(ctx):
    return re.sub(r"\buser=\S+", f"user={ROLE}", ctx.opts.conninfo)


def ensure_role(ctx):
    """The daemon's role with the grants of docs/operations.md ("The daemon's role")."""
    db = ctx.db
    if not db.one("SELECT 1 FROM pg_roles WHERE rolname = %s", ROLE):
        db.rows(f"CREATE ROLE {ROLE} LOGIN")
    db.rows(f"GRANT EXECUTE ON FUNCTION livenotify.read(bigint, integer, integer) TO {ROLE}")
    db.rows(f"GRANT EXECUTE ON FUNCTION livenotify.read_horizon(), livenotify.origin() TO {ROLE}")
    db.rows(f"GRANT SELECT ON {SOURCE} TO {ROLE}")


def role_daemon(ctx, name, extra):
    ensure_role(ctx)
    return Daemon(ctx.opts, name, ["--auth=none", f"--database-url={role_conninfo(ctx)}",
                                   f"--read-timeout-ms={READ_TIMEOUT_MS}",
                                   f"--db-timeout-ms={DB_TIMEOUT_MS}", *extra])


def backends(ctx, app_like):
    return [r[0] for r in ctx.db.rows(
        "SELECT pid FROM pg_stat_activity WHERE usename = %s AND application_name LIKE %s",
        ROLE, app_like)]


async def wait_backends(ctx, app_like, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not (pids := backends(ctx, app_like)):
        check(time.monotonic() < deadline, f"no backend {app_like!r} of {ROLE}")
        await asyncio.sleep(0.05)
    return pids


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def log_count(d, fragment):
    try:
        with open(d.log_path, errors="replace") as f:
            return sum(fragment in line for line in f)
    except OSError:
        return 0


async def watch_health(d, seconds, interval=0.05):
    """Poll /healthz for `seconds`: (number of status changes, statuses seen in order)."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, _ = await d.http("/healthz")
        if not seen or seen[-1] != status:
            seen.append(status)
        await asyncio.sleep(interval)
    return len(seen) - 1, seen


def figure(text):
    """Figures for docs/reliability.md, printed with the test's result."""
    print(f"    figure: {text}", flush=True)


@test
async def database_reader_backend_frozen(ctx):
    """The reader's backend stops answering (SIGSTOP): /healthz goes 503 within
    read_timeout_ms + db_timeout_ms (+ scrape slack), the daemon cancels, drops the session
    and reconnects, and the rows committed meanwhile are delivered once, none missing."""
    db, user = ctx.db, 1601
    # The first reconnect waits 0.4-0.8 s, so the 503 lasts long enough to be seen by polling
    # (the new session's first read() does not wait, it is 200 again right after).
    d = role_daemon(ctx, "frozen-reader", ["--reconnect-min-ms=800", "--reconnect-max-ms=1600"])
    await d.start()
    tab = None
    frozen = []
    try:
        tab = await Client.authed(d, "tab", user)
        first, _ = db.insert(user, "like", "before freeze")
        check_eq((await tab.next("row before the freeze")).get("id"), first, "row before the freeze")
        frozen = await wait_backends(ctx, "livenotifyd reader")
        signal_all(frozen, signal.SIGSTOP)
        t0 = time.monotonic()
        during = [db.insert(user, "like", f"frozen {i}")[0] for i in range(5)]
        limit = (READ_TIMEOUT_MS + DB_TIMEOUT_MS) / 1000 + 2.0
        check(await d.wait_health(503, limit),
              f"/healthz not 503 within {limit}s of the reader backend freezing: "
              f"{await d.http('/healthz')}")
        t503 = time.monotonic() - t0
        status, body = await d.http("/healthz")
        check("read" in body, f"/healthz body names the stale read: {body!r}")
        check(await d.wait_health(200, 10.0), "/healthz not back to 200 after the reconnect")
        t200 = time.monotonic() - t0
        timeouts = await metric(d, 'livenotifyd_db_timeouts_total{conn="reader"}')
        check(timeouts is not None and timeouts >= 1, f"reader timeouts counted: {timeouts}")
        age = await metric(d, "livenotifyd_last_read_age_seconds")
        check(age is not None and age < limit, f"livenotifyd_last_read_age_seconds {age}")
        signal_all(frozen, signal.SIGCONT)
        after = [db.insert(user, "like", f"after {i}")[0] for i in range(5)]
        ctx.marker += 1
        db.send(user, "test_marker", {"n": ctx.marker})
        got = await resumed_ids(tab, ctx.marker, during + after, "row after the freeze")
        check_eq(got, during + after, "rows committed during and after the freeze, in order")
        figure(f"reader backend frozen: 503 after {t503:.2f}s, 200 again after {t200:.2f}s"
               f" (new session, old backend still stopped), 0 missing of {len(got)}")
    finally:
        signal_all(frozen, signal.SIGCONT)
        await close_all(tab)
        d.stop()


@test
async def database_worker_backends_frozen(ctx):
    """The catch-up connections stop answering: a resume does not hang past db_timeout_ms
    (the client gets resync `catchup_failed`, and refetches), /healthz says the workers
    fail, and the next resume after they are back replays its rows."""
    db, user = ctx.db, 1611
    # A long first reconnect delay, so the failed state is observed before the worker has
    # reconnected on its own.
    d = role_daemon(ctx, "frozen-workers", ["--db-workers=1", "--reconnect-min-ms=3000",
                                            "--reconnect-max-ms=6000"])
    await d.start()
    tabs = []
    frozen = []
    try:
        nid, _ = db.insert(user, "like", "to replay")
        warm = await Client.authed(d, "warm resume", user, f"last_id={nid - 1}")
        tabs.append(warm)
        check_eq((await warm.next("replayed row")).get("id"), nid, "replayed row (worker up)")
        frozen = await wait_backends(ctx, "livenotifyd worker%")
        signal_all(frozen, signal.SIGSTOP)
        t0 = time.monotonic()
        c = await Client.authed(d, "resume, workers frozen", user, f"last_id={nid - 1}")
        tabs.append(c)
        limit = DB_TIMEOUT_MS / 1000 + 3.0
        f = await c.next("an answer to the resume", timeout=limit)
        took = time.monotonic() - t0
        check_eq(f, {"type": "resync", "reason": "catchup_failed"}, "resume with the workers frozen")
        status, body = await d.http("/healthz")
        check_eq(status, 503, f"/healthz with every worker failing ({body!r})")
        check("worker" in body, f"/healthz body names the workers: {body!r}")
        timeouts = await metric(d, 'livenotifyd_db_timeouts_total{conn="worker"}')
        check(timeouts is not None and timeouts >= 1, f"worker timeouts counted: {timeouts}")
        signal_all(frozen, signal.SIGCONT)
        check(await d.wait_health(200, 10.0), "/healthz not 200 once the worker reconnected")
        recovered = time.monotonic() - t0
        r = await Client.authed(d, "resume after", user, f"last_id={nid - 1}")
        tabs.append(r)
        check_eq((await r.next("replayed row")).get("id"), nid, "replayed row after the workers are back")
        figure(f"worker backends frozen: resync catchup_failed after {took:.2f}s, /healthz 503"
               f" then 200 after {recovered:.2f}s")
    finally:
        signal_all(frozen, signal.SIGCONT)
        await close_all(*tabs)
        d.stop()


@test
async def database_read_privilege_revoked(ctx):
    """The daemon's role loses EXECUTE on read(): a clear error (SQLSTATE and the server's
    text) in the log, counted as persistent, /healthz held at 503 (no flapping) with
    attempts spaced by a growing delay; after GRANT it recovers and delivers what was
    committed meanwhile."""
    db, user = ctx.db, 1621
    d = role_daemon(ctx, "revoked", ["--reconnect-min-ms=100", "--reconnect-max-ms=3000"])
    await d.start()
    tab = None
    grant = f"GRANT EXECUTE ON FUNCTION livenotify.read(bigint, integer, integer) TO {ROLE}"
    try:
        tab = await Client.authed(d, "tab", user)
        await reader_caught_up(ctx, d)
        fails_before = log_count(d, "db_read_failed")
        db.rows(f"REVOKE EXECUTE ON FUNCTION livenotify.read(bigint, integer, integer) FROM {ROLE}")
        t0 = time.monotonic()
        check(await d.wait_health(503, READ_TIMEOUT_MS / 1000 + 3.0),
              "/healthz not 503 after the REVOKE")
        during = [db.insert(user, "like", f"revoked {i}")[0] for i in range(3)]
        transitions, seen = await watch_health(d, 10.0)
        attempts = log_count(d, "db_read_failed") - fails_before
        check_eq(seen, [503], f"/healthz over 10 s with read() revoked ({transitions} changes)")
        check(2 <= attempts <= 15, f"read attempts in ~10 s with a growing delay: {attempts}")
        with open(d.log_path, errors="replace") as fl:
            lines = [line for line in fl if "db_read_failed" in line]
        check(lines and "42501" in lines[-1] and "permission denied for function read" in lines[-1],
              f"the log line names the error: {lines[-1:]!r}")
        persistent = await metric(d, 'livenotifyd_db_persistent_errors_total{conn="reader"}')
        check(persistent is not None and persistent >= 2, f"persistent errors counted: {persistent}")
        status, body = await d.http("/healthz")
        check("42501" in body, f"/healthz body gives the error: {body!r}")
        db.rows(grant)
        t1 = time.monotonic()
        check(await d.wait_health(200, 3.0 + 3.0), "/healthz not 200 after GRANT")
        recovery = time.monotonic() - t1
        ctx.marker += 1
        db.send(user, "test_marker", {"n": ctx.marker})
        got = await resumed_ids(tab, ctx.marker, during, "rows committed while revoked")
        check_eq(got, during, "rows committed while read() was revoked")
        figure(f"read() revoked: {attempts} attempts in {time.monotonic() - t0 - recovery:.1f}s,"
               f" /healthz changes {transitions} over 10 s, recovered {recovery:.2f}s after GRANT")
    finally:
        db.rows(grant)
        await close_all(tab)
        d.stop()


@test
async def database_max_connections_at_start(ctx):
    """max_connections exhausted when the daemon starts: a clear error (the server's text),
    connect failures counted, retries spaced by the backoff, and it comes up once slots
    are free."""
    ensure_role(ctx)
    user = 1631
    fillers = []
    refused = None
    d = None
    try:
        for _ in range(400):
            try:
                c = psycopg2.connect(role_conninfo(ctx))
            except psycopg2.OperationalError as e:
                refused = str(e)
                break
            fillers.append(c)
        check(refused is not None, "max_connections was never reached")
        d = role_daemon(ctx, "maxconn", ["--reconnect-min-ms=100", "--reconnect-max-ms=1000"])
        await d.start(healthy=503)
        await asyncio.sleep(3.0)
        attempts = log_count(d, "db_connect_failed")
        check(2 <= attempts <= 12, f"connect attempts in ~3 s with backoff 100..1000 ms: {attempts}")
        with open(d.log_path, errors="replace") as fl:
            lines = [line for line in fl if "db_connect_failed" in line and "thread=reader" in line]
        check(lines and ("remaining connection slots" in lines[-1] or "too many clients" in lines[-1]),
              f"the log line gives the server's error: {lines[-1:]!r}")
        failures = await metric(d, 'livenotifyd_db_connect_failures_total{conn="reader"}')
        check(failures is not None and failures >= 2, f"reader connect failures counted: {failures}")
        status, body = await d.http("/healthz")
        check_eq(status, 503, "/healthz while no connection slot is free")
        for c in fillers:
            c.close()
        fillers = []
        t0 = time.monotonic()
        check(await d.wait_health(200, 5.0), "/healthz not 200 once slots are free")
        recovery = time.monotonic() - t0
        tab = await Client.authed(d, "tab", user)
        try:
            nid, _ = ctx.db.insert(user, "like", "after")
            check_eq((await tab.next("row")).get("id"), nid, "row once connected")
        finally:
            await tab.close()
        figure(f"max_connections full at start: {attempts} connect attempts in 3 s,"
               f" recovered {recovery:.2f}s after the slots were freed")
    finally:
        for c in fillers:
            c.close()
        if d:
            d.stop()


@test
async def database_count_query_failing(ctx):
    """The unread-count statement fails (the role lost SELECT on the table): the frame says
    so with "unread_count_error": true instead of silently leaving the count out, the
    failure is counted, and once the grant is back the next frame has the count again."""
    db, user = ctx.db, 1641
    d = role_daemon(ctx, "count-failing", ["--reconnect-min-ms=50", "--reconnect-max-ms=500"])
    await d.start()
    tab = None
    try:
        tab = await Client.authed(d, "tab", user)
        db.rows(f"REVOKE SELECT ON {SOURCE} FROM {ROLE}")
        nid, _ = db.insert(user, "like", "count fails")
        want = expected_notification(db, nid, None)
        del want["unread_count"]
        want["unread_count_error"] = True
        check_eq(await tab.next("row whose count fails"), want, "frame when counting fails")
        errors = await metric(d, "livenotifyd_unread_count_errors_total")
        check_eq(errors, 1.0, "livenotifyd_unread_count_errors_total after one failed count")
        check(await log_line(d, "unread_counts_failed"), "no unread_counts_failed log line")
        db.rows(f"GRANT SELECT ON {SOURCE} TO {ROLE}")
        nid, _ = db.insert(user, "like", "count works")
        check_eq(await tab.next("row after the grant"),
                 expected_notification(db, nid, db.unread(user)), "frame once counting works")
    finally:
        db.rows(f"GRANT SELECT ON {SOURCE} TO {ROLE}")
        await close_all(tab)
        d.stop()


@test
async def database_connect_hangs(ctx):
    """A server that accepts the TCP connection and never answers the startup packet (a hung
    postmaster, a proxy whose backend is gone): connect_timeout is enforced although the
    daemon connects without blocking (PQconnectPoll leaves it to the caller), each attempt
    is one log line and one counted failure, and the attempts go on with backoff."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # the kernel completes the handshakes; nobody ever reads
    port = listener.getsockname()[1]
    d = Daemon(ctx.opts, "connect-hangs", [
        "--auth=none", f"--database-url=host=127.0.0.1 port={port} user=x dbname=y connect_timeout=2",
        "--reconnect-min-ms=100", "--reconnect-max-ms=200"])
    try:
        await d.start(healthy=503)
        t0 = time.monotonic()
        check(await log_line(d, "db_connect_failed", timeout=5.0),
              "no db_connect_failed line within 5 s of a connect that never gets an answer")
        first = time.monotonic() - t0
        with open(d.log_path, errors="replace") as fl:
            lines = [line for line in fl if "db_connect_failed" in line and "thread=reader" in line]
        check(lines and "timed out after 2000 ms" in lines[0], f"the log line says why: {lines[:1]!r}")
        await asyncio.sleep(4.5)
        attempts = log_count(d, "thread=reader error=")
        check(2 <= attempts <= 5, f"reader connect attempts in ~6.5 s with connect_timeout=2: {attempts}")
        failures = await metric(d, 'livenotifyd_db_connect_failures_total{conn="reader"}')
        check(failures is not None and failures >= 2, f"reader connect failures counted: {failures}")
        status, body = await d.http("/healthz")
        check_eq(status, 503, f"/healthz while every connect hangs ({body!r})")
        figure(f"connect never answered (connect_timeout=2): first failure logged after"
               f" {first:.2f}s of the daemon's start, {attempts} attempts in ~6.5 s")
    finally:
        d.stop()
        listener.close()
