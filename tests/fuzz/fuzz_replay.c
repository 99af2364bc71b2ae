/*
 * test_fuzz_regressions: replays the committed seed corpus and every
 * regression input through the five fuzz entry points, compiled without
 * libFuzzer, so `make test` exercises them on any compiler.
 *
 * Inputs live in tests/fuzz/corpus/<target>/ and
 * tests/fuzz/regressions/<target>/ and are fed in name order (the store
 * target keeps its store across inputs, so order matters). An entry point
 * aborts on a broken invariant, which fails this test with the message it
 * printed.
 *
 * To replay particular files (for example a crash libFuzzer saved):
 *   test_fuzz_regressions upload|sync|store_apply|replicate|topic|categories FILE...
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gs_fuzz.h"

#ifndef GS_FUZZ_DIR
#error "GS_FUZZ_DIR must name tests/fuzz in the source tree"
#endif

typedef int (s_entry_fn)(const uint8_t *data, size_t len);

/* Feed one file; returns 0, or -1 when it cannot be read. */
static int
s_feed_file(s_entry_fn *fn, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return -1;
    fn(buf, len);
    free(buf);
    return 0;
}

static int
s_visible(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Feed every file of GS_FUZZ_DIR/kind/target in name order; returns how
 * many (0 when the directory does not exist). */
static int
s_feed_dir(s_entry_fn *fn, const char *kind, const char *target)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s/%s", GS_FUZZ_DIR, kind, target);
    struct dirent **names = NULL;
    int n = scandir(dir, &names, s_visible, alphasort);
    if (n < 0)
        return 0;
    for (int i = 0; i < n; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        assert_int_equal(s_feed_file(fn, path), 0);
        free(names[i]);
    }
    free(names);
    return n;
}

static void
s_replay(s_entry_fn *fn, const char *target)
{
    int seeds = s_feed_dir(fn, "corpus", target);
    int regressions = s_feed_dir(fn, "regressions", target);
    printf("%s: %d seeds, %d regression inputs\n", target, seeds, regressions);
    assert_true(seeds > 0); /* the committed corpus is there */
}

static void
test_upload(void **state)
{
    (void) state;
    s_replay(gs_fuzz_upload, "fuzz_upload");
}

static void
test_sync(void **state)
{
    (void) state;
    s_replay(gs_fuzz_sync, "fuzz_sync");
}

static void
test_store_apply(void **state)
{
    (void) state;
    s_replay(gs_fuzz_store_apply, "fuzz_store_apply");
}

static void
test_replicate(void **state)
{
    (void) state;
    s_replay(gs_fuzz_replicate, "fuzz_replicate");
}

static void
test_topic(void **state)
{
    (void) state;
    s_replay(gs_fuzz_topic, "fuzz_topic");
}

static void
test_categories(void **state)
{
    (void) state;
    s_replay(gs_fuzz_categories, "fuzz_categories");
}

int
main(int argc, char **argv)
{
    if (argc >= 3) {
        s_entry_fn *fn = !strcmp(argv[1], "upload")        ? gs_fuzz_upload
                         : !strcmp(argv[1], "sync")        ? gs_fuzz_sync
                         : !strcmp(argv[1], "store_apply") ? gs_fuzz_store_apply
                         : !strcmp(argv[1], "replicate")   ? gs_fuzz_replicate
                         : !strcmp(argv[1], "topic")       ? gs_fuzz_topic
                         : !strcmp(argv[1], "categories")  ? gs_fuzz_categories
                                                           : NULL;
        if (!fn) {
            fprintf(stderr, "usage: %s upload|sync|store_apply|replicate|topic|categories "
                            "FILE...\n",
                    argv[0]);
            return 2;
        }
        for (int i = 2; i < argc; i++)
            if (s_feed_file(fn, argv[i])) {
                perror(argv[i]);
                return 1;
            }
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload),
        cmocka_unit_test(test_sync),
        cmocka_unit_test(test_store_apply),
        cmocka_unit_test(test_replicate),
        cmocka_unit_test(test_topic),
        cmocka_unit_test(test_categories),
    };
    return cmocka_run_group_tests_name("fuzz_regressions", tests, NULL, NULL);
}
