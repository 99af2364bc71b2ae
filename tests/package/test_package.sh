#!/usr/bin/env bash
# test_package: the Debian package on a bare Debian 12 (make test-package;
# docs/operations.md, "The Debian package"). Needs root: debootstrap and
# chroot.
#
#   test_package.sh BUILD_DIR PACKAGE.deb
#
# 1. A bare root: `debootstrap --variant=minbase bookworm` from the mirror
#    this machine's apt uses (GRIDSYNC_DEBIAN_MIRROR overrides it), made
#    once and kept in BUILD_DIR/debian12-root; every run works on a fresh
#    copy of it, so the root never holds an earlier run's package.
# 2. `apt-get install ./PACKAGE.deb` inside it, so every Depends must
#    resolve from Debian 12 alone and the maintainer scripts run without
#    systemd (as in a chroot or container): they must not try to start it.
# 3. Checks: the gridsync system user, /var/lib/gridsync owned by it with
#    mode 0700, the config a conffile, the unit in place, naming the
#    installed gridsyncd and enabled for multi-user.target.
# 4. gridsyncd --version; then the broker started as gridsync on the
#    installed config and store (its TCP ports moved to free ones, since a
#    chroot shares the host's network), gridctl health against it as
#    gridsync, and a SIGTERM stop that exits 0.
# 5. a reinstall keeps a changed config (a conffile) and the user; apt-get
#    purge deletes the config, and leaves the store and the user.
# The chroot gets no /proc or other mounts: nothing here needs them.
# Waits are bounded: the ready line, the broker's exit.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR PACKAGE.deb" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "test_package: needs root (debootstrap, chroot)" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
deb=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
[ -f "$deb" ] || { echo "test_package: no package $2" >&2; exit 2; }
base=$build/debian12-root
work=$build/debian12-test
started=$SECONDS

fail() {
    echo "test_package: FAIL: $*" >&2
    exit 1
}

# mounted DIR: whether anything is mounted under DIR (debootstrap mounts
# /proc and /sys in its target while it works, and may leave them when it fails)
mounted() {
    grep -q " $1/" /proc/mounts
}

broker_pid=
cleanup() {
    if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -KILL "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    # never delete through a mount into the host
    if mounted "$work"; then
        echo "test_package: $work has mounts; leaving it" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# The Debian mirror of this machine's apt sources: the first one serving
# the suite bookworm itself (not -updates or -security), from one-line
# .list files or deb822 .sources files.
s_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++;
                           if ($2 ~ /^\[/) i++;
                           if ($(i + 1) == "bookworm") { print $i; exit } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'function done_para() { if (deb && suite && uri != "") { print uri; exit }
                                    deb = 0; suite = 0; uri = "" }
             /^[ \t]*$/ { done_para(); next }
             /^Types:/ { deb = ($0 ~ /[: ]deb( |$)/) }
             /^URIs:/ { uri = $2 }
             /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
             END { done_para() }' "$f"
    done
}

in_root() {
    chroot "$work" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# ---- 1. the bare root, made once --------------------------------------------
if [ ! -x "$base/usr/bin/apt-get" ]; then
    mirror=${GRIDSYNC_DEBIAN_MIRROR:-$(s_mirror | head -n 1)}
    mirror=${mirror:-http://deb.debian.org/debian}
    echo "test_package: debootstrap --variant=minbase bookworm from $mirror (once; kept in $base)"
    mounted "$base.tmp" && fail "$base.tmp has mounts left from a failed debootstrap; unmount them first"
    rm -rf "$base.tmp"
    debootstrap --variant=minbase bookworm "$base.tmp" "$mirror" > "$build/debootstrap.log" 2>&1 || {
        tail -n 20 "$build/debootstrap.log" >&2
        fail "debootstrap failed (log: $build/debootstrap.log)"
    }
    mv "$base.tmp" "$base"
fi
mounted "$work" && fail "$work has mounts left from an earlier run; unmount them first"
rm -rf "$work"
cp -a "$base" "$work"
cp /etc/resolv.conf "$work/etc/resolv.conf"
cp "$deb" "$work/tmp/"
pkg=/tmp/$(basename "$deb")

# ---- 2. install with apt, dependencies from Debian 12 ---------------------------
in_root apt-get update -qq > "$work/tmp/apt.log" 2>&1 || { cat "$work/tmp/apt.log" >&2; fail "apt-get update"; }
in_root apt-get install -y -q --no-install-recommends "$pkg" >> "$work/tmp/apt.log" 2>&1 || {
    cat "$work/tmp/apt.log" >&2
    fail "apt-get install $(basename "$deb") failed in the bare Debian 12 root"
}
# keep what apt downloaded for the next run
cp -n "$work"/var/cache/apt/archives/*.deb "$base/var/cache/apt/archives/" 2>/dev/null || true
grep -qi 'systemctl\|failed' "$work/tmp/apt.log" &&
    grep -i 'systemctl\|failed' "$work/tmp/apt.log" >&2 && fail "the maintainer scripts complained without systemd"

# ---- 3. user, store, config, unit -------------------------------------------------
entry=$(in_root getent passwd gridsync) || fail "no gridsync user"
IFS=: read -r _ _ uid gid _ home shell <<< "$entry"
[ "$uid" -lt 1000 ] || fail "gridsync is not a system user (uid $uid)"
[ "$home" = /var/lib/gridsync ] || fail "gridsync's home is $home"
[ "$shell" = /usr/sbin/nologin ] || fail "gridsync's shell is $shell"
[ "$(in_root getent group gridsync | cut -d: -f3)" = "$gid" ] || fail "gridsync's group is not gridsync"
# numeric: the host has no gridsync user
[ "$(stat -c '%a %u %g' "$work/var/lib/gridsync")" = "700 $uid $gid" ] ||
    fail "/var/lib/gridsync is $(stat -c '%a %u:%g' "$work/var/lib/gridsync"), not 700 gridsync:gridsync"
# shellcheck disable=SC2016 # dpkg-query's format, not the shell's
in_root dpkg-query -W -f='${Conffiles}\n' gridsync | grep -q '^ /etc/gridsync/gridsyncd.conf ' ||
    fail "/etc/gridsync/gridsyncd.conf is not a conffile"
grep -qx 'store = /var/lib/gridsync' "$work/etc/gridsync/gridsyncd.conf" ||
    fail "the installed config does not keep the store in /var/lib/gridsync"
unit=
for d in /usr/lib/systemd/system /lib/systemd/system; do
    [ -f "$work$d/gridsyncd.service" ] && unit=$d/gridsyncd.service && break
done
[ -n "$unit" ] || fail "no gridsyncd.service"
grep -qx 'ExecStart=/usr/bin/gridsyncd --config /etc/gridsync/gridsyncd.conf' "$work$unit" ||
    fail "the unit runs $(grep ExecStart "$work$unit")"
[ -x "$work/usr/bin/gridsyncd" ] || fail "/usr/bin/gridsyncd is missing"
[ -L "$work/etc/systemd/system/multi-user.target.wants/gridsyncd.service" ] ||
    fail "the unit is not enabled (no multi-user.target.wants link)"
if command -v systemd-analyze > /dev/null; then
    # the unit's syntax, against this machine's systemd units (the bare root
    # has none); ExecStart is checked against the root above
    mkdir -p "$work/tmp/unit"
    sed 's|^ExecStart=/usr/bin/|ExecStart='"$work"'/usr/bin/|' "$work$unit" > "$work/tmp/unit/gridsyncd.service"
    systemd-analyze verify "$work/tmp/unit/gridsyncd.service" > "$work/tmp/verify.log" 2>&1 || {
        cat "$work/tmp/verify.log" >&2
        fail "systemd-analyze verify refused $unit"
    }
fi

# ---- 4. the broker as gridsync, and gridctl health ------------------------------
version=$(dpkg-deb -f "$deb" Version)
out=$(in_root gridsyncd --version) || fail "gridsyncd --version failed"
[ "$out" = "gridsyncd $version" ] || fail "gridsyncd --version says '$out', the package $version"
as_gridsync() {
    in_root setpriv --reuid=gridsync --regid=gridsync --init-groups "$@"
}
log=$work/tmp/gridsyncd.log
# a plain command, not the function: chroot, env and setpriv each exec the
# next, so $! is the broker itself
chroot "$work" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    setpriv --reuid=gridsync --regid=gridsync --init-groups \
    gridsyncd --config /etc/gridsync/gridsyncd.conf \
    --upload-endpoint='tcp://127.0.0.1:*' --feed-endpoint='tcp://127.0.0.1:*' \
    --metrics-port=0 2> "$log" &
broker_pid=$!
deadline=$((SECONDS + 30))
until grep -q 'event=ready' "$log"; do
    kill -0 "$broker_pid" 2>/dev/null || { cat "$log" >&2; fail "gridsyncd exited before ready"; }
    [ $SECONDS -lt $deadline ] || { cat "$log" >&2; fail "gridsyncd not ready after 30 s"; }
    sleep 0.1
done
grep 'event=ready' "$log" | grep -q 'store="/var/lib/gridsync"' || fail "the broker's store: $(grep event=ready "$log")"
[ "$(stat -c %u "$work/var/lib/gridsync/data.mdb")" = "$uid" ] || fail "data.mdb is not gridsync's"
health=$(as_gridsync gridctl --store /var/lib/gridsync health) || fail "gridctl health failed: $health"
grep -q "up (version $version)" <<< "$health" || fail "gridctl health says: $health"
kill -TERM "$broker_pid"
deadline=$((SECONDS + 30))
while kill -0 "$broker_pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "gridsyncd still running 30 s after SIGTERM"
    sleep 0.1
done
rc=0
wait "$broker_pid" || rc=$?
broker_pid=
[ $rc -eq 0 ] || { cat "$log" >&2; fail "gridsyncd exited $rc after SIGTERM"; }

# ---- 5. a reinstall keeps the administrator's config; purge keeps the store ----------
echo "# changed by the administrator" >> "$work/etc/gridsync/gridsyncd.conf"
in_root apt-get install --reinstall -y -q "$pkg" > "$work/tmp/reinstall.log" 2>&1 || {
    cat "$work/tmp/reinstall.log" >&2
    fail "apt-get install --reinstall failed"
}
grep -q "changed by the administrator" "$work/etc/gridsync/gridsyncd.conf" ||
    fail "a reinstall overwrote the administrator's config"
[ "$(in_root getent passwd gridsync)" = "$entry" ] || fail "a reinstall changed the gridsync user"
in_root apt-get purge -y -q gridsync > "$work/tmp/purge.log" 2>&1 || { cat "$work/tmp/purge.log" >&2; fail "apt-get purge"; }
[ ! -e "$work/etc/gridsync/gridsyncd.conf" ] || fail "purge left the config"
[ -f "$work/var/lib/gridsync/data.mdb" ] || fail "purge deleted the store"
in_root getent passwd gridsync > /dev/null || fail "purge deleted the gridsync user"

echo "test_package: ok: $(basename "$deb") installed, ran and purged in a bare Debian 12 root" \
     "($((SECONDS - started)) s)"
