#!/usr/bin/python3
"""DEMO ONLY: the stand-in for your web application in the livenotify demo.

It serves demo/index.html, demo/app.js and, under /client/, the browser client package
(--client-dir: the unpacked `npm pack` of client/, as test/demo.sh makes it; the page imports
it by its package name through an import map), and plays the part a real app (e.g. Django)
plays next to livenotifyd:

  GET  /api/config                 where the daemon is, which demo users exist
  GET  /api/token?user=ID[&ttl=S]  a JWT (HS256, the demo secret) for that user: NO LOGIN, any
                                   visitor gets any user's token -- this is why it is a demo
  GET  /api/notifications          the caller's latest rows and unread count (Bearer token)
  POST /api/notifications          insert a test notification for any user (plain SQL INSERT;
                                   the daemon learns of it through the extension, not from here)
  POST /api/notifications/read     mark the caller's row {"id": N} or all {"all": true} as read
  POST /api/send                   livenotify.send() an ephemeral new_message to a user

livenotifyd itself has no such endpoints: it only pushes what the database commits.
Started by test/demo.sh (`make demo`) and test/browser/run.sh. Standard library + psycopg2.
Never expose it beyond loopback.
"""
import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

DEMO_USERS = [{"id": 1, "name": "alice"}, {"id": 2, "name": "bob"}]
TOKEN_TTL_S = 12 * 3600
# The aud claim livenotifyd is started with (--jwt-audience, test/demo.sh, test/browser).
TOKEN_AUDIENCE = "livenotify"
LIST_LIMIT = 50

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATIC = {
    "/": ("demo/index.html", "text/html; charset=utf-8"),
    "/index.html": ("demo/index.html", "text/html; charset=utf-8"),
    "/app.js": ("demo/app.js", "text/javascript; charset=utf-8"),
}
# The client package's files, served from --client-dir under /client/ (nothing else there is).
CLIENT_TYPES = {".js": "text/javascript; charset=utf-8", ".ts": "text/plain; charset=utf-8",
                ".json": "application/json", ".md": "text/plain; charset=utf-8"}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(secret, user_id, ttl=TOKEN_TTL_S):
    now = int(time.time())
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    # aud names livenotifyd, which requires it (--jwt-audience): a token minted for another
    # purpose with the same secret is not a livenotifyd credential (issue 12, finding 7).
    claims = b64url(json.dumps({"sub": str(user_id), "aud": TOKEN_AUDIENCE, "iat": now,
                                "exp": now + ttl}, separators=(",", ":")).encode())
    signing_input = f"{header}.{claims}".encode()
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{claims}.{b64url(sig)}"


def verify_jwt(secret, token):
    """The user id of a valid demo token, or None."""
    try:
        header, claims, sig = token.split(".")
        want = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(want, b64url_decode(sig)):
            return None
        if json.loads(b64url_decode(header)).get("alg") != "HS256":
            return None
        body = json.loads(b64url_decode(claims))
        if int(body.get("exp", 0)) < time.time():
            return None
        return int(body["sub"])
    except (ValueError, KeyError, TypeError):
        return None


class Handler(BaseHTTPRequestHandler):
    server_version = "livenotify-demo"
    protocol_version = "HTTP/1.1"

    # ------------------------------------------------------------------ plumbing

    def log_message(self, fmt, *args):
        if self.server.opts.verbose:
            sys.stderr.write("[demo] %s\n" % (fmt % args))

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > 64 * 1024:
            raise ValueError("body too large")
        raw = self.rfile.read(length) if length else b"{}"
        obj = json.loads(raw or b"{}")
        if not isinstance(obj, dict):
            raise ValueError("expected a JSON object")
        return obj

    def caller(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        return verify_jwt(self.server.opts.jwt_secret, auth[len("Bearer "):].strip())

    @contextlib.contextmanager
    def db(self):
        """A cursor on a connection of its own, closed afterwards (also on errors).

        One short connection per request: a demo, and it keeps the server stateless."""
        conn = psycopg2.connect(self.server.opts.dsn)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                yield cur
        finally:
            conn.close()

    # ------------------------------------------------------------------ routes

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path in STATIC:
            return self.static(*STATIC[url.path])
        if url.path.startswith("/client/"):
            return self.client_file(url.path[len("/client/"):])
        try:
            if url.path == "/api/config":
                opts = self.server.opts
                return self.send_json(200, {
                    "ws_port": opts.ws_port, "ws_path": opts.ws_path, "users": DEMO_USERS})
            if url.path == "/api/token":
                query = urllib.parse.parse_qs(url.query)
                user = int(query.get("user", ["0"])[0])
                if user not in {u["id"] for u in DEMO_USERS}:
                    return self.send_json(404, {"error": "no such demo user"})
                # ttl (seconds, at most the default): short tokens for the expiry test.
                ttl = min(max(int(query.get("ttl", [TOKEN_TTL_S])[0]), 1), TOKEN_TTL_S)
                return self.send_json(200, {
                    "user": user, "token": make_jwt(self.server.opts.jwt_secret, user, ttl)})
            if url.path == "/api/notifications":
                user = self.caller()
                if user is None:
                    return self.send_json(401, {"error": "bad or missing token"})
                return self.send_json(200, self.list_for(user))
            if url.path == "/healthz":
                return self.send_json(200, {"ok": True})
            return self.send_json(404, {"error": "not found"})
        except ValueError as e:
            return self.send_json(400, {"error": str(e)})
        except psycopg2.Error as e:
            sys.stderr.write(f"[demo] {self.command} {self.path}: {str(e).strip()}\n")
            return self.send_json(500, {"error": str(e).strip()})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        try:
            body = self.read_json()
            if url.path == "/api/notifications":
                return self.create(body)
            if url.path == "/api/send":
                return self.send_message(body)
            if url.path == "/api/notifications/read":
                user = self.caller()
                if user is None:
                    return self.send_json(401, {"error": "bad or missing token"})
                return self.mark_read(user, body)
            return self.send_json(404, {"error": "not found"})
        except ValueError as e:
            return self.send_json(400, {"error": str(e)})
        except psycopg2.Error as e:
            sys.stderr.write(f"[demo] {self.command} {self.path}: {str(e).strip()}\n")
            return self.send_json(500, {"error": str(e).strip()})

    def client_file(self, name):
        # One plain file name of the package: no directories, no dot files, a known type.
        ext = os.path.splitext(name)[1]
        if "/" in name or name.startswith(".") or ext not in CLIENT_TYPES:
            return self.send_json(404, {"error": "not found"})
        return self.static(os.path.join(self.server.opts.client_dir, name), CLIENT_TYPES[ext])

    def static(self, rel, ctype):
        try:
            with open(os.path.join(ROOT, rel), "rb") as f:
                body = f.read()
        except OSError:
            return self.send_json(404, {"error": "not found"})
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def list_for(self, user):
        with self.db() as cur:
            # row_to_json: the same shape as the rows inside the daemon's notification frames.
            cur.execute(
                "SELECT row_to_json(n)::text FROM api_notification n WHERE user_id = %s"
                " ORDER BY id DESC LIMIT %s", (user, LIST_LIMIT))
            rows = [json.loads(r[0]) for r in cur.fetchall()]
            cur.execute(
                "SELECT count(*) FROM api_notification WHERE user_id = %s AND NOT is_read",
                (user,))
            (unread,) = cur.fetchone()
            cur.execute("SELECT coalesce(max(id), 0) FROM api_notification WHERE user_id = %s",
                        (user,))
            (last_id,) = cur.fetchone()
        return {"notifications": rows, "unread_count": unread, "last_id": last_id}

    def create(self, body):
        user = int(body.get("user_id", 0))
        if user <= 0:
            raise ValueError("user_id must be a positive integer")
        ntype = str(body.get("type") or "system")[:50]
        title = str(body.get("title") or "Test notification")[:255]
        message = str(body.get("message") or "")
        with self.db() as cur:
            cur.execute(
                "INSERT INTO api_notification (user_id, type, title, message, extra)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (user, ntype, title, message, json.dumps({"via": "demo"})))
            (new_id,) = cur.fetchone()
        return self.send_json(201, {"id": new_id})

    def mark_read(self, user, body):
        with self.db() as cur:
            if body.get("all"):
                cur.execute("UPDATE api_notification SET is_read = true"
                            " WHERE user_id = %s AND NOT is_read", (user,))
            else:
                cur.execute("UPDATE api_notification SET is_read = true"
                            " WHERE user_id = %s AND id = %s AND NOT is_read",
                            (user, int(body.get("id", 0))))
            changed = cur.rowcount
        return self.send_json(200, {"updated": changed})

    def send_message(self, body):
        user = int(body.get("user_id", 0))
        text = str(body.get("text") or "")[:1000]
        sender = str(body.get("from") or "demo")[:50]
        with self.db() as cur:
            cur.execute("SELECT livenotify.send(%s, 'new_message', %s::jsonb)",
                        (str(user), json.dumps({"message": {"from": sender, "text": text}})))
        return self.send_json(200, {"sent": True})


def main():
    ap = argparse.ArgumentParser(description="livenotify demo web app (demo only)")
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--dsn", default="", help="libpq connection string of the demo database")
    ap.add_argument("--jwt-secret", default=os.environ.get("LIVENOTIFY_JWT_SECRET", ""))
    ap.add_argument("--ws-port", type=int, default=8765, help="livenotifyd's port")
    ap.add_argument("--ws-path", default="/ws")
    ap.add_argument("--client-dir", default=os.path.join(ROOT, "client"),
                    help="the browser client package to serve under /client/ (default: the "
                         "source tree's client/; test/demo.sh passes its unpacked npm pack)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--token-for", type=int, metavar="USER",
                    help="print a demo token for USER and exit (no server)")
    opts = ap.parse_args()
    if not opts.jwt_secret:
        ap.error("--jwt-secret (or LIVENOTIFY_JWT_SECRET) is required")
    if opts.token_for is not None:
        print(make_jwt(opts.jwt_secret, opts.token_for))
        return
    if not opts.dsn:
        ap.error("--dsn is required")
    server = ThreadingHTTPServer((opts.listen, opts.port), Handler)
    server.daemon_threads = True
    server.opts = opts
    print(f"[demo] serving http://{opts.listen}:{opts.port}/", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
