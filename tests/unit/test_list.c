/* lists (server/resource/plan.c and list.c): sort parsing, filters (values checked by their
 * field's rules and named by the query key), a partner's scope, the keyset SQL after a cursor,
 * the split and merge plan of an `each` filter, cursors (round trip, tampered, made for another
 * sort), the `limit` check, and the envelope with its Link. The statements are only built and
 * read here, never run: no database is involved. */
#include "resource/internal.h"
#include "test_request.h"
#include "token.h"

#include <libpq-fe.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *const states[] = {"open", "shut", "gone", NULL};

static const struct field fields[] = {
    {.name = "name", .column = "name", .type = FIELD_TEXT, .flags = FIELD_REQUIRED, .max = 50},
    {.name = "state", .column = "state", .type = FIELD_ENUM, .values = states},
    {.name = "size", .column = "size", .type = FIELD_INT, .max = 100},
    {.name = "open", .column = "is_open", .type = FIELD_BOOL},
    {.name = "tags", .column = "tags", .type = FIELD_ENUM_ARRAY, .values = states},
};

static const struct filter filters[] = {
    {"state", FILTER_ANY, "state", "state = ANY ($::text[])", .each = "state = $::text"},
    {"size", FILTER_EQUALS, "size", "size = $::integer"},
    {"open", FILTER_EQUALS, "open", "is_open = $::boolean"},
    {"tag", FILTER_ANY, "tags", "tags && $::text[]"},
    {"q", FILTER_SEARCH, NULL, "name ILIKE $"},
    {"updatedSince", FILTER_SINCE, NULL, "updated_at >= $::timestamptz"},
};

static const struct sort_key sort_keys[] = {
    {"name", "name", "text"},
    {"size", "size", "integer"},
    {"createdAt", "created_at", "timestamptz"},
    {"updatedAt", "updated_at", "timestamptz"},
};

static struct resource things = {
    .name = "thing",
    .table = "things",
    .path = "/v1/things",
    .fields = fields,
    .n_fields = sizeof fields / sizeof *fields,
    .filters = filters,
    .n_filters = sizeof filters / sizeof *filters,
    .sort_keys = sort_keys,
    .n_sort_keys = sizeof sort_keys / sizeof *sort_keys,
    .scope = {[REACH_MUNICIPALITY] = "municipality_id"},
};

static const unsigned char key[] = "unit test key, thirty-two bytes!";

static int setup(void **state)
{
    (void)state;
    resource_register(&things);
    token_set_key(key, sizeof key - 1);
    return 0;
}

static char path[] = "/v1/things";

/* A request for the list with query pairs k1, v1, k2, v2, ..., NULL. */
static struct request *request(const char *first, ...)
{
    struct request *req = test_request(path);
    va_list ap;
    va_start(ap, first);
    for (const char *k = first; k; k = va_arg(ap, const char *))
        req->query[req->n_query++] = (struct http_query_arg){k, va_arg(ap, const char *)};
    va_end(ap);
    return req;
}

static void sort_parsing(void **state)
{
    (void)state;
    static const struct {
        const char *sort;
        int n;
        const char *canonical;
    } cases[] = {
        {NULL, 1, "createdAt"},
        {"name", 1, "name"},
        {"-name", 1, "-name"},
        {"size,-name", 2, "size,-name"},
        {"name,size,-updatedAt", 3, "name,size,-updatedAt"},
        {"name,size,updatedAt,createdAt", -1, NULL}, /* more than MAX_SORT */
        {"name,name", -1, NULL},
        {"name,-name", -1, NULL},
        {"colour", -1, NULL},
        {"", -1, NULL},
        {"name,", -1, NULL},
        {"--name", -1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct request *req = request(NULL);
        struct sort_choice sort[MAX_SORT];
        char canonical[128];
        int n = list_parse_sort(req, &things, cases[i].sort, sort, canonical, sizeof canonical);
        assert_int_equal(n, cases[i].n);
        if (n > 0) {
            assert_string_equal(canonical, cases[i].canonical);
            assert_int_equal(req->n_invalid, 0);
        } else {
            assert_string_equal(test_invalid_code(req, "sort"), "enum");
        }
        test_request_free(req);
    }
}

/* The statement and parameters of the first page of req's query, sorted by sort. */
static void plan_page(struct request *req, const char *sort, const char *const *after,
                      struct list_query *q)
{
    struct list_plan p = {.limit = 50};
    p.n_sort = list_parse_sort(req, &things, sort, p.sort, p.canonical, sizeof p.canonical);
    assert_true(p.n_sort > 0);
    list_page_query(req, &things, &p, after, p.limit + 1, q);
}

static bool has_param(const struct list_query *q, const char *value)
{
    for (int i = 0; i < q->n; i++)
        if (q->params[i] && strcmp(q->params[i], value) == 0)
            return true;
    return false;
}

/* Conditions follow the resource's filter table, whatever the order of the query. */
static void filters_checked(void **state)
{
    (void)state;
    struct request *req = request("size", "7", "open", "true", "q", "ab", "updatedSince",
                                  "2025-03-01T00:00:00Z", "tag", "open,shut", NULL);
    struct list_query q = {0};
    plan_page(req, NULL, NULL, &q);
    assert_int_equal(req->n_invalid, 0);
    assert_non_null(strstr(q.sql.data, "AND (size = $1::integer)"));
    assert_non_null(strstr(q.sql.data, "AND (is_open = $2::boolean)"));
    assert_non_null(strstr(q.sql.data, "AND (tags && $3::text[])"));
    assert_string_equal(q.params[2], "{\"open\",\"shut\"}");
    assert_non_null(strstr(q.sql.data, "AND (name ILIKE $4)"));
    assert_non_null(strstr(q.sql.data, "AND (updated_at >= $5::timestamptz)"));
    assert_null(strstr(q.sql.data, "UNION"));
    list_query_free(&q);
    test_request_free(req);

    /* Refused values are named by the query key, not the field. */
    req = request("size", "101", "open", "yes", "state", "open,ajar", "tag", "ajar", "q", "",
                  "updatedSince", "yesterday", NULL);
    plan_page(req, NULL, NULL, &q);
    assert_int_equal(req->n_invalid, 6);
    assert_string_equal(test_invalid_code(req, "size"), "maximum");
    assert_string_equal(test_invalid_code(req, "open"), "type");
    assert_string_equal(test_invalid_code(req, "state"), "enum");
    assert_string_equal(test_invalid_code(req, "tag"), "enum");
    assert_string_equal(test_invalid_code(req, "q"), "maxLength");
    assert_string_equal(test_invalid_code(req, "updatedSince"), "format");
    list_query_free(&q);
    test_request_free(req);
}

static void scope_and_sort_sql(void **state)
{
    (void)state;
    struct request *req = request(NULL);
    req->who.role = ROLE_PARTNER;
    req->who.limited = true;
    req->who.n_municipalities = 2;
    static const char ids[][37] = {"0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13",
                                   "1b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13"};
    req->who.municipality_ids = ids;
    const char *scope = list_scope(req);
    assert_string_equal(
        scope, "{0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13,1b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13}");
    struct list_query q = {0};
    plan_page(req, "-name", NULL, &q);
    assert_non_null(strstr(q.sql.data, "AND ((municipality_id) = ANY ($1::uuid[]))"));
    assert_non_null(strstr(q.sql.data, "ORDER BY name DESC, things.id DESC LIMIT 51"));
    list_query_free(&q);
    req->who.limited = false; /* a partner of all municipalities, and staff: no scope */
    assert_null(list_scope(req));
    req->who.role = ROLE_STAFF;
    req->who.limited = true;
    assert_null(list_scope(req));
    test_request_free(req);
}

/* After a cursor: one key is a row comparison (an index on (key, id) serves it); several are
 * spelled out level by level. */
static void keyset(void **state)
{
    (void)state;
    struct request *req = request(NULL);
    static const char *const one[] = {"m", "0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13"};
    struct list_query q = {0};
    plan_page(req, "name", one, &q);
    assert_non_null(strstr(q.sql.data, "AND (name, things.id) > ($2::text, $1::uuid)"));
    list_query_free(&q);

    static const char *const two[] = {"7", "m", "0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13"};
    plan_page(req, "-size,name", two, &q);
    assert_non_null(strstr(q.sql.data, "AND ((size < $2::integer) OR (size = $2::integer AND "
                                       "name > $3::text) OR (size = $2::integer AND "
                                       "name = $3::text AND things.id > $1::uuid))"));
    assert_non_null(strstr(q.sql.data, "ORDER BY size DESC, name ASC, things.id ASC"));
    list_query_free(&q);
    test_request_free(req);
}

/* An `each` filter: one value is its own condition; two to MAX_SPLIT values are one scan per
 * value, merged in list order; more are one array condition. */
static void split_and_merge(void **state)
{
    (void)state;
    struct request *req = request("state", "open", NULL);
    struct list_query q = {0};
    plan_page(req, "name", NULL, &q);
    assert_non_null(strstr(q.sql.data, "AND (state = $1::text)"));
    assert_null(strstr(q.sql.data, "UNION"));
    list_query_free(&q);
    test_request_free(req);

    req = request("state", "open,shut", NULL);
    plan_page(req, "name", NULL, &q);
    assert_int_equal(req->n_invalid, 0);
    assert_non_null(strstr(q.sql.data, "SELECT * FROM ((SELECT "));
    assert_non_null(strstr(q.sql.data, " UNION ALL ("));
    assert_non_null(strstr(q.sql.data, "AND (state = $1::text) ORDER BY name ASC"));
    assert_non_null(strstr(q.sql.data, "AND (state = $2::text) ORDER BY name ASC"));
    assert_non_null(strstr(q.sql.data, ") AS merged ORDER BY sort_1 ASC, row_id ASC LIMIT 51"));
    assert_true(has_param(&q, "open"));
    assert_true(has_param(&q, "shut"));
    list_query_free(&q);
    test_request_free(req);

    req = request("state", "open,shut,gone,open,shut,gone,open,shut,gone", NULL);
    plan_page(req, "name", NULL, &q);
    assert_null(strstr(q.sql.data, "UNION"));
    assert_non_null(strstr(q.sql.data, "AND (state = ANY ($1::text[]))"));
    list_query_free(&q);
    test_request_free(req);
}

/* A result of one row: id, the fields, version, created_at, updated_at, then the sort values. */
static PGresult *one_row(const char *const *values, int n)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc attrs[16];
    memset(attrs, 0, sizeof attrs);
    for (int i = 0; i < n; i++)
        attrs[i].name = (char *)"c";
    assert_int_equal(PQsetResultAttrs(r, n, attrs), 1);
    for (int i = 0; i < n; i++) {
        char *copy = xstrdup(values[i]); /* PQsetvalue copies it again */
        assert_int_equal(PQsetvalue(r, 0, i, copy, (int)strlen(copy)), 1);
        free(copy);
    }
    return r;
}

static void cursors(void **state)
{
    (void)state;
    static const char *const row[] = {"0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13",
                                      "Ab",
                                      "open",
                                      "7",
                                      "t",
                                      "{open}",
                                      "1",
                                      "2025-03-01 09:30:00+00",
                                      "2025-03-01 09:30:00+00",
                                      "7",
                                      "Ab"};
    struct db_result r = {.res = one_row(row, 11), .status = DB_OK};
    int first_sort = things.sql->n_columns;
    assert_int_equal(first_sort, 9);
    struct buf cursor = {0};
    list_write_cursor(&cursor, "-size,name", &r, 0, first_sort, 2);

    json_t *json = NULL;
    const char *values[MAX_SORT + 1];
    assert_true(list_read_cursor(cursor.data, "-size,name", 2, &json, values));
    assert_string_equal(values[0], "7");
    assert_string_equal(values[1], "Ab");
    assert_string_equal(values[2], row[0]);
    json_decref(json);

    /* Made for another sort order, or another number of keys: refused. */
    assert_false(list_read_cursor(cursor.data, "size,name", 2, &json, values));
    json_decref(json);
    assert_false(list_read_cursor(cursor.data, "-size", 1, &json, values));
    json_decref(json);
    /* With the sort invalid, a cursor can only be checked for being ours. */
    assert_true(list_read_cursor(cursor.data, NULL, -1, &json, values));
    json_decref(json);

    /* Tampered: any byte of it. */
    for (size_t i = 0; i < cursor.len; i++) {
        char saved = cursor.data[i];
        cursor.data[i] = saved == 'A' ? 'B' : 'A';
        assert_false(list_read_cursor(cursor.data, "-size,name", 2, &json, values));
        json_decref(json);
        json = NULL;
        cursor.data[i] = saved;
    }
    /* Signed, but not a cursor: another token's payload. */
    struct buf other = {0};
    token_sign(&other, "12345:67", 8);
    assert_false(list_read_cursor(other.data, NULL, -1, &json, values));
    json_decref(json);
    buf_free(&other);
    token_sign(&other, "[\"name\",3,\"x\"]", 14);
    assert_false(list_read_cursor(other.data, "name", 1, &json, values));
    json_decref(json);
    buf_free(&other);

    buf_free(&cursor);
    PQclear(r.res);
}

static void limits(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long expect;
        const char *code;
    } cases[] = {
        {NULL, 50, NULL},     {"1", 1, NULL},        {"200", 200, NULL},
        {"0", 50, "minimum"}, {"-3", 50, "minimum"}, {"201", 50, "maximum"},
        {"x", 50, "type"},    {"1.5", 50, "type"},   {"", 50, "type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct request *req = request(NULL);
        long limit = 50;
        list_read_limit(req, cases[i].text, 200, &limit);
        assert_int_equal(limit, cases[i].expect);
        if (cases[i].code)
            assert_string_equal(test_invalid_code(req, "limit"), cases[i].code);
        else
            assert_int_equal(req->n_invalid, 0);
        test_request_free(req);
    }
}

/* The next link is this request's query without its cursor, then the new cursor; the same
 * link goes in the Link header. Without a cursor, next is null and there is no Link. */
static void envelope(void **state)
{
    (void)state;
    struct request *req = request("limit", "2", "cursor", "old", "q", "a b&c", NULL);
    list_begin(req);
    jsonw_int(&req->w, 1);
    list_end_paged(req, "NEW.cur");
    assert_int_equal(req->status, 200);
    assert_string_equal(
        req->out.data,
        "{\"items\":[1],\"next\":\"/v1/things?limit=2&q=a%20b%26c&cursor=NEW.cur\"}");
    assert_string_equal(test_header(req, "Link"),
                        "</v1/things?limit=2&q=a%20b%26c&cursor=NEW.cur>; rel=\"next\"");
    test_request_free(req);

    req = request(NULL);
    list_begin(req);
    list_end_paged(req, "c");
    assert_string_equal(req->out.data, "{\"items\":[],\"next\":\"/v1/things?cursor=c\"}");
    test_request_free(req);

    req = request("limit", "2", NULL);
    list_begin(req);
    list_end_paged(req, NULL);
    assert_string_equal(req->out.data, "{\"items\":[],\"next\":null}");
    assert_null(test_header(req, "Link"));
    test_request_free(req);

    req = request(NULL);
    list_begin(req);
    list_end(req, "/v1/changes?after=x");
    assert_string_equal(req->out.data, "{\"items\":[],\"next\":\"/v1/changes?after=x\"}");
    assert_null(test_header(req, "Link"));
    test_request_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sort_parsing),
        cmocka_unit_test(filters_checked),
        cmocka_unit_test(scope_and_sort_sql),
        cmocka_unit_test(keyset),
        cmocka_unit_test(split_and_merge),
        cmocka_unit_test(cursors),
        cmocka_unit_test(limits),
        cmocka_unit_test(envelope),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
