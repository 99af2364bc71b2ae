/*
 * test_store_keys: the store's key codec (store/gs_store_keys.h). Pure:
 * every table's key built and parsed back, the byte orders that make LMDB's
 * key order the order the store relies on (seq order in the logs, cell
 * clustering in records), the parsers refusing bytes of the
 * wrong shape, and the snapshot cursor's round trip and refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "gs_store_keys.h"

static const char *G = "110105001001001";

static void
test_byte_order(void **state)
{
    (void) state;
    uint8_t b[8];
    gs_be64_put(b, 0x0102030405060708ull);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[7], 8);
    assert_true(gs_be64_get(b) == 0x0102030405060708ull);
    gs_le64_put(b, 0x0102030405060708ull);
    assert_int_equal(b[0], 8);
    assert_true(gs_le64_get(b) == 0x0102030405060708ull);
    gs_le32_put(b, 0xA1B2C3D4u);
    assert_int_equal(b[0], 0xD4);
    assert_true(gs_le32_get(b) == 0xA1B2C3D4u);
    gs_le16_put(b, 0xBEEF);
    assert_int_equal(b[0], 0xEF);
    assert_int_equal(gs_le16_get(b), 0xBEEF);
}

static void
test_record_key(void **state)
{
    (void) state;
    uint8_t k[GS_RK_MAX];
    size_t n = gs_key_record(k, G, 'H', "hh-1", 4);
    assert_int_equal(n, GS_GRID_LEN + 1 + 4);
    assert_memory_equal(k, G, GS_GRID_LEN);      /* clustered by cell */
    assert_int_equal(k[GS_GRID_LEN], 'H');
    char grid[GS_GRID_LEN + 1], id[GS_ID_MAX + 1], kb;
    assert_int_equal(gs_key_record_parse(k, n, grid, &kb, id), 0);
    assert_string_equal(grid, G);
    assert_int_equal(kb, 'H');
    assert_string_equal(id, "hh-1");
    /* no id, or an id longer than GS_ID_MAX, is not a records key */
    assert_int_equal(gs_key_record_parse(k, GS_GRID_LEN + 1, grid, &kb, id), -1);
    assert_int_equal(gs_key_record_parse(k, GS_RK_MAX + 1, grid, &kb, id), -1);
    /* the longest id fits */
    char longid[GS_ID_MAX + 1];
    memset(longid, 'x', GS_ID_MAX);
    longid[GS_ID_MAX] = 0;
    n = gs_key_record(k, G, 'R', longid, GS_ID_MAX);
    assert_int_equal(n, GS_RK_MAX);
    assert_int_equal(gs_key_record_parse(k, n, grid, NULL, id), 0);
    assert_string_equal(id, longid);
}

static void
test_ids_and_natkeys(void **state)
{
    (void) state;
    uint8_t k[GS_IK_MAX], v[GS_IV_MAX];
    size_t kl = gs_key_id(k, 'R', "r-9", 3);
    assert_int_equal(kl, 4);
    assert_memory_equal(k, "Rr-9", 4);
    /* an alias: the grid and the canonical id */
    size_t vl = gs_val_id(v, G, "r-1", 3);
    assert_int_equal(vl, GS_GRID_LEN + 3);
    char grid[GS_GRID_LEN + 1], canon[GS_ID_MAX + 1], kb;
    assert_int_equal(gs_val_id_parse(k, kl, v, vl, grid, canon), 0);
    assert_string_equal(grid, G);
    assert_string_equal(canon, "r-1");
    assert_int_equal(gs_val_id_parse(k, kl, v, vl, NULL, canon), 0);
    assert_int_equal(gs_val_id_parse(k, kl, v, GS_GRID_LEN - 1, grid, canon), -1);
    assert_int_equal(gs_val_id_parse(k, kl, v, GS_IV_MAX + 1, grid, canon), -1);
    assert_int_equal(gs_val_id_parse(k, 1, v, vl, grid, canon), -1);        /* no id */
    /* a canonical entry: the grid alone, the id is the key's */
    vl = gs_val_id(v, G, NULL, 0);
    assert_int_equal(vl, GS_GRID_LEN);
    assert_memory_equal(v, G, GS_GRID_LEN);
    assert_int_equal(gs_val_id_parse(k, kl, v, vl, grid, canon), 0);
    assert_string_equal(grid, G);
    assert_string_equal(canon, "r-9");
    /* format 4's canonical entry (the id repeated) reads the same */
    vl = gs_val_id(v, G, "r-9", 3);
    assert_int_equal(gs_val_id_parse(k, kl, v, vl, grid, canon), 0);
    assert_string_equal(grid, G);
    assert_string_equal(canon, "r-9");
    /* a natkeys value has the layout of an ids key */
    assert_int_equal(gs_val_natkey_parse(k, kl, &kb, canon), 0);
    assert_int_equal(kb, 'R');
    assert_string_equal(canon, "r-9");
    assert_true(gs_val_natkey_is(k, kl, "r-9"));
    assert_false(gs_val_natkey_is(k, kl, "r-90"));
    assert_false(gs_val_natkey_is(k, kl, "r-"));
    assert_int_equal(gs_val_natkey_parse(k, 1, &kb, canon), -1);
    assert_int_equal(gs_val_natkey_parse(k, GS_IK_MAX + 1, &kb, canon), -1);
}

static void
test_log_keys(void **state)
{
    (void) state;
    /* big-endian: byte order is seq order, so MDB_APPEND and range scans work */
    uint8_t a[GS_LK_LEN], b[GS_LK_LEN];
    gs_key_log(a, 255);
    gs_key_log(b, 256);
    assert_true(memcmp(a, b, GS_LK_LEN) < 0);
    uint64_t seq;
    assert_int_equal(gs_key_log_parse(b, GS_LK_LEN, &seq), 0);
    assert_true(seq == 256);
    assert_int_equal(gs_key_log_parse(b, 7, &seq), -1);

    uint8_t c[GS_CLK_LEN], d[GS_CLK_LEN], e[GS_CLK_LEN];
    gs_key_cell_log(c, G, 255);
    gs_key_cell_log(d, G, 256);
    gs_key_cell_log(e, "110105001001002", 1);
    assert_true(memcmp(c, d, GS_CLK_LEN) < 0);
    assert_true(memcmp(d, e, GS_CLK_LEN) < 0);   /* a cell's entries are contiguous */
    assert_memory_equal(c, G, GS_GRID_LEN);
    assert_int_equal(gs_key_cell_log_parse(d, GS_CLK_LEN, &seq), 0);
    assert_true(seq == 256);
    assert_int_equal(gs_key_cell_log_parse(d, GS_LK_LEN, &seq), -1);
}

static void
test_chain_key(void **state)
{
    (void) state;
    char k[GS_CHK_MAX];
    assert_int_equal(gs_key_chain(G, 0, k), gs_level_len[0] ? (size_t) gs_level_len[0] : 1);
    for (int l = 0; l < GS_LEVELS; l++) {
        size_t n = gs_key_chain(G, l, k);
        if (gs_level_len[l] == 0) {
            assert_int_equal(n, 1);
            assert_int_equal(k[0], '*');    /* the root: LMDB keys cannot be empty */
        } else {
            assert_int_equal(n, (size_t) gs_level_len[l]);
            assert_memory_equal(k, G, n);
        }
    }
    assert_int_equal(gs_key_chain(G, GS_LEVELS - 1, k), GS_GRID_LEN);
}

/* The digests key: level digit, then the prefix; a prefix's children are
 * the keys of the next level that start with its own digits. */
static void
test_digest_key(void **state)
{
    (void) state;
    uint8_t k[GS_DGK_MAX];
    char p[GS_GRID_LEN + 1];
    int level = -1;
    for (int l = 0; l < GS_LEVELS; l++) {
        size_t n = gs_key_digest(k, G, l);
        assert_int_equal(n, 1 + (size_t) gs_level_len[l]);
        assert_int_equal(k[0], '0' + l);
        assert_memory_equal(k + 1, G, n - 1);
        assert_int_equal(gs_key_digest_parse(k, n, &level, p), 0);
        assert_int_equal(level, l);
        assert_int_equal(strlen(p), (size_t) gs_level_len[l]);
        assert_memory_equal(p, G, strlen(p));
    }
    /* a length that is not its level's, a level out of range, a letter */
    assert_int_equal(gs_key_digest_parse((const uint8_t *) "2440", 4, &level, p), -1);
    assert_int_equal(gs_key_digest_parse((const uint8_t *) "744", 3, &level, p), -1);
    assert_int_equal(gs_key_digest_parse((const uint8_t *) "14x", 3, &level, p), -1);
    assert_int_equal(gs_key_digest_parse(k, 0, &level, p), -1);
    /* the next level's key of a child sorts inside the parent's range */
    uint8_t c[GS_DGK_MAX];
    size_t cn = gs_key_digest(c, G, 3);
    size_t pn = gs_key_digest(k, G, 2);
    assert_int_equal(c[0], k[0] + 1);
    assert_memory_equal(c + 1, k + 1, pn - 1);
    (void) cn;
}

static void
test_idem(void **state)
{
    (void) state;
    uint8_t k[GS_IDK_MAX];
    size_t kl = gs_key_idem(k, "dev-1", "up-1");
    assert_int_equal(kl, 10);
    assert_memory_equal(k, "dev-1\0up-1", 10);
    uint8_t fk[GS_FK_LEN], fk2[GS_FK_LEN];
    gs_key_idem_fifo(fk, 9);
    gs_key_idem_fifo(fk2, 10);
    assert_true(memcmp(fk, fk2, GS_FK_LEN) < 0);
    uint8_t v[GS_FV_MAX];
    size_t vl = gs_val_idem_fifo(v, 1780243200000LL, k, kl);
    assert_int_equal(vl, 8 + kl);
    int64_t at;
    const uint8_t *ik;
    size_t il;
    assert_int_equal(gs_val_idem_fifo_parse(v, vl, &at, &ik, &il), 0);
    assert_true(at == 1780243200000LL);
    assert_int_equal(il, kl);
    assert_memory_equal(ik, k, kl);
    assert_int_equal(gs_val_idem_fifo_parse(v, 7, &at, &ik, &il), -1);
}

static void
test_snapshot_cursor(void **state)
{
    (void) state;
    const char *set1[] = { "1101", "1102" }, *set2[] = { "1101", "1103" };
    uint32_t h1 = gs_snap_prefix_hash(set1, 2);
    assert_true(h1 == gs_snap_prefix_hash(set1, 2));
    assert_true(h1 != gs_snap_prefix_hash(set2, 2));
    assert_true(h1 != gs_snap_prefix_hash(set1, 1));

    gs_snap_cursor_t c;
    memset(&c, 0, sizeof c);
    c.snap = 123456789;
    c.prefix_hash = h1;
    c.prefix_index = 1;
    c.last_len = gs_key_record(c.last, G, 'H', "hh-1", 4);
    size_t n = gs_snap_cursor_size(&c);
    assert_int_equal(n, GS_SNAP_HDR + c.last_len);
    uint8_t b[GS_SNAP_MAX + 1];
    gs_snap_cursor_put(b, &c);
    assert_int_equal(b[0], 'S');
    gs_snap_cursor_t d;
    assert_int_equal(gs_snap_cursor_parse(b, n, &d), 0);
    assert_true(d.snap == c.snap);
    assert_true(d.prefix_hash == h1);
    assert_int_equal(d.prefix_index, 1);
    assert_int_equal(d.last_len, c.last_len);
    assert_memory_equal(d.last, c.last, c.last_len);

    /* "start of prefix i": no key */
    c.last_len = 0;
    gs_snap_cursor_put(b, &c);
    assert_int_equal(gs_snap_cursor_parse(b, GS_SNAP_HDR, &d), 0);
    assert_int_equal(d.last_len, 0);

    /* refused: short, wrong tag, length that disagrees, key too long */
    assert_int_equal(gs_snap_cursor_parse(b, GS_SNAP_HDR - 1, &d), -1);
    b[0] = 'X';
    assert_int_equal(gs_snap_cursor_parse(b, GS_SNAP_HDR, &d), -1);
    b[0] = 'S';
    assert_int_equal(gs_snap_cursor_parse(b, GS_SNAP_HDR + 1, &d), -1);
    uint8_t big[GS_SNAP_HDR + GS_RK_MAX + 1];
    memset(big, 'k', sizeof big);
    memcpy(big, b, GS_SNAP_HDR);
    gs_le16_put(big + 17, GS_RK_MAX + 1);
    assert_int_equal(gs_snap_cursor_parse(big, sizeof big, &d), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_order),
        cmocka_unit_test(test_record_key),
        cmocka_unit_test(test_ids_and_natkeys),
        cmocka_unit_test(test_log_keys),
        cmocka_unit_test(test_chain_key),
        cmocka_unit_test(test_digest_key),
        cmocka_unit_test(test_idem),
        cmocka_unit_test(test_snapshot_cursor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
