#!/usr/bin/env bash
# test/harness_port_held.sh: a test cluster starts while another socket holds 127.0.0.1 on its
# port.  The test ports lie in Linux's ephemeral range, where any outgoing connection of the
# machine may take one; a fresh-chroot run of make test lost the django suite that way
# ("could not bind IPv4 address 127.0.0.1: Address already in use").  cluster_start
# (test/lib.sh) therefore listens on the cluster's socket directory only, and a daemon on a
# suite's fixed port takes the next free one (free_port_from).  Run by
# test/run-all.sh (suite `harness`) as root.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=test/lib.sh
source test/lib.sh
LOG_TAG=harness
PORT=${1:-$((${LIVENOTIFY_TEST_PORT:-54329} + 20))}

# Hold 127.0.0.1:PORT the way a busy machine does: a socket bound to it (here listening).
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
print("held", flush=True); time.sleep(120)' "$PORT" >/tmp/livenotify-harness-hold.$$ &
HOLDER=$!
for _ in $(seq 1 50); do grep -q held /tmp/livenotify-harness-hold.$$ 2>/dev/null && break; sleep 0.1; done
grep -q held /tmp/livenotify-harness-hold.$$ || { kill $HOLDER; die "could not hold port $PORT"; }
rm -f /tmp/livenotify-harness-hold.$$

rc=0
CLUSTER=$(cluster_dir harness)
if cluster_start "$CLUSTER" "$PORT"; then
	got=$("$LIVENOTIFY_PG_BIN/psql" -X -At -h "$CLUSTER" -p "$PORT" -U postgres -d postgres \
		-c "SELECT extname FROM pg_extension WHERE false UNION ALL SELECT 'ok'" 2>&1)
	if [ "$got" = ok ]; then
		echo "ok a cluster starts and answers on its socket while 127.0.0.1:$PORT is taken"
	else
		echo "FAILED psql through the socket directory: $got"
		rc=1
	fi
	cluster_stop "$CLUSTER"
else
	echo "FAILED cluster_start with 127.0.0.1:$PORT held by another socket"
	rc=1
fi
# A daemon on a suite's fixed port takes the next free one (test/django).
got=$(free_port_from "$PORT")
if [ -n "$got" ] && [ "$got" != "$PORT" ]; then
	echo "ok free_port_from $PORT skips the held port: $got"
else
	echo "FAILED free_port_from $PORT gave '$got' while $PORT is held"
	rc=1
fi
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null
exit $rc
