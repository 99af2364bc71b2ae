#!/usr/bin/env bash
# run_bench.sh: every gridsync benchmark, side by side, in one run; writes
# the report (Markdown tables and a PNG chart).
#
# Where it sits: `make bench` runs `tools/bench/run_bench.sh BUILD docs` and
# `make bench-quick` runs it with --quick into a temporary directory (CI).
# It drives the programs of BUILD: gridsyncd, gridctl, gridsim, gridfeed and
# the tools/bench programs (bench_load, bench_disk, bench_pg, bench_store,
# bench_zmq, bench_fill, bench_feed, bench_pull, bench_gen), preloads
# libbench_iocount.so into every gridsyncd it starts (write bytes and
# flushes, see bench_iocount.h), starts a private PostgreSQL server on
# loopback in a temporary directory for the peer and a private nats-server
# (JetStream, loopback, temporary directory) for the federation figures,
# and stops everything it started.
#
# Why rounds: the machine is shared, so absolute rates drift by tens of
# percent within minutes. Each round measures the device's ceilings, runs
# the light load generator against gridsyncd (CURVE, 100 connections, the
# headline), gridsim + gridfeed against gridsyncd (the realistic run), the
# PostgreSQL peer on both sets of uploads (at gridsync's commit sizes and a
# sweep of its own), the store alone with its bare LMDB loop, and the bare
# ZeroMQ loop, back to back; ratios are taken within a round and the report
# gives every round, the median and the spread. The light run goes twice
# per round, alone and with light subscribers (bench_subs) following grids
# of the district, in alternating order, for the subscribers' ratio. Once
# after the rounds, bench_conns holds idle-ish CURVE connections open (10,000
# in the full run, as many as the open-file limit allows) for the broker's
# memory per connection, and, in the full run, 500 connections that ping
# 301 times each for what a connection costs once it has carried traffic.
# The federation figures
# (district -> city over NATS JetStream) have rounds of their own, each on
# a fresh nats-server, district and city.
#
# --quick: the same steps on a small scale (2% of the district, 16
# connections, 10 subscribers, 200 idle connections, small pre-fills, one
# round), in about two minutes. It checks
# that every step works and that every answer is right (bench_load's and
# gridsim's expectations, the peer's answers against gridsync's, the feed's
# completeness, catch-up to the head); it asserts no timing.
#
# --city SCALE: only the city-scale run (make bench-city): 7,000,000 x SCALE
# households in one store (bench_fill, pre-filled through the store's write
# path with no_sync), then 3 rounds of the light load generator's ingest of
# a fresh district into an empty store and into the city store, back to
# back in alternating order (a ratio per round), device pull-sync from the
# city store, and gridctl stats over the whole city, timed. Writes
# OUT_DIR/benchmarks-city.md and its headline figures as key=value lines in
# OUT_DIR/benchmarks-city.results, from which make bench fills the city row
# of its goals table. At SCALE 1 the store takes some 11 GB and the
# run 4 to 13 minutes on 2 shared cores, the pre-fill 3 to 8 of them.
#
# Usage: run_bench.sh [--quick | --city SCALE] BUILD_DIR OUT_DIR
#   writes OUT_DIR/benchmarks.md and OUT_DIR/benchmarks.png (with --city:
#   OUT_DIR/benchmarks-city.md and OUT_DIR/benchmarks-city.results only)
# Environment: GRIDSYNC_BENCH_KEEP=1 keeps the work directory (stores, logs).
set -euo pipefail

QUICK=0
CITY=
if [ "${1:-}" = "--quick" ]; then
    QUICK=1
    shift
elif [ "${1:-}" = "--city" ]; then
    CITY=${2:-}
    awk -v s="$CITY" 'BEGIN { exit !(s + 0 > 0 && s + 0 <= 3) }' ||
        { echo "run_bench: --city takes a scale above 0, at most 3 (1 = 7,000,000 households)" >&2; exit 2; }
    shift 2
fi
[ $# -eq 2 ] || { echo "usage: $0 [--quick | --city SCALE] BUILD_DIR OUT_DIR" >&2; exit 2; }
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$1" && pwd)
mkdir -p "$2"
OUT=$(cd "$2" && pwd)

GRIDSYNCD=$BUILD/broker/gridsyncd
GRIDCTL=$BUILD/tools/gridctl/gridctl
GRIDSIM=$BUILD/tools/gridsim/gridsim
GRIDFEED=$BUILD/tools/gridfeed/gridfeed
BENCH=$BUILD/tools/bench
IOCOUNT_SO=$BENCH/libbench_iocount.so
for p in "$GRIDSYNCD" "$GRIDCTL" "$GRIDSIM" "$GRIDFEED" "$BENCH/bench_pg" "$BENCH/bench_store" \
         "$BENCH/bench_zmq" "$BENCH/bench_fill" "$BENCH/bench_feed" "$BENCH/bench_pull" \
         "$BENCH/bench_gen" "$BENCH/bench_load" "$BENCH/bench_disk" "$BENCH/bench_conns" \
         "$BENCH/bench_subs"; do
    [ -x "$p" ] || { echo "run_bench: $p is not built (make bench builds it)" >&2; exit 2; }
done
[ -f "$IOCOUNT_SO" ] || { echo "run_bench: $IOCOUNT_SO is not built (make bench builds it)" >&2; exit 2; }
command -v gnuplot > /dev/null || { echo "run_bench: gnuplot is not installed" >&2; exit 2; }
NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
[ -x "$NATS_SERVER" ] || { echo "run_bench: nats-server is not installed (make deps)" >&2; exit 2; }

# ---- Scale ---------------------------------------------------------------------------
if [ $QUICK = 1 ]; then
    SCALE=0.02          # share of the seed district gridsim uploads
    ROUNDS=1            # rounds of the side-by-side comparison
    LOAD_CONNS=16       # bench_load's connections (device keys)
    PG_SWEEP="500"      # the peer's own batch sizes tried besides gridsync's
    DISK_SYNCS=50       # fdatasyncs timed by bench_disk
    DISK_MB=32          # MiB written for the sequential bandwidth
    STORE_LIMIT=3000    # records bench_store applies
    FEED_SECONDS=2      # length of each feed-latency run
    FEED_RUNS=1         # feed-latency runs
    FILL1=50000         # records stored for the first growth step
    FILL2=100000        # and for the second
    BEHIND=10000        # events the catch-up subscriber is behind
    PULL_SAMPLES=20     # grids downloaded
    FED_ROUNDS=1        # federation rounds (fresh NATS, district and city each)
    FED_SECONDS=2       # length of the district -> city lag run
    FED_OUTAGE=20000    # events the district takes while NATS is down
    CONNS=200           # idle CURVE connections held open
    CONN_KEYS=2         # device keys they share
    CONN_PING_S=0.2     # their keep-alive ping, spread over this many seconds
    CONN_BUSY=0         # connections of the busier run (0: not run)
    SUBS=10             # light subscribers next to bench_load
else
    SCALE=1
    ROUNDS=3
    LOAD_CONNS=100
    PG_SWEEP="1000 4000"
    DISK_SYNCS=300
    DISK_MB=256
    STORE_LIMIT=0
    FEED_SECONDS=5
    FEED_RUNS=3
    FILL1=1000000
    FILL2=5000000
    BEHIND=1000000
    PULL_SAMPLES=300
    FED_ROUNDS=3
    FED_SECONDS=5
    FED_OUTAGE=1000000
    CONNS=10000
    CONN_KEYS=16
    CONN_PING_S=5
    CONN_BUSY=500       # connections that then ping CONN_BUSY_ROUNDS times each
    SUBS=100
fi
CONN_BUSY_ROUNDS=300    # pings per connection of the busier run
DEVICES=8               # gridsim's default fleet concurrency
LOAD_WINDOW=2           # uploads in flight per bench_load connection
LIGHT_DISTRICT=440305   # the district bench_load lays out and its devices are enrolled for
FEED_RATE=10000         # offered records/s for the feed latency

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gridsync-bench.XXXXXX")
RES=$WORK/results.txt   # every figure, as key=value lines
LOG=$WORK/log
mkdir -p "$LOG"
: > "$RES"

BROKER_PID=
FEED_PID=
RSS_PID=
PG_BIN=
PG_DIR=
PG_AS=()
NATS_PID=
FED_PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf 'run_bench: FAILED: %s\n' "$*" >&2
    printf 'run_bench: logs are in %s\n' "$LOG" >&2
    GRIDSYNC_BENCH_KEEP=1
    exit 1
}
put() { printf '%s=%s\n' "$1" "$2" >> "$RES"; }
get() {
    local v
    v=$(grep -m1 "^$1=" "$RES" | cut -d= -f2-) || true
    [ -n "$v" ] || die "no result named $1"
    printf '%s' "$v"
}
# "prefix.key=value" lines of a program's output, stored under a new prefix
put_kv() { sed -n "s/^$2\./$1./p" "$3" >> "$RES"; }
# a number from gridsim's one-line JSON summary
jnum() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1"; }
calc() { awk "BEGIN { printf \"%.6g\", $* }"; }

pg_stop() {
    if [ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ]; then
        "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop > /dev/null 2>&1 || true
    fi
}

cleanup() {
    local rc=$?
    [ -n "$RSS_PID" ] && kill "$RSS_PID" 2> /dev/null
    [ -n "$FEED_PID" ] && kill "$FEED_PID" 2> /dev/null
    local p
    for p in "${FED_PIDS[@]}" $NATS_PID; do
        kill "$p" 2> /dev/null
        wait "$p" 2> /dev/null
    done
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2> /dev/null
        wait "$BROKER_PID" 2> /dev/null
    fi
    pg_stop
    [ -n "$PG_DIR" ] && rm -rf "$PG_DIR"
    if [ "${GRIDSYNC_BENCH_KEEP:-0}" = 1 ]; then
        echo "run_bench: work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- The machine -------------------------------------------------------------------
put machine.nproc "$(nproc)"
put machine.cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
put machine.mem_gb "$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)"
put machine.kernel "$(uname -r)"
put machine.date "$(date -u '+%Y-%m-%d %H:%M UTC')"
put machine.load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
COMMIT=$(git -C "$SRC" rev-parse --short HEAD 2> /dev/null) || COMMIT=uncommitted
# the pages this run writes are its output, not a change to what it measures
if [ "$COMMIT" != uncommitted ] && [ -n "$(git -C "$SRC" status --porcelain -- . \
        ':!docs/benchmarks.md' ':!docs/benchmarks.png' ':!docs/benchmarks-city.md' \
        ':!docs/benchmarks-city.results' 2> /dev/null)" ]; then
    COMMIT="$COMMIT + uncommitted changes"
fi
put machine.commit "$COMMIT"
put run.mode "$([ $QUICK = 1 ] && echo quick || echo full)"
put run.scale "$SCALE"
put run.rounds "$ROUNDS"
put run.devices "$DEVICES"
put run.load_conns "$LOAD_CONNS"
put run.load_window "$LOAD_WINDOW"
put run.pg_sweep "$PG_SWEEP"
put run.subs "$SUBS"
T_START=$(date +%s)

# Every connection costs the broker one descriptor and bench_conns two (its
# TCP connection and its socket's mailbox): take the hard limit, and hold
# no more connections than the broker's share of it allows (the report
# says so, and extrapolates, when that is fewer than asked for).
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
FD_LIMIT=$(ulimit -n)
[ "$FD_LIMIT" = unlimited ] && FD_LIMIT=1048576
CONNS_ASKED=$CONNS
[ $((CONNS + 512)) -le "$FD_LIMIT" ] || CONNS=$((FD_LIMIT - 512))
[ "$CONNS" -ge 100 ] || die "the open-file limit ($FD_LIMIT) is too low for the connection run"
put run.fd_limit "$FD_LIMIT"
put run.conns_asked "$CONNS_ASKED"

# ---- gridsyncd -----------------------------------------------------------------------
# broker_start STORE_DIR [curve]: default full sync; plaintext because the
# bench runs on loopback only (--insecure-dev is refused on any other
# address), or CURVE (the default of a real deployment) with "curve". The
# write-counting shim is preloaded; its counters go to STORE_DIR.iocount.
broker_start() {
    local blog=$LOG/broker-$(basename "$(dirname "$1")")-$(date +%s%N).log
    local mode=--insecure-dev
    [ "${2:-}" = curve ] && mode=
    IOCOUNT=$1.iocount
    rm -f "$IOCOUNT"
    GS_BENCH_IOCOUNT=$IOCOUNT LD_PRELOAD=$IOCOUNT_SO \
        "$GRIDSYNCD" --store="$1" --upload-endpoint='tcp://127.0.0.1:*' \
        --feed-endpoint='tcp://127.0.0.1:*' --metrics-port=0 $mode 2> "$blog" &
    BROKER_PID=$!
    local i
    for i in $(seq 300); do
        grep -q 'event=ready' "$blog" 2> /dev/null && break
        kill -0 "$BROKER_PID" 2> /dev/null || break
        sleep 0.1
    done
    local ready
    ready=$(grep 'event=ready' "$blog") || { cat "$blog" >&2; die "gridsyncd did not start"; }
    UPLOAD=$(sed -n 's/.* upload=\([^ ]*\).*/\1/p' <<< "$ready")
    FEED=$(sed -n 's/.* feed=\([^ ]*\).*/\1/p' <<< "$ready")
    MPORT=$(sed -n 's/.* metrics_port=\([0-9]*\).*/\1/p' <<< "$ready")
}

broker_stop() {
    kill -TERM "$BROKER_PID"
    wait "$BROKER_PID" || die "gridsyncd exited with an error"
    BROKER_PID=
}

# http_get PORT PATH: the body (and headers) of a plain HTTP GET on loopback
http_get() {
    exec 3<> "/dev/tcp/127.0.0.1/$1"
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
    timeout 10 cat <&3 || true
    exec 3<&-
}

# metric NAME [PORT]: a value from the broker's Prometheus endpoint (the
# bench's broker, or the one whose metrics port is PORT)
metric() {
    local body
    body=$(http_get "${2:-$MPORT}" /metrics)
    awk -v n="$1" '$1 == n { print $2; exit }' <<< "$body"
}

# peak RssAnon (kB) of the broker (or of process PID), sampled from /proc
# every 100 ms into FILE
rss_start() {
    local file=$1 pid=${2:-$BROKER_PID}
    echo 0 > "$file"
    # no process started per sample (bash's read, a read -t for the
    # sleep): the sampler shares the cores with the broker it measures
    (
        max=0
        exec {nap}<> <(:)
        while [ -d "/proc/$pid" ]; do
            v=
            while IFS=$' \t' read -r key val _; do
                [ "$key" = RssAnon: ] && v=$val && break
            done 2> /dev/null < "/proc/$pid/status"
            if [[ $v =~ ^[0-9]+$ ]] && [ "$v" -gt "$max" ]; then
                max=$v
                # written aside and renamed: rss_stop may kill this loop at
                # any point, and a kill between the truncation and the write
                # of a plain redirect left the file empty
                echo "$max" > "$file.new" && mv -f "$file.new" "$file"
            fi
            read -r -t 0.1 -u "$nap" _ || true
        done
    ) &
    RSS_PID=$!
}
rss_stop() {
    kill "$RSS_PID" 2> /dev/null || true
    wait "$RSS_PID" 2> /dev/null || true
    RSS_PID=
}

# ingest TAG DISTRICT DIR: gridsim's fleet uploads DISTRICT (noise on, every
# ack checked) while gridfeed follows it with a checkpoint; the broker's
# peak anonymous RSS is sampled meanwhile. Results under TAG.
ingest() {
    local tag=$1 district=$2 dir=$3
    local c0 cpu0 io0
    c0=$(metric gridsync_commit_records_count)
    cpu0=$(proc_cpu "$BROKER_PID")
    io0=$(iocount)
    "$GRIDFEED" --feed "$FEED" --upload "$UPLOAD" --prefix "$district" \
        --output "$dir/feed.jsonl" --checkpoint "$dir/feed.ckpt" 2> "$LOG/$tag-gridfeed.log" &
    FEED_PID=$!
    rss_start "$dir/rss"
    local rc=0
    timeout 900 "$GRIDSIM" --endpoint "$UPLOAD" --district "$district" --scale "$SCALE" \
        --devices "$DEVICES" --run-id bench --json --quiet > "$dir/sim.json" \
        2> "$LOG/$tag-gridsim.log" || rc=$?
    rss_stop
    [ $rc = 0 ] || { cat "$LOG/$tag-gridsim.log" >&2; die "gridsim ($tag) exited with $rc"; }
    # the broker's own cost of the upload phase (the feed is still being
    # written; its share up to here is included)
    local cpu1 io1
    cpu1=$(proc_cpu "$BROKER_PID")
    io1=$(iocount)
    local events lines=0 i
    events=$(jnum "$dir/sim.json" events)
    # the subscriber must end with every event of the district, once
    for i in $(seq 1200); do
        lines=$(wc -l < "$dir/feed.jsonl" 2> /dev/null || echo 0)
        [ "$lines" -ge "$events" ] && break
        kill -0 "$FEED_PID" 2> /dev/null || break
        sleep 0.1
    done
    kill -TERM "$FEED_PID"
    wait "$FEED_PID" || die "gridfeed ($tag) failed; see $LOG/$tag-gridfeed.log"
    FEED_PID=
    lines=$(wc -l < "$dir/feed.jsonl")
    [ "$lines" = "$events" ] || die "gridfeed ($tag) wrote $lines events, expected $events"
    local k
    for k in records_sent persons_sent elapsed_s records_per_s persons_per_s p50 p99 \
             accepted unchanged merged conflict rejected events expectation_errors; do
        put "$tag.$k" "$(jnum "$dir/sim.json" $k)"
    done
    put "$tag.feed_events" "$lines"
    # other work on the machine: the 1-minute load average after the run
    put "$tag.load" "$(cut -d' ' -f1 /proc/loadavg)"
    put "$tag.rss_anon_kb" "$(cat "$dir/rss")"
    local sum count
    sum=$(metric gridsync_commit_records_sum)
    count=$(metric gridsync_commit_records_count)
    put "$tag.commits" "$count"
    put "$tag.batch_mean" "$(calc "$sum / $count")"
    local sent n_commits
    sent=$(get "$tag.records_sent")
    n_commits=$((count - ${c0:-0}))
    [ "$n_commits" -gt 0 ] || n_commits=1
    put "$tag.broker_cpu_us_per_record" "$(calc "($cpu1 - $cpu0) * 1e6 / $sent")"
    io_put "$tag" "$io0" "$io1" "$sent" "$n_commits"
    put "$tag.store_records" "$(metric gridsync_store_records)"
    put "$tag.store_used_bytes" "$(metric gridsync_store_used_bytes)"
    put "$tag.store_file_bytes" "$(metric gridsync_store_file_bytes)"
}

# machine_cpu: busy and total jiffies of all cores since boot (/proc/stat:
# busy is user, nice, system, irq, softirq and steal; total adds idle and
# iowait), as "BUSY TOTAL"
machine_cpu() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat
}

# proc_cpu PID: utime + stime of a process, in seconds
proc_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' "/proc/$1/stat"
}

# iocount: the broker's shim counters (bench_iocount.h): write calls,
# write bytes, fdatasyncs, fsyncs, msyncs, O_DSYNC writes
iocount() {
    od -v -A n -t u8 -j 8 -N 48 "$IOCOUNT" | xargs
}

# io_put TAG "BEFORE" "AFTER" RECORDS COMMITS: bytes per record and flushes per commit
io_put() {
    local -a a=($2) b=($3)
    [ ${#a[@]} = 6 ] && [ ${#b[@]} = 6 ] || die "no write counters from the shim ($IOCOUNT)"
    local bytes=$((b[1] - a[1])) flushes=$((b[2] + b[3] + b[4] + b[5] - a[2] - a[3] - a[4] - a[5]))
    put "$1.write_bytes_per_record" "$(calc "$bytes / $4")"
    put "$1.write_calls_per_commit" "$(calc "($((b[0] - a[0]))) / $5")"
    put "$1.flushes_per_commit" "$(calc "$flushes / $5")"
}

# light TAG DIR [SUBSCRIBERS [STORE]]: bench_load's pre-built uploads of the
# district (LIGHT_DISTRICT), over LOAD_CONNS CURVE connections (one enrolled
# device key each), against a fresh broker in CURVE mode; every answer
# checked by bench_load. With SUBSCRIBERS, bench_subs follows that many
# grids of the district on the live feed meanwhile (one more enrolled key;
# bench_subs lays out 440305 only), each subscription in place before the
# first upload, and must end with every event of its grid, in order. The
# broker's peak RssAnon is sampled during the upload either way. With
# STORE, the broker runs on that store (kept) instead of a fresh one.
light() {
    local tag=$1 dir=$2 subs=${3:-0} store=${4:-$2/lstore} i keys=()
    local kdir=$dir/keys-$tag
    [ "$subs" = 0 ] || [ "$LIGHT_DISTRICT" = 440305 ] ||
        die "light ($tag): subscribers follow district 440305 only, not $LIGHT_DISTRICT"
    # a kept store takes several districts: their devices need names of their own
    local dev=dev-load
    [ "$LIGHT_DISTRICT" = 440305 ] || dev=dev-load-$LIGHT_DISTRICT
    mkdir -p "$kdir"
    broker_start "$store" curve
    for i in $(seq -w 1 "$LOAD_CONNS"); do
        "$GRIDCTL" --store "$store" devices enrol "$dev-$i" --collector col-load \
            --prefix "$LIGHT_DISTRICT" --bundle "$kdir/$i.bundle" > /dev/null 2>> "$LOG/$tag-enrol.log" ||
            { cat "$LOG/$tag-enrol.log" >&2; die "gridctl devices enrol failed"; }
        keys+=("$kdir/$i.bundle")
    done
    local subs_pid="" subs_out=$LOG/$tag.subs.out
    if [ "$subs" -gt 0 ]; then
        "$GRIDCTL" --store "$store" devices enrol dev-feed --collector col-load \
            --prefix "$LIGHT_DISTRICT" --bundle "$kdir/feed.bundle" > /dev/null 2>> "$LOG/$tag-enrol.log" ||
            { cat "$LOG/$tag-enrol.log" >&2; die "gridctl devices enrol failed"; }
        "$BENCH/bench_subs" --feed "$FEED" --key "$kdir/feed.bundle" --subs "$subs" \
            --scale "$SCALE" --timeout-s 120 > "$subs_out" 2> "$LOG/$tag.subs.log" &
        subs_pid=$!
        FEED_PID=$subs_pid
        for i in $(seq 1200); do
            grep -q '^subs.ready=1' "$subs_out" 2> /dev/null && break
            kill -0 "$subs_pid" 2> /dev/null || break
            sleep 0.1
        done
        grep -q '^subs.ready=1' "$subs_out" ||
            { cat "$LOG/$tag.subs.log" >&2; die "bench_subs ($tag): the subscriptions did not start"; }
    fi
    local c0 c1 out=$LOG/$tag.out rc=0
    c0=$(metric gridsync_commit_records_count)
    put "$tag.rss_base_kb" "$(awk '/^RssAnon:/ { print $2 }' "/proc/$BROKER_PID/status")"
    rss_start "$dir/$tag.rss"
    timeout 900 "$BENCH/bench_load" --endpoint "$UPLOAD" --scale "$SCALE" \
        --district "$LIGHT_DISTRICT" --window "$LOAD_WINDOW" --broker-pid "$BROKER_PID" --iocount "$IOCOUNT" \
        --keys "${keys[@]}" > "$out" 2> "$LOG/$tag.log" || rc=$?
    [ $rc = 0 ] || { rss_stop; tail -n 20 "$LOG/$tag.log" >&2; die "bench_load ($tag) exited with $rc"; }
    put_kv "$tag" load "$out"
    if [ -n "$subs_pid" ]; then
        # bench_subs ends by itself once every subscriber has its events
        wait "$subs_pid" || rc=$?
        FEED_PID=
        [ $rc = 0 ] || { rss_stop; cat "$LOG/$tag.subs.log" >&2; die "bench_subs ($tag) exited with $rc"; }
        put_kv "$tag" subs "$subs_out"
    fi
    rss_stop
    put "$tag.rss_anon_kb" "$(cat "$dir/$tag.rss")"
    c1=$(metric gridsync_commit_records_count)
    local commits=$((c1 - ${c0:-0}))
    [ "$commits" -gt 0 ] || die "bench_load ($tag): the broker counted no commit"
    put "$tag.commits" "$commits"
    put "$tag.batch_mean" "$(calc "$(get "$tag.records") / $commits")"
    put "$tag.flushes_per_commit" "$(calc "$(get "$tag.flushes") / $commits")"
    put "$tag.write_calls_per_commit" "$(calc "$(get "$tag.write_calls") / $commits")"
    put "$tag.load" "$(cut -d' ' -f1 /proc/loadavg)"
    broker_stop
    rm -rf "$kdir" "$store.iocount"
    [ -n "${4:-}" ] || rm -rf "$store"
}

# ---- PostgreSQL ----------------------------------------------------------------------
pg_start() {
    local initdb
    initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2> /dev/null | sort -V | tail -n1) ||
        true
    [ -n "$initdb" ] || die "PostgreSQL server binaries not found (apt-get install postgresql)"
    PG_BIN=$(dirname "$initdb")
    PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/gridsync-bench-pg.XXXXXX")
    if [ "$(id -u)" = 0 ]; then
        # initdb refuses root: the server runs as the postgres user
        id postgres > /dev/null 2>&1 || die "no postgres user to run PostgreSQL as"
        chown postgres "$PG_DIR"
        PG_AS=(runuser -u postgres --)
    fi
    "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 \
        --no-locale > "$LOG/pg-initdb.log" 2>&1 || die "initdb failed"
    # the usual tuning for a write-heavy machine: durable commits (fsync,
    # synchronous_commit, full_page_writes all on), no checkpoint during a
    # run, WAL buffers and compression of full-page images (lz4) against
    # the WAL volume, work_mem for the peer's sorts of a whole batch
    local port try
    for try in $(seq 20); do
        port=$((20000 + (RANDOM % 20000)))
        if "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
            -o "-k $PG_DIR -p $port -c listen_addresses=127.0.0.1 -c shared_buffers=512MB \
                -c max_wal_size=8GB -c checkpoint_timeout=30min -c synchronous_commit=on \
                -c fsync=on -c full_page_writes=on -c wal_buffers=64MB \
                -c wal_compression=lz4 -c work_mem=64MB" start > /dev/null 2>&1; then
            PG_CONN="host=127.0.0.1 port=$port user=postgres dbname=postgres"
            return 0
        fi
    done
    cp "$PG_DIR/server.log" "$LOG/pg-server.log" 2> /dev/null || true
    die "PostgreSQL did not start"
}

# pg_peer TAG CONNECTIONS TXN_RECORDS [--no-noise]: the peer replays
# gridsim's uploads (or, with --no-noise, bench_load's)
pg_peer() {
    local out=$LOG/$1.out rc=0 run_id=bench
    [ "${4:-}" = --no-noise ] && run_id=load
    timeout 1200 "$BENCH/bench_pg" --conninfo "$PG_CONN" --connections "$2" \
        --txn-records "$3" --scale "$SCALE" --run-id "$run_id" ${4:-} > "$out" 2> "$LOG/$1.log" ||
        rc=$?
    [ $rc = 0 ] || { tail -n 20 "$LOG/$1.log" >&2; die "bench_pg ($1) exited with $rc"; }
    put_kv "$1" pg "$out"
}

# same_answers GS_TAG PG_TAG: the peer is fair only if it gave the same answers
same_answers() {
    local k a b
    for k in accepted unchanged merged conflict rejected; do
        a=$(get "$1.$k")
        b=$(get "$2.$k")
        [ "$a" = "$b" ] || die "PostgreSQL peer ($2) is not comparable: $k $b, gridsync $a"
    done
}

# ---- City scale (--city SCALE only) -------------------------------------------------------
# One store pre-filled with 7,000,000 x SCALE households of other districts
# (the pre-fill's copies, 4403xx from 440310), a first ingest into it of
# 440304 (reported apart), then CITY_ROUNDS rounds of the
# light load generator's ingest of a fresh district (440305, 440306, ...)
# into an empty store and into that store, back to back, in alternating
# order (empty first in odd rounds), so that the ratio of each round is
# taken within minutes on the same machine load; then device pull-sync from
# the city store and gridctl stats over the whole city, timed.
# cached_pct FILE: the share of FILE in the page cache, percent (fincore)
cached_pct() {
    awk -v c="$(fincore --bytes --noheadings --output RES "$1")" -v f="$(stat -c %s "$1")" \
        'BEGIN { printf "%.1f", (f > 0 ? 100 * c / f : 0) }'
}
if [ -n "$CITY" ]; then
    command -v fincore > /dev/null ||
        { echo "run_bench: fincore is not installed (util-linux-extra; make bench-deps)" >&2; exit 2; }
    CITY_HH=$(awk -v s="$CITY" 'BEGIN { printf "%d", 7000000 * s + 0.5 }')
    # the measured district: whole at SCALE 0.1 and above, a share below
    SCALE=$(awk -v s="$CITY" 'BEGIN { print (s >= 0.1 ? 1 : (s * 10 > 0.02 ? s * 10 : 0.02)) }')
    LOAD_CONNS=$(awk -v s="$CITY" 'BEGIN { print (s >= 0.1 ? 100 : 16) }')
    PULL_SAMPLES=$(awk -v s="$CITY" 'BEGIN { print (s >= 0.1 ? 300 : 20) }')
    CITY_ROUNDS=3
    put city.scale "$CITY"
    put city.households_asked "$CITY_HH"
    put city.district_share "$SCALE"
    put city.load_conns "$LOAD_CONNS"
    put city.rounds "$CITY_ROUNDS"
    dir=$WORK/city
    mkdir -p "$dir"
    # phase: the pre-fill, its peak anonymous memory sampled as the broker's is
    t=$(date +%s)
    log "city: pre-filling $CITY_HH households (bench_fill, no_sync, benchmark only)"
    out=$LOG/city.fill.out
    timeout 14400 "$BENCH/bench_fill" --store "$dir/cstore" --from 0 --households "$CITY_HH" \
        > "$out" 2> "$LOG/city.fill.log" &
    fill_pid=$!
    for i in $(seq 100); do
        fill_child=$(pgrep -P "$fill_pid" -x bench_fill) && break
        kill -0 "$fill_pid" 2> /dev/null || break
        sleep 0.1
    done
    [ -n "${fill_child:-}" ] && rss_start "$dir/fill.rss" "$fill_child"
    rc=0
    wait "$fill_pid" || rc=$?
    [ -n "${fill_child:-}" ] && rss_stop
    [ $rc = 0 ] || { tail -n 5 "$LOG/city.fill.log" >&2; die "bench_fill (city) exited with $rc"; }
    put_kv city.fill fill "$out"
    put city.fill.rss_anon_kb "$(cat "$dir/fill.rss" 2> /dev/null || echo 0)"
    put city.fill.load "$(cut -d' ' -f1 /proc/loadavg)"
    put city.time.fill_s "$(($(date +%s) - t))"
    put city.fill.cached_pct "$(cached_pct "$dir/cstore/data.mdb")"
    # phase: the ingest rounds, each on a district neither store holds yet,
    # after a first ingest into the city store that is reported apart: the
    # first commits after the pre-fill's large no_sync transactions reuse the
    # pages those freed, scattered over the file, on a cold broker, and would
    # weigh on whichever round came first
    t=$(date +%s)
    LIGHT_DISTRICT=440304
    log "city: first ingest into the city store after the pre-fill, of $LIGHT_DISTRICT" \
        "(reported apart, not in the ratio)"
    light city.first "$dir" 0 "$dir/cstore"
    put city.first.district "$LIGHT_DISTRICT"
    for r in $(seq "$CITY_ROUNDS"); do
        LIGHT_DISTRICT=$(printf '4403%02d' $((4 + r)))
        put "city.r$r.district" "$LIGHT_DISTRICT"
        order="empty full"
        [ $((r % 2)) = 1 ] || order="full empty"
        for which in $order; do
            log "city round $r of $CITY_ROUNDS: ingest of $LIGHT_DISTRICT into the $which store" \
                "(bench_load, $LOAD_CONNS CURVE connections, share $SCALE)"
            if [ "$which" = empty ]; then
                light "city.r$r.empty" "$dir"
            else
                light "city.r$r.full" "$dir" 0 "$dir/cstore"
            fi
        done
        put "city.r$r.ratio" \
            "$(calc "$(get "city.r$r.full.records_per_s") / $(get "city.r$r.empty.records_per_s")")"
        put "city.r$r.cpu_ratio" "$(calc "$(get "city.r$r.full.broker_cpu_us_per_record") / \
            $(get "city.r$r.empty.broker_cpu_us_per_record")")"
    done
    LIGHT_DISTRICT=440305
    put city.time.ingest_s "$(($(date +%s) - t))"
    # phase: pull-sync, in PULL_ROUNDS rounds, each on a broker started for
    # it and on grids of its own (bench_pull --seed): each grid's first
    # download maps its pages into the broker (and reads from the device
    # those not in the page cache); the same grids are then downloaded
    # again (bench_pull --again), without either. A latency quantile of one
    # round moves with the machine's other work, so the report takes each
    # figure's median over the rounds and gives the p50s' and p99s' spread.
    # The last round's broker stays up for the metrics and stats.
    t=$(date +%s)
    PULL_ROUNDS=3
    put city.pull.rounds "$PULL_ROUNDS"
    put city.pull.cached_pct "$(cached_pct "$dir/cstore/data.mdb")"
    # what a page fault on the store reads ahead: the device's read-ahead
    put city.pull.read_ahead_kb "$(lsblk -ndo RA "$(findmnt -no SOURCE -T "$dir")" 2> /dev/null |
        tr -d ' ' | grep -x '[0-9][0-9]*' || echo unknown)"
    rss=0
    for r in $(seq "$PULL_ROUNDS"); do
        [ "$r" = 1 ] || broker_stop
        broker_start "$dir/cstore"
        log "city: pull-sync round $r of $PULL_ROUNDS: $PULL_SAMPLES grids, twice"
        out=$LOG/city.pull.r$r.out
        rss_start "$dir/pull.rss"
        rc=0
        timeout 1800 "$BENCH/bench_pull" --upload "$UPLOAD" --filled "$(get city.fill.next_index)" \
            --samples "$PULL_SAMPLES" --broker-pid "$BROKER_PID" --again 1 --seed $((r - 1)) \
            > "$out" 2> "$LOG/city.pull.r$r.log" ||
            rc=$?
        rss_stop
        [ $rc = 0 ] || { cat "$LOG/city.pull.r$r.log" >&2; die "bench_pull (city) exited with $rc"; }
        put_kv "city.pull.r$r" pull "$out"
        v=$(cat "$dir/pull.rss")
        if [ "$v" -gt "$rss" ]; then rss=$v; fi
    done
    # each numeric figure: its median over the rounds; the p50s' and
    # p99s' lowest and highest as well
    for key in $(sed -n 's/^city\.pull\.r1\.\([a-z0-9_.]*\)=[0-9.]*$/\1/p' "$RES"); do
        vals=$(for r in $(seq "$PULL_ROUNDS"); do get "city.pull.r$r.$key"; echo; done | sort -g)
        put "city.pull.$key" "$(awk '{ v[NR] = $1 } END {
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }' <<< "$vals")"
        case $key in
            p50_ms|p99_ms|again.p50_ms|again.p99_ms)
                put "city.pull.$key.low" "$(head -n1 <<< "$vals")"
                put "city.pull.$key.high" "$(tail -n1 <<< "$vals")" ;;
        esac
    done
    put city.pull.decode "$(get city.pull.r1.decode)"
    put city.pull.rss_anon_kb "$rss"
    put city.pull.load "$(cut -d' ' -f1 /proc/loadavg)"
    put city.store_records "$(metric gridsync_store_records)"
    put city.store_file_bytes "$(metric gridsync_store_file_bytes)"
    put city.time.pull_s "$(($(date +%s) - t))"
    # phase: stats over the city (every pre-filled cell) and over one
    # district's copy, through the broker's admin socket as an operator
    # would; the cells each covers from the same command's --json
    t=$(date +%s)
    for p in 4403 440310; do
        t0=$(date +%s%N)
        "$GRIDCTL" --admin "ipc://$dir/cstore/admin.sock" stats "$p" > "$LOG/city.stats.$p.out" \
            2> "$LOG/city.stats.$p.log" || die "gridctl stats $p failed"
        put "city.stats.$p.ms" "$(calc "($(date +%s%N) - $t0) / 1e6")"
        "$GRIDCTL" --admin "ipc://$dir/cstore/admin.sock" stats "$p" --json \
            > "$LOG/city.stats.$p.json" 2>> "$LOG/city.stats.$p.log" ||
            die "gridctl stats $p --json failed"
        put "city.stats.$p.cells" "$(python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["totals"]["grids"])' "$LOG/city.stats.$p.json")"
    done
    put city.time.stats_s "$(($(date +%s) - t))"
    broker_stop
    put city.work_bytes "$(du -sb "$WORK" | cut -f1)"
    put run.seconds "$(($(date +%s) - T_START))"
    put machine.load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
    log "writing $OUT/benchmarks-city.md and $OUT/benchmarks-city.results"
    "$SRC/tools/bench/bench_report.sh" --city "$RES" "$OUT" "$WORK" ||
        die "the report could not be written"
    [ -s "$OUT/benchmarks-city.md" ] && [ -s "$OUT/benchmarks-city.results" ] ||
        die "report file missing"
    log "done in $(get run.seconds) s"
    exit 0
fi

# ---- The load generator's own cost ----------------------------------------------------
log "generator: building every record of the seed district once (bench_gen)"
out=$LOG/gen.out
timeout 300 "$BENCH/bench_gen" > "$out" 2> "$LOG/gen.log" || die "bench_gen failed"
put_kv gen gen "$out"

# ---- 1-3: rounds, side by side ---------------------------------------------------------
pg_start
put pg.server_version "$("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) //')"
for r in $(seq "$ROUNDS"); do
    dir=$WORK/r$r
    mkdir -p "$dir"
    log "round $r of $ROUNDS: the device's ceilings (bench_disk)"
    out=$LOG/r$r.disk.out
    timeout 300 "$BENCH/bench_disk" --dir "$dir" --syncs "$DISK_SYNCS" --seq-mb "$DISK_MB" \
        > "$out" 2> "$LOG/r$r.disk.log" || die "bench_disk failed"
    put_kv "r$r.disk" disk "$out"

    # the same ingest with and without light subscribers, back to back,
    # in alternating order over the rounds (drift on a shared machine)
    if [ $((r % 2)) = 1 ]; then
        log "round $r: light load generator (bench_load, $LOAD_CONNS CURVE connections)"
        light "r$r.load" "$dir"
        log "round $r: the same with $SUBS light subscribers (bench_subs)"
        light "r$r.subs" "$dir" "$SUBS"
    else
        log "round $r: light load generator with $SUBS light subscribers (bench_subs)"
        light "r$r.subs" "$dir" "$SUBS"
        log "round $r: the same without subscribers (bench_load, $LOAD_CONNS CURVE connections)"
        light "r$r.load" "$dir"
    fi
    put "r$r.subs_ratio" "$(calc "$(get "r$r.subs.records_per_s") / $(get "r$r.load.records_per_s")")"
    # the answers bench_load checked, in the peer's terms
    put "r$r.load.accepted" "$(get "r$r.load.records")"
    for k in unchanged merged conflict rejected; do put "r$r.load.$k" 0; done
    lbatch=$(awk -v b="$(get "r$r.load.batch_mean")" 'BEGIN { printf "%d", b + 0.5 }')
    [ "$lbatch" -ge 1 ] || lbatch=1
    put "r$r.lbatch" "$lbatch"

    log "round $r: gridsync end to end (gridsim, $DEVICES devices, gridfeed attached)"
    broker_start "$dir/store"
    ingest "r$r.gs" 440305 "$dir"
    broker_stop
    batch=$(awk -v b="$(get "r$r.gs.batch_mean")" 'BEGIN { printf "%d", b + 0.5 }')
    [ "$batch" -ge 1 ] || batch=1
    put "r$r.batch" "$batch"

    log "round $r: PostgreSQL peer, bench_load's uploads, batches of $lbatch and $PG_SWEEP records"
    for c in 2 4; do
        pg_peer "r$r.pgl$c" "$c" "$lbatch" --no-noise
        same_answers "r$r.load" "r$r.pgl$c"
    done
    for b in $PG_SWEEP; do
        pg_peer "r$r.pgls$b" 4 "$b" --no-noise
        same_answers "r$r.load" "r$r.pgls$b"
    done
    log "round $r: PostgreSQL peer, gridsim's uploads, batches of $batch and $PG_SWEEP records"
    for c in 1 2 4; do
        pg_peer "r$r.pg$c" "$c" "$batch"
        same_answers "r$r.gs" "r$r.pg$c"
    done
    for b in $PG_SWEEP; do
        pg_peer "r$r.pgs$b" 4 "$b"
        same_answers "r$r.gs" "r$r.pgs$b"
    done

    log "round $r: store alone and bare LMDB loop (transactions of $batch records)"
    out=$LOG/r$r.store.out
    timeout 900 "$BENCH/bench_store" --batch "$batch" --prefill 0 --limit "$STORE_LIMIT" \
        --dir "$WORK" > "$out" 2> "$LOG/r$r.store.log" || die "bench_store failed"
    line=$(grep '^empty store' "$out") || die "bench_store printed no result"
    put "r$r.store.store_per_s" "$(awk '{ print $3 }' <<< "$line")"
    put "r$r.store.bare_all_per_s" "$(awk '{ print $4 }' <<< "$line")"
    put "r$r.store.bare_records_per_s" "$(awk '{ print $6 }' <<< "$line")"
    line=$(grep '^  empty store: prepare' "$out") || die "bench_store printed no prepare line"
    put "r$r.store.prepare_us" "$(awk '{ print $4 }' <<< "$line")"
    put "r$r.store.apply_us" "$(sed -n 's/.*apply \([0-9.]*\) us.*/\1/p' <<< "$line")"
    put "r$r.store.one_thread_per_s" "$(sed -n 's/.*one thread \([0-9]*\) records.*/\1/p' <<< "$line")"

    log "round $r: bare ZeroMQ loop (the same bytes)"
    out=$LOG/r$r.zmq.out
    timeout 300 "$BENCH/bench_zmq" --scale "$SCALE" --dealers "$DEVICES" --run-id bench \
        > "$out" 2> "$LOG/r$r.zmq.log" || die "bench_zmq failed"
    put_kv "r$r.zmq" zmq "$out"
    [ "$r" = 1 ] || rm -rf "$dir/store"
done

# ---- Idle-ish device connections ------------------------------------------------------------
# conns_hold TAG N ROUNDS PING_S: a fresh broker (CURVE), CONN_KEYS enrolled
# keys, N connections held open by bench_conns processes (as many as the
# descriptor limit needs), each having handshaken and pinged ROUNDS + 1
# times; the broker's anonymous memory before the first connection and
# once every connection is held, idle.
conns_hold() {
    local tag=$1 n=$2 rounds=$3 ping_s=$4 dir=$WORK/$1 i keys=()
    mkdir -p "$dir/keys"
    broker_start "$dir/store" curve
    for i in $(seq -w 1 "$CONN_KEYS"); do
        "$GRIDCTL" --store "$dir/store" devices enrol "dev-idle-$i" --collector col-idle \
            --prefix 440305 --bundle "$dir/keys/$i.bundle" > /dev/null 2>> "$LOG/$tag-enrol.log" ||
            { cat "$LOG/$tag-enrol.log" >&2; die "gridctl devices enrol failed"; }
        keys+=("$dir/keys/$i.bundle")
    done
    local rss0 per left=$n c j=0 pids=()
    rss0=$(awk '/^RssAnon:/ { print $2 }' "/proc/$BROKER_PID/status")
    # two descriptors per connection in bench_conns, and some to spare
    per=$(((FD_LIMIT - 256) / 2))
    [ "$per" -le 5000 ] || per=5000
    while [ "$left" -gt 0 ]; do
        c=$((left < per ? left : per))
        "$BENCH/bench_conns" --endpoint "$UPLOAD" --conns "$c" --rounds "$rounds" \
            --ping-s "$ping_s" --keys "${keys[@]}" > "$dir/c$j.out" 2> "$LOG/$tag.c$j.log" &
        pids+=($!)
        FED_PIDS+=($!)
        left=$((left - c))
        j=$((j + 1))
    done
    local k ok
    for k in $(seq 0 $((j - 1))); do
        ok=0
        for i in $(seq 6000); do
            grep -q '^conns.held=1' "$dir/c$k.out" 2> /dev/null && { ok=1; break; }
            kill -0 "${pids[$k]}" 2> /dev/null || break
            sleep 0.1
        done
        [ $ok = 1 ] || { cat "$LOG/$tag.c$k.log" >&2; die "bench_conns ($tag, process $k) did not hold its connections"; }
    done
    local rss1 open
    rss1=$(awk '/^RssAnon:/ { print $2 }' "/proc/$BROKER_PID/status")
    open=$(metric gridsync_connections_open)
    [ "${open:-0}" -ge "$n" ] || die "the broker counts ${open:-0} connections open, $n were held"
    put "$tag.connections" "$n"
    put "$tag.pings_per_connection" "$((rounds + 1))"
    put "$tag.processes" "$j"
    put "$tag.keys" "$CONN_KEYS"
    put "$tag.rss_before_kb" "$rss0"
    put "$tag.rss_held_kb" "$rss1"
    put "$tag.bytes_per_connection" "$(calc "($rss1 - $rss0) * 1024 / $n")"
    for k in "${pids[@]}"; do kill -TERM "$k"; done
    for k in $(seq 0 $((j - 1))); do
        wait "${pids[$k]}" || die "bench_conns ($tag, process $k) failed; see $LOG/$tag.c$k.log"
    done
    local -a keep=()
    for k in "${FED_PIDS[@]}"; do
        case " ${pids[*]} " in *" $k "*) ;; *) keep+=("$k") ;; esac
    done
    FED_PIDS=("${keep[@]}")
    put "$tag.connect_seconds" "$(sed -n 's/^conns.connect_seconds=//p' "$dir/c0.out")"
    broker_stop
    rm -rf "$dir"
}

log "connections: $CONNS idle-ish CURVE connections held open (bench_conns)"
conns_hold conns "$CONNS" 1 "$CONN_PING_S"
if [ "$CONN_BUSY" -gt 0 ]; then
    log "connections: $CONN_BUSY connections, each pinging $((CONN_BUSY_ROUNDS + 1)) times"
    conns_hold connsb "$CONN_BUSY" "$CONN_BUSY_ROUNDS" 0
fi
put run.conn_busy "$CONN_BUSY"

# ---- 4. feed latency on the round-1 store ------------------------------------------------
STORE=$WORK/r1/store
broker_start "$STORE"
# several short runs, each on a district of its own: one run's p99 rests on a few hundred
# samples and on whatever else the machine did in those seconds; the report shows every run
# and takes the run with the median p99
feed_p99s=()
FEED_DISTRICTS=(440303 440306 440309)   # none of them in the round-1 store
for f in $(seq "$FEED_RUNS"); do
    log "feed: commit -> subscriber latency at $FEED_RATE records/s offered for ${FEED_SECONDS}s (run $f of $FEED_RUNS)"
    out=$LOG/feed$f.out
    timeout 300 "$BENCH/bench_feed" latency --upload "$UPLOAD" --feed "$FEED" \
        --district "${FEED_DISTRICTS[$((f - 1))]}" --rate "$FEED_RATE" --seconds "$FEED_SECONDS" \
        --devices "$DEVICES" > "$out" 2> "$LOG/feed$f.log" ||
        { cat "$LOG/feed$f.log" >&2; die "bench_feed latency failed"; }
    put_kv "feed$f" feed "$out"
    feed_p99s+=("$(sed -n 's/^feed.commit_sub_p99_ms=//p' "$out") $f")
done
put feed.runs "$FEED_RUNS"
put feed.p99_all "$(printf '%s\n' "${feed_p99s[@]}" | sort -g | awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $1 }')"
median_run=$(printf '%s\n' "${feed_p99s[@]}" | sort -g | awk -v n="$FEED_RUNS" 'NR == int((n + 1) / 2) { print $2 }')
put_kv feed feed "$LOG/feed$median_run.out"
STORED=$(metric gridsync_store_records)
broker_stop

# ---- 5b. Federation: district -> NATS JetStream -> city --------------------------------------
# nats_start DIR: a private nats-server, JetStream on, its store in DIR/js,
# on loopback; the same ports again when NATS_PORT is set (a restart)
nats_start() {
    local dir=$1 try nlog
    mkdir -p "$dir"
    for try in $(seq 20); do
        if [ -z "${NATS_FIXED:-}" ]; then
            NATS_PORT=$((20000 + (RANDOM % 20000)))
            NATS_MPORT=$((NATS_PORT + 1))
        fi
        nlog=$LOG/nats-$(date +%s%N).log
        "$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MPORT" -js -sd "$dir/js" \
            -l "$nlog" 2> /dev/null &
        NATS_PID=$!
        local i
        for i in $(seq 100); do
            grep -q 'Server is ready' "$nlog" 2> /dev/null && break
            kill -0 "$NATS_PID" 2> /dev/null || break
            sleep 0.1
        done
        if grep -q 'Server is ready' "$nlog" 2> /dev/null; then
            NATS_URL=nats://127.0.0.1:$NATS_PORT
            return 0
        fi
        # it may have exited already (a port taken): under set -e a failed
        # kill or wait would end the whole bench without a word
        kill "$NATS_PID" 2> /dev/null || true
        wait "$NATS_PID" 2> /dev/null || true
        NATS_PID=
        [ -z "${NATS_FIXED:-}" ] || break
    done
    cat "$nlog" >&2
    die "nats-server did not start"
}
nats_stop() {
    kill -TERM "$NATS_PID"
    wait "$NATS_PID" || true
    NATS_PID=
}

# fed_broker STORE ARGS...: a gridsyncd with NATS settings (plaintext on
# loopback, full sync, no write counter); sets FPID, FUPLOAD, FFEED, FMPORT
fed_broker() {
    local store=$1 blog
    shift
    blog=$LOG/fed-$(basename "$store")-$(date +%s%N).log
    "$GRIDSYNCD" --store="$store" --upload-endpoint='tcp://127.0.0.1:*' \
        --feed-endpoint='tcp://127.0.0.1:*' --metrics-port=0 --insecure-dev \
        --jetstream-url="$NATS_URL" "$@" 2> "$blog" &
    FPID=$!
    FED_PIDS+=("$FPID")
    local i ready
    for i in $(seq 300); do
        grep -q 'event=ready' "$blog" 2> /dev/null && break
        kill -0 "$FPID" 2> /dev/null || break
        sleep 0.1
    done
    ready=$(grep 'event=ready' "$blog") || { cat "$blog" >&2; die "gridsyncd ($store) did not start"; }
    FUPLOAD=$(sed -n 's/.* upload=\([^ ]*\).*/\1/p' <<< "$ready")
    FFEED=$(sed -n 's/.* feed=\([^ ]*\).*/\1/p' <<< "$ready")
    FMPORT=$(sed -n 's/.* metrics_port=\([0-9]*\).*/\1/p' <<< "$ready")
}
fed_stop() {   # fed_stop PID
    kill -TERM "$1"
    wait "$1" || die "gridsyncd (pid $1) exited with an error"
    local -a keep=()
    local p
    for p in "${FED_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    FED_PIDS=("${keep[@]}")
}

# fed_wait PORT HEAD SECONDS [METRIC]: poll a city's head seq (or METRIC, e.g.
# a district's gridsync_bridge_last_seq) from its metrics port every 50 ms
# until it reaches HEAD; prints the seconds waited. Fails when the port has
# not answered for 5 s (the broker exited) or after SECONDS. It starts no
# process while it waits (bash's /dev/tcp, read and EPOCHREALTIME): the
# runs it times are CPU-bound on a small machine, and a poll that started
# timeout, cat, awk, date and sleep 50 times a second competed with them
# for the cores.
fed_wait() {
    local port=$1 want=$2 limit=$3 name=${4:-gridsync_store_head_seq} h line silent=0
    local t0=${EPOCHREALTIME/./} now nap
    [ -n "${FED_NAP_FD:-}" ] || exec {FED_NAP_FD}<> <(:)   # read -t on it: a sleep
    while :; do
        h=
        if exec 3<> "/dev/tcp/127.0.0.1/$port"; then
            printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
            while IFS= read -r -t 10 line <&3; do
                [[ $line == "$name "* ]] && h=${line#"$name "} && h=${h%$'\r'}
            done
            exec 3<&-
        fi 2> /dev/null
        [[ $h =~ ^[0-9]+$ ]] && [ "$h" -ge "$want" ] && break
        if [ -z "$h" ]; then
            silent=$((silent + 1))
            [ $silent -lt 100 ] || die "the broker on metrics port $port stopped answering (see its log in $LOG)"
        else
            silent=0
        fi
        now=${EPOCHREALTIME/./}
        [ $((now - t0)) -lt $((limit * 1000000)) ] || die "$name stopped at ${h:-?} of $want (port $port)"
        read -r -t 0.05 -u "$FED_NAP_FD" nap || true
    done
    now=${EPOCHREALTIME/./}
    calc "($now - $t0) / 1e6"
}

# hist_p PORT NAME Q: the upper bound (in ms) of the bucket holding the
# Q-quantile of the histogram NAME (seconds) on a metrics port, "inf" past
# the last bound, "" without observations; hist_mean PORT NAME: its mean in ms
hist_p() {
    http_get "$1" /metrics | awk -v n="$2" -v q="$3" '
        index($1, n "_bucket{le=\"") == 1 { split($1, a, "\""); le[++k] = a[2]; c[k] = $2 }
        $1 == n "_count" { total = $2 }
        END { if (total > 0) for (i = 1; i <= k; i++) if (c[i] >= q * total) {
                  print (le[i] == "+Inf" ? "inf" : le[i] * 1000); exit } }'
}
hist_mean() {
    http_get "$1" /metrics | awk -v n="$2" '$1 == n "_sum" { s = $2 } $1 == n "_count" { c = $2 }
        END { if (c > 0) printf "%.6g\n", s / c * 1000 }'
}

for r in $(seq "$FED_ROUNDS"); do
    fdir=$WORK/fed$r
    mkdir -p "$fdir"
    unset NATS_FIXED
    nats_start "$fdir/nats"
    # the district covers the city 4403: the lag run's district 440303 and
    # the pre-fill's copies (4403xx) are all under it
    fed_broker "$fdir/district" --jetstream-area=4403
    D_PID=$FPID; D_UPLOAD=$FUPLOAD; D_MPORT=$FMPORT
    fed_broker "$fdir/city" --replica-of=4403
    C_PID=$FPID; C_UPLOAD=$FUPLOAD; C_FEED=$FFEED; C_MPORT=$FMPORT

    log "federation round $r of $FED_ROUNDS: district -> city lag at $FEED_RATE records/s offered for ${FED_SECONDS}s"
    out=$LOG/fed$r.lag.out
    timeout 300 "$BENCH/bench_feed" latency --upload "$D_UPLOAD" --feed "$C_FEED" \
        --city "$C_UPLOAD" --district 440303 --rate "$FEED_RATE" --seconds "$FED_SECONDS" \
        --devices "$DEVICES" > "$out" 2> "$LOG/fed$r.lag.log" ||
        { cat "$LOG/fed$r.lag.log" >&2; die "bench_feed latency (district -> city) failed"; }
    put_kv "fed$r.lag" feed "$out"
    # the bridge's own part of it: the district's commit (the writer's note)
    # to the stream's ack, from its histogram
    v=$(hist_mean "$D_MPORT" gridsync_bridge_ack_seconds)
    [ -n "$v" ] || die "the district's gridsync_bridge_ack_seconds has no observations after the lag run"
    put "fed$r.bridge.ack_mean_ms" "$v"
    put "fed$r.bridge.ack_count" "$(http_get "$D_MPORT" /metrics | awk '$1 == "gridsync_bridge_ack_seconds_count" { print $2 }')"
    put "fed$r.bridge.ack_p50_le_ms" "$(hist_p "$D_MPORT" gridsync_bridge_ack_seconds 0.5)"
    put "fed$r.bridge.ack_p99_le_ms" "$(hist_p "$D_MPORT" gridsync_bridge_ack_seconds 0.99)"

    log "federation round $r: NATS down while the district takes $FED_OUTAGE events, then up"
    nats_stop
    # the district takes the events through its store's write path with the
    # broker stopped (bench_fill, to keep the run short): for the bridge
    # this is the same as uploads while NATS is down, events waiting in the
    # district's change log
    fed_stop "$D_PID"
    out=$LOG/fed$r.fill.out
    timeout 1800 "$BENCH/bench_fill" --store "$fdir/district" --from 0 --count "$FED_OUTAGE" \
        --log-bytes 1 > "$out" 2> "$LOG/fed$r.fill.log" || die "bench_fill (federation) failed"
    put_kv "fed$r.fill" fill "$out"
    fed_broker "$fdir/district" --jetstream-area=4403
    D_PID=$FPID; D_MPORT=$FMPORT
    head=$(metric gridsync_store_head_seq "$D_MPORT")
    put "fed$r.head" "$head"
    NATS_FIXED=1
    nats_start "$fdir/nats"
    secs=$(fed_wait "$C_MPORT" "$head" 3600)
    put "fed$r.outage.events" "$FED_OUTAGE"
    put "fed$r.outage.seconds" "$secs"
    put "fed$r.outage.events_per_s" "$(calc "$FED_OUTAGE / $secs")"

    # what JetStream holds per message, against the packed event
    jsz=$(http_get "$NATS_MPORT" '/jsz?accounts=true&streams=true' | tr -d ' \n\r')
    smsgs=$(grep -o '"name":"GRIDSYNC_4403".*' <<< "$jsz" | grep -o '"messages":[0-9]*' | head -n1 | cut -d: -f2) || true
    sbytes=$(grep -o '"name":"GRIDSYNC_4403".*' <<< "$jsz" | grep -o '"bytes":[0-9]*' | head -n1 | cut -d: -f2) || true
    [ -n "$smsgs" ] && [ -n "$sbytes" ] || die "no stream GRIDSYNC_4403 in nats-server's /jsz"
    [ "$smsgs" = "$head" ] || die "stream GRIDSYNC_4403 holds $smsgs messages, the district $head events"
    [ "$(get "fed$r.fill.log_events")" = "$head" ] || die "the district's log walk found $(get "fed$r.fill.log_events") events, head $head"
    put "fed$r.stream.messages" "$smsgs"
    put "fed$r.stream.bytes" "$sbytes"
    put "fed$r.stream.bytes_per_event" "$(calc "$sbytes / $smsgs")"
    put "fed$r.stream.packed_per_event" "$(calc "$(get "fed$r.fill.log_bytes") / $head")"
    fed_stop "$C_PID"
    fed_stop "$D_PID"

    log "federation round $r: a fresh city replica applies the stream's $head events"
    ncpu0=$(proc_cpu "$NATS_PID")
    read -r mbusy0 mtotal0 <<< "$(machine_cpu)"
    fed_broker "$fdir/city2" --replica-of=4403 --replica-name=apply
    secs=$(fed_wait "$FMPORT" "$head" 3600)
    read -r mbusy1 mtotal1 <<< "$(machine_cpu)"
    cpu=$(proc_cpu "$FPID")
    ncpu=$(calc "$(proc_cpu "$NATS_PID") - $ncpu0")
    put "fed$r.apply.events" "$head"
    put "fed$r.apply.seconds" "$secs"
    put "fed$r.apply.events_per_s" "$(calc "$head / $secs")"
    put "fed$r.apply.cpu_us_per_event" "$(calc "$cpu * 1e6 / $head")"
    put "fed$r.apply.nats_cpu_us_per_event" "$(calc "$ncpu * 1e6 / $head")"
    # how busy the machine's cores were meanwhile (the two processes, the
    # kernel's work for them: writeback, loopback TCP; and anything else
    # running), and the rate every core busy would allow at that CPU per
    # event: the work's ceiling on this machine
    busy=$(calc "($mbusy1 - $mbusy0) / ($mtotal1 - $mtotal0)")
    put "fed$r.apply.machine_busy" "$busy"
    put "fed$r.apply.ceiling_per_s" "$(calc "$head / $secs / $busy")"
    fed_stop "$FPID"
    nats_stop

    # the bridge alone: the district's whole log into a fresh nats-server,
    # no replica reading (the catch-up above shares the machine with the
    # replica's apply); its rate and the CPU of the district broker and of
    # nats-server per event, from the district's start (the bridge begins
    # before the ready line), its start-up included
    log "federation round $r: the district's bridge publishes its $head events into a fresh nats-server"
    unset NATS_FIXED
    nats_start "$fdir/nats2"
    ncpu0=$(proc_cpu "$NATS_PID")
    t0=$(date +%s.%N)
    fed_broker "$fdir/district" --jetstream-area=4403
    D_PID=$FPID
    fed_wait "$FMPORT" "$head" 3600 gridsync_bridge_last_seq > /dev/null
    secs=$(calc "$(date +%s.%N) - $t0")
    dcpu=$(proc_cpu "$D_PID")
    ncpu=$(calc "$(proc_cpu "$NATS_PID") - $ncpu0")
    put "fed$r.bridge.events" "$head"
    put "fed$r.bridge.seconds" "$secs"
    put "fed$r.bridge.events_per_s" "$(calc "$head / $secs")"
    put "fed$r.bridge.cpu_us_per_event" "$(calc "$dcpu * 1e6 / $head")"
    put "fed$r.bridge.nats_cpu_us_per_event" "$(calc "$ncpu * 1e6 / $head")"
    put "fed$r.load" "$(cut -d' ' -f1 /proc/loadavg)"
    fed_stop "$D_PID"
    nats_stop
    rm -rf "$fdir"
done
put fed.rounds "$FED_ROUNDS"
put fed.outage "$FED_OUTAGE"
put fed.seconds "$FED_SECONDS"
put fed.nats_version "$("$NATS_SERVER" --version 2> /dev/null | sed 's/^nats-server: *//')"

# ---- 6 (and 4, 5): growth ------------------------------------------------------------------
FILLED=0
grow() {   # grow STEP TARGET: pre-fill the store to TARGET records, start the broker
    local step=$1 target=$2 count
    count=$((target - STORED))
    [ $count -gt 0 ] || count=0
    log "growth $step: pre-filling $count records (no_sync, benchmark only) to $target"
    out=$LOG/fill$step.out
    timeout 1800 "$BENCH/bench_fill" --store "$STORE" --from "$FILLED" --count "$count" \
        > "$out" 2> "$LOG/fill$step.log" || die "bench_fill failed"
    put_kv "fill$step" fill "$out"
    FILLED=$(get "fill$step.next_index")
    broker_start "$STORE"
    put "g$step.stored_before" "$(metric gridsync_store_records)"
    put "g$step.events_before" "$(metric gridsync_store_head_seq)"
}

grow 1 "$FILL1"
log "feed: catch-up of a subscriber $BEHIND events behind"
out=$LOG/catchup.out
timeout 900 "$BENCH/bench_feed" catchup --upload "$UPLOAD" --prefix 44 --behind "$BEHIND" \
    > "$out" 2> "$LOG/catchup.log" || die "bench_feed catchup failed"
put_kv catchup catchup "$out"
log "feed: the same catch-up through the client library's subscriber (gs_sub)"
out=$LOG/catchup_sub.out
timeout 900 "$BENCH/bench_feed" catchup --upload "$UPLOAD" --prefix 44 --behind "$BEHIND" \
    --sub-feed "$FEED" > "$out" 2> "$LOG/catchup_sub.log" || die "bench_feed catchup --sub-feed failed"
put_kv catchup_sub catchup_sub "$out"
# two ingests per size (districts of their own), against drift on a shared machine
log "growth 1: ingest with $(get g1.stored_before) records stored (two runs)"
mkdir -p "$WORK/g1" "$WORK/g1b"
ingest g1 440307 "$WORK/g1"
ingest g1b 440302 "$WORK/g1b"
STORED=$(metric gridsync_store_records)
broker_stop

grow 2 "$FILL2"
log "pull-sync: devices download their grid from a store of $(get g2.stored_before) records"
out=$LOG/pull.out
timeout 600 "$BENCH/bench_pull" --upload "$UPLOAD" --filled "$FILLED" --samples "$PULL_SAMPLES" \
    > "$out" 2> "$LOG/pull.log" || die "bench_pull failed"
put_kv pull pull "$out"
put pull.store_records "$(metric gridsync_store_records)"
log "growth 2: ingest with $(get g2.stored_before) records stored (two runs)"
mkdir -p "$WORK/g2" "$WORK/g2b"
ingest g2 440308 "$WORK/g2"
ingest g2b 440304 "$WORK/g2b"
broker_stop
pg_stop
put run.seconds "$(($(date +%s) - T_START))"
put machine.load_end "$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- Report ----------------------------------------------------------------------------------
log "writing $OUT/benchmarks.md and $OUT/benchmarks.png"
"$SRC/tools/bench/bench_report.sh" "$RES" "$OUT" "$WORK" ||
    die "the report could not be written"
[ -s "$OUT/benchmarks.md" ] && [ -s "$OUT/benchmarks.png" ] || die "report files missing"
log "done in $(get run.seconds) s"
