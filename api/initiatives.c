/* Initiatives (bewonersinitiatieven): resident initiatives, community centres, neighbourhood
 * cooperatives… of one municipality. Their contact person is personal data. */
#include "api.h"
#include "common.h"

static const char *const kinds[] = {"residentInitiative",
                                    "communityCentre",
                                    "neighbourhoodCooperative",
                                    "communityEnterprise",
                                    "residentsCompany",
                                    "other",
                                    NULL};
static const char *const legal_forms[] = {"association", "foundation", "cooperative",
                                          "informal",    "other",      NULL};
static const char *const themes[] = {"careWelfare",
                                     "communityCentre",
                                     "greenPublicSpace",
                                     "energyTransition",
                                     "housing",
                                     "environmentPlanning",
                                     "socialCohesion",
                                     "economyWork",
                                     "other",
                                     NULL};

static const struct field fields[] = {
    {.name = "municipalityId",
     .column = "municipality_id",
     .type = FIELD_UUID,
     .flags = FIELD_REQUIRED},
    {.name = "name",
     .column = "name",
     .type = FIELD_TEXT,
     .flags = FIELD_REQUIRED,
     .min = 1,
     .max = 200},
    {.name = "kind",
     .column = "kind",
     .type = FIELD_ENUM,
     .flags = FIELD_REQUIRED,
     .values = kinds},
    {.name = "legalForm",
     .column = "legal_form",
     .type = FIELD_ENUM,
     .flags = FIELD_NULLABLE,
     .values = legal_forms},
    {.name = "kvkNumber",
     .column = "kvk_number",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .pattern = "^[0-9]{8}$",
     .hint = "must be a KvK number: eight digits"},
    {.name = "themes",
     .column = "themes",
     .type = FIELD_ENUM_ARRAY,
     .values = themes,
     .fallback = "{}"},
    {.name = "neighbourhood",
     .column = "neighbourhood",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .max = 200},
    {.name = "description",
     .column = "description",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .max = 4000},
    {.name = "website",
     .column = "website",
     .type = FIELD_URL,
     .flags = FIELD_NULLABLE,
     .max = 2000},
    {.name = "lsaMember", .column = "lsa_member", .type = FIELD_BOOL, .fallback = "false"},
    {.name = "rightToChallenge",
     .column = "right_to_challenge",
     .type = FIELD_BOOL,
     .fallback = "false"},
    CONTACT_FIELDS,
};

static const struct filter filters[] = {
    {"municipalityId", FILTER_EQUALS, "municipalityId", "municipality_id = $::uuid",
     MUNICIPALITY_REACH},
    {"kind", FILTER_ANY, "kind", "kind = ANY ($::text[])"},
    {"theme", FILTER_ANY, "themes", "themes && $::text[]"},
    {"lsaMember", FILTER_EQUALS, "lsaMember", "lsa_member = $::boolean"},
    {"rightToChallenge", FILTER_EQUALS, "rightToChallenge", "right_to_challenge = $::boolean"},
    {"q", FILTER_SEARCH, NULL,
     "to_tsvector('dutch', name || ' ' || coalesce(description, '')) @@ "
     "plainto_tsquery('dutch', $)"},
    UPDATED_SINCE_FILTER,
};

static const struct sort_key sort_keys[] = {
    {"name", "name", "text"},
    CREATED_AT_SORT,
    UPDATED_AT_SORT,
};

static const struct constraint_rule constraints[] = {
    {"initiatives_taking_part", NULL, "takingPart",
     "the initiative takes part in sessions of werklabs in its municipality: it cannot move", NULL},
    {"initiatives_municipality_fkey", "municipalityId", NULL, "there is no such municipality",
     "is the municipality of initiatives"},
    {"session_initiatives_initiative_fkey", "initiatives", NULL, "there is no such initiative",
     "takes part in sessions"},
    {"feedback_initiative_fkey", "initiativeId", NULL, "there is no such initiative",
     "has feedback"},
};

static struct resource initiatives = {
    .name = "initiative",
    .table = "initiatives",
    .path = "/v1/initiatives",
    RESOURCE_TABLES(fields, filters, sort_keys, constraints),
    .scope = {[REACH_MUNICIPALITY] = "municipality_id"},
    .methods = RESOURCE_ALL,
    /* A trainer reads initiatives as a partner reads them: every one, no personal data (the
     * contact); they are not limited to their werklabs' (resource_hidden). */
    .read_roles = ROLES_READ | ROLE_TRAINER,
    .write_roles = ROLES_WRITE,
};

void initiatives_register(void)
{
    resource_register(&initiatives);
}
