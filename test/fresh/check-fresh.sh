#!/usr/bin/env bash
# test/fresh/check-fresh.sh (`make check-fresh`): the README's two commands, exactly as the
# README shows them, on a new minimal Debian 12 with a clean clone of this checkout's HEAD.
#
#   1. debootstrap a new bookworm *minbase* tree under build/fresh/ (the .debs are cached in
#      build/fresh-cache between runs; the tree itself is new every time)
#   2. give it what a fresh Debian 12 image has: the bookworm, bookworm-updates and
#      bookworm-security sources; and what this machine needs to reach the registries (its
#      resolv.conf, its CA bundle and extra CAs, its apt Acquire:: settings)
#   3. git clone HEAD into /root/livenotify inside, mount /proc, /sys, /dev, /dev/pts,
#      /dev/shm, /tmp
#   4. run the README's `make demo` command with LIVENOTIFY_DEMO_CHECK=1 (starts everything,
#      checks a row inserted with psql reaches the page in Chromium, stops), then its
#      `make test` command, as root in a login-like environment
#   5. stop every process left in the tree, unmount, delete the tree (also on failure/Ctrl-C)
#
# The commands are read from README.md's first ```sh block, so the check cannot drift from
# what the README tells a newcomer.  The tree shares this machine's network (ports!) and
# kernel: run nothing else on the test suites' default ports meanwhile.  Services that
# package scripts would start inside the tree are refused by a policy-rc.d (a system
# PostgreSQL started there would hold port 5432 on this machine after the tree is gone).
#
# Environment: LIVENOTIFY_FRESH_MIRROR (http://deb.debian.org/debian),
# LIVENOTIFY_FRESH_KEEP=1 keeps the tree (and its logs) for a look afterwards.
# Output: the full log in build/fresh/check-fresh.log; the last line is the summary.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
# shellcheck source=test/lib.sh
source test/lib.sh
LOG_TAG=fresh

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot, mounts)"
MIRROR=${LIVENOTIFY_FRESH_MIRROR:-http://deb.debian.org/debian}
WORK=$ROOT/build/fresh
CACHE=$ROOT/build/fresh-cache
TREE=$WORK/root
LOGFILE=$WORK/check-fresh.log
ensure_packages debootstrap git >/dev/null

COMMIT=$(git rev-parse HEAD) || die "not a git checkout"
[ -z "$(git status --porcelain --untracked-files=no)" ] ||
	log "note: the working tree has uncommitted changes; they are not in the clone (HEAD ${COMMIT:0:12} is)"

# The README's commands: the first ```sh block, its lines that run `make demo` / `make test`,
# without their trailing comments.
readme_command() {
	awk -v want="$1" '
		/^```sh$/ && !seen { inblock = 1; seen = 1; next }
		inblock && /^```$/ { exit }
		inblock {
			line = $0; sub(/[ \t]+#.*$/, "", line)
			if (line ~ ("(^|[ ;&|])make " want "$")) { print line; exit }
		}' README.md
}
DEMO_CMD=$(readme_command demo)
TEST_CMD=$(readme_command test)
[ -n "$DEMO_CMD" ] || die "README.md's first sh block has no line running make demo"
[ -n "$TEST_CMD" ] || die "README.md's first sh block has no line running make test"

# Every mount at or under the tree, deepest first: ours, and those the run made inside it
# (the failover suite's `ip netns add` mounts /run/netns and its namespaces there).
tree_mounts() {
	awk -v t="$TREE" '$2 == t || index($2, t "/") == 1 { print $2 }' /proc/mounts | sort -r
}
cleanup() {
	local rc=$? pid root m i
	# Processes whose root is the tree (a daemon the run left behind): TERM, then KILL.
	for sig in TERM KILL; do
		for pid in /proc/[0-9]*; do
			root=$(readlink "$pid/root" 2>/dev/null) || continue
			[ "$root" = "$TREE" ] && kill -s "$sig" "${pid#/proc/}" 2>/dev/null
		done
		[ $sig = TERM ] && sleep 2
	done
	while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
	done < <(tree_mounts)
	if [ "${LIVENOTIFY_FRESH_KEEP:-0}" = 1 ]; then
		log "kept $TREE"
	elif [ -z "$(tree_mounts)" ]; then
		rm -rf --one-file-system "$TREE"
	else
		log "$TREE still has mounts; not deleting it"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK" "$CACHE"
if [ -n "$(tree_mounts)" ]; then
	die "$TREE has mounts left by an earlier run: unmount them first ($(tree_mounts | tr '\n' ' '))"
fi
rm -rf --one-file-system "$TREE"
: >"$LOGFILE"

log "debootstrap bookworm minbase from $MIRROR into $TREE (log: $LOGFILE)"
debootstrap --variant=minbase --cache-dir="$CACHE" bookworm "$TREE" "$MIRROR" >>"$LOGFILE" 2>&1 ||
	die "debootstrap failed (see $LOGFILE)"

# What a Debian 12 image's apt knows (debootstrap writes bookworm main alone; Chromium's
# current versions are in bookworm-security).
rm -f "$TREE/etc/apt/sources.list"
cat >"$TREE/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# How this machine reaches the registries: name servers, CAs it trusts (a TLS-inspecting
# egress proxy's, say; kept where update-ca-certificates picks them up again once the
# ca-certificates package is installed) and apt Acquire:: settings (a snapshot mirror's
# validity, a proxy).  Nothing else of this machine goes in.
cp -L /etc/resolv.conf "$TREE/etc/resolv.conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
	mkdir -p "$TREE/etc/ssl/certs"
	cp /etc/ssl/certs/ca-certificates.crt "$TREE/etc/ssl/certs/"
fi
if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
	mkdir -p "$TREE/usr/local/share/ca-certificates"
	cp -r /usr/local/share/ca-certificates/. "$TREE/usr/local/share/ca-certificates/"
fi
for f in /etc/apt/apt.conf.d/*; do
	grep -qs '^[[:space:]]*Acquire::' "$f" && cp "$f" "$TREE/etc/apt/apt.conf.d/"
done
printf '#!/bin/sh\n# check-fresh: no service starts inside the tree (it shares the host network)\nexit 101\n' \
	>"$TREE/usr/sbin/policy-rc.d"
chmod 755 "$TREE/usr/sbin/policy-rc.d"

git clone -q --no-hardlinks "$ROOT" "$TREE/root/livenotify" || die "git clone failed"
git -C "$TREE/root/livenotify" checkout -q "$COMMIT" || die "checkout of $COMMIT failed"

mount_in() { # mount_in TARGET mount-args...
	local target=$TREE$1
	shift
	mkdir -p "$target"
	mount "$@" "$target" || die "mount $* $target failed"
}
# The tree's / is a mount point, as a machine's / is: `ip netns exec` (the failover suite's
# silent partition) makes / a recursive slave mount, which fails (EINVAL) on a directory.
mount --bind "$TREE" "$TREE" || die "mount --bind $TREE $TREE failed"
mount_in /proc -t proc proc
mount_in /sys -t sysfs sysfs
mount_in /dev --bind /dev
mount --make-rslave "$TREE/dev"
mount_in /dev/pts -t devpts -o newinstance,ptmxmode=0666 devpts
mount_in /dev/shm -t tmpfs -o mode=1777 tmpfs
mount_in /tmp -t tmpfs -o mode=1777 tmpfs

in_tree() {
	chroot "$TREE" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@" \
		/bin/bash -c "cd /root/livenotify && $CMD"
}

started=$(date +%s)
log "in the tree: $DEMO_CMD   (LIVENOTIFY_DEMO_CHECK=1)"
CMD=$DEMO_CMD
in_tree LIVENOTIFY_DEMO_CHECK=1 >>"$LOGFILE" 2>&1
demo_rc=$?
demo_line=$(grep -a '^demo check' "$LOGFILE" | tail -n 1)
log "demo: rc=$demo_rc ${demo_line:-no check line}"

log "in the tree: $TEST_CMD"
CMD=$TEST_CMD
in_tree >>"$LOGFILE" 2>&1
test_rc=$?
test_line=$(sed -n '/===== summary =====/,$p' "$LOGFILE" | grep -aE '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
grep -aE '^(ok|FAIL|SKIP)[A-Z]* +[a-z_]+$' "$LOGFILE" | tail -n 30 >&2

versions=$(chroot "$TREE" /bin/bash -c '
	. /etc/os-release; printf "Debian %s" "$(cat /etc/debian_version)"
	command -v node >/dev/null && printf ", node %s" "$(node --version)"
	command -v chromium >/dev/null && printf ", %s" "$(chromium --version 2>/dev/null | sed "s/ *$//")"
	command -v make >/dev/null && printf ", %s" "$(make --version | head -n 1)"' 2>/dev/null)
minutes=$((($(date +%s) - started + 59) / 60))
demo_word=ok
[ $demo_rc -eq 0 ] || demo_word="FAILED (rc $demo_rc)"
summary="check-fresh: demo ${demo_word}, test: ${test_line:-no summary line} (rc $test_rc); bookworm minbase, commit ${COMMIT:0:12}, $versions, ${minutes} min"
echo "$summary" | tee -a "$LOGFILE"
[ $demo_rc -eq 0 ] && [ $test_rc -eq 0 ]
