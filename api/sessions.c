/* Sessions (bijeenkomsten) of a werklab, the initiatives taking part in them, and attendance.
 * Sequence is unique within a werklab and sessions of one werklab never overlap: both are
 * constraints in the database. */
#include "api.h"
#include "common.h"

#include <stdlib.h>
#include <string.h>

static const char *const kinds[] = {"initiativeVisit", "municipalCollaboration", "ownRole",
                                    "custom", NULL};
static const char *const taking_part_roles[] = {"host", "guest", NULL};
static const char *const attendance_statuses[] = {"present", "absent", "excused", NULL};

static const struct record_member taking_part[] = {
    {"initiativeId", FIELD_UUID, NULL},
    {"role", FIELD_ENUM, taking_part_roles},
    {NULL, 0, NULL},
};

/* A session's attendance ($1), as GET and PUT answer it. */
static const char SQL_ATTENDANCE[] =
    "SELECT participant_id, status FROM attendance WHERE session_id = $1 ORDER BY participant_id";
/* PUT's replacement of a session's attendance ($1) by a JSON array ($2), with the checks that
 * every participant belongs to the session's werklab and the session's new version: one
 * operation, so one function (migrations/0009_attendance_function.sql). Rows with unknown_at
 * name refused records; otherwise one row holds the version. */
static const char SQL_REPLACE_ATTENDANCE[] =
    "SELECT unknown_at, version FROM replace_attendance($1, $2)";

/* The `initiatives` field's replacement, run with the session's own write (resource.h): one
 * operation, so one function (migrations/0009_attendance_function.sql). */
static const char *const replace_initiatives[] = {
    "SELECT replace_session_initiatives($1, $2)",
    NULL,
};

static const struct field fields[] = {
    {.name = "werklabId",
     .column = "werklab_id",
     .type = FIELD_UUID,
     .flags = FIELD_REQUIRED | FIELD_IMMUTABLE},
    {.name = "sequence",
     .column = "sequence",
     .type = FIELD_INT,
     .flags = FIELD_REQUIRED,
     .min = 1,
     .max = 1000},
    {.name = "kind",
     .column = "kind",
     .type = FIELD_ENUM,
     .flags = FIELD_REQUIRED,
     .values = kinds},
    {.name = "title",
     .column = "title",
     .type = FIELD_TEXT,
     .flags = FIELD_REQUIRED,
     .min = 1,
     .max = 200},
    {.name = "description",
     .column = "description",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .max = 4000},
    {.name = "startsAt", .column = "starts_at", .type = FIELD_TIMESTAMP, .flags = FIELD_REQUIRED},
    {.name = "endsAt", .column = "ends_at", .type = FIELD_TIMESTAMP, .flags = FIELD_REQUIRED},
    {.name = "location.name",
     .column = "location_name",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .max = 200},
    {.name = "location.address",
     .column = "location_address",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .max = 400},
    {.name = "location.onSite",
     .column = "location_on_site",
     .type = FIELD_BOOL,
     .flags = FIELD_NULLABLE},
    {.name = "initiatives",
     .column = "(SELECT string_agg(si.initiative_id::text || ' ' || si.role, ';' "
               "ORDER BY si.role DESC, si.initiative_id) FROM session_initiatives si "
               "WHERE si.session_id = sessions.id)",
     .type = FIELD_RECORDS,
     .members = taking_part,
     .replace = replace_initiatives},
};

static const struct filter filters[] = {
    {"werklabId", FILTER_EQUALS, "werklabId", "werklab_id = $::uuid", WERKLAB_REACH},
    {"kind", FILTER_ANY, "kind", "kind = ANY ($::text[])"},
    {"startsAtFrom", FILTER_SINCE, NULL, "starts_at >= $::timestamptz"},
    {"startsAtTo", FILTER_SINCE, NULL, "starts_at <= $::timestamptz"},
    UPDATED_SINCE_FILTER,
};

static const struct sort_key sort_keys[] = {
    {"startsAt", "starts_at", "timestamptz"},
    {"sequence", "sequence", "integer"},
    CREATED_AT_SORT,
    UPDATED_AT_SORT,
};

static const struct constraint_rule constraints[] = {
    {"sessions_sequence_key", "sequence", "unique",
     "another session of this werklab has this sequence number", NULL},
    {"sessions_time_order", "endsAt", "minimum", "must be after startsAt", NULL},
    {"sessions_no_overlap", NULL, "overlap", "the session overlaps another session of this werklab",
     NULL},
    {"sessions_werklab_fixed", "werklabId", "unknown", "cannot be changed", NULL},
    {"sessions_werklab_closed", NULL, "status",
     "the werklab is completed or cancelled: its sessions do not change", NULL},
    {"session_initiatives_municipality", "initiatives", "reference",
     "an initiative takes part only in werklabs of its own municipality", NULL},
    {"feedback_session_fkey", "sessionId", NULL, "there is no such session", "has feedback"},
};

static struct resource sessions = {
    .name = "session",
    .table = "sessions",
    .path = "/v1/sessions",
    RESOURCE_TABLES(fields, filters, sort_keys, constraints),
    .scope = WERKLAB_SCOPE("sessions"),
    .methods = RESOURCE_ALL,
    /* A trainer reads the sessions of their werklabs and edits their details; which sessions
     * there are (create, delete) is staff's. */
    .read_roles = ROLES_READ | ROLE_TRAINER,
    .write_roles = ROLES_WRITE,
    .patch_roles = ROLES_WRITE | ROLE_TRAINER,
};

/* ---- attendance: /v1/sessions/{id}/attendance ---- */

static const struct record_member attendance_members[] = {
    {"participantId", FIELD_UUID, NULL},
    {"status", FIELD_ENUM, attendance_statuses},
    {NULL, 0, NULL},
};

static void answer_attendance(struct request *req, const char *session)
{
    static const char *const members[] = {"participantId", "status", NULL};
    resource_answer_rows(req, &sessions, SQL_ATTENDANCE, session, members);
}

static void get_attendance(struct request *req)
{
    const char *session = http_param(req, "id");
    if (resource_guard(req, &sessions, session, false))
        answer_attendance(req, session);
}

/* Replaces the list with req->json in the open transaction; false after answering (every record
 * whose participant is not of the session's werklab listed as invalid). The session's new
 * version goes to version. */
static bool replace_attendance(struct request *req, const char *session, char version[16])
{
    char *records = json_dumps(req->json, JSON_COMPACT);
    const char *params[] = {session, records};
    struct db_result r;
    enum db_status s = db_exec(SQL_REPLACE_ATTENDANCE, 2, params, &r);
    free(records);
    if (s != DB_OK)
        resource_fail(req, &sessions, &r, false);
    for (int i = 0; s == DB_OK && i < db_rows(&r); i++) {
        const char *unknown_at = db_value(&r, i, 0);
        if (!unknown_at) {
            snprintf(version, 16, "%s", db_value(&r, i, 1));
            continue;
        }
        char name[32];
        snprintf(name, sizeof name, "body[%s].participantId", unknown_at);
        http_invalid(req, name, "reference", "is not a participant of this session's werklab");
    }
    db_clear(&r);
    if (s == DB_OK && req->n_invalid)
        http_problem_invalid(req);
    return s == DB_OK && !req->n_invalid;
}

/* PUT replaces the whole list: [{participantId, status}], participants of the session's
 * werklab only; every one that is not is listed. The list read back, its audit entry and the
 * commit are part of it: whatever of them fails undoes the whole replacement. */
static void put_attendance(struct request *req)
{
    const char *session = http_param(req, "id");
    if (!resource_check_records(req, "body", req->json, attendance_members)) {
        http_problem_invalid(req);
        return;
    }
    char version[16] = "";
    if (!resource_begin_guarded(req, &sessions, session) ||
        !replace_attendance(req, session, version))
        return;
    answer_attendance(req, session);
    if (req->status == 200 && http_commit_audited(req, 200, NULL))
        http_etag(req, version); /* the version of a committed list only */
}

static struct route attendance_routes[] = {
    {.method = HTTP_GET,
     .pattern = "/v1/sessions/{id}/attendance",
     .handler = get_attendance,
     .roles = ROLES_WRITE | ROLE_TRAINER},
    /* Trainers take attendance, in the sessions of their werklabs (resource_guard). */
    {.method = HTTP_PUT,
     .pattern = "/v1/sessions/{id}/attendance",
     .handler = put_attendance,
     .roles = ROLES_WRITE | ROLE_TRAINER},
};

void sessions_register(void)
{
    resource_register(&sessions);
    router_add(attendance_routes, COUNT(attendance_routes));
}
