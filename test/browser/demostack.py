"""test/browser/demostack.py: the demo's back end for the browser suites (test_demo.py,
test_shared_socket.py): a real livenotifyd and the demo server (demo/server.py, serving the
packed client) on free ports, against the cluster test/browser/run.sh made, plus psql.

  args = demostack.arguments()           the command line run.sh passes to every suite
  stack = DemoStack(args, processes)
  stack.start(metrics=False)             demo server, then the daemon (waits for both)
  stack.start_daemon() / stack.stop_daemon(sig)
  stack.metric("livenotifyd_sockets")    one value from the daemon's metrics listener
  stack.psql(sql), stack.insert(user, title, kind), stack.unread(user)
  stack.url(user, **query)               the demo page for a user
"""

import argparse
import os
import signal
import subprocess
import urllib.request

from browserlib import Processes, check, free_port, wait_http

SECRET = "browser-test-secret-not-for-production"


def arguments():
    ap = argparse.ArgumentParser()
    for a in ("daemon", "dsn", "psql", "cluster-dir", "port", "db", "workdir", "screenshot",
              "root", "pg-bin", "client-dir"):
        ap.add_argument(f"--{a}", required=a != "screenshot")
    return ap.parse_args()


class DemoStack:
    def __init__(self, opt, procs):
        self.opt = opt
        self.procs = procs
        self.daemon = None
        self.web = None
        self.daemon_port = 0
        self.web_port = 0
        self.metrics_port = 0

    def start(self, metrics=False):
        self.daemon_port = free_port()
        self.web_port = free_port()
        self.metrics_port = free_port() if metrics else 0
        self.web = self.procs.start("demo-server", [
            "/usr/bin/python3", os.path.join(self.opt.root, "demo/server.py"),
            "--listen=127.0.0.1", f"--port={self.web_port}", f"--dsn={self.opt.dsn}",
            f"--ws-port={self.daemon_port}", f"--client-dir={self.opt.client_dir}",
        ], {"LIVENOTIFY_JWT_SECRET": SECRET})
        check(wait_http(f"http://127.0.0.1:{self.web_port}/healthz", self.web),
              "the demo server did not start")
        self.start_daemon()

    def start_daemon(self):
        # The metrics listener only where a suite reads it: a fixed default port could be
        # another test's.
        metrics = f"127.0.0.1:{self.metrics_port}" if self.metrics_port else "off"
        self.daemon = self.procs.start("livenotifyd", [
            self.opt.daemon, "--listen-address=127.0.0.1", f"--port={self.daemon_port}",
            "--auth=jwt", f"--allowed-origins=http://127.0.0.1:{self.web_port}",
            f"--database-url={self.opt.dsn}", "--log-level=debug",
            # demo/server.py's tokens name livenotifyd in aud.
            "--jwt-audience=livenotify", f"--metrics-listen={metrics}",
            # Sockets close 4001 at exp + leeway: 1 s keeps the token-expiry test short.
            "--jwt-leeway-s=1",
        ], {"LIVENOTIFY_JWT_SECRET": SECRET})
        check(wait_http(f"http://127.0.0.1:{self.daemon_port}/healthz", self.daemon),
              f"livenotifyd did not become healthy on port {self.daemon_port} "
              f"(see {self.opt.workdir})")

    def stop_daemon(self, sig=signal.SIGTERM):
        Processes.stop(self.daemon, sig)

    def metric(self, name):
        check(self.metrics_port, "the daemon was started without its metrics listener")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=5) as r:
            for line in r.read().decode().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == name:
                    return float(parts[1])
        raise AssertionError(f"metric {name} not in /metrics")

    def url(self, user, **query):
        extra = "".join(f"&{k}={v}" for k, v in query.items())
        return f"http://127.0.0.1:{self.web_port}/?user={user}{extra}"

    def psql(self, sql):
        o = self.opt
        out = subprocess.run(
            [o.psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", o.cluster_dir, "-p",
             o.port, "-U", "postgres", "-d", o.db, "-c", sql],
            check=True, capture_output=True, text=True, timeout=60)
        return out.stdout.strip()

    def insert(self, user, title, kind="like"):
        t = title.replace("'", "''")
        return int(self.psql(f"INSERT INTO api_notification (user_id, type, title, message) "
                             f"VALUES ({int(user)}, '{kind}', '{t}', 'from psql') RETURNING id"))

    def unread(self, user):
        return int(self.psql(f"SELECT count(*) FROM api_notification "
                             f"WHERE user_id = {int(user)} AND NOT is_read"))
