#!/usr/bin/python3
"""The live half of the django suite (test/django/run.sh): the test project, migrated, with
livenotify_django from the venv; a real livenotifyd (JWT, the project's secret, audience and
issuer); tokens from the project's token view; WebSocket clients (lntest.Client) for alice
and bob.  Every write path of a Django app, every frame checked, with a marker sent to each
user after each step so that nothing else (a row of the other user, a rolled-back row, a
duplicate) can arrive unnoticed."""
import argparse
import asyncio
import concurrent.futures
import datetime
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import lntest  # noqa: E402
from lntest import Client, Db, Failure, check, check_eq  # noqa: E402

ap = argparse.ArgumentParser()
for a in ("daemon", "venv", "project", "workdir", "admin-conninfo", "secret", "client-js"):
    ap.add_argument(f"--{a}", required=True)
ap.add_argument("--port", type=int, required=True)
OPTS = ap.parse_args()
OPTS.conninfo = OPTS.admin_conninfo
OPTS.pidfile = os.path.join(OPTS.workdir, "daemons.pid")

# The daemons listen on the suite's own ports, from --port up (lntest.Daemon.start asks
# lntest.free_port for each), skipping any port another socket holds right now: the range is
# Linux's ephemeral one, where an outgoing connection may take a port at any moment.
_ports = iter(range(OPTS.port, OPTS.port + 40))


def _next_free_port():
    for p in _ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        return p
    raise RuntimeError(f"no free port left in {OPTS.port}-{OPTS.port + 39}")


lntest.free_port = _next_free_port

os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
sys.path.insert(0, OPTS.project)
import django  # noqa: E402

django.setup()
import jwt  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.contrib.staticfiles import finders  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.template import Context, Template  # noqa: E402
from django.test import Client as HttpClient, override_settings  # noqa: E402
from django.urls import reverse  # noqa: E402

import livenotify_django  # noqa: E402
from api.models import Notification  # noqa: E402

LN = settings.LIVENOTIFY
DB = Db(OPTS.admin_conninfo)
# The ORM runs on one thread of its own: Django refuses ORM calls from a thread running an
# event loop, and one thread keeps one connection, so a transaction may span several calls.
ORM = concurrent.futures.ThreadPoolExecutor(1)


async def orm(fn, *args, **kwargs):
    return await asyncio.get_running_loop().run_in_executor(ORM, lambda: fn(*args, **kwargs))


class Rollback(Exception):
    pass


class Users:
    marker = 0

    def __init__(self):
        self.tabs = {}  # user key -> [Client]

    async def quiet(self, what):
        """A marker to each user: each tab's next frame must be it."""
        sent = []
        for key, tabs in self.tabs.items():
            Users.marker += 1
            DB.send(key, "test_marker", {"n": Users.marker})
            sent.append((Users.marker, tabs))
        for n, tabs in sent:
            for t in tabs:
                try:
                    await t.expect_marker(n, f"the marker after {what}")
                except Failure as e:
                    raise Failure(f"after {what}: {e}")
        print(f"ok: {what}")

    async def expect(self, key, frames, what):
        for t in self.tabs[key]:
            for want in frames:
                got = await t.next(f"{what}: {want}")
                check_eq(got, want, f"{t.name}: {what}")


def row_frame(nid, unread):
    return lntest.expected_notification(DB, nid, unread)


def count_frame(n):
    return {"type": "unread_count", "source": "api_notification", "unread_count": n}


# --------------------------------------------------------------------------------------
# Synchronous parts (Django test client, templates, static files)


def check_install():
    check(livenotify_django.__file__.startswith(OPTS.venv),
          f"livenotify_django imported from {livenotify_django.__file__}, not the venv")
    # The client is livenotify.js and the modules it imports: every .js file the client
    # package lists, each byte for byte.
    client_dir = os.path.dirname(OPTS.client_js)
    with open(os.path.join(client_dir, "package.json"), encoding="utf-8") as f:
        modules = [n for n in json.load(f)["files"] if n.endswith(".js")]
    check("livenotify.js" in modules, f"client/package.json lists {modules}")
    for name in modules:
        path = finders.find(f"livenotify/{name}")
        check(path is not None and path.startswith(OPTS.venv),
              f"static livenotify/{name} found at {path}, not in the installed package")
        with open(path, "rb") as a, open(os.path.join(client_dir, name), "rb") as b:
            check_eq(hashlib.sha256(a.read()).hexdigest(), hashlib.sha256(b.read()).hexdigest(),
                     f"the shipped {name} is client/{name}")
    print(f"ok: installed in the venv; the static client is client/ ({', '.join(modules)})")


def make_users():
    return (User.objects.create_user("alice", password="x"),
            User.objects.create_user("bob", password="x"))


def token_view(user, algorithm="HS256", verify_key=None):
    url = reverse("livenotify:token")
    http = HttpClient()
    if user is None:
        r = http.get(url)
        check_eq(r.status_code, 401, "token view, anonymous: status")
        check("no-store" in r.get("Cache-Control", ""), f"401 cacheable: {r.get('Cache-Control')}")
        r = http.post(url)
        check(r.status_code in (401, 403, 405), f"token view, anonymous POST: {r.status_code}")
        return None
    http.force_login(user)
    r = http.get(url)
    check_eq(r.status_code, 200, "token view: status")
    cc = r.get("Cache-Control", "")
    check("no-store" in cc and "private" in cc, f"token view Cache-Control: {cc!r}")
    body = r.json()
    check_eq(body["url"], LN["URL"], "token view: url")
    claims = jwt.decode(body["token"], verify_key or LN["JWT_KEY"], algorithms=[algorithm],
                        audience=LN["AUDIENCE"], issuer=LN["ISSUER"])
    check_eq(claims["sub"], str(user.pk), "token sub")
    check_eq(claims["exp"] - claims["iat"], LN["TOKEN_LIFETIME"], "token lifetime")
    check(abs(claims["iat"] - time.time()) < 5, f"token iat {claims['iat']}")
    check_eq(body["expires_at"], claims["exp"], "expires_at")
    check_eq(jwt.get_unverified_header(body["token"])["alg"], algorithm, "token alg")
    return body["token"]


def template_tags(user):
    out = Template("{% load livenotify %}{% livenotify_client %}").render(Context({"user": user}))
    cfg = json.loads(out.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    check_eq(cfg, {"url": LN["URL"], "tokenUrl": "/livenotify/token/", "user": str(user.pk),
                   "clientUrl": "/static/livenotify/livenotify.js"}, "livenotify_client config")
    check('import { LiveNotifyClient } from "/static/livenotify/livenotify.js"' in out,
          f"livenotify_client imports the client: {out}")
    anon = Template("{% load livenotify %}{% livenotify_client %}").render(Context({}))
    check_eq(anon.strip(), "", "livenotify_client for an anonymous visitor")
    out = Template("{% load livenotify %}{% livenotify_config %}").render(Context({"user": user}))
    check(out.startswith('<script id="livenotify-config" type="application/json">'), out)
    print("ok: {% livenotify_client %} / {% livenotify_config %} render the config and the import")


def create(user, title, ntype="like", **kw):
    return Notification.objects.create(user=user, type=ntype, title=title, message="m", **kw).pk


def manage(*args):
    r = subprocess.run([os.path.join(OPTS.venv, "bin", "python"), "manage.py", *args],
                       cwd=OPTS.project, capture_output=True, text=True, timeout=120)
    with open(os.path.join(OPTS.workdir, "manage.log"), "a") as f:
        f.write(f"$ manage.py {' '.join(args)}\n{r.stdout}{r.stderr}\n")
    return r.returncode, r.stdout + r.stderr


# --------------------------------------------------------------------------------------


async def tab(d, name, token, key):
    """A socket authenticated as the browser client does it: the token in the first message."""
    c = await Client.connect(d, name, "")
    await c.ws.send(json.dumps({"type": "auth", "token": token}))
    await c.expect_hello(key)
    return c


async def main():
    await orm(check_install)
    alice, bob = await orm(make_users)
    A, B = str(alice.pk), str(bob.pk)
    await orm(token_view, None)
    ta, ta2, tb = (await orm(token_view, alice), await orm(token_view, alice),
                   await orm(token_view, bob))
    print("ok: the token view: 401 and no-store for anonymous, HS256 token with sub/aud/iss/exp/iat")
    await orm(template_tags, alice)

    d = lntest.Daemon(OPTS, "django", [
        "--auth=jwt", "--jwt-alg=HS256", f"--jwt-audience={LN['AUDIENCE']}",
        f"--jwt-issuer={LN['ISSUER']}", f"--jwt-max-lifetime-s={LN['TOKEN_LIFETIME']}"],
        {"LIVENOTIFY_JWT_SECRET": OPTS.secret})
    await d.start()
    check_eq(LN["URL"], d.url(), "the project's LIVENOTIFY URL is the daemon's")
    u = Users()
    clients = []
    try:
        a1 = await tab(d, "alice/tab1", ta, A)
        a2 = await tab(d, "alice/tab2", ta2, A)
        b1 = await tab(d, "bob/tab1", tb, B)
        clients += [a1, a2, b1]
        u.tabs = {A: [a1, a2], B: [b1]}
        await u.quiet("connecting alice (2 tabs) and bob with the view's tokens")

        # ORM create
        n1 = await orm(create, alice, "orm create", extra={"post": 7})
        await u.expect(A, [row_frame(n1, 1)], "ORM create")
        await u.quiet("ORM create: alice's tabs get the row and the count 1, bob nothing")

        # a skipped type: no row, but the unread count moves
        await orm(create, alice, "an event", "event")
        await u.expect(A, [count_frame(2)], "a skipped type")
        await u.quiet("a row of skipped type 'event': only alice's count (2)")

        # bulk_create: no post_save, captured all the same
        def bulk():
            objs = Notification.objects.bulk_create([
                Notification(user=bob, type="like", title="bulk b1", message="m"),
                Notification(user=alice, type="comment", title="bulk a", message="m"),
                Notification(user=bob, type="follow", title="bulk b2", message="m")])
            return [o.pk for o in objs]
        b1id, a3, b2id = await orm(bulk)
        await u.expect(A, [row_frame(a3, 3)], "bulk_create")
        # Every frame of a transaction carries the count after its commit (docs/protocol.md).
        await u.expect(B, [row_frame(b1id, 2), row_frame(b2id, 2)], "bulk_create")
        await u.quiet("bulk_create of 3 rows for 2 users: each gets only theirs, in order")

        # raw SQL on Django's connection
        def raw():
            with connection.cursor() as cur:
                cur.execute("INSERT INTO api_notification (user_id, type, title, message, is_read,"
                            " created_at) VALUES (%s, 'mention', 'raw sql', 'm', false, now())"
                            " RETURNING id", [bob.pk])
                return cur.fetchone()[0]
        b3id = await orm(raw)
        await u.expect(B, [row_frame(b3id, 3)], "raw SQL")
        await u.quiet("raw SQL INSERT through connection.cursor()")

        # queryset.update(is_read=True)
        await orm(lambda: Notification.objects.filter(user=alice).update(is_read=True))
        await u.expect(A, [count_frame(0)], "update(is_read=True)")
        await u.quiet("queryset.update(is_read=True): alice's count 0 in both tabs, bob nothing")

        # delete: a read row moves no count, an unread one does
        await orm(lambda: Notification.objects.get(pk=n1).delete())
        await u.quiet("delete of a read row: no frame")
        await orm(lambda: Notification.objects.filter(pk=b1id).delete())
        await u.expect(B, [count_frame(2)], "delete of an unread row")
        await u.quiet("delete of bob's unread row: bob's count 2")

        # a rolled-back atomic block: rows and send() alike
        def rolled_back():
            try:
                with transaction.atomic():
                    create(alice, "rolled back a")
                    create(bob, "rolled back b")
                    livenotify_django.send(alice, "new_message", {"message": {"text": "phantom"}})
                    raise Rollback()
            except Rollback:
                pass
            return Notification.objects.filter(title__startswith="rolled back").count()
        check_eq(await orm(rolled_back), 0, "rows of the rolled-back block")
        await u.quiet("a rolled-back atomic() (2 rows, a send()): nothing for anyone")

        # a savepoint rolled back inside a committed transaction
        def savepoint():
            with transaction.atomic():
                x = create(alice, "kept 1")
                try:
                    with transaction.atomic():
                        create(alice, "savepoint rolled back")
                        livenotify_django.send(alice, "new_message", {"message": {"text": "no"}})
                        livenotify_django.send(bob, "new_message", {"message": {"text": "no"}})
                        raise Rollback()
                except Rollback:
                    pass
                y = create(alice, "kept 2")
                livenotify_django.send(bob, "new_message", {"message": {"text": "kept"}})
            return x, y
        x, y = await orm(savepoint)
        await u.expect(A, [row_frame(x, 2), row_frame(y, 2)], "savepoint")
        await u.expect(B, [{"type": "new_message", "message": {"text": "kept"}}], "savepoint")
        await u.quiet("nested atomic() rolled back: its row and sends dropped, the rest delivered")

        # send() in a transaction: nothing before COMMIT, everything at it
        at = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        held = transaction.atomic()

        def begin_and_send():
            held.__enter__()
            livenotify_django.send(bob, "new_message", {"message": {"from": "alice", "at": at}})
            livenotify_django.send(int(alice.pk), "chat.typing", using="default")
        await orm(begin_and_send)
        await asyncio.sleep(0.5)
        for t in clients:
            check(t.queue.empty(), f"{t.name} got a frame before COMMIT")
        await orm(held.__exit__, None, None, None)
        await u.expect(B, [{"type": "new_message",
                            "message": {"from": "alice", "at": "2026-01-02T03:04:05Z"}}], "send()")
        await u.expect(A, [{"type": "chat.typing"}], "send() by pk with using=")
        await u.quiet("send() in atomic(): nothing for 0.5 s before COMMIT, then one frame each")

        def send_rolled_back():
            try:
                with transaction.atomic():
                    livenotify_django.send(bob, "new_message", {"message": {"text": "never"}})
                    raise Rollback()
            except Rollback:
                pass
        await orm(send_rolled_back)
        await u.quiet("send() in a rolled-back atomic(): nothing")

        # send() outside any transaction (autocommit) goes at once
        await orm(livenotify_django.send, alice, "new_message", {"message": {"text": "now"}})
        await u.expect(A, [{"type": "new_message", "message": {"text": "now"}}], "send() autocommit")
        await u.quiet("send() in autocommit mode")

        # migrate backwards: unregistered, nothing captured; forwards: captured again
        rc, out = await orm(manage, "migrate", "api", "0001")
        check_eq(rc, 0, f"migrate api 0001: {out}")
        check_eq(DB.rows("SELECT source FROM livenotify.sources"), [], "sources after migrate back")
        check_eq(DB.rows("SELECT indexname FROM pg_indexes WHERE indexname LIKE %s", "%livenotify"),
                 [], "the migration's indexes after migrate back")
        await orm(create, alice, "while unregistered")
        await u.quiet("migrate backwards (unregister): a new row reaches no one")
        rc, out = await orm(manage, "check", "--database", "default")
        check(rc == 0 and "livenotify.W002" in out, f"check after migrating back: {out}")
        rc, out = await orm(manage, "migrate")
        check_eq(rc, 0, f"migrate: {out}")
        z = await orm(create, alice, "registered again")
        await u.expect(A, [row_frame(z, DB.unread(A))], "after migrating forwards")
        await u.quiet(f"migrate forwards: captured again (alice's count {DB.unread(A)})")
        rc, out = await orm(manage, "check", "--database", "default")
        check(rc == 0 and "livenotify." not in out, f"check after migrating forwards: {out}")
    finally:
        await lntest.close_all(*clients)
        d.stop()

    # RS256: the view signs with the private key, a daemon with the public key accepts it.
    key = os.path.join(OPTS.workdir, "rs256.pem")
    pub = os.path.join(OPTS.workdir, "rs256.pub")
    lntest.openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
    lntest.openssl("pkey", "-in", key, "-pubout", "-out", pub)
    rs = lntest.Daemon(OPTS, "rs256", ["--auth=jwt", "--jwt-alg=RS256",
                                       f"--jwt-public-key-file={pub}",
                                       f"--jwt-audience={LN['AUDIENCE']}",
                                       f"--jwt-issuer={LN['ISSUER']}"])
    await rs.start()
    c = None
    try:
        with open(pub) as f:
            public = f.read()
        with override_settings(LIVENOTIFY=dict(LN, JWT_ALGORITHM="RS256", JWT_KEY=None,
                                               JWT_KEY_FILE=key)):
            tok = await orm(token_view, bob, "RS256", public)
        c = await tab(rs, "bob/rs256", tok, B)
        nid = await orm(create, bob, "rs256")
        check_eq(await c.next("the rs256 row"), row_frame(nid, DB.unread(B)), "rs256 tab")
        print("ok: RS256 (JWT_KEY_FILE): the token view's token opens a socket at an RS256 daemon")
    finally:
        await lntest.close_all(c)
        rs.stop()


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), 120))
    except Exception as e:  # noqa: BLE001 - reported, then the exit status says it
        if not isinstance(e, Failure):
            traceback.print_exc()
        print(f"FAIL: {e}")
        sys.exit(1)
    print("e2e: all passed")
