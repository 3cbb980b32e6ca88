/* handlers: the standard item handlers (get, create, patch, delete) with their transactions,
 * and resource_guard for what belongs to a row. A create or patch is one transaction: the row,
 * its records, the resource's hooks and the audit entry commit together or not at all. */
#include "audit.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum reach resource_scope(struct request *req, const struct resource *res, const char **param)
{
    enum reach kind = resource_scoped(req, res);
    list_reach(req, param);
    if (kind == REACH_NONE)
        *param = NULL;
    return kind;
}

/* The statement reading row id (under its parent, within the caller's reach), with its
 * parameters in params (n of them). */
static const char *row_statement(struct request *req, const struct resource *res, const char *id,
                                 const char *params[3], int *n)
{
    const char *reach;
    enum reach kind = resource_scope(req, res, &reach);
    params[0] = id;
    *n = 1;
    if (resource_parent_id(req, res))
        params[(*n)++] = resource_parent_id(req, res);
    if (kind == REACH_NONE)
        return res->sql->get;
    params[(*n)++] = reach;
    return res->sql->get_scoped[kind];
}

/* Reads the row id into r. */
static enum db_status select_row(struct request *req, const struct resource *res, const char *id,
                                 struct db_result *r)
{
    const char *params[3];
    int n;
    const char *sql = row_statement(req, res, id, params, &n);
    return db_exec(sql, n, params, r);
}

static void answer_get(struct request *req, struct db_result *r, void *unused)
{
    (void)unused;
    const struct resource *res = resource_of(req);
    if (r->status != DB_OK)
        resource_fail(req, res, r, false);
    else if (db_rows(r) == 0)
        http_problem(req, 404, "There is no %s with id %s here.", res->name,
                     resource_item_id(req, res));
    else
        resource_answer_row(req, res, r, 200);
}

/* The most frequent request of all: read on the pipeline, not holding a worker meanwhile. */
void resource_get(struct request *req)
{
    const struct resource *res = resource_of(req);
    const char *params[3];
    int n;
    const char *sql = row_statement(req, res, resource_item_id(req, res), params, &n);
    http_defer_read(req, sql, n, params, answer_get, NULL);
}

/* Writes the records fields the body gives; on failure r holds the error. */
static bool write_records_fields(const struct resource *res, const char *id,
                                 const struct resource_values *v, struct db_result *r)
{
    for (size_t i = 0; i < res->n_fields; i++) {
        if (res->fields[i].type != FIELD_RECORDS || !v->given[i])
            continue;
        for (const char *const *sql = res->fields[i].replace; *sql; sql++) {
            const char *params[] = {id, v->value[i] ? v->value[i] : "[]"};
            if (db_exec(*sql, strstr(*sql, "$2") ? 2 : 1, params, r) != DB_OK)
                return false;
            db_clear(r);
        }
    }
    return true;
}

static bool gives_records(const struct resource *res, const struct resource_values *v)
{
    for (size_t i = 0; i < res->n_fields; i++)
        if (res->fields[i].type == FIELD_RECORDS && v->given[i])
            return true;
    return false;
}

/* The parameters of a write's INSERT or UPDATE (res->sql->insert_params or update_params of
 * them) into params, the mask in mask; false when a patch changes nothing. */
static bool write_params(struct request *req, const struct resource *res,
                         const struct resource_write *w, const char *version, const char **params,
                         char mask[RESOURCE_MAX_FIELDS + 1])
{
    const struct resource_sql *s = res->sql;
    const struct resource_values *v = w->values;
    if (w->create) {
        for (int i = 0; i < s->n_stored; i++)
            params[i] = v->value[s->stored[i]];
        return true;
    }
    bool any = gives_records(res, v);
    for (int i = 0; i < s->n_updatable; i++) {
        mask[i] = v->given[s->updatable[i]] ? '1' : '0';
        any |= v->given[s->updatable[i]];
        params[3 + i] = v->value[s->updatable[i]];
    }
    mask[s->n_updatable] = '\0';
    params[0] = w->id;
    params[1] = version;
    params[2] = mask;
    if (resource_parent_id(req, res))
        params[3 + s->n_updatable] = resource_parent_id(req, res);
    return any;
}

/* Runs the INSERT or UPDATE of a write into r. *touched is false when a patch changes nothing
 * (then the row is only read, and its version stays). */
static enum db_status write_statement(struct request *req, const struct resource *res,
                                      struct resource_write *w, const char *version,
                                      struct db_result *r, bool *touched)
{
    const struct resource_sql *s = res->sql;
    const char *params[4 + RESOURCE_MAX_FIELDS];
    char mask[RESOURCE_MAX_FIELDS + 1];
    *touched = write_params(req, res, w, version, params, mask);
    if (w->create)
        return db_exec(s->insert, s->insert_params, params, r);
    if (*touched)
        return db_exec(s->update, s->update_params, params, r);
    return select_row(req, res, w->id, r); /* nothing to change: answer the current state */
}

/* A write answered from its one statement's result. */
struct one_statement {
    bool create;
    const char *id; /* what a patch names */
};

static void answer_written(struct request *req, struct db_result *r, void *ctx)
{
    const struct resource *res = resource_of(req);
    const struct one_statement *write = ctx;
    if (r->status != DB_OK) {
        resource_fail(req, res, r, false);
    } else if (db_rows(r) == 0) {
        resource_answer_missing(req, res, write->id); /* 404, or 412 for a stale If-Match */
    } else {
        req->audited = true; /* by the statement itself */
        resource_answer_row(req, res, r, write->create ? 201 : 200);
    }
}

/* Most writes are one statement: the row, its change-feed entry (a trigger) and its audit entry
 * (audit_sql_around()) in one INSERT or UPDATE, its own transaction. Such a write is committed
 * on the pipes for writes while the worker serves others, and answered once it is committed:
 * one round trip, and no worker waits for the WAL flush. Not for a resource with more to do in
 * the transaction (records, hooks), a caller whose reach must be checked first, a patch that
 * changes nothing, or a request inside a transaction of its own (an idempotent one's): those
 * run in a transaction on the worker (write_in_transaction). True when it took the write. */
static bool write_in_one_statement(struct request *req, const struct resource *res,
                                   const struct resource_write *w, const char *version)
{
    if (res->before_write || res->after_write || gives_records(res, w->values) ||
        resource_scoped(req, res) != REACH_NONE || db_transaction_depth() > 0)
        return false;
    const struct resource_sql *s = res->sql;
    const char *params[4 + RESOURCE_MAX_FIELDS + AUDIT_ENTRY_VALUES];
    char mask[RESOURCE_MAX_FIELDS + 1];
    if (!write_params(req, res, w, version, params, mask))
        return false;
    int n = w->create ? s->insert_params : s->update_params;
    struct audit_entry e;
    char status[16];
    if (!http_audit_entry(req, w->create ? 201 : 200, &e))
        return false;
    audit_entry_values(&e, status, params + n);
    struct one_statement *write = pool_alloc(&req->pool, sizeof *write);
    *write = (struct one_statement){.create = w->create, .id = w->id};
    /* The mask and the values are copied when the statement is queued. */
    http_defer_write(req, w->create ? s->insert_audited : s->update_audited, n + AUDIT_ENTRY_VALUES,
                     params, answer_written, write);
    return true;
}

/* The body of a create or patch inside its transaction: hooks, the row, its records, the row
 * read again into *r. False when it has answered why not; the request's end rolls back. */
static bool write_in_transaction(struct request *req, const struct resource *res,
                                 struct resource_write *w, const char *version, struct db_result *r,
                                 char row_id[37])
{
    bool touched;
    /* A limited caller (a trainer) changes only what lies in their reach: the row is found
     * there and locked first, or it is 404 as for a read. */
    if (!w->create && resource_scoped(req, res) != REACH_NONE &&
        !resource_guard(req, res, w->id, true))
        return false;
    if (res->before_write && !res->before_write(req, res, w))
        return false;
    if (write_statement(req, res, w, version, r, &touched) != DB_OK) {
        resource_fail(req, res, r, false);
        return false;
    }
    if (db_rows(r) == 0 ||
        (!touched && version && strcmp(version, db_value(r, 0, res->sql->n_columns - 3)) != 0)) {
        resource_answer_missing(req, res, w->id);
        return false;
    }
    snprintf(row_id, 37, "%s", db_value(r, 0, 0));
    w->id = row_id;
    struct db_result records = {0};
    bool written = write_records_fields(res, row_id, w->values, &records);
    if (!written)
        resource_fail(req, res, &records, false);
    db_clear(&records);
    if (!written)
        return false;
    if (res->after_write && !res->after_write(req, res, w))
        return false;
    /* The row RETURNING gave is the answer unless something changed it since (records, a hook)
     * or the caller's reach must be checked on it: then it is read again. Read within the
     * caller's reach, it also refuses a new row outside it (a trainer's feedback on another
     * werklab): 404, as a filter naming that werklab would be. */
    if (!touched || (!gives_records(res, w->values) && !res->after_write &&
                     resource_scoped(req, res) == REACH_NONE))
        return true;
    db_clear(r);
    if (select_row(req, res, row_id, r) != DB_OK) {
        resource_fail(req, res, r, false);
        return false;
    }
    if (db_rows(r) != 1) {
        http_problem(req, 404, "What this %s belongs to is nothing this caller can see.",
                     res->name);
        return false;
    }
    return true;
}

/* Create and patch: always one transaction, so that the audit entry commits with the write,
 * or neither does. */
static void write_row(struct request *req, bool create)
{
    const struct resource *res = resource_of(req);
    struct resource_values v;
    if (!resource_read_body(req, res, create, &v))
        return;
    char version_buf[16];
    const char *version = create ? NULL : http_if_match(req, version_buf);
    struct resource_write w = {
        .create = create, .id = create ? NULL : resource_item_id(req, res), .values = &v};
    if (create && resource_parent_id(req, res)) {
        v.value[res->sql->parent] = resource_parent_id(req, res);
        v.given[res->sql->parent] = true;
    }
    struct db_result r = {0};
    char row_id[37];
    int status = create ? 201 : 200;
    if (version && !*version)
        resource_answer_missing(req, res, w.id);
    else if (write_in_one_statement(req, res, &w, version))
        ; /* answered once committed */
    else if (db_begin() != DB_OK)
        http_problem_unavailable(req);
    else if (write_in_transaction(req, res, &w, version, &r, row_id) &&
             http_commit_audited(req, status, row_id))
        resource_answer_row(req, res, &r, status);
    db_clear(&r);
}

void resource_create(struct request *req)
{
    write_row(req, true);
}

void resource_patch(struct request *req)
{
    write_row(req, false);
}

void resource_delete(struct request *req)
{
    const struct resource *res = resource_of(req);
    const char *id = resource_item_id(req, res);
    char version_buf[16];
    const char *version = http_if_match(req, version_buf);
    if (version && !*version) {
        resource_answer_missing(req, res, id);
        return;
    }
    const char *params[] = {id, version, resource_parent_id(req, res)};
    struct db_result r = {0};
    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
        return;
    }
    if (resource_scoped(req, res) != REACH_NONE && !resource_guard(req, res, id, true))
        return;
    if (db_exec(res->sql->remove, params[2] ? 3 : 2, params, &r) != DB_OK)
        resource_fail(req, res, &r, true);
    else if (db_rows(&r) == 0)
        resource_answer_missing(req, res, id);
    else if (http_commit_audited(req, 204, id))
        http_reply_empty(req, 204);
    db_clear(&r);
}
bool resource_guard(struct request *req, const struct resource *res, const char *id, bool writing)
{
    const char *reach;
    enum reach kind = resource_scope(req, res, &reach);
    const char *params[] = {id, reach};
    struct db_result r;
    enum db_status s =
        db_exec(res->sql->guard[kind + 1][writing], kind == REACH_NONE ? 1 : 2, params, &r);
    bool found = s == DB_OK && db_rows(&r) == 1;
    char wanted[16];
    const char *if_match = writing ? http_if_match(req, wanted) : NULL;
    if (s != DB_OK) {
        resource_fail(req, res, &r, false);
    } else if (!found) {
        http_problem(req, 404, "There is no %s with id %s.", res->name, id);
    } else if (if_match && strcmp(if_match, db_value(&r, 0, 0)) != 0) {
        http_reply_stale(req, res->name, db_value(&r, 0, 0));
        found = false;
    } else if (!writing) {
        http_etag(req, db_value(&r, 0, 0));
    }
    db_clear(&r);
    return found;
}

/* "Begin and guard": the start of a hand-written write to what belongs to a row (a werklab's
 * trainers, a session's attendance). Its end is http_commit_audited(); on any failure between
 * the two a handler answers and returns, and the request's end rolls the transaction back. */
bool resource_begin_guarded(struct request *req, const struct resource *res, const char *id)
{
    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
        return false;
    }
    return resource_guard(req, res, id, true);
}
