#!/usr/bin/python3
"""End-to-end tests of livenotifyd: a private cluster, real daemons, real WebSocket clients.

Started by test/integration/run.sh, which creates the cluster, the database with the
Django-shaped api_notification table (registered with livenotify.register) and passes
everything on the command line.  This file starts and stops the daemons itself, because
some tests need particular settings or kill them.

Every expectation comes from docs/protocol.md, docs/sql-api.md and `livenotifyd --help`.  Each test prints
`ok NAME` or `FAILED NAME: why`; the last line is `N passed, N failed`.

To keep tests from disturbing one another, each test uses its own user ids, so frames of
another test can never be mistaken for its own.  "Nothing else arrived" is checked with a
marker: an ephemeral `test_marker` frame sent after the operations under test.  The queue is
ordered, so any frame the daemon wrongly delivered would reach the tab before the marker;
this avoids fixed sleeps.
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
        self.log_path = os.path.join(opts.workdir, f"livenotifyd-{name}.log")

    async def start(self, healthy=200):
        """Start and wait for GET /healthz to answer `healthy` (503: the database is down;
        None: do not wait, the caller connects at once)."""
        # A free port can be taken between the probe and the bind: try a few.
        for _ in range(3):
            self.port = free_port()
            env = dict(os.environ)
            # Only the settings given here: no PG* or LIVENOTIFY_* leaking from the caller.
            for k in list(env):
                if k.startswith("LIVENOTIFY_") or k.startswith("PG"):
                    del env[k]
            env.update(self.env)
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [self.opts.daemon, "--listen-address=127.0.0.1", f"--port={self.port}",
                 f"--database-url={self.opts.conninfo}", "--log-level=debug", *self.args],
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
        return asyncio.to_thread(http_get, self.port, path)

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


@test
async def hello_carries_user_and_epoch(ctx):
    c = await Client.authed(ctx.jwt, "tab", 100, hello=False)
    try:
        await c.expect_hello(100, epoch=ctx.db.epoch())
    finally:
        await c.close()


@test
async def delivery_two_users_exact_frames(ctx):
    db, A, B = ctx.db, 1001, 1002
    a1, a2, b1 = await three_tabs(ctx.jwt, A, B)
    try:
        # One transaction at a time, each frame awaited before the next commit, so that the
        # count spliced into each frame is known: the user's unread rows after that commit.
        for i, (user, tabs) in enumerate([(A, (a1, a2)), (B, (b1,)), (A, (a1, a2)),
                                          (B, (b1,)), (A, (a1, a2))]):
            nid, _ = db.insert(user, "like", f"row {i}", f"for {user}")
            want = expected_notification(db, nid, db.unread(user))
            for t in tabs:
                check_eq(await t.next(f"row {nid}"), want, f"{t.name}: frame for row {nid}")
        # Two rows in one transaction: two frames, in order, both with the count after commit.
        ids = [r[0] for r in db.rows(
            "INSERT INTO api_notification (user_id, type, title, message)"
            " VALUES (%s, 'comment', 'x', 'one'), (%s, 'comment', 'x', 'two') RETURNING id", A, A)]
        n = db.unread(A)
        for t in (a1, a2):
            for nid in ids:
                check_eq(await t.next(f"row {nid}"), expected_notification(db, nid, n),
                         f"{t.name}: frame for row {nid} of a two-row transaction")
        # Rows of both users in one transaction: each frame carries its own user's count.
        ids = dict(db.rows(
            "INSERT INTO api_notification (user_id, type, title, message)"
            " VALUES (%s, 'like', 'x', 'both'), (%s, 'like', 'x', 'both') RETURNING user_id, id", A, B))
        for user, tabs in ((A, (a1, a2)), (B, (b1,))):
            want = expected_notification(db, ids[user], db.unread(user))
            for t in tabs:
                check_eq(await t.next("row of a two-user transaction"), want,
                         f"{t.name}: frame of a transaction with rows for both users")
        # Nothing else reached any tab: B got none of A's rows, A none of B's.
        await ctx.markers((A, (a1, a2)), (B, (b1,)))
    finally:
        await close_all(a1, a2, b1)


@test
async def many_users_random_routing(ctx):
    """20 users with two tabs each, rows in random transactions from two writers: every tab
    gets exactly its user's rows, each once, and one writer's rows in commit order."""
    users = list(range(1201, 1221))
    tabs = {}
    try:
        for u in users:
            tabs[u] = [await Client.authed(ctx.jwt, f"user {u} tab {k}", u) for k in (1, 2)]
        rng = random.Random()
        plan = [[rng.choice(users) for _ in range(rng.randint(1, 5))] for _ in range(120)]

        def writer(k, part):
            conn = psycopg2.connect(ctx.opts.conninfo)
            try:
                for tx in part:
                    with conn, conn.cursor() as cur:
                        for u in tx:
                            cur.execute("INSERT INTO api_notification (user_id, type, title, message)"
                                        " VALUES (%s, 'like', %s, 'm')", (u, f"routing {k}"))
            finally:
                conn.close()

        await asyncio.gather(asyncio.to_thread(writer, 0, plan[0::2]),
                             asyncio.to_thread(writer, 1, plan[1::2]))
        for u in users:
            ctx.marker += 1
            ctx.db.send(u, "test_marker", {"n": ctx.marker})
            want = [r[0] for r in ctx.db.rows(
                "SELECT id FROM api_notification WHERE user_id = %s AND title LIKE 'routing %%'"
                " ORDER BY id", u)]
            for t in tabs[u]:
                got, per_writer = [], {}
                while (f := await t.next("rows, then the marker")) != {"type": "test_marker", "n": ctx.marker}:
                    check_eq((f.get("type"), f.get("notification", {}).get("user_id")),
                             ("notification", u), f"{t.name}: frame {f}")
                    got.append(f["id"])
                    per_writer.setdefault(f["notification"]["title"], []).append(f["id"])
                dups = sorted({i for i in got if got.count(i) > 1})
                check(not dups, f"{t.name}: rows delivered twice: {dups}")
                check_eq(sorted(got), want, f"{t.name}: ids of its user's rows")
                for w, ids in per_writer.items():
                    check_eq(ids, sorted(ids), f"{t.name}: order of the rows of writer '{w}'")
    finally:
        await close_all(*(t for ts in tabs.values() for t in ts))


@test
async def skipped_types_not_delivered(ctx):
    db, A, B = ctx.db, 1011, 1012
    a1, a2, b1 = await three_tabs(ctx.jwt, A, B)
    try:
        # Never delivered as notifications; but they are unread rows, so each transaction
        # that adds one pushes the user's new count (docs/protocol.md, unread_count).
        for n, t in enumerate(("event", "message"), 1):
            db.insert(A, t, f"skipped {t}")
            for tab in (a1, a2):
                check_eq(await tab.next(f"count after a skipped {t} row"),
                         {"type": "unread_count", "source": SOURCE, "unread_count": n},
                         f"{tab.name}: only the count for a skipped {t} row")
        # A skipped row that is already read changes no count: nothing at all.
        db.rows("INSERT INTO api_notification (user_id, type, title, message, is_read)"
                " VALUES (%s, 'event', 'read event', 'm', true)", A)
        await ctx.markers((A, (a1, a2)), (B, (b1,)))
        # The skipped rows are still unread rows of the table: the next count includes them.
        nid, _ = db.insert(A, "like", "delivered")
        check_eq(db.unread(A), 3, "unread rows in the table")
        for t in (a1, a2):
            check_eq(await t.next("the delivered row"), expected_notification(db, nid, 3),
                     f"{t.name}: row after two skipped ones")
    finally:
        await close_all(a1, a2, b1)


@test
async def rolled_back_insert_delivers_nothing(ctx):
    db, A, B = ctx.db, 1021, 1022
    a1, a2, b1 = await three_tabs(ctx.jwt, A, B)
    ins = "INSERT INTO api_notification (user_id, type, title, message) VALUES (%s, 'like', %s, 'm')"
    try:
        db.script([("BEGIN", ()), (ins, (A, "rolled back")), (ins, (B, "rolled back")),
                   ("ROLLBACK", ())])
        await ctx.markers((A, (a1, a2)), (B, (b1,)))
        # A rolled-back savepoint drops its rows, the rest of the transaction is delivered.
        db.script([("BEGIN", ()), ("SAVEPOINT s", ()), (ins, (A, "savepoint rolled back")),
                   ("ROLLBACK TO SAVEPOINT s", ()), (ins, (A, "kept")), ("COMMIT", ())])
        nid = db.one("SELECT id FROM api_notification WHERE user_id = %s AND title = 'kept'", A)
        want = expected_notification(db, nid, db.unread(A))
        for t in (a1, a2):
            check_eq(await t.next("the committed row"), want, f"{t.name}: only the kept row")
        await ctx.markers((A, (a1, a2)), (B, (b1,)))
        check_eq(db.one("SELECT count(*) FROM api_notification WHERE user_id = %s", B), 0,
                 "B has no rows (rolled back)")
    finally:
        await close_all(a1, a2, b1)


@test
async def send_arrives_as_new_message(ctx):
    db, A, B = ctx.db, 1031, 1032
    a1, a2, b1 = await three_tabs(ctx.jwt, A, B)
    try:
        payload = {"message": {"from": "ann", "text": "hi", "room": 7}}
        db.send(A, "new_message", payload)
        for t in (a1, a2):
            check_eq(await t.next("new_message"), {"type": "new_message", **payload},
                     f"{t.name}: send() frame")
        # send() is transactional: a rolled-back one is never delivered.
        db.script([("BEGIN", ()),
                   ("SELECT livenotify.send(%s, 'new_message', '{\"message\":{}}')", (str(A),)),
                   ("ROLLBACK", ())])
        await ctx.markers((A, (a1, a2)), (B, (b1,)))
    finally:
        await close_all(a1, a2, b1)


@test
async def mark_as_read_pushes_unread_count(ctx):
    db, A, B = ctx.db, 1041, 1042
    a1, a2, b1 = await three_tabs(ctx.jwt, A, B)
    try:
        ids = []
        for i in range(3):
            nid, _ = db.insert(A, "like", f"row {i}")
            ids.append(nid)
            for t in (a1, a2):
                check_eq((await t.next(f"row {nid}")).get("unread_count"), i + 1,
                         f"{t.name}: unread_count of row {i + 1}")
        db.rows("UPDATE api_notification SET is_read = true WHERE id = %s", ids[0])
        for t in (a1, a2):
            check_eq(await t.next("unread_count after reading one row"),
                     {"type": "unread_count", "source": SOURCE, "unread_count": 2},
                     f"{t.name}: frame after marking one row read")
        db.rows("UPDATE api_notification SET is_read = true WHERE user_id = %s", A)
        for t in (a1, a2):
            check_eq(await t.next("unread_count after reading all"),
                     {"type": "unread_count", "source": SOURCE, "unread_count": 0},
                     f"{t.name}: frame after marking all rows read")
        # One UPDATE for two users: each user's tabs get their own count.
        db.insert(B, "like", "b unread")
        check_eq((await b1.next("B's row")).get("unread_count"), 1, "B's count")
        db.insert(A, "like", "a unread")
        for t in (a1, a2):
            check_eq((await t.next("A's row")).get("unread_count"), 1, f"{t.name}: A's count")
        db.insert(A, "like", "a unread 2")
        for t in (a1, a2):
            check_eq((await t.next("A's row")).get("unread_count"), 2, f"{t.name}: A's count")
        db.rows("UPDATE api_notification SET is_read = true WHERE id = (SELECT max(id) FROM"
                " api_notification WHERE user_id = %s) OR user_id = %s", A, B)
        for user, tabs, n in ((A, (a1, a2), 1), (B, (b1,), 0)):
            for t in tabs:
                check_eq(await t.next("unread_count of a two-user UPDATE"),
                         {"type": "unread_count", "source": SOURCE, "unread_count": n},
                         f"{t.name}: count after an UPDATE for both users")
        # An UPDATE that does not change the read column pushes nothing.
        db.rows("UPDATE api_notification SET title = 'renamed' WHERE user_id = %s", A)
        await ctx.markers((A, (a1, a2)), (B, (b1,)))
    finally:
        await close_all(a1, a2, b1)


def count_frame(n):
    return {"type": "unread_count", "source": SOURCE, "unread_count": n}


@test
async def unread_count_follows_every_change(ctx):
    """The count in the frames stays the table's count whatever changes it: a delete, a row
    moved to another user, a skipped row, a row inserted as read (docs/protocol.md)."""
    db, A, B = ctx.db, 1046, 1047
    a1, a2, b1 = await three_tabs(ctx.jwt, A, B)
    try:
        async def both(what, want):
            for t in (a1, a2):
                check_eq(await t.next(what), want, f"{t.name}: {what}")

        n1, _ = db.insert(A, "like", "one")
        await both("row one", expected_notification(db, n1, 1))
        n2, _ = db.insert(A, "like", "two")
        await both("row two", expected_notification(db, n2, 2))
        db.rows("DELETE FROM api_notification WHERE id = %s", n1)
        await both("count after deleting an unread row", count_frame(1))
        db.rows("UPDATE api_notification SET is_read = true WHERE id = %s", n2)
        await both("count after reading row two", count_frame(0))
        # Deleting a read row changes no count: nothing is pushed (checked by the marker).
        db.rows("DELETE FROM api_notification WHERE id = %s", n2)
        await ctx.markers((A, (a1, a2)))
        n3, _ = db.insert(A, "message", "skipped, unread")
        await both("count after a skipped unread row", count_frame(1))
        n4 = db.one("INSERT INTO api_notification (user_id, type, title, message, is_read)"
                    " VALUES (%s, 'like', 'born read', 'm', true) RETURNING id", A)
        await both("a row inserted as read", expected_notification(db, n4, 1))
        n5, _ = db.insert(A, "like", "three")
        await both("row three", expected_notification(db, n5, 2))
        # Two deletes and an insert in one transaction: one count, then the row.
        db.script([("BEGIN", ()),
                   ("DELETE FROM api_notification WHERE id = %s", (n3,)),
                   ("DELETE FROM api_notification WHERE id = %s", (n4,)),
                   ("INSERT INTO api_notification (user_id, type, title, message)"
                    " VALUES (%s, 'like', 'four', 'm')", (A,)),
                   ("COMMIT", ())])
        n6 = db.one("SELECT id FROM api_notification WHERE user_id = %s AND title = 'four'", A)
        check_eq(db.unread(A), 2, "A's unread rows")
        f1, f2 = await a1.next("first frame of the transaction"), await a1.next("second")
        check_eq(sorted([json.dumps(f1, sort_keys=True), json.dumps(f2, sort_keys=True)]),
                 sorted([json.dumps(count_frame(2), sort_keys=True),
                         json.dumps(expected_notification(db, n6, 2), sort_keys=True)]),
                 "a1: the delete's count and the insert, both 2")
        for _ in range(2):
            await a2.next("frame of the transaction")
        # A row handed to another user: both users' tabs get their new count.
        db.rows("UPDATE api_notification SET user_id = %s WHERE id = %s", B, n5)
        await both("A's count after losing a row", count_frame(1))
        check_eq(await b1.next("B's count after gaining a row"), count_frame(1), "b1: count")
        n7, _ = db.insert(B, "like", "b's own")
        check_eq(await b1.next("B's row"), expected_notification(db, n7, 2), "b1: B's row")
        n8, _ = db.insert(A, "like", "a after the move")
        await both("A's row after the move", expected_notification(db, n8, 2))
        await ctx.markers((A, (a1, a2)), (B, (b1,)))
    finally:
        await close_all(a1, a2, b1)


@test
async def unread_count_exact_under_concurrent_writers(ctx):
    """Writers on several connections insert (some rows read, some skipped, some rolled back)
    while others mark rows read and delete them: whatever the interleaving, the count in the
    last frame is the table's count, and most counts came from the daemon's cache."""
    db, user = ctx.db, 1048
    tab = await Client.authed(ctx.jwt, "tab", user)
    hits_before = await metric(ctx.jwt, "livenotifyd_unread_cache_hits_total")
    try:
        def writer(seed):
            rnd = random.Random(seed)
            conn = psycopg2.connect(ctx.opts.conninfo)
            try:
                cur = conn.cursor()
                for _ in range(60):
                    r = rnd.random()
                    if r < 0.70:
                        rows = rnd.randint(1, 3)
                        for _ in range(rows):
                            cur.execute(
                                "INSERT INTO api_notification (user_id, type, title, message,"
                                " is_read) VALUES (%s, %s, 'w', 'm', %s)",
                                (user, rnd.choice(["like", "like", "like", "message"]),
                                 rnd.random() < 0.1))
                    elif r < 0.80:
                        cur.execute("UPDATE api_notification SET is_read = true WHERE id = ("
                                    "SELECT min(id) FROM api_notification WHERE user_id = %s"
                                    " AND NOT is_read)", (user,))
                    elif r < 0.90:
                        cur.execute("DELETE FROM api_notification WHERE id = ("
                                    "SELECT max(id) FROM api_notification WHERE user_id = %s)",
                                    (user,))
                    else:
                        cur.execute("INSERT INTO api_notification (user_id, type, title,"
                                    " message) VALUES (%s, 'like', 'rolled back', 'm')", (user,))
                        conn.rollback()
                        continue
                    conn.commit()
            finally:
                conn.close()

        await asyncio.gather(*(asyncio.to_thread(writer, 4800 + i) for i in range(4)))
        ctx.marker += 1
        db.send(user, "test_marker", {"n": ctx.marker})
        last, frames = None, 0
        while (f := await tab.next("frames, then the marker")) != {"type": "test_marker",
                                                                   "n": ctx.marker}:
            check(f.get("type") in ("notification", "unread_count"), f"unexpected frame {f}")
            check("unread_count" in f, f"frame without a count: {f}")
            check(f.get("type") != "notification" or f["notification"]["title"] == "w",
                  f"a rolled-back row was delivered: {f}")
            last, frames = f["unread_count"], frames + 1
        check(frames > 0, "no frame at all")
        check_eq(last, db.unread(user), f"count in the last of {frames} frames")
        hits = await metric(ctx.jwt, "livenotifyd_unread_cache_hits_total")
        check(hits is not None and hits > (hits_before or 0), "no count came from the cache")
    finally:
        await close_all(tab)


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


@test
async def unread_count_after_truncate_and_reregistration(ctx):
    """TRUNCATE, and registering the source again on another read column, change every
    count of the source at once: the next frame is counted afresh."""
    db, user = ctx.db, 1049
    async with own_source(ctx, "api_truncated", user) as (d, c):
        def add(seen=False):
            return db.one("INSERT INTO api_truncated (owner, kind, seen) VALUES (%s, 'like', %s)"
                          " RETURNING id", str(user), seen)
        for n in (1, 2, 3):
            nid = add()
            f = await c.next(f"row {n}")
            check_eq((f.get("id"), f.get("unread_count")), (nid, n), f"row {n}")
        db.rows("TRUNCATE api_truncated")
        nid = add()
        f = await c.next("row after TRUNCATE")
        check_eq((f.get("id"), f.get("unread_count")), (nid, 1), "count after TRUNCATE")
        add(seen=True)
        await c.next("a row already seen")
        db.script([("BEGIN", ()),
                   ("SELECT livenotify.unregister('api_truncated')", ()),
                   ("SELECT livenotify.register('api_truncated', 'owner', 'kind', 'id', 'seen')",
                    ()),
                   ("COMMIT", ())])
        nid = add()
        f = await c.next("row after registering on 'seen'")
        check_eq((f.get("id"), f.get("unread_count")), (nid, 2),
                 "count on the new read column (2 of 3 rows unseen)")


@test
async def send_payload_shapes(ctx):
    # docs/protocol.md: object members are spliced next to `type`; a non-object payload or
    # one with its own `type` member is wrapped under `payload`; {} gives the bare kind.
    db, user = ctx.db, 1035
    c = await Client.authed(ctx.jwt, "tab", user)
    try:
        cases = [
            ({"a": 1, "b": [1, 2], "s": "\u00e9\"q"},
             {"type": "tick", "a": 1, "b": [1, 2], "s": "\u00e9\"q"}),
            ([1, 2], {"type": "tick", "payload": [1, 2]}),
            ("text", {"type": "tick", "payload": "text"}),
            (7, {"type": "tick", "payload": 7}),
            ({"type": "x", "v": 1}, {"type": "tick", "payload": {"type": "x", "v": 1}}),
            ({}, {"type": "tick"}),
        ]
        for payload, _ in cases:
            db.send(user, "tick", payload)
        for payload, want in cases:
            check_eq(await c.next(f"frame for payload {payload!r}"), want, f"send() of {payload!r}")
        await ctx.markers((user, (c,)))
    finally:
        await c.close()


@test
async def oversize_row_arrives_as_stub(ctx):
    # A row over livenotify.max_payload (8 kB) is the stub {"id":N,"truncated":true}, live
    # and on resume alike.
    db, user = ctx.db, 1036
    c = await Client.authed(ctx.jwt, "tab", user)
    try:
        base, _ = db.insert(user, "like", "small")
        check_eq((await c.next("small row"))["id"], base, "small row")
        nid, _ = db.insert(user, "like", "big", "x" * 10000)
        want = {"type": "notification", "source": SOURCE, "id": nid,
                "notification": {"id": nid, "truncated": True}, "unread_count": 2}
        check_eq(await c.next("oversize row"), want, "live frame of an oversize row")
        r = await Client.authed(ctx.jwt, "resumed tab", user, f"last_id={base}")
        try:
            check_eq(await r.next("replayed oversize row"), want, "replayed frame of an oversize row")
        finally:
            await r.close()
    finally:
        await c.close()


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


@test
async def resume_missed_rows_exactly_once(ctx):
    user = 1051
    c = await Client.authed(ctx.jwt, "tab", user)
    nid, _ = ctx.db.insert(user, "like", "seen")
    check_eq((await c.next("first row")).get("id"), nid, "first live row")
    await c.close()

    async def reconnect(last_id):
        return await Client.authed(ctx.jwt, "resumed tab", user, f"last_id={last_id}", hello=False)

    last = nid
    rounds = [(10, 40, 1), (3, 40, 1), (5, 25, 2)] * STRESS
    for rnd, (missed, live, inserters) in enumerate(rounds):
        try:
            last = await resume_round(ctx, user, last, missed, live, inserters, reconnect)
        except Failure as e:
            raise Failure(f"round {rnd + 1} ({missed} missed, {inserters} writer(s)): {e}")
    # After the seam: live rows keep coming on a resumed socket.
    c = await reconnect(last)
    try:
        await c.expect_hello(user)
        nid, _ = ctx.db.insert(user, "like", "live after resume")
        f = await c.next("live row after an empty resume")
        check_eq(f, expected_notification(ctx.db, nid, ctx.db.unread(user)), "live row after resume")
    finally:
        await c.close()


@test
async def resume_late_commit_of_smaller_id_delivered(ctx):
    """docs/protocol.md: duplicates are recognised by the exact ids replayed, not by "id <=
    the highest replayed id": a row with a smaller id that commits after the replay is live."""
    db, user = ctx.db, 1056
    seen, _ = db.insert(user, "like", "seen")
    slow_tx = psycopg2.connect(ctx.opts.conninfo)
    c = None
    try:
        with slow_tx.cursor() as cur:
            cur.execute("INSERT INTO api_notification (user_id, type, title, message)"
                        " VALUES (%s, 'like', 'late commit', 'm') RETURNING id", (user,))
            late = cur.fetchone()[0]
        early, _ = db.insert(user, "like", "early commit")
        check(early > late, f"ids: the open transaction's {late} < the committed {early}")
        c = await Client.authed(ctx.jwt, "resumed tab", user, f"last_id={seen}")
        check_eq((await c.next("replayed row"))["id"], early, "replay (the open row is invisible)")
        slow_tx.commit()
        f = await c.next("the row committed after the replay")
        check_eq(f, expected_notification(db, late, db.unread(user)),
                 f"row {late} committed after the replay of {early}")
        await ctx.markers((user, (c,)))
    finally:
        slow_tx.close()
        if c:
            await c.close()


@test
async def resume_drops_live_rows_at_or_below_last_id(ctx):
    """docs/protocol.md: on a resumed socket a live notification whose id is <= last_id is
    dropped; a socket without last_id gets it."""
    db, user = ctx.db, 1057
    slow_tx = psycopg2.connect(ctx.opts.conninfo)
    plain = resumed = None
    try:
        with slow_tx.cursor() as cur:
            cur.execute("INSERT INTO api_notification (user_id, type, title, message)"
                        " VALUES (%s, 'like', 'below last_id', 'm') RETURNING id", (user,))
            low = cur.fetchone()[0]
        high, _ = db.insert(user, "like", "last seen")
        # Connect once the daemon has delivered `high`, so that neither tab gets it live.
        await reader_caught_up(ctx, ctx.jwt)
        plain = await Client.authed(ctx.jwt, "tab without last_id", user)
        resumed = await Client.authed(ctx.jwt, "tab with last_id", user, f"last_id={high}")
        slow_tx.commit()
        check_eq((await plain.next("late row"))["id"], low, "tab without last_id gets the late row")
        await ctx.markers((user, (plain, resumed)))
    finally:
        slow_tx.close()
        await close_all(plain, resumed)


@test
async def resume_cursor_out_of_order_commit(ctx):
    """docs/protocol.md "Resume": T1 takes the smaller id and is slow, T2 takes the next and
    commits; the tab sees T2's row and leaves; T1 commits.  Resuming by last_id misses T1's
    row (its id is smaller); resuming by the cursor of the last frame replays it exactly once,
    and not T2's row again."""
    db, user = ctx.db, 1058
    slow_tx = psycopg2.connect(ctx.opts.conninfo)
    tab = by_id = by_cursor = None
    try:
        tab = await Client.authed(ctx.jwt, "tab", user)
        # A first row so that later frames are stamped from a complete read's horizon.
        first, _ = db.insert(user, "like", "first")
        check_eq((await tab.next("first row"))["id"], first, "first row live")
        with slow_tx.cursor() as cur:
            cur.execute("INSERT INTO api_notification (user_id, type, title, message)"
                        " VALUES (%s, 'like', 'slow', 'm') RETURNING id", (user,))
            slow = cur.fetchone()[0]
        fast, _ = db.insert(user, "like", "fast")
        check(slow < fast, f"the slow transaction holds the smaller id ({slow} < {fast})")
        check_eq((await tab.next("fast row"))["id"], fast, "the tab sees the fast row")
        cursor = tab.cursor
        check(cursor is not None, "the fast row's frame carries a cursor")
        await tab.close()
        slow_tx.commit()
        await reader_caught_up(ctx, ctx.jwt)
        by_id = await Client.authed(ctx.jwt, "resumed by last_id", user, f"last_id={fast}")
        by_cursor = await Client.authed(ctx.jwt, "resumed by cursor", user,
                                        "cursor=" + urllib.parse.quote(cursor))
        ctx.marker += 1
        db.send(user, "test_marker", {"n": ctx.marker})
        got = await resumed_ids(by_cursor, ctx.marker, [slow], "frame during cursor resume")
        check_eq(got, [slow], "resume by cursor replays the late row once, nothing else")
        check(by_cursor.cursor is not None and by_cursor.cursor != cursor,
              "the replayed frame carries a cursor that lists it")
        # by_id got nothing before the marker: the late row is lost to it.
        await by_id.expect_marker(ctx.marker, "nothing for the tab resumed by last_id")
        # Resume again with the replayed frame's cursor: nothing is replayed twice.
        again = await Client.authed(ctx.jwt, "resumed again", user,
                                    "cursor=" + urllib.parse.quote(by_cursor.cursor))
        await ctx.markers((user, (again,)))
        await again.close()
    finally:
        slow_tx.close()
        await close_all(tab, by_id, by_cursor)


@test
async def resume_cursor_in_auth_message_and_refusals(ctx):
    """The cursor in the auth message works like the query parameter; a malformed one is
    refused (HTTP 400 in the URL, close "bad cursor" in a message); a cursor from another
    system or timeline gets resync cursor_foreign and no replay."""
    db, user = ctx.db, 1059
    tab = await Client.authed(ctx.jwt, "tab", user)
    try:
        db.insert(user, "like", "one")
        await tab.next("row one")
        db.insert(user, "like", "two")
        await tab.next("row two")
        cursor = tab.cursor
    finally:
        await tab.close()
    missed = [db.insert(user, "like", f"missed {i}")[0] for i in range(2)]
    await reader_caught_up(ctx, ctx.jwt)
    c = await Client.connect(ctx.jwt, "auth message with cursor")
    try:
        await c.ws.send(json.dumps({"type": "auth", "token": token_for(user), "cursor": cursor}))
        await c.expect_hello(user)
        ctx.marker += 1
        db.send(user, "test_marker", {"n": ctx.marker})
        got = await resumed_ids(c, ctx.marker, missed, "frame after auth with cursor")
        check_eq(got, missed, "rows replayed after an auth message with a cursor")
    finally:
        await c.close()
    parts = cursor.split(".")
    foreign_system = ".".join([parts[0], str(int(parts[1]) ^ 1)] + parts[2:])
    foreign_timeline = ".".join(parts[:2] + [str(int(parts[2]) + 1)] + parts[3:])
    for what, cur in (("another system", foreign_system), ("another timeline", foreign_timeline)):
        c = await Client.authed(ctx.jwt, f"cursor from {what}", user,
                                "cursor=" + urllib.parse.quote(cur))
        try:
            check_eq(await c.next("resync"), {"type": "resync", "reason": "cursor_foreign"},
                     f"a cursor from {what} is not trusted")
            await ctx.markers((user, (c,)))
        finally:
            await c.close()
    tok = token_for(user)
    for bad in ("v1.1.1", "v2.1.1.1", "v1.1.1.1.x", "v1.1.1." + "9" * 30):
        await expect_http_refusal(ctx.jwt, f"token={tok}&cursor={urllib.parse.quote(bad)}", 400,
                                  f"malformed cursor {bad!r}")
    c = await Client.connect(ctx.jwt, "auth message with a bad cursor")
    try:
        await c.ws.send(json.dumps({"type": "auth", "token": tok, "cursor": "v1.1.1.x"}))
        check_eq(await c.closed(), (1008, "bad cursor"), "close for a malformed cursor")
    finally:
        await c.close()


@test
async def resume_through_first_message(ctx):
    db, user = ctx.db, 1061
    base, _ = db.insert(user, "like", "seen")
    missed = [db.insert(user, "like", f"missed {i}")[0] for i in range(3)]
    # last_id in the auth message.
    c = await Client.connect(ctx.jwt, "auth message")
    try:
        await c.ws.send(json.dumps({"type": "auth", "token": token_for(user), "last_id": base}))
        await c.expect_hello(user)
        got = [(await c.next("replayed row"))["id"] for _ in missed]
        check_eq(got, missed, "rows replayed after an auth message with last_id")
        await ctx.markers((user, (c,)))
    finally:
        await c.close()
    # A resume message before the auth message.
    c = await Client.connect(ctx.jwt, "resume message")
    try:
        await c.ws.send(json.dumps({"type": "resume", "last_id": missed[0]}))
        await c.ws.send(json.dumps({"type": "auth", "token": token_for(user)}))
        await c.expect_hello(user)
        got = [(await c.next("replayed row"))["id"] for _ in missed[1:]]
        check_eq(got, missed[1:], "rows replayed after a resume message")
        await ctx.markers((user, (c,)))
    finally:
        await c.close()


@test
async def resume_catchup_limit_then_resync(ctx):
    db, user = ctx.db, 1071
    base, _ = db.insert(user, "like", "seen")
    missed = [db.insert(user, "like", f"missed {i}")[0] for i in range(CATCHUP_MAX_ROWS + 3)]
    # Connect once the daemon has read the rows: a row it reads after the socket joined is a
    # live frame, and past the replay limit it would rightly be delivered after the resync.
    await reader_caught_up(ctx, ctx.none)
    c = await Client.authed(ctx.none, "tab", user, f"last_id={base}")
    try:
        got = [(await c.next("replayed row"))["id"] for _ in range(CATCHUP_MAX_ROWS)]
        check_eq(got, missed[:CATCHUP_MAX_ROWS], f"the oldest {CATCHUP_MAX_ROWS} missed rows")
        check_eq(await c.next("resync"), {"type": "resync", "reason": "catchup_limit"},
                 "frame after the replayed rows")
        await ctx.markers((user, (c,)))
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


def jwt_case(claims_changes=None, **kw):
    return lambda: make_jwt(claims_for("1099", claims_changes), **kw)


AUTH_CASES = [
    ("auth_bad_signature", jwt_case(secret="not-the-secret")),
    ("auth_expired", jwt_case({"exp": int(time.time()) - 3600})),
    ("auth_not_yet_valid", jwt_case({"nbf": int(time.time()) + 3600})),
    ("auth_wrong_audience", jwt_case({"aud": "someone-else"})),
    ("auth_wrong_issuer", jwt_case({"iss": "someone-else"})),
    ("auth_alg_none", jwt_case(header={"alg": "none", "typ": "JWT"})),
    ("auth_missing_sub", jwt_case({"sub": None})),
    ("auth_missing_exp", jwt_case({"exp": None})),
    ("auth_missing_aud", jwt_case({"aud": None})),
    ("auth_missing_iss", jwt_case({"iss": None})),
    ("auth_expired_past_leeway", jwt_case({"exp": int(time.time()) - 30})),
    ("auth_alg_hs512", jwt_case(header={"alg": "HS512", "typ": "JWT"})),
    # One user key (docs/protocol.md): the user column is an integer, and these subjects cast
    # to user 42 but are not how PostgreSQL prints 42.  Accepted, they would get 42's rows
    # replayed by catch-up (which casts) and none of 42's live rows (groups compare text).
    ("auth_sub_leading_zero", jwt_case({"sub": "042"})),
    ("auth_sub_leading_blank", jwt_case({"sub": " 42"})),
    ("auth_sub_plus_sign", jwt_case({"sub": "+42"})),
    ("auth_sub_trailing_blank", jwt_case({"sub": "42 "})),
]


def make_auth_test(name, make_token):
    async def fn(ctx):
        bystander = await Client.authed(ctx.jwt, "bystander", 1099)
        try:
            before = await metric(ctx.jwt, "livenotifyd_auth_failures_total")
            await expect_http_refusal(ctx.jwt, f"token={make_token()}", 401, "token in the URL")
            # The same token in the first message: upgraded, then closed with 1008.
            c = await Client.connect(ctx.jwt, "token in the first message")
            await c.ws.send(json.dumps({"type": "auth", "token": make_token()}))
            code, reason = await c.closed()
            check_eq((code, reason), (1008, "unauthorized"), "close of a first-message token")
            after = await metric(ctx.jwt, "livenotifyd_auth_failures_total")
            check(after is not None and before is not None and after >= before + 2,
                  f"livenotifyd_auth_failures_total went from {before} to {after} (2 failures)")
            await ctx.bystander_ok(ctx.jwt, bystander, 1099)
        finally:
            await bystander.close()
    fn.__name__ = name
    return fn


for _name, _make in AUTH_CASES:
    test(make_auth_test(_name, _make))


@test
async def auth_no_token_times_out(ctx):
    bystander = await Client.authed(ctx.jwt, "bystander", 1099)
    try:
        c = await Client.connect(ctx.jwt, "no token")
        t0 = time.monotonic()
        code, reason = await c.closed(AUTH_TIMEOUT_MS / 1000 + 3)
        check_eq((code, reason), (1008, "authentication timeout"), "close without credentials")
        check(time.monotonic() - t0 >= AUTH_TIMEOUT_MS / 1000 - 0.2,
              "closed before auth_timeout_ms passed")
        # Garbage instead of an auth message, and a message of another type.
        for what, msg in (("invalid JSON", "{not json"), ("another type", '{"type":"ping"}')):
            c = await Client.connect(ctx.jwt, what)
            await c.ws.send(msg)
            check_eq(await c.closed(), (1008, "unauthorized"), f"close after {what} before auth")
        await ctx.bystander_ok(ctx.jwt, bystander, 1099)
    finally:
        await bystander.close()


@test
async def auth_valid_token_variants(ctx):
    # sub as an integer is used in its decimal form; aud may be an array.
    for what, claims in (("integer sub", claims_for(1098)),
                         ("aud array", claims_for("1098", {"aud": ["other", JWT_AUDIENCE]}))):
        c = await Client.connect(ctx.jwt, what, f"token={make_jwt(claims)}")
        try:
            await c.expect_hello(1098)
        finally:
            await c.close()


@test
async def auth_within_leeway_accepted(ctx):
    # jwt_leeway_s (default 10 s) of clock skew for exp and nbf.
    now = int(time.time())
    for what, changes in (("exp 3 s ago", {"exp": now - 3}), ("nbf in 3 s", {"nbf": now + 3})):
        c = await Client.connect(ctx.jwt, what, f"token={make_jwt(claims_for('1098', changes))}")
        try:
            await c.expect_hello(1098)
        finally:
            await c.close()


def openssl(*args, data=None):
    r = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=30)
    if r.returncode != 0:
        raise Failure(f"openssl {' '.join(args)}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def make_rs256(claims, key_path):
    signing_input = b64url(json.dumps({"alg": "RS256", "typ": "JWT"})) + "." + b64url(json.dumps(claims))
    sig = openssl("dgst", "-sha256", "-sign", key_path, data=signing_input.encode())
    return signing_input + "." + b64url(sig)


@test
async def auth_rs256_public_key(ctx):
    key = os.path.join(ctx.opts.workdir, "rs256-key.pem")
    pub = os.path.join(ctx.opts.workdir, "rs256-pub.pem")
    await asyncio.to_thread(openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                            "-out", key)
    await asyncio.to_thread(openssl, "pkey", "-in", key, "-pubout", "-out", pub)
    d = Daemon(ctx.opts, "rs256", ["--auth=jwt", "--jwt-alg=RS256", f"--jwt-public-key-file={pub}",
                                   f"--jwt-audience={JWT_AUDIENCE}"])
    await d.start()
    try:
        tok = await asyncio.to_thread(make_rs256, claims_for("1099"), key)
        c = await Client.connect(d, "RS256 token", f"token={tok}")
        try:
            await c.expect_hello(1099)
        finally:
            await c.close()
        # The classic algorithm confusion: HS256 "signed" with the public key as the secret.
        with open(pub) as f:
            confused = make_jwt(claims_for("1099"), secret=f.read())
        await expect_http_refusal(d, f"token={confused}", 401, "HS256 token keyed with the public key")
        await expect_http_refusal(d, f"token={make_jwt(claims_for('1099'))}", 401, "HS256 token")
        # A token signed by another key pair.
        other = os.path.join(ctx.opts.workdir, "rs256-other.pem")
        await asyncio.to_thread(openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                                "-out", other)
        forged = await asyncio.to_thread(make_rs256, claims_for("1099"), other)
        await expect_http_refusal(d, f"token={forged}", 401, "RS256 token of another key")
        check(d.alive(), "livenotifyd exited")
    finally:
        d.stop()


@test
async def user_key_escaping(ctx):
    # User keys are text (docs/sql-api.md): quotes, backslashes and non-ASCII must survive
    # into hello and reach the right sockets, and no other user's.
    db = ctx.db
    weird = 'a"b\\c\u00e9 d'
    c = await Client.connect(ctx.none, "weird user", "user=" + urllib.parse.quote(weird))
    near = await Client.authed(ctx.none, "similar user", "a")
    try:
        await c.expect_hello(weird)
        db.send(weird, "tick", {"v": 1})
        check_eq(await c.next("tick"), {"type": "tick", "v": 1}, "send() to a user key with quotes")
        await ctx.markers((weird, (c,)), ("a", (near,)))
    finally:
        await close_all(c, near)


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
async def http_admission_statuses(ctx):
    tok = token_for(1097)
    await expect_http_refusal(ctx.jwt, f"token={tok}&last_id=abc", 400, "non-numeric last_id")
    await expect_http_refusal(ctx.jwt, f"token={tok}&last_id=-1", 400, "negative last_id")
    try:
        await asyncio.wait_for(websockets.connect(
            f"ws://127.0.0.1:{ctx.jwt.port}/elsewhere?token={tok}", open_timeout=None), FRAME_TIMEOUT)
        raise Failure("wrong path: upgrade accepted, expected 404")
    except websockets.exceptions.InvalidStatusCode as e:
        check_eq(e.status_code, 404, "HTTP status for a wrong path")


@test
async def sql_auth_modes(ctx):
    db = ctx.db
    # A DRF-style 40-character key, short enough for the protocol header.
    key = hashlib.sha1(b"user 1081").hexdigest()
    db.rows("INSERT INTO authtoken_token (key, user_id) VALUES (%s, 1081) ON CONFLICT DO NOTHING", key)
    c1 = await Client.connect(ctx.sql, "token in URL", f"token={key}")
    c2 = await Client.connect(ctx.sql, "token in protocol header",
                              subprotocols=("livenotify.v1", key))
    try:
        check_eq(c2.ws.subprotocol, "livenotify.v1", "negotiated subprotocol")
        for c in (c1, c2):
            await c.expect_hello(1081)
        nid, _ = db.insert(1081, "like", "sql auth")
        want = expected_notification(db, nid, db.unread(1081))
        for c in (c1, c2):
            check_eq(await c.next("row"), want, f"{c.name}: row for the SQL-authenticated user")
        # A token the query maps to no user: upgraded, then 1008 unauthorized.
        bad = await Client.connect(ctx.sql, "unknown token", "token=" + "0" * 40)
        check_eq(await bad.closed(), (1008, "unauthorized"), "close for an unknown SQL token")
        bad = await Client.connect(ctx.sql, "unknown token, first message")
        await bad.ws.send(json.dumps({"type": "auth", "token": "f" * 40}))
        check_eq(await bad.closed(), (1008, "unauthorized"), "close for an unknown first-message token")
        await ctx.markers((1081, (c1, c2)))
    finally:
        await close_all(c1, c2)


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


async def send_may_close(c, msg):
    """Send a message the daemon may close the socket over before it is fully written."""
    try:
        await c.ws.send(msg)
    except websockets.exceptions.ConnectionClosed:
        pass


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
            if VERBOSE:
                print(f"    ({what}: closed with {code} {reason!r})", flush=True)
        await ctx.bystander_ok(ctx.jwt, bystander, 1099)
    finally:
        await bystander.close()


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
                status, body = http_get(d.port, "/metrics")
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


@test
async def resume_replay_larger_than_send_queue(ctx):
    """A client that missed more bytes of rows than send_queue_bytes still resumes: the
    bound is for clients that read too slowly (docs/protocol.md), and a tab that was closed
    for being slow necessarily missed more than the bound."""
    db, user = ctx.db, 1135
    d = Daemon(ctx.opts, "small-queue", ["--auth=none", "--send-queue-bytes=65536"])
    await d.start()
    c = None
    try:
        base, _ = db.insert(user, "like", "seen")
        missed = [r[0] for r in db.rows(
            "INSERT INTO api_notification (user_id, type, title, message)"
            " SELECT %s, 'like', 'missed ' || g, repeat('x', 4000) FROM generate_series(1, 40) g"
            " RETURNING id", user)]
        # Once the daemon has read the rows, so that only the replay is queued (no live
        # frames held back during the catch-up).
        await reader_caught_up(ctx, d)
        c = await Client.authed(d, "resuming tab", user, f"last_id={base}")
        got = []
        for _ in missed:
            got.append((await c.next(f"replayed row {len(got) + 1} of {len(missed)} (~160 kB)"))["id"])
        check_eq(got, missed, "rows replayed")
        await ctx.markers((user, (c,)))
    finally:
        if c:
            await c.close()
        d.stop()


@test
async def resume_paged_replay_seam_under_load(ctx):
    """A replay of several catch-up pages (100 rows each) through a send queue smaller than
    the missed rows, while two writers commit rows for the same user: every row after
    last_id exactly once, the missed rows first in id order."""
    user = 1136
    d = Daemon(ctx.opts, "paged", ["--auth=none", "--send-queue-bytes=65536"])
    await d.start()
    try:
        base, _ = ctx.db.insert(user, "like", "seen")

        async def reconnect(last_id):
            return await Client.authed(d, "resumed tab", user, f"last_id={last_id}", hello=False)

        last = base
        for rnd in range(STRESS):
            try:
                # ~170 kB of missed rows for a 64 kB queue.
                last = await resume_round(ctx, user, last, 250, 25, 2, reconnect, "x" * 400)
            except Failure as e:
                raise Failure(f"round {rnd + 1}: {e}")
    finally:
        d.stop()


@test
async def origin_allowlist_and_socket_limits(ctx):
    # The SQL daemon runs with allowed_origins and max_sockets_per_user (see main_async).
    key = hashlib.sha1(b"user 1141").hexdigest()
    ctx.db.rows("INSERT INTO authtoken_token (key, user_id) VALUES (%s, 1141) ON CONFLICT DO NOTHING", key)
    await expect_http_refusal(ctx.sql, f"token={key}", 403, "Origin not allowed",
                              headers={"Origin": "https://evil.example"})
    tabs = []
    try:
        c = await Client.connect(ctx.sql, "allowed Origin", f"token={key}", origin=ALLOWED_ORIGIN)
        tabs.append(c)
        await c.expect_hello(1141)
        # DRF-style token in the protocol header, with the documented `bearer.` prefix.
        for i in range(MAX_SOCKETS_PER_USER - 1):
            c = await Client.connect(ctx.sql, f"tab {i + 2}", subprotocols=("livenotify.v1", "bearer." + key))
            tabs.append(c)
            await c.expect_hello(1141)
        # The limit counts authenticated sockets of the user.  With SQL auth the user is
        # known only after the upgrade, so the documented 403 cannot apply; docs/protocol.md
        # lists 1008 `too many sockets` for that case.
        try:
            extra = await Client.connect(ctx.sql, "one socket too many", f"token={key}")
        except websockets.exceptions.InvalidStatusCode as e:
            check_eq(e.status_code, 403, "HTTP status for a socket over max_sockets_per_user")
        else:
            tabs.append(extra)
            check_eq(await extra.closed(), (1008, "too many sockets"),
                     "close of a socket over max_sockets_per_user")
        # The user's open tabs still work.
        nid, _ = ctx.db.insert(1141, "like", "limit")
        for t in tabs[:MAX_SOCKETS_PER_USER]:
            check_eq((await t.next("row"))["id"], nid, f"{t.name}: row after the refused socket")
    finally:
        await close_all(*tabs)


@test
async def jwt_socket_limit_403(ctx):
    # JWT users are known before the upgrade: over max_sockets_per_user is a plain 403.
    d = Daemon(ctx.opts, "limit", ["--auth=jwt", f"--jwt-audience={JWT_AUDIENCE}",
                                   f"--max-sockets-per-user={MAX_SOCKETS_PER_USER}", "--max-sockets=6"],
               {"LIVENOTIFY_JWT_SECRET": JWT_SECRET})
    await d.start()
    tabs = []
    try:
        for i in range(MAX_SOCKETS_PER_USER):
            tabs.append(await Client.authed(d, f"tab {i + 1}", 1151))
        await expect_http_refusal(d, f"token={token_for(1151)}", 403, "over max_sockets_per_user")
        # Another user still connects, up to max_sockets in total; then 503.
        for i in range(6 - MAX_SOCKETS_PER_USER):
            tabs.append(await Client.authed(d, f"user {1152 + i}", 1152 + i))
        await expect_http_refusal(d, f"token={token_for(1160)}", 503, "over max_sockets")
        # Closing one frees a place.
        await tabs.pop(0).close()
        for _ in range(50):
            st, body = await d.http("/metrics")
            if parse_metrics(body).get("livenotifyd_sockets") == 5.0:
                break
            await asyncio.sleep(0.02)
        tabs.append(await Client.authed(d, "after a close", 1151))
    finally:
        await close_all(*tabs)
        d.stop()


@test
async def none_mode_first_message_user(ctx):
    db, user = ctx.db, 1037
    base, _ = db.insert(user, "like", "seen")
    nid, _ = db.insert(user, "like", "missed")
    c = await Client.connect(ctx.none, "auth message with user")
    try:
        await c.ws.send(json.dumps({"type": "auth", "user": str(user), "last_id": base}))
        await c.expect_hello(user)
        check_eq((await c.next("replayed row"))["id"], nid, "row replayed after {type: auth, user}")
        await ctx.markers((user, (c,)))
    finally:
        await c.close()


def run_daemon_cli(opts, *args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("LIVENOTIFY_")}
    e.update(env or {})
    return subprocess.run([opts.daemon, *args], capture_output=True, text=True, timeout=10, env=e)


@test
async def config_check_and_refusals(ctx):
    # docs: an invalid configuration exits 2 with a message naming the bad key; none mode
    # is refused unless bound to loopback.
    ok = await asyncio.to_thread(run_daemon_cli, ctx.opts, "--check-config", "--auth=none")
    check_eq(ok.returncode, 0, f"--check-config of a valid configuration ({ok.stderr.strip()})")
    for args, key in ((["--port=notaport"], "port"), (["--auth=magic"], "auth"),
                      (["--send-queue-bytes=-5"], "send_queue_bytes"),
                      (["--auth=none", "--listen-address=0.0.0.0"], "auth"),
                      (["--auth=jwt"], "jwt_secret")):
        r = await asyncio.to_thread(run_daemon_cli, ctx.opts, "--check-config", *args)
        check_eq(r.returncode, 2, f"exit status of --check-config {' '.join(args)}")
        out = (r.stderr + r.stdout).lower().replace("-", "_")
        check(key in out,
              f"--check-config {' '.join(args)}: message does not name {key}: {r.stderr.strip()!r}")
    # The environment is read too.
    r = await asyncio.to_thread(run_daemon_cli, ctx.opts, "--check-config", env={"LIVENOTIFY_PORT": "x"})
    check_eq(r.returncode, 2, "exit status with LIVENOTIFY_PORT=x")


@test
async def sighup_reloads_jwt_secret(ctx):
    secret_file = os.path.join(ctx.opts.workdir, "jwt-secret")
    with open(secret_file, "w") as f:
        f.write("first-secret-of-at-least-32-bytes\n")
    d = Daemon(ctx.opts, "sighup", ["--auth=jwt", f"--jwt-secret-file={secret_file}"])
    await d.start()
    tabs = []
    try:
        old = make_jwt(claims_for("1161"), secret="first-secret-of-at-least-32-bytes")
        new = make_jwt(claims_for("1161"), secret="second-secret-of-at-least-32-bytes")
        c = await Client.connect(d, "old secret", f"token={old}")
        tabs.append(c)
        await c.expect_hello(1161)
        with open(secret_file, "w") as f:
            f.write("second-secret-of-at-least-32-bytes\n")
        d.proc.send_signal(signal.SIGHUP)
        # Reloading is asynchronous: wait until the new secret is accepted.
        deadline = time.monotonic() + FRAME_TIMEOUT
        while True:
            try:
                c2 = await Client.connect(d, "new secret", f"token={new}")
                tabs.append(c2)
                break
            except websockets.exceptions.InvalidStatusCode as e:
                check(e.status_code == 401 and time.monotonic() < deadline,
                      f"token signed with the new secret after SIGHUP: HTTP {e.status_code}")
                await asyncio.sleep(0.05)
        await c2.expect_hello(1161)
        await expect_http_refusal(d, f"token={old}", 401, "token signed with the old secret after SIGHUP")
        # The socket opened before the reload is not affected.
        nid, _ = ctx.db.insert(1161, "like", "after reload")
        for t in tabs:
            check_eq((await t.next("row after reload"))["id"], nid, f"{t.name}: row after SIGHUP")
        check(d.alive(), "livenotifyd exited on SIGHUP")
    finally:
        await close_all(*tabs)
        d.stop()


@test
async def second_source_without_read_column(ctx):
    """A source without a read column: frames carry no unread_count.  With two sources, a
    daemon that was not told `source` cannot pick one for resume: resync no_resume_source."""
    db, user = ctx.db, 1171
    d = Daemon(ctx.opts, "nosource", ["--auth=none"])
    await d.start()
    tabs = []
    try:
        seen, _ = db.insert(user, "like", "seen")
        missed, _ = db.insert(user, "like", "missed")
        c = await Client.authed(d, "resume, one source", user, f"last_id={seen}")
        tabs.append(c)
        check_eq((await c.next("replayed row"))["id"], missed, "resume with the only source")
        db.rows("CREATE TABLE api_alert (id bigserial PRIMARY KEY, owner text NOT NULL,"
                " kind text NOT NULL, body text)")
        check_eq(db.one("SELECT livenotify.register('api_alert', 'owner', 'kind', 'id')"), "api_alert",
                 "register api_alert")
        aid = db.one("INSERT INTO api_alert (owner, kind, body) VALUES (%s, 'warn', 'disk')"
                     " RETURNING id", str(user))
        f = await c.next("api_alert row")
        check_eq(f, {"type": "notification", "source": "api_alert", "id": aid,
                     "notification": {"id": aid, "owner": str(user), "kind": "warn", "body": "disk"}},
                 "frame of a source without read column")
        r = await Client.authed(d, "resume, two sources", user, f"last_id={seen}")
        tabs.append(r)
        check_eq(await r.next("resync"), {"type": "resync", "reason": "no_resume_source"},
                 "resume with two sources and no configured source")
        # The main daemon has no source configured either; its live frames still flow.
        await ctx.markers((user, (c, r)))
    finally:
        await close_all(*tabs)
        d.stop()
        db.rows("SELECT livenotify.unregister('api_alert') FROM livenotify.sources"
                " WHERE source = 'api_alert'")
        db.rows("DROP TABLE IF EXISTS api_alert")


@test
async def counts_statement_survives_reregistration(ctx):
    """The reader counts with a statement prepared per source and session.  When the read
    column is dropped and the source registered again on another column, the registration's
    entry makes the reader drop that statement (and the source's cached counts) before it
    would fail: the next count is prepared on the new column."""
    db, user = ctx.db, 1181
    async with own_source(ctx, "api_counted", user) as (d, c):
        def add():
            return db.one("INSERT INTO api_counted (owner, kind) VALUES (%s, 'like')"
                          " RETURNING id", str(user))
        for n in (1, 2):
            nid = add()
            f = await c.next(f"row {n}")
            check_eq((f.get("id"), f.get("unread_count")), (nid, n), f"row {n}: prepared count")
        db.script([("BEGIN", ()),
                   ("SELECT livenotify.unregister('api_counted')", ()),
                   ("ALTER TABLE api_counted DROP COLUMN is_read", ()),
                   ("UPDATE api_counted SET seen = true WHERE id = (SELECT min(id) FROM api_counted)",
                    ()),
                   ("SELECT livenotify.register('api_counted', 'owner', 'kind', 'id', 'seen')", ()),
                   ("COMMIT", ())])
        for n in (2, 3):
            nid = add()
            f = await c.next(f"row after re-registration, {n} unseen")
            check_eq((f.get("id"), f.get("unread_count")), (nid, n),
                     "count on the new read column")
        check("unread_counts_prepared_failed" not in d.log_tail(400),
              "the old statement was dropped before it could fail")


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


@test
async def resume_before_first_db_connection_with_source(ctx):
    await early_resume(ctx, "early-source", 1401, [f"--source={SOURCE}"])


@test
async def resume_before_first_db_connection_only_source(ctx):
    check_eq(ctx.db.one("SELECT array_agg(source) FROM livenotify.sources"), [SOURCE],
             "registered sources (the daemon must resolve the only one)")
    await early_resume(ctx, "early-nosource", 1411, [])



@test
async def resume_before_first_db_connection_times_out(ctx):
    """docs/protocol.md: a resume asked for before the daemon first reached the database
    waits up to 5 s for it, then gets one resync `catchup_failed`.  When the database is
    reached later the socket gets resync `epoch` (rows committed between the client's
    refetch and the daemon's starting position were in neither), then live frames."""
    db, user = ctx.db, 1421
    seen, _ = db.insert(user, "like", "seen")
    db.insert(user, "like", "missed")
    lock = psycopg2.connect(ctx.opts.conninfo)
    d = Daemon(ctx.opts, "early-timeout", ["--auth=none", f"--source={SOURCE}",
                                           "--reconnect-min-ms=50", "--reconnect-max-ms=500"])
    c = None
    try:
        with lock.cursor() as cur:
            cur.execute("SET lock_timeout = '20s'")
            cur.execute("LOCK TABLE livenotify.source_tables IN ACCESS EXCLUSIVE MODE")
        await d.start(healthy=None)
        c = await connect_early(d, "early resume, database held up")
        await c.ws.send(json.dumps({"type": "auth", "user": str(user), "last_id": seen}))
        await c.expect_hello(user, epoch=0)
        t0 = time.monotonic()
        check_eq(await c.next("resync after the wait", timeout=8.0),
                 {"type": "resync", "reason": "catchup_failed"}, "resume that waited too long")
        check(time.monotonic() - t0 > 4.0, f"resync after {time.monotonic() - t0:.1f}s, not ~5 s")
        await c.ping()  # nothing else was sent meanwhile
        lock.rollback()
        check(await d.wait_health(200, 15.0), "livenotifyd did not reach the database")
        check_eq(await c.next("resync once the database is reached"),
                 {"type": "resync", "reason": "epoch"}, "after the database was reached")
        nid, _ = db.insert(user, "like", "live")
        check_eq(await c.next("live row"), expected_notification(db, nid, db.unread(user)),
                 "live row once the database was reached")
        await ctx.markers((user, (c,)))
    finally:
        lock.close()
        await close_all(c)
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
    status, body = await d.http("/metrics")
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


@test
async def healthz_and_metrics(ctx):
    c = await Client.authed(ctx.jwt, "tab", 1101)
    try:
        status, body = await ctx.jwt.http("/healthz")
        check_eq(status, 200, f"GET /healthz ({body!r})")
        status, body = await ctx.jwt.http("/metrics")
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


@test
async def sigterm_closes_1001_exits_0(ctx):
    d = Daemon(ctx.opts, "sigterm", ["--auth=none"])
    await d.start()
    try:
        clients = [await Client.authed(d, f"tab{i}", 1121 + i % 2) for i in range(3)]
        pre = await Client.connect(d, "not yet authenticated")
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        try:
            rc = await asyncio.to_thread(d.proc.wait, 2.0)
        except subprocess.TimeoutExpired:
            raise Failure("livenotifyd still running 2 s after SIGTERM")
        elapsed = time.monotonic() - t0
        check_eq(rc, 0, "exit status after SIGTERM")
        for c in clients + [pre]:
            check_eq(await c.closed(2.0), (1001, "server shutting down"), f"{c.name}: close after SIGTERM")
        check(elapsed <= 2.0, f"exit took {elapsed:.2f}s")
        await close_all(*clients, pre)
    finally:
        d.stop()


@test
async def scale_out_tabs_across_daemons(ctx):
    """Issue 4, scale-out: three daemons read the same database.  A user's tabs spread over
    them (two on A, one on B, one on C) all get the same frames with the right counts, each
    exactly once, and another user's tab on B gets none of them.  SIGTERM on A closes only
    A's tabs (1001); B's and C's carry on.  A's tabs reconnect to B and C with last_id and
    get the rows committed meanwhile exactly once, then live rows."""
    db, user, other = ctx.db, 1191, 1192
    daemons = {name: Daemon(ctx.opts, f"scale-{name}", ["--auth=none"]) for name in "ABC"}
    tabs = []
    try:
        await asyncio.gather(*(d.start() for d in daemons.values()))
        A, B, C = daemons["A"], daemons["B"], daemons["C"]
        a1 = await Client.authed(A, "user tab 1 on A", user)
        a2 = await Client.authed(A, "user tab 2 on A", user)
        b1 = await Client.authed(B, "user tab on B", user)
        c1 = await Client.authed(C, "user tab on C", user)
        o1 = await Client.authed(B, "other user's tab on B", other)
        tabs = [a1, a2, b1, c1, o1]
        mine = [a1, a2, b1, c1]

        async def rows_arrive(ts, what):
            """Commit one row for `user`; every tab in ts gets its frame with the count."""
            nid, _ = db.insert(user, "like", what)
            want = expected_notification(db, nid, db.unread(user))
            for t in ts:
                check_eq(await t.next(f"row {nid} ({what})"), want, f"{t.name}: frame of row {nid}")
            return nid

        last = None
        for i in range(4):
            last = await rows_arrive(mine, f"spread {i}")
        # Two rows in one transaction, then mark-as-read: same frames on every daemon.
        ids = [r[0] for r in db.rows(
            "INSERT INTO api_notification (user_id, type, title, message)"
            " VALUES (%s, 'comment', 'x', 'one'), (%s, 'comment', 'x', 'two') RETURNING id",
            user, user)]
        n = db.unread(user)
        for t in mine:
            for nid in ids:
                check_eq(await t.next(f"row {nid}"), expected_notification(db, nid, n),
                         f"{t.name}: frame for row {nid} of a two-row transaction")
        last = ids[-1]
        db.rows("UPDATE api_notification SET is_read = true WHERE id = %s", ids[0])
        for t in mine:
            check_eq(await t.next("unread_count"),
                     {"type": "unread_count", "source": SOURCE, "unread_count": n - 1},
                     f"{t.name}: count after mark-as-read")
        db.send(user, "new_message", {"message": {"text": "hi"}})
        for t in mine:
            check_eq(await t.next("new_message"), {"type": "new_message", "message": {"text": "hi"}},
                     f"{t.name}: send() frame")
        # Exactly once, and nothing of the user's reached the other user.
        await ctx.markers((user, mine), (other, (o1,)))

        # SIGTERM on A: its tabs close with 1001, it exits 0 within 2 s.
        A.proc.send_signal(signal.SIGTERM)
        try:
            rc = await asyncio.to_thread(A.proc.wait, 2.0)
        except subprocess.TimeoutExpired:
            raise Failure("daemon A still running 2 s after SIGTERM")
        check_eq(rc, 0, "daemon A's exit status after SIGTERM")
        for t in (a1, a2):
            check_eq(await t.closed(2.0), (1001, "server shutting down"), f"{t.name}: close after SIGTERM")
        # B's and C's tabs were not disturbed: rows committed now reach them, and the other user.
        missed = [await rows_arrive((b1, c1), f"while A is gone {i}") for i in range(3)]
        oid, _ = db.insert(other, "like", "other user")
        check_eq(await o1.next("the other user's row"), expected_notification(db, oid, db.unread(other)),
                 "other user's tab on B")
        check(B.alive() and C.alive(), "daemon B or C exited after A's SIGTERM")

        # A's tabs reconnect elsewhere with the last id they saw: the missed rows, once each.
        n = db.unread(user)
        r1 = await Client.authed(B, "tab 1 of A, resumed on B", user, f"last_id={last}")
        r2 = await Client.authed(C, "tab 2 of A, resumed on C", user, f"last_id={last}")
        tabs += [r1, r2]
        for t in (r1, r2):
            for nid in missed:
                check_eq(await t.next(f"replayed row {nid}"), expected_notification(db, nid, n),
                         f"{t.name}: replayed row {nid}")
        # Then live rows on every remaining tab of the user, and nothing else anywhere.
        mine = [b1, c1, r1, r2]
        for i in range(2):
            await rows_arrive(mine, f"after the move {i}")
        await ctx.markers((user, mine), (other, (o1,)))
    finally:
        await close_all(*tabs)
        for d in daemons.values():
            d.stop()


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


if __name__ == "__main__":
    sys.exit(main())
