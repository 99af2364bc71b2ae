/*
 * bench_pg: the PostgreSQL peer. The same uploads gridsim sends to
 * gridsyncd, applied to PostgreSQL with the same semantics, the way a team
 * would build this service on PostgreSQL instead.
 *
 * Where it sits: run by tools/bench/run_bench.sh against a private
 * PostgreSQL server on loopback, right after gridsim ran the same district
 * against gridsyncd. It replays the gs_sim plan (same seed, run id, batch
 * and noise: offline bursts, follow-ups, a second device's conflicting
 * edits, retransmissions and lost acks) and checks every answer against
 * the exact expected result, as gridsim does; the driver then compares the
 * result counts with gridsim's and refuses to report a ratio if they
 * differ.
 *
 * The design given to PostgreSQL (its best shot, not a straw man):
 *  - This program plays the application server: like gridsyncd's frontend
 *    thread it validates each record with gs_record_check, packs it, hashes
 *    its content (BLAKE2b-128 without metadata and id), computes its
 *    natural key and the HMACs of the persons it names.
 *  - One PL/pgSQL function per upload (gs_apply) does the storage logic in
 *    the server, one call per upload, arrays as binary parameters:
 *    idempotency table lookup, record lookup by id or alias, natural-key
 *    merge, content comparison (skip identical), version conflict check,
 *    insert/update keyed by (grid, kind, record id), a change-log row per
 *    change (sequence-numbered, indexed by seq and by (grid, seq) for feed
 *    reads), the person index (grid, hmac, kind, id), and the stored answer.
 *  - Uploads are grouped into transactions of about --txn-records records
 *    (the driver passes gridsyncd's mean group-commit size of the same
 *    run), sent in libpq pipeline mode (BEGIN, the uploads, COMMIT in one
 *    round trip) with synchronous_commit on: a transaction's answers are
 *    final only after its commit is durable, as with gridsyncd.
 *  - --connections N runs N client connections (threads), grids dealt out
 *    round-robin; PostgreSQL group-commits their WAL flushes.
 * What the peer leaves out, in its favour: per-cell counts, the prefix
 * chain (prev_seq) and idempotency expiry; its change-log seqs come from a
 * sequence, so with two connections they are not in commit order (a feed
 * reader polling "seq > N" can miss a row that commits late). No live feed
 * is published.
 *
 * Output: "pg.*" key=value lines: records/s, persons/s, result counts,
 * expectation errors. Exit 1 if any answer differed from the expected one.
 *
 * Usage: bench_pg --conninfo STR [--connections N] [--txn-records N]
 *                 [--scale F] [--district CODE] [--run-id ID] [--seed N]
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

#define S_NPARAMS 14
#define S_DETAILS_MAX 10

/* PostgreSQL type OIDs (pg_type.h is server-side; these are fixed). */
enum { S_BYTEA = 17, S_INT8 = 20, S_INT4 = 23, S_TEXT = 25 };
enum { S_BYTEA_ARR = 1001, S_INT4_ARR = 1007, S_TEXT_ARR = 1009, S_INT8_ARR = 1016 };

/* ---- Schema ------------------------------------------------------------------ */

/* The tables and the apply function. %d are the reason codes, in order:
 * UNKNOWN_RECORD, VERSION_AHEAD, ADDRESS. Statuses: 1 accepted,
 * 2 unchanged, 3 merged, 4 conflict, 5 rejected; record status 0 active,
 * 1 void; ops 1 upsert, 2 void, 3 move out, 4 move in (gridsync.proto). */
#define S_SCHEMA \
    "DROP SCHEMA IF EXISTS gs CASCADE;\n" \
    "CREATE SCHEMA gs;\n" \
    "SET search_path = gs;\n" \
    "CREATE TABLE records (grid text NOT NULL, kind text NOT NULL, record_id text NOT NULL,\n" \
    "  version bigint NOT NULL, seq bigint NOT NULL, updated_at bigint NOT NULL,\n" \
    "  status int NOT NULL, content_hash bytea NOT NULL, natkey bytea, refs bytea NOT NULL,\n" \
    "  people int NOT NULL, data bytea NOT NULL, PRIMARY KEY (grid, kind, record_id));\n" \
    "CREATE TABLE ids (kind text NOT NULL, record_id text NOT NULL, grid text NOT NULL,\n" \
    "  canon text NOT NULL, PRIMARY KEY (kind, record_id));\n" \
    "CREATE TABLE natkeys (natkey bytea PRIMARY KEY, canon text NOT NULL);\n" \
    "CREATE SEQUENCE change_seq;\n" \
    "CREATE TABLE change_log (seq bigint PRIMARY KEY, grid text NOT NULL, kind text NOT NULL,\n" \
    "  record_id text NOT NULL, op int NOT NULL, version bigint NOT NULL,\n" \
    "  origin_device text NOT NULL, committed_at bigint NOT NULL, data bytea NOT NULL);\n" \
    "CREATE INDEX change_log_grid ON change_log (grid, seq);\n" \
    "CREATE TABLE persons (grid text NOT NULL, hmac bytea NOT NULL, kind text NOT NULL,\n" \
    "  record_id text NOT NULL, role int NOT NULL, PRIMARY KEY (grid, hmac, kind, record_id));\n" \
    "CREATE TABLE idem (device_id text NOT NULL, upload_id text NOT NULL,\n" \
    "  created_at bigint NOT NULL, statuses int[] NOT NULL, reasons int[] NOT NULL,\n" \
    "  versions bigint[] NOT NULL, keys text[] NOT NULL, seqs bigint[] NOT NULL,\n" \
    "  PRIMARY KEY (device_id, upload_id));\n" \
    "CREATE FUNCTION gs_apply(p_device text, p_upload text, p_now bigint,\n" \
    "  p_kind text[], p_id text[], p_grid text[], p_reason int[], p_base bigint[],\n" \
    "  p_status int[], p_hash bytea[], p_natkey bytea[], p_refs bytea[], p_people int[],\n" \
    "  p_data bytea[], OUT r_status int[], OUT r_reason int[], OUT r_version bigint[],\n" \
    "  OUT r_key text[], OUT r_seq bigint[], OUT r_replayed boolean)\n" \
    "LANGUAGE plpgsql AS $fn$\n" \
    "DECLARE\n" \
    "  n int := coalesce(array_length(p_id, 1), 0);\n" \
    "  v_kind text; v_id text; v_grid text; v_base bigint; v_st int; v_nk bytea;\n" \
    "  v_canon text; v_cgrid text; v_merged boolean; v_found boolean; v_other text;\n" \
    "  c_version bigint; c_status int; c_hash bytea; c_refs bytea; c_natkey bytea;\n" \
    "  v_same boolean; v_moving boolean; v_seq bigint; v_ver bigint;\n" \
    "  v_nk_put boolean; v_nk_del boolean; v_fresh bigint[]; v_fseq bigint[];\n" \
    "BEGIN\n" \
    "  SELECT statuses, reasons, versions, keys, seqs\n" \
    "    INTO r_status, r_reason, r_version, r_key, r_seq\n" \
    "    FROM idem WHERE device_id = p_device AND upload_id = p_upload;\n" \
    "  IF FOUND THEN r_replayed := true; RETURN; END IF;\n" \
    "  r_replayed := false;\n" \
    "  r_status := array_fill(0, ARRAY[n]); r_reason := r_status;\n" \
    "  r_version := array_fill(0::bigint, ARRAY[n]); r_seq := r_version; r_key := p_id;\n" \
    "  -- Plainly new records (valid, base 0, id and natural key unknown and\n" \
    "  -- not repeated in this upload) are inserted set-wise, one statement.\n" \
    "  SELECT array_agg(u.o ORDER BY u.o) INTO v_fresh FROM (\n" \
    "    SELECT x.*, count(*) OVER (PARTITION BY x.k, x.id) AS n_id,\n" \
    "           count(*) OVER (PARTITION BY x.nk) AS n_nk\n" \
    "      FROM unnest(p_kind, p_id, p_natkey, p_reason, p_base)\n" \
    "        WITH ORDINALITY AS x(k, id, nk, r, b, o)) u\n" \
    "   WHERE u.r = 0 AND u.b = 0 AND u.n_id = 1 AND (u.nk IS NULL OR u.n_nk = 1)\n" \
    "     AND NOT EXISTS (SELECT 1 FROM ids WHERE ids.kind = u.k AND ids.record_id = u.id)\n" \
    "     AND (u.nk IS NULL OR NOT EXISTS (SELECT 1 FROM natkeys WHERE natkeys.natkey = u.nk));\n" \
    "  IF v_fresh IS NOT NULL THEN\n" \
    "    WITH f AS (SELECT x.*, nextval('change_seq') AS seq\n" \
    "        FROM unnest(p_kind, p_id, p_grid, p_status, p_hash, p_natkey, p_refs, p_people,\n" \
    "                    p_data) WITH ORDINALITY AS x(k, id, g, st, h, nk, rf, pe, d, o)\n" \
    "       WHERE x.o = ANY (v_fresh)),\n" \
    "     l AS (INSERT INTO change_log SELECT seq, g, k, id, CASE WHEN st = 1 THEN 2 ELSE 1 END,\n" \
    "             1, p_device, p_now, d FROM f),\n" \
    "     r AS (INSERT INTO records SELECT g, k, id, 1, seq, p_now, st, h, nk, rf, pe, d FROM f),\n" \
    "     i AS (INSERT INTO ids SELECT k, id, g, id FROM f),\n" \
    "     nk AS (INSERT INTO natkeys SELECT f.nk, f.id FROM f WHERE f.nk IS NOT NULL),\n" \
    "     p AS (INSERT INTO persons SELECT f.g, substring(f.rf from j * 17 + 1 for 16), f.k,\n" \
    "             f.id, get_byte(f.rf, j * 17 + 16)\n" \
    "             FROM f, generate_series(0, length(f.rf) / 17 - 1) j WHERE f.st = 0)\n" \
    "    SELECT array_agg(o ORDER BY o), array_agg(seq ORDER BY o) INTO v_fresh, v_fseq FROM f;\n" \
    "    FOR j IN 1..array_length(v_fresh, 1) LOOP\n" \
    "      r_status[v_fresh[j]] := 1; r_version[v_fresh[j]] := 1; r_seq[v_fresh[j]] := v_fseq[j];\n" \
    "    END LOOP;\n" \
    "  END IF;\n" \
    "  -- Everything else, record by record, in upload order.\n" \
    "  FOR i IN 1..n LOOP\n" \
    "    CONTINUE WHEN r_status[i] <> 0;\n" \
    "    v_kind := p_kind[i]; v_id := p_id[i]; v_grid := p_grid[i];\n" \
    "    IF p_reason[i] <> 0 THEN\n" \
    "      r_status[i] := 5; r_reason[i] := p_reason[i]; CONTINUE;\n" \
    "    END IF;\n" \
    "    v_base := p_base[i]; v_st := p_status[i]; v_nk := p_natkey[i]; v_merged := false;\n" \
    "    SELECT grid, canon INTO v_cgrid, v_canon FROM ids\n" \
    "      WHERE kind = v_kind AND record_id = v_id;\n" \
    "    v_found := FOUND;\n" \
    "    IF v_found AND v_canon <> v_id THEN\n" \
    "      SELECT grid INTO v_cgrid FROM ids WHERE kind = v_kind AND record_id = v_canon;\n" \
    "    END IF;\n" \
    "    IF NOT v_found AND v_nk IS NOT NULL THEN\n" \
    "      SELECT canon INTO v_canon FROM natkeys WHERE natkey = v_nk;\n" \
    "      IF FOUND THEN\n" \
    "        SELECT grid INTO v_cgrid FROM ids WHERE kind = v_kind AND record_id = v_canon;\n" \
    "        v_found := true; v_merged := true;\n" \
    "      END IF;\n" \
    "    END IF;\n" \
    "    IF NOT v_found THEN\n" \
    "      IF v_base > 0 THEN\n" \
    "        r_status[i] := 5; r_reason[i] := %d; CONTINUE;\n" \
    "      END IF;\n" \
    "      INSERT INTO change_log VALUES (nextval('change_seq'), v_grid, v_kind, v_id,\n" \
    "        CASE WHEN v_st = 1 THEN 2 ELSE 1 END, 1, p_device, p_now, p_data[i])\n" \
    "        RETURNING seq INTO v_seq;\n" \
    "      INSERT INTO records VALUES (v_grid, v_kind, v_id, 1, v_seq, p_now, v_st,\n" \
    "        p_hash[i], v_nk, p_refs[i], p_people[i], p_data[i]);\n" \
    "      INSERT INTO ids VALUES (v_kind, v_id, v_grid, v_id);\n" \
    "      IF v_nk IS NOT NULL THEN INSERT INTO natkeys VALUES (v_nk, v_id); END IF;\n" \
    "      IF v_st = 0 THEN\n" \
    "        INSERT INTO persons SELECT v_grid, substring(p_refs[i] from j * 17 + 1 for 16),\n" \
    "          v_kind, v_id, get_byte(p_refs[i], j * 17 + 16)\n" \
    "          FROM generate_series(0, length(p_refs[i]) / 17 - 1) j;\n" \
    "      END IF;\n" \
    "      r_status[i] := 1; r_version[i] := 1; r_seq[i] := v_seq; CONTINUE;\n" \
    "    END IF;\n" \
    "    SELECT version, status, content_hash, refs, natkey\n" \
    "      INTO c_version, c_status, c_hash, c_refs, c_natkey\n" \
    "      FROM records WHERE grid = v_cgrid AND kind = v_kind AND record_id = v_canon;\n" \
    "    r_key[i] := v_canon;\n" \
    "    v_same := c_hash = p_hash[i] AND c_status = v_st;\n" \
    "    IF NOT v_same THEN\n" \
    "      IF v_base > c_version THEN\n" \
    "        r_status[i] := 5; r_reason[i] := %d; CONTINUE;\n" \
    "      END IF;\n" \
    "      IF v_base < c_version THEN\n" \
    "        r_status[i] := 4; r_version[i] := c_version; CONTINUE;\n" \
    "      END IF;\n" \
    "    END IF;\n" \
    "    v_nk_put := false; v_nk_del := false;\n" \
    "    IF NOT v_same AND NOT v_merged THEN\n" \
    "      IF v_nk IS NOT NULL THEN\n" \
    "        SELECT canon INTO v_other FROM natkeys WHERE natkey = v_nk;\n" \
    "        IF FOUND THEN\n" \
    "          IF v_other <> v_canon THEN\n" \
    "            r_status[i] := 5; r_reason[i] := %d; CONTINUE;\n" \
    "          END IF;\n" \
    "        ELSE\n" \
    "          v_nk_put := true; v_nk_del := c_natkey IS NOT NULL;\n" \
    "        END IF;\n" \
    "      ELSE\n" \
    "        v_nk_del := c_natkey IS NOT NULL;\n" \
    "      END IF;\n" \
    "    END IF;\n" \
    "    IF v_same THEN\n" \
    "      r_status[i] := CASE WHEN v_merged THEN 3 ELSE 2 END; r_version[i] := c_version;\n" \
    "    ELSE\n" \
    "      v_ver := c_version + 1; v_moving := v_cgrid <> v_grid;\n" \
    "      IF v_moving THEN\n" \
    "        INSERT INTO change_log VALUES (nextval('change_seq'), v_cgrid, v_kind, v_canon,\n" \
    "          3, v_ver, p_device, p_now, p_data[i]);\n" \
    "        INSERT INTO change_log VALUES (nextval('change_seq'), v_grid, v_kind, v_canon,\n" \
    "          4, v_ver, p_device, p_now, p_data[i]) RETURNING seq INTO v_seq;\n" \
    "        DELETE FROM records WHERE grid = v_cgrid AND kind = v_kind AND record_id = v_canon;\n" \
    "        INSERT INTO records VALUES (v_grid, v_kind, v_canon, v_ver, v_seq, p_now, v_st,\n" \
    "          p_hash[i], v_nk, p_refs[i], p_people[i], p_data[i]);\n" \
    "        UPDATE ids SET grid = v_grid WHERE kind = v_kind AND record_id = v_canon;\n" \
    "      ELSE\n" \
    "        INSERT INTO change_log VALUES (nextval('change_seq'), v_grid, v_kind, v_canon,\n" \
    "          CASE WHEN v_st = 1 THEN 2 ELSE 1 END, v_ver, p_device, p_now, p_data[i])\n" \
    "          RETURNING seq INTO v_seq;\n" \
    "        UPDATE records SET version = v_ver, seq = v_seq, updated_at = p_now,\n" \
    "          status = v_st, content_hash = p_hash[i], natkey = v_nk, refs = p_refs[i],\n" \
    "          people = p_people[i], data = p_data[i]\n" \
    "          WHERE grid = v_grid AND kind = v_kind AND record_id = v_canon;\n" \
    "      END IF;\n" \
    "      IF v_moving OR c_status <> v_st OR c_refs <> p_refs[i] THEN\n" \
    "        IF c_status = 0 THEN\n" \
    "          DELETE FROM persons p USING generate_series(0, length(c_refs) / 17 - 1) j\n" \
    "            WHERE p.grid = v_cgrid AND p.hmac = substring(c_refs from j * 17 + 1 for 16)\n" \
    "              AND p.kind = v_kind AND p.record_id = v_canon;\n" \
    "        END IF;\n" \
    "        IF v_st = 0 THEN\n" \
    "          INSERT INTO persons SELECT v_grid, substring(p_refs[i] from j * 17 + 1 for 16),\n" \
    "            v_kind, v_canon, get_byte(p_refs[i], j * 17 + 16)\n" \
    "            FROM generate_series(0, length(p_refs[i]) / 17 - 1) j;\n" \
    "        END IF;\n" \
    "      END IF;\n" \
    "      IF v_nk_del THEN\n" \
    "        DELETE FROM natkeys WHERE natkey = c_natkey AND canon = v_canon;\n" \
    "      END IF;\n" \
    "      IF v_nk_put THEN INSERT INTO natkeys VALUES (v_nk, v_canon); END IF;\n" \
    "      r_status[i] := CASE WHEN v_merged THEN 3 ELSE 1 END;\n" \
    "      r_version[i] := v_ver; r_seq[i] := v_seq;\n" \
    "    END IF;\n" \
    "    IF v_merged THEN\n" \
    "      INSERT INTO ids VALUES (v_kind, v_id, v_grid, v_canon)\n" \
    "        ON CONFLICT (kind, record_id) DO UPDATE SET grid = EXCLUDED.grid,\n" \
    "          canon = EXCLUDED.canon;\n" \
    "    END IF;\n" \
    "  END LOOP;\n" \
    "  INSERT INTO idem VALUES (p_device, p_upload, p_now, r_status, r_reason, r_version,\n" \
    "    r_key, r_seq);\n" \
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

/* A one-dimensional array in PostgreSQL's binary format (array_recv):
 * ndim, has-null flag, element type, length, lower bound, then each
 * element as length + bytes (-1 for NULL). */
static void
s_arr_begin(s_buf_t *b, uint32_t elem_oid, size_t n)
{
    b->len = 0;
    s_buf_u32(b, 1);
    s_buf_u32(b, 0);                /* has nulls: patched by s_arr_null */
    s_buf_u32(b, elem_oid);
    s_buf_u32(b, (uint32_t) n);
    s_buf_u32(b, 1);
}

static void
s_arr_bytes(s_buf_t *b, const void *p, size_t n)
{
    s_buf_u32(b, (uint32_t) n);
    s_buf_put(b, p, n);
}

static void
s_arr_null(s_buf_t *b)
{
    uint32_t one = htonl(1);
    memcpy(b->data + 4, &one, 4);
    s_buf_u32(b, 0xffffffffu);
}

static void
s_arr_i32(s_buf_t *b, int32_t v)
{
    s_buf_u32(b, 4);
    s_buf_u32(b, (uint32_t) v);
}

static void
s_arr_i64(s_buf_t *b, int64_t v)
{
    s_buf_u32(b, 8);
    s_buf_u64(b, (uint64_t) v);
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

/* The parameters of one gs_apply call, rebuilt for each send. */
typedef struct s_params {
    s_buf_t arr[S_NPARAMS];         /* binary values; 0..2 scalars, 3.. arrays */
    s_buf_t packed;                 /* scratch: one packed record */
    s_buf_t refs;                   /* scratch: one record's person refs */
    uint64_t persons;               /* household members and tenants in the upload */
} s_params_t;

static void
s_params_build(s_params_t *pp, const Gridsync__V1__Upload *up, gs_arena_t *a)
{
    size_t n = up->n_records;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    pp->arr[0].len = pp->arr[1].len = pp->arr[2].len = 0;
    s_buf_put(&pp->arr[0], up->device_id, strlen(up->device_id));
    s_buf_put(&pp->arr[1], up->upload_id, strlen(up->upload_id));
    s_buf_u64(&pp->arr[2], (uint64_t) now_ms);
    s_arr_begin(&pp->arr[3], S_TEXT, n);     /* kind */
    s_arr_begin(&pp->arr[4], S_TEXT, n);     /* id */
    s_arr_begin(&pp->arr[5], S_TEXT, n);     /* grid */
    s_arr_begin(&pp->arr[6], S_INT4, n);     /* validation reason */
    s_arr_begin(&pp->arr[7], S_INT8, n);     /* base version */
    s_arr_begin(&pp->arr[8], S_INT4, n);     /* record status */
    s_arr_begin(&pp->arr[9], S_BYTEA, n);    /* content hash */
    s_arr_begin(&pp->arr[10], S_BYTEA, n);   /* natural key */
    s_arr_begin(&pp->arr[11], S_BYTEA, n);   /* person refs */
    s_arr_begin(&pp->arr[12], S_INT4, n);    /* people */
    s_arr_begin(&pp->arr[13], S_BYTEA, n);   /* packed record */
    pp->persons = 0;
    for (size_t i = 0; i < n; i++) {
        Gridsync__V1__Record *rec = up->records[i];
        gs_verdict_t v;
        int reason = gs_record_check(rec, gs_arena_allocator(a), NULL, now_ms, &v);
        int kind = gs_record_kind(rec);
        char kb = kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD ? 'H' : 'R';
        const char *id = gs_record_id(rec), *grid = gs_record_grid(rec);
        const Gridsync__V1__RecordMeta *meta = gs_record_meta(rec);
        s_arr_bytes(&pp->arr[3], &kb, 1);
        s_arr_bytes(&pp->arr[4], id ? id : "", id ? strlen(id) : 0);
        s_arr_bytes(&pp->arr[5], grid ? grid : "", grid ? strlen(grid) : 0);
        s_arr_i32(&pp->arr[6], reason);
        s_arr_i64(&pp->arr[7], meta ? (int64_t) meta->base_version : 0);
        s_arr_i32(&pp->arr[8], meta ? (int32_t) meta->status : 0);
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
        }
        pp->persons += people;
        /* content: the record without its metadata and id, hashed */
        uint8_t hash[16];
        Gridsync__V1__Record copy = *rec;
        Gridsync__V1__Household hh;
        Gridsync__V1__RentalHousing rh;
        if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD) {
            hh = *rec->household;
            hh.meta = NULL;
            hh.household_id = (char *) "";
            copy.household = &hh;
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
        s_arr_bytes(&pp->arr[9], hash, 16);
        /* the store's own definition (docs/store.md), so both sides merge
         * the same records */
        uint8_t nk[GS_NATKEY_MAX + 2];
        size_t nkl = gs_natkey(rec, nk);
        if (nkl)
            s_arr_bytes(&pp->arr[10], nk, nkl);
        else
            s_arr_null(&pp->arr[10]);
        s_arr_bytes(&pp->arr[11], pp->refs.data ? pp->refs.data : (uint8_t *) "",
                    pp->refs.len);
        s_arr_i32(&pp->arr[12], (int32_t) people);
        size_t rl = protobuf_c_message_get_packed_size(&rec->base);
        s_buf_need(&pp->arr[13], rl + 4);
        s_buf_u32(&pp->arr[13], (uint32_t) rl);
        protobuf_c_message_pack(&rec->base, pp->arr[13].data + pp->arr[13].len);
        pp->arr[13].len += rl;
    }
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

/* Turn gs_apply's row into an Ack in the arena. 0, or -1 when malformed. */
static int
s_ack_from_row(PGresult *res, const char *upload_id, size_t n, gs_arena_t *a,
               Gridsync__V1__Ack **ack_out)
{
    char **col[5];
    for (int c = 0; c < 5; c++) {
        col[c] = gs_arena_alloc(a, (n + 1) * sizeof(char *));
        if (!col[c] || PQgetisnull(res, 0, c) ||
            s_text_array(PQgetvalue(res, 0, c), a, col[c], n) != (long) n)
            return -1;
    }
    Gridsync__V1__Ack *ack = gs_arena_alloc(a, sizeof *ack);
    Gridsync__V1__RecordResult **rp = gs_arena_alloc(a, (n + 1) * sizeof *rp);
    Gridsync__V1__RecordResult *rr = gs_arena_alloc(a, (n + 1) * sizeof *rr);
    if (!ack || !rp || !rr)
        return -1;
    gridsync__v1__ack__init(ack);
    ack->upload_id = gs_arena_strdup(a, upload_id);
    ack->n_results = n;
    ack->results = rp;
    for (size_t i = 0; i < n; i++) {
        gridsync__v1__record_result__init(&rr[i]);
        rr[i].index = (uint32_t) i;
        rr[i].status = (Gridsync__V1__ResultStatus) atoi(col[0][i]);
        rr[i].reason = (Gridsync__V1__Reason) atoi(col[1][i]);
        rr[i].version = strtoull(col[2][i], NULL, 10);
        rr[i].record_key = col[3][i];
        rr[i].seq = strtoull(col[4][i], NULL, 10);
        rp[i] = &rr[i];
    }
    *ack_out = ack;
    return 0;
}

/* ---- The run ------------------------------------------------------------------------- */

typedef struct s_run {
    const gs_gen_t *gen;
    gs_sim_opts_t sim;
    const char *conninfo;
    uint32_t n_grids;
    uint32_t connections;
    uint64_t txn_records;           /* records per transaction (at least) */
    atomic_ullong errors;           /* expectation errors */
    atomic_int printed;             /* details printed */
    atomic_int failed;              /* a connection failed */
} s_run_t;

/* One gs_apply call waiting for its result in the open pipeline. */
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
    s_pending_t *pend;              /* calls in the open transaction */
    size_t n_pend, cap_pend;
    uint64_t pend_records;          /* records in them */
    gs_arena_t **retire;            /* grid arenas to free after the next commit */
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

static void
s_send(s_worker_t *w, gs_sim_upload_t *u, int what, Gridsync__V1__Ack **first, gs_arena_t *a)
{
    if (w->n_pend == 0 && !PQsendQueryParams(w->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0))
        s_die(w, "BEGIN");
    s_params_build(&w->pp, u->up, a);
    const char *vals[S_NPARAMS];
    int lens[S_NPARAMS], fmts[S_NPARAMS];
    for (int i = 0; i < S_NPARAMS; i++) {
        vals[i] = (const char *) w->pp.arr[i].data;
        lens[i] = (int) w->pp.arr[i].len;
        fmts[i] = 1;
    }
    /* flush at once, so the server works on this upload while the next is
     * prepared here */
    if (!PQsendQueryPrepared(w->conn, "gs_apply", S_NPARAMS, vals, lens, fmts, 0) ||
        PQflush(w->conn) != 0)
        s_die(w, "send gs_apply");
    if (w->n_pend == w->cap_pend) {
        w->cap_pend = w->cap_pend ? 2 * w->cap_pend : 64;
        w->pend = realloc(w->pend, w->cap_pend * sizeof *w->pend);
        if (!w->pend)
            exit(1);
    }
    w->pend[w->n_pend++] = (s_pending_t) { u, what, first, a };
    w->pend_records += u->up->n_records;
    if (what != S_SEND_LOST) {
        w->records += u->up->n_records;
        w->persons += w->pp.persons;
        w->uploads++;
    }
}

static PGresult *
s_result(s_worker_t *w, ExecStatusType want, const char *what)
{
    PGresult *res = PQgetResult(w->conn);
    if (!res || PQresultStatus(res) != want) {
        fprintf(stderr, "bench_pg: connection %u: %s: %s\n", w->index, what,
                res ? PQresultErrorMessage(res) : PQerrorMessage(w->conn));
        exit(1);
    }
    return res;
}

static void
s_end_query(s_worker_t *w)
{
    PGresult *res = PQgetResult(w->conn);  /* NULL after each query's results */
    if (res) {
        fprintf(stderr, "bench_pg: unexpected extra result\n");
        exit(1);
    }
}

/* COMMIT the open transaction and check every answer it held. */
static void
s_commit(s_worker_t *w)
{
    if (w->n_pend == 0)
        return;
    if (!PQsendQueryParams(w->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) ||
        !PQpipelineSync(w->conn))
        s_die(w, "COMMIT");
    PQclear(s_result(w, PGRES_COMMAND_OK, "BEGIN"));
    s_end_query(w);
    char detail[768];
    for (size_t i = 0; i < w->n_pend; i++) {
        s_pending_t *p = &w->pend[i];
        PGresult *res = s_result(w, PGRES_TUPLES_OK, "gs_apply");
        Gridsync__V1__Ack *ack = NULL;
        if (PQntuples(res) != 1 ||
            s_ack_from_row(res, p->u->up->upload_id, p->u->up->n_records, p->a, &ack)) {
            fprintf(stderr, "bench_pg: malformed gs_apply result\n");
            exit(1);
        }
        int replayed = PQgetvalue(res, 0, 5)[0] == 't';
        PQclear(res);
        s_end_query(w);
        if (p->what == S_SEND_LOST)
            continue;           /* this answer was "lost": never looked at */
        w->replayed += replayed;
        for (size_t k = 0; k < ack->n_results; k++)
            if ((unsigned) ack->results[k]->status < 6)
                w->results[ack->results[k]->status]++;
        if (p->what == S_SEND_FIRST) {
            *p->first = ack;
            if (gs_sim_check(p->u, ack, detail, sizeof detail))
                s_error(w->run, detail);
        } else if (!*p->first || gs_sim_ack_same(*p->first, ack, detail, sizeof detail)) {
            s_error(w->run, *p->first ? detail : "retransmission without a first answer");
        }
    }
    PQclear(s_result(w, PGRES_COMMAND_OK, "COMMIT"));
    s_end_query(w);
    PGresult *res = PQgetResult(w->conn);
    if (!res || PQresultStatus(res) != PGRES_PIPELINE_SYNC)
        s_die(w, "pipeline sync");
    PQclear(res);
    w->n_pend = 0;
    w->pend_records = 0;
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
    for (uint32_t g = w->index; g < run->n_grids && !atomic_load(&run->failed);
         g += run->connections) {
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
                s_send(w, u, S_SEND_LOST, &firsts[i], a);
            s_send(w, u, S_SEND_FIRST, &firsts[i], a);
            if (u->noise == GS_SIM_RETRANSMIT)
                s_send(w, u, S_SEND_AGAIN, &firsts[i], a);
            if (w->pend_records >= run->txn_records)
                s_commit(w);
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
    s_commit(w);
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

static void
s_usage(void)
{
    fprintf(stderr,
            "usage: bench_pg --conninfo STR [--connections N] [--txn-records N]\n"
            "                [--scale F] [--district CODE] [--run-id ID] [--seed N]\n"
            "Replays gridsim's uploads (same options mean same uploads) against\n"
            "PostgreSQL with gridsync's semantics; recreates schema gs first.\n");
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
    so.run_id = "bench";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
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
    if (scale != 1) {
        go.grids = (uint32_t) fmax(1, round(go.grids * scale));
        go.households = (uint32_t) round(go.households * scale);
        go.rental_buildings = (uint32_t) round(go.rental_buildings * scale);
    }
    if (go.streets > go.grids)
        go.streets = go.grids;
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
    r = PQexec(c, "SHOW server_version");
    const char *version = PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "?";
    gs_bench_kv("pg", "server_version", "%s", version);
    PQclear(r);
    PQfinish(c);

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
        const Oid types[S_NPARAMS] = { S_TEXT, S_TEXT, S_INT8, S_TEXT_ARR, S_TEXT_ARR,
                                       S_TEXT_ARR, S_INT4_ARR, S_INT8_ARR, S_INT4_ARR,
                                       S_BYTEA_ARR, S_BYTEA_ARR, S_BYTEA_ARR, S_INT4_ARR,
                                       S_BYTEA_ARR };
        r = PQprepare(ws[i].conn, "gs_apply",
                      "SELECT * FROM gs_apply($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                      "$12, $13, $14)", S_NPARAMS, types);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(stderr, "bench_pg: prepare: %s", PQerrorMessage(ws[i].conn));
            return 1;
        }
        PQclear(r);
        if (!PQenterPipelineMode(ws[i].conn)) {
            fprintf(stderr, "bench_pg: pipeline mode: %s", PQerrorMessage(ws[i].conn));
            return 1;
        }
    }
    int64_t t0 = gs_bench_now_us();
    for (uint32_t i = 0; i < connections; i++)
        pthread_create(&ws[i].tid, NULL, s_worker_main, &ws[i]);
    for (uint32_t i = 0; i < connections; i++)
        pthread_join(ws[i].tid, NULL);
    double secs = (double) (gs_bench_now_us() - t0) / 1e6;

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
        for (int k = 0; k < S_NPARAMS; k++)
            free(w->pp.arr[k].data);
        free(w->pp.packed.data);
        free(w->pp.refs.data);
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
