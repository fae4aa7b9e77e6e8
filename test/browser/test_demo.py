#!/usr/bin/python3
"""test/browser/test_demo.py: the demo page (demo/, the packaged client) in headless Chromium
against a real livenotifyd and a private cluster.  Started by test/browser/run.sh, which creates
the cluster and the registered api_notification table and passes them here; this script starts
(and kills, and restarts) the daemon and the demo server itself.

Each check prints `ok NAME` or `FAILED NAME: why`; the last line is `N passed, N failed`.
Besides what the page shows, every WebSocket frame each tab receives is recorded inside the
page (browserlib's instrumentation), so a duplicate or a frame for the wrong user is caught even
where the page would hide it (the page keys its rows by id).

Each tab here keeps its own socket (`?share=0`), so that every tab's wire traffic can be
checked: what a reconnect sends, what each socket receives.  The shared socket of the default
(one socket per user and browser, client/tabgroup.js) has its own suite: test_shared_socket.py.
"""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import Browser, Failure, Processes, Runner, check, run_suite  # noqa: E402
from demostack import DemoStack, arguments  # noqa: E402

opt = arguments()
ALICE, BOB = 1, 2
# The product's promise: a committed row is on screen within a second.
DELIVERY_S = 1.0
# A restarted daemon is found again within the demo's largest backoff (5 s) plus margin.
RECONNECT_S = 20

procs = Processes(opt.workdir)
demo = DemoStack(opt, procs)
runner = Runner()
psql, insert, unread_in_db, start_daemon = demo.psql, demo.insert, demo.unread, demo.start_daemon


# While a test takes the daemon or the database away on purpose, a failed request is the
# expected outcome, not a page bug: remember those periods (plus a margin for stragglers).
disruptions = []


def disrupt():
    d = {"from": time.time() * 1000, "to": float("inf")}
    disruptions.append(d)

    def restored():
        d["to"] = time.time() * 1000 + 3000
    return restored


def disrupted(t):
    return any(d["from"] <= t <= d["to"] for d in disruptions)


# ------------------------------------------------------------------ pages

def open_tab(browser, user, label):
    tab = browser.open(f"http://127.0.0.1:{demo.web_port}/?user={user}&share=0", label)
    tab.user = user
    return tab


def wait_state(tab, state, timeout_s):
    tab.wait_selector(f'#state[data-state="{state}"]', timeout_s, what=f"state {state}")


def badge(tab):
    return int(tab.js("return document.getElementById('badge').textContent"))


def row_count(tab, row_id):
    return tab.count(f'#list li[data-id="{row_id}"]')


def notification_frames(tab, row_id):
    return sum(1 for f in tab.frames if f.get("type") == "notification" and f.get("id") == row_id)


def wait_badge(tab, n, timeout_s):
    tab.wait("return document.getElementById('badge').textContent === arguments[0]", timeout_s,
             str(n), what=f"badge {n}")


def wait_row(tab, row_id, timeout_s, what=None):
    tab.wait_selector(f'#list li[data-id="{row_id}"]', timeout_s, what=what or f"row {row_id}")


def wait_rows_until(tabs, row_id, deadline, what):
    """Waits for the row in every tab against one deadline (the tabs are waited in turn)."""
    for t in tabs:
        wait_row(t, row_id, max(0.01, deadline - time.monotonic()), what=what)


def wait_toast(tab, text, timeout_s):
    tab.wait("return [...document.querySelectorAll('.toast')].some((e) => e.textContent.includes(arguments[0]))",
             timeout_s, text, what=f"a toast with {text!r}")


def helper_page(browser, label):
    """A tab on the demo server's origin with no client of its own, to run scripts in."""
    return browser.open(f"http://127.0.0.1:{demo.web_port}/healthz", label)


# ------------------------------------------------------------------ the tests

def scenario(ctx_a, ctx_b):
    tabs = {}

    def connect():
        tabs["a1"] = open_tab(ctx_a, ALICE, "alice#1")
        tabs["a2"] = open_tab(ctx_a, ALICE, "alice#2")
        tabs["b1"] = open_tab(ctx_b, BOB, "bob")
        for t in tabs.values():
            wait_state(t, "open", 10)
        for t in tabs.values():
            hello = next((f for f in t.frames if f.get("type") == "hello"), None)
            check(hello and hello.get("user") == str(t.user),
                  f"{t.label}: hello for user {t.user}, got {hello}")
            check(badge(t) == unread_in_db(t.user), f"{t.label}: initial badge")

    if not runner.test("pages connect (two tabs of alice, one of bob)", connect):
        print("FAILED: the pages did not connect; skipping the rest")
        return
    a1, a2, b1 = tabs["a1"], tabs["a2"], tabs["b1"]
    state = {}

    def live_insert():
        state["live"] = live = insert(ALICE, "Live from psql")
        t0 = time.monotonic()
        wait_rows_until([a1, a2], live, t0 + DELIVERY_S,
                        f"row {live} on screen {DELIVERY_S} s after the INSERT committed")
        elapsed = (time.monotonic() - t0) * 1000
        want = unread_in_db(ALICE)
        for t in (a1, a2):
            check(badge(t) == want, f"{t.label}: badge {badge(t)}, database says {want}")
            check(row_count(t, live) == 1, f"{t.label}: row {live} shown {row_count(t, live)} times")
        print(f"   (on screen in both tabs {elapsed:.0f} ms after psql returned)")

    runner.test("a psql INSERT appears in both of alice's tabs within a second, with the right badge",
                live_insert)
    live = state.get("live", -1)

    def bob_isolated():
        # The queue is ordered: once bob's own later row is on his page, a frame wrongly sent
        # to him for alice's row would already have arrived.
        marker = insert(BOB, "For bob")
        wait_row(b1, marker, DELIVERY_S * 3)
        check(row_count(b1, live) == 0, "alice's row is on bob's page")
        wrong = [f for f in b1.frames
                 if f.get("type") == "notification" and f["notification"].get("user_id") != BOB]
        check(not wrong, f"bob received a frame for another user: {wrong}")
        check(badge(b1) == unread_in_db(BOB), "bob's badge")
        for t in (a1, a2):
            check(notification_frames(t, marker) == 0, f"{t.label} got bob's row")

    runner.test("bob never sees alice's row", bob_isolated)

    def mark_read():
        bob_before = badge(b1)
        before = unread_in_db(ALICE)
        check(before > 0, "nothing unread to mark")
        a1.click(f'#list li[data-id="{live}"] button.mark-read')
        for t in (a1, a2):
            wait_badge(t, before - 1, DELIVERY_S * 2)
        check(unread_in_db(ALICE) == before - 1, "the database disagrees")
        # The other tab learns which row was read by refetching after the count frame.
        a2.wait_selector(f'#list li.read[data-id="{live}"]', 3)
        check(badge(b1) == bob_before, "bob's badge changed")

    runner.test("mark as read in one tab updates the badge in both of alice's tabs", mark_read)

    def ephemeral():
        psql(f"SELECT livenotify.send('{ALICE}', 'new_message', "
             "'{\"message\": {\"from\": \"bob\", \"text\": \"lunch?\"}}')")
        for t in (a1, a2):
            wait_toast(t, "lunch?", DELIVERY_S * 2)
        marker = insert(BOB, "Marker for bob")
        wait_row(b1, marker, DELIVERY_S * 3)
        check(not any(f.get("type") == "new_message" for f in b1.frames),
              "bob received alice's new_message")

    runner.test("an ephemeral new_message pops up in alice's tabs only", ephemeral)

    def kill9():
        all_tabs = (a1, a2, b1)
        before = {t.label: len(t.frames) for t in all_tabs}
        sent_before = {t.label: len(t.sent) for t in all_tabs}
        # The cursor of the last notification each tab got: the client resumes with it.
        last_cursor = {t.label: ([f.get("cursor") for f in t.frames if f.get("type") == "notification"]
                                 or [None])[-1] for t in all_tabs}
        restored = disrupt()
        Processes.stop(demo.daemon, signal.SIGKILL)
        for t in all_tabs:
            t.wait("return document.getElementById('state').dataset.state !== 'open'", 5,
                   what="the page noticing the daemon is gone")
        down = [insert(ALICE, f"While the daemon was down #{i}") for i in (1, 2, 3)]
        bob_down = insert(BOB, "Bob, while the daemon was down")
        start_daemon()
        for t in all_tabs:
            wait_state(t, "open", RECONNECT_S)
        restored()
        for t in (a1, a2):
            auth = next((m for m in t.sent[sent_before[t.label]:] if m.get("type") == "auth"), None)
            check(isinstance(last_cursor[t.label], str), f"{t.label}: notification frames carry no cursor")
            check(auth and auth.get("cursor") == last_cursor[t.label],
                  f"{t.label}: the reconnect's auth message has cursor {auth and auth.get('cursor')}, "
                  f"the last frame had {last_cursor[t.label]}")
        for t in (a1, a2):
            for i in down:
                wait_row(t, i, 5, what=f"row {i} (inserted while down) after the reconnect")
        wait_row(b1, bob_down, 5)
        # Once each: on the page, and on the wire since the kill.
        for t in (a1, a2):
            resynced = [f for f in t.frames[before[t.label]:] if f.get("type") == "resync"]
            for i in down:
                check(row_count(t, i) == 1, f"{t.label}: row {i} shown {row_count(t, i)} times")
                n = notification_frames(t, i)
                check(n <= 1, f"{t.label}: row {i} arrived in {n} frames")
                # Replay by catch-up is the normal path; a resync (refetch) is the fallback.
                check(n == 1 or resynced, f"{t.label}: row {i} neither replayed nor announced by a resync")
                if n == 0:
                    print(f"   note: {t.label} got row {i} by refetching after resync "
                          f"{[f.get('reason') for f in resynced]}, not by catch-up")
            check(badge(t) == unread_in_db(ALICE), f"{t.label}: badge {badge(t)} after the reconnect")
        check(all(notification_frames(b1, i) == 0 for i in down), "bob received alice's replayed rows")
        check(len(a1.frames) > before[a1.label], "no frames after the reconnect")
        # And live delivery works again on the new daemon.
        after = insert(ALICE, "Live again")
        wait_rows_until([a1, a2], after, time.monotonic() + DELIVERY_S, f"row {after} live again")

    runner.test("after kill -9 and a restart of livenotifyd the tabs reconnect and show the rows "
                "inserted meanwhile, once each", kill9)

    def sigterm():
        a1.js("window.__states = []; window.livenotifyDemo.client.on('state', (e) => window.__states.push(e));")
        restored = disrupt()
        Processes.stop(demo.daemon, signal.SIGTERM)
        start_daemon()
        wait_state(a1, "open", RECONNECT_S)
        restored()
        states = a1.js("return window.__states")
        check(any(s.get("state") == "reconnecting" and s.get("code") == 1001 for s in states),
              f"no reconnect after close code 1001: {states}")
        i = insert(ALICE, "After SIGTERM")
        wait_row(a1, i, DELIVERY_S)

    runner.test("SIGTERM: the tabs see 1001 and reconnect to the restarted daemon", sigterm)

    def pg_restart():
        resyncs = sum(1 for f in a1.frames if f.get("type") == "resync")
        fetches_before = len(a1.fetches)
        restored = disrupt()
        # -l: without a log file the new postmaster keeps our stdout pipe open, and this waits
        # forever.
        subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(opt.pg_bin, "pg_ctl"), "-D",
                        os.path.join(opt.cluster_dir, "data"), "-l",
                        os.path.join(opt.cluster_dir, "log/postgresql.log"), "-m", "fast", "-w",
                        "-t", "60", "restart"], cwd="/tmp", timeout=90, check=True,
                       stdout=subprocess.DEVNULL)
        # The daemon notices the new queue once it is back on the database.
        a1.wait("return window.livenotifyDemo.frames.filter((f) => f.type === 'resync').length > arguments[0]",
                30, resyncs, what="a resync frame after the restart")
        frame = [f for f in a1.frames if f.get("type") == "resync"][-1]
        restored()
        check(frame.get("reason") == "epoch", f"resync reason {frame.get('reason')}, expected epoch")
        check(a1.js("return document.getElementById('state').dataset.state") == "open", "the tab is not open")
        time.sleep(0.3)
        check(any("/api/notifications" in u for u in a1.fetches[fetches_before:]),
              "the page did not refetch after resync")
        # Rows committed after the restart are delivered live.
        deadline = time.monotonic() + 15
        while True:
            i = insert(ALICE, "After a PostgreSQL restart")
            try:
                wait_rows_until([a1, a2], i, time.monotonic() + 2, f"row {i}")
                break
            except Failure:
                if time.monotonic() > deadline:
                    raise Failure(f"row {i} not delivered after the restart")
        for t in (a1, a2):
            check(badge(t) == unread_in_db(ALICE), f"{t.label}: badge after the restart")

    runner.test("a PostgreSQL restart: the tabs stay connected, get resync and refetch; rows flow again",
                pg_restart)

    def refused_token():
        page = helper_page(ctx_b, "bob-script")
        try:
            result = page.js_async("""
              const [port] = args;
              const { LiveNotifyClient } = await import('/client/livenotify.js');
              const events = [];
              const client = new LiveNotifyClient({ url: `ws://127.0.0.1:${port}/ws`, token: 'not-a-jwt', minDelayMs: 50 });
              client.on('state', (e) => events.push(e));
              const errors = [];
              client.on('error', (e) => errors.push(e));
              client.connect();
              await new Promise((r) => setTimeout(r, 2500));
              return { events, errors, state: client.state };
            """, demo.daemon_port)
        finally:
            page.close()
        check(result["state"] == "closed", f"state {result['state']}: {result['events']}")
        errs = result["errors"]
        check(len(errs) == 1 and errs[0].get("kind") == "auth" and errs[0].get("code") == 1008,
              f"errors: {errs}")

    runner.test("a refused token closes with 1008 and the client stops instead of looping", refused_token)

    def token_backoff():
        page = helper_page(ctx_b, "bob-script")
        try:
            result = page.js_async("""
              const [port] = args;
              const { LiveNotifyClient } = await import('/client/livenotify.js');
              let calls = 0;
              const delays = [];
              const client = new LiveNotifyClient({
                url: `ws://127.0.0.1:${port}/ws`, getToken: () => { calls++; return 'not-a-jwt'; },
                minDelayMs: 100, maxDelayMs: 1600,
              });
              client.on('state', (e) => { if (e.delayMs != null) delays.push(e.delayMs); });
              client.connect();
              await new Promise((r) => setTimeout(r, 3000));
              client.close();
              return { calls, delays, state: client.state };
            """, demo.daemon_port)
        finally:
            page.close()
        # Without backoff a refused token costs one round trip (a few ms): hundreds of calls.
        check(2 <= result["calls"] <= 12, f"getToken() called {result['calls']} times in 3 s: {result['delays']}")
        check(result["state"] == "closed", f"state {result['state']} after close()")

    runner.test("a getToken() that keeps giving refused tokens is retried with growing delays", token_backoff)

    def token_expired():
        page = helper_page(ctx_b, "bob-script")
        # Resume from the newest row: the gap's row is then the only one to replay.
        newest = int(psql("SELECT coalesce(max(id), 0) FROM api_notification"))
        try:
            result = page.js_async("""
              const [port, user, lastId] = args;
              const { LiveNotifyClient } = await import('/client/livenotify.js');
              let calls = 0;
              const hellos = [], errors = [], rows = [];
              let inserted = null;
              // Tokens valid for 2 s: the daemon closes the socket at exp + 1 s (its leeway).
              const getToken = async () => {
                calls++;
                return (await (await fetch(`/api/token?user=${user}&ttl=2`)).json()).token;
              };
              const client = new LiveNotifyClient({ url: `ws://127.0.0.1:${port}/ws`, getToken, lastId, stableAfterMs: 500 });
              client.on('hello', () => hellos.push(Date.now()));
              client.on('notification', (f) => rows.push(f.id));
              client.on('error', async (e) => {
                errors.push({ kind: e.kind, code: e.code, reason: e.reason, at: Date.now() });
                // A row committed while the socket is down: the resume must bring it, once.
                if (e.kind === 'token_expired' && inserted === null) {
                  inserted = 0;
                  const r = await fetch('/api/notifications', {
                    method: 'POST', headers: { 'Content-Type': 'application/json' },
                    body: JSON.stringify({ user_id: user, type: 'like', title: 'while the token expired' }),
                  });
                  inserted = (await r.json()).id;
                }
              });
              client.connect();
              const t0 = Date.now();
              while (Date.now() - t0 < 8000 && !(hellos.length >= 2 && inserted && rows.includes(inserted))) {
                await new Promise((r) => setTimeout(r, 50));
              }
              const state = client.state;
              client.close();
              return { calls, hellos: hellos.map((t) => t - t0), errors, rows, inserted, state };
            """, demo.daemon_port, BOB, newest)
        finally:
            page.close()
        expired = [e for e in result["errors"] if e.get("kind") == "token_expired"]
        check(expired and expired[0].get("code") == 4001 and expired[0].get("reason") == "token expired",
              f"no 4001 \"token expired\": {result}")
        check(len(result["hellos"]) >= 2 and result["calls"] >= 2, f"no reconnect with a new token: {result}")
        check(all(e.get("kind") == "token_expired" for e in result["errors"]), f"other errors: {result['errors']}")
        check(result["rows"].count(result["inserted"]) == 1,
              f"the row of the gap ({result['inserted']}) not delivered exactly once: {result['rows']}")
        check(result["state"] == "open", f"state {result['state']}")

    runner.test("an expired token: close 4001, getToken() gives a new one, the client resumes", token_expired)

    def heartbeat():
        page = helper_page(ctx_a, "alice-script")
        try:
            result = page.js_async("""
              const [port] = args;
              const { LiveNotifyClient } = await import('/client/livenotify.js');
              const token = (await (await fetch('/api/token?user=1')).json()).token;
              const states = [];
              let pongs = 0;
              const client = new LiveNotifyClient({
                url: `ws://127.0.0.1:${port}/ws`, token, lastId: 1e9, heartbeatMs: 200, heartbeatTimeoutMs: 500,
              });
              client.on('state', (e) => states.push(e.state));
              client.on('*', (f) => { if (f.type === 'pong') pongs++; });
              client.connect();
              await new Promise((r) => setTimeout(r, 1800));
              const state = client.state;
              client.close();
              return { pongs, states, state };
            """, demo.daemon_port)
        finally:
            page.close()
        check(result["state"] == "open" and result["pongs"] >= 3,
              f"state {result['state']}, {result['pongs']} pongs, states {result['states']}")
        check("reconnecting" not in result["states"], f"reconnected: {result['states']}")

    runner.test("heartbeat: the client pings a quiet connection and stays open on pong", heartbeat)

    def no_console_errors():
        errs = [f"{t.label}: {e['text']}" for t in (a1, a2, b1) for e in t.errors if not disrupted(e["at"])]
        check(not errs, "\n".join(errs))

    runner.test("no errors in the pages' consoles", no_console_errors)

    if opt.screenshot:
        def screenshot():
            insert(ALICE, "Carol commented on your post", "comment")
            psql(f"SELECT livenotify.send('{ALICE}', 'new_message', "
                 "'{\"message\": {\"from\": \"bob\", \"text\": \"Are you free at 3?\"}}')")
            wait_toast(a1, "free at 3", 3)
            a1.screenshot(opt.screenshot)

        runner.test("screenshot", screenshot)


def body():
    demo.start()
    # Two browsers: alice's two tabs share a profile (as two tabs of one browser do), bob has
    # his own.
    with Browser(opt.workdir, "alice") as ctx_a, Browser(opt.workdir, "bob") as ctx_b:
        scenario(ctx_a, ctx_b)


def main():
    return run_suite(runner, procs, opt.workdir, body)


if __name__ == "__main__":
    sys.exit(main())
