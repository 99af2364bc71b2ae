#!/usr/bin/env bash
# The test suite under valgrind's memcheck (make test-valgrind).
#
# Module tests that run in one process run under valgrind themselves.
# Integration tests run as they are, but start every gridsyncd under
# valgrind (GS_TEST_VALGRIND, tests/support/gs_testkit.c): a memory error
# or a definite leak in the broker makes it exit 99 and fails the test.
# Left out, because valgrind makes them take many minutes and the ASan+UBSan
# build (make test-sanitize) runs them with LeakSanitizer: test_store,
# test_store_crash, test_gen and the fault tests.
set -euo pipefail
BUILD=${1:?usage: run_valgrind.sh BUILD_DIR}
cd "$BUILD/tests"
VG=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite)
fail=0
for t in test_validate test_schema test_prescan test_config test_fuzz_regressions; do
    [ -x "./$t" ] || continue
    echo "valgrind: $t"
    "${VG[@]}" "./$t" > "$t.valgrind.log" 2>&1 || { cat "$t.valgrind.log"; fail=1; }
done
for t in test_broker test_security test_hostile test_gridsim test_gridfeed test_gridctl \
         test_gridctl_keys; do
    [ -x "./$t" ] || continue
    echo "valgrind (broker): $t"
    GS_TEST_VALGRIND=1 "./$t" > "$t.valgrind.log" 2>&1 || { cat "$t.valgrind.log"; fail=1; }
done
exit $fail
