/*
 * gs_authz: the broker's authorisation rule. See gs_authz.h.
 */
#include "gs_authz.h"

#include "gs_grid.h"

#include <assert.h>
#include <string.h>

int
gs_authz_covers(const char *prefix, const char *const *allowed, size_t n)
{
    return gs_grid_prefix_find(prefix, allowed, n) >= 0;
}

gs_authz_t
gs_authz_check(const Gridsync__V1__Device *dev, const char *prefix)
{
    if (!dev)
        return GS_AUTHZ_NOT_ENROLLED;
    if (dev->status != GRIDSYNC__V1__DEVICE_STATUS__DEVICE_STATUS_ACTIVE)
        return GS_AUTHZ_REVOKED;
    switch (dev->role) {
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_ADMIN:
        return GS_AUTHZ_ALLOWED;
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEVICE:
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DISTRICT:
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT:
    case GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_CENTRE:
        break;
    default:
        return GS_AUTHZ_UNKNOWN_ROLE;
    }
    if (dev->n_prefixes == 0)
        return GS_AUTHZ_NO_SCOPE;
    if (!prefix)
        return GS_AUTHZ_ALLOWED;
    return gs_authz_covers(prefix, (const char *const *) dev->prefixes, dev->n_prefixes)
               ? GS_AUTHZ_ALLOWED : GS_AUTHZ_OUTSIDE;
}

int
gs_authz_record(const Gridsync__V1__Device *dev, int kind, const char *category)
{
    if (!dev)
        return 0;
    if (dev->role != GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT)
        return 1;
    /* a department: the incidents of its categories, nothing else */
    if (kind != GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT || !category)
        return 0;
    for (size_t i = 0; i < dev->n_categories; i++)
        if (dev->categories[i] && strcmp(dev->categories[i], category) == 0)
            return 1;
    return 0;
}

gs_authz_t
gs_authz_topic(const Gridsync__V1__Device *dev, const gs_topic_t *t,
               const gs_incident_table_t *table)
{
    assert(table);
    gs_authz_t v = gs_authz_check(dev, t->prefix);
    if (v != GS_AUTHZ_ALLOWED)
        return v;
    if (!t->incident)
        return dev->role == GRIDSYNC__V1__PRINCIPAL_ROLE__PRINCIPAL_ROLE_DEPARTMENT
                   ? GS_AUTHZ_GRID_TOPIC : GS_AUTHZ_ALLOWED;
    if (!gs_incident_table_find(table, t->category) ||
        !gs_authz_record(dev, GRIDSYNC__V1__RECORD_KIND__RECORD_KIND_INCIDENT, t->category))
        return GS_AUTHZ_CATEGORY;
    return GS_AUTHZ_ALLOWED;
}
