/* Data subjects: POST /v1/data-subject-requests {"email", "action": "export" | "erase",
 * "subject"}.
 *
 * The address travels in the body, never in a URL (so never in an access log), and is not
 * written to the audit log: the entry says an export or erasure happened, by which key, when.
 * Export answers everything held about the address as one document, sent once its audit entry
 * is committed (like any read of personal data); erase anonymises it everywhere
 * (migrations/0005_data_subjects.sql) in one transaction with its audit entry and answers what
 * changed.
 *
 * A person who signed in with a token is in the audit log as an actor, by the token's sub. An
 * export includes those entries: for the sub given as "subject" (a person's sub at the identity
 * provider, which only the provider knows by address), and for the sub of a trainer record with
 * the address. An erasure leaves them: the audit log is append-only, kept for accountability
 * for its retention period (WERKLAB_RETAIN_AUDIT_DAYS), and holds no more than the sub. */
#include "api.h"
#include "audit_log.h"
#include "common.h"
#include "validate.h"

#include <string.h>

/* Erasure of the person with address $1 everywhere, one row per kind of record it changed
 * (migrations/0005_data_subjects.sql). */
static const char SQL_ERASE[] = "SELECT what, changed FROM erase_data_subject($1)";

/* Export: what is held, per kind of record, and the SQL that finds it by address ($1). */
static const struct {
    const char *key;
    const char *resource;
    const char *condition;
} held[] = {
    {"participants", "participant", "lower(email) = lower($1)"},
    {"trainers", "trainer", "lower(email) = lower($1)"},
    {"inquiries", "inquiry", "lower(email) = lower($1)"},
    {"municipalityContacts", "municipality", "lower(contact_email) = lower($1)"},
    {"initiativeContacts", "initiative", "lower(contact_email) = lower($1)"},
    {"feedback", "feedback",
     "participant_id IN (SELECT p.id FROM participants p WHERE lower(p.email) = lower($1))"},
};

/* The audit entries of the person as an actor: by the sub given ($2) and by the sub of a
 * trainer record with the address ($1), oldest first. */
static const char SQL_ACTOR_ENTRIES[] =
    "SELECT " AUDIT_LOG_ENTRY " FROM audit_log WHERE subject = $2 OR subject IN "
    "(SELECT t.subject FROM trainers t WHERE lower(t.email) = lower($1) AND t.subject IS NOT "
    "NULL) ORDER BY at, id";

/* Writes the actor's entries as an array; false when the database could not be asked. */
static bool write_actor_entries(struct request *req, const char *email, const char *subject)
{
    const char *params[] = {email, subject};
    struct db_result r;
    enum db_status s = db_exec(SQL_ACTOR_ENTRIES, 2, params, &r);
    if (s == DB_OK) {
        jsonw_array_begin(&req->w);
        for (int i = 0; i < db_rows(&r); i++)
            audit_log_write_entry(&req->w, &r, i);
        jsonw_array_end(&req->w);
    }
    db_clear(&r);
    return s == DB_OK;
}

static void export(struct request *req, const char *email, const char *subject)
{
    const char *params[] = {email};
    struct jsonw *w = &req->w;
    jsonw_object_begin(w);
    jsonw_kv_string(w, "action", "export");
    jsonw_kv_string(w, "email", email);
    for (size_t i = 0; i < COUNT(held); i++) {
        jsonw_key(w, held[i].key);
        if (!resource_render_where(req, resource_named(held[i].resource), held[i].condition, 1,
                                   params)) {
            http_problem_unavailable(req);
            return;
        }
    }
    jsonw_key(w, "auditEntriesAsActor");
    if (!write_actor_entries(req, email, subject)) {
        http_problem_unavailable(req);
        return;
    }
    jsonw_object_end(w);
    http_reply(req, 200);
}

/* Answers 200 with what an erasure changed (r: what, changed). */
static void answer_erased(struct request *req, const struct db_result *r)
{
    struct jsonw *w = &req->w;
    jsonw_object_begin(w);
    jsonw_kv_string(w, "action", "erase");
    jsonw_key(w, "changed");
    jsonw_object_begin(w);
    for (int i = 0; i < db_rows(r); i++) {
        jsonw_key(w, db_value(r, i, 0));
        jsonw_raw(w, db_value(r, i, 1));
    }
    jsonw_object_end(w);
    jsonw_object_end(w);
    http_reply(req, 200);
}

/* In one transaction with its audit entry: the log says an erasure happened exactly when it
 * did. */
static void erase(struct request *req, const char *email)
{
    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
        return;
    }
    const char *params[] = {email};
    struct db_result r;
    enum db_status s = db_exec(SQL_ERASE, 1, params, &r);
    if (s != DB_OK)
        http_problem_database(req, s);
    else if (http_commit_audited(req, 200, NULL))
        answer_erased(req, &r);
    db_clear(&r);
}

static void data_subject_request(struct request *req)
{
    if (!json_is_object(req->json)) {
        http_problem(req, 400,
                     "The body must be a JSON object: {\"email\", \"action\", \"subject\"}.");
        return;
    }
    const char *key;
    json_t *value;
    json_object_foreach(req->json, key, value) if (strcmp(key, "email") != 0 &&
                                                   strcmp(key, "action") != 0 &&
                                                   strcmp(key, "subject") != 0)
        http_invalid(req, key, "unknown", "is not a field of a data subject request");
    json_t *email_json = json_object_get(req->json, "email");
    json_t *action_json = json_object_get(req->json, "action");
    const char *email = json_string_value(email_json), *action = json_string_value(action_json);
    if (!email_json)
        http_invalid(req, "email", "required", "is required");
    else if (!email)
        http_invalid(req, "email", "type", "must be a string");
    else if (!validate_email(email))
        http_invalid(req, "email", "format", "must be an e-mail address");
    json_t *subject_json = json_object_get(req->json, "subject");
    const char *subject = json_string_value(subject_json);
    if (subject_json && !json_is_null(subject_json) &&
        (!subject || !*subject || strlen(subject) >= AUTH_SUBJECT_MAX))
        http_invalid(req, "subject", "type", "must be a string of 1 to 255 characters, or null");
    else if (subject && action && strcmp(action, "erase") == 0)
        http_invalid(req, "subject", "unsupported",
                     "is for export only: the audit log is not erased");
    if (!action_json)
        http_invalid(req, "action", "required", "is required");
    else if (!action || (strcmp(action, "export") != 0 && strcmp(action, "erase") != 0))
        http_invalid(req, "action", "enum", "must be export or erase");
    if (req->n_invalid) {
        http_problem_invalid(req);
        return;
    }
    req->audit_action = strcmp(action, "export") == 0 ? "export" : "erase";
    if (strcmp(action, "export") == 0)
        export(req, email, subject);
    else
        erase(req, email);
}

static struct route routes[] = {
    {.method = HTTP_POST,
     .pattern = "/v1/data-subject-requests",
     .handler = data_subject_request,
     .roles = ROLE_ADMIN,
     .no_idempotency = true},
};

void subjects_register(void)
{
    router_add(routes, COUNT(routes));
}
