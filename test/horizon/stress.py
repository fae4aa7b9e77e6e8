#!/usr/bin/env python3
"""test/horizon/stress.py: read_horizon() and catchup_cursor() under concurrent commits.

Writers commit rows of one user from several sessions (some inside savepoints) while a reader
loops on livenotify.read() + livenotify.read_horizon(), as livenotifyd does.  After each
batch the reader makes the cursor the daemon would stamp (base = the xmin of the previous
complete read; listed = the ids delivered in batches whose xmax that base has not passed) and
remembers which ids it had delivered so far.  When the writers are done, catchup_cursor() with
each cursor must return exactly the committed rows not delivered by then: no row missing
(the gap the ids' commit order makes) and none twice.

The commit path this checks (extension/inflight.cpp): a transaction is visible before its
entries are in the ring, and may wait for the ring's lock meanwhile; only the in-flight
registry keeps the horizon below it.

Usage: stress.py CONNINFO [SECONDS]
"""
import json
import random
import sys
import threading
import time

import psycopg2

CONNINFO = sys.argv[1]
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 6.0
WRITERS = 6
NOISE_READERS = 2
MAX_LISTED = 64  # catchup_cursor() takes at most 64 ids


def connect():
    c = psycopg2.connect(CONNINFO)
    c.autocommit = True
    return c


def setup():
    c = connect()
    with c.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS horizon_stress")
        cur.execute("CREATE TABLE horizon_stress (id bigserial PRIMARY KEY, user_id int NOT NULL,"
                    " type text NOT NULL, n int)")
        cur.execute("SELECT livenotify.register('horizon_stress')")
        cur.execute("SELECT last_seq FROM livenotify.position()")
        base = cur.fetchone()[0]
    c.close()
    return base


def writer(stop, errors, seed):
    rnd = random.Random(seed)
    c = psycopg2.connect(CONNINFO)
    try:
        with c.cursor() as cur:
            while not stop.is_set():
                rows = rnd.randint(1, 3)
                savepoint = rnd.random() < 0.3
                if savepoint:
                    cur.execute("SAVEPOINT s")
                for _ in range(rows):
                    cur.execute("INSERT INTO horizon_stress (user_id, type, n) VALUES (1, 'x', %s)",
                                (seed,))
                if savepoint:
                    cur.execute("RELEASE SAVEPOINT s")
                if rnd.random() < 0.2:
                    time.sleep(rnd.random() * 0.01)  # hold the ids a while: out-of-order commits
                c.commit()
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        errors.append(repr(e))
    finally:
        c.close()


def noise_reader(stop, errors, start):
    c = connect()
    try:
        with c.cursor() as cur:
            while not stop.is_set():
                cur.execute("SELECT count(*) FROM livenotify.read(%s, 5000, 0)", (start,))
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        errors.append(repr(e))
    finally:
        c.close()


def main():
    after = setup()
    stop = threading.Event()
    errors = []
    threads = [threading.Thread(target=writer, args=(stop, errors, i)) for i in range(WRITERS)]
    # Other readers copying under the ring's shared lock: committing writers wait for it
    # after they became visible, which widens the window the registry covers.
    threads += [threading.Thread(target=noise_reader, args=(stop, errors, after))
                for _ in range(NOISE_READERS)]
    for t in threads:
        t.start()

    r = connect()
    delivered = []      # ids in delivery order
    batches = []        # (xmax or None, ids of the batch)
    base = None         # xmin of the last complete read before the current batch
    checkpoints = []    # (base, listed ids, number of ids delivered by then)
    deadline = time.monotonic() + SECONDS
    idle = 0
    with r.cursor() as cur:
        while True:
            writing = time.monotonic() < deadline
            if not writing and not stop.is_set():
                stop.set()
                for t in threads:
                    t.join()
            cur.execute("SELECT seq, kind, payload FROM livenotify.read(%s, 200, 20)", (after,))
            rows = cur.fetchall()
            cur.execute("SELECT xmin::text, xmax::text FROM livenotify.read_horizon()")
            hx = cur.fetchone()
            if not rows:
                if stop.is_set():
                    idle += 1
                    if idle > 3:
                        break
                continue
            idle = 0
            ids = []
            for seq, kind, payload in rows:
                after = max(after, seq)
                if kind == 'notification':
                    ids.append(json.loads(payload)['id'])
            delivered.extend(ids)
            xmin = int(hx[0]) if hx[0] is not None else None
            xmax = int(hx[1]) if hx[1] is not None else None
            batches.append((xmax, ids))
            if base is not None:
                listed = [i for bx, bids in batches if bx is None or bx > base for i in bids]
                if len(listed) <= MAX_LISTED:
                    checkpoints.append((base, listed, len(delivered)))
            if xmin is not None:
                base = xmin
                batches = [(bx, bids) for bx, bids in batches if bx is None or bx > base]
    if errors:
        print(f"FAIL: writers failed: {errors[:3]}")
        return 1

    with r.cursor() as cur:
        cur.execute("SELECT id FROM horizon_stress ORDER BY id")
        committed = [x[0] for x in cur.fetchall()]
    dup_live = len(delivered) - len(set(delivered))
    if sorted(delivered) != committed:
        print(f"FAIL: the live stream has {len(delivered)} ids ({dup_live} twice), the table "
              f"{len(committed)}")
        return 1
    # Every cursor is checked against catchup_cursor()'s rule (xmin widened to xid8 >= base,
    # id not listed) evaluated here on the rows' xmin; a sample of them through the function
    # itself (each call scans the user's rows).
    with r.cursor() as cur:
        cur.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
        nxt = cur.fetchone()[0]
        cur.execute("SELECT id, xmin::text::bigint FROM horizon_stress ORDER BY id")
        xmins = []
        for rid, x in cur.fetchall():
            full = ((nxt >> 32) << 32) + x - (1 << 32 if x > (nxt & 0xFFFFFFFF) else 0)
            xmins.append((rid, full))
    pos = {x: i for i, x in enumerate(delivered)}
    bad = 0
    for i, (cbase, listed, upto) in enumerate(checkpoints):
        ls = set(listed)
        got = {rid for rid, full in xmins if full >= cbase and rid not in ls}
        want = {rid for rid in committed if pos[rid] >= upto}
        if got != want:
            bad += 1
            if bad <= 3:
                print(f"FAIL: cursor {i} (base {cbase}, {len(listed)} listed, {upto} delivered):"
                      f" missing {sorted(want - got)[:10]}, returned though had"
                      f" {sorted(got - want)[:10]}")
    checked = 0
    for i, (cbase, listed, upto) in enumerate(checkpoints):
        if i % max(1, len(checkpoints) // 40):
            continue
        checked += 1
        had = set(delivered[:upto])
        want = [x for x in committed if x not in had]
        got = []
        with r.cursor() as cur:
            while True:  # keyset pages, as the daemon fetches them
                cur.execute("SELECT id FROM livenotify.catchup_cursor('horizon_stress', '1',"
                            " %s::xid8, %s::bigint[], %s, 10000)",
                            (str(cbase), listed, got[-1] if got else -1))
                page = [x[0] for x in cur.fetchall()]
                got.extend(page)
                if len(page) < 10000:
                    break
        if got != want:
            bad += 1
            if bad <= 3:
                missing = sorted(set(want) - set(got))
                extra = sorted(set(got) - set(want))
                print(f"FAIL: checkpoint {i} (base {cbase}, {len(listed)} listed, {upto} "
                      f"delivered): missing {missing[:10]} ({len(missing)}), "
                      f"returned though had {extra[:10]} ({len(extra)})")
    print(f"{'FAIL' if bad else 'ok'}: {len(committed)} rows from {WRITERS} writers, "
          f"{len(checkpoints)} cursors checked ({checked} through catchup_cursor()), {bad} wrong")
    with r.cursor() as cur:
        cur.execute("SELECT livenotify.unregister('horizon_stress')")
        cur.execute("DROP TABLE horizon_stress")
    return 1 if bad or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
