#!/usr/bin/python3
"""test/browser/demo_check.py: is a running `make demo` working?  Run by test/demo.sh when
LIVENOTIFY_DEMO_CHECK=1 (make check-fresh does that): opens the demo page for alice in Debian's
headless Chromium (browserlib), waits for the socket to open, inserts a row with psql and
waits for it on the page, then exits 0; on any failure it prints why and exits 1.

  demo_check.py --url http://127.0.0.1:8000/?user=1 --workdir DIR -- PSQL_ARGV...
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import Browser, Failure  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--workdir", required=True)
ap.add_argument("psql", nargs="+")
opt = ap.parse_args()


def main():
    os.makedirs(opt.workdir, exist_ok=True)
    with Browser(opt.workdir, "demo-check") as browser:
        tab = browser.open(opt.url, "alice")
        tab.wait_selector('#state[data-state="open"]', 20, what="the page's socket open")
        row = subprocess.run(
            opt.psql + ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c",
                        "INSERT INTO api_notification (user_id, type, title, message) "
                        "VALUES (1, 'like', 'make demo check', 'from psql') RETURNING id"],
            check=True, capture_output=True, text=True, timeout=30).stdout.strip()
        t0 = time.monotonic()
        tab.wait_selector(f'#list li[data-id="{int(row)}"]', 5, what=f"row {row} on the page")
        print(f"demo check: page served, row {row} on it "
              f"{(time.monotonic() - t0) * 1000:.0f} ms after the INSERT", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (Failure, subprocess.SubprocessError, OSError) as e:
        print(f"demo check FAILED: {e}", flush=True)
        sys.exit(1)
