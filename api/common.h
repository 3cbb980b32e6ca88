/* What several resources share: value lists, and the standard filters and sort keys. */
#ifndef WERKLAB_API_COMMON_H
#define WERKLAB_API_COMMON_H

#include "resource.h"

#define COUNT(a) (sizeof(a) / sizeof *(a))

extern const char *const provinces[];

/* The four tables of a resource's description, each with its length. */
#define RESOURCE_TABLES(fields_, filters_, sort_keys_, constraints_)                               \
    .fields = fields_, .n_fields = COUNT(fields_), .filters = filters_,                            \
    .n_filters = COUNT(filters_), .sort_keys = sort_keys_, .n_sort_keys = COUNT(sort_keys_),       \
    .constraints = constraints_, .n_constraints = COUNT(constraints_)

/* The contact person fields of a resource with a `contact` object (personal data). */
#define CONTACT_FIELDS                                                                             \
    {.name = "contact.name",                                                                       \
     .column = "contact_name",                                                                     \
     .type = FIELD_TEXT,                                                                           \
     .flags = FIELD_NULLABLE | FIELD_PERSONAL,                                                     \
     .min = 1,                                                                                     \
     .max = 200},                                                                                  \
        {.name = "contact.email",                                                                  \
         .column = "contact_email",                                                                \
         .type = FIELD_EMAIL,                                                                      \
         .flags = FIELD_NULLABLE | FIELD_PERSONAL,                                                 \
         .max = 254},                                                                              \
    {                                                                                              \
        .name = "contact.phone", .column = "contact_phone", .type = FIELD_PHONE,                   \
        .flags = FIELD_NULLABLE | FIELD_PERSONAL, .max = 40                                        \
    }

#define UPDATED_SINCE_FILTER                                                                       \
    {                                                                                              \
        "updatedSince", FILTER_SINCE, NULL, "updated_at >= $::timestamptz", NULL                   \
    }
#define CREATED_AT_SORT                                                                            \
    {                                                                                              \
        "createdAt", "created_at", "timestamptz"                                                   \
    }
#define UPDATED_AT_SORT                                                                            \
    {                                                                                              \
        "updatedAt", "updated_at", "timestamptz"                                                   \
    }

/* SQL giving the municipality of a werklab ($1), for filters on werklabId. */
#define WERKLAB_MUNICIPALITY "SELECT municipality_id FROM werklabs WHERE id = $1::uuid"
#define MUNICIPALITY_ITSELF  "SELECT id FROM municipalities WHERE id = $1::uuid"

#endif
