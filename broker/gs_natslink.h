/*
 * gs_natslink: the broker's NATS connection options, from the config
 * table's jetstream-* keys: the server URL(s), reconnection for ever after
 * an outage, and the credentials and TLS settings (user and password file,
 * nkey seed file, .creds file; CA, client certificate and key). One place
 * for the federation's link settings, whoever connects (the city replica,
 * gs_replica.c; the district bridge can use the same).
 *
 * Secrets are read from files and wiped from memory once handed to nats.c;
 * none is ever logged.
 *
 * Threads: any thread; no state of its own.
 */
#ifndef GS_NATSLINK_H
#define GS_NATSLINK_H

#include <nats/nats.h>

#include "gs_config.h"

#define GS_NATSLINK_MAX_URLS 16     /* servers in jetstream-url */
#define GS_NATSLINK_SECRET_MAX 512  /* a password file's first line, line end included */

/* The rules of the NATS link's settings, fail closed, for the bridge and
 * the replica alike: jetstream-url is 1 to GS_NATSLINK_MAX_URLS URLs,
 * comma-separated, each nats:// or tls:// and without credentials (user@:
 * URLs are logged); at most one of jetstream-user, jetstream-nkey-seed-file
 * and jetstream-creds-file; jetstream-user with jetstream-password-file
 * (and only with it); jetstream-tls-cert with jetstream-tls-key; every
 * file named can be read; the password file's first line holds a password
 * and the nkey seed file's a user nkey seed. Returns 0, or -1 with a message a person can
 * act on in err. (Whether the link is wanted at all, and the rest of each
 * side's settings, are the caller's rules.) */
int gs_natslink_check(const gs_config_t *cfg, char *err, size_t err_size);

/* The name of the first link setting (jetstream-user or one of the
 * credential and TLS files) that cfg sets, or NULL: for a side that runs
 * no link and must refuse settings that would do nothing. */
const char *gs_natslink_setting_set(const gs_config_t *cfg);

/* Whether cfg's link authenticates without TLS (credentials set, no TLS),
 * which the bridge and the replica warn about at start. */
int gs_natslink_plaintext_auth(const gs_config_t *cfg);

/* Whether cfg's link uses TLS: a tls:// URL, or any of jetstream-tls-ca,
 * jetstream-tls-cert. */
int gs_natslink_tls(const gs_config_t *cfg);

/* Set the credentials and TLS of cfg's link on o: the user with password
 * (read by the caller from jetstream-password-file), the nkey seed file
 * with its public key (gs_natslink_nkey_public), the .creds file; TLS when
 * gs_natslink_tls, with the CA and the client certificate and key when
 * given. *what names the setting nats.c refused. Returns nats.c's status. */
natsStatus gs_natslink_set_auth(natsOptions *o, const gs_config_t *cfg, const char *password,
                                const char *nkey_public, const char **what);

/* nats.c options for cfg's NATS link, with connection name name. NULL on
 * failure, with *what naming the setting that failed ("jetstream-url",
 * "jetstream-password-file", ...) and *st nats.c's status (NATS_ERR for a
 * secret file that cannot be read or an nkey seed that is not one). The
 * caller destroys the options (natsOptions_Destroy). Check the settings
 * with gs_natslink_check first. */
natsOptions *gs_natslink_options(const gs_config_t *cfg, const char *name, const char **what,
                                 natsStatus *st);

/* Attempts at a connection whose credentials sign the server's nonce. */
#define GS_NATSLINK_SIGN_ATTEMPTS 4

/* Whether cfg's credentials sign the server's nonce (an nkey seed file or
 * a .creds file), which gs_natslink_connect must be told. */
int gs_natslink_signs(const gs_config_t *cfg);

/* natsConnection_Connect(nc, o), tried again at once while a nonce-signing
 * link (signs) is refused as an authorization violation, up to
 * GS_NATSLINK_SIGN_ATTEMPTS in all. nats.c 3.4.1 (Debian 12) sends no
 * signature when the signature's first byte is 0 (its base64 encoder takes
 * a zero first byte for an empty input; fixed upstream in 3.10), so 1
 * connection in 256 with a correct nkey or .creds is refused; each attempt
 * signs a new nonce. A wrong key is still refused, after the last attempt.
 * Returns nats.c's status of the last attempt. */
natsStatus gs_natslink_connect(natsConnection **nc, natsOptions *o, int signs);

/* The public key ("U...", 56 characters) of the NATS user nkey seed
 * ("SU...", as nk and nsc write it) into out (at least 57 bytes).
 * Returns 0, or -1 when seed is not a user seed (bad base32, checksum or
 * prefix); out is then "". */
int gs_natslink_nkey_public_seed(const char *seed, char *out, size_t size);

/* The public user key ("U" and 55 more characters) of the nkey seed in
 * the first line of file path: nats.c signs the server's nonce with the
 * seed but has to name the public key in CONNECT. The seed's base32,
 * prefix and CRC-16 are checked. Returns 0, or -1 when the file cannot be
 * read or holds no user seed. */
int gs_natslink_nkey_public(const char *path, char pub[64]);

#endif
