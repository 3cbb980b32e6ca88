/* plan: what one page of a list reads. The sort (up to MAX_SORT keys, then the id), the filters
 * (each value checked by the rules of its field), a partner key's municipalities and the parent
 * in the path become one keyset statement: rows strictly after the cursor's position, in order,
 * LIMIT n. A filter with an `each` condition and several values is read as one ordered scan per
 * value, merged (the split and merge plan). Nothing here answers: invalid input is recorded for
 * the caller (list.c, csv.c) to answer. */
#include "internal.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Adds a parameter; returns its number for the SQL. */
static int add_param(struct list_query *q, const char *value)
{
    q->params[q->n] = value;
    q->owned[q->n] = NULL;
    return ++q->n;
}

/* The same for a value the query frees when done. */
static int add_owned_param(struct list_query *q, char *value)
{
    q->params[q->n] = value;
    q->owned[q->n] = value;
    return ++q->n;
}

void list_append_condition(struct buf *b, const char *sql, int n)
{
    buf_puts(b, " AND (");
    for (const char *p = sql; *p; p++) {
        if (*p == '$')
            buf_printf(b, "$%d", n);
        else
            buf_putc(b, *p);
    }
    buf_putc(b, ')');
}

static const struct sort_key created_at = {"createdAt", "created_at", "timestamptz"};

int list_parse_sort(struct request *req, const struct resource *res, const char *sort,
                    struct sort_choice *out, char *canonical, size_t canonical_len)
{
    if (!sort) {
        out[0] = (struct sort_choice){&created_at, false};
        snprintf(canonical, canonical_len, "createdAt");
        return 1;
    }
    int n = 0;
    canonical[0] = '\0';
    for (const char *p = sort;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        bool desc = len > 0 && p[0] == '-';
        const char *name = p + desc;
        size_t name_len = len - desc;
        const struct sort_key *key = NULL;
        for (size_t i = 0; i < res->n_sort_keys; i++)
            if (strlen(res->sort_keys[i].key) == name_len &&
                strncmp(res->sort_keys[i].key, name, name_len) == 0)
                key = &res->sort_keys[i];
        for (int i = 0; key && i < n; i++)
            if (out[i].key == key)
                key = NULL;
        if (!key || n == MAX_SORT) {
            struct buf allowed = {0};
            for (size_t i = 0; i < res->n_sort_keys; i++)
                buf_printf(&allowed, "%s%s", i ? ", " : "", res->sort_keys[i].key);
            http_invalid(req, "sort", "enum",
                         "takes up to %d distinct keys, each optionally prefixed with -, of: %s",
                         MAX_SORT, allowed.data);
            buf_free(&allowed);
            return -1;
        }
        if (key->personal &&
            resource_hidden_somewhere(req, res, &res->fields[resource_field(res, key->personal)])) {
            http_invalid(req, "sort", "forbidden",
                         "cannot order by %s: it is personal data you do not see in every row",
                         key->key);
            return -1;
        }
        out[n++] = (struct sort_choice){key, desc};
        size_t used = strlen(canonical);
        snprintf(canonical + used, canonical_len - used, "%s%s%s", n > 1 ? "," : "",
                 desc ? "-" : "", key->key);
        if (!comma)
            break;
        p = comma + 1;
    }
    return n;
}

/* A query value as the JSON a body would carry, so that filters reuse the fields' checks. */
static json_t *query_value_as_json(enum field_type type, const char *text)
{
    if (type == FIELD_BOOL && strcmp(text, "true") == 0)
        return json_true();
    if (type == FIELD_BOOL && strcmp(text, "false") == 0)
        return json_false();
    long n;
    if (type == FIELD_INT && validate_whole(text, -1000000000, 1000000000, &n))
        return json_integer(n);
    return json_string(text);
}

/* True when the thing filter i names (value) lies in the caller's reach of kind. */
static bool within_reach(struct request *req, const struct resource *res, size_t i, enum reach kind,
                         const char *value)
{
    const char *reach;
    list_reach(req, &reach);
    const char *params[] = {value, reach};
    struct db_result r;
    bool inside =
        db_exec(res->sql->filter_within[i][kind], 2, params, &r) == DB_OK && db_rows(&r) == 1;
    db_clear(&r);
    return inside;
}

void list_add_filters(struct request *req, const struct resource *res, struct list_query *q)
{
    for (size_t i = 0; i < res->n_filters; i++) {
        const struct filter *flt = &res->filters[i];
        const char *value = http_query(req, flt->key);
        if (!value)
            continue;
        int before = req->n_invalid;
        if (flt->kind == FILTER_SEARCH) {
            if (res->sql->filter_field[i] >= 0 &&
                resource_hidden_somewhere(req, res, &res->fields[res->sql->filter_field[i]]))
                http_invalid(req, flt->key, "forbidden",
                             "searches personal data you do not see in every row");
            else if (!*value || validate_chars(value) > RESOURCE_SEARCH_MAX)
                http_invalid(req, flt->key, "maxLength", "must have 1 to 200 characters");
            else
                list_append_condition(&q->sql, flt->sql, add_param(q, value));
            continue;
        }
        if (flt->kind == FILTER_SINCE) {
            if (!validate_timestamp(value))
                http_invalid(req, flt->key, "format",
                             "must be an RFC 3339 timestamp, e.g. 2025-03-01T09:30:00Z");
            else
                list_append_condition(&q->sql, flt->sql, add_param(q, value));
            continue;
        }
        /* ANY and EQUALS follow the rules of a field; reuse its checks on each value. */
        size_t f = (size_t)res->sql->filter_field[i];
        struct resource_values scratch;
        memset(&scratch, 0, sizeof scratch);
        struct buf array = {0};
        char *values[MAX_SPLIT] = {0};
        buf_putc(&array, '{');
        const char *p = value;
        int count = 0;
        for (;;) {
            const char *comma = flt->kind == FILTER_ANY ? strchr(p, ',') : NULL;
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char *one = xstrndup(p, len);
            /* An array field is filtered by its members: check each against the members. */
            json_t *as_json = res->fields[f].type == FIELD_ENUM_ARRAY
                                  ? json_pack("[s]", one)
                                  : query_value_as_json(res->fields[f].type, one);
            const char *checked;
            if (as_json && resource_check_value(req, res, f, as_json, &scratch, &checked) &&
                checked) {
                if (res->fields[f].type == FIELD_ENUM_ARRAY)
                    checked = one;
                if (flt->kind == FILTER_EQUALS) {
                    list_append_condition(&q->sql, flt->sql, add_owned_param(q, xstrdup(checked)));
                } else {
                    buf_puts(&array, count ? "," : "");
                    buf_put_array_element(&array, checked);
                    if (count < MAX_SPLIT)
                        values[count] = xstrdup(checked);
                }
                enum reach kind = resource_scoped(req, res);
                if (kind != REACH_NONE && res->sql->filter_within[i][kind] &&
                    !within_reach(req, res, i, kind, checked))
                    q->out_of_scope = true;
                count++;
            }
            json_decref(as_json);
            free(one);
            if (!comma)
                break;
            p = comma + 1;
        }
        /* check_value names the field; the client gave a query key. */
        for (int k = before; k < req->n_invalid; k++)
            snprintf(req->invalid[k].name, sizeof req->invalid[k].name, "%s", flt->key);
        buf_putc(&array, '}');
        bool split =
            flt->each && !q->split && count > 1 && count <= MAX_SPLIT && req->n_invalid == before;
        if (split) {
            q->split = flt;
            q->split_at = q->sql.len;
            q->n_split = count;
            memcpy(q->split_values, values, (size_t)count * sizeof *values);
        } else if (flt->each && count == 1 && req->n_invalid == before) {
            /* One value: its own condition, which an index on the column serves in order. */
            list_append_condition(&q->sql, flt->each, add_owned_param(q, values[0]));
        } else {
            if (flt->kind == FILTER_ANY && req->n_invalid == before)
                list_append_condition(&q->sql, flt->sql, add_owned_param(q, buf_detach(&array)));
            for (int k = 0; k < count && k < MAX_SPLIT; k++)
                free(values[k]);
        }
        buf_free(&array);
    }
}

/* The link to the next page: this request's query with the cursor replaced. */
void list_query_free(struct list_query *q)
{
    for (int i = 0; i < q->n; i++)
        free(q->owned[i]);
    for (int i = 0; i < q->n_split; i++)
        free(q->split_values[i]);
    buf_free(&q->sql);
    memset(q, 0, sizeof *q);
}

/* Rewrites q's one-scan query as one per value of the split filter, each in list order and
 * limited, merged in the same order: PostgreSQL reads each from its index and merges. */
static void merge_split(struct list_query *q, const struct list_plan *p, long rows)
{
    struct buf merged = {0};
    buf_puts(&merged, "SELECT * FROM (");
    for (int v = 0; v < q->n_split; v++) {
        int n = add_owned_param(q, q->split_values[v]);
        q->split_values[v] = NULL;
        buf_puts(&merged, v ? " UNION ALL (" : "(");
        buf_append(&merged, q->sql.data, q->split_at);
        list_append_condition(&merged, q->split->each, n);
        buf_puts(&merged, q->sql.data + q->split_at);
        buf_putc(&merged, ')');
    }
    buf_puts(&merged, ") AS merged ORDER BY ");
    for (int i = 0; i < p->n_sort; i++)
        buf_printf(&merged, "sort_%d %s, ", i + 1, p->sort[i].descending ? "DESC" : "ASC");
    buf_printf(&merged, "row_id %s LIMIT %ld", p->sort[p->n_sort - 1].descending ? "DESC" : "ASC",
               rows);
    buf_free(&q->sql);
    q->sql = merged;
}

void list_page_query(struct request *req, const struct resource *res, const struct list_plan *p,
                     const char *const *after, long rows, struct list_query *q)
{
    buf_printf(&q->sql, "SELECT %s", res->sql->select_list);
    for (int i = 0; i < p->n_sort; i++)
        buf_printf(&q->sql, ", %s AS sort_%d", p->sort[i].key->expr, i + 1);
    buf_printf(&q->sql, ", %s.id AS row_id FROM %s WHERE true", res->table, res->table);
    list_add_filters(req, res, q);
    enum reach kind = resource_scoped(req, res);
    if (kind != REACH_NONE) {
        const char *reach;
        list_reach(req, &reach);
        list_append_reach(&q->sql, kind, res->scope[kind], add_param(q, reach));
    }
    const char *parent = resource_parent_id(req, res);
    if (parent)
        list_append_condition(&q->sql, res->sql->parent_condition, add_param(q, parent));

    const struct sort_choice *sort = p->sort;
    int n_sort = p->n_sort;
    if (after) {
        /* Keyset: rows strictly after (sort values, id) in this order. With one key the row
         * comparison lets PostgreSQL use an index on (key, id). */
        bool desc_last = sort[n_sort - 1].descending;
        int id_param = add_param(q, after[n_sort]);
        if (n_sort == 1) {
            int v = add_param(q, after[0]);
            buf_printf(&q->sql, " AND (%s, %s.id) %s ($%d::%s, $%d::uuid)", sort[0].key->expr,
                       res->table, sort[0].descending ? "<" : ">", v, sort[0].key->cast, id_param);
        } else {
            int values[MAX_SORT];
            for (int i = 0; i < n_sort; i++)
                values[i] = add_param(q, after[i]);
            buf_puts(&q->sql, " AND (");
            for (int level = 0; level <= n_sort; level++) {
                buf_puts(&q->sql, level ? " OR (" : "(");
                for (int i = 0; i < level && i < n_sort; i++)
                    buf_printf(&q->sql, "%s = $%d::%s AND ", sort[i].key->expr, values[i],
                               sort[i].key->cast);
                if (level < n_sort)
                    buf_printf(&q->sql, "%s %s $%d::%s)", sort[level].key->expr,
                               sort[level].descending ? "<" : ">", values[level],
                               sort[level].key->cast);
                else
                    buf_printf(&q->sql, "%s.id %s $%d::uuid)", res->table, desc_last ? "<" : ">",
                               id_param);
            }
            buf_putc(&q->sql, ')');
        }
    }
    buf_puts(&q->sql, " ORDER BY ");
    for (int i = 0; i < n_sort; i++)
        buf_printf(&q->sql, "%s %s, ", sort[i].key->expr, sort[i].descending ? "DESC" : "ASC");
    /* The number of rows is written as a number, not passed as a parameter: a LIMIT
     * parameter makes PostgreSQL estimate 10 % of the table in a generic plan, which then
     * never looks cheaper than a custom one, and it plans every request again. With the
     * number in the text it settles on one plan per page size. It is the program's own
     * (1 to MAX_LIMIT + 1, or CSV_PAGE), so no input reaches the SQL text. Qualified: a
     * computed column of the select list may be called id as well. */
    buf_printf(&q->sql, "%s.id %s LIMIT %ld", res->table,
               sort[n_sort - 1].descending ? "DESC" : "ASC", rows);
    if (q->split)
        merge_split(q, p, rows);
}

const char *list_parent_query(struct request *req, const struct resource *res,
                              const char *params[2], int *n)
{
    const char *parent = resource_parent_id(req, res);
    if (!parent)
        return NULL;
    /* The parent is found as its own resource reaches it: a trainer's list of participants of
     * another werklab is 404, not an empty list. */
    const struct resource *of = res->sql->parent_resource;
    enum reach kind = resource_scoped(req, of);
    params[0] = parent;
    list_reach(req, &params[1]);
    *n = kind == REACH_NONE ? 1 : 2;
    return kind == REACH_NONE ? res->sql->parent_exists : of->sql->guard[kind + 1][0];
}

bool list_parent_answer(struct request *req, const struct resource *res, struct db_result *r)
{
    bool found = r->status == DB_OK && db_rows(r) == 1;
    if (r->status != DB_OK)
        resource_fail(req, res, r, false);
    else if (!found)
        http_problem(req, 404, "There is nothing at %s.", req->path);
    return found;
}

bool list_parent_found(struct request *req, const struct resource *res)
{
    const char *params[2];
    int n;
    const char *sql = list_parent_query(req, res, params, &n);
    if (!sql)
        return true;
    struct db_result exists;
    db_exec(sql, n, params, &exists);
    bool found = list_parent_answer(req, res, &exists);
    db_clear(&exists);
    return found;
}
