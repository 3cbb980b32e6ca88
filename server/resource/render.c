/* render: rows of a resource (selected with its select list) as JSON, leaving out what the
 * caller may not see (resource_hidden) and noting when personal data leaves the server (for the
 * audit), and the answers made of rendered rows. What does not change from row to row (names as
 * JSON, nested objects, which fields each role is kept from) is worked out once, at
 * registration (resource_render_prepare), so that a row costs little more than its values. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "2025-03-01 09:30:00.123+00" (UTC, ISO) → "2025-03-01T09:30:00.123Z": PostgreSQL's text
 * without the offset, T for the space, Z added. Anything else is written as it came. */
static void write_timestamp(struct jsonw *w, const char *pg, size_t len)
{
    char out[40];
    const char *plus = memchr(pg, '+', len);
    size_t n = plus ? (size_t)(plus - pg) : len;
    if (n >= sizeof out - 1 || n < 19) {
        jsonw_stringn(w, pg, len);
        return;
    }
    memcpy(out, pg, n);
    out[10] = 'T';
    out[n] = 'Z';
    jsonw_stringn(w, out, n + 1);
}

void resource_write_timestamp(struct jsonw *w, const char *pg)
{
    if (!pg)
        jsonw_null(w);
    else
        write_timestamp(w, pg, strlen(pg));
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

/* "a b;c d" → [{"m1":"a","m2":"b"},{"m1":"c","m2":"d"}]; names: the members' (plan->records). */
static void write_records(struct jsonw *w, const struct record_member *members,
                          const struct jsonw_name *names, const char *text)
{
    jsonw_array_begin(w);
    for (const char *p = text; *p;) {
        jsonw_object_begin(w);
        for (size_t m = 0; members[m].name; m++) {
            size_t n = strcspn(p, " ;");
            jsonw_key_name(w, &names[m]);
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

/* Who sees a field: everyone, nobody of a role, or (a trainer's own record) only its owner. */
enum visibility {
    SHOWN,
    HIDDEN,
    HIDDEN_FROM_OTHERS, /* shown in the row whose id is the caller's trainer id */
};

static enum visibility visibility(unsigned role, const struct resource *res, const struct field *f)
{
    if (role == ROLE_PARTNER)
        return f->flags & (FIELD_PERSONAL | FIELD_INTERNAL) ? HIDDEN : SHOWN;
    if (role != ROLE_TRAINER)
        return SHOWN;
    if (f->flags & FIELD_INTERNAL)
        return HIDDEN;
    if (!(f->flags & FIELD_PERSONAL) || res->scope[REACH_WERKLAB])
        return SHOWN; /* a trainer takes attendance: they see who is in their werklabs */
    return res->trainer_self ? HIDDEN_FROM_OTHERS : HIDDEN;
}

bool resource_hidden(const struct request *req, const struct resource *res, const struct field *f,
                     const char *id)
{
    switch (visibility(req->who.role, res, f)) {
    case SHOWN: return false;
    case HIDDEN: return true;
    default: return id && strcmp(id, req->who.trainer_id) != 0;
    }
}

bool resource_hidden_somewhere(const struct request *req, const struct resource *res,
                               const struct field *f)
{
    if (req->who.role == ROLE_TRAINER && res->trainer_self && (f->flags & FIELD_PERSONAL))
        return true; /* the other trainers' records */
    return resource_hidden(req, res, f, NULL);
}

_Static_assert(RESOURCE_MAX_FIELDS < 64, "a field is a bit of a uint64_t");

void resource_render_prepare(const struct resource *res)
{
    struct resource_render_plan *plan = &res->sql->render;
    for (size_t i = 0; i < res->n_fields; i++) {
        const struct field *f = &res->fields[i];
        size_t g = resource_group_len(f->name);
        jsonw_name_init(&plan->member[i], g ? f->name + g + 1 : f->name);
        if (g && (i == 0 || !resource_same_group(f->name, res->fields[i - 1].name))) {
            char group[64];
            snprintf(group, sizeof group, "%.*s", (int)g, f->name);
            jsonw_name_init(&plan->group[i], group);
            size_t end = i;
            while (end < res->n_fields && resource_same_group(f->name, res->fields[end].name))
                end++;
            plan->group_end[i] = end;
        }
        if (f->type == FIELD_RECORDS) {
            size_t n = 0;
            while (f->members[n].name)
                n++;
            plan->records[i] = xcalloc(n + 1, sizeof *plan->records[i]);
            for (size_t m = 0; m < n; m++)
                jsonw_name_init(&plan->records[i][m], f->members[m].name);
        }
        for (int r = 0; r < RENDER_ROLES; r++) {
            enum visibility v = visibility(1u << r, res, f);
            plan->hidden[r] |= (uint64_t)(v == HIDDEN) << i;
            plan->hidden_from_others[r] |= (uint64_t)(v == HIDDEN_FROM_OTHERS) << i;
        }
    }
}

/* The fields of res hidden from this caller in the row with this id, one bit each: the masks
 * of the caller's role, made at registration (resource_hidden for a role that has none). */
static uint64_t hidden_fields(const struct request *req, const struct resource *res, const char *id)
{
    const struct resource_render_plan *plan = &res->sql->render;
    unsigned role = req->who.role;
    if (role == 0 || (role & (role - 1)) != 0 || role >= 1u << RENDER_ROLES) {
        uint64_t hidden = 0;
        for (size_t i = 0; i < res->n_fields; i++)
            hidden |= (uint64_t)resource_hidden(req, res, &res->fields[i], id) << i;
        return hidden;
    }
    int r = __builtin_ctz(role);
    uint64_t hidden = plan->hidden[r];
    if (plan->hidden_from_others[r] && id && strcmp(id, req->who.trainer_id) != 0)
        hidden |= plan->hidden_from_others[r];
    return hidden;
}

/* The value in a column of the result (NULL for SQL NULL) and its length. A NULL has length 0:
 * only then is it asked whether the value is one. */
static const char *value(const PGresult *pg, int row, int col, size_t *len)
{
    *len = (size_t)PQgetlength(pg, row, col);
    if (*len == 0 && PQgetisnull(pg, row, col))
        return NULL;
    return PQgetvalue(pg, row, col);
}

/* Writes field i's value from column col of the row (NULL: SQL NULL), noting when personal data
 * leaves the server (for the audit). */
static void write_field(struct request *req, const struct resource *res, size_t i,
                        const PGresult *pg, int row, int col)
{
    const struct field *f = &res->fields[i];
    struct jsonw *w = &req->w;
    size_t len;
    const char *v = value(pg, row, col, &len);
    if (v && (f->flags & FIELD_PERSONAL))
        req->personal_shown = true;
    if (f->type == FIELD_RECORDS) {
        write_records(w, f->members, res->sql->render.records[i], v ? v : "");
        return;
    }
    if (!v) {
        jsonw_null(w);
        return;
    }
    switch (f->type) {
    case FIELD_INT: jsonw_rawn(w, v, len); break;
    case FIELD_BOOL: jsonw_bool(w, v[0] == 't'); break;
    case FIELD_TIMESTAMP: write_timestamp(w, v, len); break;
    case FIELD_ENUM_ARRAY: write_array(w, v); break;
    default: jsonw_stringn(w, v, len); break;
    }
}

/* A timestamp of the row's own (createdAt, updatedAt): null or converted. */
static void write_meta_timestamp(struct jsonw *w, const PGresult *pg, int row, int col)
{
    size_t len;
    const char *v = value(pg, row, col, &len);
    if (!v)
        jsonw_null(w);
    else
        write_timestamp(w, v, len);
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
    static const struct jsonw_name id_name = JSONW_NAME("id"), version = JSONW_NAME("version"),
                                   created_at = JSONW_NAME("createdAt"),
                                   updated_at = JSONW_NAME("updatedAt");
    const struct resource_render_plan *plan = &res->sql->render;
    const PGresult *pg = r->res;
    struct jsonw *w = &req->w;
    const int base = 1; /* column of fields[0] */
    size_t len;
    const char *id = value(pg, row, 0, &len);
    jsonw_key_name(w, &id_name);
    if (id)
        jsonw_stringn(w, id, len);
    else
        jsonw_null(w);
    uint64_t hidden = hidden_fields(req, res, id);
    for (size_t i = 0; i < res->n_fields;) {
        size_t end = plan->group_end[i];
        if (!end) {
            if (!(hidden >> i & 1)) {
                jsonw_key_name(w, &plan->member[i]);
                write_field(req, res, i, pg, row, base + (int)i);
            }
            i++;
            continue;
        }
        /* A nested object: left out when all its fields are hidden, null when all are null. */
        uint64_t members = (((uint64_t)1 << (end - i)) - 1) << i;
        if (members & ~hidden) {
            bool any_value = false;
            for (size_t k = i; k < end && !any_value; k++)
                any_value = value(pg, row, base + (int)k, &len) != NULL;
            jsonw_key_name(w, &plan->group[i]);
            if (!any_value) {
                jsonw_null(w);
            } else {
                jsonw_object_begin(w);
                for (size_t k = i; k < end; k++) {
                    if (hidden >> k & 1)
                        continue;
                    jsonw_key_name(w, &plan->member[k]);
                    write_field(req, res, k, pg, row, base + (int)k);
                }
                jsonw_object_end(w);
            }
        }
        i = end;
    }
    int tail = base + (int)res->n_fields;
    if (res->no_meta)
        return;
    jsonw_key_name(w, &version);
    const char *v = value(pg, row, tail, &len);
    if (!v)
        jsonw_null(w);
    else
        jsonw_rawn(w, v, len);
    jsonw_key_name(w, &created_at);
    write_meta_timestamp(w, pg, row, tail + 1);
    jsonw_key_name(w, &updated_at);
    write_meta_timestamp(w, pg, row, tail + 2);
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
