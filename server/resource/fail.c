/* fail: a failed statement answered as what it means to the client. Constraint names are
 * looked up in every registered resource's rules (a constraint of one table may be violated
 * by a write to another), so one rule table serves writes and deletes alike. */
#include "internal.h"
#include "log.h"

#include <string.h>

void resource_fail(struct request *req, const struct resource *res, const struct db_result *r,
                   bool deleting)
{
    const struct constraint_rule *rule = resource_rule(r->constraint);
    switch (r->status) {
    case DB_UNAVAILABLE: http_problem_unavailable(req); return;
    case DB_UNIQUE:
        http_conflict(req, rule && rule->code ? rule->code : "unique", "%s",
                      rule ? rule->reason : "a unique value is taken");
        http_problem_conflicts(req, "A value that must be unique is taken.");
        return;
    case DB_FOREIGN_KEY:
        if (deleting) {
            http_conflict(req, "referenced", "%s %s", res->name,
                          rule && rule->referenced_by ? rule->referenced_by
                                                      : "is referenced by other resources");
            http_problem_conflicts(req, "Other resources depend on this one.");
        } else if (rule && rule->field && res->sql->parent >= 0 &&
                   strcmp(rule->field, res->fields[res->sql->parent].name) == 0) {
            http_problem(req, 404, "There is nothing at %s.", req->path);
        } else {
            http_invalid(req, rule && rule->field ? rule->field : "body", "reference", "%s",
                         rule ? rule->reason : "refers to something that does not exist");
            http_problem_invalid(req);
        }
        return;
    case DB_CHECK:
    case DB_EXCLUSION:
        /* A rule about one field is invalid input; a rule about the state is a conflict. */
        if (rule && rule->field) {
            http_invalid(req, rule->field, rule->code ? rule->code : "format", "%s", rule->reason);
            http_problem_invalid(req);
            return;
        }
        if (rule) {
            http_conflict(req, rule->code ? rule->code : "conflict", "%s", rule->reason);
            http_problem_conflicts(req, "The change conflicts with the current state.");
            return;
        }
        log_event("error", "%s: unmapped constraint %s: %s", res->name, r->constraint, r->message);
        http_problem(req, 400, "The values break a rule of %s.", res->name);
        return;
    case DB_INVALID_INPUT:
        /* PostgreSQL's words are for the log: they name its types and encodings. */
        log_event("warning", "%s: a value was refused by the database: %s", res->name, r->message);
        http_problem(req, 400, "A value could not be stored: it is outside what this field takes.");
        return;
    case DB_RETRY:
        http_problem(req, 409, "The change collided with another one; try again.");
        return;
    default:
        log_event("error", "%s: %s", res->name, r->message);
        http_problem(req, 500, "The server failed to handle this request.");
        return;
    }
}

void resource_answer_missing(struct request *req, const struct resource *res, const char *id)
{
    struct db_result r;
    /* A limited caller (a trainer) learns nothing of a row outside their reach, not even that
     * it exists or its version: the row is probed within the reach, and outside it is 404. */
    const char *reach;
    enum reach kind = resource_scope(req, res, &reach);
    const char *in_reach[] = {id, reach};
    if (kind != REACH_NONE) {
        enum db_status s = db_exec(res->sql->guard[kind + 1][0], 2, in_reach, &r);
        bool outside = s == DB_OK && db_rows(&r) == 0;
        if (s != DB_OK)
            resource_fail(req, res, &r, false);
        else if (outside)
            http_problem(req, 404, "There is no %s with id %s here.", res->name, id);
        db_clear(&r);
        if (s != DB_OK || outside)
            return;
    }
    const char *params[] = {id, resource_parent_id(req, res)};
    if (db_exec(res->sql->probe, params[1] ? 2 : 1, params, &r) != DB_OK)
        resource_fail(req, res, &r, false);
    else if (db_rows(&r) == 0)
        http_problem(req, 404, "There is no %s with id %s here.", res->name, id);
    else
        http_reply_stale(req, res->name, db_value(&r, 0, 0));
    db_clear(&r);
}
