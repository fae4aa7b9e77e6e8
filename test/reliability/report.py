#!/usr/bin/python3
"""Print the counted figures of a reliability run as the Markdown table of
docs/reliability.md, so the page is refreshed from a run rather than retyped.

    test/reliability/report.py build/reliability/figures.json [build/fuzz] > /tmp/figures.md
"""
import glob
import json
import os
import re
import sys


def g(f, *keys, default="-"):
    for k in keys:
        if not isinstance(f, dict) or k not in f:
            return default
        f = f[k]
    if isinstance(f, float) and f.is_integer():
        return int(f)
    return f


ROWS = [
    ("transactions", "No phantom, no loss, no duplicate under mixed transactions",
     lambda f: f"{g(f, 'transactions')} transactions (seed {g(f, 'seed')}): {g(f, 'committed')} committed,"
               f" {g(f, 'rolled_back')} rolled back; {g(f, 'rows')} rows, {g(f, 'frames')} frames on"
               f" {g(f, 'tabs')} tabs, {g(f, 'sends_committed')} send()s; phantoms {g(f, 'phantoms')},"
               f" missing {g(f, 'missing')}, duplicates {g(f, 'dups')}, cross-user {g(f, 'cross_user')},"
               f" rows differing {g(f, 'payload_mismatch')}, send() missing/phantom/dup"
               f" {g(f, 'ephemeral_missing')}/{g(f, 'ephemeral_phantoms')}/{g(f, 'ephemeral_dups')}"),
    ("kill9_daemon", "kill -9 of livenotifyd: resume with last_id",
     lambda f: f"killed after {g(f, 'killed_after_rows')} rows, {g(f, 'reconnects')} reconnects;"
               f" {g(f, 'rows')} rows on {g(f, 'tabs')} tabs: missing {g(f, 'missing')}, duplicates"
               f" {g(f, 'dups')}, refetched {g(f, 'refetched')}"),
    ("pg_restart_fast", "PostgreSQL fast restart: resync(epoch), catch-up",
     lambda f: f"{g(f, 'tabs_with_epoch_resync')}/{g(f, 'tabs')} tabs got resync(epoch), socket closes"
               f" {g(f, 'socket_closes')}; {g(f, 'rows')} rows: missing {g(f, 'missing')}, phantoms"
               f" {g(f, 'phantoms')} ({g(f, 'refetched')} recovered by the refetch)"),
    ("pg_restart_immediate", "PostgreSQL immediate restart: resync(epoch), catch-up",
     lambda f: f"{g(f, 'tabs_with_epoch_resync')}/{g(f, 'tabs')} tabs got resync(epoch), socket closes"
               f" {g(f, 'socket_closes')}; {g(f, 'rows')} rows: missing {g(f, 'missing')}, phantoms"
               f" {g(f, 'phantoms')} ({g(f, 'refetched')} recovered by the refetch)"),
    ("ring_overflow", "Ring overflow with a stalled reader: counted, resync, no writer blocked",
     lambda f: f"{g(f, 'ring_bytes')}-byte ring, {g(f, 'rows_while_stalled')} rows while the daemon was"
               f" SIGSTOPped: lost {g(f, 'lost_in_stats')} (livenotify.stats) /"
               f" {g(f, 'lost_in_metrics')} (livenotifyd_lost_entries_total);"
               f" {g(f, 'tabs_with_lost_resync')}/{g(f, 'tabs')} tabs got resync(lost); missing"
               f" {g(f, 'missing')}; write errors {g(f, 'write_errors')}, slowest commit"
               f" {g(f, 'max_commit_ms')} ms"),
    ("db_unreachable", "Database unreachable 10 s: /healthz 503, sockets stay, delivery resumes",
     lambda f: f"/healthz 503 after {g(f, 'healthz_503_after_s')} s, 200 again {g(f, 'healthy_again_after_s')} s"
               f" after the return; socket closes {g(f, 'socket_closes_during_outage')}; {g(f, 'rows')} rows"
               f" ({g(f, 'rows_written_before_restore')} written before the return): missing"
               f" {g(f, 'missing')}, duplicates {g(f, 'dups')}, resyncs {g(f, 'resyncs')}"),
    ("slow_client", "A never-reading client is closed at its bound; the others get everything",
     lambda f: f"closed with {g(f, 'slow_close_code')} after {g(f, 'big_rows_until_close')} 4 kB rows"
               f" (send_queue_bytes 64 kB); {g(f, 'reading_tabs')} reading tabs: missing {g(f, 'missing')},"
               f" duplicates {g(f, 'dups')}; their p99 commit-to-frame {g(f, 'p99_ms')} ms"),
    ("slow_client_p99", "p99 of 1,000 clients with and without a never-reading one (soak)",
     lambda f: f"p99 {g(f, 'p99_ms_without')} ms without, {g(f, 'p99_ms_with')} ms with: ratio"
               f" {g(f, 'ratio')} (limit 1.2)"),
    ("connection_storm", "Connection storm: no leaked sockets, groups or memory",
     lambda f: f"{g(f, 'connections')} connects/disconnects in {g(f, 'seconds')} s, all admitted;"
               f" after: sockets {g(f, 'sockets_after')}, users {g(f, 'users_after')}, queued bytes"
               f" {g(f, 'queued_bytes_after')}; RSS {g(f, 'rss_baseline_kb')} -> {g(f, 'rss_after_kb')} kB"),
    ("forged_tokens", "Forged tokens: none accepted, no cross-user frame",
     lambda f: f"{g(f, 'tokens')} tokens in 8 kinds, half by URL, half by first message: accepted"
               f" {g(f, 'accepted')}; the victim's own frame arrived: {g(f, 'victim_frame_ok')}"),
    ("sql_auth_injection", "SQL-auth mode: injection tokens change nothing",
     lambda f: f"{g(f, 'attempts')} attempts: accepted {g(f, 'accepted')}, tables unchanged"
               f" {g(f, 'tables_unchanged')}, users mapped {g(f, 'users_after')}, legitimate token"
               f" accepted {g(f, 'legit_token_accepted')}"),
    ("admission", "Disallowed origin and over-limit sockets refused",
     lambda f: f"{g(f, 'disallowed_origin_attempts')} disallowed origins: {g(f, 'origin_outcomes')};"
               f" 5 attempts at a 4th socket of a user (limit 3): all 403" if all("403" in x for x in g(f, "over_limit_outcomes", default=[]))
               else f"over limit: {g(f, 'over_limit_outcomes')}"),
    ("jwt_extreme_claims", "Signed tokens with out-of-range nbf/exp are refused",
     lambda f: f"outcomes {g(f, 'outcomes')}"),
    ("hostile_sql_args", "SQL functions with hostile arguments: clear errors, no crash",
     lambda f: f"{g(f, 'calls_with_error')} calls raised an ERROR; backends terminated by a signal"
               f" {g(f, 'backend_crashes')}; session alive at the end {g(f, 'session_alive_at_end')}"),
]


def main():
    figs = json.load(open(sys.argv[1]))
    fdir = sys.argv[2] if len(sys.argv) > 2 else None
    f = figs["figures"]
    print(f"Run: {'make soak' if figs.get('long') else 'make test'}, seed {figs.get('seed')}\n")
    print("| guarantee | test | figure |")
    print("|---|---|---|")
    for name, what, fmt in ROWS:
        if name not in f:
            continue
        if "failed" in f[name]:
            print(f"| {what} | `{name}` | **FAILED**: {f[name]['failed'][:200]} |")
        else:
            print(f"| {what} | `{name}` | {fmt(f[name])} |")
    if fdir:
        print("\n| fuzz target | inputs | result |")
        print("|---|---|---|")
        for log in sorted(glob.glob(os.path.join(fdir, "fuzz_*.log"))):
            t = os.path.basename(log)[:-4]
            text = open(log, errors="replace").read()
            runs = re.findall(r"stat::number_of_executed_units: *(\d+)", text)
            bad = re.search(r"ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:", text)
            print(f"| `{t}` | {runs[-1] if runs else '-'} | {'CRASH' if bad else '0 crashes'} |")


if __name__ == "__main__":
    main()
