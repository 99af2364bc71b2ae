/*
 * test_endpoint: the loopback rule for --insecure-dev (broker/gs_endpoint.h)
 * on the endpoints an attacker would try, and the ones development uses.
 * test_security shows the real gridsyncd refusing to start with them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gs_endpoint.h"

static void
test_loopback_allowed(void **state)
{
    (void) state;
    static const char *const ok[] = {
        "tcp://127.0.0.1:7510",    "tcp://127.0.0.1:*",     "tcp://127.1.2.3:0",
        "tcp://127.255.255.254:65535", "tcp://localhost:7510", "tcp://[::1]:7510",
        "tcp://[0:0:0:0:0:0:0:1]:*", "ipc:///tmp/gs/upload.sock", "inproc://gs-test",
    };
    char why[200];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (!gs_endpoint_is_loopback(ok[i], why, sizeof why))
            fail_msg("%s refused: %s", ok[i], why);
    }
}

static void
test_everything_else_refused(void **state)
{
    (void) state;
    static const struct {
        const char *ep;
        const char *why;            /* part of the reason */
    } bad[] = {
        /* libzmq binds the part after ';' */
        { "tcp://127.0.0.1:1;0.0.0.0:13545", "';'" },
        { "tcp://127.0.0.1:1;127.0.0.1:13545", "';'" },
        { "tcp://0.0.0.0:13545;127.0.0.1:1", "';'" },
        { "tcp://0.0.0.0:7510", "not a loopback" },
        { "tcp://*:7510", "wildcards" },
        { "tcp://10.0.0.1:7510", "not a loopback" },
        { "tcp://128.0.0.1:7510", "not a loopback" },
        { "tcp://lo:7510", "interface" },
        { "tcp://eth0:7510", "interface" },
        { "tcp://localhost.example.com:7510", "host names" },
        { "tcp://127.1:7510", "127.x.y.z" },
        { "tcp://0x7f.0.0.1:7510", "127.x.y.z" },
        { "tcp://127.0.0.1.:7510", "127.x.y.z" },
        { "tcp:// 127.0.0.1:7510", "127.x.y.z" },
        { "tcp://[::]:7510", "[::1]" },
        { "tcp://[::ffff:127.0.0.1]:7510", "[::1]" },
        { "tcp://[::1%lo]:7510", "[::1]" },
        { "tcp://::1:7510", "127.x.y.z" },
        { "tcp://[::1:7510", "brackets" },
        { "tcp://127.0.0.1", "port" },
        { "tcp://127.0.0.1:", "port" },
        { "tcp://127.0.0.1:65536", "port" },
        { "tcp://127.0.0.1:-1", "port" },
        { "tcp://127.0.0.1:+80", "port" },
        { "tcp://127.0.0.1:80 ", "port" },
        { "tcp://:7510", "host" },
        { "TCP://127.0.0.1:7510", "only ipc" },
        { "ws://127.0.0.1:7510", "only ipc" },
        { "udp://127.0.0.1:7510", "only ipc" },
        { "pgm://127.0.0.1;239.192.1.1:5555", "only ipc" },
        { "127.0.0.1:7510", "only ipc" },
        { "", "no endpoint" },
    };
    char why[200];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (gs_endpoint_is_loopback(bad[i].ep, why, sizeof why))
            fail_msg("'%s' was allowed", bad[i].ep);
        if (!strstr(why, bad[i].why))
            fail_msg("'%s': reason \"%s\" lacks \"%s\"", bad[i].ep, why, bad[i].why);
    }
    assert_int_equal(gs_endpoint_is_loopback(NULL, NULL, 0), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_allowed),
        cmocka_unit_test(test_everything_else_refused),
    };
    return cmocka_run_group_tests_name("endpoint", tests, NULL, NULL);
}
