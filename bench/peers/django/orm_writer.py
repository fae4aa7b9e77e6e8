#!/usr/bin/env python3
"""Insert notifications through Django's ORM at a fixed rate (the seed stack's only captured path).

Raw SQL never fires post_save, so the seed stack is measured with rows created the way the app
creates them: Notification.objects.create() in W worker processes (a web app's workers), each
at rate/W per second on a fixed schedule.  A worker that falls behind does not skip rows, it
runs flat out; the achieved rate is reported so a saturated writer is visible.

Every row carries the benchmark fields in `extra`, like the libpq writer's rows:
bench_n (unique, user = n % users + 1, every tenth row is a skipped "event") and bench_ts
(microseconds since the epoch, taken just before create()).

The INSERT's acknowledgement is timed inside Django with connection.execute_wrapper: in
autocommit mode the INSERT has committed when execute() returns, before post_save runs, so
that time is the commit the client's frame latency is measured from (PREFIX.ack: "n ack_us",
microseconds after bench_ts, the same file the libpq writer writes).

  orm_writer.py --rate 500 --seconds 10 --procs 4 --users 500 --out PREFIX [--signals off]
Prints one JSON object: rows, seconds, achieved rate, mean INSERT ms, late rows (started > 5 ms
after schedule).
"""
import argparse
import json
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproj.settings")


def worker(p, args, start_at, results):
    import django

    django.setup()
    from django.db import connection
    from django.db.models.signals import post_save

    from api.models import Notification
    from api.signals import push_notification

    if not args.signals:
        # livenotify runs with this writer too: it captures in the database, so the app's
        # receiver is disconnected (no redis round trip charged to that system's writer).
        post_save.disconnect(push_notification, sender=Notification)
    per_proc = args.rate / args.procs
    end_at = start_at + args.seconds
    rows = late = 0
    i = 0
    acks = []
    current = {}

    def time_insert(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith("INSERT"):
            current["ack"] = time.time()
        return result

    while True:
        due = start_at + i / per_proc
        if due >= end_at or time.time() >= end_at:
            break  # a saturated writer stops at the deadline: the achieved rate tells
        now = time.time()
        if now < due:
            time.sleep(due - now)
        elif now - due > 0.005:
            late += 1
        n = i * args.procs + p
        typ = "event" if n % 10 == 9 else "like"
        ts = time.time()
        with connection.execute_wrapper(time_insert):
            Notification.objects.create(
                user_id=n % args.users + 1,
                type=typ,
                title="bench",
                message="someone liked your post",
                extra={"bench_n": n, "bench_ts": int(ts * 1e6)},
            )
        acks.append((n, int((current["ack"] - ts) * 1e6)))
        rows += 1
        i += 1
    if args.out:
        with open(f"{args.out}.ack.{p}", "w") as f:
            f.writelines(f"{n} {a}\n" for n, a in acks)
    results.put((rows, late, time.time(), sum(a for _, a in acks)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--signals", choices=["on", "off"], default="on")
    ap.add_argument("--out")
    args = ap.parse_args()
    args.signals = args.signals == "on"
    # Workers set Django up themselves (after the fork) and start together at start_at.
    start_at = time.time() + 2.0
    results = mp.Queue()
    procs = [mp.Process(target=worker, args=(p, args, start_at, results)) for p in range(args.procs)]
    for pr in procs:
        pr.start()
    got = [results.get() for _ in procs]
    for pr in procs:
        pr.join()
    rows = sum(g[0] for g in got)
    late = sum(g[1] for g in got)
    elapsed = min(max(g[2] for g in got), start_at + args.seconds) - start_at
    with open(f"{args.out}.ack" if args.out else os.devnull, "w") as f:
        for p in range(args.procs) if args.out else ():
            with open(f"{args.out}.ack.{p}") as part:
                f.write(part.read())
            os.unlink(f"{args.out}.ack.{p}")
    print(json.dumps({"rows": rows, "late": late, "seconds": round(elapsed, 3),
                      "achieved_rate": round(rows / elapsed, 1),
                      "insert_ms": round(sum(g[3] for g in got) / max(rows, 1) / 1000, 3)}))


if __name__ == "__main__":
    main()
