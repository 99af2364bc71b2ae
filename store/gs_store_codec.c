/*
 * gs_store_codec: the pure pieces of the store's layouts. Record header
 * encoding, content hash, natural keys, person refs, per-cell counts, the
 * prefix helpers, a ChangeEvent field scanner and a small string
 * map. The write path (gs_store_apply.c) and the checker (gs_store_verify.c)
 * both use these, so "what verify recomputes" is by construction "what
 * apply wrote".
 *
 * No LMDB calls here; no I/O.
 */
#include "gs_grid.h"
#include "gs_store_int.h"
#include "gs_store_persons.h"

#include <assert.h>
#include <ctype.h>
#include <stdlib.h>

/* The person HMAC copies a keyed SHA-256 state per call. OpenSSL 3 marks
 * the SHA256_* functions deprecated in favour of EVP, but an EVP context
 * copy allocates a new provider state on every call (two per HMAC, and a
 * free each), which cost more than the hashing itself for an ID number:
 * SHA256_CTX is a plain struct, copied by assignment. Both run the same
 * SHA-256 code (the CPU's SHA instructions where it has them), and every
 * OpenSSL 3 release keeps these functions. See docs/architecture.md. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>

const char *const gs_db_names[GS_DB_COUNT] = {
    "records", "ids", "natkeys", "log", "cell_log", "idem", "idem_fifo",
    "persons", "cells", "chain", "meta", "devices", "device_keys", "grids", "digests",
    "origins"
};

/* ---- Records value header ------------------------------------------------- */

void
gs_rec_hdr_put(uint8_t *p, const gs_rec_hdr_t *h)
{
    assert(p && h && h->version > 0 && h->seq > 0);  /* versions and seqs start at 1 */
    gs_le64_put(p, h->version);
    gs_le64_put(p + 8, h->seq);
    gs_le64_put(p + 16, (uint64_t) h->updated_at);
    memcpy(p + 24, h->hash, 16);
    p[40] = h->status;
    p[41] = h->kind;
    gs_le16_put(p + 42, h->n_people);
    gs_le16_put(p + 44, h->n_refs);
    p[46] = h->flags;
    p[47] = 0;
}

int
gs_rec_hdr_get(const MDB_val *v, gs_rec_hdr_t *h)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size < GS_REC_HDR)
        return -1;
    h->version = gs_le64_get(p);
    h->seq = gs_le64_get(p + 8);
    h->updated_at = (int64_t) gs_le64_get(p + 16);
    memcpy(h->hash, p + 24, 16);
    h->status = p[40];
    h->kind = p[41];
    h->n_people = gs_le16_get(p + 42);
    h->n_refs = gs_le16_get(p + 44);
    h->flags = p[46];
    if (v->mv_size < gs_rec_data_off(h))
        return -1;
    return 0;
}

/* A tag is the HMAC's first bytes, so a tag ref's first bytes are what the
 * person index keeps, as a full ref's are. */
_Static_assert(GS_REF_TAG_LEN == GS_PERSON_TAG + 1, "a tag ref is the index's tag and a role");

int
gs_rec_ref_get(const uint8_t *val, const gs_rec_hdr_t *h, size_t i, gs_ref_t *r)
{
    assert(val && h && r && i < h->n_refs);
    size_t rl = gs_rec_ref_len(h);
    const uint8_t *p = val + GS_REC_HDR + i * rl;
    memset(r->hmac, 0, sizeof r->hmac);
    memcpy(r->hmac, p, rl - 1);
    r->role = p[rl - 1];
    return rl == GS_REF_LEN;
}

void
gs_rec_refs_put(uint8_t *val, uint8_t flags, const gs_ref_t *refs, size_t n)
{
    size_t rl = (flags & GS_RF_TAGS) ? GS_REF_TAG_LEN : GS_REF_LEN;
    uint8_t *p = val + GS_REC_HDR;
    for (size_t i = 0; i < n; i++, p += rl) {
        memcpy(p, refs[i].hmac, rl - 1);
        p[rl - 1] = refs[i].role;
    }
}

/* ---- Kinds ------------------------------------------------------------------ */

char
gs_kind_byte(int kind)
{
    if (kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD)
        return GS_KIND_H;
    if (kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL)
        return GS_KIND_R;
    if (kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION)
        return GS_KIND_O;
    if (kind == GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT)
        return GS_KIND_I;
    return 0;
}

int
gs_kind_of_byte(char b)
{
    if (b == GS_KIND_H)
        return GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_HOUSEHOLD;
    if (b == GS_KIND_R)
        return GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_RENTAL;
    if (b == GS_KIND_O)
        return GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_ORGANISATION;
    if (b == GS_KIND_I)
        return GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT;
    return 0;
}

/* ---- Content hash ---------------------------------------------------------- */


int
gs_content_hash_packed(const uint8_t *r, size_t n, uint8_t out[16])
{
    /* r = body tag | body length | body fields [| Record fields this schema
     * does not know, which protobuf-c packs after the known ones]. Metadata
     * (collector, device, time, base version, status) is not content: the
     * same household re-collected by another device must hash the same. So
     * the hash covers the body tag, every body field but meta (field 15 of
     * Household, RentalHousing and OrganisationUnit alike) and any unknown Record field after
     * the body; status is compared separately. */
    const uint8_t *p = r, *end = r + n;
    uint64_t tag, len;
    if (gs_wire_varint_get(&p, end, &tag) || (tag & 7) != 2 || gs_wire_varint_get(&p, end, &len) ||
        len > (uint64_t) (end - p))
        return -1;
    const uint8_t *body = p, *body_end = p + len;
    const uint8_t *ms = NULL, *me = NULL;
    while (p < body_end) {
        const uint8_t *f = p;
        uint64_t ft;
        if (gs_wire_varint_get(&p, body_end, &ft) || gs_wire_skip(&p, body_end, (int) (ft & 7)))
            return -1;
        if (ft >> 3 == 15 && !ms) {
            ms = f;
            me = p;
        }
    }
    while (p < end) {
        uint64_t ft;
        if (gs_wire_varint_get(&p, end, &ft) || gs_wire_skip(&p, end, (int) (ft & 7)))
            return -1;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    uint8_t t = (uint8_t) tag;
    crypto_generichash_update(&st, &t, 1);
    if (ms) {
        crypto_generichash_update(&st, body, (size_t) (ms - body));
        crypto_generichash_update(&st, me, (size_t) (end - me));
    } else {
        crypto_generichash_update(&st, body, (size_t) (end - body));
    }
    crypto_generichash_final(&st, out, 16);
    return 0;
}

int
gs_record_pack(const Gridsync__V1__Record *rec, gs_wbuf_t *buf, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(&rec->base);
    gs_wbuf_reset(buf);
    uint8_t *p = gs_wbuf_reserve(buf, n ? n : 1);
    if (!p)
        return GS_ENOMEM;
    protobuf_c_message_pack(&rec->base, p);
    *len = n;
    return 0;
}

/* ---- Natural keys ----------------------------------------------------------- */

/* A room address is a natural key only with its room number: a building
 * alone would merge every unit in it. */
static int
s_room_given(const Gridsync__V1__RoomAddress *r)
{
    return r && r->room && *r->room;
}

/* Where the bytes of a natural key go: counted, copied into out, or
 * hashed (a key too long for LMDB). */
typedef struct s_nk_sink {
    size_t len;                     /* bytes emitted so far */
    uint8_t *out;                   /* copy here when not NULL */
    crypto_generichash_state *hash; /* or hash them when not NULL */
} s_nk_sink_t;

static void
s_nk_put(s_nk_sink_t *k, const void *p, size_t n)
{
    if (k->out)
        memcpy(k->out + k->len, p, n);
    else if (k->hash)
        crypto_generichash_update(k->hash, p, n);
    k->len += n;
}

static void
s_nk_str(s_nk_sink_t *k, const char *s)
{
    s_nk_put(k, s ? s : "", s ? strlen(s) : 0);
}

/* The place part of a natural key: `A` and the address code, or `R`, the
 * grid and the room parts joined with NUL (the grid has a fixed length).
 * 0 when the record has neither. */
static int
s_nk_place(s_nk_sink_t *k, const char *code, const char *grid,
           const Gridsync__V1__RoomAddress *room)
{
    static const uint8_t zero = 0;
    if (code && *code) {
        s_nk_put(k, "A", 1);
        s_nk_str(k, code);
        return 1;
    }
    if (!s_room_given(room) || !grid || strlen(grid) != GS_GRID_LEN)
        return 0;
    /* a room is only unique within its grid */
    s_nk_put(k, "R", 1);
    s_nk_str(k, grid);
    s_nk_str(k, room->building);
    s_nk_put(k, &zero, 1);
    s_nk_str(k, room->unit);
    s_nk_put(k, &zero, 1);
    s_nk_str(k, room->floor);
    s_nk_put(k, &zero, 1);
    s_nk_str(k, room->room);
    return 1;
}

/* Everything of a natural key after the kind byte; 0 when the record has
 * none. An organisation's key is `U` and its USCC, or (an unregistered
 * stall) `N`, its folded name and a NUL, followed by the place. */
static int
s_nk_body(const Gridsync__V1__Record *rec, s_nk_sink_t *k)
{
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD && rec->household) {
        const Gridsync__V1__Household *h = rec->household;
        return s_nk_place(k, h->address_code, h->grid_code, h->room);
    }
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && rec->rental) {
        const Gridsync__V1__RentalHousing *r = rec->rental;
        return s_nk_place(k, r->address_code, r->grid_code, r->room);
    }
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION && rec->organisation) {
        const Gridsync__V1__OrganisationUnit *o = rec->organisation;
        if (o->uscc && *o->uscc) {
            s_nk_put(k, "U", 1);
            s_nk_str(k, o->uscc);
        } else {
            /* the fold never lengthens a name */
            size_t cap = (o->name ? strlen(o->name) : 0) + 1;
            char *name = malloc(cap);
            if (!name)
                return -1;
            size_t nl = gs_org_name_fold(o->name, name, cap);
            static const uint8_t zero = 0;
            s_nk_put(k, "N", 1);
            s_nk_put(k, name, nl);
            s_nk_put(k, &zero, 1);
            free(name);
        }
        return s_nk_place(k, o->address_code, o->grid_code, o->room);
    }
    return 0;
}

size_t
gs_natkey(const Gridsync__V1__Record *rec, uint8_t *out)
{
    char kb = gs_kind_byte(gs_record_kind(rec));
    s_nk_sink_t count = { 0, NULL, NULL };
    if (!kb || s_nk_body(rec, &count) <= 0)
        return 0;   /* no place; or (cannot happen for a stored name) no memory */
    out[0] = (uint8_t) kb;
    if (count.len + 1 <= GS_NATKEY_MAX) {
        s_nk_sink_t copy = { 0, out + 1, NULL };
        s_nk_body(rec, &copy);
        return 1 + copy.len;
    }
    /* too long for an LMDB key: hash it (collisions are out of reach) */
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    s_nk_sink_t hash = { 0, NULL, &st };
    if (s_nk_body(rec, &hash) <= 0)
        return 0;
    out[1] = 'Z';
    crypto_generichash_final(&st, out + 2, 32);
    return 34;
}

/* ---- Person index -------------------------------------------------------------- */

/* The keyed states of the person HMAC: SHA-256 after the inner and after
 * the outer pad (RFC 2104). Read-only once made, so any thread may copy
 * them. */
struct gs_hmac_key {
    SHA256_CTX inner;               /* after key ^ 0x36.. */
    SHA256_CTX outer;               /* after key ^ 0x5c.. */
};

int
gs_person_hmac_init(gs_store_t *self)
{
    assert(!self->hmac);
    /* RFC 2104 with a 32-byte key (shorter than SHA-256's 64-byte block):
     * the inner hash starts with key ^ 0x36.., the outer with key ^ 0x5c..;
     * both states are hashed once here and copied per HMAC. */
    uint8_t ipad[64], opad[64];
    _Static_assert(sizeof self->secret <= sizeof ipad, "key longer than a block");
    memset(ipad, 0x36, sizeof ipad);
    memset(opad, 0x5c, sizeof opad);
    for (size_t i = 0; i < sizeof self->secret; i++) {
        ipad[i] ^= self->secret[i];
        opad[i] ^= self->secret[i];
    }
    /* Without an exit handler of libcrypto's own: registered here, at the
     * store's open, it ran after nats.c's TLS teardown at exit and corrupted
     * the heap once a TLS connection had failed (test_bridge/test_tls). A
     * library that initialises libcrypto first keeps its own choice. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
    self->hmac = calloc(1, sizeof *self->hmac);
    int ok = self->hmac && SHA256_Init(&self->hmac->inner) &&
             SHA256_Update(&self->hmac->inner, ipad, sizeof ipad) &&
             SHA256_Init(&self->hmac->outer) &&
             SHA256_Update(&self->hmac->outer, opad, sizeof opad);
    OPENSSL_cleanse(ipad, sizeof ipad);
    OPENSSL_cleanse(opad, sizeof opad);
    if (!ok) {
        gs_person_hmac_deinit(self);
        gs_store_detail("libcrypto could not set up SHA-256 for the person index");
        return GS_ENOMEM;
    }
    return 0;
}

void
gs_person_hmac_deinit(gs_store_t *self)
{
    /* the keyed states are as secret as the key */
    if (self->hmac)
        OPENSSL_cleanse(self->hmac, sizeof *self->hmac);
    free(self->hmac);
    self->hmac = NULL;
}

/* HMAC-SHA-256 under the store's key of a (na bytes) then b (nb bytes),
 * its first 16 bytes into out. */
static int
s_hmac16(const gs_store_t *self, const void *a, size_t na, const void *b, size_t nb,
         uint8_t out[16])
{
    if (!self->hmac)
        return GS_ENOTFOUND;
    /* the keyed states are copied onto the stack: no allocation, and the
     * threads that prepare uploads share them read-only */
    SHA256_CTX w = self->hmac->inner;
    uint8_t inner[32], full[32];
    int ok = SHA256_Update(&w, a, na) && (nb == 0 || SHA256_Update(&w, b, nb)) &&
             SHA256_Final(inner, &w);
    w = self->hmac->outer;
    ok = ok && SHA256_Update(&w, inner, sizeof inner) && SHA256_Final(full, &w);
    if (ok)
        memcpy(out, full, 16);
    OPENSSL_cleanse(&w, sizeof w);
    OPENSSL_cleanse(inner, sizeof inner);
    OPENSSL_cleanse(full, sizeof full);
    if (!ok) {
        gs_store_detail("libcrypto could not compute a person-index HMAC");
        return GS_ENOMEM;
    }
    return 0;
}

int
gs_person_hmac(const gs_store_t *self, const char *id_number, uint8_t out[16])
{
    /* Resident ID numbers get the validator's normalisation (full-width,
     * 15 -> 18 digits, x -> X) so that a lookup typed by an admin finds
     * what the index holds; other documents are trimmed and upper-cased. */
    char norm[128];
    gs_verdict_t v;
    const char *s = id_number;
    size_t n;
    if (gs_idnum_normalize(id_number, norm, sizeof norm, &v) == 0) {
        s = norm;
        n = strlen(norm);
    } else {
        while (*s == ' ' || *s == '\t')
            s++;
        n = strlen(s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n < sizeof norm) {
            for (size_t i = 0; i < n; i++)
                norm[i] = (char) toupper((unsigned char) s[i]);
            s = norm;
        }
    }
    return s_hmac16(self, s, n, NULL, 0, out);
}

int
gs_org_hmac(const gs_store_t *self, const char *uscc, uint8_t out[16])
{
    static const uint8_t zero = 0;
    return s_hmac16(self, &zero, 1, uscc, strlen(uscc), out);
}

static int
s_person_indexed(const Gridsync__V1__Person *p)
{
    /* persons without documents are never grouped: they have no key */
    return p && p->id_type != GRIDSYNC__V1__ID_TYPE__ID_TYPE_NONE &&
           p->id_number && *p->id_number;
}

/* Add the ref (h, role) unless h is there already. */
static size_t
s_ref_put(const uint8_t h[16], uint8_t role, gs_ref_t *refs, size_t n, size_t max)
{
    if (n >= max)
        return n;
    for (size_t i = 0; i < n; i++)
        if (memcmp(refs[i].hmac, h, 16) == 0)
            return n;   /* one entry per person and record: first role wins */
    memcpy(refs[n].hmac, h, 16);
    refs[n].role = role;
    return n + 1;
}

/* Add the ref of person p unless not indexed or there already; a sticky
 * error in *rc skips the rest. */
static size_t
s_ref_add(const gs_store_t *self, const Gridsync__V1__Person *p, uint8_t role,
          gs_ref_t *refs, size_t n, size_t max, int *rc)
{
    if (*rc || !s_person_indexed(p) || n >= max)
        return n;
    uint8_t h[16];
    if ((*rc = gs_person_hmac(self, p->id_number, h)) != 0)
        return n;
    return s_ref_put(h, role, refs, n, max);
}

size_t
gs_record_people_max(const Gridsync__V1__Record *rec)
{
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD && rec->household)
        return rec->household->n_members;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && rec->rental)
        return rec->rental->n_leases + 1;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION && rec->organisation)
        return rec->organisation->n_employees + 3;  /* + representative, contact, USCC */
    return 0;
}

int
gs_record_refs(const gs_store_t *self, const Gridsync__V1__Record *rec,
               gs_ref_t *refs, size_t max, size_t *count)
{
    size_t n = 0;
    int rc = 0;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD && rec->household) {
        const Gridsync__V1__Household *h = rec->household;
        for (size_t i = 0; i < h->n_members; i++)
            n = s_ref_add(self, h->members[i], GS_ROLE_MEMBER, refs, n, max, &rc);
    } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && rec->rental) {
        const Gridsync__V1__RentalHousing *r = rec->rental;
        for (size_t i = 0; i < r->n_leases; i++)
            if (r->leases[i])
                n = s_ref_add(self, r->leases[i]->tenant, GS_ROLE_TENANT, refs, n, max, &rc);
        if (r->landlord && r->landlord->party_case == GRIDSYNC__V1__LANDLORD__PARTY_PERSON)
            n = s_ref_add(self, r->landlord->person, GS_ROLE_LANDLORD, refs, n, max, &rc);
    } else if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION && rec->organisation) {
        const Gridsync__V1__OrganisationUnit *o = rec->organisation;
        n = s_ref_add(self, o->legal_representative, GS_ROLE_REPRESENTATIVE, refs, n, max, &rc);
        n = s_ref_add(self, o->contact, GS_ROLE_CONTACT, refs, n, max, &rc);
        for (size_t i = 0; i < o->n_employees; i++)
            n = s_ref_add(self, o->employees[i], GS_ROLE_EMPLOYEE, refs, n, max, &rc);
        if (!rc && o->uscc && *o->uscc) {
            uint8_t h[16];
            if ((rc = gs_org_hmac(self, o->uscc, h)) == 0)
                n = s_ref_put(h, GS_ROLE_ORG, refs, n, max);
        }
    }
    *count = n;
    return rc;
}

uint32_t
gs_record_people(const Gridsync__V1__Record *rec)
{
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_HOUSEHOLD && rec->household)
        return (uint32_t) rec->household->n_members;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_RENTAL && rec->rental)
        return (uint32_t) rec->rental->n_leases;
    if (rec->body_case == GRIDSYNC__V1__RECORD__BODY_ORGANISATION && rec->organisation)
        return (uint32_t) rec->organisation->n_employees;
    return 0;
}

/* ---- Cells ------------------------------------------------------------------ */

void
gs_cell_add(gs_cell_meta_t *m, char kind, int status, uint32_t people, int sign)
{
    assert(m && (sign == 1 || sign == -1));
    /* counters are unsigned: subtraction is modular addition, and verify
     * catches any drift */
    uint32_t one = sign > 0 ? 1u : (uint32_t) -1;
    uint32_t many = sign > 0 ? people : (uint32_t) 0 - people;
    if (status == GRIDSYNC__V1__RECORD_STATUS__RECORD_STATUS_VOID) {
        m->voided += one;
    } else if (kind == GS_KIND_H) {
        m->households += one;
        m->persons += many;
    } else if (kind == GS_KIND_O) {
        m->organisations += one;
        m->employees += many;
    } else if (kind == GS_KIND_I) {
        m->incidents += one;   /* an incident names no persons */
    } else {
        m->rentals += one;
        m->tenants += many;
    }
}

size_t
gs_cell_put(uint8_t *p, const gs_cell_meta_t *m)
{
    gs_le32_put(p, m->households);
    gs_le32_put(p + 4, m->persons);
    gs_le32_put(p + 8, m->rentals);
    gs_le32_put(p + 12, m->tenants);
    gs_le32_put(p + 16, m->voided);
    gs_le32_put(p + 20, m->incidents); /* was always 0 before incidents */
    gs_le64_put(p + 24, m->last_seq);
    gs_le64_put(p + 32, (uint64_t) m->last_update);
    /* the long form only where there are organisations, so a store that
     * has none keeps the layout older builds read */
    if (!m->organisations && !m->employees)
        return GS_CELL_VAL;
    gs_le32_put(p + 40, m->organisations);
    gs_le32_put(p + 44, m->employees);
    return GS_CELL_VAL_ORG;
}

int
gs_cell_get(const uint8_t *p, size_t len, gs_cell_meta_t *m)
{
    if (len != GS_CELL_VAL && len != GS_CELL_VAL_ORG)
        return -1;
    m->households = gs_le32_get(p);
    m->persons = gs_le32_get(p + 4);
    m->rentals = gs_le32_get(p + 8);
    m->tenants = gs_le32_get(p + 12);
    m->voided = gs_le32_get(p + 16);
    m->incidents = gs_le32_get(p + 20);
    m->last_seq = gs_le64_get(p + 24);
    m->last_update = (int64_t) gs_le64_get(p + 32);
    m->organisations = len == GS_CELL_VAL_ORG ? gs_le32_get(p + 40) : 0;
    m->employees = len == GS_CELL_VAL_ORG ? gs_le32_get(p + 44) : 0;
    return 0;
}

/* ---- Prefixes --------------------------------------------------------------- */

static int
s_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

int
gs_prefixes_take(const char *const *in, size_t n, const char ***out_p, size_t *n_out)
{
    assert(out_p && n_out);
    if (n && !in)
        return GS_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!in[i] || strlen(in[i]) > GS_GRID_LEN)
            return GS_EINVAL;
    const char **out = malloc((n ? n : 1) * sizeof *out);
    if (!out)
        return GS_ENOMEM;
    for (size_t i = 0; i < n; i++)
        out[i] = in[i];
    qsort(out, n, sizeof *out, s_strcmp_p);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        /* sorted, so a covering prefix is the last one kept */
        if (k > 0 && gs_grid_prefix_covers(out[k - 1], out[i]))
            continue;
        out[k++] = out[i];
    }
    *out_p = out;
    *n_out = k;
    return 0;
}

/* ---- ChangeEvent scanner ------------------------------------------------------- */


int
gs_event_scan(const uint8_t *p, size_t len, gs_event_fields_t *f)
{
    const uint8_t *end = p + len;
    memset(f, 0, sizeof *f);
    while (p < end) {
        uint64_t tag, v;
        if (gs_wire_varint_get(&p, end, &tag))
            return -1;
        uint32_t field = (uint32_t) (tag >> 3);
        int wt = (int) (tag & 7);
        if (wt == 0) {
            if (gs_wire_varint_get(&p, end, &v))
                return -1;
            switch (field) {
            case 1: f->seq = v; break;
            case 3: f->kind = (int) v; break;
            case 5: f->op = (int) v; break;
            case 6: f->version = v; break;
            case 11:
                if (f->n_prev_seq < GS_LEVELS)
                    f->prev_seq[f->n_prev_seq++] = v;
                break;
            default: break;
            }
        } else if (wt == 2) {
            if (gs_wire_varint_get(&p, end, &v) || v > (uint64_t) (end - p))
                return -1;
            const uint8_t *d = p;
            p += v;
            if (field == 2) {
                f->grid = (const char *) d;
                f->grid_len = (size_t) v;
            } else if (field == 4) {
                f->record_key = (const char *) d;
                f->record_key_len = (size_t) v;
            } else if (field == GS_EV_RECORD) {
                f->record = d;
                f->record_len = (size_t) v;
            } else if (field == 11) {
                const uint8_t *q = d;
                while (q < p) {
                    uint64_t s;
                    if (gs_wire_varint_get(&q, p, &s))
                        return -1;
                    if (f->n_prev_seq < GS_LEVELS)
                        f->prev_seq[f->n_prev_seq++] = s;
                }
            }
        } else if (wt == 1) {
            if (end - p < 8)
                return -1;
            p += 8;
        } else if (wt == 5) {
            if (end - p < 4)
                return -1;
            p += 4;
        } else {
            return -1;
        }
    }
    return 0;
}

/* ---- String map ------------------------------------------------------------------ */

void
gs_smap_init(gs_smap_t *m)
{
    memset(m, 0, sizeof *m);
}

void
gs_smap_deinit(gs_smap_t *m)
{
    free(m->ents);
    memset(m, 0, sizeof *m);
}

void
gs_smap_clear(gs_smap_t *m)
{
    if (m->ents)
        memset(m->ents, 0, m->cap * sizeof *m->ents);
    m->n = 0;
    m->gen++;
}

/* The keys are at most 15 bytes and kept NUL-padded to 16 (gs_smap_ent_t):
 * the hash mixes the two padded words, and a compare is two word compares,
 * instead of a byte at a time. */
static uint64_t
s_hash(const char k[16], size_t n)
{
    uint64_t a, b;
    memcpy(&a, k, 8);
    memcpy(&b, k + 8, 8);
    uint64_t h = (a ^ n) * 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 32) ^ b) * 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
}

/* The slot of key (NUL-padded to 16 bytes, klen of them the key's). */
static gs_smap_ent_t *
s_slot(gs_smap_ent_t *ents, size_t cap, const char k[16], size_t klen)
{
    size_t i = (size_t) s_hash(k, klen) & (cap - 1);
    for (;;) {
        gs_smap_ent_t *e = &ents[i];
        if (!e->used || (e->klen == klen && memcmp(e->key, k, 16) == 0))
            return e;
        i = (i + 1) & (cap - 1);
    }
}

gs_smap_ent_t *
gs_smap_find(const gs_smap_t *m, const char *key, size_t klen)
{
    if (!m->cap || klen > 15)
        return NULL;
    char k[16] = { 0 };
    memcpy(k, key, klen);
    gs_smap_ent_t *e = s_slot(m->ents, m->cap, k, klen);
    return e->used ? e : NULL;
}

gs_smap_ent_t *
gs_smap_get(gs_smap_t *m, const char *key, size_t klen, int *created)
{
    assert(m && key && klen <= 15);     /* grid codes and their prefixes */
    if (klen > 15)
        return NULL;
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 64;
        gs_smap_ent_t *ne = calloc(ncap, sizeof *ne);
        if (!ne)
            return NULL;
        for (size_t i = 0; i < m->cap; i++)
            if (m->ents[i].used)
                *s_slot(ne, ncap, m->ents[i].key, m->ents[i].klen) = m->ents[i];
        free(m->ents);
        m->ents = ne;
        m->cap = ncap;
        m->gen++;
    }
    char k[16] = { 0 };
    memcpy(k, key, klen);
    gs_smap_ent_t *e = s_slot(m->ents, m->cap, k, klen);
    if (created)
        *created = !e->used;
    if (!e->used) {
        memset(e, 0, sizeof *e);
        memcpy(e->key, k, sizeof e->key);
        e->klen = (uint8_t) klen;
        e->used = 1;
        m->n++;
    }
    return e;
}

int
gs_smap_path(gs_smap_t *m, const char *grid, gs_smap_path_t *path, int created[GS_LEVELS])
{
    assert(m && grid && path && created && strlen(grid) == GS_GRID_LEN);
    memset(created, 0, GS_LEVELS * sizeof *created);
    if (path->m == m && path->gen == m->gen && memcmp(path->grid, grid, GS_GRID_LEN) == 0)
        return 0;
    path->m = NULL;
    uint64_t gen0 = m->gen;
    for (int l = 0; l < GS_LEVELS; l++) {
        char key[GS_CHK_MAX];
        size_t kl = gs_key_chain(grid, l, key);
        if (!(path->e[l] = gs_smap_get(m, key, kl, &created[l])))
            return -1;
        if (m->gen != gen0) {
            /* the map grew: the entries found before moved; find them again */
            int again[GS_LEVELS];
            int rc = gs_smap_path(m, grid, path, again);
            for (int i = 0; i < GS_LEVELS; i++)
                created[i] |= again[i];
            return rc;
        }
    }
    path->m = m;
    path->gen = m->gen;
    memcpy(path->grid, grid, GS_GRID_LEN + 1);
    return 0;
}
