/*
 * gs_endpoint: the loopback rule for --insecure-dev. See gs_endpoint.h.
 *
 * The check once looked at the text before ';' only, while libzmq binds
 * "tcp://SRC;DST" on DST; so it now parses the whole endpoint and allows a
 * short list of forms it fully understands rather than refusing known bad
 * ones.
 */
#include "gs_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int
s_no(char *why, size_t why_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
s_no(char *why, size_t why_size, const char *fmt, ...)
{
    if (why && why_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_size, fmt, ap);
        va_end(ap);
    }
    return 0;
}

/* "*" or a decimal 0..65535 with no sign, space or leading '+'. */
static int
s_port_ok(const char *p)
{
    if (!strcmp(p, "*"))
        return 1;
    size_t n = strlen(p);
    if (n == 0 || n > 5)
        return 0;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        v = v * 10 + (unsigned) (p[i] - '0');
    }
    return v <= 65535;
}

int
gs_endpoint_is_loopback(const char *ep, char *why, size_t why_size)
{
    if (why && why_size)
        why[0] = '\0';
    if (!ep || !*ep)
        return s_no(why, why_size, "no endpoint given");
    if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9))
        return 1;
    if (strncmp(ep, "tcp://", 6))
        return s_no(why, why_size, "only ipc://, inproc:// and tcp:// on loopback are allowed");
    const char *addr = ep + 6;
    if (strchr(addr, ';'))
        return s_no(why, why_size,
                    "a ';' (source;destination) is not allowed: libzmq binds the part after it");
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return s_no(why, why_size, "no port (tcp://HOST:PORT)");
    if (!s_port_ok(colon + 1))
        return s_no(why, why_size, "port '%.16s' is not a number from 0 to 65535 or '*'",
                    colon + 1);
    char host[64];
    size_t hl = (size_t) (colon - addr);
    if (hl == 0 || hl >= sizeof host)
        return s_no(why, why_size, "host is empty or too long");
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (!strcmp(host, "localhost"))
        return 1;
    if (host[0] == '[') {
        if (host[hl - 1] != ']')
            return s_no(why, why_size, "an IPv6 address must be in brackets: [::1]");
        host[hl - 1] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host + 1, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6))
            return 1;
        return s_no(why, why_size, "the only IPv6 address allowed is [::1]");
    }
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) != 1)
        return s_no(why, why_size,
                    "host '%s' is not 127.x.y.z, localhost or [::1] (wildcards, interface "
                    "names and other host names are refused)", host);
    if ((ntohl(a4.s_addr) >> 24) != 127)
        return s_no(why, why_size, "%s is not a loopback address (127.x.y.z)", host);
    return 1;
}
