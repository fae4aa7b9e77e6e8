"""Delivery: routing, exact frames, unread counts, payload shapes, several sources.

Registered with @test (lntest.py); run by test_livenotifyd.py."""
# flake8: noqa: F403,F405
import lntest
from lntest import *


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
    last frame is the table's count, and most counts were not queried for their frame: they
    came from the daemon's cache, or from one count for a whole batch of the user's entries
    (read_coalesce_us makes batches of a stream like this one)."""
    db, user = ctx.db, 1048
    tab = await Client.authed(ctx.jwt, "tab", user)
    fetched_before = await metric(ctx.jwt, "livenotifyd_unread_counts_fetched_total") or 0
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
        fetched = (await metric(ctx.jwt, "livenotifyd_unread_counts_fetched_total") or 0) - fetched_before
        print(f"    {frames} frames, {fetched:.0f} counts queried", flush=True)
        check(fetched < frames, f"{fetched} counts queried for {frames} frames: one per frame")
    finally:
        await close_all(tab)


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
