/*
 * gs_natslink: NATS connection options from the config table. See
 * gs_natslink.h.
 */
#include "gs_natslink.h"

#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int
s_readable(const char *name, const char *path, char *err, size_t err_size)
{
    if (!path[0] || access(path, R_OK) == 0)
        return 0;
    snprintf(err, err_size, "%s: cannot read '%s': %s", name, path, strerror(errno));
    return -1;
}

/* Split jetstream-url (comma-separated, spaces after a comma allowed) in
 * buf, a copy of it, into at most max URLs in out. Returns how many URLs
 * there are, which may be more than max (then only max are in out). */
static int
s_urls(const gs_config_t *c, char *buf, size_t size, const char **out, int max)
{
    snprintf(buf, size, "%s", c->jetstream_url);
    int n = 0;
    for (char *save = NULL, *u = strtok_r(buf, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
        while (*u == ' ')
            u++;
        if (n < max)
            out[n] = u;
        n++;
    }
    return n;
}

const char *
gs_natslink_setting_set(const gs_config_t *c)
{
    const char *names[] = { "jetstream-user", "jetstream-password-file",
                            "jetstream-nkey-seed-file", "jetstream-creds-file",
                            "jetstream-tls-ca", "jetstream-tls-cert", "jetstream-tls-key" };
    const char *values[] = { c->jetstream_user, c->jetstream_password_file,
                             c->jetstream_nkey_seed_file, c->jetstream_creds_file,
                             c->jetstream_tls_ca, c->jetstream_tls_cert, c->jetstream_tls_key };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (values[i][0])
            return names[i];
    return NULL;
}

int
gs_natslink_plaintext_auth(const gs_config_t *c)
{
    return !gs_natslink_tls(c) && (c->jetstream_user[0] || c->jetstream_nkey_seed_file[0] ||
                                   c->jetstream_creds_file[0]);
}

/* The secret on the first line of the file at path, without its line end,
 * into out. Returns 0, or -1 (out wiped) when the file cannot be read or
 * the line is empty or does not fit. */
static int
s_read_secret(const char *path, char *out, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fgets(out, (int) size, f) != NULL;
    fclose(f);
    size_t n = ok ? strlen(out) : 0;
    int whole = n > 0 && (out[n - 1] == '\n' || n < size - 1);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = 0;
    if (!ok || n == 0 || !whole) {
        sodium_memzero(out, size);
        return -1;
    }
    return 0;
}

int
gs_natslink_check(const gs_config_t *c, char *err, size_t err_size)
{
    /* every URL nats:// or tls:// */
    char urls[sizeof c->jetstream_url];
    const char *url[GS_NATSLINK_MAX_URLS];
    int n = s_urls(c, urls, sizeof urls, url, GS_NATSLINK_MAX_URLS);
    for (int i = 0; i < n && i < GS_NATSLINK_MAX_URLS; i++) {
        const char *u = url[i];
        if (strncmp(u, "nats://", 7) != 0 && strncmp(u, "tls://", 6) != 0) {
            snprintf(err, err_size, "jetstream-url: '%s' is not a nats:// or tls:// URL", u);
            return -1;
        }
        /* a URL is logged and shown by ps: no secret in it */
        if (strchr(u, '@')) {
            snprintf(err, err_size, "jetstream-url: credentials in the URL are refused (it is "
                     "logged); use jetstream-user and jetstream-password-file");
            return -1;
        }
    }
    if (n == 0 || n > GS_NATSLINK_MAX_URLS) {
        snprintf(err, err_size, "jetstream-url: give 1 to %d URLs, comma-separated",
                 GS_NATSLINK_MAX_URLS);
        return -1;
    }
    int methods = !!c->jetstream_user[0] + !!c->jetstream_nkey_seed_file[0] +
                  !!c->jetstream_creds_file[0];
    if (methods > 1) {
        snprintf(err, err_size, "set only one of jetstream-user (with "
                 "jetstream-password-file), jetstream-nkey-seed-file and jetstream-creds-file");
        return -1;
    }
    if (!!c->jetstream_user[0] != !!c->jetstream_password_file[0]) {
        snprintf(err, err_size, "jetstream-user and jetstream-password-file go together: "
                 "set both or neither");
        return -1;
    }
    if (!!c->jetstream_tls_cert[0] != !!c->jetstream_tls_key[0]) {
        snprintf(err, err_size, "jetstream-tls-cert and jetstream-tls-key go together: "
                 "set both or neither");
        return -1;
    }
    const struct {
        const char *name;
        const char *value;
    } files[] = {
        { "jetstream-password-file", c->jetstream_password_file },
        { "jetstream-nkey-seed-file", c->jetstream_nkey_seed_file },
        { "jetstream-creds-file", c->jetstream_creds_file },
        { "jetstream-tls-ca", c->jetstream_tls_ca },
        { "jetstream-tls-cert", c->jetstream_tls_cert },
        { "jetstream-tls-key", c->jetstream_tls_key },
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (s_readable(files[i].name, files[i].value, err, err_size))
            return -1;
    /* the secrets themselves, so that a bad one stops the start rather
     * than every connection attempt */
    char secret[GS_NATSLINK_SECRET_MAX];
    if (c->jetstream_password_file[0] &&
        s_read_secret(c->jetstream_password_file, secret, sizeof secret)) {
        snprintf(err, err_size, "jetstream-password-file: the first line of '%s' must hold the "
                 "password (1 to %zu bytes)", c->jetstream_password_file, sizeof secret - 2);
        return -1;
    }
    sodium_memzero(secret, sizeof secret);
    char pub[64];
    if (c->jetstream_nkey_seed_file[0] && gs_natslink_nkey_public(c->jetstream_nkey_seed_file,
                                                                  pub)) {
        snprintf(err, err_size, "jetstream-nkey-seed-file: the first line of '%s' is not a NATS "
                 "user nkey seed (SU...)", c->jetstream_nkey_seed_file);
        return -1;
    }
    return 0;
}

int
gs_natslink_tls(const gs_config_t *c)
{
    if (c->jetstream_tls_ca[0] || c->jetstream_tls_cert[0])
        return 1;
    char urls[sizeof c->jetstream_url];
    snprintf(urls, sizeof urls, "%s", c->jetstream_url);
    for (char *save = NULL, *u = strtok_r(urls, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
        while (*u == ' ')
            u++;
        if (!strncmp(u, "tls://", 6))
            return 1;
    }
    return 0;
}

/* ---- nkeys -------------------------------------------------------------------- */

/* NATS nkeys are RFC 4648 base32 (no padding) of a prefix byte (two for a
 * seed), the key, and a CRC-16 (XMODEM: polynomial 0x1021, start 0) of
 * what precedes it, little-endian. A user seed starts "SU", a user public
 * key "U". */
#define S_NKEY_SEED_PREFIX (18 << 3)
#define S_NKEY_USER_PREFIX (20 << 3)

static uint16_t
s_crc16(const uint8_t *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t) (p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (uint16_t) ((crc << 1) ^ 0x1021) : (uint16_t) (crc << 1);
    }
    return crc;
}

static const char s_b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* Decode base32 text (stopping at the first character outside the
 * alphabet) into out; returns the bytes written, or -1 when out is too
 * small or bits are left over. */
static int
s_b32_decode(const char *in, uint8_t *out, size_t size)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (; *in; in++) {
        const char *p = strchr(s_b32, *in);
        if (!p || !*in)
            break;
        acc = (acc << 5) | (uint32_t) (p - s_b32);
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (n == size)
                return -1;
            out[n++] = (uint8_t) (acc >> bits);
        }
    }
    return (acc & ((1u << bits) - 1)) ? -1 : (int) n;
}

static void
s_b32_encode(const uint8_t *in, size_t n, char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = s_b32[(acc >> bits) & 31];
        }
    }
    if (bits > 0)
        out[o++] = s_b32[(acc << (5 - bits)) & 31];
    out[o] = 0;
}

int
gs_natslink_nkey_public_seed(const char *seed, char *out, size_t size)
{
    uint8_t raw[40];
    int n = s_b32_decode(seed, raw, sizeof raw);
    int ok = n == 36 && s_crc16(raw, 34) == (uint16_t) (raw[34] | raw[35] << 8) &&
             (raw[0] & 0xf8) == S_NKEY_SEED_PREFIX &&
             (((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3)) == S_NKEY_USER_PREFIX &&
             size >= 57;
    uint8_t pub[35];
    if (ok) {
        uint8_t sk[crypto_sign_SECRETKEYBYTES];
        pub[0] = S_NKEY_USER_PREFIX;
        crypto_sign_seed_keypair(pub + 1, sk, raw + 2);
        sodium_memzero(sk, sizeof sk);
        uint16_t crc = s_crc16(pub, 33);
        pub[33] = (uint8_t) (crc & 0xff);
        pub[34] = (uint8_t) (crc >> 8);
        s_b32_encode(pub, sizeof pub, out);
    } else if (size) {
        out[0] = 0;
    }
    sodium_memzero(raw, sizeof raw);
    return ok ? 0 : -1;
}

int
gs_natslink_nkey_public(const char *path, char pub[64])
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char seed[128] = "";
    int ok = fgets(seed, sizeof seed, f) != NULL;
    fclose(f);
    seed[strcspn(seed, " \t\r\n")] = 0;
    int rc = ok ? gs_natslink_nkey_public_seed(seed, pub, 64) : -1;
    sodium_memzero(seed, sizeof seed);
    return rc;
}

int
gs_natslink_signs(const gs_config_t *c)
{
    return c->jetstream_nkey_seed_file[0] || c->jetstream_creds_file[0];
}

natsStatus
gs_natslink_connect(natsConnection **nc, natsOptions *o, int signs)
{
    natsStatus s = NATS_ERR;
    for (int attempt = 0; attempt < (signs ? GS_NATSLINK_SIGN_ATTEMPTS : 1); attempt++) {
        s = natsConnection_Connect(nc, o);
        if (s != NATS_CONNECTION_AUTH_FAILED)
            break;
    }
    return s;
}

natsStatus
gs_natslink_set_auth(natsOptions *o, const gs_config_t *c, const char *password,
                     const char *nkey_public, const char **what)
{
    natsStatus s = NATS_OK;
    if (c->jetstream_user[0]) {
        *what = "jetstream-user";
        if ((s = natsOptions_SetUserInfo(o, c->jetstream_user, password)))
            return s;
    }
    if (c->jetstream_nkey_seed_file[0]) {
        *what = "jetstream-nkey-seed-file";
        if ((s = natsOptions_SetNKeyFromSeed(o, nkey_public, c->jetstream_nkey_seed_file)))
            return s;
    }
    if (c->jetstream_creds_file[0]) {
        *what = "jetstream-creds-file";
        if ((s = natsOptions_SetUserCredentialsFromFiles(o, c->jetstream_creds_file, NULL)))
            return s;
    }
    if (gs_natslink_tls(c)) {
        *what = "tls";
        if ((s = natsOptions_SetSecure(o, true)))
            return s;
        if (c->jetstream_tls_ca[0]) {
            /* the server is verified against this CA */
            *what = "jetstream-tls-ca";
            if ((s = natsOptions_LoadCATrustedCertificates(o, c->jetstream_tls_ca)))
                return s;
        }
        if (c->jetstream_tls_cert[0]) {
            *what = "jetstream-tls-cert";
            if ((s = natsOptions_LoadCertificatesChain(o, c->jetstream_tls_cert,
                                                       c->jetstream_tls_key)))
                return s;
        }
    }
    return NATS_OK;
}

/* The secrets of cfg's link read now (the password, the nkey's public
 * key), then gs_natslink_set_auth. */
static natsStatus
s_options_auth(const gs_config_t *cfg, natsOptions *o, const char **what)
{
    char pw[GS_NATSLINK_SECRET_MAX] = "", pub[64] = "";
    if (cfg->jetstream_user[0]) {
        *what = "jetstream-password-file";
        if (s_read_secret(cfg->jetstream_password_file, pw, sizeof pw))
            return NATS_ERR;
    }
    if (cfg->jetstream_nkey_seed_file[0]) {
        *what = "jetstream-nkey-seed-file";
        if (gs_natslink_nkey_public(cfg->jetstream_nkey_seed_file, pub)) {
            sodium_memzero(pw, sizeof pw);
            return NATS_ERR;
        }
    }
    natsStatus s = gs_natslink_set_auth(o, cfg, pw, pub, what);
    sodium_memzero(pw, sizeof pw);
    return s;
}

natsOptions *
gs_natslink_options(const gs_config_t *cfg, const char *name, const char **what,
                    natsStatus *st)
{
    natsOptions *o = NULL;
    *what = "options";
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK) {
        /* every server of a cluster, tried in the order given */
        char urls[sizeof cfg->jetstream_url];
        const char *url[GS_NATSLINK_MAX_URLS];
        int n = s_urls(cfg, urls, sizeof urls, url, GS_NATSLINK_MAX_URLS);
        *what = "jetstream-url";
        s = n > GS_NATSLINK_MAX_URLS ? NATS_INVALID_ARG : natsOptions_SetServers(o, url, n);
        if (s == NATS_OK)
            s = natsOptions_SetNoRandomize(o, true);
    }
    if (s == NATS_OK)
        s = natsOptions_SetName(o, name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK)   /* after an outage nats.c reconnects for ever */
        s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 250);
    if (s == NATS_OK)
        s = s_options_auth(cfg, o, what);
    *st = s;
    if (s != NATS_OK) {
        natsOptions_Destroy(o);
        return NULL;
    }
    return o;
}

