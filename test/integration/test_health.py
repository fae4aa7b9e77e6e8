"""Health and the database: /healthz, /metrics, ring overflow, database restart.

Registered with @test (lntest.py); run by test_livenotifyd.py."""
# flake8: noqa: F403,F405
import lntest
from lntest import *


@test
async def healthz_and_metrics(ctx):
    c = await Client.authed(ctx.jwt, "tab", 1101)
    try:
        status, body = await ctx.jwt.http("/healthz")
        check_eq(status, 200, f"GET /healthz ({body!r})")
        status, body = await ctx.jwt.scrape()
        check_eq(status, 200, "GET /metrics")
        samples = parse_metrics(body)
        names = {k.split("{")[0] for k in samples}
        missing = [p for p in METRIC_NAMES if not any(re.fullmatch(p, n) for n in names)]
        check(not missing, f"/metrics lacks {missing}; it has {sorted(names)}")
        unprefixed = [n for n in names if not n.startswith("livenotifyd_")]
        check(not unprefixed, f"metrics without the livenotifyd_ prefix: {unprefixed}")
        check_eq(samples.get("livenotifyd_db_up"), 1.0, "livenotifyd_db_up")
        check(samples.get("livenotifyd_sockets", 0) >= 1, "livenotifyd_sockets with a client open")
        check_eq(samples.get("livenotifyd_last_seq"),
                 float(ctx.db.one("SELECT last_seq FROM livenotify.position()")),
                 "livenotifyd_last_seq (the reader is caught up)")
    finally:
        await c.close()


@test
async def bulk_transaction_overflow_resyncs(ctx):
    """A transaction past livenotify.max_pending publishes one `overflow` entry instead of its
    1000 rows: every connected tab gets resync `overflow` (the daemon cannot tell whose rows
    they were), counted in livenotifyd_overflow_entries_total and logged once; the next
    ordinary row flows with the right count (the source's cached counts were dropped)."""
    A, B = 1451, 1452
    d = ctx.jwt
    a = await Client.authed(d, "A/tab", A)
    b = await Client.authed(d, "B/tab", B)
    try:
        # A's count is cached by a first row, so a stale cache would show below.
        nid, _ = ctx.db.insert(A, "like", "before bulk")
        check_eq(await a.next("row before the bulk"),
                 expected_notification(ctx.db, nid, ctx.db.unread(A)), "row before the bulk")
        await reader_caught_up(ctx, d)
        before = await metric(d, "livenotifyd_overflow_entries_total")
        check(before is not None, "livenotifyd_overflow_entries_total is exported")
        with open(d.log_path, errors="replace") as f:
            logged_before = sum("transaction_overflow" in line for line in f)
        ctx.db.script([
            ("BEGIN", None),
            ("SET LOCAL livenotify.max_pending = '16kB'", None),
            ("INSERT INTO api_notification (user_id, type, title, message)"
             " SELECT %s, 'like', 'bulk ' || i, 'm' FROM generate_series(1, 1000) i", (A,)),
            ("COMMIT", None)])
        check_eq(ctx.db.one("SELECT kind FROM livenotify.read("
                            "(SELECT last_seq - 1 FROM livenotify.position()), 10, 0)"),
                 "overflow", "the transaction's only entry")
        for t in (a, b):
            check_eq(await t.next("resync after the bulk transaction"),
                     {"type": "resync", "reason": "overflow"},
                     f"{t.name}: frame after a transaction past max_pending")
        check_eq(await metric(d, "livenotifyd_overflow_entries_total"), before + 1,
                 "livenotifyd_overflow_entries_total")
        check(await log_line(d, "transaction_overflow"), "no transaction_overflow log line")
        with open(d.log_path, errors="replace") as f:
            logged = sum("transaction_overflow" in line for line in f) - logged_before
        check_eq(logged, 1, "transaction_overflow log lines for one overflowed transaction")
        nid, _ = ctx.db.insert(A, "like", "after bulk")
        check_eq(await a.next("row after the bulk"),
                 expected_notification(ctx.db, nid, ctx.db.unread(A)),
                 "row after the bulk, with the count that includes the bulk rows")
        await ctx.markers((A, (a,)), (B, (b,)))
    finally:
        await close_all(a, b)
        ctx.db.rows("DELETE FROM api_notification WHERE user_id = %s", A)


@test
async def database_restart_healthz_and_resync(ctx):
    db, user = ctx.db, 1111
    tabs = [await Client.authed(ctx.jwt, f"tab{i}", user) for i in (1, 2)]
    none_tab = await Client.authed(ctx.none, "none-mode tab", user)
    old_epoch = db.epoch()
    db.reset()
    extra, late, stopping = [], None, None
    try:
        r = await asyncio.to_thread(pg_ctl, ctx.opts, "-m", "fast", "-w", "-t", "60", "stop")
        check_eq(r.returncode, 0, f"pg_ctl stop ({r.stderr.decode(errors='replace')})")
        check(await ctx.jwt.wait_health(503, 15.0),
              f"GET /healthz is not 503 with the database stopped: {await ctx.jwt.http('/healthz')}")
        check_eq(await metric(ctx.jwt, "livenotifyd_db_up"), 0.0, "livenotifyd_db_up while stopped")
        # Sockets stay open while the database is away; the service thread still answers.
        for t in tabs:
            await t.ping()
        # A resume needs the database: hello, then resync `catchup_failed`.
        r = await Client.authed(ctx.jwt, "resume while down", user, "last_id=0")
        extra.append(r)
        check_eq(await r.next("resync"), {"type": "resync", "reason": "catchup_failed"},
                 "resume while the database is down")
        # SQL authentication needs it too: 1011.
        s = await Client.connect(ctx.sql, "SQL auth while down", "token=" + "a" * 40)
        extra.append(s)
        check_eq(await s.closed(), (1011, "database unavailable"), "SQL auth while the database is down")
        # A daemon started now serves sockets; hello says it has not reached the database.
        late = Daemon(ctx.opts, "late", ["--auth=none", "--reconnect-min-ms=50", "--reconnect-max-ms=500"])
        await late.start(healthy=503)
        late_tab = await Client.authed(late, "tab of a daemon started while down", user, hello=False)
        extra.append(late_tab)
        await late_tab.expect_hello(user, epoch=0)
        # SIGTERM while the reader waits to reconnect (default backoff, up to 10 s) still
        # stops within 2 s.
        stopping = Daemon(ctx.opts, "stop-while-down", ["--auth=none"])
        await stopping.start(healthy=503)
        st = await Client.authed(stopping, "tab of a daemon stopped while down", user, hello=False)
        extra.append(st)
        await asyncio.sleep(1.0)  # into the reconnect backoff
        t0 = time.monotonic()
        stopping.proc.send_signal(signal.SIGTERM)
        try:
            rc = await asyncio.to_thread(stopping.proc.wait, 2.0)
        except subprocess.TimeoutExpired:
            stopping.stop()
            raise Failure("livenotifyd still running 2 s after SIGTERM with the database down")
        check_eq(rc, 0, f"exit status after SIGTERM with the database down ({time.monotonic() - t0:.2f}s)")
        check_eq(await st.closed(2.0), (1001, "server shutting down"), "close after SIGTERM, database down")
        await asyncio.to_thread(cluster_start, ctx.opts)
        check(await late.wait_health(200, 20.0), "the late daemon's /healthz is not 200 after the start")
        check(await ctx.jwt.wait_health(200, 20.0),
              f"GET /healthz is not back to 200 after the restart: {await ctx.jwt.http('/healthz')}")
        for t in tabs + [none_tab, r]:
            check_eq(await t.next("resync after the restart", timeout=15.0),
                     {"type": "resync", "reason": "epoch"}, f"{t.name}: frame after the restart")
        check(db.epoch() != old_epoch, "the queue epoch changed across the restart")
        reconnects = await metric(ctx.jwt, "livenotifyd_db_reconnects_total")
        check(reconnects is not None and reconnects >= 1, f"livenotifyd_db_reconnects_total {reconnects}")
        # Delivery resumes on the same sockets.
        nid, _ = db.insert(user, "like", "after restart")
        want = expected_notification(db, nid, db.unread(user))
        for t in tabs + [none_tab, r]:
            check_eq(await t.next("row after the restart"), want, f"{t.name}: row after the restart")
        # The late daemon's socket may get a resync (it never saw an epoch), then the row.
        f = await late_tab.next("row after the start")
        if f.get("type") == "resync":
            f = await late_tab.next("row after the start")
        check_eq(f, want, f"{late_tab.name}: row after the database came up")
        # A new socket's hello carries the new epoch.
        c = await Client.authed(ctx.jwt, "new tab", user, hello=False)
        await c.expect_hello(user, epoch=db.epoch())
        await c.close()
    finally:
        if not cluster_running(ctx.opts):
            await asyncio.to_thread(cluster_start, ctx.opts)
        for d in ctx.daemons():
            await d.wait_health(200, 20.0)
        await close_all(*tabs, none_tab, *extra)
        for d in (late, stopping):
            if d:
                d.stop()


# Issue 12, finding 6: /metrics only on the metrics listener; on the public listener only the
# exact WebSocket path and /healthz answer, whatever spelling lws would normalise.
PUBLIC_PROBES = ["/metrics", "//metrics", "/%6detrics", "/%6Detrics", "/ws/../metrics",
                 "/ws/%2e%2e/metrics", "/./metrics", "/metrics/", "/metrics?x=1", "/ws/", "/WS",
                 "/ws/x", "/healthz/", "/HEALTHZ", "/wsx", "/"]


@test
async def metrics_not_on_the_public_listener(ctx):
    d = ctx.jwt
    answered, served = {}, []
    for path in PUBLIC_PROBES:
        status, _, body = await raw_http(d.port, http_request(path))
        answered[path] = status
        if b"livenotifyd_" in body:
            served.append(path)
    ok = [p for p, st in answered.items() if st == 200]
    # The figure docs/reliability.md quotes (issue 12, finding 6).
    print(f"    figures: public probes tried={len(PUBLIC_PROBES)} answered_200={len(ok)}"
          f" served_metrics={len(served)}", flush=True)
    check(not served, f"the public listener served metrics for {served}")
    check(not ok, f"the public listener answered 200 to {ok} (all: {answered})")
    check_eq((await d.http("/healthz"))[0], 200, "GET /healthz on the public listener")
    # The metrics listener: /metrics and /healthz; never a WebSocket.
    status, body = await d.scrape()
    check_eq(status, 200, "GET /metrics on the metrics listener")
    check("livenotifyd_db_up 1" in body, "the metrics listener serves the metrics")
    check_eq((await d.scrape("/healthz"))[0], 200, "GET /healthz on the metrics listener")
    check_eq((await d.scrape("/ws"))[0], 404, "GET /ws on the metrics listener")
    key = base64.b64encode(os.urandom(16)).decode()
    status, _, _ = await raw_http(d.metrics_port, (
        f"GET /ws?token={token_for(1101)} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: livenotify.v1\r\n\r\n").encode())
    check(status != 101, "the metrics listener upgraded a WebSocket")


@test
async def metrics_listener_bearer_token(ctx):
    token = "metrics-test-token-0123456789"
    d = Daemon(ctx.opts, "metrics-token", ["--auth=none", f"--metrics-token={token}"])
    await d.start()
    try:
        mp = d.metrics_port
        for what, headers in (("no Authorization", ()),
                              ("a wrong token", (("Authorization", "Bearer wrong-token-0123456789"),)),
                              ("a token prefix", (("Authorization", f"Bearer {token[:-1]}"),)),
                              ("another scheme", (("Authorization", f"Basic {token}"),))):
            status, headers_got, body = await raw_http(mp, http_request("/metrics", headers))
            check_eq(status, 401, f"GET /metrics with {what}")
            check(b"livenotifyd_" not in body, f"metrics served with {what}")
        check_eq(headers_got.get("www-authenticate"), "Bearer", "WWW-Authenticate of the 401")
        status, _, body = await raw_http(mp, http_request(
            "/metrics", (("Authorization", f"Bearer {token}"),)))
        check_eq(status, 200, "GET /metrics with the token")
        check(b"livenotifyd_sockets" in body, "metrics served with the token")
        # The public listener is unchanged: /healthz needs no token.
        check_eq((await d.http("/healthz"))[0], 200, "public /healthz")
    finally:
        d.stop()


@test
async def metrics_listener_config(ctx):
    # Beyond loopback only with a token; "off" has no metrics listener at all.
    r = await asyncio.to_thread(run_daemon_cli, ctx.opts, "--check-config", "--auth=none",
                                "--metrics-listen=0.0.0.0:9187")
    check_eq(r.returncode, 2, f"non-loopback metrics_listen without a token: {r.stderr!r}")
    check("metrics_listen" in r.stderr, f"the error names the key: {r.stderr!r}")
    r = await asyncio.to_thread(run_daemon_cli, ctx.opts, "--check-config", "--auth=none",
                                "--metrics-listen=0.0.0.0:9187",
                                "--metrics-token=metrics-test-token-0123456789")
    check_eq(r.returncode, 0, f"non-loopback metrics_listen with a token: {r.stderr!r}")
    d = Daemon(ctx.opts, "metrics-off", ["--auth=none", "--metrics-listen=off"])
    await d.start()
    try:
        check_eq((await d.scrape())[0], None, "nothing listens on the metrics port when off")
        check_eq((await d.http("/metrics"))[0], 404, "and /metrics is still not public")
    finally:
        d.stop()
    # A metrics port already taken is a startup error, not a silent absence.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        d = Daemon(ctx.opts, "metrics-busy",
                   ["--auth=none", f"--metrics-listen=127.0.0.1:{busy.getsockname()[1]}"])
        await d.start(healthy=None)
        try:
            code = await asyncio.to_thread(d.proc.wait, 10)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            d.stop()
        check(code not in (None, 0), f"started with its metrics port taken (exit {code})")
