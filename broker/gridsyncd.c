/*
 * gridsyncd: the gridsync broker. Thin on purpose: parse settings, set up
 * logging, run the broker until SIGTERM/SIGINT, exit. See gs_broker.h.
 */
#include <stdio.h>
#include <stdlib.h>

#include "gs_broker.h"
#include "gs_config.h"
#include "gs_log.h"

int
main(int argc, char **argv)
{
    gs_config_t cfg;
    gs_config_defaults(&cfg);
    char err[512];
    int rc = gs_config_parse_args(&cfg, argc, argv, err, sizeof err);
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "gridsyncd: %s\n", err);
        return 2;
    }
    if (gs_log_setup(cfg.log_level, cfg.log_format)) {
        fprintf(stderr, "gridsyncd: log-level must be debug|info|warn|error and "
                        "log-format kv|json\n");
        return 2;
    }
    gs_broker_t *broker = gs_broker_new(&cfg);
    if (!broker)
        return 1;
    gs_broker_handle_signals(broker);
    rc = gs_broker_run(broker);
    gs_broker_destroy(&broker);
    return rc ? 1 : 0;
}
