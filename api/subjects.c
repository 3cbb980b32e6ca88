/* Data subjects: POST /v1/data-subject-requests {"email", "action": "export" | "erase"}.
 *
 * The address travels in the body, never in a URL (so never in an access log), and is not
 * written to the audit log: the entry says an export or erasure happened, by which key, when.
 * Export answers everything held about the address as one document, sent once its audit entry
 * is committed (like any read of personal data); erase anonymises it everywhere
 * (migrations/0005_data_subjects.sql) in one transaction with its audit entry and answers what
 * changed. */
#include "api.h"
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

static void export(struct request *req, const char *email)
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
        http_problem(req, 400, "The body must be a JSON object: {\"email\", \"action\"}.");
        return;
    }
    const char *key;
    json_t *value;
    json_object_foreach(req->json, key,
                        value) if (strcmp(key, "email") != 0 && strcmp(key, "action") != 0)
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
        export(req, email);
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
