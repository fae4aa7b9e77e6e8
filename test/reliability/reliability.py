#!/usr/bin/python3
"""Reliability and hostile-input tests of livenotify with counted figures (issue 5).

Started by test/reliability/run.sh, which creates the clusters and the database.  Each test
prints `ok NAME: figures` or `FAILED NAME: why`, the figures are also written as JSON
(--figures) for docs/reliability.md; the last line is `N passed, N failed`.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (Daemon, Db, Failure, JWT_AUDIENCE, JWT_ISSUER, JWT_SECRET, SKIPPED,  # noqa: E402
                    Tab, b64url, check, claims_for, compare, http_get, make_jwt, settle,
                    wait_connected)
import txrun  # noqa: E402

TESTS = []


def test(name, long_only=False):
    def deco(fn):
        TESTS.append((name, fn, long_only))
        return fn
    return deco


class Ctx:
    def __init__(self, opts):
        self.opts = opts
        self.db = Db(opts.conninfo)
        self.figures = {}
        self.next_port = opts.port_base
        self.daemons = []
        self.user_base = 100000

    def port(self):
        # The private range 54374-54389, reused round robin (a port can be briefly taken as
        # an ephemeral client port; Daemon.start moves on to the next one then).
        p = self.next_port
        self.next_port = self.next_port + 1 if self.next_port < 54389 else self.opts.port_base
        return p

    def users(self, n):
        """Fresh user ids, so a test never sees another test's rows."""
        self.user_base += 1000
        return [self.user_base + i for i in range(n)]

    async def daemon(self, name, *args, conninfo=None, port=None):
        d = Daemon(self.opts, name, port or self.port(), ["--auth=none", *args],
                   conninfo=conninfo)
        self.daemons.append(d)
        for attempt in range(4):
            try:
                await d.start()
                return d
            except Failure:
                if attempt == 3 or "listen_failed" not in d.log_tail(5):
                    raise
                d.port = self.port()
        return d

    def fail_if(self, problems):
        if problems:
            raise Failure("; ".join(problems[:6]))


def zero(fig, *keys):
    bad = {k: fig[k] for k in keys if fig.get(k)}
    check(not bad, f"non-zero: {bad}")


# --------------------------------------------------------------------------------------
# 1. Randomized transactions


@test("transactions")
async def t_transactions(ctx):
    o = ctx.opts
    seed = o.seed
    n_tx = o.tx_count
    users = ctx.users(8)
    d = await ctx.daemon("tx")
    tabs = []
    for i, u in enumerate(users):
        tabs.append(Tab(d, u, f"u{i}", o.conninfo).start())
        if i < 3:  # two tabs for some users
            tabs.append(Tab(d, u, f"u{i}b", o.conninfo).start())
    await wait_connected(tabs)
    stats = txrun.Stats()
    t0 = time.monotonic()
    await asyncio.to_thread(txrun.run_sessions, o.conninfo, seed, 4, n_tx, users, stats)
    elapsed = time.monotonic() - t0
    check(await settle(ctx.db, tabs), "markers did not reach every tab")
    fig, problems = compare(ctx.db, tabs, "transactions", stats.nonces)
    for t in tabs:
        await t.close()
    fig.update(seed=seed, transactions=n_tx, sessions=4, committed=stats.tx["commit"],
               rolled_back=stats.tx["rollback"] + stats.tx["error_rollback"],
               sends_committed=sum(len(v) for v in stats.nonces.values()),
               ops=stats.ops, write_errors=len(stats.errors), seconds=round(elapsed, 1),
               max_commit_ms=round(stats.max_commit_s * 1000, 1))
    ctx.figures["transactions"] = fig
    if stats.errors:
        problems.append(f"write errors: {stats.errors[:3]}")
    ctx.fail_if(problems)
    zero(fig, "phantoms", "missing", "dups", "cross_user", "ephemeral_missing",
         "ephemeral_phantoms", "ephemeral_dups", "errors", "resyncs")
    return fig


# --------------------------------------------------------------------------------------
# 2. Faults


class Writer:
    """One session inserting single-row transactions in id order (synchronous commit, so a
    row delivered is a row that survives a crash).  Reconnects when the server goes away:
    the table, not the writer's bookkeeping, is the truth about what committed."""

    def __init__(self, conninfo, users, seed, pause=0.002, big=0):
        self.conninfo = conninfo
        self.users = users
        self.rng = random.Random(seed)
        self.pause = pause
        self.msg = "m" * big if big else "m"
        self.inserted = 0
        self.failed = 0
        self.max_commit_s = 0.0
        self.stop_flag = threading.Event()
        self.thread = None

    def _loop(self, limit):
        conn = None
        while not self.stop_flag.is_set() and (limit is None or self.inserted < limit):
            try:
                if conn is None or conn.closed:
                    conn = psycopg2.connect(self.conninfo)
                    conn.autocommit = True
                u = self.rng.choice(self.users)
                t = self.rng.choice(("like", "comment", "follow", "event", "message"))
                t0 = time.monotonic()
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO api_notification (user_id, type, title, message)"
                                " VALUES (%s, %s, %s, %s)", (u, t, f"t={time.time():.6f}", self.msg))
                self.max_commit_s = max(self.max_commit_s, time.monotonic() - t0)
                self.inserted += 1
            except psycopg2.Error:
                self.failed += 1
                conn = None
                time.sleep(0.1)
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def start(self, limit=None):
        self.thread = threading.Thread(target=self._loop, args=(limit,), daemon=True)
        self.thread.start()
        return self

    async def wait_inserted(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        while self.inserted < n and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def finish(self):
        self.stop_flag.set()
        await asyncio.to_thread(self.thread.join)

    async def join(self):
        await asyncio.to_thread(self.thread.join)


def tabs_for(d, users, conninfo, per_user=2, refetch=True):
    return [Tab(d, u, f"u{u}-{k}", conninfo, refetch=refetch).start()
            for u in users for k in range(per_user)]


@test("kill9_daemon")
async def t_kill9(ctx):
    users = ctx.users(3)
    d = await ctx.daemon("kill9")
    # The resume path is the daemon's own catch-up: a tab that refetched would hide a gap.
    tabs = tabs_for(d, users, ctx.opts.conninfo, refetch=False)
    await wait_connected(tabs)
    w = Writer(ctx.opts.conninfo, users, ctx.opts.seed).start(limit=1500)
    await w.wait_inserted(400)
    d.kill9()
    at_kill = w.inserted
    await asyncio.sleep(1.0)
    await d.start()
    await w.join()
    check(await settle(ctx.db, tabs), "markers did not reach every tab after the restart")
    fig, problems = compare(ctx.db, tabs, "kill9")
    reconnects = sum(t.connects - 1 for t in tabs)
    for t in tabs:
        await t.close()
    fig.update(killed_after_rows=at_kill, reconnects=reconnects, write_errors=w.failed)
    ctx.figures["kill9_daemon"] = fig
    ctx.fail_if(problems)
    zero(fig, "phantoms", "missing", "dups", "cross_user", "refetched", "errors")
    check(reconnects >= len(tabs), f"tabs did not reconnect ({reconnects})")
    return fig


def pg_ctl(opts, *args):
    import subprocess
    return subprocess.run(["runuser", "-u", "postgres", "--", f"{opts.pg_bin}/pg_ctl",
                           "-D", f"{opts.cluster_dir}/data",
                           "-l", f"{opts.cluster_dir}/log/postgresql.log", *args],
                          cwd="/tmp", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def pg_restart_test(ctx, mode):
    users = ctx.users(3)
    d = await ctx.daemon(f"pgrestart-{mode}")
    tabs = tabs_for(d, users, ctx.opts.conninfo)
    await wait_connected(tabs)
    epoch1 = ctx.db.one("SELECT epoch FROM livenotify.position()")
    w = Writer(ctx.opts.conninfo, users, ctx.opts.seed).start()
    await w.wait_inserted(300)
    r = await asyncio.to_thread(pg_ctl, ctx.opts, "-m", mode, "-w", "-t", "60", "restart")
    check(r.returncode == 0, f"pg_ctl restart -m {mode}: {r.stderr}")
    ctx.db.conn = None
    before = w.inserted
    await w.wait_inserted(before + 300)
    await w.finish()
    epoch2 = ctx.db.one("SELECT epoch FROM livenotify.position()")
    check(epoch1 != epoch2, "the epoch did not change")
    check(await settle(ctx.db, tabs), "markers did not reach every tab after the restart")
    fig, problems = compare(ctx.db, tabs, mode)
    got_resync = sum(1 for t in tabs if t.resyncs.get("epoch"))
    closes = sum(len(t.closes) for t in tabs)
    for t in tabs:
        await t.close()
    fig.update(tabs_with_epoch_resync=got_resync, socket_closes=closes, write_errors=w.failed)
    ctx.fail_if(problems)
    zero(fig, "phantoms", "missing", "cross_user", "errors")
    check(got_resync == len(tabs), f"only {got_resync} of {len(tabs)} tabs got resync(epoch)")
    return fig


@test("pg_restart_fast")
async def t_pg_fast(ctx):
    fig = await pg_restart_test(ctx, "fast")
    ctx.figures["pg_restart_fast"] = fig
    return fig


@test("pg_restart_immediate")
async def t_pg_immediate(ctx):
    fig = await pg_restart_test(ctx, "immediate")
    ctx.figures["pg_restart_immediate"] = fig
    return fig


@test("ring_overflow")
async def t_ring(ctx):
    o = ctx.opts
    rdb = Db(o.ring_conninfo)
    users = ctx.users(2)
    d = await ctx.daemon("ring", conninfo=o.ring_conninfo)
    tabs = tabs_for(d, users, o.ring_conninfo)
    await wait_connected(tabs)
    lost0 = rdb.one("SELECT lost FROM livenotify.stats")
    ring_bytes = rdb.one("SELECT ring_bytes FROM livenotify.stats")
    # The stalled reader: the daemon stops reading (and everything else) mid-stream.
    d.proc.send_signal(signal.SIGSTOP)
    try:
        w = Writer(o.ring_conninfo, users, o.seed, pause=0, big=200).start(limit=1500)
        await w.join()
    finally:
        d.proc.send_signal(signal.SIGCONT)
    # Rows after the overflow flow again.
    w2 = Writer(o.ring_conninfo, users, o.seed + 1, pause=0.001).start(limit=100)
    await w2.join()
    check(await settle(rdb, tabs), "markers did not reach every tab after the overflow")
    fig, problems = compare(rdb, tabs, "ring")
    m = await d.metrics()
    lost = rdb.one("SELECT lost FROM livenotify.stats") - lost0
    got_resync = sum(1 for t in tabs if t.resyncs.get("lost"))
    for t in tabs:
        await t.close()
    fig.update(ring_bytes=ring_bytes, rows_while_stalled=w.inserted, lost_in_stats=lost,
               lost_in_metrics=m.get("livenotifyd_lost_entries_total", 0),
               tabs_with_lost_resync=got_resync, write_errors=w.failed + w2.failed,
               max_commit_ms=round(max(w.max_commit_s, w2.max_commit_s) * 1000, 1))
    ctx.figures["ring_overflow"] = fig
    ctx.fail_if(problems)
    zero(fig, "phantoms", "missing", "cross_user", "errors", "write_errors")
    check(lost > 0, "the ring did not overflow (livenotify.stats lost did not grow)")
    check(fig["lost_in_metrics"] > 0, "livenotifyd_lost_entries_total is 0")
    check(got_resync == len(tabs), f"only {got_resync} of {len(tabs)} tabs got resync(lost)")
    # "Never blocks on readers": a commit with a stalled reader is as quick as any other.
    check(fig["max_commit_ms"] < 1000, f"a commit took {fig['max_commit_ms']} ms")
    return fig


class Proxy:
    """A TCP relay between the daemon and PostgreSQL that the test can cut: the database
    becomes unreachable without a restart (same epoch, nothing lost in the ring)."""

    def __init__(self, port, upstream_port):
        self.port = port
        self.up = upstream_port
        self.server = None
        self.writers = set()

    async def start(self):
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", self.port,
                                                 reuse_address=True)

    async def _conn(self, r, w):
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.up)
        except OSError:
            w.close()
            return
        self.writers |= {w, uw}

        async def pipe(a, b):
            try:
                while True:
                    data = await a.read(65536)
                    if not data:
                        break
                    b.write(data)
                    await b.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                b.close()
        await asyncio.gather(pipe(r, uw), pipe(ur, w))
        self.writers -= {w, uw}

    async def cut(self):
        self.server.close()
        await self.server.wait_closed()
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()


@test("db_unreachable")
async def t_db_unreachable(ctx):
    o = ctx.opts
    proxy = Proxy(o.proxy_port, o.pg_port)
    await proxy.start()
    try:
        users = ctx.users(2)
        via = f"host=127.0.0.1 port={o.proxy_port} user=postgres dbname={o.dbname}"
        d = await ctx.daemon("unreachable", "--reconnect-max-ms=2000", conninfo=via)
        tabs = tabs_for(d, users, o.conninfo)
        await wait_connected(tabs)
        w = Writer(o.conninfo, users, o.seed, pause=0.005).start()
        await w.wait_inserted(100)
        t_cut = time.monotonic()
        await proxy.cut()
        saw_503 = None
        while time.monotonic() - t_cut < 10.0:
            st, _ = await asyncio.to_thread(http_get, d.port, "/healthz", 1.0)
            if st == 503 and saw_503 is None:
                saw_503 = round(time.monotonic() - t_cut, 2)
            await asyncio.sleep(0.2)
        closes_during = sum(len(t.closes) for t in tabs)
        rows_during = w.inserted
        await proxy.start()
        t_back = time.monotonic()
        check(await d.wait_health(200, 20), "/healthz did not return to 200")
        back_s = round(time.monotonic() - t_back, 2)
        before = w.inserted
        await w.wait_inserted(before + 100)
        await w.finish()
        check(await settle(ctx.db, tabs), "markers did not reach every tab")
        fig, problems = compare(ctx.db, tabs, "unreachable")
        for t in tabs:
            await t.close()
        fig.update(healthz_503_after_s=saw_503, socket_closes_during_outage=closes_during,
                   healthy_again_after_s=back_s, rows_written_before_restore=rows_during)
        ctx.figures["db_unreachable"] = fig
        ctx.fail_if(problems)
        zero(fig, "phantoms", "missing", "dups", "cross_user", "errors",
             "socket_closes_during_outage")
        check(saw_503 is not None, "/healthz never said 503 while the database was unreachable")
        return fig
    finally:
        proxy.server.close()
        for wr in list(proxy.writers):
            wr.transport.abort()


# --------------------------------------------------------------------------------------
# Runner


async def run(opts):
    ctx = Ctx(opts)
    passed = failed = 0
    for name, fn, long_only in TESTS:
        if opts.only and not any(x in name for x in opts.only):
            continue
        if long_only and not opts.long:
            continue
        t0 = time.monotonic()
        try:
            fig = await asyncio.wait_for(fn(ctx), opts.test_timeout)
            shown = {k: v for k, v in (fig or {}).items() if k != "ops"}
            print(f"ok {name} ({time.monotonic() - t0:.1f}s): {json.dumps(shown)}", flush=True)
            passed += 1
        except Exception as e:  # noqa: BLE001 - every failure is reported and counted
            failed += 1
            why = str(e) if isinstance(e, Failure) else traceback.format_exc()
            if isinstance(e, asyncio.TimeoutError):
                why = f"timed out after {opts.test_timeout}s"
            print(f"FAILED {name} ({time.monotonic() - t0:.1f}s): {why}", flush=True)
            for d in ctx.daemons:
                if d.proc is not None:
                    print(f"  daemon {d.name} log tail:\n{d.log_tail(12)}", flush=True)
            ctx.figures.setdefault(name, {})["failed"] = why[:500]
        finally:
            for d in ctx.daemons:
                d.stop()
            ctx.daemons = []
            sanitizer_reports(ctx, name)
    if opts.figures:
        with open(opts.figures, "w") as f:
            json.dump({"long": opts.long, "seed": opts.seed, "time": int(time.time()),
                       "figures": ctx.figures}, f, indent=1, sort_keys=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return failed == 0


def sanitizer_reports(ctx, name):
    """With an ASan/UBSan daemon: any report in its logs fails the run (checked by run.sh)."""
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--daemon", required=True)
    p.add_argument("--conninfo", required=True)
    p.add_argument("--ring-conninfo", default="")
    p.add_argument("--ring-cluster", default="")
    p.add_argument("--cluster-dir", required=True)
    p.add_argument("--pg-bin", required=True)
    p.add_argument("--pg-port", type=int, required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--port-base", type=int, default=54374)
    p.add_argument("--proxy-port", type=int, default=54372)
    p.add_argument("--dbname", default="livenotify_reliability")
    p.add_argument("--figures", default="")
    p.add_argument("--long", action="store_true")
    p.add_argument("--only", action="append", default=[])
    p.add_argument("--test-timeout", type=float, default=300)
    opts = p.parse_args()
    env_seed = os.environ.get("LIVENOTIFY_SEED")
    opts.seed = int(env_seed) if env_seed else random.SystemRandom().randrange(1, 2**31)
    print(f"seed {opts.seed} (replay: LIVENOTIFY_SEED={opts.seed})", flush=True)
    opts.tx_count = int(os.environ.get("LIVENOTIFY_TX", 100000 if opts.long else 10000))
    if opts.long:
        opts.test_timeout = max(opts.test_timeout, 1800)
    ok = asyncio.run(run(opts))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
