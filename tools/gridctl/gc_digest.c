/*
 * gc_digest: `gridctl digest [PREFIX]`, one prefix's digest with its
 * children (or a cell's records), and `gridctl compare SRC_A SRC_B`, which
 * walks two stores' digests (docs/store.md, "Digests") from a prefix down,
 * descends only into children whose digest or count differ, and at each
 * differing cell names every record that differs. Both read through
 * gc_src: a store directory read-only, or a broker's admin endpoint (the
 * Digest request), so a district store and a city replica can be compared
 * wherever each runs.
 */
#include "gc.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "gs_grid.h"
#include "gs_validate.h"

static const char s_digest_help[] =
    "Usage: gridctl digest [PREFIX]\n"
    "\n"
    "The digest of the current records under PREFIX (a level prefix: \"\" for the\n"
    "whole store, 2, 4, 6, 9, 12 or 15 digits), their count, and the digest and\n"
    "count of each child at the next level; for a 15-digit grid, its records as\n"
    "the digest sees them (kind, id, version, status, content hash). Two stores\n"
    "with the same current records have the same digests at every level\n"
    "(docs/store.md, \"Digests\"); gridctl compare uses them.\n"
    "\n"
    "--json: one document {prefix, digest, count, head_seq, store_epoch,\n"
    "children:[{prefix, digest, count}]} or, for a grid, records:[{kind,\n"
    "record_key, version, status, content_hash}] instead of children. Digests\n"
    "and hashes are 32 lower-case hex digits, the epoch 16.\n";

static const char s_compare_help[] =
    "Usage: gridctl compare [--prefix P] [--quiet] SRC_A SRC_B\n"
    "\n"
    "Compare the current records of two stores by their digests, level by level\n"
    "from P (default: the whole store): only children whose digest or record\n"
    "count differ are read further, so equal parts cost one request each. At each\n"
    "grid that differs, every record that differs is named:\n"
    "  only_a    the record is in A only\n"
    "  only_b    the record is in B only\n"
    "  version   both hold it at different versions\n"
    "  content   same version, different content hash\n"
    "  status    same version and content, different status (active/void)\n"
    "\n"
    "  SRC_A, SRC_B  a store directory (opened read-only, beside a running broker\n"
    "                too) or a broker's admin endpoint ipc://PATH\n"
    "  --prefix P    start at P: \"\" or 2, 4, 6, 9, 12 or 15 digits\n"
    "  --quiet       no progress lines on stderr\n"
    "\n"
    "Progress (prefixes visited, grids differing so far) goes to stderr every\n"
    "2 seconds; a summary (prefixes visited, grids differing, records differing)\n"
    "ends the output. Sources that are written to during the comparison can\n"
    "differ by what arrived meanwhile: compare again, or compare stopped sources.\n"
    "\n"
    "--json: JSON lines. One {\"type\":\"cell\", cell, records:[{kind, record_key,\n"
    "difference, a:{version, status, content_hash}|null, b:{...}|null}]} per grid\n"
    "that differs, then one {\"type\":\"summary\", prefix, equal, a:{source, count,\n"
    "digest, head_seq, store_epoch}, b:{...}, prefixes_visited, cells_differing,\n"
    "records_differing}. Digests and hashes as 32 hex digits, epochs as 16.\n"
    "\n"
    "Exit status: 0 the sources are equal under P, 1 they differ, 2 an error (bad\n"
    "arguments, a source that cannot be read).\n"
    "\n"
    "To repair a city replica's drifting cells from their district's stream, restart\n"
    "it once with gridsyncd --replica-repair=CELL,... naming the cells listed here\n"
    "(docs/federation.md, \"Drift, compare and repair\").\n";

/* ---- Shared --------------------------------------------------------------------------- */

/* A 16-byte digest as 32 lower-case hex digits. */
static void
s_hex(const uint8_t *d, char out[33])
{
    sodium_bin2hex(out, 33, d, 16);
}

/* A level prefix given on the command line. */
static int
s_level_prefix_arg(gc_ctx_t *ctx, const char *prefix)
{
    int rc = gc_prefix_arg(ctx, prefix);
    if (rc)
        return rc;
    if (gs_level_of_len(strlen(prefix)) < 0)
        return gc_usage(ctx, "prefix '%s' is not a level: give 0, 2, 4, 6, 9, 12 or 15 digits",
                        prefix);
    return GC_EXIT_OK;
}

/* A list of children or records, copied out of the callbacks. */
typedef struct s_node_list {
    gs_digest_node_t *v;            /* children */
    size_t n, cap;
} s_node_list_t;

typedef struct s_rec {
    int kind;                       /* RecordKind */
    char *key;                      /* canonical id (malloc'd) */
    uint64_t version;
    int status;                     /* RecordStatus */
    uint8_t hash[16];               /* content hash */
} s_rec_t;

typedef struct s_rec_list {
    s_rec_t *v;                     /* records in key order */
    size_t n, cap;
} s_rec_list_t;

static int
s_node_add(void *arg, const gs_digest_node_t *c)
{
    s_node_list_t *l = arg;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 32;
        gs_digest_node_t *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv)
            return GS_ENOMEM;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = *c;
    return 0;
}

static int
s_rec_add(void *arg, const gs_digest_record_t *r)
{
    s_rec_list_t *l = arg;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        s_rec_t *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv)
            return GS_ENOMEM;
        l->v = nv;
        l->cap = nc;
    }
    s_rec_t *x = &l->v[l->n];
    x->key = strdup(r->record_key);
    if (!x->key)
        return GS_ENOMEM;
    x->kind = r->kind;
    x->version = r->version;
    x->status = r->status;
    memcpy(x->hash, r->hash, 16);
    l->n++;
    return 0;
}

static void
s_recs_free(s_rec_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].key);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* A prefix's node and its children (above a cell) or all its records (at
 * a cell, every page). */
static int
s_read(gc_src_t *src, const char *prefix, gs_digest_node_t *node, s_node_list_t *kids,
       s_rec_list_t *recs, uint64_t *head, uint64_t *epoch)
{
    int cell = strlen(prefix) == GS_GRID_LEN;
    gs_digest_query_t q;
    memset(&q, 0, sizeof q);
    q.prefix = prefix;
    if (cell) {
        q.record_fn = recs ? s_rec_add : NULL;
        q.arg = recs;
    } else {
        q.child_fn = kids ? s_node_add : NULL;
        q.arg = kids;
    }
    uint8_t *cursor = NULL;
    size_t cursor_len = 0;
    int rc;
    for (;;) {
        gs_digest_result_t r;
        q.cursor = cursor;
        q.cursor_len = cursor_len;
        rc = gc_src_digest(src, &q, &r, epoch);
        free(cursor);
        if (rc)
            return rc;
        if (!cursor_len) {
            /* the node and head of the first page */
            *node = r.node;
            if (head)
                *head = r.head_seq;
        }
        cursor = r.next_cursor;
        cursor_len = r.next_cursor_len;
        if (!cursor)
            return 0;
    }
}

static const char *
s_status_name(int status)
{
    return gc_status_name(status);
}

static const char *const s_level_names[GS_LEVELS] = {
    "store", "province", "city", "district", "street", "community", "grid"
};

static const char *
s_level_name(const char *prefix)
{
    int l = gs_level_of_len(strlen(prefix));
    return l >= 0 ? s_level_names[l] : "prefix";
}

/* ---- gridctl digest ---------------------------------------------------------------------- */

int
gc_cmd_digest(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return rc;
    if (a.help) {
        fputs(s_digest_help, ctx->out);
        return GC_EXIT_OK;
    }
    if (a.n_pos > 1)
        return gc_usage(ctx, "expected at most one PREFIX");
    const char *prefix = a.n_pos ? a.pos[0] : "";
    if ((rc = s_level_prefix_arg(ctx, prefix)))
        return rc;
    gc_src_t *src = gc_src_open(ctx, &rc);
    if (!src)
        return rc;
    gs_digest_node_t node;
    s_node_list_t kids = { 0 };
    s_rec_list_t recs = { 0 };
    uint64_t head = 0, epoch = 0;
    int err = s_read(src, prefix, &node, &kids, &recs, &head, &epoch);
    if (err) {
        rc = gc_src_fail(ctx, src, "digest", err);
        gc_src_close(&src);
        free(kids.v);
        s_recs_free(&recs);
        return rc;
    }
    gc_src_close(&src);
    int cell = strlen(prefix) == GS_GRID_LEN;
    char hex[33];
    if (ctx->json) {
        gs_json_t j;
        gs_json_init_file(&j, ctx->out);
        gs_json_obj(&j);
        gs_json_key(&j, "prefix");
        gs_json_str(&j, prefix);
        gs_json_key(&j, "digest");
        s_hex(node.digest, hex);
        gs_json_str(&j, hex);
        gs_json_key(&j, "count");
        gs_json_u64(&j, node.count);
        gs_json_key(&j, "head_seq");
        gs_json_u64(&j, head);
        gs_json_key(&j, "store_epoch");
        char eh[17];
        snprintf(eh, sizeof eh, "%016llx", (unsigned long long) epoch);
        gs_json_str(&j, eh);
        gs_json_key(&j, cell ? "records" : "children");
        gs_json_arr(&j);
        for (size_t i = 0; i < kids.n; i++) {
            gs_json_obj(&j);
            gs_json_key(&j, "prefix");
            gs_json_str(&j, kids.v[i].prefix);
            gs_json_key(&j, "digest");
            s_hex(kids.v[i].digest, hex);
            gs_json_str(&j, hex);
            gs_json_key(&j, "count");
            gs_json_u64(&j, kids.v[i].count);
            gs_json_end(&j);
        }
        for (size_t i = 0; i < recs.n; i++) {
            gs_json_obj(&j);
            gs_json_key(&j, "kind");
            gs_json_str(&j, gc_kind_name(recs.v[i].kind));
            gs_json_key(&j, "record_key");
            gs_json_str(&j, recs.v[i].key);
            gs_json_key(&j, "version");
            gs_json_u64(&j, recs.v[i].version);
            gs_json_key(&j, "status");
            gs_json_str(&j, s_status_name(recs.v[i].status));
            gs_json_key(&j, "content_hash");
            s_hex(recs.v[i].hash, hex);
            gs_json_str(&j, hex);
            gs_json_end(&j);
        }
        gs_json_end(&j);
        gs_json_end(&j);
    } else {
        char nb[32], hb[32];
        s_hex(node.digest, hex);
        fprintf(ctx->out, "%s %s, head seq %s\ndigest %s, %s records\n",
                s_level_name(prefix), *prefix ? prefix : "(all)", gc_num(head, hb, sizeof hb),
                hex, gc_num(node.count, nb, sizeof nb));
        if (kids.n || recs.n)
            fputc('\n', ctx->out);
        const char *hk[] = { "PREFIX", "DIGEST", "RECORDS" };
        const char *hr[] = { "KIND", "ID", "VERSION", "STATUS", "CONTENT HASH" };
        gc_table_t *t = cell ? gc_table_new(5, hr, "llrll") : gc_table_new(3, hk, "llr");
        if (!t) {
            free(kids.v);
            s_recs_free(&recs);
            return gc_fail(ctx, "out of memory");
        }
        for (size_t i = 0; i < kids.n; i++) {
            gc_table_row(t);
            gc_table_cell(t, "%s", kids.v[i].prefix);
            s_hex(kids.v[i].digest, hex);
            gc_table_cell(t, "%s", hex);
            gc_table_cell(t, "%s", gc_num(kids.v[i].count, nb, sizeof nb));
        }
        for (size_t i = 0; i < recs.n; i++) {
            gc_table_row(t);
            gc_table_cell(t, "%s", gc_kind_name(recs.v[i].kind));
            gc_table_cell(t, "%s", recs.v[i].key);
            gc_table_cell(t, "%llu", (unsigned long long) recs.v[i].version);
            gc_table_cell(t, "%s", s_status_name(recs.v[i].status));
            s_hex(recs.v[i].hash, hex);
            gc_table_cell(t, "%s", hex);
        }
        if (gc_table_rows(t))
            gc_table_print(t, ctx->out);
        gc_table_destroy(&t);
    }
    free(kids.v);
    s_recs_free(&recs);
    return gc_finish(ctx, GC_EXIT_OK);
}

/* ---- gridctl compare --------------------------------------------------------------------- */

#define S_EXIT_DIFFER 1
#define S_EXIT_ERROR 2
#define S_PROGRESS_MS 2000

/* One comparison. */
typedef struct s_cmp {
    gc_ctx_t *ctx;
    gc_src_t *src[2];               /* A and B */
    const char *name[2];            /* as given */
    gs_digest_node_t top[2];        /* the starting prefix's node in each */
    uint64_t head[2], epoch[2];     /* their head seqs and epochs at the start */
    gs_json_t j;                    /* --json output */
    uint64_t visited;               /* prefixes read (in both sources) */
    uint64_t cells;                 /* grids that differ */
    uint64_t records;               /* records that differ */
    int64_t next_progress;          /* when to print the next progress line */
    int quiet;                      /* --quiet */
    int err;                        /* first read error */
    int err_side;                   /* its source: 0 A, 1 B */
} s_cmp_t;

static int
s_node_same(const gs_digest_node_t *x, const gs_digest_node_t *y)
{
    return x->count == y->count && memcmp(x->digest, y->digest, GS_DIGEST_LEN) == 0;
}

static void
s_progress(s_cmp_t *c, const char *prefix)
{
    if (c->quiet)
        return;
    int64_t now = gc_now_ms();
    if (now < c->next_progress)
        return;
    c->next_progress = now + S_PROGRESS_MS;
    fprintf(stderr, "gridctl compare: %llu prefixes visited, %llu grids differ so far (at %s)\n",
            (unsigned long long) c->visited, (unsigned long long) c->cells,
            *prefix ? prefix : "(all)");
}

/* One side of a differing record in --json: {version, status, content_hash} or null. */
static void
s_json_side(gs_json_t *j, const s_rec_t *r)
{
    if (!r) {
        gs_json_null(j);
        return;
    }
    char hex[33];
    gs_json_obj(j);
    gs_json_key(j, "version");
    gs_json_u64(j, r->version);
    gs_json_key(j, "status");
    gs_json_str(j, s_status_name(r->status));
    gs_json_key(j, "content_hash");
    s_hex(r->hash, hex);
    gs_json_str(j, hex);
    gs_json_end(j);
}

/* Order of the records in a cell: the store's key order (kind byte, then
 * id bytes). */
static int
s_rec_cmp(const s_rec_t *x, const s_rec_t *y)
{
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* What differs between x (A) and y (B) for one record; NULL when equal. */
static const char *
s_difference(const s_rec_t *x, const s_rec_t *y)
{
    if (!y)
        return "only_a";
    if (!x)
        return "only_b";
    if (x->version != y->version)
        return "version";
    if (memcmp(x->hash, y->hash, 16))
        return "content";
    if (x->status != y->status)
        return "status";
    return NULL;
}

/* Name every record that differs in one grid. */
static void
s_cell_diff(s_cmp_t *c, const char *cell, const s_rec_list_t *ra, const s_rec_list_t *rb)
{
    FILE *out = c->ctx->out;
    size_t i = 0, k = 0, n = 0;
    int header = 0;
    if (c->ctx->json) {
        gs_json_obj(&c->j);
        gs_json_key(&c->j, "type");
        gs_json_str(&c->j, "cell");
        gs_json_key(&c->j, "cell");
        gs_json_str(&c->j, cell);
        gs_json_key(&c->j, "records");
        gs_json_arr(&c->j);
    }
    while (i < ra->n || k < rb->n) {
        const s_rec_t *x = i < ra->n ? &ra->v[i] : NULL;
        const s_rec_t *y = k < rb->n ? &rb->v[k] : NULL;
        int o = !x ? 1 : !y ? -1 : s_rec_cmp(x, y);
        if (o < 0)
            y = NULL;
        else if (o > 0)
            x = NULL;
        i += x != NULL;
        k += y != NULL;
        const char *d = s_difference(x, y);
        if (!d)
            continue;
        n++;
        const s_rec_t *r = x ? x : y;
        if (c->ctx->json) {
            gs_json_obj(&c->j);
            gs_json_key(&c->j, "kind");
            gs_json_str(&c->j, gc_kind_name(r->kind));
            gs_json_key(&c->j, "record_key");
            gs_json_str(&c->j, r->key);
            gs_json_key(&c->j, "difference");
            gs_json_str(&c->j, d);
            gs_json_key(&c->j, "a");
            s_json_side(&c->j, x);
            gs_json_key(&c->j, "b");
            s_json_side(&c->j, y);
            gs_json_end(&c->j);
            continue;
        }
        if (!header) {
            fprintf(out, "grid %s: A holds %zu records, B %zu\n", cell, ra->n, rb->n);
            header = 1;
        }
        fprintf(out, "  %-8s %s %s", d, gc_kind_name(r->kind), r->key);
        if (x)
            fprintf(out, "  A: v%llu %s", (unsigned long long) x->version,
                    s_status_name(x->status));
        if (y)
            fprintf(out, "  B: v%llu %s", (unsigned long long) y->version,
                    s_status_name(y->status));
        fputc('\n', out);
    }
    if (c->ctx->json) {
        gs_json_end(&c->j);
        gs_json_end(&c->j);
    } else if (!header) {
        /* equal records, unequal digests: the digests themselves are off */
        fprintf(out, "grid %s: the records agree but the digests differ (run gridctl "
                     "verify on both)\n", cell);
    }
    c->cells++;
    c->records += n;
}

/* Compare prefix in both sources and go down where they differ. known
 * (may be NULL) are the nodes the parents' child lists gave. */
static int
s_visit(s_cmp_t *c, const char *prefix)
{
    int cell = strlen(prefix) == GS_GRID_LEN;
    gs_digest_node_t node[2];
    s_node_list_t kids[2] = { { 0 }, { 0 } };
    s_rec_list_t recs[2] = { { 0 }, { 0 } };
    int rc = 0;
    for (int s = 0; s < 2 && !rc; s++) {
        /* a cell's records are read only once the digests say it differs */
        rc = s_read(c->src[s], prefix, &node[s], cell ? NULL : &kids[s], NULL,
                    c->visited ? NULL : &c->head[s], c->visited ? NULL : &c->epoch[s]);
        if (rc) {
            c->err = rc;
            c->err_side = s;
        }
    }
    if (!rc && !c->visited) {
        c->top[0] = node[0];
        c->top[1] = node[1];
    }
    c->visited++;
    s_progress(c, prefix);
    if (!rc && !s_node_same(&node[0], &node[1])) {
        if (cell) {
            for (int s = 0; s < 2 && !rc; s++) {
                rc = s_read(c->src[s], prefix, &node[s], NULL, &recs[s], NULL, NULL);
                if (rc) {
                    c->err = rc;
                    c->err_side = s;
                }
            }
            if (!rc)
                s_cell_diff(c, prefix, &recs[0], &recs[1]);
        } else {
            /* merge the two child lists (both in code order) */
            size_t i = 0, k = 0;
            while (!rc && (i < kids[0].n || k < kids[1].n)) {
                const gs_digest_node_t *x = i < kids[0].n ? &kids[0].v[i] : NULL;
                const gs_digest_node_t *y = k < kids[1].n ? &kids[1].v[k] : NULL;
                int o = !x ? 1 : !y ? -1 : strcmp(x->prefix, y->prefix);
                if (o < 0)
                    y = NULL;
                else if (o > 0)
                    x = NULL;
                i += x != NULL;
                k += y != NULL;
                if (x && y && s_node_same(x, y))
                    continue;
                rc = s_visit(c, x ? x->prefix : y->prefix);
            }
        }
    }
    for (int s = 0; s < 2; s++) {
        free(kids[s].v);
        s_recs_free(&recs[s]);
    }
    return rc;
}

static void
s_json_source(gs_json_t *j, const s_cmp_t *c, int s)
{
    char hex[33];
    gs_json_obj(j);
    gs_json_key(j, "source");
    gs_json_str(j, c->name[s]);
    gs_json_key(j, "count");
    gs_json_u64(j, c->top[s].count);
    gs_json_key(j, "digest");
    s_hex(c->top[s].digest, hex);
    gs_json_str(j, hex);
    gs_json_key(j, "head_seq");
    gs_json_u64(j, c->head[s]);
    gs_json_key(j, "store_epoch");
    char eh[17];
    snprintf(eh, sizeof eh, "%016llx", (unsigned long long) c->epoch[s]);
    gs_json_str(j, eh);
    gs_json_end(j);
}

int
gc_cmd_compare(gc_ctx_t *ctx, int argc, char **argv)
{
    static const gc_optspec_t spec[] = { { "prefix", 1 }, { "quiet", 0 }, { NULL, 0 } };
    gc_args_t a;
    int rc = gc_args_parse(ctx, argc, argv, spec, &a);
    if (rc)
        return S_EXIT_ERROR;
    if (a.help) {
        fputs(s_compare_help, ctx->out);
        return GC_EXIT_OK;
    }
    if (ctx->admin) {
        gc_usage(ctx, "compare takes its two sources as arguments, not --admin "
                      "(give ipc://PATH as SRC_A or SRC_B)");
        return S_EXIT_ERROR;
    }
    if (a.n_pos != 2) {
        gc_usage(ctx, "expected two sources, SRC_A and SRC_B");
        return S_EXIT_ERROR;
    }
    const char *prefix = gc_args_get(&a, "prefix");
    if (!prefix)
        prefix = "";
    if (s_level_prefix_arg(ctx, prefix))
        return S_EXIT_ERROR;

    s_cmp_t c;
    memset(&c, 0, sizeof c);
    c.ctx = ctx;
    c.quiet = gc_args_has(&a, "quiet");
    c.next_progress = gc_now_ms() + S_PROGRESS_MS;
    for (int s = 0; s < 2; s++) {
        c.name[s] = a.pos[s];
        c.src[s] = gc_src_open_at(ctx, a.pos[s], &rc);
        if (!c.src[s]) {
            gc_src_close(&c.src[0]);
            return S_EXIT_ERROR;
        }
    }
    if (ctx->json)
        gs_json_init_file(&c.j, ctx->out);
    rc = s_visit(&c, prefix);
    if (rc) {
        char what[300];
        snprintf(what, sizeof what, "source %c (%s)", c.err_side ? 'B' : 'A',
                 c.name[c.err_side]);
        gc_src_fail(ctx, c.src[c.err_side], what, c.err);
        gc_src_close(&c.src[0]);
        gc_src_close(&c.src[1]);
        gc_finish(ctx, 0);
        return S_EXIT_ERROR;
    }
    gc_src_close(&c.src[0]);
    gc_src_close(&c.src[1]);
    int equal = s_node_same(&c.top[0], &c.top[1]);
    if (ctx->json) {
        gs_json_obj(&c.j);
        gs_json_key(&c.j, "type");
        gs_json_str(&c.j, "summary");
        gs_json_key(&c.j, "prefix");
        gs_json_str(&c.j, prefix);
        gs_json_key(&c.j, "equal");
        gs_json_bool(&c.j, equal);
        gs_json_key(&c.j, "a");
        s_json_source(&c.j, &c, 0);
        gs_json_key(&c.j, "b");
        s_json_source(&c.j, &c, 1);
        gs_json_key(&c.j, "prefixes_visited");
        gs_json_u64(&c.j, c.visited);
        gs_json_key(&c.j, "cells_differing");
        gs_json_u64(&c.j, c.cells);
        gs_json_key(&c.j, "records_differing");
        gs_json_u64(&c.j, c.records);
        gs_json_end(&c.j);
    } else {
        char na[32], nb[32], ha[32], hb[32];
        if (c.cells)
            fputc('\n', ctx->out);
        fprintf(ctx->out, "A %s: %s records, head seq %s\nB %s: %s records, head seq %s\n",
                c.name[0], gc_num(c.top[0].count, na, sizeof na),
                gc_num(c.head[0], ha, sizeof ha), c.name[1],
                gc_num(c.top[1].count, nb, sizeof nb), gc_num(c.head[1], hb, sizeof hb));
        fprintf(ctx->out, "%s under %s: %llu prefixes visited, %llu grids differ, "
                          "%llu records differ\n",
                equal ? "equal" : "DIFFERENT", *prefix ? prefix : "(all)",
                (unsigned long long) c.visited, (unsigned long long) c.cells,
                (unsigned long long) c.records);
    }
    if (gc_finish(ctx, GC_EXIT_OK) != GC_EXIT_OK)
        return S_EXIT_ERROR;
    return equal ? GC_EXIT_OK : S_EXIT_DIFFER;
}
