/*
 * bench_pg: the PostgreSQL peer. The same uploads gridsyncd takes, applied
 * to PostgreSQL with the same semantics and the same durability, the way a
 * competent PostgreSQL engineer would build this service.
 *
 * Where it sits: run by tools/bench/run_bench.sh against a private
 * PostgreSQL server on loopback. It replays a gs_sim plan: with the
 * default noise exactly the uploads gridsim sends (offline bursts,
 * follow-ups, a second device's conflicting edits, retransmissions and
 * lost acks), with --no-noise exactly the uploads bench_load sends (every
 * record of the district once). It checks every answer against the exact
 * expected result, as gridsim and bench_load do; the driver then compares
 * the result counts with gridsync's and refuses to report a ratio if they
 * differ.
 *
 * The design given to PostgreSQL (its best shot, not a straw man):
 *  - This program plays the application server: like gridsyncd's frontend
 *    thread it validates each record with gs_record_check, packs it, hashes
 *    its content (BLAKE2b-128 without metadata and id), computes its
 *    natural key and the HMACs of the persons it names.
 *  - Each record is stored once, in one table keyed by (kind, record_id);
 *    the natural key (unique), the change sequence (unique) and (grid, seq)
 *    are indexes on that table: the sync service reads "seq > N" for a grid
 *    prefix from the record table itself, so there is no second copy in a
 *    change log. Aliases (ids merged into another record, a few per cent)
 *    and the person index (grid, HMAC, kind, id) are narrow tables of their
 *    own; the idempotency answers are one row per upload.
 *  - One prepared statement per batch of uploads: a PL/pgSQL function
 *    (gs_apply_batch) takes the whole batch as arrays (binary parameters)
 *    and works set-based where the data allow: one statement finds the
 *    uploads already answered (idempotency table, or an earlier copy in the
 *    same batch), one INSERT ... SELECT FROM unnest(...) ON CONFLICT DO
 *    NOTHING stores every plainly new record of the batch and its person
 *    rows, and one INSERT stores the batch's answers. Only what a plain
 *    insert cannot decide (known ids, natural-key merges, conflicts,
 *    rejections, records named twice in the batch) goes record by record,
 *    in upload order, as gridsync's semantics require.
 *  - Each batch is one statement in its own transaction (autocommit), with
 *    synchronous_commit on and fsync on: its answers are final only once
 *    its commit is durable, as with gridsyncd's group commit.
 *  - --txn-records N: a batch closes when it holds at least N records (the
 *    driver passes gridsyncd's mean group-commit size, then sweeps larger
 *    sizes for the peer's own best). --connections N runs N connections
 *    (threads), grids dealt out round-robin; PostgreSQL group-commits their
 *    WAL flushes.
 * What the peer leaves out, in its favour: per-cell counts, the prefix
 * chain (prev_seq), idempotency expiry, a live feed, the move-out event of
 * a record leaving a grid (a row has one grid), and commit-ordered seqs:
 * its seqs come from a sequence, so with two connections they are not in
 * commit order (a reader polling "seq > N" can miss a row that commits
 * late), which gridsync's log guarantees.
 *
 * Output: "pg.*" key=value lines: the server's durability settings,
 * records/s, persons/s, result counts, WAL bytes per record (the server's
 * WAL position before and after the run), expectation errors. Exit 1 if any answer differed from the expected one.
 *
 * Usage: bench_pg --conninfo STR [--connections N] [--txn-records N]
 *                 [--scale F] [--district CODE] [--run-id ID] [--seed N]
 *                 [--no-noise]
 */
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "gs_arena.h"
#include "gs_gen.h"
#include "gs_sim.h"
#include "gs_store_int.h"   /* gs_natkey, a pure codec */
#include "gs_validate.h"

#define S_DETAILS_MAX 10

/* PostgreSQL type OIDs (pg_type.h is server-side; these are fixed). */
enum { S_BYTEA = 17, S_INT8 = 20, S_INT4 = 23, S_TEXT = 25 };
enum { S_BYTEA_ARR = 1001, S_INT4_ARR = 1007, S_TEXT_ARR = 1009, S_INT8_ARR = 1016 };

/* The parameters of gs_apply_batch, in order. */
enum {
    P_NOW, P_U_DEVICE, P_U_UPLOAD, P_U_FIRST, P_U_N, P_R_UPLOAD, P_KIND, P_ID, P_GRID,
    P_REASON, P_BASE, P_STATUS, P_HASH, P_NATKEY, P_REFS, P_PEOPLE, P_DATA, S_NPARAMS
};
/* element type of each array parameter (0: the scalar P_NOW) */
static const uint32_t s_elem[S_NPARAMS] = {
    0, S_TEXT, S_TEXT, S_INT4, S_INT4, S_INT4, S_TEXT, S_TEXT, S_TEXT,
    S_INT4, S_INT8, S_INT4, S_BYTEA, S_BYTEA, S_BYTEA, S_INT4, S_BYTEA
};
static const Oid s_types[S_NPARAMS] = {
    S_INT8, S_TEXT_ARR, S_TEXT_ARR, S_INT4_ARR, S_INT4_ARR, S_INT4_ARR, S_TEXT_ARR,
    S_TEXT_ARR, S_TEXT_ARR, S_INT4_ARR, S_INT8_ARR, S_INT4_ARR, S_BYTEA_ARR, S_BYTEA_ARR,
    S_BYTEA_ARR, S_INT4_ARR, S_BYTEA_ARR
};

/* ---- Schema ------------------------------------------------------------------ */

/* The tables and the apply function. %d are the reason codes, in order:
 * UNKNOWN_RECORD, VERSION_AHEAD, ADDRESS. Statuses: 1 accepted,
 * 2 unchanged, 3 merged, 4 conflict, 5 rejected; record status 0 active,
 * 1 void (gridsync.proto). refs holds 17 bytes per person: HMAC(16), role. */
#define S_SCHEMA \
    "DROP SCHEMA IF EXISTS gs CASCADE;\n" \
    "CREATE SCHEMA gs;\n" \
    "SET search_path = gs;\n" \
    "CREATE SEQUENCE change_seq;\n" \
    "CREATE TABLE records (kind text NOT NULL, record_id text NOT NULL, grid text NOT NULL,\n" \
    "  version bigint NOT NULL, seq bigint NOT NULL, updated_at bigint NOT NULL,\n" \
    "  origin_device text NOT NULL, status int NOT NULL, content_hash bytea NOT NULL,\n" \
    "  natkey bytea, refs bytea NOT NULL, people int NOT NULL, data bytea NOT NULL,\n" \
    "  PRIMARY KEY (kind, record_id));\n" \
    "CREATE UNIQUE INDEX records_natkey ON records (natkey);\n" \
    "CREATE UNIQUE INDEX records_seq ON records (seq);\n" \
    "CREATE INDEX records_grid_seq ON records (grid, seq);\n" \
    "CREATE TABLE aliases (kind text NOT NULL, record_id text NOT NULL, canon text NOT NULL,\n" \
    "  PRIMARY KEY (kind, record_id));\n" \
    "CREATE TABLE persons (grid text NOT NULL, hmac bytea NOT NULL, kind text NOT NULL,\n" \
    "  record_id text NOT NULL, role int NOT NULL, PRIMARY KEY (grid, hmac, kind, record_id));\n" \
    "CREATE TABLE idem (device_id text NOT NULL, upload_id text NOT NULL,\n" \
    "  created_at bigint NOT NULL, statuses int[] NOT NULL, reasons int[] NOT NULL,\n" \
    "  versions bigint[] NOT NULL, keys text[] NOT NULL, seqs bigint[] NOT NULL,\n" \
    "  PRIMARY KEY (device_id, upload_id));\n" \
    "CREATE FUNCTION gs_apply_batch(p_now bigint, u_device text[], u_upload text[],\n" \
    "  u_first int[], u_n int[], p_u int[], p_kind text[], p_id text[], p_grid text[],\n" \
    "  p_reason int[], p_base bigint[], p_status int[], p_hash bytea[], p_natkey bytea[],\n" \
    "  p_refs bytea[], p_people int[], p_data bytea[],\n" \
    "  OUT r_status int[], OUT r_reason int[], OUT r_version bigint[], OUT r_key text[],\n" \
    "  OUT r_seq bigint[], OUT r_replayed boolean[])\n" \
    "LANGUAGE plpgsql AS $fn$\n" \
    "DECLARE\n" \
    "  nu int := coalesce(array_length(u_device, 1), 0);\n" \
    "  n int := coalesce(array_length(p_id, 1), 0);\n" \
    "  v_from int[]; v_fresh bigint[]; v_fseq bigint[]; v_iseq bigint[];\n" \
    "  v_kind text; v_id text; v_grid text; v_base bigint; v_st int; v_nk bytea;\n" \
    "  v_canon text; v_cgrid text; v_merged boolean; v_found boolean; v_other text;\n" \
    "  c_version bigint; c_status int; c_hash bytea; c_refs bytea;\n" \
    "  v_same boolean; v_seq bigint; v_ver bigint; f int; g int; i int; rw record;\n" \
    "  i_st int[]; i_re int[]; i_ve bigint[]; i_ke text[]; i_se bigint[];\n" \
    "BEGIN\n" \
    "  r_status := array_fill(0, ARRAY[n]); r_reason := r_status;\n" \
    "  r_version := array_fill(0::bigint, ARRAY[n]); r_seq := r_version; r_key := p_id;\n" \
    "  r_replayed := array_fill(false, ARRAY[nu]);\n" \
    "  IF nu = 0 THEN RETURN; END IF;\n" \
    "  -- Uploads answered before: 0 apply, -1 stored answer, k an earlier copy here.\n" \
    "  SELECT array_agg(CASE WHEN i.device_id IS NOT NULL THEN -1\n" \
    "                        WHEN x.first < x.o THEN x.first::int ELSE 0 END ORDER BY x.o)\n" \
    "    INTO v_from\n" \
    "    FROM (SELECT t.d, t.u, t.o, min(t.o) OVER (PARTITION BY t.d, t.u) AS first\n" \
    "            FROM unnest(u_device, u_upload) WITH ORDINALITY AS t(d, u, o)) x\n" \
    "    LEFT JOIN idem i ON i.device_id = x.d AND i.upload_id = x.u;\n" \
    "  -- Plainly new records (valid, base 0, id and natural key named once in\n" \
    "  -- the batch, id not an alias) in one insert; the unique indexes turn\n" \
    "  -- away a known id or natural key, which go record by record below. One\n" \
    "  -- pass over the rows and no join between the statement's parts, so that\n" \
    "  -- the generic plan (row estimates of 1) stays linear.\n" \
    "  WITH x AS (SELECT t.*, count(*) OVER (PARTITION BY t.k, t.id) AS n_id,\n" \
    "               count(t.nk) OVER (PARTITION BY t.nk) AS n_nk\n" \
    "        FROM unnest(p_u, p_kind, p_id, p_grid, p_reason, p_base, p_status, p_hash,\n" \
    "                    p_natkey, p_refs, p_people, p_data)\n" \
    "          WITH ORDINALITY AS t(u, k, id, g, r, b, st, h, nk, rf, pe, d, o)\n" \
    "       WHERE v_from[t.u] = 0),\n" \
    "    f AS (SELECT x.o, x.u, x.k, x.id, x.g, x.st, x.h, x.nk, x.rf, x.pe, x.d,\n" \
    "            nextval('change_seq') AS seq FROM x\n" \
    "           WHERE x.r = 0 AND x.b = 0 AND x.n_id = 1 AND (x.nk IS NULL OR x.n_nk = 1)\n" \
    "             AND NOT EXISTS (SELECT 1 FROM aliases a WHERE a.kind = x.k\n" \
    "                               AND a.record_id = x.id)),\n" \
    "    ins AS (INSERT INTO records SELECT f.k, f.id, f.g, 1, f.seq, p_now, u_device[f.u],\n" \
    "              f.st, f.h, f.nk, f.rf, f.pe, f.d FROM f ORDER BY f.o\n" \
    "            ON CONFLICT DO NOTHING RETURNING grid, kind, record_id, status, refs, seq),\n" \
    "    p AS (INSERT INTO persons SELECT ins.grid, substring(ins.refs from j * 17 + 1 for 16),\n" \
    "            ins.kind, ins.record_id, get_byte(ins.refs, j * 17 + 16)\n" \
    "            FROM ins, generate_series(0, length(ins.refs) / 17 - 1) j WHERE ins.status = 0)\n" \
    "  SELECT (SELECT array_agg(f.o ORDER BY f.seq) FROM f),\n" \
    "         (SELECT array_agg(f.seq ORDER BY f.seq) FROM f),\n" \
    "         (SELECT array_agg(ins.seq ORDER BY ins.seq) FROM ins)\n" \
    "    INTO v_fresh, v_fseq, v_iseq;\n" \
    "  -- the candidates the insert took (both lists in seq order)\n" \
    "  IF v_fresh IS NOT NULL THEN\n" \
    "    g := 1; f := coalesce(array_length(v_iseq, 1), 0);\n" \
    "    FOR j IN 1..array_length(v_fresh, 1) LOOP\n" \
    "      IF g <= f AND v_iseq[g] = v_fseq[j] THEN\n" \
    "        r_status[v_fresh[j]] := 1; r_version[v_fresh[j]] := 1;\n" \
    "        r_seq[v_fresh[j]] := v_fseq[j]; g := g + 1;\n" \
    "      END IF;\n" \
    "    END LOOP;\n" \
    "  END IF;\n" \
"  -- Everything else, record by record, in upload order (a loop over a query,\n" \
    "  -- not over subscripts: subscripting an array of text is linear in PL/pgSQL).\n" \
    "  FOR rw IN SELECT t.* FROM unnest(p_u, p_kind, p_id, p_grid, p_reason, p_base, p_status,\n" \
    "        p_hash, p_natkey, p_refs, p_people, p_data)\n" \
    "        WITH ORDINALITY AS t(u, k, id, g, r, b, st, h, nk, rf, pe, d, o)\n" \
    "     WHERE r_status[t.o] = 0 AND v_from[t.u] = 0 ORDER BY t.o LOOP\n" \
    "    i := rw.o; v_kind := rw.k; v_id := rw.id; v_grid := rw.g;\n" \
    "    IF rw.r <> 0 THEN\n" \
    "      r_status[i] := 5; r_reason[i] := rw.r; CONTINUE;\n" \
    "    END IF;\n" \
"    v_base := rw.b; v_st := rw.st; v_nk := rw.nk; v_merged := false;\n" \
    "    v_canon := v_id;\n" \
    "    SELECT grid, version, status, content_hash, refs\n" \
    "      INTO v_cgrid, c_version, c_status, c_hash, c_refs\n" \
    "      FROM records WHERE kind = v_kind AND record_id = v_id;\n" \
    "    v_found := FOUND;\n" \
    "    IF NOT v_found THEN\n" \
    "      SELECT r.record_id, r.grid, r.version, r.status, r.content_hash, r.refs\n" \
    "        INTO v_canon, v_cgrid, c_version, c_status, c_hash, c_refs\n" \
    "        FROM aliases a JOIN records r ON r.kind = a.kind AND r.record_id = a.canon\n" \
    "       WHERE a.kind = v_kind AND a.record_id = v_id;\n" \
    "      v_found := FOUND;\n" \
    "    END IF;\n" \
    "    IF NOT v_found AND v_nk IS NOT NULL THEN\n" \
    "      SELECT record_id, grid, version, status, content_hash, refs\n" \
    "        INTO v_canon, v_cgrid, c_version, c_status, c_hash, c_refs\n" \
    "        FROM records WHERE natkey = v_nk;\n" \
    "      v_found := FOUND; v_merged := FOUND;\n" \
    "    END IF;\n" \
    "    IF NOT v_found THEN\n" \
    "      IF v_base > 0 THEN\n" \
    "        r_status[i] := 5; r_reason[i] := %d; CONTINUE;\n" \
    "      END IF;\n" \
    "      v_seq := nextval('change_seq');\n" \
    "      INSERT INTO records VALUES (v_kind, v_id, v_grid, 1, v_seq, p_now, u_device[rw.u],\n" \
    "        v_st, rw.h, v_nk, rw.rf, rw.pe, rw.d);\n" \
    "      IF v_st = 0 THEN\n" \
    "        INSERT INTO persons SELECT v_grid, substring(rw.rf from j * 17 + 1 for 16),\n" \
    "          v_kind, v_id, get_byte(rw.rf, j * 17 + 16)\n" \
    "          FROM generate_series(0, length(rw.rf) / 17 - 1) j;\n" \
    "      END IF;\n" \
    "      r_status[i] := 1; r_version[i] := 1; r_seq[i] := v_seq; CONTINUE;\n" \
    "    END IF;\n" \
    "    r_key[i] := v_canon;\n" \
    "    v_same := c_hash = rw.h AND c_status = v_st;\n" \
    "    IF NOT v_same THEN\n" \
    "      IF v_base > c_version THEN\n" \
    "        r_status[i] := 5; r_reason[i] := %d; CONTINUE;\n" \
    "      END IF;\n" \
    "      IF v_base < c_version THEN\n" \
    "        r_status[i] := 4; r_version[i] := c_version; CONTINUE;\n" \
    "      END IF;\n" \
    "      IF NOT v_merged AND v_nk IS NOT NULL THEN\n" \
    "        SELECT record_id INTO v_other FROM records WHERE natkey = v_nk;\n" \
    "        IF FOUND AND v_other <> v_canon THEN\n" \
    "          r_status[i] := 5; r_reason[i] := %d; CONTINUE;\n" \
    "        END IF;\n" \
    "      END IF;\n" \
    "    END IF;\n" \
    "    IF v_same THEN\n" \
    "      r_status[i] := CASE WHEN v_merged THEN 3 ELSE 2 END; r_version[i] := c_version;\n" \
    "    ELSE\n" \
    "      v_ver := c_version + 1; v_seq := nextval('change_seq');\n" \
    "      UPDATE records SET grid = v_grid, version = v_ver, seq = v_seq, updated_at = p_now,\n" \
    "          origin_device = u_device[rw.u], status = v_st, content_hash = rw.h,\n" \
    "          natkey = v_nk, refs = rw.rf, people = rw.pe, data = rw.d\n" \
    "        WHERE kind = v_kind AND record_id = v_canon;\n" \
    "      IF v_cgrid <> v_grid OR c_status <> v_st OR c_refs <> rw.rf THEN\n" \
    "        IF c_status = 0 THEN\n" \
    "          DELETE FROM persons p USING generate_series(0, length(c_refs) / 17 - 1) j\n" \
    "            WHERE p.grid = v_cgrid AND p.hmac = substring(c_refs from j * 17 + 1 for 16)\n" \
    "              AND p.kind = v_kind AND p.record_id = v_canon;\n" \
    "        END IF;\n" \
    "        IF v_st = 0 THEN\n" \
    "          INSERT INTO persons SELECT v_grid, substring(rw.rf from j * 17 + 1 for 16),\n" \
    "            v_kind, v_canon, get_byte(rw.rf, j * 17 + 16)\n" \
    "            FROM generate_series(0, length(rw.rf) / 17 - 1) j;\n" \
    "        END IF;\n" \
    "      END IF;\n" \
    "      r_status[i] := CASE WHEN v_merged THEN 3 ELSE 1 END;\n" \
    "      r_version[i] := v_ver; r_seq[i] := v_seq;\n" \
    "    END IF;\n" \
    "    IF v_merged THEN\n" \
    "      INSERT INTO aliases VALUES (v_kind, v_id, v_canon)\n" \
    "        ON CONFLICT (kind, record_id) DO UPDATE SET canon = EXCLUDED.canon;\n" \
    "    END IF;\n" \
    "  END LOOP;\n" \
    "  -- The answers of the uploads applied here, one row each, in one pass.\n" \
    "  INSERT INTO idem SELECT u_device[t.u], u_upload[t.u], p_now,\n" \
    "      array_agg(t.s ORDER BY t.o), array_agg(t.r ORDER BY t.o),\n" \
    "      array_agg(t.v ORDER BY t.o), array_agg(t.k ORDER BY t.o), array_agg(t.q ORDER BY t.o)\n" \
    "    FROM unnest(p_u, r_status, r_reason, r_version, r_key, r_seq)\n" \
    "      WITH ORDINALITY AS t(u, s, r, v, k, q, o)\n" \
    "   WHERE v_from[t.u] = 0 GROUP BY t.u;\n" \
"  -- Replays get the answers given before.\n" \
    "  FOR k IN 1..nu LOOP\n" \
    "    CONTINUE WHEN v_from[k] = 0;\n" \
    "    r_replayed[k] := true; f := u_first[k];\n" \
    "    IF v_from[k] > 0 THEN\n" \
    "      g := u_first[v_from[k]];\n" \
    "      FOR j IN 0..u_n[k] - 1 LOOP\n" \
    "        r_status[f + j] := r_status[g + j]; r_reason[f + j] := r_reason[g + j];\n" \
    "        r_version[f + j] := r_version[g + j]; r_key[f + j] := r_key[g + j];\n" \
    "        r_seq[f + j] := r_seq[g + j];\n" \
    "      END LOOP;\n" \
    "    ELSE\n" \
    "      SELECT statuses, reasons, versions, keys, seqs INTO i_st, i_re, i_ve, i_ke, i_se\n" \
    "        FROM idem WHERE device_id = u_device[k] AND upload_id = u_upload[k];\n" \
    "      FOR j IN 1..coalesce(array_length(i_st, 1), 0) LOOP\n" \
    "        r_status[f + j - 1] := i_st[j]; r_reason[f + j - 1] := i_re[j];\n" \
    "        r_version[f + j - 1] := i_ve[j]; r_key[f + j - 1] := i_ke[j];\n" \
    "        r_seq[f + j - 1] := i_se[j];\n" \
    "      END LOOP;\n" \
    "    END IF;\n" \
    "  END LOOP;\n" \
    "END $fn$;\n"

/* ---- Growable byte buffer and PostgreSQL binary arrays ----------------------------- */

typedef struct s_buf {
    uint8_t *data;
    size_t len, cap;
} s_buf_t;

static void
s_buf_need(s_buf_t *b, size_t n)
{
    if (b->cap - b->len >= n)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    b->data = realloc(b->data, cap);
    if (!b->data) {
        fprintf(stderr, "bench_pg: out of memory\n");
        exit(1);
    }
    b->cap = cap;
}

static void
s_buf_put(s_buf_t *b, const void *p, size_t n)
{
    s_buf_need(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void
s_buf_u32(s_buf_t *b, uint32_t v)
{
    uint32_t be = htonl(v);
    s_buf_put(b, &be, 4);
}

static void
s_buf_u64(s_buf_t *b, uint64_t v)
{
    s_buf_u32(b, (uint32_t) (v >> 32));
    s_buf_u32(b, (uint32_t) v);
}

/* The elements of one array parameter, gathered upload after upload; the
 * binary array (array_recv: ndim, has-null flag, element type, length,
 * lower bound, then each element as length + bytes, -1 for NULL) is put
 * together when the batch is sent. */
typedef struct s_arr {
    s_buf_t el;                     /* the elements, each length + bytes */
    uint32_t n;                     /* elements */
    int has_null;
} s_arr_t;

static void
s_arr_bytes(s_arr_t *a, const void *p, size_t n)
{
    s_buf_u32(&a->el, (uint32_t) n);
    s_buf_put(&a->el, p, n);
    a->n++;
}

static void
s_arr_str(s_arr_t *a, const char *s)
{
    s_arr_bytes(a, s ? s : "", s ? strlen(s) : 0);
}

static void
s_arr_null(s_arr_t *a)
{
    s_buf_u32(&a->el, 0xffffffffu);
    a->has_null = 1;
    a->n++;
}

static void
s_arr_i32(s_arr_t *a, int32_t v)
{
    s_buf_u32(&a->el, 4);
    s_buf_u32(&a->el, (uint32_t) v);
    a->n++;
}

static void
s_arr_i64(s_arr_t *a, int64_t v)
{
    s_buf_u32(&a->el, 8);
    s_buf_u64(&a->el, (uint64_t) v);
    a->n++;
}

/* ---- What the application server computes per record --------------------------------- */

static uint8_t s_secret[32];        /* per-run HMAC key of the person index */

/* Append one person ref (HMAC of the normalised ID number, 16 bytes, and
 * the role) unless the person has no document or is already listed. */
static void
s_ref_add(s_buf_t *refs, const Gridsync__V1__Person *p, uint8_t role)
{
    if (!p || p->id_type == GRIDSYNC__V1__ID_TYPE__ID_TYPE_NONE || !p->id_number ||
        !*p->id_number)
        return;
    char norm[128];
    gs_verdict_t v;
    const char *s = gs_idnum_normalize(p->id_number, norm, sizeof norm, &v) == 0
                        ? norm : p->id_number;
    uint8_t full[32];
    crypto_auth_hmacsha256(full, (const uint8_t *) s, strlen(s), s_secret);
    for (size_t off = 0; off + 17 <= refs->len; off += 17)
        if (memcmp(refs->data + off, full, 16) == 0)
            return;
    s_buf_put(refs, full, 16);
    s_buf_put(refs, &role, 1);
}

/* Add an organisation's own ref (role 7) under its USCC (normalised in
 * place by gs_record_check before); the HMAC is over a NUL byte and the
 * USCC, as gs_org_hmac's, so it never equals a person's. */
static void
s_org_ref_add(s_buf_t *refs, const char *s)
{
    uint8_t full[32];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, s_secret, 32);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *) "", 1);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *) s, strlen(s));
    crypto_auth_hmacsha256_final(&st, full);
    for (size_t off = 0; off + 17 <= refs->len; off += 17)
        if (memcmp(refs->data + off, full, 16) == 0)
            return;
    uint8_t role = 7;
    s_buf_put(refs, full, 16);
    s_buf_put(refs, &role, 1);
}

/* The parameters of one gs_apply_batch call, gathered upload by upload. */
typedef struct s_params {
    s_arr_t arr[S_NPARAMS];         /* array parameters (P_NOW unused) */
    s_buf_t out[S_NPARAMS];         /* the binary values sent */
    s_buf_t packed;                 /* scratch: one packed record */
    s_buf_t refs;                   /* scratch: one record's person refs */
    uint32_t uploads, records;      /* in the batch */
    uint64_t persons;               /* household members and tenants in the last upload */
} s_params_t;

static void
s_params_reset(s_params_t *pp)
{
    for (int k = 0; k < S_NPARAMS; k++) {
        pp->arr[k].el.len = 0;
        pp->arr[k].n = 0;
        pp->arr[k].has_null = 0;
    }
    pp->uploads = pp->records = 0;
}

/* Add one upload to the batch: what the application server computes for
 * each of its records. */
static void
s_params_add(s_params_t *pp, const Gridsync__V1__Upload *up, gs_arena_t *a, int64_t now_ms)
{
    size_t n = up->n_records;
    pp->uploads++;
    s_arr_str(&pp->arr[P_U_DEVICE], up->device_id);
    s_arr_str(&pp->arr[P_U_UPLOAD], up->upload_id);
    s_arr_i32(&pp->arr[P_U_FIRST], (int32_t) pp->records + 1);
    s_arr_i32(&pp->arr[P_U_N], (int32_t) n);
    pp->records += (uint32_t) n;
    pp->persons = 0;
    for (size_t i = 0; i < n; i++) {
        Gridsync__V1__Record *rec = up->records[i];
        gs_verdict_t v;
        int reason = gs_record_check(rec, gs_arena_allocator(a), NULL, now_ms, &v);
        int kind = gs_record_kind(rec);
        char kb = gs_kind_byte(kind);   /* 'H', 'R' or 'O', the store's own kind bytes */
        const Gridsync__V1__RecordMeta *meta = gs_record_meta(rec);
        s_arr_i32(&pp->arr[P_R_UPLOAD], (int32_t) pp->uploads);
        s_arr_bytes(&pp->arr[P_KIND], &kb, 1);
        s_arr_str(&pp->arr[P_ID], gs_record_id(rec));
        s_arr_str(&pp->arr[P_GRID], gs_record_grid(rec));
        s_arr_i32(&pp->arr[P_REASON], reason);
        s_arr_i64(&pp->arr[P_BASE], meta ? (int64_t) meta->base_version : 0);
        s_arr_i32(&pp->arr[P_STATUS], meta ? (int32_t) meta->status : 0);
        uint32_t people = 0;
        pp->refs.len = 0;
        if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD) {
            const Gridsync__V1__Household *h = rec->household;
            people = (uint32_t) h->n_members;
            for (size_t k = 0; k < h->n_members; k++)
                s_ref_add(&pp->refs, h->members[k], 1);
        } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL) {
            const Gridsync__V1__RentalHousing *r = rec->rental;
            people = (uint32_t) r->n_leases;
            for (size_t k = 0; k < r->n_leases; k++)
                if (r->leases[k])
                    s_ref_add(&pp->refs, r->leases[k]->tenant, 2);
            if (r->landlord && r->landlord->party_case == GRIDSYNC__V1__LANDLORD__PARTY_PERSON)
                s_ref_add(&pp->refs, r->landlord->person, 3);
        } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION) {
            /* the store's roles (gs_record_refs): representative, contact,
             * employees, and the organisation itself under its USCC */
            const Gridsync__V1__OrganisationUnit *o = rec->organisation;
            people = (uint32_t) o->n_employees;
            s_ref_add(&pp->refs, o->legal_representative, 4);
            s_ref_add(&pp->refs, o->contact, 5);
            for (size_t k = 0; k < o->n_employees; k++)
                s_ref_add(&pp->refs, o->employees[k], 6);
            if (o->uscc && *o->uscc)
                s_org_ref_add(&pp->refs, o->uscc);
        }
        pp->persons += people;
        /* content: the record without its metadata and id, hashed */
        uint8_t hash[16];
        Gridsync__V1__Record copy = *rec;
        Gridsync__V1__Household hh;
        Gridsync__V1__RentalHousing rh;
        Gridsync__V1__OrganisationUnit oh;
        if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD) {
            hh = *rec->household;
            hh.meta = NULL;
            hh.household_id = (char *) "";
            copy.household = &hh;
        } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION) {
            oh = *rec->organisation;
            oh.meta = NULL;
            oh.org_id = (char *) "";
            copy.organisation = &oh;
        } else {
            rh = *rec->rental;
            rh.meta = NULL;
            rh.house_id = (char *) "";
            copy.rental = &rh;
        }
        size_t cl = protobuf_c_message_get_packed_size(&copy.base);
        pp->packed.len = 0;
        s_buf_need(&pp->packed, cl + 1);
        protobuf_c_message_pack(&copy.base, pp->packed.data);
        crypto_generichash(hash, 16, pp->packed.data, cl, NULL, 0);
        s_arr_bytes(&pp->arr[P_HASH], hash, 16);
        /* the store's own definition (docs/store.md), so both sides merge
         * the same records */
        uint8_t nk[GS_NATKEY_MAX + 2];
        size_t nkl = gs_natkey(rec, nk);
        if (nkl)
            s_arr_bytes(&pp->arr[P_NATKEY], nk, nkl);
        else
            s_arr_null(&pp->arr[P_NATKEY]);
        s_arr_bytes(&pp->arr[P_REFS], pp->refs.data ? pp->refs.data : (uint8_t *) "",
                    pp->refs.len);
        s_arr_i32(&pp->arr[P_PEOPLE], (int32_t) people);
        size_t rl = protobuf_c_message_get_packed_size(&rec->base);
        s_arr_t *d = &pp->arr[P_DATA];
        s_buf_need(&d->el, rl + 4);
        s_buf_u32(&d->el, (uint32_t) rl);
        protobuf_c_message_pack(&rec->base, d->el.data + d->el.len);
        d->el.len += rl;
        d->n++;
    }
}

/* Put the binary values of the batch together. */
static void
s_params_finish(s_params_t *pp, int64_t now_ms)
{
    pp->out[P_NOW].len = 0;
    s_buf_u64(&pp->out[P_NOW], (uint64_t) now_ms);
    for (int k = 1; k < S_NPARAMS; k++) {
        s_buf_t *b = &pp->out[k];
        b->len = 0;
        s_buf_u32(b, 1);
        s_buf_u32(b, (uint32_t) pp->arr[k].has_null);
        s_buf_u32(b, s_elem[k]);
        s_buf_u32(b, pp->arr[k].n);
        s_buf_u32(b, 1);
        s_buf_put(b, pp->arr[k].el.data, pp->arr[k].el.len);
    }
}

static void
s_params_free(s_params_t *pp)
{
    for (int k = 0; k < S_NPARAMS; k++) {
        free(pp->arr[k].el.data);
        free(pp->out[k].data);
    }
    free(pp->packed.data);
    free(pp->refs.data);
}

static int64_t
s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Results ------------------------------------------------------------------------ */

/* Parse a one-dimensional text array "{a,b,"c d"}" into at most max
 * strings copied into the arena. Returns the count, or -1. */
static long
s_text_array(const char *s, gs_arena_t *a, char **out, size_t max)
{
    if (!s || *s != '{')
        return -1;
    s++;
    size_t n = 0;
    if (*s == '}')
        return 0;
    for (;;) {
        char tmp[256];
        size_t l = 0;
        if (*s == '"') {
            s++;
            while (*s && *s != '"') {
                if (*s == '\\' && s[1])
                    s++;
                if (l < sizeof tmp - 1)
                    tmp[l++] = *s;
                s++;
            }
            if (*s != '"')
                return -1;
            s++;
        } else {
            while (*s && *s != ',' && *s != '}') {
                if (l < sizeof tmp - 1)
                    tmp[l++] = *s;
                s++;
            }
        }
        tmp[l] = 0;
        if (n >= max)
            return -1;
        out[n++] = gs_arena_strdup(a, tmp);
        if (*s == ',') {
            s++;
            continue;
        }
        return *s == '}' ? (long) n : -1;
    }
}

/* ---- The run ------------------------------------------------------------------------- */

typedef struct s_run {
    const gs_gen_t *gen;
    gs_sim_opts_t sim;
    const char *conninfo;
    uint32_t n_grids;
    uint32_t connections;
    uint64_t txn_records;           /* records per batch (at least) */
    atomic_ullong errors;           /* expectation errors */
    atomic_int printed;             /* details printed */
} s_run_t;

/* One upload in the open batch. */
enum { S_SEND_FIRST, S_SEND_LOST, S_SEND_AGAIN };
typedef struct s_pending {
    gs_sim_upload_t *u;             /* the planned upload */
    int what;                       /* S_SEND_* */
    Gridsync__V1__Ack **first;      /* where the first ack goes / is (arena) */
    gs_arena_t *a;                  /* arena of the upload's grid */
} s_pending_t;

typedef struct s_worker {
    s_run_t *run;
    pthread_t tid;
    uint32_t index;                 /* connection number */
    PGconn *conn;
    s_params_t pp;
    gs_arena_t *scratch;            /* the parsed result of one batch */
    s_pending_t *pend;              /* uploads in the open batch */
    size_t n_pend, cap_pend;
    gs_arena_t **retire;            /* grid arenas to free after the next batch */
    size_t n_retire, cap_retire;
    uint64_t records, persons, uploads, txns;
    uint64_t results[6];
    uint64_t replayed;              /* answers from the idempotency table */
} s_worker_t;

static void
s_error(s_run_t *run, const char *detail)
{
    atomic_fetch_add(&run->errors, 1);
    if (atomic_fetch_add(&run->printed, 1) < S_DETAILS_MAX)
        fprintf(stderr, "bench_pg: expectation error: %s\n", detail);
}

static void
s_die(s_worker_t *w, const char *what)
{
    fprintf(stderr, "bench_pg: connection %u: %s: %s\n", w->index, what,
            PQerrorMessage(w->conn));
    exit(1);
}

/* Add one upload to the open batch. */
static void
s_add(s_worker_t *w, gs_sim_upload_t *u, int what, Gridsync__V1__Ack **first, gs_arena_t *a)
{
    if (w->n_pend == 0)
        s_params_reset(&w->pp);
    s_params_add(&w->pp, u->up, a, s_now_ms());
    if (w->n_pend == w->cap_pend) {
        w->cap_pend = w->cap_pend ? 2 * w->cap_pend : 64;
        w->pend = realloc(w->pend, w->cap_pend * sizeof *w->pend);
        if (!w->pend)
            exit(1);
    }
    w->pend[w->n_pend++] = (s_pending_t) { u, what, first, a };
    if (what != S_SEND_LOST) {
        w->records += u->up->n_records;
        w->persons += w->pp.persons;
        w->uploads++;
    }
}

/* Send the open batch as one statement (its own transaction), wait for its
 * durable commit and check every answer it holds. */
static void
s_flush(s_worker_t *w)
{
    if (w->n_pend == 0)
        return;
    s_params_finish(&w->pp, s_now_ms());
    const char *vals[S_NPARAMS];
    int lens[S_NPARAMS], fmts[S_NPARAMS];
    for (int i = 0; i < S_NPARAMS; i++) {
        vals[i] = (const char *) w->pp.out[i].data;
        lens[i] = (int) w->pp.out[i].len;
        fmts[i] = 1;
    }
    PGresult *res = PQexecPrepared(w->conn, "gs_apply_batch", S_NPARAMS, vals, lens, fmts, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        s_die(w, "gs_apply_batch");
    size_t n = w->pp.records, nu = w->n_pend;
    gs_arena_reset(w->scratch);
    char **col[6];
    for (int c = 0; c < 6; c++) {
        size_t want = c == 5 ? nu : n;
        col[c] = gs_arena_alloc(w->scratch, (want + 1) * sizeof(char *));
        if (!col[c] || PQgetisnull(res, 0, c) ||
            s_text_array(PQgetvalue(res, 0, c), w->scratch, col[c], want) != (long) want) {
            fprintf(stderr, "bench_pg: malformed gs_apply_batch result\n");
            exit(1);
        }
    }
    PQclear(res);
    char detail[768];
    size_t first = 0;
    for (size_t i = 0; i < nu; i++) {
        s_pending_t *p = &w->pend[i];
        size_t m = p->u->up->n_records;
        size_t at = first;
        first += m;
        if (p->what == S_SEND_LOST)
            continue;           /* this answer was "lost": never looked at */
        w->replayed += col[5][i][0] == 't';
        /* the ack, in the grid's arena: a retransmission in a later batch
         * is compared with it */
        Gridsync__V1__Ack *ack = gs_arena_alloc(p->a, sizeof *ack);
        Gridsync__V1__RecordResult **rp = gs_arena_alloc(p->a, (m + 1) * sizeof *rp);
        Gridsync__V1__RecordResult *rr = gs_arena_alloc(p->a, (m + 1) * sizeof *rr);
        if (!ack || !rp || !rr)
            exit(1);
        gridsync__v1__ack__init(ack);
        ack->upload_id = p->u->up->upload_id;
        ack->n_results = m;
        ack->results = rp;
        for (size_t k = 0; k < m; k++) {
            gridsync__v1__record_result__init(&rr[k]);
            rr[k].index = (uint32_t) k;
            rr[k].status = (Gridsync__V1__ResultStatus) atoi(col[0][at + k]);
            rr[k].reason = (Gridsync__V1__Reason) atoi(col[1][at + k]);
            rr[k].version = strtoull(col[2][at + k], NULL, 10);
            rr[k].record_key = gs_arena_strdup(p->a, col[3][at + k]);
            rr[k].seq = strtoull(col[4][at + k], NULL, 10);
            rp[k] = &rr[k];
            if ((unsigned) rr[k].status < 6)
                w->results[rr[k].status]++;
        }
        if (p->what == S_SEND_FIRST) {
            *p->first = ack;
            if (gs_sim_check(p->u, ack, detail, sizeof detail))
                s_error(w->run, detail);
        } else if (!*p->first || gs_sim_ack_same(*p->first, ack, detail, sizeof detail)) {
            s_error(w->run, *p->first ? detail : "retransmission without a first answer");
        }
    }
    w->n_pend = 0;
    w->txns++;
    for (size_t i = 0; i < w->n_retire; i++)
        gs_arena_destroy(&w->retire[i]);
    w->n_retire = 0;
}

static void *
s_worker_main(void *arg)
{
    s_worker_t *w = arg;
    s_run_t *run = w->run;
    for (uint32_t g = w->index; g < run->n_grids; g += run->connections) {
        gs_arena_t *a = gs_arena_new(1 << 20);
        gs_sim_upload_t *ups = NULL;
        size_t n = 0;
        if (!a || gs_sim_plan_grid(&run->sim, run->gen, g, a, &ups, &n, NULL)) {
            fprintf(stderr, "bench_pg: cannot plan grid %u\n", g);
            exit(1);
        }
        Gridsync__V1__Ack **firsts = gs_arena_alloc(a, (n + 1) * sizeof *firsts);
        if (!firsts)
            exit(1);
        for (size_t i = 0; i < n; i++) {
            gs_sim_upload_t *u = &ups[i];
            firsts[i] = NULL;
            if (u->noise == GS_SIM_LOST_ACK)
                s_add(w, u, S_SEND_LOST, &firsts[i], a);
            s_add(w, u, S_SEND_FIRST, &firsts[i], a);
            if (u->noise == GS_SIM_RETRANSMIT)
                s_add(w, u, S_SEND_AGAIN, &firsts[i], a);
            if (w->pp.records >= run->txn_records)
                s_flush(w);
        }
        if (w->n_retire == w->cap_retire) {
            w->cap_retire = w->cap_retire ? 2 * w->cap_retire : 16;
            w->retire = realloc(w->retire, w->cap_retire * sizeof *w->retire);
            if (!w->retire)
                exit(1);
        }
        w->retire[w->n_retire++] = a;
        if (w->n_pend == 0) {   /* nothing open refers to it: free it now */
            for (size_t i = 0; i < w->n_retire; i++)
                gs_arena_destroy(&w->retire[i]);
            w->n_retire = 0;
        }
    }
    s_flush(w);
    for (size_t i = 0; i < w->n_retire; i++)
        gs_arena_destroy(&w->retire[i]);
    w->n_retire = 0;
    return NULL;
}

static PGconn *
s_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench_pg: connect: %s", PQerrorMessage(c));
        exit(1);
    }
    PGresult *r = PQexec(c, "SET search_path = gs; SET synchronous_commit = on; "
                            "SET client_min_messages = warning");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "bench_pg: %s", PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
    return c;
}

/* One setting of the server, for the report. */
static void
s_show(PGconn *c, const char *name)
{
    char q[128];
    snprintf(q, sizeof q, "SHOW %s", name);
    PGresult *r = PQexec(c, q);
    gs_bench_kv("pg", name, "%s", PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0)
                                                                       : "?");
    PQclear(r);
}

/* The server's WAL position in bytes, or -1. */
static double
s_wal_bytes(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT pg_current_wal_lsn() - '0/0'");
    double v = PQresultStatus(r) == PGRES_TUPLES_OK ? strtod(PQgetvalue(r, 0, 0), NULL) : -1;
    PQclear(r);
    return v;
}

static void
s_usage(void)
{
    fprintf(stderr,
            "usage: bench_pg --conninfo STR [--connections N] [--txn-records N]\n"
            "                [--scale F] [--district CODE] [--run-id ID] [--seed N]\n"
            "                [--no-noise]\n"
            "Replays gridsim's uploads (same options mean same uploads; --no-noise:\n"
            "bench_load's) against PostgreSQL with gridsync's semantics; recreates\n"
            "schema gs first.\n");
}

int
main(int argc, char **argv)
{
    const char *conninfo = NULL;
    uint32_t connections = 1;
    uint64_t txn_records = 100;
    double scale = 1;
    gs_gen_opts_t go;
    gs_gen_opts_init(&go);
    gs_sim_opts_t so;
    gs_sim_opts_init(&so);
    so.organisations = 1;      /* the district as gridsim collects it, organisations included */
    so.run_id = "bench";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-noise")) {
            so.retransmit_pct = so.lost_ack_pct = so.invalid_pct = 0;
            so.recollect_pct = so.new_id_pct = so.conflict_pct = 0;
            continue;
        }
        if (!v) {
            s_usage();
            return 2;
        }
        if (!strcmp(a, "--conninfo"))
            conninfo = v;
        else if (!strcmp(a, "--connections"))
            connections = (uint32_t) strtoul(v, NULL, 10);
        else if (!strcmp(a, "--txn-records"))
            txn_records = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--scale"))
            scale = strtod(v, NULL);
        else if (!strcmp(a, "--district"))
            go.district = v;
        else if (!strcmp(a, "--run-id"))
            so.run_id = v;
        else if (!strcmp(a, "--seed"))
            go.seed = so.seed = strtoull(v, NULL, 10);
        else {
            s_usage();
            return 2;
        }
        i++;
    }
    if (!conninfo || connections < 1 || connections > 64 || !(scale > 0)) {
        s_usage();
        return 2;
    }
    if (sodium_init() < 0)
        return 1;
    randombytes_buf(s_secret, sizeof s_secret);
    /* the district exactly as gridsim --scale lays it out */
    gs_bench_scale(&go, scale);
    gs_gen_t *gen = gs_gen_new(&go);
    if (!gen) {
        fprintf(stderr, "bench_pg: cannot lay out the district\n");
        return 2;
    }

    /* schema and function, from scratch */
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench_pg: connect: %s", PQerrorMessage(c));
        return 1;
    }
    size_t sl = sizeof S_SCHEMA + 64;
    char *sql = malloc(sl);
    snprintf(sql, sl, S_SCHEMA, GRIDSYNC__V1__REASON__REASON_UNKNOWN_RECORD,
             GRIDSYNC__V1__REASON__REASON_VERSION_AHEAD, GRIDSYNC__V1__REASON__REASON_ADDRESS);
    PGresult *r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "bench_pg: schema: %s", PQerrorMessage(c));
        return 1;
    }
    PQclear(r);
    free(sql);
    s_show(c, "server_version");
    s_show(c, "synchronous_commit");
    s_show(c, "fsync");
    s_show(c, "full_page_writes");
    s_show(c, "wal_level");
    s_show(c, "wal_compression");
    s_show(c, "shared_buffers");
    s_show(c, "work_mem");

    s_run_t run;
    memset(&run, 0, sizeof run);
    run.gen = gen;
    run.sim = so;
    run.conninfo = conninfo;
    run.n_grids = gs_gen_grid_count(gen);
    run.connections = connections;
    run.txn_records = txn_records ? txn_records : 1;
    s_worker_t *ws = calloc(connections, sizeof *ws);
    for (uint32_t i = 0; i < connections; i++) {
        ws[i].run = &run;
        ws[i].index = i;
        ws[i].conn = s_connect(conninfo);
        ws[i].scratch = gs_arena_new(1 << 20);
        r = PQprepare(ws[i].conn, "gs_apply_batch",
                      "SELECT * FROM gs_apply_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                      "$11, $12, $13, $14, $15, $16, $17)", S_NPARAMS, s_types);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(stderr, "bench_pg: prepare: %s", PQerrorMessage(ws[i].conn));
            return 1;
        }
        PQclear(r);
    }
    double wal0 = s_wal_bytes(c);
    int64_t t0 = gs_bench_now_us();
    for (uint32_t i = 0; i < connections; i++)
        pthread_create(&ws[i].tid, NULL, s_worker_main, &ws[i]);
    for (uint32_t i = 0; i < connections; i++)
        pthread_join(ws[i].tid, NULL);
    double secs = (double) (gs_bench_now_us() - t0) / 1e6;
    double wal = s_wal_bytes(c) - wal0;
    PQfinish(c);

    uint64_t records = 0, persons = 0, uploads = 0, txns = 0, replayed = 0, res[6] = { 0 };
    for (uint32_t i = 0; i < connections; i++) {
        s_worker_t *w = &ws[i];
        records += w->records;
        persons += w->persons;
        uploads += w->uploads;
        txns += w->txns;
        replayed += w->replayed;
        for (int k = 0; k < 6; k++)
            res[k] += w->results[k];
        PQfinish(w->conn);
        s_params_free(&w->pp);
        gs_arena_destroy(&w->scratch);
        free(w->pend);
        free(w->retire);
    }
    free(ws);
    uint64_t errors = atomic_load(&run.errors);
    gs_bench_kv("pg", "connections", "%u", connections);
    gs_bench_kv("pg", "txn_records", "%llu", (unsigned long long) txn_records);
    gs_bench_kv("pg", "transactions", "%llu", (unsigned long long) txns);
    gs_bench_kv("pg", "uploads", "%llu", (unsigned long long) uploads);
    gs_bench_kv("pg", "records", "%llu", (unsigned long long) records);
    gs_bench_kv("pg", "persons", "%llu", (unsigned long long) persons);
    gs_bench_kv("pg", "seconds", "%.3f", secs);
    gs_bench_kv("pg", "records_per_s", "%.1f", secs > 0 ? (double) records / secs : 0);
    gs_bench_kv("pg", "persons_per_s", "%.1f", secs > 0 ? (double) persons / secs : 0);
    if (wal0 >= 0 && records)
        gs_bench_kv("pg", "wal_bytes_per_record", "%.1f", wal / (double) records);
    gs_bench_kv("pg", "accepted", "%llu", (unsigned long long) res[1]);
    gs_bench_kv("pg", "unchanged", "%llu", (unsigned long long) res[2]);
    gs_bench_kv("pg", "merged", "%llu", (unsigned long long) res[3]);
    gs_bench_kv("pg", "conflict", "%llu", (unsigned long long) res[4]);
    gs_bench_kv("pg", "rejected", "%llu", (unsigned long long) res[5]);
    gs_bench_kv("pg", "replayed", "%llu", (unsigned long long) replayed);
    gs_bench_kv("pg", "expectation_errors", "%llu", (unsigned long long) errors);
    gs_gen_destroy(&gen);
    return errors ? 1 : 0;
}
