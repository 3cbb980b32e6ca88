/* Inquiries (aanvragen): a municipality asking for a werklab, from a public web form. Anyone may
 * post one (limited per client address, server/http.c); only staff read and answer them. */
#include "api.h"
#include "common.h"

static const char *const statuses[] = {"new", "contacted", "converted", "closed", NULL};

static const struct field fields[] = {
    {.name = "municipalityCode",
     .column = "municipality_code",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .pattern = "^GM[0-9]{4}$",
     .hint = "must be a CBS code: GM and four digits, e.g. GM0297"},
    {.name = "municipalityName",
     .column = "municipality_name",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .min = 1,
     .max = 100},
    {.name = "municipalityId",
     .column = "(SELECT m.id FROM municipalities m "
               "WHERE m.code = inquiries.municipality_code)",
     .type = FIELD_UUID,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
    PERSON_NAME("contactName", "contact_name", FIELD_REQUIRED),
    PERSON_EMAIL("email", "email", FIELD_REQUIRED),
    PERSON_PHONE("phone", "phone", FIELD_NULLABLE),
    {.name = "message",
     .column = "message",
     .type = FIELD_TEXT,
     .flags = FIELD_REQUIRED,
     .min = 1,
     .max = 4000},
    {.name = "preferredPeriod",
     .column = "preferred_period",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .max = 200},
    {.name = "status",
     .column = "status",
     .type = FIELD_ENUM,
     .flags = FIELD_NO_CREATE,
     .values = statuses,
     .fallback = "new"},
    {.name = "werklabId",
     .column = "werklab_id",
     .type = FIELD_UUID,
     .flags = FIELD_NULLABLE | FIELD_NO_CREATE},
};

static const struct filter filters[] = {
    {"status", FILTER_ANY, "status", "status = ANY ($::text[])", .each = "status = $::text"},
    UPDATED_SINCE_FILTER,
};

static const struct sort_key sort_keys[] = {
    {"status", "status", "text"},
    CREATED_AT_SORT,
    UPDATED_AT_SORT,
};

static const struct constraint_rule constraints[] = {
    {"inquiries_municipality", "municipalityCode", "required",
     "give municipalityCode or municipalityName", NULL},
    {"inquiries_converted", "werklabId", "required",
     "a converted inquiry names the werklab it became", NULL},
};

static struct resource inquiries = {
    .name = "inquiry",
    .table = "inquiries",
    .path = "/v1/inquiries",
    RESOURCE_TABLES(fields, filters, sort_keys, constraints),
    .methods = RESOURCE_LIST | RESOURCE_CREATE | RESOURCE_GET | RESOURCE_PATCH,
    .read_roles = ROLES_WRITE,
    .write_roles = ROLES_WRITE,
    .create_roles = ROLE_PUBLIC | ROLES_WRITE,
};

void inquiries_register(void)
{
    resource_register(&inquiries);
}
