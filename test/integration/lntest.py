#!/usr/bin/python3
"""Shared helpers of the livenotifyd integration tests (test_*.py in this directory).

Daemons, WebSocket and raw clients, the database helper, the test registry (@test) and the
runner (main).  test_livenotifyd.py imports every test module and calls main().
"""
import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

import psycopg2
import websockets
import websockets.exceptions

SOURCE = "api_notification"
JWT_SECRET = "integration-test-secret-not-for-production"
JWT_AUDIENCE = "livenotify-integration"
JWT_ISSUER = "livenotify-tests"
# Short, so the "no token" test does not wait the 5 s default.
AUTH_TIMEOUT_MS = 1000
# Small, so the catch-up limit test needs only a few rows.
CATCHUP_MAX_ROWS = 5
# Default max_message_bytes (docs/protocol.md: 8 kB); the daemons run with the default.
MAX_MESSAGE_BYTES = 8 * 1024
SQL_AUTH_QUERY = "SELECT user_id::text FROM authtoken_token WHERE key = $1"
ALLOWED_ORIGIN = "https://app.example"
MAX_SOCKETS_PER_USER = 3
# The slow-client test's per-socket bound: several transactions' worth of frames, so that a
# tab that reads is never over it.
SLOW_QUEUE_BYTES = 256 * 1024
# Upper bound of the slow-client burst: 400 x 40 kB.
SLOW_MAX_TRANSACTIONS = 400

# LIVENOTIFY_INTEGRATION_STRESS=N repeats the resume seam rounds N times (default once).
STRESS = int(os.environ.get("LIVENOTIFY_INTEGRATION_STRESS", "1"))
FRAME_TIMEOUT = 5.0
VERBOSE = False
TEST_TIMEOUT = 45.0


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def check_eq(got, want, what):
    if got != want:
        raise Failure(f"{what}: expected {want!r}, got {got!r}")


# --------------------------------------------------------------------------------------
# JWTs built by hand: the tests need malformed tokens no library would produce.


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims, secret=JWT_SECRET, header=None):
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = b64url(json.dumps(header)) + "." + b64url(json.dumps(claims))
    if header.get("alg") == "none":
        return signing_input + "."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[header["alg"]]
    sig = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return signing_input + "." + b64url(sig)


def claims_for(sub, changes=None):
    """Valid claims for user `sub`, with `changes` applied (a None value removes the claim)."""
    now = int(time.time())
    c = {"sub": sub, "exp": now + 600, "iat": now, "aud": JWT_AUDIENCE, "iss": JWT_ISSUER}
    for k, v in (changes or {}).items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def token_for(user):
    return make_jwt(claims_for(str(user)))


# --------------------------------------------------------------------------------------
# Database


class Db:
    """Autocommit connection to the test database; reconnects after a server restart."""

    def __init__(self, conninfo):
        self.conninfo = conninfo
        self.conn = None

    def _connect(self):
        if self.conn is None or self.conn.closed:
            self.conn = psycopg2.connect(self.conninfo)
            self.conn.autocommit = True
        return self.conn

    def reset(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg2.Error:
                pass
        self.conn = None

    def rows(self, sql, *params):
        with self._connect().cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def one(self, sql, *params):
        rows = self.rows(sql, *params)
        return rows[0][0] if rows else None

    def script(self, statements):
        """Several statements on one connection, e.g. an explicit transaction."""
        with self._connect().cursor() as cur:
            for s, params in statements:
                cur.execute(s, params)

    def insert(self, user, ntype="like", title="t", message="m"):
        """Insert one row in its own transaction; returns (id, row as the table has it)."""
        rows = self.rows(
            "INSERT INTO api_notification (user_id, type, title, message) VALUES (%s, %s, %s, %s)"
            " RETURNING id, row_to_json(api_notification.*)",
            int(user), ntype, title, message)
        return rows[0][0], rows[0][1]

    def row(self, nid):
        return self.one("SELECT row_to_json(t) FROM api_notification t WHERE id = %s", nid)

    def unread(self, user):
        return self.one(
            "SELECT count(*) FROM api_notification WHERE user_id = %s AND NOT is_read", int(user))

    def epoch(self):
        return self.one("SELECT epoch FROM livenotify.position()")

    def send(self, user, kind, payload):
        self.rows("SELECT livenotify.send(%s, %s, %s::jsonb)", str(user), kind, json.dumps(payload))


# --------------------------------------------------------------------------------------
# Daemons


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=3.0):
    """(status, body) of GET http://127.0.0.1:port/path; (None, error) if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (OSError, urllib.error.URLError) as e:
        return None, str(e)


class Daemon:
    def __init__(self, opts, name, args, env=None):
        self.opts = opts
        self.name = name
        self.args = args
        self.env = env or {}
        # How Client.authed gets in: the --auth mode (the daemon's default is jwt).
        self.auth = next((a.split("=", 1)[1] for a in args if a.startswith("--auth=")), "jwt")
        self.proc = None
        self.port = None
        self.metrics_port = None  # the metrics listener (--metrics-listen), on loopback
        self.log_path = os.path.join(opts.workdir, f"livenotifyd-{name}.log")

    async def start(self, healthy=200):
        """Start and wait for GET /healthz to answer `healthy` (503: the database is down;
        None: do not wait, the caller connects at once)."""
        # A free port can be taken between the probe and the bind: try a few.
        for _ in range(3):
            self.port = free_port()
            self.metrics_port = free_port()
            env = dict(os.environ)
            # Only the settings given here: no PG* or LIVENOTIFY_* leaking from the caller.
            for k in list(env):
                if k.startswith("LIVENOTIFY_") or k.startswith("PG"):
                    del env[k]
            env.update(self.env)
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [self.opts.daemon, "--listen-address=127.0.0.1", f"--port={self.port}",
                 f"--database-url={self.opts.conninfo}", "--log-level=debug",
                 f"--metrics-listen=127.0.0.1:{self.metrics_port}", *self.args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
            log.close()
            with open(self.opts.pidfile, "a") as f:
                f.write(f"{self.proc.pid}\n")
            if healthy is None:
                return
            if await self.wait_health(healthy, 15.0):
                return
            if self.proc.poll() is None:
                break
        raise Failure(f"livenotifyd {self.name} did not become healthy (exit {self.proc.poll()})"
                      f"\n{self.log_tail()}")

    async def wait_health(self, status, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            got, _ = await asyncio.to_thread(http_get, self.port, "/healthz", 1.0)
            if got == status:
                return True
            await asyncio.sleep(0.05)
        return False

    def http(self, path):
        """GET on the public listener."""
        return asyncio.to_thread(http_get, self.port, path)

    def scrape(self, path="/metrics"):
        """GET on the metrics listener (/metrics is not served on the public one)."""
        return asyncio.to_thread(http_get, self.metrics_port, path)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def url(self, query=""):
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?{query}" if query else "")

    def log_tail(self, n=25):
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.readlines()
        except OSError:
            return ""
        return "".join(f"    | {line}" for line in lines[-n:])

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# --------------------------------------------------------------------------------------
# WebSocket clients


CURSOR_RE = re.compile(r"v1\.[0-9]{1,20}\.[0-9]{1,10}\.[0-9]{1,20}(\.[0-9]{1,18}){0,16}")


class Client:
    """A WebSocket client whose text frames are parsed as JSON and queued by a reader task."""

    def __init__(self, ws, name):
        self.ws = ws
        self.name = name
        self.queue = asyncio.Queue()
        self.cursor = None  # the cursor of the last notification frame received
        self.task = asyncio.ensure_future(self._read())

    async def _read(self):
        try:
            async for msg in self.ws:
                if isinstance(msg, bytes):
                    # docs/protocol.md: the server never sends binary frames.
                    self.queue.put_nowait(("error", f"binary frame from the server: {msg[:60]!r}"))
                    continue
                try:
                    f = json.loads(msg)
                    # docs/protocol.md: a notification may carry a resume cursor.  Kept aside
                    # (tests compare frames whole), checked for its form, the last one kept.
                    if isinstance(f, dict) and f.get("type") == "notification" and "cursor" in f:
                        cur = f.pop("cursor")
                        if not (isinstance(cur, str) and CURSOR_RE.fullmatch(cur)):
                            self.queue.put_nowait(("error", f"malformed cursor {cur!r}"))
                        self.cursor = cur
                    self.queue.put_nowait(("frame", f))
                except ValueError:
                    self.queue.put_nowait(("error", f"frame is not JSON: {msg[:200]!r}"))
        except websockets.exceptions.ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001 - reported through the queue
            self.queue.put_nowait(("error", f"reader: {e!r}"))
        self.queue.put_nowait(("closed", (self.ws.close_code, self.ws.close_reason)))

    @classmethod
    async def connect(cls, daemon, name, query="", subprotocols=("livenotify.v1",), **kw):
        ws = await asyncio.wait_for(
            websockets.connect(daemon.url(query), subprotocols=list(subprotocols),
                               open_timeout=None, close_timeout=2, ping_interval=None,
                               max_size=4 * 1024 * 1024, **kw),
            FRAME_TIMEOUT)
        return cls(ws, name)

    @classmethod
    async def authed(cls, daemon, name, user, query_extra="", hello=True):
        """Connect as `user` with the daemon's credentials and consume the hello frame."""
        if daemon.auth == "jwt":
            q = f"token={token_for(user)}"
        elif daemon.auth == "none":
            q = f"user={user}"
        else:
            raise ValueError(daemon.auth)
        c = await cls.connect(daemon, name, q + (f"&{query_extra}" if query_extra else ""))
        if hello:
            await c.expect_hello(user)
        return c

    async def next(self, what="a frame", timeout=FRAME_TIMEOUT):
        try:
            kind, value = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise Failure(f"{self.name}: nothing within {timeout}s while waiting for {what}")
        if kind == "closed":
            self.queue.put_nowait((kind, value))  # stays closed for later calls
            raise Failure(f"{self.name}: socket closed {value} while waiting for {what}")
        if kind == "error":
            raise Failure(f"{self.name}: {value}")
        return value

    async def expect_hello(self, user, epoch=None):
        f = await self.next("hello")
        check_eq(f.get("type"), "hello", f"{self.name}: first frame type ({f})")
        check_eq(f.get("user"), str(user), f"{self.name}: hello user")
        check_eq(f.get("protocol"), 1, f"{self.name}: hello protocol")
        check(isinstance(f.get("epoch"), int), f"{self.name}: hello epoch is not an integer: {f}")
        if epoch is not None:
            check_eq(f["epoch"], epoch, f"{self.name}: hello epoch (livenotify.position())")
        return f

    async def expect_marker(self, n, what="the marker"):
        f = await self.next(what)
        check_eq(f, {"type": "test_marker", "n": n},
                 f"{self.name}: expected only the marker {n} here (an unexpected frame arrived)")

    async def closed(self, timeout=FRAME_TIMEOUT):
        """Wait for the socket to be closed by the server; returns (code, reason)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                kind, value = await asyncio.wait_for(self.queue.get(), max(left, 0.01))
            except asyncio.TimeoutError:
                raise Failure(f"{self.name}: still open after {timeout}s (expected a close)")
            if kind == "closed":
                self.queue.put_nowait((kind, value))
                return value

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 3)
        except Exception:  # noqa: BLE001 - closing a socket that may already be gone
            pass
        self.task.cancel()

    async def ping(self):
        await self.ws.send(json.dumps({"type": "ping"}))
        check_eq(await self.next("pong"), {"type": "pong"}, f"{self.name}: answer to ping")


async def close_all(*clients):
    await asyncio.gather(*(c.close() for c in clients if c is not None))


async def resumed_ids(c, marker_n, want, what):
    """The ids of the notification frames tab c gets before test marker marker_n, checked to
    hold every id of `want` exactly once (the caller checks the order it expects)."""
    got = []
    while True:
        f = await c.next(f"row {len(got) + 1} of {len(want)} or the marker (got ids {got})")
        if f == {"type": "test_marker", "n": marker_n}:
            break
        check_eq(f.get("type"), "notification", f"{what} ({f})")
        got.append(f["id"])
    dups = sorted({i for i in got if got.count(i) > 1})
    check(not dups, f"rows delivered twice: {dups} (stream {got})")
    missing = sorted(set(want) - set(got))
    check(not missing, f"rows never delivered: {missing} (stream {got})")
    return got


def expected_notification(db, nid, unread):
    return {"type": "notification", "source": SOURCE, "id": nid, "notification": db.row(nid),
            "unread_count": unread}


def raw_frame(opcode, payload, fin=True, rsv=0):
    """A client frame (masked, as RFC 6455 requires) built by hand."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


# --------------------------------------------------------------------------------------
# The tests


class Ctx:
    def __init__(self, opts):
        self.opts = opts
        self.db = Db(opts.conninfo)
        self.jwt = None  # main daemon, JWT HS256
        self.none = None  # auth = none, small catch-up limit
        self.sql = None  # auth = sql (DRF authtoken_token)
        self.marker = 0

    def daemons(self):
        return [d for d in (self.jwt, self.none, self.sql) if d is not None]

    async def markers(self, *groups):
        """Send a marker to each user and check every tab's next frame is that marker.

        groups: (user, [clients]) pairs."""
        sent = []
        for user, clients in groups:
            self.marker += 1
            self.db.send(user, "test_marker", {"n": self.marker})
            sent.append((self.marker, clients))
        for n, clients in sent:
            for c in clients:
                await c.expect_marker(n)

    async def bystander_ok(self, daemon, bystander, user):
        """The daemon still serves others: healthz 200 and a connected client gets its row."""
        check(daemon.alive(), f"livenotifyd {daemon.name} exited: {daemon.proc.poll()}")
        status, body = await daemon.http("/healthz")
        check_eq(status, 200, f"GET /healthz after the test ({body!r})")
        nid, _ = self.db.insert(user, "like", "bystander")
        f = await bystander.next("the bystander's notification")
        check_eq(f.get("id"), nid, "bystander still receives its rows")


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


async def three_tabs(d, ua, ub):
    a1 = await Client.authed(d, "A/tab1", ua)
    a2 = await Client.authed(d, "A/tab2", ua)
    b1 = await Client.authed(d, "B/tab1", ub)
    return a1, a2, b1


def count_frame(n):
    return {"type": "unread_count", "source": SOURCE, "unread_count": n}


@contextlib.asynccontextmanager
async def own_source(ctx, table, user):
    """A table of its own (owner text, kind text, is_read and seen booleans) registered on
    is_read, a daemon of its own (auth none) and one tab of `user` on it: tests that change
    the whole source (TRUNCATE, registering again) stay out of everyone else's way.
    Yields (daemon, tab); drops all of it afterwards."""
    db = ctx.db
    d = Daemon(ctx.opts, table, ["--auth=none"])
    await d.start()
    tab = None
    try:
        db.rows(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, owner text NOT NULL,"
                " kind text NOT NULL, is_read boolean NOT NULL DEFAULT false,"
                " seen boolean NOT NULL DEFAULT false)")
        db.rows("SELECT livenotify.register(%s, 'owner', 'kind', 'id', 'is_read')", table)
        tab = await Client.authed(d, table, user)
        yield d, tab
    finally:
        await close_all(tab)
        d.stop()
        db.rows("SELECT livenotify.unregister(%s) FROM livenotify.sources WHERE source = %s",
                table, table)
        db.rows(f"DROP TABLE IF EXISTS {table}")


def run_inserter(conninfo, user, count, start_evt, prefix):
    """Insert `count` rows, one per transaction, with small random pauses (thread body)."""
    conn = psycopg2.connect(conninfo)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            start_evt.wait(10)
            for i in range(count):
                cur.execute("INSERT INTO api_notification (user_id, type, title, message)"
                            " VALUES (%s, 'like', %s, 'seam')", (user, f"{prefix} {i}"))
                time.sleep(random.uniform(0, 0.008))
    finally:
        conn.close()


async def resume_round(ctx, user, last_id, missed, live, inserters, query_for_resume,
                       missed_message="m"):
    """Miss `missed` rows, then reconnect with last_id while `inserters` threads insert `live`
    rows each.  Returns the new last id after checking: hello first, then every row with an
    id > last_id exactly once, no other frame."""
    db = ctx.db
    for i in range(missed):
        db.insert(user, "like", f"missed {i}", missed_message)
    start_evt = threading.Event()
    threads = [threading.Thread(target=run_inserter,
                                args=(ctx.opts.conninfo, user, live, start_evt, f"live{k}"))
               for k in range(inserters)]
    for t in threads:
        t.start()
    # Start inserting, and reconnect while the rows are committing: the seam under load.
    start_evt.set()
    await asyncio.sleep(random.uniform(0.005, 0.03))
    c = await query_for_resume(last_id)
    try:
        await c.expect_hello(user)
        await asyncio.to_thread(lambda: [t.join(20) for t in threads])
        want = [r[0] for r in db.rows(
            "SELECT id FROM api_notification WHERE user_id = %s AND id > %s ORDER BY id",
            user, last_id)]
        check_eq(len(want), missed + live * inserters, "rows inserted for the round")
        # Everything up to a marker sent after the last commit: any duplicate or stray frame
        # arrives before it.
        ctx.marker += 1
        db.send(user, "test_marker", {"n": ctx.marker})
        got = await resumed_ids(c, ctx.marker, want, "frame during resume")
        check_eq(sorted(got), want, "the resumed stream has exactly the rows after last_id")
        if inserters == 1:
            # One writer: commit order is id order, and catch-up replays in id order.
            check_eq(got, want, "order of the resumed stream")
        else:
            # Two writers may commit ids out of order, but the replayed rows (the missed
            # ones) come first in id order.
            check_eq(got[:missed], want[:missed], "missed rows first, in id order")
        return max(got)
    finally:
        await c.close()


async def expect_http_refusal(d, query, status, what, headers=None):
    try:
        c = await Client.connect(d, what, query, extra_headers=headers)
    except websockets.exceptions.InvalidStatusCode as e:
        check_eq(e.status_code, status, f"{what}: HTTP status of the refused upgrade")
        return
    first = None
    try:
        first = await c.next("anything", timeout=1.0)
    except Failure:
        pass
    await c.close()
    raise Failure(f"{what}: upgrade accepted, expected HTTP {status} (first frame {first})")


def openssl(*args, data=None):
    r = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=30)
    if r.returncode != 0:
        raise Failure(f"openssl {' '.join(args)}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def make_rs256(claims, key_path):
    signing_input = b64url(json.dumps({"alg": "RS256", "typ": "JWT"})) + "." + b64url(json.dumps(claims))
    sig = openssl("dgst", "-sha256", "-sign", key_path, data=signing_input.encode())
    return signing_input + "." + b64url(sig)


async def garbage_peer(port, blob, timeout):
    """Write `blob` on a fresh TCP connection; returns what the daemon answered before it
    closed the connection, or raises Failure if it is still open after `timeout`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = b""
    try:
        writer.write(blob)
        await writer.drain()
        deadline = time.monotonic() + timeout
        while True:
            data = await asyncio.wait_for(reader.read(65536), max(deadline - time.monotonic(), 0.01))
            if not data:
                return answer
            answer += data
    except asyncio.TimeoutError:
        raise Failure(f"connection after garbage {blob[:24]!r}... still open after {timeout}s"
                      f" (answer {answer[:60]!r})")
    except ConnectionError:
        return answer
    finally:
        writer.close()


async def send_may_close(c, msg):
    """Send a message the daemon may close the socket over before it is fully written."""
    try:
        await c.ws.send(msg)
    except websockets.exceptions.ConnectionClosed:
        pass


class RawClient:
    """A WebSocket client on a bare socket, for a peer that stops reading (the slow-client
    test): its receive buffer is made tiny so the daemon's frames pile up on its side."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    @classmethod
    async def connect(cls, port, query):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect, so the advertised window stays small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(sock, (
            f"GET /ws?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: livenotify.v1\r\n\r\n").encode())
        c = cls(sock)
        while b"\r\n\r\n" not in c.buf:
            await c._fill(FRAME_TIMEOUT)
        head, c.buf = c.buf.split(b"\r\n\r\n", 1)
        check(head.startswith(b"HTTP/1.1 101"), f"raw client upgrade: {head[:60]!r}")
        return c

    async def _fill(self, timeout):
        try:
            data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sock, 65536), timeout)
        except asyncio.TimeoutError:
            raise Failure(f"raw client: nothing within {timeout}s")
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    async def frame(self, timeout=FRAME_TIMEOUT):
        """(opcode, payload) of the next server frame (server frames are not masked)."""
        while True:
            n, off = (self.buf[1] & 0x7F, 2) if len(self.buf) >= 2 else (None, 0)
            if n == 126:
                n, off = (struct.unpack("!H", self.buf[2:4])[0], 4) if len(self.buf) >= 4 else (None, 0)
            elif n == 127:
                n, off = (struct.unpack("!Q", self.buf[2:10])[0], 10) if len(self.buf) >= 10 else (None, 0)
            if n is not None and len(self.buf) >= off + n:
                op, payload = self.buf[0] & 0x0F, self.buf[off:off + n]
                self.buf = self.buf[off + n:]
                return op, payload
            await self._fill(timeout)

    def close(self):
        self.sock.close()


def run_daemon_cli(opts, *args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("LIVENOTIFY_")}
    e.update(env or {})
    return subprocess.run([opts.daemon, *args], capture_output=True, text=True, timeout=10, env=e)


async def connect_early(d, name, timeout=10.0):
    """Connect to a daemon just spawned, retrying every 2 ms until it listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await Client.connect(d, name)
        except (OSError, websockets.exceptions.InvalidHandshake, asyncio.TimeoutError):
            check(d.alive(), f"livenotifyd {d.name} exited: {d.proc.poll()}\n{d.log_tail()}")
            check(time.monotonic() < deadline, f"{name}: livenotifyd {d.name} never listened")
            await asyncio.sleep(0.002)


async def early_resume(ctx, name, user, args):
    """A client that authenticates (with last_id) before the daemon first reached the
    database gets the rows after last_id exactly once, then live frames, and no resync.

    The daemon's first database session is held up deterministically: the catalog table
    its reader reads first (livenotify.source_tables, under livenotify.sources) is locked
    until the client has its hello (epoch 0: the daemon has not reached the database).
    Rows are committed while the lock is released and the reader takes its starting
    position, so the catch-up/live seam of the first connection is under load too."""
    db = ctx.db
    seen, _ = db.insert(user, "like", "seen")
    missed = [db.insert(user, "like", f"missed {i}")[0] for i in range(4)]
    other = user + 1  # a socket opened early without a resume: it may have missed rows
    lock = psycopg2.connect(ctx.opts.conninfo)
    d = Daemon(ctx.opts, name, ["--auth=jwt", "--jwt-alg=HS256", f"--jwt-audience={JWT_AUDIENCE}",
                                f"--jwt-issuer={JWT_ISSUER}", "--reconnect-min-ms=50",
                                "--reconnect-max-ms=500", *args],
               {"LIVENOTIFY_JWT_SECRET": JWT_SECRET})
    tabs, threads = [], []
    try:
        with lock.cursor() as cur:
            cur.execute("SET lock_timeout = '20s'")
            cur.execute("LOCK TABLE livenotify.source_tables IN ACCESS EXCLUSIVE MODE")
        await d.start(healthy=None)
        c = await connect_early(d, "early resume")
        tabs.append(c)
        await c.ws.send(json.dumps({"type": "auth", "token": token_for(user), "last_id": seen}))
        await c.expect_hello(user, epoch=0)
        o = await connect_early(d, "early tab without resume")
        tabs.append(o)
        await o.ws.send(json.dumps({"type": "auth", "token": token_for(other)}))
        await o.expect_hello(other, epoch=0)
        # Rows committing while the reader gets through and takes its position.
        start_evt = threading.Event()
        threads = [threading.Thread(target=run_inserter,
                                    args=(ctx.opts.conninfo, user, 30, start_evt, "seam"))]
        for t in threads:
            t.start()
        start_evt.set()
        await asyncio.sleep(random.uniform(0.005, 0.03))
        lock.rollback()
        await asyncio.to_thread(lambda: [t.join(20) for t in threads])
        check(await d.wait_health(200, 15.0), f"livenotifyd {name} did not reach the database")
        want = [r[0] for r in db.rows(
            "SELECT id FROM api_notification WHERE user_id = %s AND id > %s ORDER BY id",
            user, seen)]
        check_eq(len(want), len(missed) + 30, "rows inserted")
        ctx.marker += 1
        db.send(user, "test_marker", {"n": ctx.marker})
        db.send(other, "test_marker", {"n": ctx.marker})
        got = await resumed_ids(c, ctx.marker, want, "frame of the early resume")
        check_eq(got, want, "the early resume's stream: the rows after last_id, in order")
        # The early socket without a resume: one resync (it may have missed rows), nothing else.
        check_eq(await o.next("resync of the early tab without resume"),
                 {"type": "resync", "reason": "epoch"}, "early tab without resume")
        await o.expect_marker(ctx.marker)
        # Live frames after the seam.
        nid, _ = db.insert(user, "like", "live")
        check_eq(await c.next("live row"), expected_notification(db, nid, db.unread(user)),
                 "live row after the early resume")
        await ctx.markers((user, (c,)), (other, (o,)))
    finally:
        lock.close()
        await asyncio.to_thread(lambda: [t.join(20) for t in threads])
        await close_all(*tabs)
        d.stop()


METRIC_NAMES = [
    # docs/protocol.md: sockets, users, frames and bytes sent, slow-client closes, auth
    # failures, rejected connections, queued bytes, queue lag, entries read, lost entries,
    # resyncs, catch-up rows, database reconnects and errors, db_up, last sequence number.
    r"livenotifyd_sockets", r"livenotifyd_users", r"livenotifyd_frames_sent\w*",
    r"livenotifyd_bytes_sent\w*", r"livenotifyd_slow_client\w*", r"livenotifyd_auth_failures\w*",
    r"livenotifyd_rejected\w*", r"livenotifyd_queued_bytes", r"livenotifyd_queue_lag\w*",
    r"livenotifyd_entries_read\w*", r"livenotifyd_lost\w*", r"livenotifyd_overflow\w*",
    r"livenotifyd_resyncs\w*",
    r"livenotifyd_catchup_rows\w*", r"livenotifyd_db_reconnects\w*", r"livenotifyd_db_errors\w*",
    r"livenotifyd_db_up", r"livenotifyd_last_seq\w*",
]
SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$")


def parse_metrics(body):
    samples = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise Failure(f"/metrics line is not Prometheus text format: {line!r}")
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples


async def reader_caught_up(ctx, d, timeout=FRAME_TIMEOUT):
    """Wait until daemon d's reader has read every committed entry."""
    want = float(ctx.db.one("SELECT last_seq FROM livenotify.position()"))
    deadline = time.monotonic() + timeout
    while (got := await metric(d, "livenotifyd_last_seq")) != want:
        check(time.monotonic() < deadline, f"livenotifyd_last_seq {got}, queue at {want}")
        await asyncio.sleep(0.02)


async def metric(d, name):
    status, body = await d.scrape()
    if status != 200:
        return None
    return parse_metrics(body).get(name)


async def log_line(d, fragment, timeout=2.0):
    """Whether daemon d's log has a line containing `fragment` (waiting up to `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(d.log_path, errors="replace") as f:
                if any(fragment in line for line in f):
                    return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)


def pg_ctl(opts, *args):
    # PostgreSQL refuses root: run as its owner, from a directory it can read (test/lib.sh).
    return subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(opts.pg_bin, "pg_ctl"),
                           "-D", os.path.join(opts.cluster_dir, "data"), *args],
                          cwd="/tmp", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=90)


def cluster_running(opts):
    return os.path.exists(os.path.join(opts.cluster_dir, "data", "postmaster.pid"))


def cluster_start(opts):
    r = pg_ctl(opts, "-l", os.path.join(opts.cluster_dir, "log", "postgresql.log"), "-w", "-t", "60", "start")
    if r.returncode != 0:
        raise Failure(f"pg_ctl start failed: {r.stderr.decode(errors='replace')}")


# --------------------------------------------------------------------------------------


async def main_async(opts):
    ctx = Ctx(opts)
    jwt_env = {"LIVENOTIFY_JWT_SECRET": JWT_SECRET}
    ctx.jwt = Daemon(opts, "jwt", ["--auth=jwt", "--jwt-alg=HS256", f"--jwt-audience={JWT_AUDIENCE}",
                                   f"--jwt-issuer={JWT_ISSUER}", f"--auth-timeout-ms={AUTH_TIMEOUT_MS}",
                                   "--reconnect-min-ms=50", "--reconnect-max-ms=500"], jwt_env)
    ctx.none = Daemon(opts, "none", ["--auth=none", f"--catchup-max-rows={CATCHUP_MAX_ROWS}",
                                     "--reconnect-min-ms=50", "--reconnect-max-ms=500"])
    ctx.sql = Daemon(opts, "sql", ["--auth=sql", f"--auth-query={SQL_AUTH_QUERY}",
                                   f"--allowed-origins={ALLOWED_ORIGIN}",
                                   f"--max-sockets-per-user={MAX_SOCKETS_PER_USER}",
                                   "--reconnect-min-ms=50", "--reconnect-max-ms=500"])
    passed = failed = 0
    try:
        for d in ctx.daemons():
            await d.start()
        for fn in TESTS:
            name = fn.__name__
            if opts.only and not any(o in name for o in opts.only):
                continue
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(fn(ctx), TEST_TIMEOUT * STRESS)
                dead = [d for d in ctx.daemons() if not d.alive()]
                if dead:
                    raise Failure(f"livenotifyd {dead[0].name} exited with {dead[0].proc.poll()}"
                                  f"\n{dead[0].log_tail()}")
                passed += 1
                print(f"ok {name} ({time.monotonic() - t0:.1f}s)", flush=True)
            except Exception as e:  # noqa: BLE001 - any error fails this test, not the run
                failed += 1
                why = str(e) if isinstance(e, Failure) else "".join(
                    traceback.format_exception_only(type(e), e)).strip()
                if isinstance(e, asyncio.TimeoutError):
                    why = f"did not finish within {TEST_TIMEOUT}s"
                print(f"FAILED {name}: {why}", flush=True)
                if opts.verbose and not isinstance(e, Failure):
                    traceback.print_exc()
                for d in ctx.daemons():
                    if not d.alive():
                        print(f"    livenotifyd {d.name} is gone:\n{d.log_tail()}", flush=True)
                        # Later tests need it: start it again.
                        await d.start()
    except Failure as e:
        failed += 1
        print(f"FAILED setup: {e}", flush=True)
    finally:
        for d in ctx.daemons():
            d.stop()
        ctx.db.reset()
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--daemon", required=True, help="path of livenotifyd")
    ap.add_argument("--conninfo", required=True, help="libpq connection string of the test database")
    ap.add_argument("--cluster-dir", required=True, help="cluster directory (test/lib.sh cluster_start)")
    ap.add_argument("--pg-bin", required=True, help="PostgreSQL bin directory (pg_ctl)")
    ap.add_argument("--workdir", required=True, help="daemon logs and pid file")
    ap.add_argument("--only", action="append", help="run the tests whose name contains this")
    ap.add_argument("-v", "--verbose", action="store_true")
    opts = ap.parse_args()
    opts.pidfile = os.path.join(opts.workdir, "daemons.pid")
    global VERBOSE
    VERBOSE = opts.verbose
    return asyncio.run(main_async(opts))


# --------------------------------------------------------------------------------------
# Raw HTTP (issue 12): requests no HTTP library sends as written (paths, versions, headers).


async def raw_http(port, request, timeout=3.0):
    """Send `request` (bytes, a complete request) on a fresh connection; returns
    (status, headers as a lower-cased dict, body) of what came back until the daemon closed
    or `timeout` passed (an upgraded socket stays open); status None if nothing came."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = b""
    try:
        writer.write(request)
        await writer.drain()
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in answer or not answer.startswith(b"HTTP/1.1 101"):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            data = await asyncio.wait_for(reader.read(65536), left)
            if not data:
                break
            answer += data
    except (asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0]) if lines else None
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return (int(m.group(1)) if m else None), headers, body


def http_request(path, headers=(), version="HTTP/1.1"):
    """A GET request with `headers` (name, value) pairs and Connection: close."""
    lines = [f"GET {path} {version}", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers),
             "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
