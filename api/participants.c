/* Participants (deelnemers): the civil servants in one werklab, under
 * /v1/werklabs/{id}/participants. Staff's, and the werklab's trainers read them (they take
 * attendance): partners never see who takes part. Capacity and
 * the werklab's status are enforced by the database (participants_check), also when requests
 * race for the last place. */
#include "api.h"
#include "common.h"

static const char *const roles[] = {"adviser", "connector", "director", NULL};

static const struct field fields[] = {
    {.name = "werklabId", .column = "werklab_id", .type = FIELD_UUID, .flags = FIELD_PARENT},
    PERSON_NAME("name", "name", FIELD_REQUIRED),
    PERSON_EMAIL("email", "email", FIELD_REQUIRED),
    {.name = "jobTitle",
     .column = "job_title",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE | FIELD_PERSONAL,
     .max = 200},
    {.name = "department",
     .column = "department",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .max = 200},
    {.name = "role",
     .column = "role",
     .type = FIELD_ENUM,
     .flags = FIELD_NULLABLE,
     .values = roles},
};

static const struct filter filters[] = {
    {"role", FILTER_ANY, "role", "role = ANY ($::text[])"},
    UPDATED_SINCE_FILTER,
};

static const struct sort_key sort_keys[] = {
    {"name", "name", "text", "name"},
    CREATED_AT_SORT,
    UPDATED_AT_SORT,
};

static const struct constraint_rule constraints[] = {
    {"participants_email_key", "email", "unique",
     "another participant of this werklab has this e-mail address", NULL},
    {"participants_capacity", NULL, "full", "the werklab is full: capacity.max is reached", NULL},
    {"participants_werklab_status", NULL, "status",
     "participants join a werklab in intake, planned or running", NULL},
    {"attendance_participant_fkey", "participantId", "reference", "there is no such participant",
     "has attendance recorded"},
    {"feedback_participant_fkey", "participantId", NULL, "there is no such participant",
     "has feedback"},
};

static struct resource participants = {
    .name = "participant",
    .table = "participants",
    .path = "/v1/werklabs/{id}/participants",
    .item_param = "participantId",
    .parent_table = "werklabs",
    RESOURCE_TABLES(fields, filters, sort_keys, constraints),
    .scope = WERKLAB_SCOPE("participants"),
    .methods = RESOURCE_ALL,
    .read_roles = ROLES_WRITE | ROLE_TRAINER,
    .write_roles = ROLES_WRITE,
};

void participants_register(void)
{
    resource_register(&participants);
}
