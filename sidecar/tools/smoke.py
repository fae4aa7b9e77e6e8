#!/usr/bin/python3
"""Manual smoke test for livenotifyd (not part of `make test`).

Needs a running cluster with the extension, an api_notification table registered
with read column is_read, and livenotifyd in auth none mode, e.g.:

    livenotifyd --auth=none --port=18765 --database-url="host=/tmp/sc-pg port=55433 user=postgres"
    python3 sidecar/tools/smoke.py --port 18765 --pg "host=/tmp/sc-pg port=55433 user=postgres"

Checks: two tabs of one user get the same frames with the count, the other user gets
nothing, send() arrives as its kind, mark-as-read pushes unread_count, resume replays
missed rows exactly once.
"""
import argparse
import asyncio
import json
import subprocess
import sys

import websockets


def psql(conninfo, sql):
    subprocess.run(["psql", conninfo, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


async def recv(ws, timeout=3.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def expect_silence(ws, timeout=0.5):
    try:
        msg = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected frame {msg}")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=18765)
    ap.add_argument("--pg", required=True)
    args = ap.parse_args()
    url = f"ws://127.0.0.1:{args.port}/ws"
    failures = 0

    def check(cond, what):
        nonlocal failures
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures += 1

    a1 = await websockets.connect(url + "?user=1", subprotocols=["livenotify.v1"])
    a2 = await websockets.connect(url + "?user=1", subprotocols=["livenotify.v1"])
    b = await websockets.connect(url + "?user=2", subprotocols=["livenotify.v1"])
    for ws, user in ((a1, "1"), (a2, "1"), (b, "2")):
        h = await recv(ws)
        check(h["type"] == "hello" and h["user"] == user, f"hello for user {user}: {h}")

    psql(args.pg, "INSERT INTO api_notification (user_id, type, text) VALUES (1, 'like', 'hi')")
    f1, f2 = await recv(a1), await recv(a2)
    check(f1 == f2 and f1["type"] == "notification" and f1["notification"]["text"] == "hi", f"both tabs: {f1}")
    check("unread_count" in f1 and f1["unread_count"] >= 1, "unread_count present")
    await expect_silence(b)
    check(True, "other user got nothing")
    last_id = f1["id"]

    psql(args.pg, "INSERT INTO api_notification (user_id, type, text) VALUES (1, 'event', 'skipped')")
    psql(args.pg, "BEGIN; INSERT INTO api_notification (user_id, type, text) VALUES (1, 'like', 'rolled back'); ROLLBACK")
    await expect_silence(a1)
    check(True, "skipped type and rollback deliver nothing")

    psql(args.pg, "SELECT livenotify.send('2', 'new_message', '{\"message\": {\"text\": \"yo\"}}')")
    m = await recv(b)
    check(m == {"type": "new_message", "message": {"text": "yo"}}, f"send() arrives as new_message: {m}")

    psql(args.pg, "UPDATE api_notification SET is_read = true WHERE user_id = 1")
    u1, u2 = await recv(a1), await recv(a2)
    check(u1["type"] == "unread_count" and u1["unread_count"] == 0 and u1 == u2, f"mark as read: {u1}")

    await a2.close()
    psql(args.pg, "INSERT INTO api_notification (user_id, type, text) SELECT 1, 'like', 'missed ' || g FROM generate_series(1, 3) g")
    got = [await recv(a1) for _ in range(3)]
    a3 = await websockets.connect(url + f"?user=1&last_id={last_id}", subprotocols=["livenotify.v1"])
    h = await recv(a3)
    replay = [await recv(a3) for _ in range(3)]
    check([r["id"] for r in replay] == [g["id"] for g in got], f"resume replays {[r['id'] for r in replay]}")
    await expect_silence(a3)
    check(True, "no duplicates after the seam")
    psql(args.pg, "INSERT INTO api_notification (user_id, type, text) VALUES (1, 'like', 'after resume')")
    n = await recv(a3)
    check(n["notification"]["text"] == "after resume", "live frames follow the replay")

    # garbage never hurts
    await a3.send("not json")
    await a3.send(json.dumps({"type": "ping"}))
    p = await recv(a3)
    check(p == {"type": "pong"}, f"ping -> pong: {p}")

    for ws in (a1, a3, b):
        await ws.close()
    print("failures:", failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
