/*
 * gs_log: structured logging, one line per event, to stderr.
 *
 * Lines are key=value (default) or JSON objects, with a timestamp, a level
 * and an event name, e.g.
 *   ts=2026-11-22T10:00:00.123Z level=info event=commit records=812 ms=1.9
 * Values that could carry personal data (ID numbers, names, phones) are never
 * passed to the log; callers log ids of records and devices only.
 *
 * Thread safety: gs_log_* may be called from any thread; each line is
 * written with one write(2) so lines never interleave.
 */
#ifndef GS_LOG_H
#define GS_LOG_H

enum { GS_LOG_DEBUG = 0, GS_LOG_INFO = 1, GS_LOG_WARN = 2, GS_LOG_ERROR = 3 };

/* Set the minimum level and the format ("kv" or "json"). Returns 0, or -1
 * for an unknown level name or format (nothing changed). */
int gs_log_setup(const char *level, const char *format);

/* Minimum level in force. */
int gs_log_level(void);

/* Log an event. fmt is a list of key=value pairs in printf form, e.g.
 * gs_log(GS_LOG_INFO, "commit", "records=%u ms=%.2f", n, ms).
 * In JSON mode the pairs are converted: values that parse as numbers stay
 * numbers, everything else becomes a string. Values must not contain spaces
 * unless quoted with "..." in fmt. */
void gs_log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
