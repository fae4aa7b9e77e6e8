"""Backpressure: slow and never-reading clients.

Registered with @test (lntest.py); run by test_livenotifyd.py."""
# flake8: noqa: F403,F405
import lntest
from lntest import *


@test
async def slow_client_closed_1008_others_unaffected(ctx):
    """A tab that stops reading is closed with 1008 `send queue full` once more than
    send_queue_bytes wait for it; the user's other tab and other users get every frame
    meanwhile, and the slow tab resumes with last_id without a gap."""
    db, user, other = ctx.db, 1131, 1132
    d = Daemon(ctx.opts, "slow", ["--auth=none", f"--send-queue-bytes={SLOW_QUEUE_BYTES}"])
    await d.start()
    slow = None
    tabs = []
    try:
        slow = await RawClient.connect(d.port, f"user={user}")
        op, hello = await slow.frame()
        check_eq(json.loads(hello).get("type"), "hello", "raw client's first frame")
        fast = await Client.authed(d, "same user, reading", user)
        others = await Client.authed(d, "other user", other)
        tabs = [fast, others]
        ids, other_ids = [], []

        def burst():
            # 40 kB transactions for the user, interleaved with rows of another user, until
            # the daemon reports the slow close.  How much the kernel buffers before the
            # daemon's queue grows depends on the machine (a few MB on loopback), hence no
            # fixed amount.
            for i in range(SLOW_MAX_TRANSACTIONS):
                ids.extend(r[0] for r in db.rows(
                    "INSERT INTO api_notification (user_id, type, title, message)"
                    " SELECT %s, 'like', 'bulk ' || g, repeat('x', 4000) FROM generate_series(1, 10) g"
                    " RETURNING id", user))
                other_ids.append(db.insert(other, "like", f"other {i}")[0])
                status, body = http_get(d.metrics_port, "/metrics")
                if status == 200 and parse_metrics(body).get("livenotifyd_slow_client_closes_total", 0) >= 1:
                    # A few more rows, so that some are committed after the close.
                    for _ in range(3):
                        ids.append(db.insert(user, "like", "after the close")[0])
                    return True
            return False

        # In a thread: the reading tabs must keep reading while the rows are committed, or
        # they would be slow clients too.
        closed = await asyncio.to_thread(burst)
        check(closed, f"no slow-client close after {len(ids) * 4} kB for a tab that does not read")
        got = [(await fast.next(f"row {k + 1} of {len(ids)}"))["id"] for k in range(len(ids))]
        check_eq(got, ids, "the reading tab of the same user gets every row")
        got = [(await others.next("other user's row"))["id"] for _ in other_ids]
        check_eq(got, other_ids, "the other user gets every row")
        # Now read what reached the slow tab: some rows, then the close.
        seen, close = [], None
        while close is None:
            try:
                op, payload = await slow.frame()
            except EOFError:
                raise Failure(f"slow tab: connection dropped without a close frame after {len(seen)} rows")
            if op == 0x8:
                close = (struct.unpack("!H", payload[:2])[0], payload[2:].decode())
            elif op == 0x1:
                f = json.loads(payload)
                check_eq(f.get("type"), "notification", "frame on the slow tab")
                seen.append(f["id"])
        check_eq(close, (1008, "send queue full"), "close of the slow tab")
        check(len(seen) < len(ids), f"the slow tab was closed after all {len(seen)} rows")
        check_eq(seen, ids[:len(seen)], "rows the slow tab got before the close, in order")
        # Resume from the last row it saw, on the main instance (as through a load balancer):
        # the rest, exactly once.  A replay through this instance's small bound is
        # resume_replay_larger_than_send_queue's subject.
        last = seen[-1] if seen else ids[0] - 1
        r = await Client.authed(ctx.jwt, "slow tab resumed", user, f"last_id={last}")
        tabs.append(r)
        rest = [(await r.next("replayed row"))["id"] for _ in range(len(ids) - len(seen))]
        check_eq(rest, ids[len(seen):], "rows replayed to the resumed slow tab")
        await ctx.markers((user, (fast, r)), (other, (others,)))
    finally:
        if slow:
            slow.close()
        await close_all(*tabs)
        d.stop()
