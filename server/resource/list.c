/* list: lists answered. The pieces every list shares (list.h: the `limit` check, a partner's
 * scope, the {"items","next"} envelope and the Link to the next page), the signed cursors of
 * resource lists, and resource_list() itself, which checks the whole query first, then reads one
 * page planned by plan.c (or hands over to csv.c). */
#include "dbpipe.h"
#include "internal.h"
#include "token.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(MAX_PARAMS <= DBPIPE_MAX_PARAMS, "a page's statement goes through the pipeline");

void list_read_limit(struct request *req, const char *text, long max, long *limit)
{
    if (!text || validate_whole(text, 1, max, limit))
        return;
    long n;
    bool number = validate_whole(text, -1000000000, 1000000000, &n);
    http_invalid(req, "limit",
                 !number ? "type"
                 : n < 1 ? "minimum"
                         : "maximum",
                 "must be a whole number from 1 to %ld", max);
}

enum reach list_reach(struct request *req, const char **param)
{
    *param = NULL;
    if (req->who.role == ROLE_TRAINER) {
        *param = req->who.trainer_id;
        return REACH_WERKLAB;
    }
    *param = list_scope(req);
    return *param ? REACH_MUNICIPALITY : REACH_NONE;
}

/* What "expr lies in the reach" means, per kind, with the parameter's number. A trainer's
 * werklabs are read from the assignments in the statement itself: an assignment made or ended
 * shows at the trainer's next request, and the identity carries only the trainer's id. */
static const char *const reach_conditions[REACH_KINDS] = {
    [REACH_MUNICIPALITY] = "(%s) = ANY ($%d::uuid[])",
    [REACH_WERKLAB] = "(%s) IN (SELECT a.werklab_id FROM werklab_trainers a "
                      "WHERE a.trainer_id = $%d::uuid)",
};

void list_append_reach(struct buf *b, enum reach kind, const char *expr, int n)
{
    /* Not list_append_condition: expr may hold parameters of its own ($1 of a filter's SQL). */
    buf_puts(b, " AND (");
    buf_printf(b, reach_conditions[kind], expr, n);
    buf_putc(b, ')');
}

const char *list_scope(struct request *req)
{
    if (req->who.role != ROLE_PARTNER || !req->who.limited)
        return NULL;
    /* "{" + the ids, each 36 characters and a separator + "}" */
    char *scope = pool_alloc(&req->pool, 2 + 37 * (size_t)req->who.n_municipalities + 1);
    char *at = scope;
    *at++ = '{';
    for (int i = 0; i < req->who.n_municipalities; i++)
        at += sprintf(at, "%s%s", i ? "," : "", req->who.municipality_ids[i]);
    strcpy(at, "}");
    return scope;
}

void list_begin(struct request *req)
{
    jsonw_object_begin(&req->w);
    jsonw_key(&req->w, "items");
    jsonw_array_begin(&req->w);
}

void list_end(struct request *req, const char *next)
{
    struct jsonw *w = &req->w;
    jsonw_array_end(w);
    jsonw_key(w, "next");
    if (next)
        jsonw_string(w, next);
    else
        jsonw_null(w);
    jsonw_object_end(w);
    http_reply(req, 200);
}

/* The link to the next page: this request's query with the cursor replaced. */
static void next_link(struct buf *b, const struct request *req, const char *cursor)
{
    buf_puts(b, req->path);
    char sep = '?';
    for (int i = 0; i < req->n_query; i++) {
        if (strcmp(req->query[i].key, "cursor") == 0)
            continue;
        buf_putc(b, sep);
        http_url_encode(b, req->query[i].key);
        buf_putc(b, '=');
        http_url_encode(b, req->query[i].value);
        sep = '&';
    }
    buf_putc(b, sep);
    buf_puts(b, "cursor=");
    buf_puts(b, cursor);
}

void list_end_paged(struct request *req, const char *cursor)
{
    if (!cursor) {
        list_end(req, NULL);
        return;
    }
    struct buf link = {0}, header = {0};
    next_link(&link, req, cursor);
    buf_printf(&header, "<%s>; rel=\"next\"", link.data);
    http_set_header(req, "Link", header.data);
    list_end(req, link.data);
    buf_free(&link);
    buf_free(&header);
}

/* Public lists may be cached: Cache-Control: public, max-age=N. */
void list_cache_header(struct request *req, const struct resource *res)
{
    if (!res->cache_seconds)
        return;
    char cache[48];
    snprintf(cache, sizeof cache, "public, max-age=%u", res->cache_seconds);
    http_set_header(req, "Cache-Control", cache);
}

/* ---- resource cursors: [sort, value per sort key, id], signed ---- */

void list_write_cursor(struct buf *out, const char *sort, const struct db_result *r, int row,
                       int first_sort_column, int n_sort)
{
    struct buf payload = {0};
    struct jsonw w;
    jsonw_init(&w, &payload);
    jsonw_array_begin(&w);
    jsonw_string(&w, sort);
    for (int i = 0; i < n_sort; i++)
        jsonw_string(&w, db_value(r, row, first_sort_column + i));
    jsonw_string(&w, db_value(r, row, 0));
    jsonw_array_end(&w);
    token_sign(out, payload.data, payload.len);
    buf_free(&payload);
}

bool list_read_cursor(const char *cursor, const char *sort, int n_sort, json_t **json,
                      const char **values)
{
    struct buf payload = {0};
    *json = token_unsign(cursor, &payload)
                ? json_loadb(payload.data, payload.len, JSON_REJECT_DUPLICATES, NULL)
                : NULL;
    buf_free(&payload);
    if (!*json || !json_is_array(*json) || !json_is_string(json_array_get(*json, 0)))
        return false;
    if (!sort) /* the sort order is invalid: the cursor can only be checked for being ours */
        return true;
    if (json_array_size(*json) != (size_t)n_sort + 2 ||
        strcmp(json_string_value(json_array_get(*json, 0)), sort) != 0)
        return false;
    for (int i = 0; i <= n_sort; i++) {
        values[i] = json_string_value(json_array_get(*json, (size_t)i + 1));
        if (!values[i])
            return false;
    }
    return true;
}

/* What a page's answer needs once its rows are in. */
struct page {
    const struct resource *res;
    struct list_plan plan;
};

/* An empty page under a parent: an empty list where the parent is, else 404. */
static void answer_empty_page(struct request *req, struct db_result *r, void *ctx)
{
    const struct page *page = ctx;
    if (!list_parent_answer(req, page->res, r))
        return;
    list_begin(req);
    list_end_paged(req, NULL);
    list_cache_header(req, page->res);
}

/* On a worker, the page's rows in: the envelope, the rows, the cursor and Link. */
static void answer_page(struct request *req, struct db_result *r, void *ctx)
{
    struct page *page = ctx;
    const struct resource *res = page->res;
    long limit = page->plan.limit;
    if (r->status != DB_OK) {
        resource_fail(req, res, r, false);
        return;
    }
    int rows = db_rows(r);
    bool more = rows > limit;
    /* Only an empty page asks whether its parent exists, a second statement, deferred too. */
    const char *params[2];
    int n;
    const char *parent = rows == 0 ? list_parent_query(req, res, params, &n) : NULL;
    if (parent) {
        http_defer(req, parent, n, params, answer_empty_page, page);
        return;
    }
    list_begin(req);
    for (int i = 0; i < rows && i < limit; i++)
        resource_render(req, res, r, i);
    struct buf token = {0};
    if (more)
        list_write_cursor(&token, page->plan.canonical, r, (int)limit - 1, res->sql->n_columns,
                          page->plan.n_sort);
    list_end_paged(req, more ? token.data : NULL);
    buf_free(&token);
    list_cache_header(req, res);
}

void resource_list(struct request *req)
{
    const struct resource *res = resource_of(req);
    struct list_query q = {0};
    json_t *cursor_json = NULL;
    struct page *page = pool_alloc(&req->pool, sizeof *page);
    struct list_plan *plan = &page->plan;
    page->res = res;
    plan->limit = DEFAULT_LIMIT;

    list_read_limit(req, http_query(req, "limit"), MAX_LIMIT, &plan->limit);
    const char *delimiter = http_query(req, "delimiter");
    if (delimiter && strcmp(delimiter, "comma") != 0 && strcmp(delimiter, "semicolon") != 0)
        http_invalid(req, "delimiter", "enum", "must be comma or semicolon");
    plan->n_sort = list_parse_sort(req, res, http_query(req, "sort"), plan->sort, plan->canonical,
                                   sizeof plan->canonical);

    const char *cursor = http_query(req, "cursor");
    const char *after[MAX_SORT + 1];
    if (cursor && !list_read_cursor(cursor, plan->n_sort > 0 ? plan->canonical : NULL, plan->n_sort,
                                    &cursor_json, after))
        http_invalid(req, "cursor", "format",
                     "is not a cursor this list gave out for this sort order");
    /* Checks the filters (and whether they name anything outside a partner's scope). */
    if (plan->n_sort > 0)
        list_page_query(req, res, plan, cursor && !req->n_invalid ? after : NULL,
                        req->wants_csv ? CSV_PAGE : plan->limit + 1, &q);
    else
        list_add_filters(req, res, &q);
    if (req->n_invalid)
        http_problem_invalid(req);
    else if (q.out_of_scope)
        http_problem(req, 404, "A filter names something this caller cannot see.");
    else if (req->wants_csv)
        list_answer_csv(req, res, plan,
                        delimiter && strcmp(delimiter, "semicolon") == 0 ? ';' : ',');
    else /* the parameters are copied; the SQL, made for this request, lives in its pool */
        http_defer_read(req, pool_strdup(&req->pool, q.sql.data), q.n, q.params, answer_page, page);

    if (cursor_json)
        json_decref(cursor_json);
    list_query_free(&q);
}
