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
        p = self.next_port
        self.next_port += 1
        return p

    def users(self, n):
        """Fresh user ids, so a test never sees another test's rows."""
        self.user_base += 1000
        return [self.user_base + i for i in range(n)]

    async def daemon(self, name, *args, conninfo=None, port=None):
        d = Daemon(self.opts, name, port or self.port(), ["--auth=none", *args],
                   conninfo=conninfo)
        self.daemons.append(d)
        await d.start()
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
