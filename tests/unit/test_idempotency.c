/* idempotency, without a database: key validation, the request's fingerprint, the replay
 * decision, and the phase's steps against a scripted stand-in for db.h and http.h (the .c is
 * included): which transactions it opens and ends, what it answers, what it stores. */
#include "../../server/idempotency.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* ---- db.h, scripted: each db_exec takes the next status and row ---- */

static char db_log[64]; /* B begin, C commit, R rollback, E exec */
static enum db_status exec_status[4];
static const char *exec_row[4][6];
static int exec_rows[4];
static int n_exec;
static const char *inserted[8];
static enum db_status commit_status;

static void logc(char c)
{
    size_t n = strlen(db_log);
    db_log[n] = c;
    db_log[n + 1] = '\0';
}

enum db_status db_begin(void)
{
    logc('B');
    return DB_OK;
}

enum db_status db_commit(void)
{
    logc('C');
    return commit_status;
}

void db_rollback(void)
{
    logc('R');
}

enum db_status db_exec(const char *sql, int n, const char *const *values, struct db_result *r)
{
    logc('E');
    *r = (struct db_result){.status = exec_status[n_exec]};
    r->res = (PGresult *)(uintptr_t)(n_exec + 1); /* which exec: for db_value */
    if (strncmp(sql, "INSERT", 6) == 0)
        for (int i = 0; i < n; i++)
            inserted[i] = values[i];
    return exec_status[n_exec++];
}

void db_clear(struct db_result *r)
{
    r->res = NULL;
}

int db_rows(const struct db_result *r)
{
    return exec_rows[(uintptr_t)r->res - 1];
}

const char *db_value(const struct db_result *r, int row, int col)
{
    (void)row;
    return exec_row[(uintptr_t)r->res - 1][col];
}

/* ---- http.h, stubbed ---- */

static const char *key_header;
static const char *set_headers[4][2];
static int n_set;

const char *http_header(struct request *req, const char *name)
{
    (void)req;
    return strcmp(name, "Idempotency-Key") == 0 ? key_header : NULL;
}

void http_client_address(struct request *req, char *out, size_t len)
{
    (void)req;
    snprintf(out, len, "192.0.2.1");
}

void http_problem(struct request *req, int status, const char *detail, ...)
{
    (void)detail;
    req->status = status;
}

void http_problem_unavailable(struct request *req)
{
    req->status = 503;
}

void http_reply_text(struct request *req, int status, const char *content_type, const char *body,
                     size_t len)
{
    req->status = status;
    req->content_type = content_type;
    buf_reset(&req->out);
    buf_append(&req->out, body, len);
}

void http_set_header(struct request *req, const char *name, const char *value)
{
    (void)req;
    set_headers[n_set][0] = name;
    set_headers[n_set++][1] = value;
}

const char *http_response_header(const struct request *req, const char *name)
{
    (void)req;
    for (int i = 0; i < n_set; i++)
        if (strcmp(set_headers[i][0], name) == 0)
            return set_headers[i][1];
    return NULL;
}

void http_clear_headers(struct request *req)
{
    (void)req;
    n_set = 0;
}

/* ---- the pure parts ---- */

static void test_key_valid(void **state)
{
    (void)state;
    char longest[MAX_KEY_LEN + 2];
    memset(longest, 'k', MAX_KEY_LEN);
    longest[MAX_KEY_LEN] = '\0';
    assert_true(key_valid(longest));
    assert_true(key_valid("a"));
    assert_true(key_valid("8e0f-4c1a:!~"));
    longest[MAX_KEY_LEN] = 'k';
    longest[MAX_KEY_LEN + 1] = '\0';
    assert_false(key_valid(longest));
    assert_false(key_valid(""));
    assert_false(key_valid("with space"));
    assert_false(key_valid("tab\there"));
    assert_false(key_valid("caf\xc3\xa9"));
    assert_false(key_valid("del\x7f"));
}

static void test_fingerprint(void **state)
{
    (void)state;
    char hex[HASH_HEX], other[HASH_HEX];
    fingerprint("POST", "/v1/inquiries", "{\"a\":1}", 7, hex);
    assert_string_equal(hex, "\\x958fdb77b2560cbe350fd97af39aa8761aa825b54b481c575643be522f818cc0");
    fingerprint("POST", "/v1/inquiries", "{\"a\":2}", 7, other);
    assert_string_not_equal(hex, other);
    fingerprint("POST", "/v1/trainers", "{\"a\":1}", 7, other);
    assert_string_not_equal(hex, other);
    fingerprint("POST", "/v1/inquiries", NULL, 0, other); /* no body */
    assert_int_equal(strlen(other), HASH_HEX - 1);
}

static void test_replay_decision(void **state)
{
    (void)state;
    assert_int_equal(replay_of(0, NULL), REPLAY_NONE);
    assert_int_equal(replay_of(1, "t"), REPLAY_ANSWER);
    assert_int_equal(replay_of(1, "f"), REPLAY_OTHER_REQUEST);
    assert_int_equal(replay_of(1, NULL), REPLAY_OTHER_REQUEST);
    assert_string_equal(stored_type("application/problem+json"), "application/problem+json");
    assert_string_equal(stored_type("application/json; charset=utf-8"),
                        "application/json; charset=utf-8");
    assert_string_equal(stored_type(NULL), "application/json; charset=utf-8");
}

/* ---- the phase ---- */

static struct route post_route = {.method = HTTP_POST, .pattern = "/v1/inquiries"};
static struct route personal_route = {
    .method = HTTP_POST, .pattern = "/v1/x", .no_idempotency = true};

static void fresh(struct request *req, const char *key)
{
    buf_free(&req->out);
    pool_free(&req->pool);
    *req = (struct request){.method = HTTP_POST, .method_name = "POST", .route = &post_route};
    req->path = (char *)"/v1/inquiries";
    req->body = (struct buf){.data = (char *)"{}", .len = 2};
    key_header = key;
    db_log[0] = '\0';
    memset(exec_status, 0, sizeof exec_status);
    memset(exec_rows, 0, sizeof exec_rows);
    memset(exec_row, 0, sizeof exec_row);
    memset(inserted, 0, sizeof inserted);
    n_exec = 0;
    n_set = 0;
    commit_status = DB_OK;
    static const char *const locked[6] = {"t"};
    memcpy(exec_row[0], locked, sizeof locked);
    exec_rows[0] = 1;
}

static int setup(void **state)
{
    (void)state;
    phase_reset();
    idempotency_install();
    return 0;
}

static void test_passes_by(void **state)
{
    (void)state;
    struct request req = {0};
    fresh(&req, NULL); /* no key */
    assert_true(begin(&req));
    fresh(&req, "k1");
    req.method = HTTP_PATCH; /* only POST */
    assert_true(begin(&req));
    fresh(&req, "k1");
    req.route = &personal_route; /* an answer that must not be stored */
    assert_true(begin(&req));
    assert_string_equal(db_log, "");
    assert_null(req.phase_ctx[phase.index]);
    finish(&req); /* nothing to finish */
    assert_string_equal(db_log, "");
    fresh(&req, "bad key");
    assert_false(begin(&req));
    assert_int_equal(req.status, 400);
    assert_string_equal(db_log, "");
    pool_free(&req.pool);
}

static void test_first_request(void **state)
{
    (void)state;
    struct request req = {0};
    fresh(&req, "k1");
    req.who.key_id[0] = 'a';
    assert_true(begin(&req));
    assert_string_equal(db_log, "BEEB"); /* transaction, lock, lookup, savepoint */
    /* The handler answers 201 with a Location. */
    req.status = 201;
    req.content_type = "application/json; charset=utf-8";
    buf_puts(&req.out, "{\"id\":1}");
    http_set_header(&req, "Location", "/v1/inquiries/1");
    finish(&req);
    assert_string_equal(db_log, "BEEBCEC"); /* the handler's work kept, stored, committed */
    assert_string_equal(inserted[0], "key:a");
    assert_string_equal(inserted[1], "k1");
    assert_string_equal(inserted[3], "201");
    assert_string_equal(inserted[4], "/v1/inquiries/1");
    assert_null(inserted[5]);
    assert_string_equal(inserted[7], "{\"id\":1}");
    assert_int_equal(req.status, 201);
    buf_free(&req.out);
    pool_free(&req.pool);
}

static void test_refused_and_failed(void **state)
{
    (void)state;
    struct request req = {0};
    /* A 4xx is stored, the handler's work is not kept. */
    fresh(&req, "k1");
    assert_true(begin(&req));
    req.status = 409;
    finish(&req);
    assert_string_equal(db_log, "BEEBREC");
    assert_string_equal(inserted[0], "address:192.0.2.1");
    assert_string_equal(inserted[3], "409");
    /* A 5xx is not stored: everything rolled back. */
    fresh(&req, "k1");
    assert_true(begin(&req));
    req.status = 500;
    finish(&req);
    assert_string_equal(db_log, "BEEBRR");
    assert_null(inserted[0]);
    /* The final commit fails: 503, the headers dropped. */
    fresh(&req, "k1");
    assert_true(begin(&req));
    req.status = 201;
    http_set_header(&req, "Location", "/v1/inquiries/1");
    commit_status = DB_UNAVAILABLE;
    finish(&req);
    assert_int_equal(req.status, 503);
    assert_int_equal(n_set, 0);
    buf_free(&req.out);
    pool_free(&req.pool);
}

static void test_replays(void **state)
{
    (void)state;
    struct request req = {0};
    /* Still running elsewhere: the lock is taken. */
    fresh(&req, "k1");
    exec_row[0][0] = "f";
    assert_false(begin(&req));
    assert_int_equal(req.status, 409);
    assert_string_equal(db_log, "BER");
    /* The same request again: the stored answer. */
    fresh(&req, "k1");
    static const char *const stored[6] = {
        "t", "201", "/v1/inquiries/1", NULL, "application/json", "{\"id\":1}"};
    memcpy(exec_row[1], stored, sizeof stored);
    exec_rows[1] = 1;
    assert_false(begin(&req));
    assert_string_equal(db_log, "BEER");
    assert_int_equal(req.status, 201);
    assert_string_equal(req.out.data, "{\"id\":1}");
    assert_string_equal(http_response_header(&req, "Location"), "/v1/inquiries/1");
    assert_string_equal(http_response_header(&req, "Idempotent-Replayed"), "true");
    assert_null(http_response_header(&req, "ETag"));
    /* Another request with that key. */
    fresh(&req, "k1");
    exec_row[1][0] = "f";
    exec_rows[1] = 1;
    assert_false(begin(&req));
    assert_int_equal(req.status, 422);
    /* The database fails on the lookup. */
    fresh(&req, "k1");
    exec_status[1] = DB_UNAVAILABLE;
    assert_false(begin(&req));
    assert_int_equal(req.status, 503);
    assert_string_equal(db_log, "BEER");
    buf_free(&req.out);
    pool_free(&req.pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_valid),       cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_replay_decision), cmocka_unit_test(test_passes_by),
        cmocka_unit_test(test_first_request),   cmocka_unit_test(test_refused_and_failed),
        cmocka_unit_test(test_replays),
    };
    return cmocka_run_group_tests_name("idempotency", tests, setup, NULL);
}
