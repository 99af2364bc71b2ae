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
#include "gs_store.h"
#include "gs_store_debug.h"
#include "gs_testkit.h"
#include <zmq.h>

#ifndef GS_GRIDCTL
#error "GS_GRIDCTL must name the gridctl binary"
#endif

/* Run gridctl with args; capture stdout into out (and stderr too when
 * with_stderr); return the exit status. */
static int
s_gridctl_run(const char *store, const char *args, int with_stderr, char *out,
              size_t out_size)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s --store %s %s %s", GS_GRIDCTL, store, args,
             with_stderr ? "2>&1" : "2>/dev/null");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, out_size - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
s_gridctl(const char *store, const char *args, char *out, size_t out_size)
{
    return s_gridctl_run(store, args, 0, out, out_size);
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

/* Run gridctl with args; capture stdout and stderr together. */
static int
s_gridctl_all(const char *store, const char *args, char *out, size_t out_size)
{
    return s_gridctl_run(store, args, 1, out, out_size);
}

/* A new key pair for the broker b, written as a bundle naming its upload
 * endpoint; keys gets the pair. */
static void
s_bundle_new(const gs_tk_broker_t *b, const char *path, gs_curve_keys_t *keys)
{
    memset(keys, 0, sizeof *keys);
    assert_int_equal(zmq_curve_keypair(keys->public_key, keys->secret_key), 0);
    memcpy(keys->server_public, b->server_key, 41);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "server_public = %s\npublic_key = %s\nsecret_key = %s\nupload_endpoint = %s\n",
            keys->server_public, keys->public_key, keys->secret_key, b->upload);
    assert_int_equal(fclose(f), 0);
}

/* gridctl ping with a bundle: its exit status says whether the key is
 * enrolled, active and may touch something (0), the handshake was refused
 * (3), the key may touch nothing (4), nothing answered (1) or the command
 * line was wrong (2). */
static void
test_ping(void **state)
{
    (void) state;
    char dir[64], store[128], b1[160], bn[160], bd[160], ba[160], args[1024], out[8192];
    gs_tk_tmpdir(dir, sizeof dir);
    snprintf(store, sizeof store, "%s/store", dir);
    gs_tk_broker_t b;
    assert_int_equal(gs_tk_broker_start_mode(&b, store, NULL, 1), 0);
    snprintf(b1, sizeof b1, "%s/dev1.bundle", dir);
    snprintf(args, sizeof args,
             "devices enrol dev-1 --collector col-1 --prefix 440305001 --prefix 440305002 "
             "--bundle %s --endpoint %s", b1, b.upload);
    assert_int_equal(s_gridctl(store, args, out, sizeof out), 0);

    /* enrolled and active: who it is and what it may touch */
    snprintf(args, sizeof args, "ping --keys %s --count 3", b1);
    assert_int_equal(s_gridctl_all(store, args, out, sizeof out), 0);
    assert_non_null(strstr(out, b.upload));
    assert_non_null(strstr(out, "handshake ok"));
    assert_non_null(strstr(out, "dev-1 (device, active)"));
    assert_non_null(strstr(out, "440305001 440305002"));
    assert_non_null(strstr(out, "store epoch"));
    assert_non_null(strstr(out, "ping 3"));
    assert_non_null(strstr(out, "median"));

    snprintf(args, sizeof args, "--json ping --keys %s", b1);
    assert_int_equal(s_gridctl(store, args, out, sizeof out), 0);
    assert_true(out[0] == '{');
    assert_non_null(strstr(out, "\"handshake\":\"ok\""));
    assert_non_null(strstr(out, "\"device_id\":\"dev-1\""));
    assert_non_null(strstr(out, "\"role\":\"device\""));
    assert_non_null(strstr(out, "\"prefixes\":[\"440305001\",\"440305002\"]"));
    assert_non_null(strstr(out, "\"exit\":0}\n"));

    /* a key the broker does not know: refused at the handshake */
    gs_curve_keys_t k;
    snprintf(bn, sizeof bn, "%s/unknown.bundle", dir);
    s_bundle_new(&b, bn, &k);
    snprintf(args, sizeof args, "ping --keys %s --timeout-ms 5000", bn);
    assert_int_equal(s_gridctl_all(store, args, out, sizeof out), 3);
    assert_non_null(strstr(out, "handshake refused"));

    /* a DISTRICT entry with no prefixes (written as an old registry could):
     * answered, and told it may touch nothing */
    snprintf(bd, sizeof bd, "%s/district.bundle", dir);
    s_bundle_new(&b, bd, &k);
    gs_store_t *st = gs_store_new(store, NULL, NULL);
    assert_non_null(st);
    Gridsync__V1__Device d = GRIDSYNC__V1__DEVICE__INIT;
    d.device_id = "district-none";
    d.public_key = k.public_key;
    d.role = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT;
    uint8_t buf[256];
    size_t n = gridsync__v1__device__pack(&d, buf);
    assert_int_equal(gs_store_debug_put(st, "devices", d.device_id, strlen(d.device_id), buf, n),
                     0);
    assert_int_equal(gs_store_debug_put(st, "device_keys", k.public_key, 40, d.device_id,
                                        strlen(d.device_id)), 0);
    /* and an ADMIN */
    snprintf(ba, sizeof ba, "%s/admin.bundle", dir);
    gs_curve_keys_t ak;
    s_bundle_new(&b, ba, &ak);
    Gridsync__V1__Device ad = GRIDSYNC__V1__DEVICE__INIT;
    ad.device_id = "admin-1";
    ad.public_key = ak.public_key;
    ad.role = GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN;
    assert_int_equal(gs_store_device_put(st, &ad), 0);
    gs_store_destroy(&st);
    snprintf(args, sizeof args, "ping --keys %s", bd);
    assert_int_equal(s_gridctl_all(store, args, out, sizeof out), 4);
    assert_non_null(strstr(out, "district-none (district, active)"));
    assert_non_null(strstr(out, "nothing: no prefixes assigned"));
    snprintf(args, sizeof args, "ping --keys %s", ba);
    assert_int_equal(s_gridctl_all(store, args, out, sizeof out), 0);
    assert_non_null(strstr(out, "admin-1 (admin, active)"));
    assert_non_null(strstr(out, "every grid (ADMIN)"));

    /* revoked: its handshake is refused */
    assert_int_equal(s_gridctl(store, "devices revoke dev-1", out, sizeof out), 0);
    snprintf(args, sizeof args, "ping --keys %s --timeout-ms 5000", b1);
    assert_int_equal(s_gridctl_all(store, args, out, sizeof out), 3);
    assert_non_null(strstr(out, "handshake refused"));
    snprintf(args, sizeof args, "--json ping --keys %s --timeout-ms 5000", b1);
    assert_int_equal(s_gridctl(store, args, out, sizeof out), 3);
    assert_non_null(strstr(out, "\"handshake\":\"refused\""));
    gs_tk_broker_stop(&b, SIGTERM);

    /* nothing listening: no answer in time */
    snprintf(args, sizeof args, "ping --keys %s --timeout-ms 300", ba);
    assert_int_equal(s_gridctl_all(store, args, out, sizeof out), 1);
    snprintf(args, sizeof args, "--json ping --keys %s --timeout-ms 300", ba);
    assert_int_equal(s_gridctl(store, args, out, sizeof out), 1);
    assert_non_null(strstr(out, "\"error\":"));
    assert_non_null(strstr(out, "\"exit\":1}\n"));

    /* usage: no bundle and no endpoint */
    assert_int_equal(s_gridctl_all(store, "ping", out, sizeof out), 2);
    assert_non_null(strstr(out, "--keys"));
    gs_tk_rmtree(dir);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enrol_rekey),
        cmocka_unit_test(test_ping),
    };
    return cmocka_run_group_tests_name("gridctl_keys", tests, NULL, NULL);
}
