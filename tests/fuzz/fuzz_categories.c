/*
 * fuzz_categories: the text form of the incident category and deadline
 * table (proto/gs_incident.c: gs_incident_table_parse and
 * gs_incident_table_format). An operator's file reaches the parser through
 * `gridctl incidents categories check|set`, and a store parses the text
 * it keeps under the meta key incident_categories at every upload of an
 * incident. See gs_fuzz.h.
 *
 * Input: any bytes, as the text of a table.
 *
 * What must hold for any input:
 *  - the parser returns 0 or -1;
 *  - on -1, the verdict is REASON_BAD_REQUEST with a message that fits
 *    GS_MSG_MAX and is text (valid UTF-8 without control characters,
 *    gs_text_check): gridctl prints it after FILE:LINE, and a terminal
 *    must not receive bytes of the file it quotes; the line is one of the
 *    input's lines (1 to their number), or 0 for a problem of the whole
 *    table;
 *  - on 0, the line is 0 and the table is what the text form promises:
 *    1 to GS_INCIDENT_CATEGORIES_MAX categories in strictly increasing
 *    code order, each code passing gs_incident_code_check, each name 1 to
 *    GS_INCIDENT_NAME_MAX bytes of text, hours 1 to GS_INCIDENT_HOURS_MAX
 *    that do not grow with severity, and an active category;
 *  - an accepted table printed (the `show` form, gs_incident_table_format,
 *    whose return value is the length it writes) parses to the same table,
 *    which prints to the same bytes.
 */
#include "gs_fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_incident.h"
#include "gs_validate.h"

#define S_MAX_INPUT 65536           /* a table is a few kilobytes; more only costs time */

static void
s_fail(const char *what, const gs_verdict_t *v, size_t line)
{
    fprintf(stderr, "fuzz_categories: %s (line %zu, message \"%s\")\n", what, line,
            v ? v->message : "");
    abort();
}

/* The lines of the input as the parser counts them: a final line without
 * its newline counts, an empty tail after the last newline does not. */
static size_t
s_lines(const uint8_t *data, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += data[i] == '\n';
    return n + (len && data[len - 1] != '\n');
}

/* What an accepted table must be. */
static void
s_table_sane(const gs_incident_table_t *t)
{
    gs_verdict_t v;
    gs_verdict_clear(&v);
    if (t->n < 1 || t->n > GS_INCIDENT_CATEGORIES_MAX)
        s_fail("an accepted table's size is out of range", &v, 0);
    size_t active = 0;
    for (size_t i = 0; i < t->n; i++) {
        const gs_incident_category_t *c = &t->cats[i];
        if (gs_incident_code_check(c->code, &v))
            s_fail("an accepted table holds a code that is not a code", &v, 0);
        if (i && strcmp(t->cats[i - 1].code, c->code) >= 0)
            s_fail("an accepted table is not in strict code order", &v, 0);
        if (!c->name[0] || gs_text_check(c->name, GS_INCIDENT_NAME_MAX, "name", &v))
            s_fail("an accepted table holds a name that is not text", &v, 0);
        for (int k = 0; k < 4; k++) {
            const uint32_t h[2] = { c->close_hours[k], c->handle_hours[k] };
            for (int j = 0; j < 2; j++)
                if (h[j] < 1 || h[j] > GS_INCIDENT_HOURS_MAX)
                    s_fail("an accepted table holds hours out of range", &v, 0);
            if (k && (c->close_hours[k] > c->close_hours[k - 1] ||
                      c->handle_hours[k] > c->handle_hours[k - 1]))
                s_fail("an accepted table's hours grow with severity", &v, 0);
        }
        active += !c->retired;
    }
    if (!active)
        s_fail("an accepted table has no active category", &v, 0);
}

/* t printed, into a malloc'd NUL-terminated string; *len gets its length. */
static char *
s_format(const gs_incident_table_t *t, size_t *len)
{
    size_t need = gs_incident_table_format(t, NULL, 0);
    char *text = malloc(need + 1);
    if (!text)
        abort();
    if (gs_incident_table_format(t, text, need + 1) != need || strlen(text) != need)
        s_fail("the printed length is not the length written", NULL, 0);
    *len = need;
    return text;
}

int
gs_fuzz_categories(const uint8_t *data, size_t len)
{
    if (len > S_MAX_INPUT)
        return 0;
    gs_incident_table_t *t = malloc(sizeof *t), *back = malloc(sizeof *back);
    if (!t || !back)
        abort();
    gs_verdict_t v;
    size_t line = 99999;
    int rc = gs_incident_table_parse((const char *) data, len, t, &line, &v);
    if (rc != 0 && rc != -1)
        s_fail("the parser returned neither 0 nor -1", &v, line);
    if (memchr(v.message, 0, sizeof v.message) == NULL)
        s_fail("verdict message not NUL-terminated", NULL, line);
    if (rc) {
        gs_verdict_t why;
        if (v.reason != GRIDSYNC__V1__REASON__REASON_BAD_REQUEST || !v.message[0])
            s_fail("a refusal without REASON_BAD_REQUEST and a message", &v, line);
        if (gs_text_check(v.message, GS_MSG_MAX - 1, "message", &why))
            s_fail("a refusal's message is not text", &v, line);
        if (line > s_lines(data, len))
            s_fail("a refusal names a line the input does not have", &v, line);
    } else {
        if (line != 0 || v.reason != 0 || v.message[0])
            s_fail("an accepted table comes with a line or a message", &v, line);
        s_table_sane(t);
        size_t n1, n2;
        char *text = s_format(t, &n1);
        if (gs_incident_table_parse(text, n1, back, &line, &v))
            s_fail("an accepted table, printed, does not parse", &v, line);
        if (memcmp(back, t, sizeof *t) != 0)
            s_fail("an accepted table, printed and parsed, is another table", &v, line);
        char *again = s_format(back, &n2);
        if (n1 != n2 || memcmp(text, again, n1) != 0)
            s_fail("an accepted table prints to other bytes the second time", &v, line);
        free(again);
        free(text);
    }
    free(back);
    free(t);
    return 0;
}

#ifdef GS_FUZZ_LIBFUZZER
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return gs_fuzz_categories(data, size);
}
#endif
