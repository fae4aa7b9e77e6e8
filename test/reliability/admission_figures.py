#!/usr/bin/python3
"""Figures of docs/reliability.md, "Pre-auth deadlines, per-address limits, descriptors and
startup (issue 12)", measured against any livenotifyd binary (no database needed):

  admission_figures.py flood DAEMON PORT     one address floods pending sockets while a
                                             legitimate tab authenticates by first message
  admission_figures.py slow DAEMON PORT      how long a silent / slow-header connection is held

Run each under `flock /tmp/livenotify-heavy.lock`.  The daemon runs with its defaults
(auth = jwt, a database URL that does not connect)."""
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import lntest  # noqa: E402
import websockets  # noqa: E402


def start(daemon, port, *extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVENOTIFY_")}
    env["LIVENOTIFY_JWT_SECRET"] = lntest.JWT_SECRET
    p = subprocess.Popen([daemon, "--listen-address=127.0.0.1", f"--port={port}", "--auth=jwt",
                          f"--jwt-audience={lntest.JWT_AUDIENCE}", "--database-url=host=/nonexistent",
                          "--log-level=warn", *extra],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    sys.exit(f"{daemon} did not listen on {port}")


async def raw_pending(port, src):
    s = socket.socket()
    s.bind((src, 0))
    s.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(s, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(s, (f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: livenotify.v1\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = await asyncio.wait_for(loop.sock_recv(s, 4096), 5)
        if not d:
            break
        buf += d
    return buf.startswith(b"HTTP/1.1 101"), s


async def flood(port, rounds=5, per_round=300):
    attempts = upgraded = legit_ok = 0
    for r in range(rounds):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["livenotify.v1"],
                                      ping_interval=None)
        held = []
        for _ in range(per_round):
            attempts += 1
            ok, s = await raw_pending(port, "127.0.0.5")
            upgraded += ok
            held.append(s)
        try:
            await ws.send(json.dumps({"type": "auth", "token": lntest.token_for(1300 + r)}))
            f = json.loads(await asyncio.wait_for(ws.recv(), 3))
            legit_ok += f.get("type") == "hello"
        except Exception:  # noqa: BLE001 - counted as a failed login
            pass
        await ws.close()
        for s in held:
            s.close()
        await asyncio.sleep(0.2)
    print(f"attacker pending attempts {attempts}, upgraded {upgraded}; "
          f"legit first-message logins {legit_ok}/{rounds}")


def slow(port):
    res = {}

    def run(name, drip):
        s = socket.create_connection(("127.0.0.1", port))
        t0 = time.monotonic()
        s.settimeout(0.3)
        if drip:
            s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        while time.monotonic() - t0 < 40:
            try:
                if drip:
                    s.sendall(b"X")
                if not s.recv(100):
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        res[name] = round(time.monotonic() - t0, 2)

    ts = [threading.Thread(target=run, args=("silent", False)),
          threading.Thread(target=run, args=("slow header", True))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(f"closed after (s): {res}")


def main():
    what, daemon, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    p = start(daemon, port)
    try:
        if what == "flood":
            asyncio.run(flood(port))
        else:
            slow(port)
    finally:
        p.terminate()
        p.wait(5)


if __name__ == "__main__":
    main()
