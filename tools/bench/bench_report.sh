#!/usr/bin/env bash
# bench_report.sh: turn the figures of one benchmark run into
# benchmarks.md (tables) and benchmarks.png (gnuplot chart).
#
# Where it sits: the last step of tools/bench/run_bench.sh, which collects
# every figure as "key=value" lines in RESULTS. Nothing is measured here;
# only medians and ratios of figures from that one run are computed.
#
# Usage: bench_report.sh RESULTS OUT_DIR WORK_DIR
set -euo pipefail
RES=$1
OUT=$2
WORK=$3
MD=$OUT/benchmarks.md
PNG=$OUT/benchmarks.png

# g KEY: a figure. A missing one is remembered (command substitutions inside
# the here-documents below cannot stop the script) and fails it at the end.
FAILED=$WORK/report.failed
rm -f "$FAILED"
g() {
    local v
    v=$(grep -m1 "^$1=" "$RES" | cut -d= -f2-) || true
    if [ -z "$v" ]; then
        echo "bench_report: no figure named $1" >&2
        touch "$FAILED"
        v=0
    fi
    printf '%s' "$v"
}
calc() { awk "BEGIN { printf \"%.6g\", $* }"; }
# 1234567.8 -> 1,234,568
n() {
    awk -v x="$1" 'BEGIN { s = sprintf("%.0f", x); neg = s ~ /^-/; if (neg) s = substr(s, 2)
        o = ""; while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
        printf "%s%s%s", neg ? "-" : "", s, o }'
}
f1() { awk -v x="$1" 'BEGIN { printf "%.1f", x }'; }
f2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
pct() { awk -v x="$1" 'BEGIN { printf "%.0f%%", 100 * x }'; }
pct1() { awk -v x="$1" 'BEGIN { printf "%.1f%%", 100 * x }'; }
mb() { awk -v x="$1" 'BEGIN { printf "%.0f", x / 1024 }'; }   # kB -> MB
# median of the values of KEY over the rounds (r1.KEY, r2.KEY, ...)
med() {
    local k=$1 r vals=""
    for r in $(seq "$ROUNDS"); do vals="$vals $(g "r$r.$k")"; done
    tr ' ' '\n' <<< "$vals" | sed '/^$/d' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# spread KEY FMT: "lowest–highest" of KEY over the rounds, each formatted by FMT (n, f1, f2)
spread() {
    local k=$1 r lo hi
    lo=$(for r in $(seq "$ROUNDS"); do g "r$r.$k"; echo; done | sort -g | head -n1)
    hi=$(for r in $(seq "$ROUNDS"); do g "r$r.$k"; echo; done | sort -g | tail -n1)
    printf '%s–%s' "$($2 "$lo")" "$($2 "$hi")"
}
yesno() { awk -v x="$1" -v t="$2" -v dir="$3" 'BEGIN {
    ok = dir == ">=" ? x >= t : dir == "<=" ? x <= t : x < t
    if (ok) print "**met**"; else print "**missed**" }'; }

ROUNDS=$(g run.rounds)
FROUNDS=$(g fed.rounds)
# fmed KEY, fspread KEY FMT: median and spread of fedR.KEY over the federation rounds
fmed() {
    local r
    for r in $(seq "$FROUNDS"); do g "fed$r.$1"; echo; done | sort -g |
        awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
fspread() {
    local r lo hi
    lo=$(for r in $(seq "$FROUNDS"); do g "fed$r.$1"; echo; done | sort -g | head -n1)
    hi=$(for r in $(seq "$FROUNDS"); do g "fed$r.$1"; echo; done | sort -g | tail -n1)
    printf '%s–%s' "$($2 "$lo")" "$($2 "$hi")"
}

# peak TAG: the higher broker RssAnon of the runs TAG and TAGb
peak() { awk -v x="$(g $1.rss_anon_kb)" -v y="$(g ${1}b.rss_anon_kb)" 'BEGIN { print (x > y ? x : y) }'; }
# growth_row TAG: one row of the growth table from the runs TAG and TAGb
growth_row() {
    local a=$1 b=${1}b rss
    rss=$(peak "$a")
    echo "| $(n "$(g $a.stored_before)") | $(n "$(g $a.records_per_s)"), $(n "$(g $b.records_per_s)") | $(n "$(g $a.persons_per_s)"), $(n "$(g $b.persons_per_s)") | $(f1 "$(g $a.p50)") / $(f1 "$(g $a.p99)"), $(f1 "$(g $b.p50)") / $(f1 "$(g $b.p99)") ms | $(mb "$rss") MB | $(n "$(calc "$(g $b.store_used_bytes) / $(g $b.store_records)")") | $(f2 "$(calc "$(g $b.store_file_bytes) / 1e9")") GB | $(g $a.load), $(g $b.load) |"
}
MODE=$(g run.mode)

# per-round derived figures
SWEEP=$(g run.pg_sweep)
# maxof KEY...: the largest of the figures named
maxof() { local k; for k in "$@"; do g "$k"; echo; done | sort -g | tail -n1; }
for r in $(seq "$ROUNDS"); do
    gs=$(g "r$r.gs.records_per_s")
    ld=$(g "r$r.load.records_per_s")
    pg_gs=$(maxof "r$r.pg1.records_per_s" "r$r.pg2.records_per_s" "r$r.pg4.records_per_s")
    pgl_gs=$(maxof "r$r.pgl2.records_per_s" "r$r.pgl4.records_per_s")
    keys=() lkeys=()
    for b in $SWEEP; do keys+=("r$r.pgs$b.records_per_s"); lkeys+=("r$r.pgls$b.records_per_s"); done
    best=$(maxof "r$r.pg1.records_per_s" "r$r.pg2.records_per_s" "r$r.pg4.records_per_s" "${keys[@]}")
    lbest=$(maxof "r$r.pgl2.records_per_s" "r$r.pgl4.records_per_s" "${lkeys[@]}")
    lmdb=$(g "r$r.store.bare_all_per_s")
    zmq=$(g "r$r.zmq.records_per_s")
    low=$(awk -v a="$lmdb" -v b="$zmq" 'BEGIN { print (a < b ? a : b) }')
    # the disk's commits/s at the broker's flushes per commit, and the
    # records/s that allows at the light run's records per commit
    fpc=$(g "r$r.load.flushes_per_commit")
    cceil=$(calc "1000 / ($(g "r$r.disk.sync_p50_ms") * ($fpc > 0 ? $fpc : 1))")
    {
        echo "r$r.pg_gs=$pg_gs"
        echo "r$r.pg_best=$best"
        echo "r$r.pgl_gs=$pgl_gs"
        echo "r$r.pgl_best=$lbest"
        echo "r$r.ratio_pg=$(calc "$gs / $best")"
        echo "r$r.ratio_pg_gs=$(calc "$gs / $pg_gs")"
        echo "r$r.ratio_light=$(calc "$ld / $lbest")"
        echo "r$r.ratio_light_gs=$(calc "$ld / $pgl_gs")"
        echo "r$r.raw_low=$low"
        echo "r$r.frac_raw=$(calc "$gs / $low")"
        echo "r$r.frac_store=$(calc "$gs / $(g "r$r.store.one_thread_per_s")")"
        echo "r$r.load.commits_per_s=$(calc "$(g "r$r.load.commits") / $(g "r$r.load.seconds")")"
        echo "r$r.commit_ceiling=$cceil"
        echo "r$r.commit_share=$(calc "$(g "r$r.load.commits") / $(g "r$r.load.seconds") / $cceil")"
        echo "r$r.record_ceiling=$(calc "$cceil * $(g "r$r.load.batch_mean")")"
    } >> "$RES"
done
GS=$(med gs.records_per_s)
GS_P=$(med gs.persons_per_s)
LD=$(med load.records_per_s)
PG=$(med pg_best)
PGL=$(med pgl_best)
RATIO_PG=$(med ratio_pg)
RATIO_L=$(med ratio_light)
FRAC_RAW=$(med frac_raw)
FRAC_STORE=$(med frac_store)
STORE=$(med store.store_per_s)
STORE1=$(med store.one_thread_per_s)
LMDB=$(med store.bare_all_per_s)
LMDB_REC=$(med store.bare_records_per_s)
ZMQ=$(med zmq.records_per_s)
FEED_P99=$(g feed.commit_sub_p99_ms)
BYTES=$(med load.write_bytes_per_record)
BCPU=$(med load.broker_cpu_us_per_record)
CATCHUP=$(g catchup.events_per_s)
FLAG99=$(fmed lag.commit_sub_p99_ms)
FAPPLY=$(fmed apply.events_per_s)
FOUT=$(fmed outage.events_per_s)
FBYTES=$(fmed stream.bytes_per_event)
FPACKED=$(fmed stream.packed_per_event)
SUBS_RATIO=$(med subs_ratio)
# idle connections: the broker's RssAnon growth per connection, and at
# 10,000 (extrapolated, and said so, when fewer were held)
CONN_N=$(g conns.connections)
CONN_B=$(g conns.bytes_per_connection)
CONN_10K_MB=$(calc "($(g conns.rss_before_kb) * 1024 + $CONN_B * 10000) / 1048576")
if [ "$CONN_N" -ge 10000 ]; then
    CONN_GOAL_TEXT="$(n "$(mb "$(g conns.rss_held_kb)")") MB with $(n "$CONN_N") connections held, $(f1 "$(calc "$CONN_B / 1024")") KB each"
else
    CONN_GOAL_TEXT="$(n "$CONN_10K_MB") MB extrapolated to 10,000 from $(n "$CONN_N") connections held ($(f1 "$(calc "$CONN_B / 1024")") KB each; the open-file limit here is $(n "$(g run.fd_limit)")"
    [ "$(g run.conns_asked)" -lt 10000 ] && CONN_GOAL_TEXT="$CONN_GOAL_TEXT, and $(n "$(g run.conns_asked)") were asked for"
    CONN_GOAL_TEXT="$CONN_GOAL_TEXT)"
fi
CONN_EXTRA_TEXT=""
CONN_EXTRAP=""
CONN_BUSY_ROW=""
if [ "$CONN_N" -lt 10000 ]; then
    CONN_EXTRAP=" (extrapolated)"
    CONN_EXTRA_TEXT=" Fewer than 10,000 connections were held here (the open-file limit is $(n "$(g run.fd_limit)")$([ "$(g run.conns_asked)" -lt 10000 ] && echo "; $(n "$(g run.conns_asked)") were asked for")), so the 10,000 figure is the broker before any connection plus 10,000 times the cost of one: an extrapolation."
fi
if [ "$(g run.conn_busy)" -gt 0 ]; then
    CONN_EXTRA_TEXT="$CONN_EXTRA_TEXT A second run, on a fresh broker, holds $(n "$(g connsb.connections)") connections that ping $(g connsb.pings_per_connection) times each, back to back: what a connection costs once it has carried a few hundred messages each way (libzmq's pipes then hold two chunks of 256 message slots in each direction, every slot written; see docs/operations.md, \"Memory per connection\")."
    CONN_BUSY_ROW="| after $(g connsb.pings_per_connection) pings | $(n "$(g connsb.connections)") | $(g connsb.pings_per_connection) | $(f1 "$(calc "$(g connsb.rss_before_kb) / 1024")") / $(f1 "$(calc "$(g connsb.rss_held_kb) / 1024")") MB | $(f1 "$(calc "$(g connsb.bytes_per_connection) / 1024")") KB | $(n "$(calc "($(g connsb.rss_before_kb) * 1024 + $(g connsb.bytes_per_connection) * 10000) / 1048576")") MB (extrapolated) | $(f1 "$(g connsb.connect_seconds)") s |"
    CONN_GOAL_TEXT="$CONN_GOAL_TEXT; after $(g connsb.pings_per_connection) pings each: $(f1 "$(calc "$(g connsb.bytes_per_connection) / 1024")") KB each, $(n "$(calc "$(g connsb.bytes_per_connection) * 10000 / 1048576")") MB at 10,000"
fi

{
cat <<EOF
# Benchmarks

<!-- Generated by \`make bench\` (tools/bench/run_bench.sh, tools/bench/bench_report.sh).
     Do not edit by hand: run \`make bench\` again. -->

Generated by \`make bench\`, which reproduces every figure below with one command (it installs
PostgreSQL, libpq-dev and gnuplot from Debian, builds, runs everything side by side, and writes
this file and [benchmarks.png](benchmarks.png)). It took $(g run.seconds) s on this machine.
\`make bench-quick\` runs the same steps at a small scale as a CI check; it asserts answers, never
timings.

EOF
if [ "$MODE" = quick ]; then
    printf '> **Quick mode** (2%% of the district, small pre-fills, one round): a check that the\n'
    printf '> benchmark works, not a measurement. Run `make bench` for real figures.\n\n'
fi
cat <<EOF
| Run | |
|---|---|
| Machine | $(g machine.nproc) cores (nproc), $(g machine.cpu), $(g machine.mem_gb) GB RAM, Linux $(g machine.kernel); shared with other work (load average $(g machine.load_start) at the start, $(g machine.load_end) at the end) |
| Date | $(g machine.date) |
| Commit | $(g machine.commit) |
| PostgreSQL | $(g pg.server_version), private server on loopback started by the bench |
| Workload | the seed district of gridsim (share $(g run.scale)): $(n "$(g r1.load.records)") records, each once, from the light load generator over $(g run.load_conns) CURVE connections; $(n "$(g r1.gs.records_sent)") records uploaded with dedup noise by gridsim's $(g run.devices) devices; uploads of at most 50 records |
| Rounds | $ROUNDS, each running the device probe, gridsync with the light load generator, gridsync with gridsim and gridfeed, the PostgreSQL peer on both sets of uploads, the store alone, bare LMDB and bare ZeroMQ back to back; ratios are taken within a round, tables give every round, the median and the spread (lowest–highest) |

![benchmarks](benchmarks.png)

## Goals

The goals of issue 15 (2 cores, durable, same semantics, ratios from one run). Medians of the
rounds, the spread over rounds in brackets.

| Figure | Measured | Goal | |
|---|---|---|---|
| End-to-end durable ingest, light load generator | $(n "$LD") records/s ($(spread load.records_per_s n)) | ≥ 150,000 records/s | $(yesno "$LD" 150000 ">=") |
| Ratio to the tuned PostgreSQL peer, same uploads, same answers | $(f1 "$RATIO_L")× ($(n "$LD") vs $(n "$PGL") records/s, the peer at its best batch size; $(f1 "$(med ratio_light_gs)")× at gridsync's commit size; $(f1 "$RATIO_PG")× on gridsim's uploads) | ≥ 3× | $(yesno "$RATIO_L" 3 ">=") |
| Bytes written per record (the district workload) | $(n "$BYTES") ($(spread load.write_bytes_per_record n); gridsim's uploads with noise: $(n "$(med gs.write_bytes_per_record)")) | ≤ 1,500 | $(yesno "$BYTES" 1500 "<=") |
| Broker CPU per record | $(f1 "$BCPU") µs ($(spread load.broker_cpu_us_per_record f1); gridsim's uploads: $(f1 "$(med gs.broker_cpu_us_per_record)") µs) | ≤ 8 µs | $(yesno "$BCPU" 8 "<=") |
| Feed commit → subscriber p99 at $(n "$(g feed.offered_per_s)") records/s | $(f2 "$FEED_P99") ms | < 1 ms | $(yesno "$FEED_P99" 1 "<") |
| Catch-up, sync service | $(n "$CATCHUP") events/s | ≥ 500,000 events/s | $(yesno "$CATCHUP" 500000 ">=") |
| 10,000 idle-ish device connections | $CONN_GOAL_TEXT | ≤ 300 MB anonymous | $(yesno "$CONN_10K_MB" 300 "<=") |
| $(g run.subs) light subscribers on different prefixes | $(pct "$SUBS_RATIO") of the 0-subscriber rate ($(spread subs_ratio pct) over rounds; $(n "$(med subs.records_per_s)") vs $(n "$LD") records/s); broker peak RssAnon $(mb "$(med subs.rss_anon_kb)") MB with them, $(mb "$(med load.rss_anon_kb)") MB without | ≥ 70% of the 0-subscriber rate, bounded memory | $(yesno "$SUBS_RATIO" 0.7 ">=") |
| City scale: 7M households in one store | not run (\`make bench-city\` does not exist yet) | ingest ≥ 80% of the empty-store rate; pull p99 < 5 ms | **not measured** |

Earlier goals (issue 4), on gridsim's uploads:

| Figure | Measured | Goal | |
|---|---|---|---|
| end to end ÷ the lower raw limit (bare LMDB, bare ZeroMQ) | $(pct "$FRAC_RAW") ($(n "$GS") of $(n "$(med raw_low)") records/s) | ≥ 50% | $(yesno "$FRAC_RAW" 0.5 ">=") |
| end to end ÷ the store alone, all its work on one thread | $(pct "$FRAC_STORE") ($(n "$GS") of $(n "$STORE1") records/s) | ≥ 50% | $(yesno "$FRAC_STORE" 0.5 ">=") |
| feed commit → subscriber p99 at $(n "$(g feed.offered_per_s)") records/s offered | $(f2 "$FEED_P99") ms | < 2 ms | $(yesno "$FEED_P99" 2 "<") |

Federation (issue 20; section 8), medians of its rounds, the spread in brackets:

| Figure | Measured | Goal | |
|---|---|---|---|
| District → city lag p99 at $(n "$(g fed1.lag.offered_per_s)") records/s offered | $(f2 "$FLAG99") ms ($(fspread lag.commit_sub_p99_ms f2)) | < 50 ms | $(yesno "$FLAG99" 50 "<") |
| The city replica's apply rate | $(n "$FAPPLY") events/s ($(fspread apply.events_per_s n)) | ≥ 100,000 events/s | $(yesno "$FAPPLY" 100000 ">=") |
| Catch-up after a NATS outage of $(n "$(g fed.outage)") events | $(n "$FOUT") events/s ($(fspread outage.events_per_s n)), $(f1 "$(fmed outage.seconds)") s | none set | |
| Bytes per event in JetStream | $(n "$FBYTES") ($(fspread stream.bytes_per_event n)); the packed event: $(n "$FPACKED") | none set | |

## 1. End-to-end durable ingest

Both runs use the real \`gridsyncd\` with its defaults (full sync: an ack leaves only after its
group commit is on disk) on a fresh store in a temporary directory on the same filesystem as
the device probe (section 2), with \`libbench_iocount.so\` preloaded: an LD_PRELOAD shim that
counts the bytes the broker passes to write calls on regular files (write, pwrite, pwritev and
their variants) and its flushes (fdatasync, fsync, msync, and writes on a descriptor opened
O_DSYNC, which is how LMDB writes its meta page after the data pages' fdatasync). Broker CPU is
utime + stime from /proc/PID/stat over the measured interval, divided by the records sent.

### 1a. Light load generator (the headline)

\`bench_load\` builds every upload before the clock starts: the district exactly as
\`gridsim --no-noise\` lays it out (every record once, in uploads of 50, grid after grid), each
upload packed to the Request bytes a device sends. $(g run.load_conns) device keys are enrolled with
\`gridctl devices enrol\` and the broker runs CURVE, its default, so every connection is a
handheld's: one DEALER socket per key, grids dealt out to them round-robin, every upload in the
name of its key's device. Each connection pings first, so all handshakes are done before the
clock starts; then each keeps up to $(g run.load_window) uploads in flight, all from one thread. Every
answer is checked as it arrives (the upload's Ack, one result per record in order, each
ACCEPTED as version 1 under its own id with a seq): a wrong or missing answer fails the bench.
The generator's own CPU (sending, CURVE, receiving, checking; getrusage over the same interval)
is reported next to the broker's, so the figure can be seen to measure the broker.

| Round | records/s | persons/s | ack p50 / p99 | group commits | records per commit | commits/s | broker CPU per record | generator CPU per record | bytes written per record | write calls per commit | flushes per commit | load average after |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
EOF
for r in $(seq "$ROUNDS"); do
    echo "| $r | $(n "$(g "r$r.load.records_per_s")") | $(n "$(g "r$r.load.persons_per_s")") | $(f1 "$(g "r$r.load.p50_ms")") / $(f1 "$(g "r$r.load.p99_ms")") ms | $(n "$(g "r$r.load.commits")") | $(f1 "$(g "r$r.load.batch_mean")") | $(n "$(g "r$r.load.commits_per_s")") | $(f1 "$(g "r$r.load.broker_cpu_us_per_record")") µs | $(f2 "$(g "r$r.load.gen_cpu_us_per_record")") µs | $(n "$(g "r$r.load.write_bytes_per_record")") | $(f1 "$(g "r$r.load.write_calls_per_commit")") | $(f2 "$(g "r$r.load.flushes_per_commit")") | $(g "r$r.load.load") |"
done
cat <<EOF
| median | **$(n "$LD")** | $(n "$(med load.persons_per_s)") | $(f1 "$(med load.p50_ms)") / $(f1 "$(med load.p99_ms)") ms | | $(f1 "$(med load.batch_mean)") | $(n "$(med load.commits_per_s)") | **$(f1 "$BCPU") µs** | $(f2 "$(med load.gen_cpu_us_per_record)") µs | **$(n "$BYTES")** | $(f1 "$(med load.write_calls_per_commit)") | $(f2 "$(med load.flushes_per_commit)") | |
| spread | $(spread load.records_per_s n) | | | | | | $(spread load.broker_cpu_us_per_record f1) µs | $(spread load.gen_cpu_us_per_record f2) µs | $(spread load.write_bytes_per_record n) | | | |

### 1b. gridsim and gridfeed (the realistic run)

gridsim's device threads upload the seed district to gridsyncd over tcp loopback and wait for each
ack, with dedup noise (invalid records and their corrections, re-collections, records under a
new id, conflicting edits by a second device, retransmissions and lost acks). gridsyncd runs
\`--insecure-dev\`, i.e. plaintext without CURVE, which the bench uses here because it runs on
loopback only. gridfeed follows the whole district (prefix 440305) on the live feed meanwhile,
writing every event to a file with a checkpoint, and must end with every event. Every ack is
checked against the exact expected answer (gridsim's expectations): any wrong answer fails the
bench. gridsim and gridfeed share the 2 cores with the broker and cost about as much CPU per
record as the broker itself, so this run measures the harness as much as the broker; broker
CPU and bytes here are over gridsim's run (the feed's work up to its end included).

| Round | records/s | persons/s | ack p50 | ack p99 | records sent | group commits | records per commit | broker CPU per record | bytes written per record | flushes per commit | events received by gridfeed | load average after |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
EOF
for r in $(seq "$ROUNDS"); do
    echo "| $r | $(n "$(g "r$r.gs.records_per_s")") | $(n "$(g "r$r.gs.persons_per_s")") | $(f1 "$(g "r$r.gs.p50")") ms | $(f1 "$(g "r$r.gs.p99")") ms | $(n "$(g "r$r.gs.records_sent")") | $(n "$(g "r$r.gs.commits")") | $(f1 "$(g "r$r.gs.batch_mean")") | $(f1 "$(g "r$r.gs.broker_cpu_us_per_record")") µs | $(n "$(g "r$r.gs.write_bytes_per_record")") | $(f2 "$(g "r$r.gs.flushes_per_commit")") | $(n "$(g "r$r.gs.feed_events")") | $(g "r$r.gs.load") |"
done
cat <<EOF
| median | **$(n "$GS")** | **$(n "$GS_P")** | $(f1 "$(med gs.p50)") ms | $(f1 "$(med gs.p99)") ms | | | | $(f1 "$(med gs.broker_cpu_us_per_record)") µs | $(n "$(med gs.write_bytes_per_record)") | $(f2 "$(med gs.flushes_per_commit)") | | |
| spread | $(spread gs.records_per_s n) | | | | | | | $(spread gs.broker_cpu_us_per_record f1) µs | $(spread gs.write_bytes_per_record n) | | | |

## 2. The device's ceilings, same run

\`bench_disk\` in the bench's work directory (the filesystem of the stores above), at the start
of each round: the latency of one 4 KiB overwrite plus fdatasync in a file written and synced
beforehand ($(g r1.disk.syncs) times), and sequential bandwidth ($(g r1.disk.seq_mb) MiB in 1 MiB writes, the closing
fdatasync included). "Commits/s the disk allows" is 1 ÷ (median flush × the broker's flushes per
commit in the light run); at the light run's records per commit that gives the records/s a
flush-bound writer could reach. The light run's commits/s against it says how much of the
device the broker uses.

| Round | fdatasync of 4 KiB p50 / p99 / max | flushes/s (1 ÷ p50) | sequential write | commits/s the disk allows | light run: commits/s (share) | records/s at the light run's commit size |
|---|---|---|---|---|---|---|
EOF
for r in $(seq "$ROUNDS"); do
    echo "| $r | $(f2 "$(g "r$r.disk.sync_p50_ms")") / $(f2 "$(g "r$r.disk.sync_p99_ms")") / $(f2 "$(g "r$r.disk.sync_max_ms")") ms | $(n "$(g "r$r.disk.syncs_per_s")") | $(n "$(g "r$r.disk.seq_mb_per_s")") MB/s | $(n "$(g "r$r.commit_ceiling")") | $(n "$(g "r$r.load.commits_per_s")") ($(pct1 "$(g "r$r.commit_share")")) | $(n "$(g "r$r.record_ceiling")") |"
done
cat <<EOF
| median | $(f2 "$(med disk.sync_p50_ms)") / $(f2 "$(med disk.sync_p99_ms)") ms | $(n "$(med disk.syncs_per_s)") | $(n "$(med disk.seq_mb_per_s)") MB/s | $(n "$(med commit_ceiling)") | $(n "$(med load.commits_per_s)") ($(pct1 "$(med commit_share)")) | $(n "$(med record_ceiling)") |

At the median, the light run wrote $(n "$(calc "$LD * $BYTES / 1e6")") MB/s, $(pct "$(calc "$LD * $BYTES / 1e6 / $(med disk.seq_mb_per_s)")") of the sequential bandwidth.

## 3. PostgreSQL peer: the same uploads, the same answers

\`tools/bench/bench_pg\` applies the same uploads to PostgreSQL with the same semantics and the
same durability, the way a competent PostgreSQL engineer would build this service:

- the client plays the application server: it validates each record with the same validator
  (\`gs_record_check\`), packs it, hashes its content without metadata (BLAKE2b-128), computes its
  natural key and the HMACs of the persons it names (households, rental units and organisations
  alike: an organisation's natural key is the store's, its USCC and place, or its folded name and
  place without a USCC; its representative, contact and employees are indexed as persons, and the
  organisation itself under its USCC, as the store does);
- each record is stored once, in one table keyed by (kind, record id), with the natural key
  (unique), the change sequence (unique) and (grid, seq) as indexes on it: the sync service
  reads "seq > N" for a prefix from that table, so there is no change-log copy. Aliases (ids
  merged into another record) and the person index (grid, HMAC, kind, id) are narrow tables; the
  idempotency answers are one row per upload;
- a batch of uploads is one call of a prepared statement (binary array parameters) to a
  PL/pgSQL function in its own transaction: one statement finds the uploads answered before
  (stored answer, or an earlier copy in the batch), one \`INSERT ... SELECT FROM unnest(...) ON
  CONFLICT DO NOTHING\` stores every plainly new record of the batch with its person rows, one
  INSERT stores the answers; only what a plain insert cannot decide (known ids, natural-key
  merges, conflicts, rejections, a record named twice in the batch) goes record by record, in
  upload order;
- durability as gridsyncd's: synchronous_commit $(g r1.pg1.synchronous_commit), fsync $(g r1.pg1.fsync), full_page_writes $(g r1.pg1.full_page_writes); an answer is
  final only after its commit is durable. Server settings for a write benchmark:
  shared_buffers $(g r1.pg1.shared_buffers), max_wal_size 8GB and checkpoint_timeout 30min (no checkpoint
  during a run), wal_buffers 64MB, wal_compression $(g r1.pg1.wal_compression), work_mem $(g r1.pg1.work_mem),
  wal_level $(g r1.pg1.wal_level); the function's statements are written so that their generic plans
  stay linear in the batch (one pass over the rows, no join between a statement's parts);
- batches close at gridsync's records per commit of the same round (the light run's for
  bench_load's uploads, gridsim's run's for gridsim's) with 1, 2 or 4 connections (PostgreSQL
  group-commits their WAL flushes), and, for the peer's own best, at $(g run.pg_sweep) records with 4
  connections. The best of all counts.

It leaves out, in its favour: per-cell counts, the prefix chain used for feed gap detection,
idempotency expiry, a live feed, the move-out event of a record leaving a grid (a row has one
grid), and commit-ordered seqs: its seqs come from a sequence, so with several connections they
are not in commit order (a reader polling "seq > N" can miss a late commit), which gridsync's log
guarantees. The peer counts only if its answers match: it checks every answer against the
expected one as bench_load and gridsim do, and the bench compares accepted, unchanged, merged,
conflict and rejected with gridsync's in every run and fails if any differs.

**bench_load's uploads** (every record once, all ACCEPTED), records/s:

EOF
hdr="| Round | records per commit | gridsync, light | 2 connections | 4 connections |"
sep="|---|---|---|---|---|"
for b in $SWEEP; do hdr="$hdr $b, 4 connections |"; sep="$sep---|"; done
echo "$hdr best | gridsync ÷ best | gridsync ÷ best at its commit size |"
echo "$sep---|---|---|"
for r in $(seq "$ROUNDS"); do
    row="| $r | $(g "r$r.lbatch") | $(n "$(g "r$r.load.records_per_s")") | $(n "$(g "r$r.pgl2.records_per_s")") | $(n "$(g "r$r.pgl4.records_per_s")") |"
    for b in $SWEEP; do row="$row $(n "$(g "r$r.pgls$b.records_per_s")") |"; done
    echo "$row $(n "$(g "r$r.pgl_best")") | $(f1 "$(g "r$r.ratio_light")")× | $(f1 "$(g "r$r.ratio_light_gs")")× |"
done
row="| median | | $(n "$LD") | $(n "$(med pgl2.records_per_s)") | $(n "$(med pgl4.records_per_s)") |"
for b in $SWEEP; do row="$row $(n "$(med "pgls$b.records_per_s")") |"; done
echo "$row $(n "$PGL") | **$(f1 "$RATIO_L")×** | $(f1 "$(med ratio_light_gs)")× |"
cat <<EOF

**gridsim's uploads** (the same plan, seed and upload ids, including the retransmissions and lost
acks), records/s:

EOF
hdr="| Round | records per commit | gridsync, gridsim | 1 connection | 2 connections | 4 connections |"
sep="|---|---|---|---|---|---|"
for b in $SWEEP; do hdr="$hdr $b, 4 connections |"; sep="$sep---|"; done
echo "$hdr best | gridsync ÷ best | gridsync ÷ best at its commit size |"
echo "$sep---|---|---|"
for r in $(seq "$ROUNDS"); do
    row="| $r | $(g "r$r.batch") | $(n "$(g "r$r.gs.records_per_s")") | $(n "$(g "r$r.pg1.records_per_s")") | $(n "$(g "r$r.pg2.records_per_s")") | $(n "$(g "r$r.pg4.records_per_s")") |"
    for b in $SWEEP; do row="$row $(n "$(g "r$r.pgs$b.records_per_s")") |"; done
    echo "$row $(n "$(g "r$r.pg_best")") | $(f1 "$(g "r$r.ratio_pg")")× | $(f1 "$(g "r$r.ratio_pg_gs")")× |"
done
row="| median | | $(n "$GS") | $(n "$(med pg1.records_per_s)") | $(n "$(med pg2.records_per_s)") | $(n "$(med pg4.records_per_s)") |"
for b in $SWEEP; do row="$row $(n "$(med "pgs$b.records_per_s")") |"; done
echo "$row $(n "$PG") | **$(f1 "$RATIO_PG")×** | $(f1 "$(med ratio_pg_gs)")× |"
cat <<EOF

The peer's WAL per record (the server's WAL position before and after; heap and index pages are
written again at checkpoints, which no run reaches): $(n "$(med pgl4.wal_bytes_per_record)") bytes on bench_load's uploads,
$(n "$(med pg4.wal_bytes_per_record)") on gridsim's (4 connections, medians); gridsync wrote $(n "$BYTES") and $(n "$(med gs.write_bytes_per_record)").

Answers in round 1 (they must be equal, and are, or the bench would have failed):

| Result | gridsync, light | peer, light uploads (4 connections) | gridsync, gridsim | peer, gridsim's uploads: 1 / 2 / 4 connections |
|---|---|---|---|---|
EOF
for k in accepted unchanged merged conflict rejected; do
    echo "| $k | $(n "$(g "r1.load.$k")") | $(n "$(g "r1.pgl4.$k")") | $(n "$(g "r1.gs.$k")") | $(n "$(g "r1.pg1.$k")") / $(n "$(g "r1.pg2.$k")") / $(n "$(g "r1.pg4.$k")") |"
done
cat <<EOF

## 4. Raw limits, same run

- **Store alone** (\`bench_store\`): the district applied through the store API in one
  process, full sync, transactions of the round's records-per-commit, the way the broker does it:
  \`gs_store_prepare\` (validation, packing, hashes, HMACs; the broker's frontend thread) and
  then \`gs_store_apply\` (the writer thread). "store, writer" is the writer's rate, records per
  second inside \`gs_store_apply\`, the serial stage; "store, one thread" adds the preparation
  time, as if one core did both, and is the store-alone figure the gridsim run (1b) is
  compared with.
- **Bare LMDB**: the same run replays every key and value the store wrote (all tables), in the
  same transactions, with plain \`mdb_put\` (full sync); "records only" replays just the records
  table, the least any design writes.
- **Bare ZeroMQ** (\`bench_zmq\`): gridsim's upload messages, byte for byte, from $(g run.devices) DEALER
  sockets to a ROUTER that answers each with an ack of the right size at once; up to 8 requests
  in flight per socket, no decoding, no storage.
- **Generator** (\`bench_gen\`): the cost of building records (the generator gridsim and
  bench_load share; bench_load builds before its clock starts), every record of the seed district
  built once in memory: $(n "$(g gen.households)") households at $(n "$(g gen.households_per_s)")/s and
  $(n "$(g gen.rentals)") rental units at $(n "$(g gen.rentals_per_s)")/s.

| Round | end to end (gridsim, 1b) | store, writer | store, one thread | bare LMDB | bare LMDB, records only | bare ZeroMQ | end to end ÷ lower raw limit | end to end ÷ store, one thread |
|---|---|---|---|---|---|---|---|---|
EOF
for r in $(seq "$ROUNDS"); do
    echo "| $r | $(n "$(g "r$r.gs.records_per_s")") | $(n "$(g "r$r.store.store_per_s")") | $(n "$(g "r$r.store.one_thread_per_s")") | $(n "$(g "r$r.store.bare_all_per_s")") | $(n "$(g "r$r.store.bare_records_per_s")") | $(n "$(g "r$r.zmq.records_per_s")") | $(pct "$(g "r$r.frac_raw")") | $(pct "$(g "r$r.frac_store")") |"
done
cat <<EOF
| median | $(n "$GS") | $(n "$STORE") | $(n "$STORE1") | $(n "$LMDB") | $(n "$LMDB_REC") | $(n "$ZMQ") | **$(pct "$FRAC_RAW")** | **$(pct "$FRAC_STORE")** |

All figures in records/s. ZeroMQ carried $(f1 "$(med zmq.mb_per_s)") MB/s. Per record, the
store spent $(f2 "$(med store.prepare_us)") µs preparing and $(f2 "$(med store.apply_us)") µs applying (medians; the
apply includes its share of the commit and its fsync).

## 5. Feed

**Commit → subscriber latency.** \`bench_feed latency\`: $(g run.devices) device threads upload fresh records of
another district at a steady $(n "$(g feed.offered_per_s)") records/s offered (paced by a schedule, not by the
acks), for the length of the run, while a subscriber (the client library's \`gs_sub\`) in the same
process follows that district on the live feed. Events carry \`committed_at\` in whole
milliseconds, too coarse here, so the commit instant is bounded on one monotonic clock instead:
the broker sends acks only after the commit returns, and hands the batch's events to its
publisher at that same point. "Commit → subscriber" is event receive time minus ack receive time,
an under-estimate by the ack's own trip from the writer thread to the client (tens of
microseconds on loopback); "send → subscriber" (upload sent to event received, which includes
queueing and the fsync) is the upper bound. Runs: $(g feed.runs), each on a district of its own;
commit → subscriber p99 of each: $(g feed.p99_all) ms. The table shows the run with the median
p99.

| Offered | achieved | events timed | commit → subscriber p50 / p99 / max | send → subscriber p50 / p99 | upload → ack p50 / p99 | delivered live / repaired from sync |
|---|---|---|---|---|---|---|
| $(n "$(g feed.offered_per_s)")/s | $(n "$(g feed.achieved_per_s)")/s | $(n "$(g feed.events_timed)") | $(f2 "$(g feed.commit_sub_p50_ms)") / **$(f2 "$FEED_P99")** / $(f2 "$(g feed.commit_sub_max_ms)") ms | $(f2 "$(g feed.send_sub_p50_ms)") / $(f2 "$(g feed.send_sub_p99_ms)") ms | $(f2 "$(g feed.ack_p50_ms)") / $(f2 "$(g feed.ack_p99_ms)") ms | $(n "$(g feed.live)") / $(n "$(g feed.pulled)") |

**Catch-up.** A subscriber resumes $(n "$(g catchup.events)") events behind the head (prefix \`$(g catchup.prefix)\`, i.e. every
district, on a store of $(n "$(g g1.stored_before)") records) and pulls from the sync service, page after page
(the broker's default of 5,000 events per reply), decoding every event, until it reaches the head
it saw when it started: $(n "$(g catchup.requests)") requests in $(f1 "$(g catchup.seconds)") s, **$(n "$(g catchup.events_per_s)") events/s**.

## 6. Device pull-sync

\`bench_pull\`: one device after another downloads its own grid from a store of
$(n "$(g pull.store_records)") records: snapshot pages of its 15-digit grid prefix until the cursor is empty,
then one sync request for the changes after the snapshot seq, as a device does before it follows
the feed. $(g pull.samples) grids picked at random among the $(n "$(g pull.grids)") grids of the pre-filled data.

| Records per grid | pages per grid | p50 | p99 | max |
|---|---|---|---|---|
| $(f1 "$(g pull.records_per_grid)") | $(f2 "$(g pull.pages_per_grid)") | $(f2 "$(g pull.p50_ms)") ms | **$(f2 "$(g pull.p99_ms)") ms** | $(f2 "$(g pull.max_ms)") ms |

## 7. Growth

The same end-to-end ingest (section 1b, another district each time so every record is new) on a
store already holding more records. The store is pre-filled with \`bench_fill\` through the store
API (\`gs_store_apply\`, the ordinary write path) opened with the benchmark-only \`no_sync\` option
and large transactions, to stay within the time budget; the measured runs reopen it under the
broker with full sync. The pre-fill data are copies of a district layout (1,372 grids, 300,000
households and 13,055 rental buildings each, about 260 records per grid) under district codes
of their own. Broker memory is the peak of RssAnon (anonymous resident memory: heap and stacks,
not LMDB's file mapping, which VmRSS and VmHWM would count) sampled from /proc every 100 ms
during the ingest. Bytes per record: LMDB pages in use divided by records stored (records,
change log with a copy of each record version, indexes, idempotency answers).

| Records stored before | ingest records/s (two runs) | persons/s | ack p50 / p99 | broker peak RssAnon | store bytes per record | data file | load average after |
|---|---|---|---|---|---|---|---|
| 0 (round 1) | $(n "$(g r1.gs.records_per_s)") | $(n "$(g r1.gs.persons_per_s)") | $(f1 "$(g r1.gs.p50)") / $(f1 "$(g r1.gs.p99)") ms | $(mb "$(g r1.gs.rss_anon_kb)") MB | $(n "$(calc "$(g r1.gs.store_used_bytes) / $(g r1.gs.store_records)")") | $(f2 "$(calc "$(g r1.gs.store_file_bytes) / 1e9")") GB | $(g r1.gs.load) |
$(growth_row g1)
$(growth_row g2)

Pre-fill speed (no_sync, not a product figure): $(n "$(g fill1.records_per_s)") and $(n "$(g fill2.records_per_s)") records/s.
The 0 row is round 1 of section 1b. Each larger size gets two ingests of districts of their own,
one after the other on the same broker; memory is the peak over both, bytes per record and file
size are after the second.

## 8. Federation: district → NATS JetStream → city

Each of $(g fed.rounds) rounds starts a private nats-server ($(g fed.nats_version), JetStream on, file storage in a
temporary directory, loopback), a district gridsyncd whose bridge publishes its change log into
the stream \`GRIDSYNC_4403\` (\`jetstream-area\` 4403, the city, so that the lag run's district
440303 and the pre-fill's districts 4403xx all lie under it), and a city gridsyncd started with
\`replica-of\` 4403; all with full sync, plaintext on loopback, no write counter.

- **Lag.** \`bench_feed latency --city\`: $(g run.devices) device threads upload fresh records of district 440303
  to the district at a steady offered rate (paced by a schedule, not by the acks) for $(g fed.seconds) s,
  while a subscriber follows 440303 on the **city's** live feed. Each city event is matched with
  the district's ack by its \`origin_seq\`, on one monotonic clock: "commit → city" is the
  event's arrival at the city subscriber minus the district ack's arrival (the district acks
  only after its commit, so this leaves out only the ack's own trip), across the bridge, NATS,
  the replica's fetch, apply and durable commit, and the city's feed; "send → city" (upload sent
  to city event) is the upper bound.
- **Catch-up after an outage.** nats-server is stopped; the district takes $(n "$(g fed.outage)") events while it is
  down (written through the store's write path by \`bench_fill\` with the district broker stopped,
  to keep the run short: for the bridge this is the same as uploads while NATS is down, events
  waiting in the district's change log); the district broker starts again, then nats-server on
  the same port and store. Timed from nats-server ready until the city's head equals the
  district's (polled from the city's metrics every 20 ms): the bridge publishes and the replica
  applies at the same time.
- **Bytes per event.** The stream's bytes divided by its messages (nats-server's \`/jsz\`), against
  the mean packed ChangeEvent of the district's change log (the message data): the difference is
  JetStream's own per-message overhead (subject, the four headers, its record framing).
- **Apply rate.** With the district stopped and the stream full, a second city replica on an
  empty store (its own durable consumer) applies the whole stream: timed from its ready line until
  its head equals the stream's messages; its CPU (utime + stime from /proc, start-up included)
  per event.

| Round | offered / achieved | events timed | commit → city p50 / p99 / max | send → city p50 / p99 | outage catch-up | apply rate | replica CPU per event | JetStream bytes per event / packed event | load average after |
|---|---|---|---|---|---|---|---|---|---|
EOF
for r in $(seq "$FROUNDS"); do
    echo "| $r | $(n "$(g "fed$r.lag.offered_per_s")") / $(n "$(g "fed$r.lag.achieved_per_s")")/s | $(n "$(g "fed$r.lag.events_timed")") | $(f2 "$(g "fed$r.lag.commit_sub_p50_ms")") / $(f2 "$(g "fed$r.lag.commit_sub_p99_ms")") / $(f2 "$(g "fed$r.lag.commit_sub_max_ms")") ms | $(f2 "$(g "fed$r.lag.send_sub_p50_ms")") / $(f2 "$(g "fed$r.lag.send_sub_p99_ms")") ms | $(n "$(g "fed$r.outage.events_per_s")") events/s ($(f1 "$(g "fed$r.outage.seconds")") s) | $(n "$(g "fed$r.apply.events_per_s")") events/s ($(n "$(g "fed$r.apply.events")") in $(f1 "$(g "fed$r.apply.seconds")") s) | $(f2 "$(g "fed$r.apply.cpu_us_per_event")") µs | $(n "$(g "fed$r.stream.bytes_per_event")") / $(n "$(g "fed$r.stream.packed_per_event")") | $(g "fed$r.load") |"
done
cat <<EOF
| median | | | $(f2 "$(fmed lag.commit_sub_p50_ms)") / **$(f2 "$FLAG99")** ms | $(f2 "$(fmed lag.send_sub_p50_ms)") / $(f2 "$(fmed lag.send_sub_p99_ms)") ms | **$(n "$FOUT")** events/s | **$(n "$FAPPLY")** events/s | $(f2 "$(fmed apply.cpu_us_per_event)") µs | **$(n "$FBYTES")** / $(n "$FPACKED") | |
| spread | | | $(fspread lag.commit_sub_p99_ms f2) ms (p99) | | $(fspread outage.events_per_s n) | $(fspread apply.events_per_s n) | $(fspread apply.cpu_us_per_event f2) µs | $(fspread stream.bytes_per_event n) | |

## 9. Connections and subscribers

**Idle-ish device connections.** A fresh \`gridsyncd\` in CURVE mode, $(g conns.keys) enrolled device keys,
and \`bench_conns\` holding $(n "$CONN_N") connections open ($(g conns.processes) process(es); each DEALER socket costs the
generator two descriptors): each connection does the CURVE handshake (and the broker's ZAP check
of its key), pings, pings once more (that round spread over a few seconds, a device's
keep-alive), and then stays open and idle. The broker's anonymous resident memory (RssAnon from
/proc: heap and stacks, not LMDB's file mapping; the kernel's socket buffers are not in it) is
read before the first connection and once every connection is held; the difference divided by the
connections is the cost of one. The broker must count every one of them open
(\`gridsync_connections_open\`).$CONN_EXTRA_TEXT

| Run | connections | pings each | broker RssAnon before / held | per connection | at 10,000 connections | connect and first ping, all |
|---|---|---|---|---|---|---|
| idle-ish | $(n "$CONN_N") | $(g conns.pings_per_connection) | $(f1 "$(calc "$(g conns.rss_before_kb) / 1024")") / $(f1 "$(calc "$(g conns.rss_held_kb) / 1024")") MB | **$(f1 "$(calc "$CONN_B / 1024")") KB** | **$(n "$CONN_10K_MB") MB**$CONN_EXTRAP | $(f1 "$(g conns.connect_seconds)") s |
$CONN_BUSY_ROW

**Light subscribers.** In every round the light load generator's ingest (section 1a) runs twice
on fresh brokers, back to back, in alternating order: once alone and once while \`bench_subs\`
follows $(g run.subs) grids of the district on the live feed, one SUB socket each, all in one process (one
enrolled key, CURVE), each subscription confirmed by its first heartbeat before the first upload.
A subscriber only decodes and counts: each event must be of its grid and its grid-level
\`prev_seq\` must be the seq it saw last, so each event arrives once, in order, without a gap, and
each subscriber must end with exactly the records uploaded to its grid. The grids are spread
evenly over the district. Memory is the broker's peak RssAnon during the upload, sampled every
100 ms.

| Round | records/s alone | with subscribers | ratio | events delivered | broker peak RssAnon alone / with subscribers |
|---|---|---|---|---|---|
EOF
for r in $(seq "$ROUNDS"); do
    echo "| $r | $(n "$(g "r$r.load.records_per_s")") | $(n "$(g "r$r.subs.records_per_s")") | $(pct "$(g "r$r.subs_ratio")") | $(n "$(g "r$r.subs.events")") | $(mb "$(g "r$r.load.rss_anon_kb")") / $(mb "$(g "r$r.subs.rss_anon_kb")") MB |"
done
cat <<EOF
| median | $(n "$LD") | $(n "$(med subs.records_per_s)") | **$(pct "$SUBS_RATIO")** | | $(mb "$(med load.rss_anon_kb)") / $(mb "$(med subs.rss_anon_kb)") MB |
EOF
} > "$MD"

G1RSS=$(peak g1)
G2RSS=$(peak g2)

# ---- Chart ------------------------------------------------------------------------------------
gnuplot <<EOF
set terminal pngcairo size 1700,560 font "sans,10"
set output "$PNG"
set multiplot layout 1,3 title "gridsync benchmarks ($MODE run): $(g machine.nproc) cores, $(g machine.cpu), $(g machine.date), commit $(g machine.commit)"
set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
set bmargin 5
set logscale y
set format y "%.0s%c"

\$ingest << EOD
"gridsync\nlight gen" $LD
"PG peer\nlight gen" $PGL
"gridsync\ngridsim" $GS
"PG peer\ngridsim" $PG
"store\nalone" $STORE
"bare\nLMDB" $LMDB
"bare\nZeroMQ" $ZMQ
EOD
set title "Durable ingest, records/s (median of rounds)"
set yrange [1000:*]
set xtics scale 0
plot \$ingest using 0:2:xtic(1) with boxes lc rgb "#4878a8" notitle, \
     '' using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,0.8 notitle

\$growth << EOD
0 $(g r1.gs.records_per_s) $(mb "$(g r1.gs.rss_anon_kb)")
$(calc "$(g g1.stored_before) / 1e6") $(calc "($(g g1.records_per_s) + $(g g1b.records_per_s)) / 2") $(mb "$G1RSS")
$(calc "$(g g2.stored_before) / 1e6") $(calc "($(g g2.records_per_s) + $(g g2b.records_per_s)) / 2") $(mb "$G2RSS")
EOD
set title "Growth: ingest vs records already stored (mean of two runs)"
unset logscale y
set format y "%.0s%c"
set yrange [0:*]
set y2range [0:*]
set xrange [*:*]
set xtics auto scale 1
set xlabel "records stored before (millions)"
set ylabel "records/s"
set y2label "broker peak RssAnon (MB)"
set y2tics
plot \$growth using 1:2 with linespoints lw 2 pt 7 lc rgb "#4878a8" title "ingest records/s", \
     '' using 1:3 axes x1y2 with linespoints lw 2 pt 5 lc rgb "#d07030" title "RssAnon MB"

unset y2tics
unset y2label
unset xlabel
set ylabel "milliseconds"
\$lat << EOD
"upload->ack" $(med gs.p50) $(med gs.p99)
"commit->subscriber" $(g feed.commit_sub_p50_ms) $(g feed.commit_sub_p99_ms)
"device pull-sync" $(g pull.p50_ms) $(g pull.p99_ms)
EOD
set title "Latency p50 / p99"
set logscale y
set format y "%g"
set yrange [0.01:*]
set style data histograms
set style histogram clustered gap 1
set xtics scale 0
set xrange [-0.5:2.5]
plot \$lat using 2:xtic(1) title "p50" lc rgb "#4878a8", '' using 3 title "p99" lc rgb "#d07030"
unset multiplot
EOF
[ ! -e "$FAILED" ] || exit 1
