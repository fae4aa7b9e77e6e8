# test/lib.sh: shell helpers shared by the livenotify test suites.
#
# Source it from bash (it sets no shell options of its own):
#
#   source test/lib.sh
#   ensure_packages                      # Debian packages the build and the tests need
#   dir=$(cluster_dir)                   # fresh directory under /tmp owned by postgres
#   cluster_start "$dir" 54329           # private cluster, livenotify preloaded
#   ... PGHOST=$dir PGPORT=54329 PGUSER=postgres psql ...
#   cluster_stop "$dir"
#
# Every cluster started here is stopped by an EXIT trap, so a failing run never leaves a
# postmaster behind.  Clusters run as the `postgres` user (PostgreSQL refuses to run as
# root), on a private port, listening on their own socket directory and 127.0.0.1 only.
# The system cluster on 5432 is never started, stopped or connected to.

# The real pg_config: /usr/bin/pg_config is a Debian wrapper that may pick another version.
LIVENOTIFY_PG_BIN=${LIVENOTIFY_PG_BIN:-/usr/lib/postgresql/15/bin}
export PG_CONFIG=${PG_CONFIG:-$LIVENOTIFY_PG_BIN/pg_config}

LIVENOTIFY_PACKAGES=(
	postgresql-15 postgresql-server-dev-15 libpq-dev
	libwebsockets-dev libwebsockets-evlib-ev libev-dev nlohmann-json3-dev libjwt-dev libgtest-dev
	libsystemd-dev
	cmake pkg-config clang-format g++ make
	python3-websockets python3-psycopg2
	# test/django: Debian's Django 3.2 and PyJWT (RS256 through python3-cryptography), the venv
	# that livenotify-django is pip-installed into
	python3-django python3-jwt python3-cryptography python3-venv python3-pip
	# test/failover: DROP rules inside the suite's own network namespace (ip: iproute2)
	iptables iproute2
	# test/fuzz: libFuzzer and the sanitizer runtimes come with clang-14's compiler-rt
	clang-14 libclang-rt-14-dev libssl-dev
)

# Directories of the clusters started by cluster_start and not yet stopped.
LIVENOTIFY_CLUSTERS=()
_livenotify_apt_updated=0

# Messages say [test], or what the sourcing script sets LOG_TAG to (benchmarks: bench).
log() {
	printf '[%s] %s\n' "${LOG_TAG:-test}" "$*" >&2
}

die() {
	printf '[%s] ERROR: %s\n' "${LOG_TAG:-test}" "$*" >&2
	exit 1
}

# ensure_packages [package...]: install the missing ones of the given packages (default: all
# the project needs).  Skips apt entirely when everything is present.
ensure_packages() {
	local pkgs=("$@") missing=() p status
	[ ${#pkgs[@]} -gt 0 ] || pkgs=("${LIVENOTIFY_PACKAGES[@]}")
	for p in "${pkgs[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[ "$status" = installed ] || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		log "packages: all ${#pkgs[@]} present"
		return 0
	fi
	[ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}); run as root to install them"
	log "packages: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if [ "$_livenotify_apt_updated" -eq 0 ]; then
		apt-get update -qq || die "apt-get update failed"
		_livenotify_apt_updated=1
	fi
	# Installing postgresql-15 may create and start the system cluster on 5432, or fail to
	# start it (no init system in a container): neither matters, we never use it.  Only the
	# packages' presence is checked afterwards.
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		log "apt-get install returned non-zero; checking what is installed"
	for p in "${missing[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[ "$status" = installed ] || die "package $p could not be installed"
	done
}

# pack_client DEST: `npm pack` client/ into DEST and unpack it there; prints DEST/package, the
# directory the demo server serves as the client package.  npm is Debian's (package npm, which
# brings Debian's nodejs) unless the machine has one already: the pack needs no registry, the
# package has no dependencies.  Callers install npm first when `command -v npm` fails.
pack_client() {
	local dest=$1 tgz
	command -v npm >/dev/null || die "npm is missing (Debian package npm)"
	rm -rf "$dest" && mkdir -p "$dest" || die "cannot create $dest"
	tgz=$(cd client && NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false \
		npm pack --silent --pack-destination "$dest" 2>"$dest/npm-pack.log" | tail -n 1) ||
		die "npm pack failed: $(cat "$dest/npm-pack.log")"
	[ -f "$dest/$tgz" ] || die "npm pack made no tarball ($dest/npm-pack.log)"
	tar -xzf "$dest/$tgz" -C "$dest" || die "cannot unpack $dest/$tgz"
	[ -f "$dest/package/livenotify.js" ] || die "the packed client has no livenotify.js"
	printf '%s\n' "$dest/package"
}

# free_port_from START: print the first port from START up that 127.0.0.1 can bind now.  The
# suites' fixed ports lie in Linux's ephemeral range, where an outgoing connection may hold
# one at any moment: a listener on a fixed port takes the next free one instead of failing.
free_port_from() {
	/usr/bin/python3 -c '
import socket, sys
for p in range(int(sys.argv[1]), int(sys.argv[1]) + 100):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
else:
    sys.exit(1)' "$1"
}

# cluster_dir [name]: print a fresh directory under /tmp owned by postgres (0700).
cluster_dir() {
	local dir
	dir=$(mktemp -d "/tmp/livenotify-${1:-test}.XXXXXX") || die "mktemp failed"
	chown postgres:postgres "$dir"
	chmod 700 "$dir"
	printf '%s\n' "$dir"
}

_as_postgres() {
	# Run from a directory the postgres user can read: initdb and pg_ctl fail when the
	# current directory (e.g. root's home) is not accessible to them.
	(cd /tmp && runuser -u postgres -- "$@")
}

# cluster_start DIR PORT [EXTRA_CONF]: initdb DIR/data and start it.  DIR must be empty or
# absent (it is created, under /tmp, owned by postgres); DIR is also the socket directory, the
# server log is DIR/log/postgresql.log.  EXTRA_CONF (lines of postgresql.conf) is appended
# last, so it can override the defaults below, e.g. "shared_preload_libraries = ''".
# The cluster listens on its socket directory only: the test ports lie in Linux's ephemeral
# range (32768-60999), where any outgoing connection of the machine (a package download, a
# browser) may hold 127.0.0.1:PORT, and the TCP bind fails at random.  A caller that connects
# over TCP adds "listen_addresses = '127.0.0.1'" to EXTRA_CONF (and copes with a busy port).
cluster_start() {
	local dir=$1 port=$2 extra=${3:-}
	[ -n "$dir" ] && [ -n "$port" ] || { log "usage: cluster_start DIR PORT [EXTRA_CONF]"; return 1; }
	[ "$port" != 5432 ] || { log "ERROR: port 5432 belongs to the system cluster"; return 1; }
	case $dir in /tmp/*) ;; *) log "ERROR: cluster directory must be under /tmp: $dir"; return 1 ;; esac
	if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
		log "ERROR: cluster directory is not empty: $dir"
		return 1
	fi
	mkdir -p "$dir" "$dir/log"
	chown postgres:postgres "$dir" "$dir/log"
	chmod 700 "$dir"
	LIVENOTIFY_CLUSTERS+=("$dir")
	_livenotify_install_trap

	log "cluster: initdb $dir/data"
	# Trust authentication: a throw-away cluster on a socket directory only postgres can
	# enter (and on 127.0.0.1 where asked).  C locale and UTF8 keep the expected output stable.
	_as_postgres "$LIVENOTIFY_PG_BIN/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C \
		--auth-local=trust --auth-host=trust >"$dir/log/initdb.log" 2>&1 ||
		{ cat "$dir/log/initdb.log" >&2; log "ERROR: initdb failed"; return 1; }

	cat >>"$dir/data/postgresql.conf" <<EOF

# --- livenotify test cluster (test/lib.sh) ---
port = $port
listen_addresses = ''
unix_socket_directories = '$dir'
shared_preload_libraries = 'livenotify'
livenotify.ring_size = '1MB'
# > 0 so that PREPARE TRANSACTION reaches livenotify's own check (transactions test).
max_prepared_transactions = 2
fsync = on
logging_collector = off
log_line_prefix = '%m [%p] %q%a '
log_min_messages = warning
$extra
EOF

	log "cluster: start on port $port, socket dir $dir"
	if ! _as_postgres "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log/postgresql.log" \
		-w -t 60 start >/dev/null; then
		tail -n 50 "$dir/log/postgresql.log" >&2
		log "ERROR: cluster on port $port did not start"
		return 1
	fi
	local i
	for i in $(seq 1 60); do
		"$LIVENOTIFY_PG_BIN/pg_isready" -q -h "$dir" -p "$port" -U postgres && return 0
		sleep 0.5
	done
	tail -n 50 "$dir/log/postgresql.log" >&2
	log "ERROR: cluster on port $port is not accepting connections"
	return 1
}

# cluster_stop DIR: stop the cluster in DIR (fast shutdown) and remove DIR, unless
# LIVENOTIFY_KEEP_CLUSTER=1 (then its data and log stay for a post-mortem).
cluster_stop() {
	local dir=$1 d rest=()
	[ -n "$dir" ] || die "usage: cluster_stop DIR"
	if [ -f "$dir/data/postmaster.pid" ]; then
		log "cluster: stop $dir"
		_as_postgres "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop \
			>/dev/null 2>&1 ||
			_as_postgres "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop \
				>/dev/null 2>&1 || true
	fi
	for d in "${LIVENOTIFY_CLUSTERS[@]}"; do
		[ "$d" = "$dir" ] || rest+=("$d")
	done
	LIVENOTIFY_CLUSTERS=("${rest[@]}")
	if [ "${LIVENOTIFY_KEEP_CLUSTER:-0}" = 1 ]; then
		log "cluster: kept $dir"
	else
		case $dir in /tmp/livenotify-*) rm -rf "$dir" ;; esac
	fi
}

# cluster_restart DIR: restart the cluster in DIR (fast shutdown) and wait until it is ready.
cluster_restart() {
	local dir=$1
	log "cluster: restart $dir"
	_as_postgres "$LIVENOTIFY_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log/postgresql.log" \
		-m fast -w -t 60 restart >/dev/null ||
		{ log "ERROR: cluster in $dir did not restart"; return 1; }
}

# cluster_log DIR: after a failure, show whether the server crashed: the log lines that tell
# (a backend killed by a signal, PANIC, FATAL, failed assertion), or say there are none.
# The full log is DIR/log/postgresql.log (kept with LIVENOTIFY_KEEP_CLUSTER=1).
cluster_log() {
	local f="$1/log/postgresql.log" lines
	[ -f "$f" ] || return 0
	lines=$(grep -E 'PANIC|FATAL|TRAP|terminated by signal|was terminated|server process' "$f" |
		tail -n 30)
	if [ -n "$lines" ]; then
		printf -- '--- server log %s: ---\n%s\n' "$f" "$lines" >&2
	else
		printf -- '--- server log %s: no crash, PANIC or FATAL ---\n' "$f" >&2
	fi
}

# Stop every cluster still running when the shell exits, whatever the reason.
_livenotify_cleanup() {
	local rc=$? d
	for d in "${LIVENOTIFY_CLUSTERS[@]}"; do
		cluster_stop "$d"
	done
	return $rc
}

_livenotify_install_trap() {
	if [ -z "${_livenotify_trap_set:-}" ]; then
		trap _livenotify_cleanup EXIT
		# Turn signals into a normal exit so that the EXIT trap runs.
		trap 'exit 130' INT
		trap 'exit 143' TERM
		_livenotify_trap_set=1
	fi
}
