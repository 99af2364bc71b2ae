/*
 * gs_privacy: personal-data handling shared by the broker and the tools.
 *
 * - Dropping the restricted part of every person in a record or a packed
 *   change event, for feeds and sync replies not entitled to it.
 * - Masking ID numbers and phones for admin output (110101********1234,
 *   138****5678), the default everywhere a person reads records.
 *
 * Pure functions; reentrant.
 */
#ifndef GS_PRIVACY_H
#define GS_PRIVACY_H

#include <stddef.h>
#include <stdint.h>
#include "gridsync.pb-c.h"
#include "gs_wire.h"

/* Set Person.restricted to NULL on every person in rec (members, landlord,
 * tenants, an organisation's legal representative, contact and
 * employees). The sub-messages are not freed: they stay owned by whatever
 * owns rec. Returns how many were dropped. */
size_t gs_record_strip_restricted(Gridsync__V1__Record *rec);

/* Re-encode a packed ChangeEvent without restricted data into out
 * (appended), working on the wire bytes without unpacking them. Returns 1
 * if anything was dropped, 0 if the event had none (then nothing is
 * appended and the caller can send the original bytes), -1 if data is not
 * well-formed protobuf along the paths to the persons (the contents of
 * other fields are copied unchecked) or out could not grow. */
int gs_event_strip_restricted(const uint8_t *data, size_t len, gs_wbuf_t *out);

/* Append the packed ChangeEvent data to out as the length-delimited
 * field number `field` (a SyncResponse's events), without restricted data:
 * the bytes gs_event_strip_restricted gives when it drops anything, else
 * data as it is. One pass over data, straight into out. Returns 1 if
 * anything was dropped, 0 if not, -1 (out unchanged, or out->failed set)
 * if data is not well-formed along the paths or out could not grow; the
 * caller must then not send the original bytes instead. Bytes in which no
 * tag of Person.restricted can occur (no byte 0x8A followed by 0x01 or
 * 0x81, the start of every encoding of that tag) are appended as they are
 * without the walk, and so without its check of their form: 0, or -1 only
 * when out could not grow. */
int gs_event_strip_restricted_field(gs_wbuf_t *out, uint32_t field, const uint8_t *data,
                                    size_t len);

/* Same as gs_event_strip_restricted for a packed Record. */
int gs_recbytes_strip_restricted(const uint8_t *data, size_t len, gs_wbuf_t *out);

/* Same as gs_event_strip_restricted_field for a packed Record (a
 * SnapshotEntry's record). */
int gs_recbytes_strip_restricted_field(gs_wbuf_t *out, uint32_t field, const uint8_t *data,
                                       size_t len);

/* Mask an ID number: keep the first 6 and last 4 characters, '*' between
 * ("110101********1234"). Shorter inputs keep at most their first and last
 * quarter. out_size >= strlen(id)+1. */
void gs_mask_idnum(const char *id, char *out, size_t out_size);

/* Mask a phone: keep the first 3 and last 4 digits ("138****5678"). */
void gs_mask_phone(const char *phone, char *out, size_t out_size);

/* Which mask a string field gets for display, by its name in the schema:
 * ID numbers (id_number, permit_number), phones (phones, phone,
 * contact_phone), or none. Every renderer (gridfeed's JSON lines, gridctl's
 * output) asks here, so a field is masked the same way everywhere. */
enum { GS_MASK_NONE = 0, GS_MASK_IDNUM = 1, GS_MASK_PHONE = 2 };
int gs_mask_kind(const char *field);

#endif
