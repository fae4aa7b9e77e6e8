"""The WebSocket protocol: pings, garbage, broken and oversized frames, the closing handshake.

Registered with @test (lntest.py); run by test_livenotifyd.py."""
# flake8: noqa: F403,F405
import lntest
from lntest import *


@test
async def dead_peer_dropped_after_missed_pings(ctx):
    # `livenotifyd --help`: WebSocket pings every ping_interval_s (minimum 5), "dead peers
    # dropped at 2x".  A peer that answers no ping goes after ~10 s (1.5 s of slack for the
    # daemon's timer granularity); one that answers stays.
    interval = 5
    d = Daemon(ctx.opts, "ping", ["--auth=none", f"--ping-interval-s={interval}"])
    await d.start()
    raw = alive = None
    try:
        raw = await RawClient.connect(d.port, "user=1181")
        alive = await Client.authed(d, "answering peer", 1182)
        t0 = time.monotonic()
        limit = 2 * interval + 1.5
        while True:
            try:
                # Ping frames (opcode 9) arrive and are left unanswered.
                await raw.frame(timeout=max(limit - (time.monotonic() - t0), 0.01))
            except EOFError:
                break
            except Failure:
                raise Failure(f"a peer that answers no ping is still connected after {limit}s"
                              f" (ping_interval_s={interval})")
        elapsed = time.monotonic() - t0
        check(elapsed >= interval, f"the silent peer was dropped after only {elapsed:.1f}s")
        # The daemon's close line says what happened: no close frame (1006), ping timeout.
        want = 'user="1181" by=none code=1006 reason="ping timeout"'
        check(await log_line(d, want), f"no `ws_close ... {want}` line in the daemon log"
                                       f"\n{d.log_tail()}")
        await alive.ping()
        ctx.db.send(1182, "tick", {})
        check_eq(await alive.next("tick"), {"type": "tick"}, "the answering peer still gets frames")
    finally:
        if raw:
            raw.close()
        if alive:
            await alive.close()
        d.stop()


@test
async def garbage_raw_tcp_bytes(ctx):
    bystander = await Client.authed(ctx.jwt, "bystander", 1099)
    try:
        blobs = [os.urandom(4096), b"\x00" * 100 + b"\r\n\r\n",
                 b"GET /ws HTTP/1.1\r\n" + os.urandom(512) + b"\r\n\r\n",
                 b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n"]
        # No behaviour is documented for a peer that does not speak HTTP: it may get a 4xx or
        # nothing, and libwebsockets drops a stalled request after its idle timeouts (5-10 s).
        # What matters is that the connection goes away and nobody else notices.  The peers
        # are dropped concurrently, and the bystander is served while they are pending.
        peers = asyncio.gather(*(garbage_peer(ctx.jwt.port, b, 15.0) for b in blobs))
        await ctx.bystander_ok(ctx.jwt, bystander, 1099)
        answers = await peers
        for blob, answer in zip(blobs, answers):
            status = answer.split(b"\r\n", 1)[0]
            check(not answer or re.match(rb"HTTP/1\.[01] [45]\d\d ", status),
                  f"answer to garbage {blob[:24]!r}...: {status!r} (expected a 4xx/5xx or nothing)")
        await ctx.bystander_ok(ctx.jwt, bystander, 1099)
    finally:
        await bystander.close()


@test
async def garbage_before_auth_closes_1008(ctx):
    bystander = await Client.authed(ctx.jwt, "bystander", 1099)
    try:
        for what, msg in (("invalid JSON", "}{ not json"), ("JSON array", "[1,2,3]"),
                          ("binary frame", bytes(range(256))),
                          ("auth without token", '{"type":"auth"}')):
            c = await Client.connect(ctx.jwt, what)
            await c.ws.send(msg)
            check_eq(await c.closed(), (1008, "unauthorized"), f"close after {what} before auth")
        await ctx.bystander_ok(ctx.jwt, bystander, 1099)
    finally:
        await bystander.close()


@test
async def close_handshake_waits_for_the_client(ctx):
    """RFC 6455 5.5.1: after its close frame the daemon waits for the client's close before
    it closes TCP (docs/protocol.md, Closing), and drops a client that never answers."""
    loop = asyncio.get_running_loop()
    raw = await RawClient.connect(ctx.jwt.port, "")
    try:
        await loop.sock_sendall(raw.sock, raw_frame(0x1, b"}{ not json"))
        op, payload = await raw.frame()
        check_eq((op, struct.unpack("!H", payload[:2])[0], payload[2:].decode()),
                 (0x8, 1008, "unauthorized"), "close frame after garbage before auth")
        try:
            await raw.frame(timeout=0.5)
            raise Failure("a frame after the close frame")
        except EOFError:
            raise Failure("TCP closed right after the close frame, before the client's close")
        except Failure as e:
            check("nothing within" in str(e), str(e))
        # The client answers: the daemon closes TCP now.
        t0 = time.monotonic()
        await loop.sock_sendall(raw.sock, raw_frame(0x8, struct.pack("!H", 1008)))
        try:
            await raw.frame(timeout=2.0)
            raise Failure("a frame after the closing handshake")
        except EOFError:
            pass
        check(time.monotonic() - t0 < 1.0, "TCP closed late after the client's close")
    finally:
        raw.close()
    # A client that never answers the close is dropped after lws's 5 s close timeout.
    raw = await RawClient.connect(ctx.jwt.port, "")
    try:
        await loop.sock_sendall(raw.sock, raw_frame(0x2, b"\x00binary"))
        op, payload = await raw.frame()
        check_eq((op, struct.unpack("!H", payload[:2])[0]), (0x8, 1008), "close after a binary frame")
        try:
            await raw.frame(timeout=8.0)
            raise Failure("a frame after the close frame")
        except EOFError:
            pass
    finally:
        raw.close()


@test
async def garbage_after_auth_ignored(ctx):
    user = 1091
    bystander = await Client.authed(ctx.jwt, "bystander", 1099)
    c = await Client.authed(ctx.jwt, "tab", user)
    try:
        for msg in ("}{ not json", "[1,2,3]", '"text"', '{"type":"nonsense"}', '{"no_type":1}',
                    bytes(range(256)), json.dumps({"type": "auth", "token": "x"}),
                    json.dumps({"type": "resume", "last_id": 0})):
            await c.ws.send(msg)
        # Still open and answering: ping -> pong, and its rows still arrive.
        await c.ping()
        nid, _ = ctx.db.insert(user, "like", "after garbage")
        check_eq(await c.next("row after garbage"),
                 expected_notification(ctx.db, nid, ctx.db.unread(user)), "row after garbage")
        await ctx.bystander_ok(ctx.jwt, bystander, 1099)
    finally:
        await close_all(c, bystander)


@test
async def garbage_oversized_frame_closes_1009(ctx):
    bystander = await Client.authed(ctx.jwt, "bystander", 1099)
    try:
        big = json.dumps({"type": "ping", "pad": "x" * (MAX_MESSAGE_BYTES + 100)})
        c = await Client.authed(ctx.jwt, "authed, one frame", 1092)
        await send_may_close(c, big)
        check_eq(await c.closed(), (1009, "message too big"), "close after an oversized frame")
        c = await Client.authed(ctx.jwt, "authed, fragmented", 1092)
        # A message over the limit in fragments that are each under it.  Written as raw
        # frames: the client library holds its close reply until its own fragmented send
        # ends, and by then the daemon has closed the TCP connection (the client would see
        # 1006 whatever the daemon sent).
        c.ws.transport.write(raw_frame(0x1, b"x" * 3000, fin=False) +
                             b"".join(raw_frame(0x0, b"x" * 3000, fin=(i == 2)) for i in range(3)))
        check_eq(await c.closed(), (1009, "message too big"), "close after an oversized fragmented message")
        c = await Client.connect(ctx.jwt, "before auth")
        await send_may_close(c, big)
        check_eq(await c.closed(), (1009, "message too big"), "close after an oversized frame before auth")
        # A message just under the limit is fine.
        c = await Client.authed(ctx.jwt, "authed, under the limit", 1092)
        await c.ws.send(json.dumps({"type": "ping", "pad": "y" * (MAX_MESSAGE_BYTES - 200)}))
        await c.ping()
        await c.close()
        await ctx.bystander_ok(ctx.jwt, bystander, 1099)
    finally:
        await bystander.close()


@test
async def garbage_broken_frames(ctx):
    bystander = await Client.authed(ctx.jwt, "bystander", 1099)
    try:
        cases = [
            ("reserved bits and opcode", raw_frame(0x3, os.urandom(40), rsv=7)),
            ("random bytes in the stream", os.urandom(2048)),
        ]
        for what, data in cases:
            c = await Client.authed(ctx.jwt, what, 1093)
            c.ws.transport.write(data)
            # No close code is documented for a protocol violation: the socket must just go.
            code, reason = await c.closed()
            if lntest.VERBOSE:
                print(f"    ({what}: closed with {code} {reason!r})", flush=True)
        await ctx.bystander_ok(ctx.jwt, bystander, 1099)
    finally:
        await bystander.close()


def upgrade_request(version="HTTP/1.1", upgrade="websocket", ws_version="13", key=None,
                    extra=(), path="/ws?user=1190"):
    """An upgrade request; a None header is left out."""
    key = base64.b64encode(os.urandom(16)).decode() if key is None else key
    lines = [f"GET {path} {version}", "Host: 127.0.0.1", "Connection: Upgrade"]
    if upgrade is not False:
        lines.append(f"Upgrade: {upgrade}")
    if key is not False:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if ws_version is not False:
        lines.append(f"Sec-WebSocket-Version: {ws_version}")
    lines += ["Sec-WebSocket-Protocol: livenotify.v1", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# Issue 12, finding 8: (what, request, status).  RFC 6455 4.2.2/4.4: an unsupported version is
# 426 with the version we speak; a handshake that is not a valid RFC 6455 one is 400.
BAD_HANDSHAKES = [
    ("no Sec-WebSocket-Version", dict(ws_version=False), 426),
    ("Sec-WebSocket-Version 8", dict(ws_version="8"), 426),
    ("Sec-WebSocket-Version 14", dict(ws_version="14"), 426),
    ("Sec-WebSocket-Version '13, 8'", dict(ws_version="13, 8"), 426),
    ("no Sec-WebSocket-Key", dict(key=False), 400),
    ("Sec-WebSocket-Key not base64", dict(key="not a key at all!!!!!!=="), 400),
    ("Sec-WebSocket-Key of 15 bytes", dict(key=base64.b64encode(b"x" * 15).decode()), 400),
    ("Sec-WebSocket-Key of 17 bytes", dict(key=base64.b64encode(b"x" * 17).decode()), 400),
    ("Sec-WebSocket-Key 'x'", dict(key="x"), 400),
    ("HTTP/1.0 upgrade", dict(version="HTTP/1.0"), 400),
    ("h2c upgrade", dict(upgrade="h2c", extra=("HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",)), 400),
    ("h2c upgrade without settings", dict(upgrade="h2c"), 400),
]


@test
async def malformed_handshakes_refused(ctx):
    d = ctx.none
    bystander = await Client.authed(d, "bystander", 1191)
    try:
        # The control: the same builder with nothing changed is upgraded.
        status, _, _ = await raw_http(d.port, upgrade_request(), timeout=1.0)
        check_eq(status, 101, "a well-formed handshake")
        answers = [(what, want, *(await raw_http(d.port, upgrade_request(**kw))))
                   for what, kw, want in BAD_HANDSHAKES]
        accepted = [what for what, _, status, _, _ in answers if status == 101]
        # The figure docs/reliability.md quotes (issue 12, finding 8).
        print(f"    figures: malformed handshakes tried={len(answers)} upgraded={len(accepted)}",
              flush=True)
        check(not accepted, f"{len(accepted)} of {len(BAD_HANDSHAKES)} malformed handshakes got"
                            f" 101: {accepted}")
        for what, want, status, headers, body in answers:
            check_eq(status, want, f"{what}: HTTP status ({body[:80]!r})")
            if want == 426:
                check_eq(headers.get("sec-websocket-version"), "13",
                         f"{what}: the 426 names the version we speak")
        await ctx.bystander_ok(d, bystander, 1191)
    finally:
        await bystander.close()


@test
async def connect_method_closed(ctx):
    # lws 4.1 turns a CONNECT request into a raw socket with no timeout (lib/roles/http/
    # server/server.c, lws_http_to_fallback: NO_PENDING_TIMEOUT): an unauthenticated peer
    # would hold it for ever, outside every budget.  The daemon closes such a socket at once.
    d = ctx.none
    for request in (b"CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: 127.0.0.1:5432\r\n\r\n",
                    b"CONNECT 127.0.0.1:5432 HTTP/1.1\r\nHost: 127.0.0.1:5432\r\n\r\nhello"):
        answer = await garbage_peer(d.port, request, 3.0)
        check(not answer.startswith(b"HTTP/1.1 2"), f"CONNECT answered {answer[:40]!r}")
