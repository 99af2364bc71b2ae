/*
 * gs_log: see gs_log.h. Formatting happens into a stack buffer and goes out
 * with a single write(2), which keeps lines whole across threads without a
 * lock.
 */
#include "gs_log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int s_level = GS_LOG_INFO;
static atomic_int s_json = 0;

static const char *s_level_names[] = { "debug", "info", "warn", "error" };

int
gs_log_setup(const char *level, const char *format)
{
    int lv = -1;
    for (int i = 0; i < 4; i++)
        if (level && strcmp(level, s_level_names[i]) == 0)
            lv = i;
    if (lv < 0)
        return -1;
    int json;
    if (!format || strcmp(format, "kv") == 0)
        json = 0;
    else if (strcmp(format, "json") == 0)
        json = 1;
    else
        return -1;
    atomic_store(&s_level, lv);
    atomic_store(&s_json, json);
    return 0;
}

int
gs_log_level(void)
{
    return atomic_load(&s_level);
}

static int
s_is_number(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    size_t i = 0;
    if (s[0] == '-')
        i++;
    int digits = 0, dots = 0;
    for (; i < n; i++) {
        if (isdigit((unsigned char) s[i]))
            digits++;
        else if (s[i] == '.' && dots == 0)
            dots++;
        else
            return 0;
    }
    return digits > 0;
}

/* Append s[0..n) to out as JSON string contents. */
static size_t
s_json_escape(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 7 < cap; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char) c;
        } else if (c < 0x20) {
            o += (size_t) snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char) c;
        }
    }
    return o;
}

/* Convert "k=v k2="v two"" into JSON members appended to out. */
static size_t
s_kv_to_json(char *out, size_t cap, const char *kv)
{
    size_t o = 0;
    const char *p = kv;
    while (*p && o + 16 < cap) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        size_t kn = (size_t) (p - k);
        const char *v = "";
        size_t vn = 0;
        int quoted = 0;
        if (*p == '=') {
            p++;
            if (*p == '"') {
                quoted = 1;
                v = ++p;
                while (*p && *p != '"')
                    p++;
                vn = (size_t) (p - v);
                if (*p == '"')
                    p++;
            } else {
                v = p;
                while (*p && *p != ' ')
                    p++;
                vn = (size_t) (p - v);
            }
        }
        out[o++] = ',';
        out[o++] = '"';
        o += s_json_escape(out + o, cap - o, k, kn);
        out[o++] = '"';
        out[o++] = ':';
        if (!quoted && s_is_number(v, vn)) {
            o += s_json_escape(out + o, cap - o, v, vn);
        } else {
            out[o++] = '"';
            o += s_json_escape(out + o, cap - o, v, vn);
            if (o < cap)
                out[o++] = '"';
        }
    }
    return o;
}

void
gs_log(int level, const char *event, const char *fmt, ...)
{
    if (level < atomic_load(&s_level))
        return;
    if (level < 0 || level > GS_LOG_ERROR)
        level = GS_LOG_ERROR;
    char body[2048];
    va_list ap;
    va_start(ap, fmt);
    int bn = vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    if (bn < 0)
        body[0] = 0;

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[96];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int) (tv.tv_usec / 1000));

    char line[4096];
    size_t n;
    if (atomic_load(&s_json)) {
        n = (size_t) snprintf(line, sizeof line,
                              "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"%s\"",
                              ts, s_level_names[level], event);
        if (n < sizeof line)
            n += s_kv_to_json(line + n, sizeof line - n - 2, body);
        if (n > sizeof line - 2)
            n = sizeof line - 2;
        line[n++] = '}';
    } else {
        n = (size_t) snprintf(line, sizeof line, "ts=%s level=%s event=%s%s%s",
                              ts, s_level_names[level], event,
                              body[0] ? " " : "", body);
        if (n > sizeof line - 1)
            n = sizeof line - 1;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void) w; /* nowhere to report a failed log write */
}
