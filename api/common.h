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

/* A person's name, e-mail address and phone number: personal data, with the same limits in
 * every resource that holds them (participants, trainers, inquiries, contact persons). flags_
 * adds FIELD_REQUIRED or FIELD_NULLABLE. */
#define PERSON_NAME(name_, column_, flags_)                                                        \
    {                                                                                              \
        .name = name_, .column = column_, .type = FIELD_TEXT, .flags = (flags_) | FIELD_PERSONAL,  \
        .min = 1, .max = 200                                                                       \
    }
#define PERSON_EMAIL(name_, column_, flags_)                                                       \
    {                                                                                              \
        .name = name_, .column = column_, .type = FIELD_EMAIL, .flags = (flags_) | FIELD_PERSONAL, \
        .max = 254                                                                                 \
    }
#define PERSON_PHONE(name_, column_, flags_)                                                       \
    {                                                                                              \
        .name = name_, .column = column_, .type = FIELD_PHONE, .flags = (flags_) | FIELD_PERSONAL, \
        .max = 40                                                                                  \
    }

/* The municipalities (CBS codes) a partner view is limited to: a partner key's, a webhook
 * subscription's. Given when made, never changed; null: all. */
#define MUNICIPALITY_CODES_FIELD                                                                   \
    {                                                                                              \
        .name = "municipalities", .column = "municipality_codes", .type = FIELD_ENUM_ARRAY,        \
        .flags = FIELD_NULLABLE | FIELD_IMMUTABLE, .min = 1, .pattern = "^GM[0-9]{4}$",            \
        .hint = "must be a CBS code, e.g. GM0297"                                                  \
    }

/* The contact person of a resource with a `contact` object (municipalities, initiatives). */
#define CONTACT_FIELDS                                                                             \
    PERSON_NAME("contact.name", "contact_name", FIELD_NULLABLE),                                   \
        PERSON_EMAIL("contact.email", "contact_email", FIELD_NULLABLE),                            \
        PERSON_PHONE("contact.phone", "contact_phone", FIELD_NULLABLE)

#define UPDATED_SINCE_FILTER                                                                       \
    {                                                                                              \
        "updatedSince", FILTER_SINCE, NULL, "updated_at >= $::timestamptz"                         \
    }
#define CREATED_AT_SORT                                                                            \
    {                                                                                              \
        "createdAt", "created_at", "timestamptz"                                                   \
    }
#define UPDATED_AT_SORT                                                                            \
    {                                                                                              \
        "updatedAt", "updated_at", "timestamptz"                                                   \
    }

/* Routes a trainer may use add ROLE_TRAINER to their roles; ROLES_READ stays what partners,
 * staff and admins read. */

/* What a filter names, per kind of reach (resource.h, filter.scope_of): a werklab ($1) lies in
 * its municipality and is itself a werklab a trainer may reach; a session ($1) lies in its
 * werklab's; a municipality is only a partner's limit (a trainer's list is limited by its rows). */
#define WERKLAB_MUNICIPALITY "SELECT municipality_id FROM werklabs WHERE id = $1::uuid"
#define MUNICIPALITY_ITSELF  "SELECT id FROM municipalities WHERE id = $1::uuid"
#define MUNICIPALITY_REACH                                                                         \
    {                                                                                              \
        [REACH_MUNICIPALITY] = MUNICIPALITY_ITSELF                                                 \
    }
#define WERKLAB_REACH                                                                              \
    {                                                                                              \
        [REACH_MUNICIPALITY] = WERKLAB_MUNICIPALITY, [REACH_WERKLAB] = "SELECT $1::uuid"           \
    }
#define SESSION_REACH                                                                              \
    {                                                                                              \
        [REACH_MUNICIPALITY] = "SELECT w.municipality_id FROM sessions s JOIN werklabs w "         \
                               "ON w.id = s.werklab_id WHERE s.id = $1::uuid",                     \
        [REACH_WERKLAB] = "SELECT werklab_id FROM sessions WHERE id = $1::uuid"                    \
    }

/* The reach of what belongs to a werklab (sessions, feedback, participants): its werklab's
 * municipality for partners, its werklab for trainers. table_ is the resource's table. */
#define WERKLAB_SCOPE(table_)                                                                      \
    {                                                                                              \
        [REACH_MUNICIPALITY] = "(SELECT w.municipality_id FROM werklabs w "                        \
                               "WHERE w.id = " table_ ".werklab_id)",                              \
        [REACH_WERKLAB] = "werklab_id"                                                             \
    }

#endif
