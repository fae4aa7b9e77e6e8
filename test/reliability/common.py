"""Helpers shared by the reliability tests: daemons, resilient WebSocket tabs, writers.

Kept apart from test/integration (owned by that suite) so that either can change without
breaking the other; the shapes follow docs/protocol.md and docs/sql-api.md.
"""
import asyncio
import base64
import collections
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import psycopg2
import websockets
import websockets.exceptions

SOURCE = "api_notification"
SKIPPED = ("event", "message")
JWT_SECRET = "reliability-test-secret-not-for-production"
JWT_AUDIENCE = "livenotify-reliability"
JWT_ISSUER = "livenotify-reliability-tests"


class Failure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


# --------------------------------------------------------------------------------------
# JWT by hand: the hostile tests need tokens no library would produce.


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims, secret=JWT_SECRET, header=None):
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = b64url(json.dumps(header)) + "." + b64url(json.dumps(claims))
    if header.get("alg") == "none":
        return signing_input + "."
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def claims_for(sub, **changes):
    now = int(time.time())
    c = {"sub": str(sub), "exp": now + 600, "iat": now, "aud": JWT_AUDIENCE, "iss": JWT_ISSUER}
    c.update(changes)
    return c


# --------------------------------------------------------------------------------------
# HTTP


def http_get(port, path, timeout=3.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (OSError, urllib.error.URLError) as e:
        return None, str(e)


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) >= 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


# --------------------------------------------------------------------------------------
# Daemon


class Daemon:
    """One livenotifyd on a fixed private port (a restart after kill -9 reuses it)."""

    def __init__(self, opts, name, port, args, conninfo=None):
        self.opts = opts
        self.name = name
        self.port = port
        self.args = list(args)
        self.conninfo = conninfo or opts.conninfo
        self.proc = None
        self.metrics_port = None  # the metrics listener (loopback, picked at each spawn)
        self.log_path = os.path.join(opts.workdir, f"livenotifyd-{name}.log")

    def spawn(self):
        try:
            self.log_start = os.path.getsize(self.log_path)
        except OSError:
            self.log_start = 0
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith("LIVENOTIFY_") or k.startswith("PG"))}
        # Sanitizer builds: stop at the first report so the log names it and the test fails.
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.metrics_port = s.getsockname()[1]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.opts.daemon, "--listen-address=127.0.0.1", f"--port={self.port}",
             f"--database-url={self.conninfo}", "--log-level=info",
             f"--metrics-listen=127.0.0.1:{self.metrics_port}", *self.args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log.close()
        with open(os.path.join(self.opts.workdir, "daemons.pid"), "a") as f:
            f.write(f"{self.proc.pid}\n")

    async def start(self, want=200, timeout=20.0):
        self.spawn()
        if not await self.wait_health(want, timeout):
            raise Failure(f"livenotifyd {self.name} not healthy ({self.proc.poll()})\n"
                          + self.log_tail())

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

    async def metrics(self):
        # /metrics is served on the metrics listener only (docs/operations.md).
        st, body = await asyncio.to_thread(http_get, self.metrics_port, "/metrics")
        check(st == 200, f"{self.name}: /metrics answered {st}")
        return parse_metrics(body)

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def url(self, query=""):
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?{query}" if query else "")

    def log_tail(self, n=25):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join("    | " + x for x in f.readlines()[-n:])
        except OSError:
            return ""

    def log_since_start(self):
        try:
            with open(self.log_path, errors="replace") as f:
                f.seek(self.log_start)
                return f.read()
        except OSError:
            return ""

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# --------------------------------------------------------------------------------------
# A browser tab as an application would write it: reconnects with last_id, refetches on
# resync, counts everything it sees so the tests can compare with the table.


class Tab:
    def __init__(self, daemon, user, name, db_conninfo=None, user_range=None, refetch=True):
        self.daemon = daemon
        self.user = str(user)
        self.name = name
        self.conninfo = db_conninfo
        self.refetch_enabled = refetch
        self.live = collections.Counter()  # notification id -> times received live
        self.refetched = set()
        self.rows = {}  # id -> notification object as received
        self.ephemeral = collections.Counter()  # nonce -> times received
        self.markers = set()
        self.last_id = 0
        self.resyncs = collections.Counter()
        self.connects = 0
        self.closes = []  # (code, reason)
        self.errors = []
        self.cross_user = 0
        self.stop = False
        self.ws = None
        self.connected = asyncio.Event()
        self.task = None
        self.latencies = []

    def start(self):
        self.task = asyncio.ensure_future(self._run())
        return self

    async def _run(self):
        backoff = 0.05
        while not self.stop:
            q = f"user={self.user}" + (f"&last_id={self.last_id}" if self.last_id else "")
            try:
                self.ws = await asyncio.wait_for(
                    websockets.connect(self.daemon.url(q), subprotocols=["livenotify.v1"],
                                       open_timeout=None, close_timeout=1, ping_interval=None,
                                       max_size=None, max_queue=None,
                                       local_addr=("127.0.0.2", 0)),
                    5)
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)
                continue
            backoff = 0.05
            self.connects += 1
            try:
                async for msg in self.ws:
                    self._frame(msg)
            except websockets.exceptions.ConnectionClosed:
                pass
            except Exception as e:  # noqa: BLE001 - reported as a test error
                self.errors.append(f"reader: {e!r}")
            self.connected.clear()
            self.closes.append((self.ws.close_code, self.ws.close_reason))
            if not self.stop:
                await asyncio.sleep(0.05)

    def _frame(self, msg):
        if isinstance(msg, bytes):
            self.errors.append("binary frame")
            return
        f = json.loads(msg)
        t = f.get("type")
        if t == "hello":
            if f.get("user") != self.user:
                self.cross_user += 1
            self.connected.set()
        elif t == "notification":
            nid = f["id"]
            row = f.get("notification") or {}
            if str(row.get("user_id")) != self.user:
                self.cross_user += 1
            self.live[nid] += 1
            self.rows[nid] = row
            if nid > self.last_id:
                self.last_id = nid
            title = row.get("title", "")
            if title.startswith("t="):
                try:
                    self.latencies.append(time.time() - float(title[2:]))
                except ValueError:
                    pass
        elif t == "rel_msg":
            self.ephemeral[f.get("nonce")] += 1
            if f.get("user") not in (None, self.user):
                self.cross_user += 1
        elif t == "rel_marker":
            self.markers.add(f.get("n"))
        elif t == "resync":
            self.resyncs[f.get("reason")] += 1
            if self.refetch_enabled:
                # The app refetches through its API; here that is the table itself.
                asyncio.ensure_future(asyncio.to_thread(self._refetch))

    def _refetch(self):
        conn = psycopg2.connect(self.conninfo)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT id FROM api_notification WHERE user_id = %s"
                            " AND type <> ALL(%s)", (int(self.user), list(SKIPPED)))
                for (nid,) in cur.fetchall():
                    self.refetched.add(nid)
                    if nid > self.last_id:
                        self.last_id = nid
        finally:
            conn.close()

    def seen(self):
        return set(self.live) | self.refetched

    def dups(self):
        return sum(c - 1 for c in self.live.values() if c > 1)

    async def close(self):
        self.stop = True
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 2)
            except Exception:  # noqa: BLE001 - the socket may be gone already
                pass
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass


async def wait_connected(tabs, timeout=15.0):
    await asyncio.wait_for(asyncio.gather(*(t.connected.wait() for t in tabs)), timeout)


_marker_n = [0]


async def settle(db, tabs, timeout=60.0):
    """Send a marker to every user until every tab has it.  The queue is ordered, so a tab
    that has the marker has every frame committed before it (live or replayed)."""
    deadline = time.monotonic() + timeout
    users = sorted({t.user for t in tabs})
    while time.monotonic() < deadline:
        _marker_n[0] += 1
        n = _marker_n[0]
        await asyncio.to_thread(db.sends, [(u, "rel_marker", {"n": n}) for u in users])
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:
            if all(n in t.markers for t in tabs):
                return True
            await asyncio.sleep(0.05)
    return False


class Db:
    def __init__(self, conninfo):
        self.conninfo = conninfo
        self.conn = None

    def _c(self):
        if self.conn is None or self.conn.closed:
            self.conn = psycopg2.connect(self.conninfo)
            self.conn.autocommit = True
        return self.conn

    def rows(self, sql, *params):
        for attempt in range(40):
            try:
                with self._c().cursor() as cur:
                    cur.execute(sql, params)
                    return cur.fetchall() if cur.description else []
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                # A server restart under test: reconnect.
                self.conn = None
                if attempt == 39:
                    raise
                time.sleep(0.25)

    def one(self, sql, *params):
        r = self.rows(sql, *params)
        return r[0][0] if r else None

    def sends(self, items):
        for u, kind, payload in items:
            self.rows("SELECT livenotify.send(%s, %s, %s::jsonb)", str(u), kind,
                      json.dumps(payload))

    def committed_ids(self, users):
        out = {str(u): set() for u in users}
        for uid, nid in self.rows("SELECT user_id, id FROM api_notification WHERE user_id = ANY(%s)"
                                  " AND type <> ALL(%s)", [int(u) for u in users], list(SKIPPED)):
            out[str(uid)].add(nid)
        return out


def compare(db, tabs, label, want_nonces=None):
    """Counted figures: phantoms, missing, duplicates, cross-user frames across the tabs."""
    users = sorted({t.user for t in tabs})
    committed = db.committed_ids(users)
    # The row each frame carried must be the committed row (not only its id).
    truth = {nid: (str(u), ty, ti) for nid, u, ty, ti in db.rows(
        "SELECT id, user_id, type, title FROM api_notification WHERE user_id = ANY(%s)",
        [int(u) for u in users])}
    fig = {"tabs": len(tabs), "rows": sum(len(v) for v in committed.values()),
           "frames": 0, "phantoms": 0, "missing": 0, "dups": 0, "cross_user": 0,
           "refetched": 0, "resyncs": 0, "ephemeral_missing": 0, "ephemeral_phantoms": 0,
           "ephemeral_dups": 0, "errors": 0, "payload_mismatch": 0}
    problems = []
    for t in tabs:
        want = committed[t.user]
        got = t.seen()
        ph = set(t.live) - want
        miss = want - got
        fig["frames"] += sum(t.live.values())
        fig["phantoms"] += len(ph)
        fig["missing"] += len(miss)
        fig["dups"] += t.dups()
        fig["cross_user"] += t.cross_user
        fig["refetched"] += len(t.refetched - set(t.live))
        fig["resyncs"] += sum(t.resyncs.values())
        fig["errors"] += len(t.errors)
        bad = [nid for nid, row in t.rows.items() if nid in truth and
               (str(row.get("user_id")), row.get("type"), row.get("title")) != truth[nid]]
        fig["payload_mismatch"] += len(bad)
        if bad:
            problems.append(f"{t.name}: frames whose row differs from the table: {bad[:5]}")
        if ph:
            problems.append(f"{t.name}: phantom ids {sorted(ph)[:10]}")
        if miss:
            problems.append(f"{t.name}: missing ids {sorted(miss)[:10]} (of {len(miss)})")
        if t.dups():
            d = [i for i, c in t.live.items() if c > 1]
            problems.append(f"{t.name}: duplicate ids {sorted(d)[:10]}")
        if t.errors:
            problems.append(f"{t.name}: {t.errors[:3]}")
        if want_nonces is not None:
            w = want_nonces.get(t.user, set())
            g = set(t.ephemeral)
            fig["ephemeral_missing"] += len(w - g)
            fig["ephemeral_phantoms"] += len(g - w)
            fig["ephemeral_dups"] += sum(c - 1 for c in t.ephemeral.values() if c > 1)
            if w - g:
                problems.append(f"{t.name}: missing send() {sorted(w - g)[:5]}")
            if g - w:
                problems.append(f"{t.name}: phantom send() {sorted(g - w)[:5]}")
    return fig, problems
