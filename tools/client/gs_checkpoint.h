/*
 * gs_checkpoint: the subscriber's checkpoint file. It records, per prefix
 * followed, the last seq handed to the caller, the store epoch those seqs
 * belong to, and one line of the caller's own data (gridfeed keeps its
 * output file's size there).
 *
 * Where it sits: tools/client, under gs_sub (gs_sub_new reads the file,
 * gs_sub_checkpoint writes it). Its own module so that the format and the
 * durable write are one place, testable without a broker.
 *
 * The format, text with one item a line:
 *   gridsync-checkpoint 1
 *   epoch 0123456789abcdef       (16 hex digits; only when known)
 *   prefix "440305001" 1234      (one line per prefix)
 *   extra TEXT                   (only when set)
 *
 * Errors: GS_CLIENT_EIO (gs_client.h). Functions are reentrant; two
 * writers of the same path at once are the caller's to prevent.
 */
#ifndef GS_CHECKPOINT_H
#define GS_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "gs_client.h"

/* Read the checkpoint at path. For each of prefixes[0..n) that the file
 * names, seq[i] is set to its position; the others are left as they are.
 * *epoch is set when the file has an epoch line, extra (extra_size bytes,
 * truncated to fit) when it has an extra line; both are left as they are
 * otherwise. Lines it does not know are skipped. Returns 0; 1 when there is
 * no file (nothing is changed); GS_CLIENT_EIO when the file cannot be read
 * or its epoch line is damaged (a damaged epoch must not pass for
 * "unknown"). */
int gs_checkpoint_read(const char *path, const char *const *prefixes, size_t n,
                       uint64_t *seq, uint64_t *epoch, char *extra, size_t extra_size);

/* Write the checkpoint durably: write and fsync PATH.tmp, rename it over
 * path, fsync the directory. After a crash the file is the old checkpoint
 * or the new one, never a mix, and once this returns 0 it survives a power
 * cut. epoch 0 writes no epoch line; extra NULL or "" no extra line. Up to 64
 * prefixes (grid-code prefixes, or incident topics such as "I02/440305",
 * gs_sub's topics) and an extra of up to 255 bytes fit; more is
 * GS_CLIENT_EIO. Returns 0, or GS_CLIENT_EIO when any step fails (the old
 * checkpoint is then left as it was). */
int gs_checkpoint_write(const char *path, const char *const *prefixes,
                        const uint64_t *seq, size_t n, uint64_t epoch, const char *extra);

#endif
