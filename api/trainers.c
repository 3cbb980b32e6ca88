/* Trainers: the two people who lead a werklab, one who knows municipal organisations and one
 * who knows resident initiatives. Everything that identifies them is personal data: staff see
 * it; a trainer sees their own record whole and the others without it. A trainer signs in as
 * the person whose token's sub is the record's subject (auth.h), which staff set. */
#include "api.h"
#include "common.h"

const char *const trainer_roles[] = {"municipalOrganisation", "residentInitiatives", NULL};

static const struct field fields[] = {
    PERSON_NAME("name", "name", FIELD_REQUIRED),
    PERSON_EMAIL("email", "email", FIELD_REQUIRED),
    PERSON_PHONE("phone", "phone", FIELD_NULLABLE),
    {.name = "expertise",
     .column = "expertise",
     .type = FIELD_ENUM_ARRAY,
     .flags = FIELD_REQUIRED,
     .min = 1,
     .values = trainer_roles},
    {.name = "bio", .column = "bio", .type = FIELD_TEXT, .flags = FIELD_NULLABLE, .max = 4000},
    /* The OpenID Connect sub the trainer signs in with: it identifies the person. */
    {.name = "subject",
     .column = "subject",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE | FIELD_PERSONAL,
     .min = 1,
     .max = 255},
};

static const struct filter filters[] = {
    {"expertise", FILTER_ANY, "expertise", "expertise && $::text[]"},
    {"q", FILTER_SEARCH, "name",
     "to_tsvector('simple', name || ' ' || coalesce(bio, '')) @@ plainto_tsquery('simple', $)"},
    UPDATED_SINCE_FILTER,
};

static const struct sort_key sort_keys[] = {
    {"name", "name", "text", "name"},
    CREATED_AT_SORT,
    UPDATED_AT_SORT,
};

static const struct constraint_rule constraints[] = {
    {"trainers_expertise", "expertise", "enum",
     "must list municipalOrganisation, residentInitiatives or both", NULL},
    {"trainers_expertise_assigned", NULL, "expertiseAssigned",
     "the trainer holds a role in a werklab that the new expertise leaves out", NULL},
    {"werklab_trainers_trainer_fkey", "trainerId", NULL, "there is no such trainer",
     "is assigned to werklabs"},
    {"trainers_subject_unique", "subject", "unique", "another trainer signs in with this subject",
     NULL},
    {"trainers_subject_length", "subject", "maxLength", "must have 1 to 255 characters", NULL},
};

static struct resource trainers = {
    .name = "trainer",
    .table = "trainers",
    .path = "/v1/trainers",
    RESOURCE_TABLES(fields, filters, sort_keys, constraints),
    .trainer_self = true,
    .methods = RESOURCE_ALL,
    .read_roles = ROLES_WRITE | ROLE_TRAINER,
    .write_roles = ROLES_WRITE,
};

void trainers_register(void)
{
    resource_register(&trainers);
}
