/*
 * test_checkpoint: tools/client/gs_checkpoint, the subscriber's checkpoint
 * file, in a fresh temporary directory: a written file reads back (epoch,
 * positions, extra), a missing file changes nothing, prefixes the caller
 * does not follow and unknown lines are skipped, a damaged epoch is refused,
 * a second write replaces the first whole and leaves no temporary file
 * behind, and what does not fit is refused with the old file kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gs_checkpoint.h"

typedef struct s_dir {
    char dir[64];               /* the temporary directory */
    char path[128];             /* DIR/feed.ckpt */
} s_dir_t;

static int
s_setup(void **state)
{
    s_dir_t *d = calloc(1, sizeof *d);
    assert_non_null(d);
    snprintf(d->dir, sizeof d->dir, "/tmp/gs-ckpt-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->path, sizeof d->path, "%s/feed.ckpt", d->dir);
    *state = d;
    return 0;
}

static int
s_teardown(void **state)
{
    s_dir_t *d = *state;
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", d->path);
    unlink(tmp);
    unlink(d->path);
    rmdir(d->dir);
    free(d);
    return 0;
}

static void
s_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void
test_round_trip(void **state)
{
    s_dir_t *d = *state;
    const char *pf[] = { "440305001", "440306" };
    uint64_t seq[] = { 1234, 7 };
    assert_int_equal(gs_checkpoint_write(d->path, pf, seq, 2, 0x0123456789abcdefull, "bytes=99"), 0);

    uint64_t got[] = { 5, 5 }, epoch = 0;
    char extra[256] = "";
    assert_int_equal(gs_checkpoint_read(d->path, pf, 2, got, &epoch, extra, sizeof extra), 0);
    assert_int_equal(got[0], 1234);
    assert_int_equal(got[1], 7);
    assert_int_equal(epoch, 0x0123456789abcdefull);
    assert_string_equal(extra, "bytes=99");

    /* the text is the documented format */
    FILE *f = fopen(d->path, "r");
    assert_non_null(f);
    char text[512] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    assert_string_equal(text, "gridsync-checkpoint 1\nepoch 0123456789abcdef\n"
                              "prefix \"440305001\" 1234\nprefix \"440306\" 7\nextra bytes=99\n");
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", d->path);
    assert_int_not_equal(access(tmp, F_OK), 0);
}

static void
test_missing_file(void **state)
{
    s_dir_t *d = *state;
    const char *pf[] = { "44" };
    uint64_t seq[] = { 42 }, epoch = 9;
    char extra[16] = "keep";
    assert_int_equal(gs_checkpoint_read(d->path, pf, 1, seq, &epoch, extra, sizeof extra), 1);
    assert_int_equal(seq[0], 42);
    assert_int_equal(epoch, 9);
    assert_string_equal(extra, "keep");
}

static void
test_partial_and_unknown(void **state)
{
    s_dir_t *d = *state;
    /* no epoch (a checkpoint from before epochs), a prefix not followed any
     * more, a line from a later version */
    s_write_text(d->path, "gridsync-checkpoint 1\nprefix \"4403\" 10\n"
                          "prefix \"4404\" 20\nsomething new\n");
    const char *pf[] = { "4404", "4405" };
    uint64_t seq[] = { 1, 2 }, epoch = 77;
    char extra[16] = "";
    assert_int_equal(gs_checkpoint_read(d->path, pf, 2, seq, &epoch, extra, sizeof extra), 0);
    assert_int_equal(seq[0], 20);
    assert_int_equal(seq[1], 2);    /* not in the file: left as it was */
    assert_int_equal(epoch, 77);
    assert_string_equal(extra, "");
}

static void
test_damaged_epoch(void **state)
{
    s_dir_t *d = *state;
    const char *bad[] = { "epoch \n", "epoch xyz\n", "epoch 0\n", "epoch 12g\n",
                          "epoch 1234567890abcdef12\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "gridsync-checkpoint 1\n%sprefix \"44\" 3\n", bad[i]);
        s_write_text(d->path, text);
        const char *pf[] = { "44" };
        uint64_t seq[] = { 0 }, epoch = 0;
        assert_int_equal(gs_checkpoint_read(d->path, pf, 1, seq, &epoch, NULL, 0),
                         GS_CLIENT_EIO);
    }
}

static void
test_rewrite_and_refusal(void **state)
{
    s_dir_t *d = *state;
    const char *pf[] = { "44" };
    uint64_t seq[] = { 1 };
    assert_int_equal(gs_checkpoint_write(d->path, pf, seq, 1, 5, "first"), 0);
    seq[0] = 2;
    assert_int_equal(gs_checkpoint_write(d->path, pf, seq, 1, 0, NULL), 0);
    uint64_t got[] = { 0 }, epoch = 0;
    char extra[16] = "";
    assert_int_equal(gs_checkpoint_read(d->path, pf, 1, got, &epoch, extra, sizeof extra), 0);
    assert_int_equal(got[0], 2);
    assert_int_equal(epoch, 0);             /* no epoch line written */
    assert_string_equal(extra, "");         /* nor an extra line */

    /* an extra too long to keep whole is refused; the old file stays */
    char longer[300];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    seq[0] = 3;
    assert_int_equal(gs_checkpoint_write(d->path, pf, seq, 1, 0, longer), GS_CLIENT_EIO);
    assert_int_equal(gs_checkpoint_read(d->path, pf, 1, got, &epoch, NULL, 0), 0);
    assert_int_equal(got[0], 2);

    /* a directory that does not exist */
    char nowhere[200];
    snprintf(nowhere, sizeof nowhere, "%s/none/feed.ckpt", d->dir);
    assert_int_equal(gs_checkpoint_write(nowhere, pf, seq, 1, 0, NULL), GS_CLIENT_EIO);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_partial_and_unknown, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_epoch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rewrite_and_refusal, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
