/* Feedback from participants, initiatives and trainers, and the testimonials the public may
 * read: approved feedback given with consent, signed with its attribution, never a name. */
#include "api.h"
#include "common.h"

static const char *const kinds[] = {"evaluation", "initiativePerspective", "trainerNote", NULL};
static const char *const moderations[] = {"pending", "approved", "rejected", NULL};

static const struct field fields[] = {
    {.name = "werklabId",
     .column = "werklab_id",
     .type = FIELD_UUID,
     .flags = FIELD_REQUIRED | FIELD_IMMUTABLE},
    {.name = "sessionId", .column = "session_id", .type = FIELD_UUID, .flags = FIELD_NULLABLE},
    {.name = "kind",
     .column = "kind",
     .type = FIELD_ENUM,
     .flags = FIELD_REQUIRED,
     .values = kinds},
    {.name = "participantId",
     .column = "participant_id",
     .type = FIELD_UUID,
     .flags = FIELD_NULLABLE | FIELD_PERSONAL},
    {.name = "initiativeId",
     .column = "initiative_id",
     .type = FIELD_UUID,
     .flags = FIELD_NULLABLE},
    {.name = "rating",
     .column = "rating",
     .type = FIELD_INT,
     .flags = FIELD_NULLABLE,
     .min = 1,
     .max = 5},
    {.name = "body",
     .column = "body",
     .type = FIELD_TEXT,
     .flags = FIELD_REQUIRED,
     .min = 1,
     .max = 4000},
    {.name = "attribution",
     .column = "attribution",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .max = 200},
    {.name = "consentToPublish",
     .column = "consent_to_publish",
     .type = FIELD_BOOL,
     .fallback = "false"},
    {.name = "moderation",
     .column = "moderation",
     .type = FIELD_ENUM,
     .values = moderations,
     .fallback = "pending",
     .write_roles = ROLES_WRITE}, /* LSA's staff moderate; a trainer's feedback is pending */
};

static const struct filter filters[] = {
    {"werklabId", FILTER_EQUALS, "werklabId", "werklab_id = $::uuid", WERKLAB_REACH},
    {"sessionId", FILTER_EQUALS, "sessionId", "session_id = $::uuid", SESSION_REACH},
    {"kind", FILTER_ANY, "kind", "kind = ANY ($::text[])"},
    {"moderation", FILTER_ANY, "moderation", "moderation = ANY ($::text[])"},
    UPDATED_SINCE_FILTER,
};

static const struct sort_key sort_keys[] = {
    {"rating", "coalesce(rating, 0)", "integer"},
    CREATED_AT_SORT,
    UPDATED_AT_SORT,
};

static const struct constraint_rule constraints[] = {
    {"feedback_session_werklab", "sessionId", "reference", "the session is not one of this werklab",
     NULL},
    {"feedback_participant_werklab", "participantId", "reference",
     "the participant is not in this werklab", NULL},
    {"feedback_initiative_werklab", "initiativeId", "reference",
     "the initiative takes part in no session of this werklab", NULL},
    {"feedback_participant_kind", "participantId", "reference",
     "only evaluation feedback names a participant", NULL},
    {"feedback_initiative_kind", "initiativeId", "reference",
     "only initiativePerspective feedback names an initiative", NULL},
    {"feedback_werklab_fixed", "werklabId", "unknown", "cannot be changed", NULL},
};

static struct resource feedback = {
    .name = "feedback",
    .table = "feedback",
    .path = "/v1/feedback",
    RESOURCE_TABLES(fields, filters, sort_keys, constraints),
    .scope = WERKLAB_SCOPE("feedback"),
    .methods = RESOURCE_ALL,
    /* A trainer reads and records feedback of their werklabs; changing it is staff's. */
    .read_roles = ROLES_READ | ROLE_TRAINER,
    .write_roles = ROLES_WRITE,
    .create_roles = ROLES_WRITE | ROLE_TRAINER,
};

static const struct field testimonial_fields[] = {
    {.name = "body", .column = "body", .type = FIELD_TEXT, .flags = FIELD_READONLY},
    {.name = "attribution",
     .column = "attribution",
     .type = FIELD_TEXT,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
    {.name = "municipality",
     .column = "municipality_name",
     .type = FIELD_TEXT,
     .flags = FIELD_READONLY},
    {.name = "year", .column = "year", .type = FIELD_INT, .flags = FIELD_READONLY},
};

static const struct filter testimonial_filters[] = {
    {"year", FILTER_EQUALS, "year", "year = $::integer"},
};

static const struct sort_key testimonial_sort_keys[] = {
    {"year", "year", "integer"},
    CREATED_AT_SORT,
};

/* A view (migrations/0003_domain.sql) over feedback; public and cacheable. */
static struct resource testimonials = {
    .name = "testimonial",
    .table = "testimonials",
    .path = "/v1/testimonials",
    .fields = testimonial_fields,
    .n_fields = COUNT(testimonial_fields),
    .filters = testimonial_filters,
    .n_filters = COUNT(testimonial_filters),
    .sort_keys = testimonial_sort_keys,
    .n_sort_keys = COUNT(testimonial_sort_keys),
    .no_meta = true,
    .cache_seconds = 300,
    .methods = RESOURCE_LIST,
    .read_roles = ROLE_PUBLIC | ROLES_READ,
};

void feedback_register(void)
{
    resource_register(&feedback);
    resource_register(&testimonials);
}
