/* render: rows of a resource (selected with its select list) as JSON, leaving out what the
 * caller may not see (resource_hidden) and noting when personal data leaves the server (for the
 * audit), and the answers made of rendered rows. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "2025-03-01 09:30:00.123+00" (UTC, ISO) → "2025-03-01T09:30:00.123Z" */
void resource_write_timestamp(struct jsonw *w, const char *pg)
{
    if (!pg) {
        jsonw_null(w);
        return;
    }
    char out[40];
    size_t n = strcspn(pg, "+");
    if (n >= sizeof out - 1 || n < 19) {
        jsonw_string(w, pg);
        return;
    }
    memcpy(out, pg, n);
    out[10] = 'T';
    out[n] = 'Z';
    out[n + 1] = '\0';
    jsonw_string(w, out);
}

/* {a,b,"c d"} → ["a","b","c d"] (enum members never need more than this). */
static void write_array(struct jsonw *w, const char *pg)
{
    jsonw_array_begin(w);
    const char *p = pg + (*pg == '{');
    while (*p && *p != '}') {
        bool quoted = *p == '"';
        const char *start = p + quoted;
        const char *end = start;
        while (*end && (quoted ? *end != '"' : (*end != ',' && *end != '}')))
            end++;
        jsonw_stringn(w, start, (size_t)(end - start));
        p = end + quoted;
        if (*p == ',')
            p++;
    }
    jsonw_array_end(w);
}

/* "a b;c d" → [{"m1":"a","m2":"b"},{"m1":"c","m2":"d"}] */
static void write_records(struct jsonw *w, const struct record_member *members, const char *text)
{
    jsonw_array_begin(w);
    for (const char *p = text; *p;) {
        jsonw_object_begin(w);
        for (const struct record_member *m = members; m->name; m++) {
            size_t n = strcspn(p, " ;");
            jsonw_key(w, m->name);
            jsonw_stringn(w, p, n);
            p += n;
            if (*p == ' ')
                p++;
        }
        jsonw_object_end(w);
        p += strcspn(p, ";");
        if (*p == ';')
            p++;
    }
    jsonw_array_end(w);
}

static void write_value(struct jsonw *w, const struct field *f, const char *v)
{
    if (f->type == FIELD_RECORDS) {
        write_records(w, f->members, v ? v : "");
        return;
    }
    if (!v) {
        jsonw_null(w);
        return;
    }
    switch (f->type) {
    case FIELD_INT: jsonw_raw(w, v); break;
    case FIELD_BOOL: jsonw_bool(w, v[0] == 't'); break;
    case FIELD_TIMESTAMP: resource_write_timestamp(w, v); break;
    case FIELD_ENUM_ARRAY: write_array(w, v); break;
    default: jsonw_string(w, v); break;
    }
}

bool resource_hidden(const struct request *req, const struct resource *res, const struct field *f,
                     const char *id)
{
    if (req->who.role == ROLE_PARTNER)
        return f->flags & (FIELD_PERSONAL | FIELD_INTERNAL);
    if (req->who.role != ROLE_TRAINER)
        return false;
    if (f->flags & FIELD_INTERNAL)
        return true;
    if (!(f->flags & FIELD_PERSONAL) || res->scope[REACH_WERKLAB])
        return false; /* a trainer takes attendance: they see who is in their werklabs */
    if (!res->trainer_self)
        return true;
    return id && strcmp(id, req->who.trainer_id) != 0;
}

bool resource_hidden_somewhere(const struct request *req, const struct resource *res,
                               const struct field *f)
{
    if (req->who.role == ROLE_TRAINER && res->trainer_self && (f->flags & FIELD_PERSONAL))
        return true; /* the other trainers' records */
    return resource_hidden(req, res, f, NULL);
}

/* Writes one field's value, noting when personal data leaves the server (for the audit). */
static void write_field(struct request *req, const struct field *f, const char *v)
{
    if (v && (f->flags & FIELD_PERSONAL))
        req->personal_shown = true;
    write_value(&req->w, f, v);
}

void resource_render(struct request *req, const struct resource *res, const struct db_result *r,
                     int row)
{
    jsonw_object_begin(&req->w);
    resource_render_members(req, res, r, row);
    jsonw_object_end(&req->w);
}

void resource_render_members(struct request *req, const struct resource *res,
                             const struct db_result *r, int row)
{
    static const struct field timestamp = {.type = FIELD_TIMESTAMP};
    struct jsonw *w = &req->w;
    int base = 1; /* column of fields[0] */
    const char *id = db_value(r, row, 0);
    jsonw_kv_string(w, "id", id);
    for (size_t i = 0; i < res->n_fields;) {
        const struct field *f = &res->fields[i];
        size_t g = resource_group_len(f->name);
        if (!g) {
            if (!resource_hidden(req, res, f, id)) {
                jsonw_key(w, f->name);
                write_field(req, f, db_value(r, row, base + (int)i));
            }
            i++;
            continue;
        }
        size_t end = i;
        bool any_value = false, any_visible = false;
        while (end < res->n_fields && resource_same_group(f->name, res->fields[end].name)) {
            any_value |= db_value(r, row, base + (int)end) != NULL;
            any_visible |= !resource_hidden(req, res, &res->fields[end], id);
            end++;
        }
        if (any_visible) {
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)g, f->name);
            jsonw_key(w, key);
            if (!any_value) {
                jsonw_null(w);
            } else {
                jsonw_object_begin(w);
                for (size_t k = i; k < end; k++) {
                    if (resource_hidden(req, res, &res->fields[k], id))
                        continue;
                    jsonw_key(w, res->fields[k].name + g + 1);
                    write_field(req, &res->fields[k], db_value(r, row, base + (int)k));
                }
                jsonw_object_end(w);
            }
        }
        i = end;
    }
    int tail = base + (int)res->n_fields;
    if (res->no_meta)
        return;
    jsonw_key(w, "version");
    jsonw_raw(w, db_value(r, row, tail));
    jsonw_key(w, "createdAt");
    write_value(w, &timestamp, db_value(r, row, tail + 1));
    jsonw_key(w, "updatedAt");
    write_value(w, &timestamp, db_value(r, row, tail + 2));
}

void resource_answer_row(struct request *req, const struct resource *res, const struct db_result *r,
                         int status)
{
    const char *version = db_value(r, 0, res->sql->n_columns - 3);
    if (status == 201) {
        struct buf location = {0};
        buf_printf(&location, "%s/%s", req->path, db_value(r, 0, 0));
        http_set_header(req, "Location", location.data);
        buf_free(&location);
    }
    if (http_etag(req, version) && status == 200 && req->method != HTTP_PATCH && !res->live) {
        http_reply_not_modified(req);
        return;
    }
    resource_render(req, res, r, 0);
    http_reply(req, status);
}
bool resource_render_where(struct request *req, const struct resource *res, const char *condition,
                           int n, const char *const *params)
{
    struct buf sql = {0};
    buf_printf(&sql, "SELECT %s FROM %s WHERE %s ORDER BY %s.created_at, %s.id",
               res->sql->select_list, res->table, condition, res->table, res->table);
    struct db_result r;
    bool ok = db_exec(sql.data, n, params, &r) == DB_OK;
    if (ok) {
        jsonw_array_begin(&req->w);
        for (int i = 0; i < db_rows(&r); i++)
            resource_render(req, res, &r, i);
        jsonw_array_end(&req->w);
    }
    db_clear(&r);
    buf_free(&sql);
    return ok;
}
void resource_answer_rows(struct request *req, const struct resource *res, const char *sql,
                          const char *param, const char *const *members)
{
    const char *params[] = {param};
    struct db_result r;
    if (db_exec(sql, 1, params, &r) != DB_OK) {
        resource_fail(req, res, &r, false);
        db_clear(&r);
        return;
    }
    struct jsonw *w = &req->w;
    list_begin(req);
    for (int i = 0; i < db_rows(&r); i++) {
        jsonw_object_begin(w);
        for (int c = 0; members[c]; c++) {
            jsonw_key(w, members[c]);
            size_t n = strlen(members[c]);
            if (n > 2 && strcmp(members[c] + n - 2, "At") == 0)
                resource_write_timestamp(w, db_value(&r, i, c));
            else
                jsonw_string(w, db_value(&r, i, c));
        }
        jsonw_object_end(w);
    }
    list_end(req, NULL);
    db_clear(&r);
}
