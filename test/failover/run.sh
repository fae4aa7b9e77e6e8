#!/usr/bin/env bash
# test/failover/run.sh: livenotifyd against a failing database, with real parts (issue 12):
#
#   1. standby  the daemon pointed at a hot standby only says so in its log, holds /healthz
#               503 and keeps retrying at a bounded rate;
#   2. failover a streaming replica (pg_basebackup -R) promoted after `pg_ctl stop -m
#               immediate` of the primary: daemons given a multi-host URL find the new primary
#               (one with target_session_attrs=read-write, one with the hosts the other way
#               round and no target_session_attrs: livenotifyd's default), every tab gets
#               `resync` and catches up; missing and duplicated rows are counted, rows the
#               database itself lost (asynchronous replication) are reported apart;
#   3. partition PostgreSQL in a network namespace made here (veth pair, 10.251.N.0/30), the
#               daemon's TCP connection cut both ways by iptables DROP rules inside that
#               namespace only: /healthz must go 503 within the deadline, delivery resume
#               after the heal, 0 missing.
#
#   bash test/failover/run.sh [--only standby|failover|partition]...
#
# Run by test/run-all.sh (suite `failover`) as root, after the extension is installed and the
# sidecar built.  Ports: LIVENOTIFY_TEST_PORT + 6 (primary), + 7 (standby), + 8 (the
# partitioned cluster).  Its namespace, veth and iptables rules are named after that port and
# removed on exit (the rules live in the namespace's own tables: the host's are never touched).
# Without network namespaces the partition part says so and the suite reports SKIP.
#
# Environment: LIVENOTIFY_FAILOVER_DAEMON (default build/sidecar/livenotifyd; another build
# to measure it), LIVENOTIFY_KEEP_CLUSTER=1 keeps the clusters; logs in build/failover/.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
# shellcheck source=test/lib.sh
source test/lib.sh
LOG_TAG=failover

BASE=${LIVENOTIFY_TEST_PORT:-54329}
P_PRIMARY=$((BASE + 6))
P_STANDBY=$((BASE + 7))
P_PART=$((BASE + 8))
DAEMON=${LIVENOTIFY_FAILOVER_DAEMON:-$ROOT/build/sidecar/livenotifyd}
WORKDIR=$ROOT/build/failover
DB=livenotify_failover
PYTHON=/usr/bin/python3
SKIP=77

[ "$(id -u)" -eq 0 ] || die "run as root (runuser postgres, ip netns, iptables)"
ensure_packages python3-websockets python3-psycopg2 postgresql-15 iproute2 iptables
[ -x "$DAEMON" ] || die "$DAEMON is missing: build the sidecar first (make sidecar)"

PARTS=()
while [ $# -gt 0 ]; do
	case $1 in
		--only) PARTS+=("$2"); shift 2 ;;
		*) die "unknown argument $1" ;;
	esac
done
[ ${#PARTS[@]} -gt 0 ] || PARTS=(standby failover partition)
want() { local p; for p in "${PARTS[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

mkdir -p "$ROOT/build"
exec 9>"$ROOT/build/failover.lock"
flock -w 600 9 || die "build/failover.lock still held after 10 minutes"
rm -rf "$WORKDIR"
mkdir -p "$WORKDIR"

# Names of this run's network objects: one namespace, one veth pair, one /30.
NS=lnfo$P_PART
VETH_HOST=lnfo${P_PART}h
VETH_NS=lnfo${P_PART}n
NET=$((P_PART % 250))
ADDR_HOST=10.251.$NET.1
ADDR_PG=10.251.$NET.2
IPT=iptables
NETNS_MADE=0

PY_PID=
cleanup_all() {
	local rc=$? pid
	if [ -n "$PY_PID" ] && kill -0 "$PY_PID" 2>/dev/null; then
		kill -TERM "$PY_PID" 2>/dev/null
		wait "$PY_PID" 2>/dev/null
	fi
	if [ -f "$WORKDIR/daemons.pid" ]; then
		while read -r pid; do
			[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
		done <"$WORKDIR/daemons.pid"
	fi
	_livenotify_cleanup
	if [ "$NETNS_MADE" = 1 ]; then
		# Our rules first (also gone with the namespace), then the namespace and its veth.
		ip netns exec "$NS" "$IPT" -D INPUT -s "$ADDR_HOST" -p tcp --dport "$P_PART" -j DROP 2>/dev/null
		ip netns exec "$NS" "$IPT" -D OUTPUT -d "$ADDR_HOST" -p tcp --sport "$P_PART" -j DROP 2>/dev/null
		ip link del "$VETH_HOST" 2>/dev/null
		ip netns del "$NS" 2>/dev/null
	fi
	exit $rc
}
# lib.sh's cluster_start would install its own EXIT trap over this one: cleanup_all calls it.
_livenotify_trap_set=1
trap cleanup_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

psql_at() { # DIR PORT SQL...
	local dir=$1 port=$2
	shift 2
	"$LIVENOTIFY_PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres "$@"
}

# create_db DIR PORT: the test database, api_notification registered as the docs say.
create_db() {
	psql_at "$1" "$2" -d postgres -c "CREATE DATABASE $DB" || return 1
	psql_at "$1" "$2" -d "$DB" -f "$ROOT/test/api_notification.sql" >/dev/null || return 1
	psql_at "$1" "$2" -d "$DB" -c \
		"SELECT livenotify.register('api_notification', 'user_id', 'type', 'id', 'is_read')" \
		>/dev/null
}

run_py() {
	"$PYTHON" test/failover/failover.py --daemon="$DAEMON" --workdir="$WORKDIR" \
		--pg-bin="$LIVENOTIFY_PG_BIN" "$@" 9>&- &
	PY_PID=$!
	wait "$PY_PID"
	local rc=$?
	PY_PID=
	return $rc
}

rc=0
skipped=0

# --- 1 and 2: a primary and its streaming replica ------------------------------------------
if want standby || want failover; then
	PRIM=$(cluster_dir fo-primary)
	# wal_level replica and max_wal_senders are PostgreSQL 15's defaults; a short
	# wal_sender_timeout is not needed: the primary is stopped, not cut.
	# Unix sockets only (the daemons' multi-host URLs name the two socket directories): a
	# port of the ephemeral range on 127.0.0.1 can be held by any outgoing connection of the
	# machine at the moment the server binds it.
	cluster_start "$PRIM" "$P_PRIMARY" "livenotify.ring_size = '8MB'
listen_addresses = ''" 9>&- ||
		die "primary did not start"
	create_db "$PRIM" "$P_PRIMARY" || die "schema setup failed"
	STBY=$(cluster_dir fo-standby)
	mkdir -p "$STBY/log" && chown postgres:postgres "$STBY/log"
	LIVENOTIFY_CLUSTERS+=("$STBY")
	(cd /tmp && runuser -u postgres -- "$LIVENOTIFY_PG_BIN/pg_basebackup" -h "$PRIM" \
		-p "$P_PRIMARY" -U postgres -D "$STBY/data" -R -X stream -c fast) \
		>"$STBY/log/basebackup.log" 2>&1 || { cat "$STBY/log/basebackup.log"; die "pg_basebackup failed"; }
	printf "\n# --- standby (test/failover) ---\nport = %s\nunix_socket_directories = '%s'\nhot_standby = on\n" \
		"$P_STANDBY" "$STBY" >>"$STBY/data/postgresql.conf"
	(cd /tmp && runuser -u postgres -- "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$STBY/data" \
		-l "$STBY/log/postgresql.log" -w -t 60 start) >/dev/null 9>&- ||
		{ tail -n 30 "$STBY/log/postgresql.log"; die "standby did not start"; }
	for i in $(seq 1 60); do
		[ "$(psql_at "$PRIM" "$P_PRIMARY" -d postgres -c \
			"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ] && break
		sleep 0.25
	done
	log "primary on $PRIM port $P_PRIMARY, streaming standby on $STBY port $P_STANDBY"
	args=(--primary-dir="$PRIM" --primary-port="$P_PRIMARY" --standby-dir="$STBY"
		--standby-port="$P_STANDBY" --db="$DB")
	if want standby; then
		run_py standby "${args[@]}" || rc=1
	fi
	if want failover; then
		run_py failover "${args[@]}" || rc=1
	fi
	[ $rc -eq 0 ] || { cluster_log "$PRIM"; cluster_log "$STBY"; }
	cluster_stop "$STBY"
	cluster_stop "$PRIM"
fi

# --- 3: a silent partition -----------------------------------------------------------------
netns_setup() {
	# A namespace of this name is this suite's (named after its port), left by a killed run.
	if ip netns list 2>/dev/null | grep -qw "^$NS"; then
		log "partition: removing namespace $NS left by an earlier run"
		ip netns del "$NS"
	fi
	ip netns add "$NS" 2>"$WORKDIR/netns.err" || return 1
	NETNS_MADE=1
	ip link add "$VETH_HOST" type veth peer name "$VETH_NS" &&
		ip link set "$VETH_NS" netns "$NS" &&
		ip addr add "$ADDR_HOST/30" dev "$VETH_HOST" &&
		ip link set "$VETH_HOST" up &&
		ip netns exec "$NS" ip addr add "$ADDR_PG/30" dev "$VETH_NS" &&
		ip netns exec "$NS" ip link set "$VETH_NS" up &&
		ip netns exec "$NS" ip link set lo up 2>"$WORKDIR/netns.err" || return 1
	# iptables inside the namespace: its own (empty) tables.  The nft flavour needs nf_tables;
	# fall back to the legacy one (CONFIG_IP_NF_IPTABLES).
	if ! ip netns exec "$NS" iptables -L INPUT -n >/dev/null 2>>"$WORKDIR/netns.err"; then
		ip netns exec "$NS" iptables-legacy -L INPUT -n >/dev/null 2>>"$WORKDIR/netns.err" ||
			return 1
		IPT=iptables-legacy
	fi
	ping -c 1 -W 2 "$ADDR_PG" >/dev/null 2>&1 || true
	return 0
}

if want partition; then
	if ! netns_setup; then
		echo "SKIP: partition: network namespaces, veth or iptables are not usable here:" \
			"$(tr '\n' ' ' <"$WORKDIR/netns.err")"
		echo "SKIP: partition: THE SILENT PARTITION WAS NOT TESTED"
		skipped=1
	else
		PART=$(cluster_dir fo-partition)
		# Unix socket only for the setup: it listens on TCP only inside the namespace.
		cluster_start "$PART" "$P_PART" "livenotify.ring_size = '8MB'
listen_addresses = ''" 9>&- ||
			die "partition cluster did not start"
		create_db "$PART" "$P_PART" || die "schema setup failed"
		# Restart it inside the namespace, listening on its veth address only; the test's own
		# SQL goes through the Unix socket (a path, not in any network namespace).
		(cd /tmp && runuser -u postgres -- "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$PART/data" -m fast \
			-w -t 60 stop) >/dev/null
		printf "\n# --- partition (test/failover) ---\nlisten_addresses = '%s'\n" "$ADDR_PG" \
			>>"$PART/data/postgresql.conf"
		printf "host all all %s/30 trust\n" "$ADDR_HOST" >>"$PART/data/pg_hba.conf"
		(cd /tmp && ip netns exec "$NS" runuser -u postgres -- "$LIVENOTIFY_PG_BIN/pg_ctl" \
			-D "$PART/data" -l "$PART/log/postgresql.log" -w -t 60 start) >/dev/null 9>&- ||
			{ tail -n 30 "$PART/log/postgresql.log"; die "partition cluster did not start in $NS"; }
		log "partition: PostgreSQL in netns $NS on $ADDR_PG:$P_PART, daemon at $ADDR_HOST ($VETH_HOST)"
		run_py partition --pg-dir="$PART" --pg-port="$P_PART" --pg-addr="$ADDR_PG" \
			--host-addr="$ADDR_HOST" --netns="$NS" --iptables="$IPT" --db="$DB" || rc=1
		[ $rc -eq 0 ] || cluster_log "$PART"
		cluster_stop "$PART"
	fi
fi

[ $rc -eq 0 ] || log "failover: daemon logs in $WORKDIR"
if [ $rc -ne 0 ]; then
	exit 1
fi
[ $skipped -eq 0 ] || exit $SKIP
exit 0
