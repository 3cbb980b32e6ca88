/* Municipalities (gemeenten): the 342 of 2025 are loaded by a migration; staff may add and
 * change them. Their contact person is personal data. */
#include "api.h"

#include "common.h"

const char *const provinces[] = {
    "Groningen", "Fryslân",       "Drenthe",      "Overijssel", "Flevoland",     "Gelderland",
    "Utrecht",   "Noord-Holland", "Zuid-Holland", "Zeeland",    "Noord-Brabant", "Limburg",
    NULL};

static const struct field fields[] = {
    {.name = "code",
     .column = "code",
     .type = FIELD_TEXT,
     .flags = FIELD_REQUIRED,
     .pattern = "^GM[0-9]{4}$",
     .hint = "must be a CBS code: GM and four digits, e.g. GM0297"},
    {.name = "name",
     .column = "name",
     .type = FIELD_TEXT,
     .flags = FIELD_REQUIRED,
     .min = 1,
     .max = 100},
    {.name = "province",
     .column = "province",
     .type = FIELD_ENUM,
     .flags = FIELD_NULLABLE,
     .values = provinces},
    CONTACT_FIELDS,
    {.name = "notes", .column = "notes", .type = FIELD_TEXT, .flags = FIELD_NULLABLE, .max = 4000},
};

static const struct filter filters[] = {
    {"province", FILTER_ANY, "province", "province = ANY ($::text[])"},
    {"code", FILTER_ANY, "code", "code = ANY ($::text[])"},
    {"q", FILTER_SEARCH, NULL, "to_tsvector('dutch', name) @@ plainto_tsquery('dutch', $)"},
    {"updatedSince", FILTER_SINCE, NULL, "updated_at >= $::timestamptz"},
};

static const struct sort_key sort_keys[] = {
    {"name", "name", "text"},
    {"code", "code", "text"},
    {"province", "coalesce(province, '')", "text"},
    {"createdAt", "created_at", "timestamptz"},
    {"updatedAt", "updated_at", "timestamptz"},
};

static const struct constraint_rule constraints[] = {
    {"municipalities_code_key", "code", NULL, "another municipality has this code", NULL},
    {"municipalities_code_format", "code", "pattern", "must be a CBS code, e.g. GM0297", NULL},
    {"municipalities_name_length", "name", "maxLength", "must have 1 to 100 characters", NULL},
    {"municipalities_province", "province", "enum", "must be one of the 12 provinces", NULL},
};

static struct resource municipalities = {
    .name = "municipality",
    .table = "municipalities",
    .path = "/v1/municipalities",
    RESOURCE_TABLES(fields, filters, sort_keys, constraints),
    .scope = {[REACH_MUNICIPALITY] = "id"},
    .methods = RESOURCE_ALL,
    /* A trainer reads municipalities as a partner reads them: every one, no personal data (the
     * contact); they are not limited to their werklabs' (resource_hidden). */
    .read_roles = ROLES_READ | ROLE_TRAINER,
    .write_roles = ROLES_WRITE,
};

void municipalities_register(void)
{
    resource_register(&municipalities);
}
