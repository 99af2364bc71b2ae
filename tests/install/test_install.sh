#!/usr/bin/env bash
# test_install: what `make install` lays out, and a district system's
# program built against it with pkg-config alone (docs/operations.md,
# "Installing" and "Linking the C client").
#
#   test_install.sh BUILD_DIR SOURCE_DIR PREFIX BINDIR SYSCONFDIR LIBDIR INCLUDEDIR UNITDIR
#
# The paths are the build's configured ones (CMake passes them). Steps:
#  1. cmake --install into DESTDIR=a temporary directory; every file the
#     docs list must be there, the unit must run the installed gridsyncd
#     with the installed config, which keeps the store in /var/lib/gridsync;
#  2. a second install keeps a config the administrator changed;
#  3. the installed programs answer --version and --help;
#  4. the installed gridsyncd runs on the installed config (store and ports
#     overridden by flags, as the test is not the system), with CURVE; the
#     installed gridctl enrols a district key and writes its bundle;
#  5. gs_client_hello.c is compiled with only
#     `pkg-config --cflags --libs gridsync-client` (PKG_CONFIG_PATH into the
#     staged tree) and pings that broker with the bundle's keys;
#  6. the installed gridctl health reaches the broker; SIGTERM stops it.
# Waits are on the broker's ready line and on exits, each with a deadline.
set -euo pipefail

if [ $# -ne 8 ]; then
    echo "usage: $0 BUILD_DIR SOURCE_DIR PREFIX BINDIR SYSCONFDIR LIBDIR INCLUDEDIR UNITDIR" >&2
    exit 2
fi
build=$1 src=$2 prefix=$3 bindir=$4 sysconfdir=$5 libdir=$6 includedir=$7 unitdir=$8
version=$(sed -n 's/^#define GS_VERSION "\(.*\)"$/\1/p' "$build/proto/gs_version.h")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gs_install.XXXXXX")
root=$tmp/root
broker_pid=
cleanup() {
    if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -KILL "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "test_install: FAIL: $*" >&2
    exit 1
}

# wait_exit PID SECONDS: the exit status of a child, killed after SECONDS
wait_exit() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            fail "pid $pid still running after $2 s"
        fi
        sleep 0.1
    done
    local rc=0
    wait "$pid" || rc=$?
    return $rc
}

# ---- 1. the installed tree ---------------------------------------------------
DESTDIR=$root cmake --install "$build" > "$tmp/install.log" || {
    cat "$tmp/install.log" >&2
    fail "cmake --install failed"
}
conf=$sysconfdir/gridsync/gridsyncd.conf
unit=$prefix/$unitdir/gridsyncd.service
for f in "$bindir/gridsyncd" "$bindir/gridctl" "$bindir/gridsim" "$bindir/gridfeed"; do
    [ -x "$root$f" ] || fail "$f is not installed as an executable"
done
for f in "$conf" "$unit" "$includedir/gridsync/gs_client.h" "$includedir/gridsync/gs_sub.h" \
         "$includedir/gridsync/gs_checkpoint.h" "$includedir/gridsync/gs_admin.h" \
         "$includedir/gridsync/gs_arena.h" "$includedir/gridsync/gridsync.pb-c.h" "$libdir/libgridsync-client.a" \
         "$libdir/pkgconfig/gridsync-client.pc" "$prefix/share/gridsync/gridsync.proto" \
         "$prefix/share/doc/gridsync/operations.md" \
         "$prefix/share/doc/gridsync/gridsyncd.conf.example"; do
    [ -f "$root$f" ] || fail "$f is not installed"
done
grep -qx "ExecStart=$bindir/gridsyncd --config $conf" "$root$unit" ||
    fail "the unit does not run $bindir/gridsyncd --config $conf: $(grep ExecStart "$root$unit")"
for want in User=gridsync StateDirectory=gridsync StateDirectoryMode=0700; do
    grep -qx "$want" "$root$unit" || fail "the unit lacks $want"
done
grep -qx "store = /var/lib/gridsync" "$root$conf" || fail "the installed config's store is not /var/lib/gridsync"
# the rest of the config is the example's, line for line
diff <(grep -v '^store = ' "$src/broker/gridsyncd.conf.example") \
     <(grep -v '^store = ' "$root$conf") > /dev/null ||
    fail "the installed config differs from broker/gridsyncd.conf.example beyond the store"
if command -v systemd-analyze > /dev/null; then
    # the unit's syntax; ExecStart is checked against the staged tree above
    sed "s|^ExecStart=$bindir/|ExecStart=$root$bindir/|" "$root$unit" > "$tmp/gridsyncd.service"
    systemd-analyze verify "$tmp/gridsyncd.service" > "$tmp/verify.log" 2>&1 || {
        cat "$tmp/verify.log" >&2
        fail "systemd-analyze verify refused the unit"
    }
fi

# ---- 2. an administrator's config survives make install -----------------------
echo "# changed by the administrator" >> "$root$conf"
DESTDIR=$root cmake --install "$build" > "$tmp/install2.log"
grep -q "changed by the administrator" "$root$conf" || fail "a second install overwrote the config"

# ---- 3. every installed program answers --version and --help -------------------
for p in gridsyncd gridctl gridsim gridfeed; do
    out=$("$root$bindir/$p" --version) || fail "$p --version failed"
    [ "$out" = "$p $version" ] || fail "$p --version printed '$out', not '$p $version'"
    "$root$bindir/$p" --help > "$tmp/help.txt" || fail "$p --help failed"
    grep -q -- "--version" "$tmp/help.txt" || fail "$p --help does not name --version"
done

# ---- 4. the installed broker on the installed config -----------------------------
store=$tmp/store
"$root$bindir/gridsyncd" --config "$root$conf" --store="$store" \
    --upload-endpoint='tcp://127.0.0.1:*' --feed-endpoint='tcp://127.0.0.1:*' \
    --metrics-port=0 2> "$tmp/broker.log" &
broker_pid=$!
deadline=$((SECONDS + 30))
until grep -q 'event=ready' "$tmp/broker.log"; do
    kill -0 "$broker_pid" 2>/dev/null || { cat "$tmp/broker.log" >&2; fail "gridsyncd exited before ready"; }
    [ $SECONDS -lt $deadline ] || { cat "$tmp/broker.log" >&2; fail "gridsyncd not ready after 30 s"; }
    sleep 0.1
done
ready=$(grep 'event=ready' "$tmp/broker.log")
upload=$(sed -n 's/.* upload=\([^ ]*\).*/\1/p' <<< "$ready")
case $ready in *security=curve*) ;; *) fail "the installed config does not run CURVE: $ready" ;; esac
"$root$bindir/gridctl" --store "$store" devices enrol hello-district --role district \
    --prefix 440305 --bundle "$tmp/hello.bundle" --endpoint "$upload" > /dev/null ||
    fail "gridctl devices enrol failed"

# ---- 5. a program built with pkg-config alone ------------------------------------
export PKG_CONFIG_PATH=$root$libdir/pkgconfig
flags=$(pkg-config --cflags --libs gridsync-client) || fail "pkg-config does not find gridsync-client"
pkg-config --static --libs gridsync-client > /dev/null || fail "pkg-config --static fails"
[ "$(pkg-config --modversion gridsync-client)" = "$version" ] || fail "the .pc's version is not $version"
# GS_INSTALL_TEST_CFLAGS: -fsanitize=... in a sanitizer build, whose
# archive needs the sanitizers' runtime; empty otherwise
# shellcheck disable=SC2086 # the flags are words
cc -std=c11 -Wall -Wextra -Werror ${GS_INSTALL_TEST_CFLAGS:-} -o "$tmp/gs_client_hello" \
    "$src/tests/install/gs_client_hello.c" $flags || fail "gs_client_hello does not build with: $flags"
out=$("$tmp/gs_client_hello" "$tmp/hello.bundle") || fail "gs_client_hello failed: $out"
[ "$out" = "device=hello-district registered=1 active=1 version=$version" ] ||
    fail "gs_client_hello printed '$out'"

# ---- 6. gridctl health, then a clean stop -----------------------------------------
health=$("$root$bindir/gridctl" --store "$store" health) || fail "gridctl health failed: $health"
grep -q "up (version $version)" <<< "$health" || fail "gridctl health says: $health"
kill -TERM "$broker_pid"
rc=0
wait_exit "$broker_pid" 30 || rc=$?
broker_pid=
[ $rc -eq 0 ] || fail "gridsyncd exited $rc after SIGTERM"
echo "test_install: ok (installed under $prefix, client built with: $flags)"
