/* Werklabs: the programme itself, its status machine and its two trainers.
 *
 * A status change is a PATCH of `status`. The database allows only the steps of the machine
 * (inquiry → intake → planned → running → completed, and cancelled from all but completed);
 * the conditions of a step are checked here, after the patch is written and before it commits,
 * so that a patch may set intake.heldOn and move to planned at once, and a refusal lists every
 * unmet condition. The werklab's row is locked first: participants, sessions and assignments
 * change it too (their triggers keep its counts and dates), so the check sees a settled state. */
#include "api.h"
#include "common.h"

#include <stdlib.h>
#include <string.h>

extern const char *const trainer_roles[];

/* Before a status change: the werklab's row locked, and the status it leaves. */
static const char SQL_LOCK_STATUS[] = "SELECT status FROM werklabs WHERE id = $1 FOR UPDATE";
/* After a status change is written: what its conditions need, in one read of the settled
 * werklab ($1): intake held, the two trainer roles filled, participants and capacity.min,
 * sessions, initiative visits without a host, sessions not yet ended. */
static const char SQL_STATUS_CONDITIONS[] =
    "SELECT w.intake_held_on IS NOT NULL, "
    "EXISTS (SELECT 1 FROM werklab_trainers t WHERE t.werklab_id = w.id "
    "AND t.role = 'municipalOrganisation'), "
    "EXISTS (SELECT 1 FROM werklab_trainers t WHERE t.werklab_id = w.id "
    "AND t.role = 'residentInitiatives'), "
    "w.participant_count, w.capacity_min, "
    "(SELECT count(*) FROM sessions s WHERE s.werklab_id = w.id), "
    "(SELECT count(*) FROM sessions s WHERE s.werklab_id = w.id AND s.kind = 'initiativeVisit' "
    "AND NOT EXISTS (SELECT 1 FROM session_initiatives si WHERE si.session_id = s.id "
    "AND si.role = 'host')), "
    "(SELECT count(*) FROM sessions s WHERE s.werklab_id = w.id AND s.ends_at > now()) "
    "FROM werklabs w WHERE w.id = $1";
/* A werklab's trainer assignments ($1), as GET and PUT answer them. */
static const char SQL_ASSIGNMENTS[] = "SELECT trainer_id, role, assigned_at FROM werklab_trainers "
                                      "WHERE werklab_id = $1 ORDER BY role";
/* Assigns trainer $3 as role $2 of werklab $1, in place of whoever held it: one statement, the
 * rules (expertise, one role each) are the database's (migrations/0003_domain.sql). */
static const char SQL_ASSIGN_TRAINER[] =
    "INSERT INTO werklab_trainers (werklab_id, role, trainer_id) VALUES ($1, $2, $3) "
    "ON CONFLICT (werklab_id, role) DO UPDATE "
    "SET trainer_id = EXCLUDED.trainer_id, assigned_at = now()";
/* Ends the assignment of role $2 in werklab $1; no row: nobody held it. */
static const char SQL_UNASSIGN_TRAINER[] =
    "DELETE FROM werklab_trainers WHERE werklab_id = $1 AND role = $2 RETURNING 1";

static const char *const statuses[] = {"inquiry",   "intake",    "planned", "running",
                                       "completed", "cancelled", NULL};
static const char *const currencies[] = {"EUR", NULL};

static const struct record_member assignment_members[] = {
    {"trainerId", FIELD_UUID, NULL},
    {"role", FIELD_ENUM, trainer_roles},
    {NULL, 0, NULL},
};

static const struct field fields[] = {
    {.name = "municipalityId",
     .column = "municipality_id",
     .type = FIELD_UUID,
     .flags = FIELD_REQUIRED | FIELD_IMMUTABLE},
    {.name = "title",
     .column = "title",
     .type = FIELD_TEXT,
     .flags = FIELD_REQUIRED,
     .min = 1,
     .max = 200},
    {.name = "status",
     .column = "status",
     .type = FIELD_ENUM,
     .values = statuses,
     .fallback = "inquiry"},
    {.name = "intake.heldOn",
     .column = "intake_held_on",
     .type = FIELD_DATE,
     .flags = FIELD_NULLABLE},
    {.name = "intake.needs",
     .column = "intake_needs",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .max = 4000},
    {.name = "intake.developments",
     .column = "intake_developments",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .max = 4000},
    {.name = "intake.goals",
     .column = "intake_goals",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .max = 4000},
    {.name = "capacity.min",
     .column = "capacity_min",
     .type = FIELD_INT,
     .min = 1,
     .max = 15,
     .fallback = "10"},
    {.name = "capacity.max",
     .column = "capacity_max",
     .type = FIELD_INT,
     .min = 1,
     .max = 15,
     .fallback = "15"},
    {.name = "trainers",
     .column = "(SELECT string_agg(t.trainer_id::text || ' ' || t.role, ';' "
               "ORDER BY t.role) FROM werklab_trainers t "
               "WHERE t.werklab_id = werklabs.id)",
     .type = FIELD_RECORDS,
     .flags = FIELD_READONLY,
     .members = assignment_members},
    {.name = "participantCount",
     .column = "participant_count",
     .type = FIELD_INT,
     .flags = FIELD_READONLY},
    {.name = "quote.amountCents",
     .column = "quote_amount_cents",
     .type = FIELD_INT,
     .flags = FIELD_NULLABLE | FIELD_INTERNAL,
     .min = 0,
     .max = 2000000000},
    {.name = "quote.currency",
     .column = "quote_currency",
     .type = FIELD_ENUM,
     .flags = FIELD_NULLABLE | FIELD_INTERNAL,
     .values = currencies},
    {.name = "quote.note",
     .column = "quote_note",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE | FIELD_INTERNAL,
     .max = 2000},
    {.name = "sharedVision",
     .column = "shared_vision",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .max = 8000},
    {.name = "startsOn",
     .column = "starts_on",
     .type = FIELD_DATE,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
    {.name = "endsOn",
     .column = "ends_on",
     .type = FIELD_DATE,
     .flags = FIELD_READONLY | FIELD_NULLABLE},
};

static const struct filter filters[] = {
    {"municipalityId", FILTER_EQUALS, "municipalityId", "municipality_id = $::uuid",
     MUNICIPALITY_REACH},
    {"status", FILTER_ANY, "status", "status = ANY ($::text[])", .each = "status = $::text"},
    {"startsOnFrom", FILTER_EQUALS, "startsOn", "starts_on >= $::date"},
    {"startsOnTo", FILTER_EQUALS, "startsOn", "starts_on <= $::date"},
    {"q", FILTER_SEARCH, NULL,
     "to_tsvector('dutch', title || ' ' || coalesce(intake_needs, '') || ' ' || "
     "coalesce(intake_goals, '')) @@ plainto_tsquery('dutch', $)"},
    UPDATED_SINCE_FILTER,
};

static const struct sort_key sort_keys[] = {
    {"title", "title", "text"},
    {"startsOn", "coalesce(starts_on, '9999-12-31')", "date"},
    {"status", "status", "text"},
    CREATED_AT_SORT,
    UPDATED_AT_SORT,
};

static const struct constraint_rule constraints[] = {
    {"werklabs_municipality_fkey", "municipalityId", NULL, "there is no such municipality",
     "is the municipality of werklabs"},
    {"werklabs_capacity", "capacity.min", "maximum", "must not be more than capacity.max", NULL},
    {"werklabs_capacity_participants", NULL, "capacity",
     "capacity.max cannot go below the number of participants", NULL},
    {"werklabs_status_initial", "status", "enum", "a new werklab starts in inquiry or intake",
     NULL},
    {"werklabs_status_transition", NULL, "statusTransition",
     "the werklab cannot make this status change: the steps are inquiry, intake, planned, "
     "running, completed; cancelled from any state but completed; nothing leaves completed or "
     "cancelled",
     NULL},
    {"werklabs_delete_status", NULL, "status",
     "a werklab can be deleted only in inquiry or cancelled", NULL},
    {"werklab_trainers_expertise", "trainerId", "reference",
     "the trainer's expertise does not include this role", NULL},
    {"werklab_trainers_one_role", NULL, "trainerRole",
     "this trainer already holds the other role in this werklab", NULL},
    {"werklab_trainers_required", NULL, "trainersRequired",
     "a planned, running or completed werklab keeps both trainers: assign another instead", NULL},
    {"participants_werklab_fkey", "werklabId", NULL, "there is no such werklab",
     "has participants"},
    {"sessions_werklab_fkey", "werklabId", NULL, "there is no such werklab", "has sessions"},
    {"feedback_werklab_fkey", "werklabId", NULL, "there is no such werklab", "has feedback"},
    {"inquiries_werklab_fkey", "werklabId", NULL, "there is no such werklab",
     "is the werklab of an inquiry"},
};

static bool lock_status(struct request *req, const struct resource *res, struct resource_write *w);
static bool check_conditions(struct request *req, const struct resource *res,
                             struct resource_write *w);

/* The status field, by index: the hooks read it on every write. */
static size_t status_field;

static struct resource werklabs = {
    .name = "werklab",
    .table = "werklabs",
    .path = "/v1/werklabs",
    RESOURCE_TABLES(fields, filters, sort_keys, constraints),
    /* A partner limited to municipalities reads their werklabs; a trainer those they are
     * assigned to. The quote is internal: neither sees it. */
    .scope = {[REACH_MUNICIPALITY] = "municipality_id", [REACH_WERKLAB] = "id"},
    .before_write = lock_status,
    .after_write = check_conditions,
    .field_refs = (const struct field_ref[]){{"status", &status_field}, {NULL, NULL}},
    .methods = RESOURCE_ALL,
    .read_roles = ROLES_READ | ROLE_TRAINER,
    .write_roles = ROLES_WRITE,
};

static bool status_given(const struct resource_write *w)
{
    return !w->create && w->values->given[status_field];
}

/* Before a status change: lock the row and remember where it stands. */
static bool lock_status(struct request *req, const struct resource *res, struct resource_write *w)
{
    if (!status_given(w))
        return true;
    const char *params[] = {w->id};
    struct db_result r;
    enum db_status s = db_exec(SQL_LOCK_STATUS, 1, params, &r);
    if (s != DB_OK)
        resource_fail(req, res, &r, false);
    else if (db_rows(&r) == 1)
        snprintf(w->note, sizeof w->note, "%s", db_value(&r, 0, 0));
    db_clear(&r);
    return s == DB_OK;
}

/* After the patch is written: every condition of the step it makes, all listed when unmet. */
static bool check_conditions(struct request *req, const struct resource *res,
                             struct resource_write *w)
{
    const char *to = w->values->value[status_field];
    if (!status_given(w) || !to || strcmp(to, w->note) == 0)
        return true;
    const char *params[] = {w->id};
    struct db_result r;
    if (db_exec(SQL_STATUS_CONDITIONS, 1, params, &r) != DB_OK || db_rows(&r) != 1) {
        resource_fail(req, res, &r, false);
        db_clear(&r);
        return false;
    }
    bool held = db_value(&r, 0, 0)[0] == 't';
    bool municipal_trainer = db_value(&r, 0, 1)[0] == 't';
    bool initiatives_trainer = db_value(&r, 0, 2)[0] == 't';
    long participants = atol(db_value(&r, 0, 3)), minimum = atol(db_value(&r, 0, 4));
    long sessions = atol(db_value(&r, 0, 5)), visits_without_host = atol(db_value(&r, 0, 6));
    long unfinished = atol(db_value(&r, 0, 7));
    db_clear(&r);

    if (strcmp(to, "planned") == 0) {
        if (!held)
            http_conflict(req, "intakeNotHeld", "intake.heldOn is not set: hold the intake first");
        if (!municipal_trainer)
            http_conflict(req, "trainerMissing", "no trainer is assigned as municipalOrganisation");
        if (!initiatives_trainer)
            http_conflict(req, "trainerMissing", "no trainer is assigned as residentInitiatives");
    } else if (strcmp(to, "running") == 0) {
        if (participants < minimum)
            http_conflict(req, "tooFewParticipants",
                          "the werklab has %ld participant%s; capacity.min is %ld", participants,
                          participants == 1 ? "" : "s", minimum);
        if (sessions == 0)
            http_conflict(req, "noSessions", "the werklab has no sessions");
        if (visits_without_host > 0)
            http_conflict(req, "visitWithoutHost",
                          "%ld initiativeVisit session%s ha%s no host initiative",
                          visits_without_host, visits_without_host == 1 ? "" : "s",
                          visits_without_host == 1 ? "s" : "ve");
    } else if (strcmp(to, "completed") == 0) {
        if (unfinished > 0)
            http_conflict(req, "sessionsNotEnded", "%ld session%s ha%s not ended yet", unfinished,
                          unfinished == 1 ? "" : "s", unfinished == 1 ? "s" : "ve");
    }
    if (req->n_conflicts == 0)
        return true;
    http_problem_conflicts(req, "The werklab cannot make this status change yet.");
    return false;
}

/* ---- trainer assignments: /v1/werklabs/{id}/trainers[/{role}] ---- */

static bool known_role(const char *role)
{
    for (const char *const *r = trainer_roles; *r; r++)
        if (strcmp(*r, role) == 0)
            return true;
    return false;
}

static void answer_assignments(struct request *req, const char *id)
{
    static const char *const members[] = {"trainerId", "role", "assignedAt", NULL};
    resource_answer_rows(req, &werklabs, SQL_ASSIGNMENTS, id, members);
}

/* Runs a statement of an assignment's transaction; the rows it answered, or -1 after answering
 * its failure. */
static int write_assignment(struct request *req, const char *sql, int n, const char *const *params,
                            bool deleting)
{
    struct db_result r;
    int rows = -1;
    if (db_exec(sql, n, params, &r) == DB_OK)
        rows = db_rows(&r);
    else
        resource_fail(req, &werklabs, &r, deleting);
    db_clear(&r);
    return rows;
}

static void list_assignments(struct request *req)
{
    const char *id = http_param(req, "id");
    if (resource_guard(req, &werklabs, id, false))
        answer_assignments(req, id);
}

static void assign_trainer(struct request *req)
{
    const char *id = http_param(req, "id"), *role = http_param(req, "role");
    if (!known_role(role)) {
        http_problem(req, 404,
                     "There is no trainer role %s; the roles are municipalOrganisation "
                     "and residentInitiatives.",
                     role);
        return;
    }
    json_t *trainer = json_object_get(req->json, "trainerId");
    if (!json_is_object(req->json)) {
        http_problem(req, 400, "The body must be a JSON object: {\"trainerId\": \"...\"}.");
        return;
    }
    const char *key;
    json_t *value;
    json_object_foreach(req->json, key, value) if (strcmp(key, "trainerId") != 0)
        http_invalid(req, key, "unknown", "is not a field of a trainer assignment");
    const char *trainer_id = json_string_value(trainer);
    if (!trainer)
        http_invalid(req, "trainerId", "required", "is required");
    else if (!trainer_id)
        http_invalid(req, "trainerId", "type", "must be a string");
    else if (!router_is_uuid(trainer_id, strlen(trainer_id)))
        http_invalid(req, "trainerId", "format", "must be a UUID");
    if (req->n_invalid) {
        http_problem_invalid(req);
        return;
    }
    const char *params[] = {id, role, trainer_id};
    if (!resource_begin_guarded(req, &werklabs, id) ||
        write_assignment(req, SQL_ASSIGN_TRAINER, 3, params, false) < 0)
        return;
    answer_assignments(req, id);
    if (req->status == 200)
        http_commit_audited(req, 200, NULL);
}

static void unassign_trainer(struct request *req)
{
    const char *id = http_param(req, "id"), *role = http_param(req, "role");
    if (!known_role(role)) {
        http_problem(req, 404, "There is no trainer role %s.", role);
        return;
    }
    const char *params[] = {id, role};
    if (!resource_begin_guarded(req, &werklabs, id))
        return;
    int rows = write_assignment(req, SQL_UNASSIGN_TRAINER, 2, params, true);
    if (rows == 0)
        http_problem(req, 404, "No trainer is assigned as %s in this werklab.", role);
    if (rows > 0 && http_commit_audited(req, 204, NULL))
        http_reply_empty(req, 204);
}

static struct route assignment_routes[] = {
    {.method = HTTP_GET,
     .pattern = "/v1/werklabs/{id}/trainers",
     .handler = list_assignments,
     .roles = ROLES_READ | ROLE_TRAINER},
    {.method = HTTP_PUT,
     .pattern = "/v1/werklabs/{id}/trainers/{role}",
     .handler = assign_trainer,
     .roles = ROLES_WRITE},
    {.method = HTTP_DELETE,
     .pattern = "/v1/werklabs/{id}/trainers/{role}",
     .handler = unassign_trainer,
     .roles = ROLES_WRITE},
};

void werklabs_register(void)
{
    resource_register(&werklabs);
    router_add(assignment_routes, COUNT(assignment_routes));
}
