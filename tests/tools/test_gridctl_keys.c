/*
 * test_gridctl_keys: `gridctl devices enrol` and `rekey` against a real
 * broker running CURVE: the bundle they write connects, a rotated key stops
 * working, bundles are private and never overwritten, and gridctl prints no
 * secret it was not asked for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "gs_arena.h"
#include "gs_client.h"
#include "gs_testkit.h"

#ifndef GS_GRIDCTL
#error "GS_GRIDCTL must name the gridctl binary"
#endif

/* Run gridctl with args; capture stdout into out; return the exit status. */
static int
s_gridctl(const char *store, const char *args, char *out, size_t out_size)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s --store %s %s 2>/dev/null", GS_GRIDCTL, store, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, out_size - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
s_upload_with(const gs_tk_broker_t *b, const char *bundle, gs_arena_t *a, const char *uid,
              int timeout_ms)
{
    gs_client_opts_t o;
    gs_client_opts_init(&o);
    assert_int_equal(gs_curve_keys_load(&o.curve, bundle), 0);
    o.timeout_ms = timeout_ms;
    o.retries = timeout_ms < 1000 ? 0 : 2;
    gs_client_t *c = gs_client_new(b->upload, &o);
    assert_non_null(c);
    Gridsync__V1__Record *rec = gs_tk_household(a, "440305001001001", uid, uid, 1, 77);
    Gridsync__V1__Upload up = GRIDSYNC__V1__UPLOAD__INIT;
    up.device_id = "dev-1";
    up.upload_id = (char *) uid;
    up.records = &rec;
    up.n_records = 1;
    Gridsync__V1__Ack *ack = NULL;
    gs_client_error_t err;
    int rc = gs_client_upload(c, &up, &ack, &err);
    if (ack)
        gridsync__v1__ack__free_unpacked(ack, NULL);
    gs_client_destroy(&c);
    return rc;
}

static void
test_enrol_rekey(void **state)
{
    (void) state;
    char dir[64], store[128], b1[160], b2[160], args[1024], out[8192];
    gs_tk_tmpdir(dir, sizeof dir);
    snprintf(store, sizeof store, "%s/store", dir);
    gs_tk_broker_t b;
    assert_int_equal(gs_tk_broker_start_mode(&b, store, NULL, 1), 0);
    gs_arena_t *a = gs_arena_new(0);
    snprintf(b1, sizeof b1, "%s/dev1.bundle", dir);
    snprintf(b2, sizeof b2, "%s/dev1-new.bundle", dir);

    snprintf(args, sizeof args,
             "devices enrol dev-1 --collector col-1 --prefix 440305001 --bundle %s "
             "--endpoint %s --feed-endpoint %s", b1, b.upload, b.feed);
    assert_int_equal(s_gridctl(store, args, out, sizeof out), 0);
    assert_null(strstr(out, "secret")); /* the secret went to the file only */
    struct stat sb;
    assert_int_equal(stat(b1, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    gs_curve_keys_t k;
    assert_int_equal(gs_curve_keys_load(&k, b1), 0);
    assert_string_equal(k.server_public, b.server_key);
    assert_null(strstr(out, k.secret_key));

    /* the bundle connects */
    assert_int_equal(s_upload_with(&b, b1, a, "u-1", 5000), 0);

    /* never overwritten */
    assert_int_equal(s_gridctl(store, args, out, sizeof out), 1);

    /* rotation: the new bundle works, the old key is refused at handshake */
    snprintf(args, sizeof args, "devices rekey dev-1 --bundle %s", b2);
    assert_int_equal(s_gridctl(store, args, out, sizeof out), 0);
    assert_int_equal(s_upload_with(&b, b2, a, "u-2", 5000), 0);
    assert_int_equal(s_upload_with(&b, b1, a, "u-3", 300), GS_CLIENT_EAUTH);

    /* --bundle -: standard output is the bundle and nothing else, so it
     * loads as one when saved as it is */
    assert_int_equal(s_gridctl(store, "devices enrol dev-3 --collector c --prefix 440305002 "
                                      "--bundle -", out, sizeof out), 0);
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"))
        assert_true(line[0] == '#' || strstr(line, " = ") != NULL);
    char b3[160];
    snprintf(b3, sizeof b3, "%s/dev3.bundle", dir);
    snprintf(args, sizeof args, "devices enrol dev-4 --collector c --prefix 440305002 "
             "--bundle - > %s", b3);
    assert_int_equal(s_gridctl(store, args, out, sizeof out), 0);
    gs_curve_keys_t k3;
    assert_int_equal(gs_curve_keys_load(&k3, b3), 0);
    assert_string_equal(k3.server_public, b.server_key);

    /* enrol needs a bundle, and refuses a key made elsewhere */
    assert_int_equal(s_gridctl(store, "devices enrol dev-2 --collector c --prefix 440305",
                               out, sizeof out), 2);

    gs_tk_broker_stop(&b, SIGTERM);
    gs_arena_destroy(&a);
    gs_tk_rmtree(dir);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enrol_rekey),
    };
    return cmocka_run_group_tests_name("gridctl_keys", tests, NULL, NULL);
}
