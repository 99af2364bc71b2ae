/*
 * gs_store_lz: the body of a change log entry at rest. The log keeps each
 * event's packed ChangeEvent after a fixed header (gs_store_int.h,
 * GS_LOG_HDR); this module decides how those bytes are kept, and gives
 * them back. Two forms, told apart by the first byte, so every entry
 * describes itself and the entries of older stores read unchanged:
 *
 *   raw:  the packed ChangeEvent itself. Its first byte is field 1's tag
 *         (0x08): seq is never 0 and is packed first.
 *   LZ4:  GS_LZ_TAG (0x01, never a protobuf tag: field number 0), the
 *         event's length as a varint, then one LZ4 block of the event.
 *
 * The writer keeps the LZ4 form when it is shorter than the raw one, the
 * raw form otherwise. Readers get the same bytes either way: what clients
 * receive (feed, sync, history, the bridge) does not depend on the form.
 * docs/store.md ("The change log") describes the layout.
 *
 * Where it sits: store/ only; gs_store_log.c encodes on the writer thread
 * and every reader of `log` decodes through gs_lz_decode, on its own
 * thread with its own scratch buffer. No LMDB and no shared state: the
 * encoder keeps one LZ4 stream per thread (16 KiB of thread-local
 * storage), reset before each event.
 */
#ifndef GS_STORE_LZ_H
#define GS_STORE_LZ_H

#include <stddef.h>
#include <stdint.h>

#include "gs_wire.h"

#define GS_LZ_TAG 0x01              /* first byte of an LZ4 body */
#define GS_LZ_EVENT_MAX (64u << 20) /* largest event an LZ4 body may claim: a bound far
                                     * above any event (records are limited to a few
                                     * hundred KiB) that keeps a damaged length from
                                     * asking for gigabytes */

/* Encode the packed event ev (len >= 1 bytes, first byte not GS_LZ_TAG,
 * len <= GS_LZ_EVENT_MAX) into dst, which has room for len bytes: the LZ4
 * form when it is shorter, else the raw bytes. Returns the body's length
 * (at most len). Any thread; the LZ4 block is the same whatever the
 * thread encoded before. */
size_t gs_lz_encode(const uint8_t *ev, size_t len, uint8_t *dst);

/* The packed event a body holds. A raw body is returned in place (*ev
 * points into body, no copy); an LZ4 body is decompressed into scratch
 * (reset first, grown as needed) and *ev points there, valid until the
 * next use of scratch. Returns 0; GS_ECORRUPT when the body is empty or an
 * LZ4 body is damaged (its length missing, over GS_LZ_EVENT_MAX, or not
 * what the block holds; a truncated or altered block) with a detail
 * (gs_store_errdetail) saying which; GS_ENOMEM when scratch cannot grow.
 * Never reads outside body. Any thread (scratch is the caller's). */
int gs_lz_decode(const uint8_t *body, size_t blen, gs_wbuf_t *scratch, const uint8_t **ev,
                 size_t *len);

#endif
