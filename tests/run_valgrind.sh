#!/usr/bin/env bash
# The test suite under valgrind's memcheck (make test-valgrind).
#
# Module tests that run in one process run under valgrind themselves.
# Integration tests run as they are, but start every gridsyncd under
# valgrind (GS_TEST_VALGRIND, tests/support/gs_testkit.c): a memory error
# or a definite leak in the broker makes it exit 99 and fails the test.
# test_bridge's brokers run nats.c (the bridge): its threads end in
# nats_CloseAndWait before the broker exits, and it needs no suppression.
# Left out, because valgrind makes them take many minutes and the ASan+UBSan
# build (make test-sanitize) runs them with LeakSanitizer: test_store,
# test_store_crash, test_gen and the fault tests. test_hostile floods a
# tenth as many tiny frames here (100,000) as in the other builds.
#
# Every program gets a deadline (VALGRIND_TEST_SECONDS, default 900; each
# takes well under a minute and a half here). A program still running then
# is a hang, not slowness: its threads' stacks, and those of any broker it
# started, are printed with gdb before it is killed, and the run fails.
set -euo pipefail
BUILD=${1:?usage: run_valgrind.sh BUILD_DIR}
DEADLINE=${VALGRIND_TEST_SECONDS:-900}
cd "$BUILD/tests"
VG=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite)

# stacks PID: every thread's stack of PID and of its descendants
stacks() {
    local pid=$1 kid
    echo "--- stacks of $(tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null | cut -c1-200)"
    if command -v gdb > /dev/null; then
        gdb -batch -p "$pid" -ex "thread apply all bt" 2>&1 | grep -E '^(Thread|#)' || true
    fi
    for kid in $(pgrep -P "$pid" 2> /dev/null); do
        stacks "$kid"
    done
}

# run NAME LOG COMMAND...: run with a deadline; non-zero on failure or hang
run() {
    local name=$1 log=$2
    shift 2
    "$@" < /dev/null > "$log" 2>&1 &
    local pid=$!
    sleep "$DEADLINE" &
    local timer=$!
    # whichever ends first: the program, or its deadline
    wait -n "$pid" "$timer" || true
    if kill -0 "$pid" 2> /dev/null; then
        echo "valgrind: $name still running after $DEADLINE s: a hang"
        stacks "$pid"
        pkill -KILL -P "$pid" 2> /dev/null || true
        kill -KILL "$pid" 2> /dev/null || true
        wait "$pid" 2> /dev/null || true
        return 1
    fi
    kill "$timer" 2> /dev/null || true
    wait "$timer" 2> /dev/null || true
    wait "$pid"
}

fail=0
for t in test_validate test_schema test_prescan test_privacy test_config test_endpoint \
         test_grid test_render test_checkpoint test_store_txn test_store_keys test_store_dedup \
         test_store_ids test_store_idem test_store_log test_store_replica test_natslink test_authz test_serve test_frames test_handoff \
         test_broker_oom test_fuzz_regressions test_incident test_store_incident; do
    [ -x "./$t" ] || continue
    echo "valgrind: $t"
    run "$t" "$t.valgrind.log" "${VG[@]}" "./$t" || { cat "$t.valgrind.log"; fail=1; }
done
for t in test_broker test_admin test_security test_hostile test_conns test_bridge test_gridsim test_gridfeed \
         test_gridctl test_gridctl_keys test_replica test_incidents; do
    [ -x "./$t" ] || continue
    echo "valgrind (broker): $t"
    run "$t" "$t.valgrind.log" env GS_TEST_VALGRIND=1 "./$t" || { cat "$t.valgrind.log"; fail=1; }
done
exit $fail
