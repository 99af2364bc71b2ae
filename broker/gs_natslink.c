/*
 * gs_natslink: NATS connection options from the config table. See
 * gs_natslink.h.
 */
#include "gs_natslink.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int
gs_natslink_check(const gs_config_t *cfg, char *err, size_t err_size)
{
    int methods = !!cfg->jetstream_user[0] + !!cfg->jetstream_nkey_seed_file[0] +
                  !!cfg->jetstream_creds_file[0];
    if (methods > 1) {
        snprintf(err, err_size, "jetstream-user, jetstream-nkey-seed-file and "
                 "jetstream-creds-file are alternatives: set at most one");
        return -1;
    }
    if (!!cfg->jetstream_user[0] != !!cfg->jetstream_password_file[0]) {
        snprintf(err, err_size, "jetstream-user and jetstream-password-file go together");
        return -1;
    }
    if (!!cfg->jetstream_tls_cert[0] != !!cfg->jetstream_tls_key[0]) {
        snprintf(err, err_size, "jetstream-tls-cert and jetstream-tls-key go together");
        return -1;
    }
    return 0;
}

/* Base32 (RFC 4648, no padding) as nkeys write it. */
static const char s_b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static size_t
s_b32_decode(const char *in, size_t n, uint8_t *out, size_t max)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = strchr(s_b32, in[i]);
        if (!c || !in[i])
            return 0;
        acc = acc << 5 | (uint32_t) (c - s_b32);
        bits += 5;
        if (bits >= 8) {
            if (w == max)
                return 0;
            out[w++] = (uint8_t) (acc >> (bits - 8));
            bits -= 8;
        }
    }
    return w;
}

static void
s_b32_encode(const uint8_t *in, size_t n, char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 5) {
            out[w++] = s_b32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits)
        out[w++] = s_b32[(acc << (5 - bits)) & 31];
    out[w] = 0;
}

/* CRC-16/XMODEM, the nkey checksum. */
static uint16_t
s_crc16(const uint8_t *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t) (p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t) (crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
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
    size_t n = strcspn(seed, " \t\r\n");
    uint8_t raw[64];
    int rc = -1;
    /* seed: 2 prefix bytes (seed, user), 32 bytes, CRC-16 little-endian */
    if (ok && n == 58 && s_b32_decode(seed, n, raw, sizeof raw) == 36 &&
        (raw[0] & 0xf8) == 18 << 3 && s_crc16(raw, 34) == (raw[34] | raw[35] << 8)) {
        uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
        crypto_sign_seed_keypair(pk, sk, raw + 2);
        uint8_t p[35];
        p[0] = (uint8_t) ((raw[0] & 7) << 5 | raw[1] >> 3);   /* the key's type byte */
        memcpy(p + 1, pk, 32);
        uint16_t c = s_crc16(p, 33);
        p[33] = (uint8_t) (c & 0xff);
        p[34] = (uint8_t) (c >> 8);
        s_b32_encode(p, sizeof p, pub);
        sodium_memzero(sk, sizeof sk);
        rc = 0;
    }
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(raw, sizeof raw);
    return rc;
}

/* The password in path (first line), into out. 0 or -1. */
static int
s_read_secret(const char *path, char *out, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fgets(out, (int) size, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    out[strcspn(out, "\r\n")] = 0;
    return 0;
}

/* The credentials and TLS settings of cfg into o; *what names the setting
 * that failed. */
static natsStatus
s_options_auth(const gs_config_t *cfg, natsOptions *o, const char **what)
{
    natsStatus s = NATS_OK;
    if (cfg->jetstream_user[0]) {
        char pw[512];
        *what = "jetstream-password-file";
        s = s_read_secret(cfg->jetstream_password_file, pw, sizeof pw)
                ? NATS_ERR : natsOptions_SetUserInfo(o, cfg->jetstream_user, pw);
        sodium_memzero(pw, sizeof pw);
        if (s != NATS_OK)
            return s;
    }
    if (cfg->jetstream_nkey_seed_file[0]) {
        char pub[64];
        *what = "jetstream-nkey-seed-file";
        s = gs_natslink_nkey_public(cfg->jetstream_nkey_seed_file, pub)
                ? NATS_ERR : natsOptions_SetNKeyFromSeed(o, pub, cfg->jetstream_nkey_seed_file);
        if (s != NATS_OK)
            return s;
    }
    if (cfg->jetstream_creds_file[0]) {
        *what = "jetstream-creds-file";
        if ((s = natsOptions_SetUserCredentialsFromFiles(o, cfg->jetstream_creds_file, NULL)))
            return s;
    }
    if (cfg->jetstream_tls_ca[0]) {
        /* a CA makes TLS required, and the server is verified against it */
        *what = "jetstream-tls-ca";
        if ((s = natsOptions_SetSecure(o, true)) ||
            (s = natsOptions_LoadCATrustedCertificates(o, cfg->jetstream_tls_ca)))
            return s;
    }
    if (cfg->jetstream_tls_cert[0]) {
        *what = "jetstream-tls-cert";
        if ((s = natsOptions_SetSecure(o, true)) ||
            (s = natsOptions_LoadCertificatesChain(o, cfg->jetstream_tls_cert,
                                                   cfg->jetstream_tls_key)))
            return s;
    }
    return NATS_OK;
}

natsOptions *
gs_natslink_options(const gs_config_t *cfg, const char *name, const char **what,
                    natsStatus *st)
{
    natsOptions *o = NULL;
    *what = "options";
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK) {
        *what = "jetstream-url";
        s = natsOptions_SetURL(o, cfg->jetstream_url);
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

