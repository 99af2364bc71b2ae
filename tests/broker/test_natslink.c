/*
 * test_natslink: the NATS link's options from the config table
 * (broker/gs_natslink.h): the public key derived from an nkey seed file
 * (the pair NATS's documentation uses), seed files that are not a user seed
 * refused, and each credential or TLS setting that cannot be read named in
 * the failure; and, against a real nats-server that wants that nkey, every
 * one of many connections made (nats.c 3.4.1 drops the signature of 1
 * nonce in 256, which gs_natslink_connect signs again). The links
 * themselves (user and password, nkey, TLS with a client certificate) are
 * used by the replica in test_replica.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "gs_config.h"
#include "gs_natslink.h"
#include "gs_tk_nats.h"

#define SEED "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY"
#define PUB "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"

static char s_dir[64];

static const char *
s_file(const char *name, const char *text)
{
    static char path[8][128];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 128, "%s/%s", s_dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static void
test_nkey_public_from_seed(void **state)
{
    (void) state;
    char pub[64];
    assert_int_equal(gs_natslink_nkey_public(s_file("ok.nk", SEED "\n"), pub), 0);
    assert_string_equal(pub, PUB);
    /* a changed character breaks the CRC; a public key is not a seed */
    char bad[] = SEED;
    bad[20] = bad[20] == 'A' ? 'B' : 'A';
    assert_int_equal(gs_natslink_nkey_public(s_file("crc.nk", bad), pub), -1);
    assert_int_equal(gs_natslink_nkey_public(s_file("pub.nk", PUB), pub), -1);
    assert_int_equal(gs_natslink_nkey_public(s_file("empty.nk", ""), pub), -1);
    assert_int_equal(gs_natslink_nkey_public(s_file("junk.nk", "not a seed at all"), pub), -1);
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.nk", s_dir);
    assert_int_equal(gs_natslink_nkey_public(missing, pub), -1);
}

/* Options for cfg fail, naming want. */
static void
s_fails(const gs_config_t *cfg, const char *want)
{
    const char *what = NULL;
    natsStatus st = NATS_OK;
    natsOptions *o = gs_natslink_options(cfg, "test", &what, &st);
    assert_null(o);
    assert_int_not_equal(st, NATS_OK);
    assert_string_equal(what, want);
}

static void
test_check(void **state)
{
    (void) state;
    gs_config_t c;
    gs_config_defaults(&c);
    char err[300];
    /* a URL is needed, nats:// or tls://, without credentials */
    assert_int_equal(gs_natslink_check(&c, err, sizeof err), -1);
    snprintf(c.jetstream_url, sizeof c.jetstream_url, "nats://127.0.0.1:4222, tls://n2:4222");
    assert_int_equal(gs_natslink_check(&c, err, sizeof err), 0);
    gs_config_t u = c;
    snprintf(u.jetstream_url, sizeof u.jetstream_url, "http://127.0.0.1:4222");
    assert_int_equal(gs_natslink_check(&u, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a nats://"));
    snprintf(u.jetstream_url, sizeof u.jetstream_url, "nats://city:pw@127.0.0.1:4222");
    assert_int_equal(gs_natslink_check(&u, err, sizeof err), -1);
    assert_non_null(strstr(err, "credentials in the URL"));
    /* one credential kind, complete, readable */
    gs_config_t two = c;
    snprintf(two.jetstream_user, sizeof two.jetstream_user, "city");
    snprintf(two.jetstream_password_file, sizeof two.jetstream_password_file, "%s",
             s_file("pw-check", "secret\n"));
    assert_int_equal(gs_natslink_check(&two, err, sizeof err), 0);
    snprintf(two.jetstream_creds_file, sizeof two.jetstream_creds_file, "%s",
             s_file("x.creds", "x"));
    assert_int_equal(gs_natslink_check(&two, err, sizeof err), -1);
    assert_non_null(strstr(err, "only one"));
    gs_config_t nopw = c;
    snprintf(nopw.jetstream_user, sizeof nopw.jetstream_user, "city");
    assert_int_equal(gs_natslink_check(&nopw, err, sizeof err), -1);
    assert_non_null(strstr(err, "jetstream-password-file"));
    gs_config_t tls = c;
    snprintf(tls.jetstream_tls_cert, sizeof tls.jetstream_tls_cert, "c.pem");
    assert_int_equal(gs_natslink_check(&tls, err, sizeof err), -1);
    assert_non_null(strstr(err, "jetstream-tls-key"));
    assert_int_equal(gs_natslink_tls(&c), 1);   /* the tls:// URL */
    gs_config_t plain = c;
    snprintf(plain.jetstream_url, sizeof plain.jetstream_url, "nats://127.0.0.1:4222");
    assert_int_equal(gs_natslink_tls(&plain), 0);
    snprintf(plain.jetstream_tls_ca, sizeof plain.jetstream_tls_ca, "ca.pem");
    assert_int_equal(gs_natslink_tls(&plain), 1);
    gs_config_t gone = c;
    snprintf(gone.jetstream_tls_ca, sizeof gone.jetstream_tls_ca, "%s/no-ca.pem", s_dir);
    assert_int_equal(gs_natslink_check(&gone, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot read"));
    /* the secrets themselves are checked at start: an empty password line,
     * a file that holds no nkey seed */
    gs_config_t empty = c;
    snprintf(empty.jetstream_user, sizeof empty.jetstream_user, "city");
    snprintf(empty.jetstream_password_file, sizeof empty.jetstream_password_file, "%s",
             s_file("pw-empty", "\nsecret\n"));
    assert_int_equal(gs_natslink_check(&empty, err, sizeof err), -1);
    assert_non_null(strstr(err, "must hold the password"));
    gs_config_t seed = c;
    snprintf(seed.jetstream_nkey_seed_file, sizeof seed.jetstream_nkey_seed_file, "%s",
             s_file("pub-check.nk", PUB));
    assert_int_equal(gs_natslink_check(&seed, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a NATS user nkey seed"));
    snprintf(seed.jetstream_nkey_seed_file, sizeof seed.jetstream_nkey_seed_file, "%s",
             s_file("seed-check.nk", SEED "\n"));
    assert_int_equal(gs_natslink_check(&seed, err, sizeof err), 0);
    /* which link setting is set, for a side that runs no link */
    gs_config_t none;
    gs_config_defaults(&none);
    assert_null(gs_natslink_setting_set(&none));
    snprintf(none.jetstream_tls_key, sizeof none.jetstream_tls_key, "k.pem");
    assert_string_equal(gs_natslink_setting_set(&none), "jetstream-tls-key");
}

/* Every URL of jetstream-url becomes a server of the options, in order. */
static void
test_servers(void **state)
{
    (void) state;
    gs_config_t c;
    gs_config_defaults(&c);
    snprintf(c.jetstream_url, sizeof c.jetstream_url,
             "nats://127.0.0.1:4222, nats://127.0.0.1:4223,nats://127.0.0.1:4224");
    const char *what = NULL;
    natsStatus st;
    natsOptions *o = gs_natslink_options(&c, "test", &what, &st);
    assert_non_null(o);
    natsOptions_Destroy(o);
}

static void
test_options(void **state)
{
    (void) state;
    gs_config_t c;
    gs_config_defaults(&c);
    snprintf(c.jetstream_url, sizeof c.jetstream_url, "nats://127.0.0.1:4222");
    const char *what = NULL;
    natsStatus st;
    natsOptions *o = gs_natslink_options(&c, "test", &what, &st);
    assert_non_null(o);
    natsOptions_Destroy(o);

    /* user and password: the password from its file */
    gs_config_t u = c;
    snprintf(u.jetstream_user, sizeof u.jetstream_user, "city");
    snprintf(u.jetstream_password_file, sizeof u.jetstream_password_file, "%s/none", s_dir);
    s_fails(&u, "jetstream-password-file");
    snprintf(u.jetstream_password_file, sizeof u.jetstream_password_file, "%s",
             s_file("pw", "secret\n"));
    o = gs_natslink_options(&u, "test", &what, &st);
    assert_non_null(o);
    natsOptions_Destroy(o);

    /* an nkey seed file that holds no seed */
    gs_config_t k = c;
    snprintf(k.jetstream_nkey_seed_file, sizeof k.jetstream_nkey_seed_file, "%s",
             s_file("pub-only.nk", PUB));
    s_fails(&k, "jetstream-nkey-seed-file");
    snprintf(k.jetstream_nkey_seed_file, sizeof k.jetstream_nkey_seed_file, "%s",
             s_file("user.nk", SEED));
    o = gs_natslink_options(&k, "test", &what, &st);
    assert_non_null(o);
    natsOptions_Destroy(o);

    /* TLS files that are not there */
    gs_config_t t = c;
    snprintf(t.jetstream_tls_ca, sizeof t.jetstream_tls_ca, "%s/no-ca.pem", s_dir);
    s_fails(&t, "jetstream-tls-ca");
    t = c;
    snprintf(t.jetstream_tls_cert, sizeof t.jetstream_tls_cert, "%s/no-cert.pem", s_dir);
    snprintf(t.jetstream_tls_key, sizeof t.jetstream_tls_key, "%s/no-key.pem", s_dir);
    s_fails(&t, "jetstream-tls-cert");

    /* a URL nats.c cannot take */
    gs_config_t bad = c;
    snprintf(bad.jetstream_url, sizeof bad.jetstream_url, "nats://127.0.0.1:notaport");
    o = gs_natslink_options(&bad, "test", &what, &st);
    if (o)  /* nats.c may only find out when it connects */
        natsOptions_Destroy(o);
    else
        assert_string_equal(what, "jetstream-url");
}

/* Connections through the link's options to a nats-server that wants the
 * nkey: each signs a new nonce, and a signature whose first byte is 0
 * (1 in 256) reaches the server only with gs_natslink_connect's new
 * attempt. Without it, 1,024 connections all succeed 1.8% of the time. */
static void
test_nkey_every_connection(void **state)
{
    (void) state;
    if (!gs_tk_nats_available())
        fail();
    gs_tk_nats_t n;
    assert_int_equal(gs_tk_nats_start(&n, "authorization {\n  users: [ { nkey: " PUB " } ]\n}"),
                     0);
    gs_config_t c;
    gs_config_defaults(&c);
    snprintf(c.jetstream_url, sizeof c.jetstream_url, "%s", n.url);
    snprintf(c.jetstream_nkey_seed_file, sizeof c.jetstream_nkey_seed_file, "%s",
             s_file("every.nk", SEED "\n"));
    assert_true(gs_natslink_signs(&c));
    const char *what = NULL;
    natsStatus st;
    natsOptions *o = gs_natslink_options(&c, "test", &what, &st);
    assert_non_null(o);
    int refused = 0;
    for (int i = 0; i < 1024; i++) {
        natsConnection *nc = NULL;
        natsStatus s = gs_natslink_connect(&nc, o, 1);
        if (s != NATS_OK)
            print_message("connection %d: %s\n", i, natsStatus_GetText(s));
        refused += s != NATS_OK;
        natsConnection_Destroy(nc);
    }
    natsOptions_Destroy(o);

    /* a key the server does not know is still refused */
    gs_config_t w = c;
    snprintf(w.jetstream_nkey_seed_file, sizeof w.jetstream_nkey_seed_file, "%s",
             s_file("other.nk", "SUAAOBYHA4DQOBYHA4DQOBYHA4DQOBYHA4DQOBYHA4DQOBYHA4DQOBZ5FE\n"));
    o = gs_natslink_options(&w, "test", &what, &st);
    assert_non_null(o);
    natsConnection *nc = NULL;
    assert_int_equal(gs_natslink_connect(&nc, o, 1), NATS_CONNECTION_AUTH_FAILED);
    assert_null(nc);
    natsOptions_Destroy(o);
    gs_tk_nats_destroy(&n);
    assert_int_equal(refused, 0);
}

int
main(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/gs-natslink-XXXXXX");
    if (!mkdtemp(s_dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nkey_public_from_seed),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_servers),
        cmocka_unit_test(test_nkey_every_connection),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    DIR *d = opendir(s_dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[400];
        snprintf(p, sizeof p, "%s/%s", s_dir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(s_dir);
    nats_Close();
    return rc;
}
