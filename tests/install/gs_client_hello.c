/*
 * gs_client_hello: the smallest district-system program, built by
 * test_install.sh against an installed gridsync with nothing but
 * `pkg-config --cflags --libs gridsync-client`. It reads an enrolment
 * bundle (gridctl devices enrol --bundle), connects to the broker the
 * bundle names with the bundle's CURVE keys, pings it and prints who the
 * broker takes it for: "device=ID registered=1 active=1 version=V".
 * Exit status 0 when the broker answered, 1 otherwise.
 */
#include <stdio.h>

#include <gs_client.h>

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gs_client_hello BUNDLE\n");
        return 1;
    }
    gs_curve_keys_t keys;
    gs_bundle_info_t info;
    int rc = gs_curve_keys_load(&keys, argv[1]);
    if (rc == 0)
        rc = gs_bundle_info_load(&info, argv[1]);
    if (rc != 0) {
        fprintf(stderr, "gs_client_hello: %s: %s\n", argv[1], gs_client_strerror(rc));
        return 1;
    }
    gs_client_opts_t opts;
    gs_client_opts_init(&opts);
    opts.curve = keys;
    gs_client_t *client = gs_client_new(info.upload_endpoint, &opts);
    if (!client) {
        fprintf(stderr, "gs_client_hello: cannot connect to '%s'\n", info.upload_endpoint);
        return 1;
    }
    Gridsync__V1__PingReply *reply = NULL;
    gs_client_error_t err;
    char text[512];
    rc = gs_client_ping(client, &reply, NULL, &err);
    if (rc != 0) {
        fprintf(stderr, "gs_client_hello: ping: %s\n",
                gs_client_errtext(rc, &err, text, sizeof text));
        gs_client_destroy(&client);
        return 1;
    }
    printf("device=%s registered=%d active=%d version=%s\n", reply->device_id,
           reply->registered, reply->status == GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE,
           reply->version);
    gridsync__v1__ping_reply__free_unpacked(reply, NULL);
    gs_client_destroy(&client);
    return 0;
}
