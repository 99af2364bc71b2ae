/*
 * test_config: gridsyncd's option table, file parser and flags.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gs_config.h"

static void
test_defaults(void **state)
{
    (void) state;
    gs_config_t c;
    gs_config_defaults(&c);
    assert_string_equal(c.store, "var/store");
    assert_string_equal(c.upload_endpoint, "tcp://127.0.0.1:7510");
    assert_int_equal(c.max_records, 1000);
    assert_int_equal(c.no_sync, 0);
    assert_int_equal(c.feed_restricted, 0);
}

static void
test_set_checks_bounds_and_types(void **state)
{
    (void) state;
    gs_config_t c;
    gs_config_defaults(&c);
    char err[256];
    assert_int_equal(gs_config_set(&c, "max-records", "50", err, sizeof err), 0);
    assert_int_equal(c.max_records, 50);
    assert_int_equal(gs_config_set(&c, "max-records", "0", err, sizeof err), -1);
    assert_non_null(strstr(err, "outside"));
    assert_int_equal(gs_config_set(&c, "max-records", "12abc", err, sizeof err), -1);
    assert_non_null(strstr(err, "not a whole number"));
    assert_int_equal(gs_config_set(&c, "no-sync", "maybe", err, sizeof err), -1);
    assert_int_equal(gs_config_set(&c, "no-such-option", "1", err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown option"));
    assert_int_equal(c.max_records, 50); /* failed sets change nothing */
}

static void
test_file_then_flags(void **state)
{
    (void) state;
    char path[] = "/tmp/gs-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "# a comment\n"
                        "store = /srv/gridsync   # trailing comment\n"
                        "readers = 4\n"
                        "\n"
                        "log-format = \"json\"\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t) sizeof text - 1);
    close(fd);
    gs_config_t c;
    gs_config_defaults(&c);
    char err[256];
    char *argv[] = { "gridsyncd", "--readers=3", "--config", path, "--no-sync", NULL };
    assert_int_equal(gs_config_parse_args(&c, 5, argv, err, sizeof err), 0);
    assert_string_equal(c.store, "/srv/gridsync");
    assert_int_equal(c.readers, 3);            /* flag beats file */
    assert_string_equal(c.log_format, "json");
    assert_int_equal(c.no_sync, 1);            /* bare boolean flag */
    unlink(path);
}

static void
test_file_errors_name_the_line(void **state)
{
    (void) state;
    char path[] = "/tmp/gs-config-XXXXXX";
    int fd = mkstemp(path);
    const char text[] = "readers = 2\nthis line is wrong\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t) sizeof text - 1);
    close(fd);
    gs_config_t c;
    gs_config_defaults(&c);
    char err[256];
    assert_int_equal(gs_config_load(&c, path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":2:"));
    unlink(path);
    assert_int_equal(gs_config_load(&c, "/nonexistent/x.conf", err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
}

static void
test_bad_flags(void **state)
{
    (void) state;
    gs_config_t c;
    gs_config_defaults(&c);
    char err[256];
    char *a1[] = { "gridsyncd", "stray", NULL };
    assert_int_equal(gs_config_parse_args(&c, 2, a1, err, sizeof err), -1);
    char *a2[] = { "gridsyncd", "--readers", NULL };
    assert_int_equal(gs_config_parse_args(&c, 2, a2, err, sizeof err), -1);
    assert_non_null(strstr(err, "needs a value"));
}

/* The shipped example file is valid and sets what it says. */
static void
test_example_file_loads(void **state)
{
    (void) state;
    gs_config_t c;
    gs_config_defaults(&c);
    char err[256];
    int rc = gs_config_load(&c, GS_EXAMPLE_CONF, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_set_checks_bounds_and_types),
        cmocka_unit_test(test_file_then_flags),
        cmocka_unit_test(test_file_errors_name_the_line),
        cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_example_file_loads),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
