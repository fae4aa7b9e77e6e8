"""The randomized transaction workload: what a real app's many write paths do at once.

Each session draws its transactions from its own random.Random(seed + session), so a seed
replays the same statements (the interleaving between sessions is the scheduler's).
"""
import io
import json
import random
import threading
import time

import psycopg2

TYPES = ("like", "comment", "follow", "mention", "event", "message")  # event, message: skipped

# rel_exc(): test/reliability/plpgsql.sql (installed by run.sh).


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.nonces = {}  # user -> set of committed send() nonces
        self.tx = {"commit": 0, "rollback": 0, "error_rollback": 0, "retry": 0}
        self.ops = {}
        self.max_commit_s = 0.0
        self.errors = []

    def committed(self, sends, ops):
        with self.lock:
            self.tx["commit"] += 1
            for u, n in sends:
                self.nonces.setdefault(u, set()).add(n)
            for o in ops:
                self.ops[o] = self.ops.get(o, 0) + 1


def _row(rng, users):
    return (int(rng.choice(users)), rng.choice(TYPES))


def _title(big):
    # The title carries the insert time so the tabs can measure commit-to-frame latency.
    return f"t={time.time():.6f}"


def run_session(conninfo, seed, session, n_tx, users, stats, sync_commit=False, big=0):
    rng = random.Random(seed * 1000 + session)
    conn = psycopg2.connect(conninfo)
    conn.autocommit = False
    cur = conn.cursor()
    if not sync_commit:
        # Visibility and delivery are the same with asynchronous commit; it only spares
        # the fsync per transaction so 10,000 of them fit in the make-test budget.
        cur.execute("SET synchronous_commit = off")
        conn.commit()
    msg = "m" * big if big else "m"
    for i in range(n_tx):
        sends, ops = [], []
        try:
            for _ in range(rng.randint(1, 4)):
                op = rng.choices(
                    ("insert", "multi", "copy", "sp_rollback", "sp_release", "plpgsql", "send"),
                    weights=(30, 15, 8, 10, 10, 12, 15))[0]
                ops.append(op)
                if op == "insert":
                    u, t = _row(rng, users)
                    cur.execute("INSERT INTO api_notification (user_id, type, title, message)"
                                " VALUES (%s, %s, %s, %s)", (u, t, _title(big), msg))
                elif op == "multi":
                    rows = [_row(rng, users) for _ in range(rng.randint(2, 6))]
                    args = []
                    for u, t in rows:
                        args += [u, t, _title(big), msg]
                    cur.execute("INSERT INTO api_notification (user_id, type, title, message) VALUES "
                                + ",".join(["(%s,%s,%s,%s)"] * len(rows)), args)
                elif op == "copy":
                    buf = io.StringIO()
                    for _ in range(rng.randint(1, 5)):
                        u, t = _row(rng, users)
                        buf.write(f"{u}\t{t}\t{_title(big)}\t{msg}\n")
                    buf.seek(0)
                    cur.copy_expert("COPY api_notification (user_id, type, title, message)"
                                    " FROM STDIN", buf)
                elif op in ("sp_rollback", "sp_release"):
                    cur.execute("SAVEPOINT s")
                    inner = []
                    for _ in range(rng.randint(1, 3)):
                        u, t = _row(rng, users)
                        cur.execute("INSERT INTO api_notification (user_id, type, title, message)"
                                    " VALUES (%s, %s, %s, %s)", (u, t, _title(big), msg))
                    if rng.random() < 0.5:
                        u = str(rng.choice(users))
                        n = f"{seed}-{session}-{i}-sp{len(sends)}"
                        cur.execute("SELECT livenotify.send(%s, 'rel_msg', %s::jsonb)",
                                    (u, json.dumps({"nonce": n, "user": u})))
                        inner.append((u, n))
                    if op == "sp_rollback":
                        cur.execute("ROLLBACK TO SAVEPOINT s")
                    else:
                        cur.execute("RELEASE SAVEPOINT s")
                        sends += inner
                elif op == "plpgsql":
                    u, t = _row(rng, users)
                    fail = rng.random() < 0.5
                    n = f"{seed}-{session}-{i}-pl{len(sends)}"
                    cur.execute("SELECT rel_exc(%s, %s, %s, %s)", (u, t, fail, n))
                    if not fail:
                        sends.append((str(u), n))
                elif op == "send":
                    u = str(rng.choice(users))
                    n = f"{seed}-{session}-{i}-s{len(sends)}"
                    cur.execute("SELECT livenotify.send(%s, 'rel_msg', %s::jsonb)",
                                (u, json.dumps({"nonce": n, "user": u})))
                    sends.append((u, n))
            end = rng.random()
            if end < 0.70:
                t0 = time.monotonic()
                conn.commit()
                dt = time.monotonic() - t0
                stats.committed(sends, ops)
                with stats.lock:
                    stats.max_commit_s = max(stats.max_commit_s, dt)
            elif end < 0.95:
                conn.rollback()
                with stats.lock:
                    stats.tx["rollback"] += 1
            else:
                # A statement error aborts the transaction: the app then rolls back.
                try:
                    cur.execute("SELECT 1/0")
                except psycopg2.DataError:
                    pass
                conn.rollback()
                with stats.lock:
                    stats.tx["error_rollback"] += 1
        except psycopg2.Error as e:
            with stats.lock:
                stats.errors.append(f"session {session} tx {i}: {e}")
            try:
                conn.rollback()
            except psycopg2.Error:
                pass
    conn.close()


def run_sessions(conninfo, seed, sessions, n_tx, users, stats, **kw):
    per = [n_tx // sessions + (1 if s < n_tx % sessions else 0) for s in range(sessions)]
    threads = [threading.Thread(target=run_session,
                                args=(conninfo, seed, s, per[s], users, stats), kwargs=kw)
               for s in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
