/*
 * gc_output: how gridctl prints. Aligned tables whose widths count terminal
 * columns (CJK characters are two wide, without depending on the locale),
 * numbers and times for people, and CSV cells for export (--json output
 * is gs_render's writer).
 */
#include "gc.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


/* ---- Display width ----------------------------------------------------------- */

/* Decode one UTF-8 character at s (bytes left n); returns its length (1 for
 * a malformed byte, which then counts as one column). */
static size_t
s_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n) {
        *cp = c;
        return 1;
    }
    uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1fu) : len == 3 ? (c & 0x0fu) : (c & 0x07u);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *cp = c;
            return 1;
        }
        v = v << 6 | (s[i] & 0x3fu);
    }
    *cp = v;
    return len;
}

/* Columns a code point takes: East Asian wide and fullwidth ranges are two,
 * combining marks and zero-width characters none. */
static int
s_cp_width(uint32_t c)
{
    if ((c >= 0x0300 && c <= 0x036f) || (c >= 0x200b && c <= 0x200f) ||
        (c >= 0xfe00 && c <= 0xfe0f))
        return 0;
    if ((c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0x303e) ||
        (c >= 0x3041 && c <= 0x33ff) || (c >= 0x3400 && c <= 0x4dbf) ||
        (c >= 0x4e00 && c <= 0x9fff) || (c >= 0xa000 && c <= 0xa4cf) ||
        (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
        (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
        (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1f64f) ||
        (c >= 0x1f900 && c <= 0x1f9ff) || (c >= 0x20000 && c <= 0x3fffd))
        return 2;
    return 1;
}

size_t
gc_text_width(const char *s)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t n = strlen(s), w = 0;
    while (n) {
        uint32_t cp;
        size_t l = s_utf8_next(p, n, &cp);
        w += (size_t) s_cp_width(cp);
        p += l;
        n -= l;
    }
    return w;
}

/* ---- Tables ----------------------------------------------------------------------- */

struct gc_table {
    size_t ncols;               /* columns */
    char **headers;             /* ncols strings */
    char *align;                /* 'l' or 'r' per column */
    char ***rows;               /* each ncols cells (NULL = empty); NULL row = rule */
    size_t *filled;             /* cells added to each row */
    size_t n, cap;              /* rows used and allocated */
    int failed;                 /* an allocation failed */
};

gc_table_t *
gc_table_new(size_t ncols, const char *const *headers, const char *align)
{
    gc_table_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ncols = ncols;
    t->headers = calloc(ncols, sizeof *t->headers);
    t->align = calloc(ncols + 1, 1);
    if (!t->headers || !t->align) {
        gc_table_destroy(&t);
        return NULL;
    }
    for (size_t i = 0; i < ncols; i++) {
        t->headers[i] = strdup(headers[i]);
        t->align[i] = align && align[i] == 'r' ? 'r' : 'l';
        if (!t->headers[i])
            t->failed = 1;
    }
    return t;
}

void
gc_table_destroy(gc_table_t **self_p)
{
    gc_table_t *t = *self_p;
    if (!t)
        return;
    for (size_t r = 0; r < t->n; r++) {
        if (!t->rows[r])
            continue;
        for (size_t c = 0; c < t->ncols; c++)
            free(t->rows[r][c]);
        free(t->rows[r]);
    }
    if (t->headers)
        for (size_t c = 0; c < t->ncols; c++)
            free(t->headers[c]);
    free(t->headers);
    free(t->align);
    free(t->rows);
    free(t->filled);
    free(t);
    *self_p = NULL;
}

static int
s_table_grow(gc_table_t *t)
{
    if (t->n < t->cap)
        return 0;
    size_t cap = t->cap ? t->cap * 2 : 64;
    char ***rows = realloc(t->rows, cap * sizeof *rows);
    if (!rows)
        return -1;
    t->rows = rows;
    size_t *filled = realloc(t->filled, cap * sizeof *filled);
    if (!filled)
        return -1;
    t->filled = filled;
    t->cap = cap;
    return 0;
}

void
gc_table_row(gc_table_t *t)
{
    if (t->failed || s_table_grow(t)) {
        t->failed = 1;
        return;
    }
    t->rows[t->n] = calloc(t->ncols, sizeof(char *));
    if (!t->rows[t->n]) {
        t->failed = 1;
        return;
    }
    t->filled[t->n] = 0;
    t->n++;
}

void
gc_table_rule(gc_table_t *t)
{
    if (t->failed || s_table_grow(t)) {
        t->failed = 1;
        return;
    }
    t->rows[t->n] = NULL;
    t->filled[t->n] = 0;
    t->n++;
}

void
gc_table_cell(gc_table_t *t, const char *fmt, ...)
{
    if (t->failed || !t->n || !t->rows[t->n - 1] || t->filled[t->n - 1] >= t->ncols)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) {
        s = NULL;
        t->failed = 1;
    }
    va_end(ap);
    t->rows[t->n - 1][t->filled[t->n - 1]++] = s;
}

size_t
gc_table_rows(const gc_table_t *t)
{
    return t->n;
}

static void
s_pad(FILE *f, size_t n)
{
    while (n--)
        fputc(' ', f);
}

static void
s_table_line(const gc_table_t *t, FILE *f, char *const *cells, const size_t *w)
{
    /* the last non-empty left-aligned cell gets no trailing spaces */
    size_t last = t->ncols;
    while (last > 0 && (!cells[last - 1] || !*cells[last - 1]))
        last--;
    for (size_t c = 0; c < last; c++) {
        const char *s = cells[c] ? cells[c] : "";
        size_t sw = gc_text_width(s);
        if (c)
            fputs("  ", f);
        if (t->align[c] == 'r')
            s_pad(f, w[c] - sw);
        fputs(s, f);
        if (t->align[c] == 'l' && c + 1 < last)
            s_pad(f, w[c] - sw);
    }
    fputc('\n', f);
}

int
gc_table_print(const gc_table_t *t, FILE *f)
{
    if (t->failed)
        return -1;
    size_t *w = calloc(t->ncols, sizeof *w);
    if (!w)
        return -1;
    for (size_t c = 0; c < t->ncols; c++)
        w[c] = gc_text_width(t->headers[c]);
    for (size_t r = 0; r < t->n; r++)
        for (size_t c = 0; t->rows[r] && c < t->ncols; c++)
            if (t->rows[r][c] && gc_text_width(t->rows[r][c]) > w[c])
                w[c] = gc_text_width(t->rows[r][c]);
    s_table_line(t, f, t->headers, w);
    size_t total = 0;
    for (size_t c = 0; c < t->ncols; c++)
        total += w[c] + (c ? 2 : 0);
    for (size_t r = 0; r < t->n; r++) {
        if (t->rows[r]) {
            s_table_line(t, f, t->rows[r], w);
            continue;
        }
        for (size_t i = 0; i < total; i++)
            fputc('-', f);
        fputc('\n', f);
    }
    free(w);
    return 0;
}

/* ---- Numbers and times ------------------------------------------------------------ */

const char *
gc_num(uint64_t v, char *buf, size_t size)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long) v);
    size_t o = 0;
    for (int i = 0; i < n && o + 1 < size; i++) {
        if (i && (n - i) % 3 == 0 && o + 2 < size)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

const char *
gc_time_local(int64_t ms, char *buf, size_t size)
{
    if (ms <= 0) {
        snprintf(buf, size, "-");
        return buf;
    }
    time_t t = (time_t) (ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

int64_t
gc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
gc_today(void)
{
    return gs_date_today(gc_now_ms());
}

/* ---- CSV ------------------------------------------------------------------------- */

void
gc_csv_cell(FILE *f, const char *s, int first)
{
    if (!first)
        fputc(',', f);
    if (!s)
        s = "";
    int formula = *s == '=' || *s == '+' || *s == '-' || *s == '@' || *s == '\t' || *s == '\r';
    int quote = formula || strpbrk(s, ",\"\r\n") != NULL;
    if (!quote) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    if (formula)
        fputc('\'', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}
