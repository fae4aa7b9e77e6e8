#!/usr/bin/python3
"""livenotifyd against a standby, a failover and a silent partition (test/failover/run.sh).

One part per run (run.sh sets up the clusters and the network namespace):

  standby    the daemon's only host is a hot standby
  failover   the primary is stopped with -m immediate and its standby promoted
  partition  packets between the daemon and PostgreSQL are dropped both ways, then let through

Each part prints `ok ...` lines, the figures it counted (`figure name=value`, collected into
docs/reliability.md) and exits non-zero on the first failed expectation.
"""
import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import types

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from lntest import Client, Daemon, Failure, check, check_eq, parse_metrics  # noqa: E402

import psycopg2  # noqa: E402

STANDBY_ERROR = "connected to a standby (in recovery); livenotifyd needs the primary"


def one_value(conninfo, sql):
    with psycopg2.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
        return row[0] if row else None


def figure(name, value):
    print(f"figure {name}={value}", flush=True)


def ok(msg):
    print(f"ok {msg}", flush=True)


def pg_ctl(opts, data_dir, *args, netns=None):
    cmd = ["runuser", "-u", "postgres", "--", os.path.join(opts.pg_bin, "pg_ctl"), "-D",
           os.path.join(data_dir, "data"), *args]
    r = subprocess.run(cmd, cwd="/tmp", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=90)
    if r.returncode != 0:
        raise Failure(f"pg_ctl {' '.join(args)}: {r.stderr.decode(errors='replace')}")


def daemon(opts, name, url, args):
    o = types.SimpleNamespace(daemon=opts.daemon, conninfo=url, workdir=opts.workdir,
                              pidfile=os.path.join(opts.workdir, "daemons.pid"))
    return Daemon(o, name, ["--auth=none", *args])


def log_lines(d, needle):
    try:
        with open(d.log_path, errors="replace") as f:
            return [line for line in f if needle in line]
    except OSError:
        return []


class Writer(threading.Thread):
    """Inserts rows for `users` round robin until stopped, through `conninfo` (reconnecting
    after any error).  Every acknowledged commit is kept with the server port that took it."""

    def __init__(self, conninfo, users, pause=0.005):
        super().__init__(daemon=True)
        self.conninfo = conninfo
        self.users = users
        self.pause = pause
        self.stop_evt = threading.Event()
        # ((id, title), user, server port): a row is known by its id and its unique title,
        # since a promoted standby that lost rows gives their ids to new ones.
        self.acked = []
        self.unacked = 0  # statements whose commit was not acknowledged (outcome unknown)
        self.connect_errors = 0

    def run(self):
        conn = None
        i = 0
        while not self.stop_evt.is_set():
            try:
                if conn is None:
                    conn = psycopg2.connect(self.conninfo, connect_timeout=2)
                    conn.autocommit = True
                user = self.users[i % len(self.users)]
                with conn.cursor() as cur:
                    title = f"fo-{i}-{time.monotonic_ns()}"
                    cur.execute("INSERT INTO api_notification (user_id, type, title, message)"
                                " VALUES (%s, 'like', %s, 'm')"
                                " RETURNING id, current_setting('port')::int", (user, title))
                    nid, port = cur.fetchone()
                self.acked.append(((nid, title), user, port))
                i += 1
                time.sleep(self.pause)
            except psycopg2.Error:
                if conn is not None:
                    self.unacked += 1
                    try:
                        conn.close()
                    except psycopg2.Error:
                        pass
                else:
                    self.connect_errors += 1
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()


class Tab:
    """A browser tab: keeps every row (id, title) it gets; on `resync` refetches the user's
    rows "through the app's API" (here: a SELECT on the current primary), as
    client/README.md tells an application to."""

    def __init__(self, client, user, api_conninfo):
        self.c = client
        self.user = user
        self.api = api_conninfo
        self.ids = []
        self.refetched = set()
        self.resyncs = []
        self.markers = set()
        self.errors = []
        self.closed = None
        self.task = asyncio.ensure_future(self._run())

    def _refetch(self):
        deadline = time.monotonic() + 15
        while True:
            try:
                with psycopg2.connect(self.api, connect_timeout=2) as conn:
                    with conn.cursor() as cur:
                        cur.execute("SELECT id, title FROM api_notification WHERE user_id = %s",
                                    (self.user,))
                        return {(r[0], r[1]) for r in cur.fetchall()}
            except psycopg2.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    async def _run(self):
        while True:
            kind, value = await self.c.queue.get()
            if kind == "closed":
                self.closed = value
                return
            if kind == "error":
                self.errors.append(value)
                continue
            t = value.get("type")
            if t == "notification":
                self.ids.append((value["id"], (value.get("notification") or {}).get("title")))
            elif t == "resync":
                self.resyncs.append(value.get("reason"))
                self.refetched |= await asyncio.to_thread(self._refetch)
            elif t == "test_marker":
                self.markers.add(value["n"])

    def had(self):
        return set(self.ids) | self.refetched

    def duplicates(self):
        return len(self.ids) - len(set(self.ids))

    async def wait_marker(self, n, timeout):
        deadline = time.monotonic() + timeout
        while n not in self.markers:
            if self.closed is not None:
                raise Failure(f"{self.c.name}: closed {self.closed} before marker {n}")
            if time.monotonic() > deadline:
                raise Failure(f"{self.c.name}: marker {n} not received within {timeout}s "
                              f"(resyncs {self.resyncs}, {len(self.ids)} rows)")
            await asyncio.sleep(0.05)

    async def close(self):
        await self.c.close()
        self.task.cancel()


async def tabs_for(d, users, per_user, api):
    tabs = []
    for u in users:
        for k in range(per_user):
            c = await Client.authed(d, f"{d.name}-user{u}-tab{k}", u)
            tabs.append(Tab(c, u, api))
    return tabs


def send_markers(conninfo, users, n):
    with psycopg2.connect(conninfo) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            for u in users:
                cur.execute("SELECT livenotify.send(%s, 'test_marker', %s::jsonb)",
                            (str(u), f'{{"n": {n}}}'))


async def health_series(daemons, t0, until, stop_when):
    """Poll /healthz of each daemon every 50 ms: {name: [(seconds since t0, status)]}."""
    series = {d.name: [] for d in daemons}
    while time.monotonic() < until:
        for d in daemons:
            st, _ = await d.http("/healthz")
            series[d.name].append((time.monotonic() - t0, st))
        if stop_when(series):
            break
        await asyncio.sleep(0.05)
    return series


def first(series, pred, after=0.0):
    return next((t for t, st in series if t >= after and pred(st)), None)


# ------------------------------------------------------------------------------------------


async def part_standby(opts):
    """Pointed at a standby only: says so, /healthz 503, retries at a bounded rate; SQL
    authentication (a worker's query) is refused there too."""
    url = f"host={opts.standby_dir} port={opts.standby_port} user=postgres dbname={opts.db}"
    d = daemon(opts, "standby-only", url, [])
    sql = Daemon(types.SimpleNamespace(daemon=opts.daemon, conninfo=url, workdir=opts.workdir,
                                       pidfile=os.path.join(opts.workdir, "daemons.pid")),
                 "standby-sql", ["--auth=sql", "--auth-query=SELECT $1::text WHERE $1 = '7'"])
    try:
        # Listening, and 503 from the first answer on.
        await d.start(healthy=503)
        await sql.start(healthy=503)
        t0 = time.monotonic()
        window = 8.0
        series = await health_series([d], t0, t0 + window, lambda s: False)
        statuses = [st for _, st in series[d.name]]
        figure("standby_healthz_polls", len(statuses))
        figure("standby_healthz_200", statuses.count(200))
        check(d.alive(), f"the daemon exited on a standby\n{d.log_tail()}")
        check(statuses and all(st == 503 for st in statuses),
              f"/healthz on a standby-only daemon: {sorted(set(statuses), key=str)} over "
              f"{window}s (want 503 throughout)")
        st, body = await d.http("/healthz")
        check(st == 503 and "standby" in body, f"/healthz on a standby: {st} {body!r}")
        ok(f"/healthz 503 throughout {window:.0f}s ({len(statuses)} polls): {body.strip()}")
        lines = log_lines(d, STANDBY_ERROR)
        attempts = len(lines)
        figure("standby_attempts_8s", attempts)
        check(attempts >= 3, f"the log says '{STANDBY_ERROR}' {attempts} times in {window}s "
              f"(want a retrying daemon that says so)\n{d.log_tail()}")
        # reconnect_min_ms 100 doubling to reconnect_max_ms 10 s: about 7 attempts in 8 s.
        check(attempts <= 16, f"{attempts} standby attempts in {window}s: the backoff does not grow")
        ok(f"the log says so ({attempts} attempts in {window:.0f}s, growing delay): "
           f"{lines[0].strip()[:160]}")
        st, body = await d.scrape()
        if st == 200:
            n = parse_metrics(body).get("livenotifyd_db_standby_total")
            check(n is not None and n >= attempts,
                  f"livenotifyd_db_standby_total {n}, the log says {attempts} refusals")
            ok(f"livenotifyd_db_standby_total {n:.0f}")
        else:
            print(f"note: /metrics is not served on this listener ({st}): counter not checked")
        # SQL authentication runs on a worker connection: refused on the standby as well.
        c = await Client.connect(sql, "sql-on-standby", "token=7")
        code, reason = await c.closed(timeout=10)
        check_eq((code, reason), (1011, "database unavailable"),
                 "SQL authentication through a standby (worker connections refuse it)")
        wl = [x for x in log_lines(sql, STANDBY_ERROR) if "thread=worker" in x]
        check(wl, f"no worker logged the standby\n{sql.log_tail()}")
        ok("a worker refuses the standby too: SQL auth closes 1011 database unavailable")
    finally:
        d.stop()
        sql.stop()


async def part_failover(opts):
    users = [1, 2, 3]
    p, s = opts.primary_port, opts.standby_port
    pd, sd = opts.primary_dir, opts.standby_dir
    both_rw = (f"host={pd},{sd} port={p},{s} user=postgres dbname={opts.db} "
               "target_session_attrs=read-write")
    # The hosts the other way round and no target_session_attrs: without livenotifyd's
    # default for multi-host URLs libpq would settle on the standby.
    standby_first = f"host={sd},{pd} port={s},{p} user=postgres dbname={opts.db}"
    a = daemon(opts, "multi-rw", both_rw, [])
    b = daemon(opts, "multi-default", standby_first, [])
    writer = None
    tabs = []
    held = []  # processes stopped with SIGSTOP, continued whatever happens
    returning = None
    try:
        await a.start()
        ok("daemon with both hosts and target_session_attrs=read-write is up on the primary")
        try:
            await b.start()
        except Failure as e:
            raise Failure(f"standby listed first, no target_session_attrs: never healthy "
                          f"({e})") from None
        ok("daemon with the standby listed first and no target_session_attrs is up "
           "(read-write is the default)")
        tabs = await tabs_for(a, users, 2, both_rw) + await tabs_for(b, users, 1, both_rw)
        # A tab that is away during the failover and comes back by last_id: its replay is a
        # worker's catch-up query, on a worker session that has to find the new primary too.
        away = Tab(await Client.authed(a, "away-user1", 1), 1, both_rw)
        writer = Writer(both_rw, users)
        writer.start()
        await asyncio.sleep(1.0)
        await away.close()
        away_last = max((k[0] for k in away.ids), default=0)
        await asyncio.sleep(1.0)

        def back_after_down(v):
            down = first(v, lambda st: st != 200)
            return down is not None and first(v, lambda st: st == 200, down) is not None

        def both_back(series):
            return all(back_after_down(v) for v in series.values())
        # Asynchronous replication loses what the standby has not received when the primary
        # dies.  The primary's WAL sender is held (SIGSTOP) for the last 0.6 s before the
        # crash, so rows acknowledged meanwhile never leave it, as with a standby that lags;
        # it is let go once the immediate stop has signalled it, and dies at once.
        wal_sender = one_value(f"host={pd} port={p} user=postgres dbname=postgres",
                               "SELECT pid FROM pg_stat_replication")
        check(wal_sender, "the primary has no WAL sender (the standby is not streaming)")
        os.kill(wal_sender, signal.SIGSTOP)
        held.append(wal_sender)
        await asyncio.sleep(0.6)
        # /healthz is watched from before the stop: the daemons are back within a second.
        t_stop = time.monotonic()
        health = asyncio.ensure_future(health_series([a, b], t_stop, t_stop + 40, both_back))
        stop = asyncio.ensure_future(asyncio.to_thread(
            pg_ctl, opts, opts.primary_dir, "-m", "immediate", "-w", "stop"))
        await asyncio.sleep(0.2)
        os.kill(wal_sender, signal.SIGCONT)
        held.remove(wal_sender)
        await stop
        await asyncio.sleep(0.3)
        await asyncio.to_thread(pg_ctl, opts, opts.standby_dir, "-w", "-t", "60", "promote")
        t_promoted = time.monotonic() - t_stop
        figure("failover_promote_s", f"{t_promoted:.2f}")
        series = await health
        for d in (a, b):
            down = first(series[d.name], lambda st: st != 200)
            back = first(series[d.name], lambda st: st == 200, down if down is not None else 1e9)
            check(down is not None, f"{d.name}: /healthz never left 200 after the primary stopped")
            check(back is not None,
                  f"{d.name}: /healthz not back to 200 within 40 s of the failover\n{d.log_tail()}")
            figure(f"failover_{d.name}_healthz_down_s", f"{down:.2f}")
            figure(f"failover_{d.name}_recovery_s", f"{back:.2f}")
            ok(f"{d.name}: /healthz {down:.1f}s after the stop went non-200, back to 200 at "
               f"{back:.1f}s (promotion done at {t_promoted:.1f}s)")
        returning = Tab(await Client.authed(a, "back-user1", 1,
                                            query_extra=f"last_id={away_last}"), 1, both_rw)
        await asyncio.sleep(2.0)  # rows committed on the new primary, delivered live
        writer.stop_evt.set()
        await asyncio.to_thread(writer.join, 10)
        new_url = f"host={opts.standby_dir} port={s} user=postgres dbname={opts.db}"
        send_markers(new_url, users, 1)
        for t in tabs + [returning]:
            await t.wait_marker(1, 20)
        with psycopg2.connect(new_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT id, title, user_id FROM api_notification")
            present = {(r[0], r[1]): r[2] for r in cur.fetchall()}
        acked_old = {nid: u for nid, u, port in writer.acked if port == p}
        acked_new = {nid: u for nid, u, port in writer.acked if port == s}
        lost_db = sorted(set(acked_old) - set(present))
        figure("failover_rows_committed_old_primary", len(acked_old))
        figure("failover_rows_committed_new_primary", len(acked_new))
        figure("failover_rows_unacknowledged", writer.unacked)
        figure("failover_rows_lost_by_async_replication", len(lost_db))
        figure("failover_tabs", len(tabs))
        check(len(acked_new) > 0, "no row was committed on the new primary")
        check(len(acked_old) > 0, "no row was committed on the old primary")
        check(lost_db, "no acknowledged row was lost with the WAL sender held: the lost-row "
              "accounting was not exercised")
        missing = missing_new = dups = delivered = ghost = 0
        ghost_rows = set()
        problems = []
        for t in tabs:
            check(t.resyncs, f"{t.c.name}: no resync after the failover")
            check("epoch" in t.resyncs, f"{t.c.name}: resyncs {t.resyncs}, none 'epoch'")
            want = {nid for nid, u in present.items() if u == t.user}
            had = t.had()
            m = want - had
            mn = {nid for nid, u in acked_new.items() if u == t.user} - had
            missing += len(m)
            missing_new += len(mn)
            dups += t.duplicates()
            delivered += len(t.ids)
            ghost += len(set(t.ids) & set(lost_db))
            ghost_rows |= set(t.ids) & set(lost_db)
            if m or t.duplicates() or t.errors:
                problems.append(f"{t.c.name}: missing {sorted(m)[:10]}, duplicates "
                                f"{t.duplicates()}, errors {t.errors[:3]}")
        # The tab that came back by last_id: every row after it, replayed then live, once.
        want = {k for k, u in present.items() if u == 1 and k[0] > away_last}
        m = want - returning.had()
        figure("failover_resume_by_last_id_rows", len(want))
        figure("failover_resume_by_last_id_missing", len(m))
        figure("failover_resume_by_last_id_duplicates", returning.duplicates())
        check(not m and not returning.duplicates() and not returning.errors,
              f"resume by last_id={away_last} after the failover: missing {sorted(m)[:10]} of "
              f"{len(want)}, duplicates {returning.duplicates()}, resyncs "
              f"{returning.resyncs}, errors {returning.errors[:3]}")
        ok(f"a tab away during the failover resumed by last_id: {len(want)} rows, 0 missing, "
           f"0 duplicated")
        reused = {k for k in acked_new if k[0] in {x[0] for x in lost_db}}
        figure("failover_ids_reused_by_new_primary", len(reused))
        figure("failover_frames_delivered", delivered)
        figure("failover_missing", missing)
        figure("failover_missing_new_primary", missing_new)
        figure("failover_duplicates", dups)
        figure("failover_frames_of_rows_lost_by_database", ghost)
        figure("failover_rows_delivered_then_lost_by_database", len(ghost_rows))
        check(not problems, "; ".join(problems))
        ok(f"{len(tabs)} tabs: every one got resync 'epoch' and caught up; {len(acked_new)} rows "
           f"committed on the new primary, {len(acked_old)} on the old one, 0 missing, 0 "
           f"duplicated; {len(lost_db)} acknowledged rows lost by the database itself "
           f"(asynchronous replication), {len(ghost_rows)} of them delivered live "
           f"before the crash ({ghost} frames), "
           f"{len(reused)} of their ids given to new rows by the new primary")
        for d in (a, b):
            check(d.alive(), f"{d.name} exited")
            st, _ = await d.http("/healthz")
            check_eq(st, 200, f"{d.name}: /healthz at the end")
    finally:
        for pid in held:
            os.kill(pid, signal.SIGCONT)
        if writer is not None:
            writer.stop_evt.set()
        for t in tabs + ([returning] if returning else []):
            await t.close()
        a.stop()
        b.stop()


def iptables(opts, op):
    # Only inside the test's own namespace, only its own addresses and port.
    for rule in (["INPUT", "-s", opts.host_addr, "-p", "tcp", "--dport", str(opts.pg_port)],
                 ["OUTPUT", "-d", opts.host_addr, "-p", "tcp", "--sport", str(opts.pg_port)]):
        r = subprocess.run(["ip", "netns", "exec", opts.netns, opts.iptables, op, *rule, "-j",
                            "DROP"], capture_output=True, timeout=10)
        if r.returncode != 0:
            raise Failure(f"iptables {op} {' '.join(rule)}: {r.stderr.decode(errors='replace')}")


async def part_partition(opts):
    users = [1, 2]
    url = f"host={opts.pg_addr} port={opts.pg_port} user=postgres dbname={opts.db}"
    local = f"host={opts.pg_dir} port={opts.pg_port} user=postgres dbname={opts.db}"
    # docs/operations.md: /healthz answers 503 once the last successful read() is older than
    # max_read_age_ms (default read_timeout_ms + db_timeout_ms, here 4 s); one second more for
    # the polling and the HTTP round trip.
    read_timeout_ms, db_timeout_ms = 2000, 2000
    max_read_age_s = (read_timeout_ms + db_timeout_ms) / 1000
    args = [f"--read-timeout-ms={read_timeout_ms}", f"--db-timeout-ms={db_timeout_ms}"]
    # A build from before db_timeout_ms (LIVENOTIFY_FAILOVER_DAEMON, to measure it) would
    # refuse the option: it runs without, and the same deadline is asserted.
    helptext = subprocess.run([opts.daemon, "--help"], capture_output=True, timeout=10).stdout
    if b"--db-timeout-ms" not in helptext:
        print("note: this livenotifyd has no db_timeout_ms", flush=True)
        args = args[:1]
    d = daemon(opts, "partition", url, args)
    writer = None
    tabs = []
    cut = False
    try:
        await d.start()
        tabs = await tabs_for(d, users, 1, local)
        writer = Writer(local, users, pause=0.02)
        writer.start()
        send_markers(local, users, 1)
        for t in tabs:
            await t.wait_marker(1, 10)
        ok("delivering through the veth pair before the cut")
        t_cut = time.monotonic()
        iptables(opts, "-A")
        cut = True
        limit = opts.deadline_s if opts.deadline_s else max_read_age_s + 1.0
        series = await health_series([d], t_cut, t_cut + limit + 3,
                                     lambda s: any(st != 200 for _, st in s[d.name]))
        down = first(series[d.name], lambda st: st == 503)
        figure("partition_deadline_s", f"{limit:.1f}")
        figure("partition_time_to_503_s", "none" if down is None else f"{down:.2f}")
        # Stay cut a little longer: the daemon keeps retrying into the void meanwhile.
        await asyncio.sleep(2.0)
        t_heal = time.monotonic()
        iptables(opts, "-D")
        cut = False
        check(down is not None and down <= limit,
              f"/healthz still 200 {limit + 3:.0f}s into a silent partition (deadline "
              f"{limit:.0f}s)" if down is None else
              f"/healthz went 503 only {down:.1f}s into the partition (deadline {limit:.0f}s)")
        ok(f"/healthz 503 {down:.1f}s into the partition (deadline {limit:.0f}s)")
        series = await health_series([d], t_heal, t_heal + 30,
                                     lambda s: any(st == 200 for _, st in s[d.name]))
        back = first(series[d.name], lambda st: st == 200)
        figure("partition_recovery_s", "none" if back is None else f"{back:.2f}")
        check(back is not None, f"/healthz not 200 within 30 s of the heal\n{d.log_tail()}")
        ok(f"/healthz 200 again {back:.2f}s after the heal")
        await asyncio.sleep(1.0)
        writer.stop_evt.set()
        await asyncio.to_thread(writer.join, 10)
        send_markers(local, users, 2)
        for t in tabs:
            await t.wait_marker(2, 20)
        acked = {k: u for k, u, _ in writer.acked}
        missing = dups = 0
        problems = []
        for t in tabs:
            m = {nid for nid, u in acked.items() if u == t.user} - t.had()
            missing += len(m)
            dups += t.duplicates()
            if m or t.duplicates():
                problems.append(f"{t.c.name}: missing {sorted(m)[:10]}, dups {t.duplicates()}")
        figure("partition_rows_committed", len(acked))
        figure("partition_frames_delivered", sum(len(t.ids) for t in tabs))
        figure("partition_missing", missing)
        figure("partition_duplicates", dups)
        figure("partition_resyncs", sum(len(t.resyncs) for t in tabs))
        check(not problems, "; ".join(problems))
        ok(f"{len(acked)} rows committed across the partition: 0 missing, 0 duplicated")
    finally:
        if cut:
            try:
                iptables(opts, "-D")
            except Failure:
                pass
        if writer is not None:
            writer.stop_evt.set()
        for t in tabs:
            await t.close()
        d.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["standby", "failover", "partition"])
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--pg-bin", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--primary-dir")
    ap.add_argument("--primary-port", type=int)
    ap.add_argument("--standby-dir")
    ap.add_argument("--standby-port", type=int)
    ap.add_argument("--pg-dir")
    ap.add_argument("--pg-port", type=int)
    ap.add_argument("--pg-addr")
    ap.add_argument("--host-addr")
    ap.add_argument("--netns")
    ap.add_argument("--iptables", default="iptables")
    ap.add_argument("--deadline-s", type=float,
                    default=float(os.environ.get("LIVENOTIFY_FAILOVER_DEADLINE_S", "0")),
                    help="partition: seconds to 503 allowed (0: max_read_age + 1 s)")
    opts = ap.parse_args()
    fn = {"standby": part_standby, "failover": part_failover, "partition": part_partition}
    t0 = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(fn[opts.part](opts), 120))
    except Failure as e:
        print(f"FAILED {opts.part}: {e}", flush=True)
        return 1
    except asyncio.TimeoutError:
        print(f"FAILED {opts.part}: did not finish within 120 s", flush=True)
        return 1
    print(f"ok {opts.part} ({time.monotonic() - t0:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
