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


def vm_kb(pid, field):
    """VmRSS / VmHWM of a process from /proc/PID/status, in kB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise Failure(f"no {field} in /proc/{pid}/status")


def blocking_raw_upgrade(port, query):
    """A blocking never-reading WebSocket socket (tiny receive buffer, like RawClient)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(FRAME_TIMEOUT)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: livenotify.v1\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = s.recv(4096)
        if not data:
            raise Failure("never-reading socket: closed during the upgrade")
        buf += data
    check(buf.startswith(b"HTTP/1.1 101"), f"never-reading socket upgrade: {buf[:60]!r}")
    return s, buf.split(b"\r\n\r\n", 1)[1]


def ping_flood(socks, seconds, max_pings):
    """Each socket sends {"type":"ping"} as fast as the kernel takes it and never reads;
    returns the number of pings sent."""
    ping = raw_frame(0x1, b'{"type":"ping"}') * 64
    sent = [0] * len(socks)
    deadline = time.monotonic() + seconds

    def run(i):
        s = socks[i]
        try:
            while time.monotonic() < deadline and sent[i] < max_pings:
                s.sendall(ping)
                sent[i] += 64
        except OSError:
            pass  # closed by the daemon (rate limit)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(socks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(sent)


def sanitized(d):
    """Whether daemon d runs under AddressSanitizer (sidecar_asan): its allocator keeps freed
    memory in quarantine and its shadow memory is RSS too, so RSS bounds do not apply."""
    with open(f"/proc/{d.proc.pid}/maps") as f:
        return "libasan" in f.read()


# docs/operations.md "Memory bound": a socket's fixed cost besides its send queue (session,
# lws connection, receive buffers), and slack for the allocator and the kernel's view of RSS.
PER_SOCKET_FIXED_BYTES = 64 * 1024
RSS_SLACK_BYTES = 8 << 20


async def flood_round(d, user, nsock, seconds, max_pings):
    """nsock never-reading sockets of one user flood pings; (pings, base kB, peak kB, after kB)."""
    pid = d.proc.pid
    socks = [(await asyncio.to_thread(blocking_raw_upgrade, d.port, f"user={user}"))[0]
             for _ in range(nsock)]
    base = vm_kb(pid, "VmRSS")
    peak = base
    done = asyncio.ensure_future(asyncio.to_thread(ping_flood, socks, seconds, max_pings))
    while not done.done():
        peak = max(peak, vm_kb(pid, "VmRSS"))
        await asyncio.sleep(0.05)
    pings = await done
    # VmHWM: the peak between two samples too (it includes startup, so it only errs high).
    peak = max(peak, vm_kb(pid, "VmRSS"), vm_kb(pid, "VmHWM"))
    return socks, pings, base, peak


async def wait_rss_below(pid, limit_kb, timeout):
    deadline = time.monotonic() + timeout
    while (rss := vm_kb(pid, "VmRSS")) > limit_kb and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return rss


@test
async def ping_flood_memory_bounded(ctx):
    """docs/operations.md "Memory bound": 16 never-reading sockets of one account sending
    pings in a loop keep the daemon's RSS within nsock x (send_queue_bytes + fixed cost)
    of where it was, and it falls back once they are gone.  With the default message rate
    each socket is closed 1008 `message rate exceeded` (docs/protocol.md); with the rate
    limit lifted, at most one pong waits per socket (a ping while one waits adds none)."""
    user, nsock, queue = 1141, 16, 1 << 20
    bound_kb = (nsock * (queue + PER_SOCKET_FIXED_BYTES) + RSS_SLACK_BYTES) // 1024
    d = Daemon(ctx.opts, "pingflood", ["--auth=none", f"--send-queue-bytes={queue}",
                                        f"--max-sockets-per-user={nsock}"])
    await d.start()
    socks = []
    try:
        socks, pings, base, peak = await flood_round(d, user, nsock, 8.0, 300000)
        print(f"    ping flood (default rate): {pings} pings, RSS {base} kB -> peak {peak} kB")
        check(sanitized(d) or peak - base <= bound_kb,
              f"RSS {base} kB -> {peak} kB under {pings} pings of {nsock} never-reading sockets:"
              f" grew {peak - base} kB, bound {bound_kb} kB")
        # The rate limit closed them; what a socket got before: hello, a few pongs, the close.
        s0, rest = socks[0], b""
        close = None
        s0.settimeout(FRAME_TIMEOUT)
        pongs = 0
        while close is None:
            while True:
                n, off = (rest[1] & 0x7F, 2) if len(rest) >= 2 else (None, 0)
                if n == 126:
                    n, off = (struct.unpack("!H", rest[2:4])[0], 4) if len(rest) >= 4 else (None, 0)
                if n is not None and len(rest) >= off + n:
                    break
                data = await asyncio.to_thread(s0.recv, 65536)
                if not data:
                    raise Failure(f"flooding socket dropped without a close frame after {pongs} pongs")
                rest += data
            op, payload, rest = rest[0] & 0x0F, rest[off:off + n], rest[off + n:]
            if op == 0x8:
                close = (struct.unpack("!H", payload[:2])[0], payload[2:].decode())
            elif op == 0x1 and json.loads(payload).get("type") == "pong":
                pongs += 1
        check_eq(close, (1008, "message rate exceeded"), "close of a ping-flooding socket")
        for s in socks:
            s.close()
        socks = []
        m = parse_metrics((await d.scrape())[1])
        check(m.get("livenotifyd_client_messages_rate_limited_total", 0) >= nsock,
              f"livenotifyd_client_messages_rate_limited_total {m.get('livenotifyd_client_messages_rate_limited_total')}")
    finally:
        for s in socks:
            s.close()
        d.stop()

    # The rate limit lifted: the pongs themselves must not pile up.
    d = Daemon(ctx.opts, "pingflood2", ["--auth=none", f"--send-queue-bytes={queue}",
                                         f"--max-sockets-per-user={nsock}",
                                         "--client-message-rate=1000000",
                                         "--client-message-burst=1000000"])
    await d.start()
    socks = []
    try:
        socks, pings, base, peak = await flood_round(d, user, nsock, 8.0, 300000)
        print(f"    ping flood (no rate limit): {pings} pings, RSS {base} kB -> peak {peak} kB")
        check(sanitized(d) or peak - base <= bound_kb,
              f"RSS {base} kB -> {peak} kB under {pings} pings of {nsock} never-reading sockets:"
              f" grew {peak - base} kB, bound {bound_kb} kB")
        m = parse_metrics((await d.scrape())[1])
        check(m.get("livenotifyd_pongs_coalesced_total", 0) > 0,
              f"livenotifyd_pongs_coalesced_total {m.get('livenotifyd_pongs_coalesced_total')}"
              f" after {pings} pings to never-reading sockets")
        for s in socks:
            s.close()
        socks = []
        after = await wait_rss_below(d.proc.pid, base + 4096, 0.0 if sanitized(d) else 5.0)
        check(sanitized(d) or after <= base + 4096, f"RSS {after} kB 5 s after the sockets closed (was {base} kB before)")
    finally:
        for s in socks:
            s.close()
        d.stop()


@test
async def burst_memory_returned_after_close(ctx):
    """docs/operations.md "Memory bound": never-reading sockets of 16 users whose queues
    fill with rows until each is closed 1008 (`send queue full`) keep the RSS within
    16 x (send_queue_bytes + fixed cost), and the memory is returned to the kernel once the
    sockets are gone (malloc_trim after large frees, livenotifyd_malloc_trims_total)."""
    users, queue = list(range(1161, 1177)), 1 << 20
    bound_kb = (len(users) * (queue + PER_SOCKET_FIXED_BYTES) + RSS_SLACK_BYTES) // 1024
    # read_batch 100: the reader turns a batch into frames holding it three times (the result,
    # the entries, the frames): 1,000 rows of 6 kB would be 18 MB on top (docs/operations.md).
    d = Daemon(ctx.opts, "burstmem", ["--auth=none", f"--send-queue-bytes={queue}", "--read-batch=100"])
    await d.start()
    pid = d.proc.pid
    socks = []
    try:
        socks = [(await asyncio.to_thread(blocking_raw_upgrade, d.port, f"user={u}"))[0]
                 for u in users]
        base = vm_kb(pid, "VmRSS")
        peak = base

        # More rows per user than its queue and the kernel take: the daemon's socket buffer
        # grows to tcp_wmem's maximum (4 MB by default) for a never-reading peer, and the
        # daemon fills it as fast as rows arrive (a frame goes out at once when none is
        # queued), so only then does its queue fill.  80 rows of 6 kB per round.
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem_max = int(f.read().split()[2])
        rounds = -(-(queue + wmem_max) * 3 // 2 // (80 * 6000))

        def burst():
            for _ in range(rounds):
                for u in users:
                    ctx.db.rows("INSERT INTO api_notification (user_id, type, title, message)"
                                " SELECT %s, 'like', 'burst ' || g, repeat('x', 6000)"
                                " FROM generate_series(1, 80) g RETURNING id", u)

        done = asyncio.ensure_future(asyncio.to_thread(burst))
        while not done.done():
            peak = max(peak, vm_kb(pid, "VmRSS"))
            await asyncio.sleep(0.05)
        await done
        await reader_caught_up(ctx, d, 20.0)
        peak = max(peak, vm_kb(pid, "VmRSS"), vm_kb(pid, "VmHWM"))
        # The service thread may still be writing the last rows into the queues (slower
        # under the sanitizers): the closes follow within a deadline, not at once.
        deadline = time.monotonic() + 30
        while True:
            closes = await metric(d, "livenotifyd_slow_client_closes_total")
            if closes == len(users) or time.monotonic() > deadline:
                break
            peak = max(peak, vm_kb(pid, "VmRSS"))
            await asyncio.sleep(0.2)
        peak = max(peak, vm_kb(pid, "VmHWM"))
        print(f"    burst: RSS {base} kB -> peak {peak} kB, slow closes {closes}", flush=True)
        check(closes == len(users), f"{closes} slow-client closes for {len(users)} never-reading sockets")
        check(sanitized(d) or peak - base <= bound_kb,
              f"RSS {base} kB -> {peak} kB: grew {peak - base} kB, bound {bound_kb} kB")
        for s in socks:
            s.close()
        socks = []
        after = await wait_rss_below(pid, base + 4096, 0.0 if sanitized(d) else 6.0)
        print(f"    burst: RSS {after} kB after the sockets closed"
              f" (trims {await metric(d, 'livenotifyd_malloc_trims_total')})", flush=True)
        check(sanitized(d) or after <= base + 4096, f"RSS {after} kB 6 s after the burst (was {base} kB before,"
                                    f" peak {peak} kB)")
    finally:
        for s in socks:
            s.close()
        d.stop()
