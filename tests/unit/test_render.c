/* render (server/resource/render.c): rows written as JSON from a result, for each kind of caller:
 * nested objects (left out when every field in them is hidden, null when every value is), what a
 * partner and a trainer are kept from (a trainer's own record shown whole), records, arrays,
 * timestamps from PostgreSQL's text and what is not one, numbers, booleans, escapes, and whether
 * personal data was shown (for the audit). The result is made in memory: no database. */
#include "resource/internal.h"
#include "test_request.h"

#include <libpq-fe.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *const states[] = {"open", "shut down", NULL};
static const char *const roles[] = {"host", "guest", NULL};

static const struct record_member people[] = {
    {"personId", FIELD_UUID, NULL},
    {"role", FIELD_ENUM, roles},
    {NULL, 0, NULL},
};

static const struct field fields[] = {
    {.name = "name", .column = "name", .type = FIELD_TEXT, .flags = FIELD_REQUIRED},
    {.name = "contact.name", .column = "contact_name", .type = FIELD_TEXT, .flags = FIELD_PERSONAL},
    {.name = "contact.email",
     .column = "contact_email",
     .type = FIELD_EMAIL,
     .flags = FIELD_PERSONAL},
    {.name = "quote.amount", .column = "quote_amount", .type = FIELD_INT, .flags = FIELD_INTERNAL},
    {.name = "quote.note", .column = "quote_note", .type = FIELD_TEXT, .flags = FIELD_INTERNAL},
    {.name = "open", .column = "is_open", .type = FIELD_BOOL},
    {.name = "tags", .column = "tags", .type = FIELD_ENUM_ARRAY, .values = states},
    {.name = "since", .column = "since", .type = FIELD_TIMESTAMP},
    {.name = "people",
     .column = "people",
     .type = FIELD_RECORDS,
     .flags = FIELD_READONLY,
     .members = people},
    {.name = "count", .column = "count", .type = FIELD_INT},
};

#define N_FIELDS  (sizeof fields / sizeof *fields)
#define N_COLUMNS (N_FIELDS + 4)

static struct resource places = {
    .name = "place",
    .table = "places",
    .path = "/v1/places",
    .fields = fields,
    .n_fields = N_FIELDS,
    .methods = RESOURCE_GET,
    .read_roles = ROLES_READ | ROLE_TRAINER,
};

/* The same fields, but its rows are trainers: a trainer sees their own row whole. */
static struct resource coaches = {
    .name = "coach",
    .table = "coaches",
    .path = "/v1/coaches",
    .fields = fields,
    .n_fields = N_FIELDS,
    .trainer_self = true,
    .methods = RESOURCE_GET,
    .read_roles = ROLES_READ | ROLE_TRAINER,
};

/* Rows of N_COLUMNS values each (NULL: SQL NULL): id, the fields, version, created_at,
 * updated_at. */
static const char *const rows[][N_COLUMNS] = {
    {"11111111-1111-4111-8111-111111111111", "Zaltbommel \"Noord\"\n\x01", "Anne de Vries",
     "anne@example.nl", "1400000", NULL, "t", "{open,\"shut down\"}", "2025-03-01 09:30:00.123+00",
     "22222222-2222-4222-8222-222222222222 host;33333333-3333-4333-8333-333333333333 guest", "12",
     "3", "2025-03-01 09:30:00+00", "2025-03-02 10:00:00.5+00"},
    {"44444444-4444-4444-8444-444444444444", "Fryslân", NULL, NULL, NULL, NULL, "f", "{}",
     "infinity", "", NULL, "1", "2025-03-01 09:30:00.123456+00", "2025-03-01 09:30:00.123456+00"},
    {"55555555-5555-4555-8555-555555555555", "", NULL, "x@example.nl", NULL, "a note", "t",
     "{open}", NULL, "66666666-6666-4666-8666-666666666666 guest", "0", "7",
     "2024-12-31 23:59:59+00", "2024-12-31 23:59:59.999999+00"},
};
#define N_ROWS (int)(sizeof rows / sizeof *rows)

static PGresult *result(void)
{
    PGresult *pg = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc attrs[N_COLUMNS];
    for (size_t c = 0; c < N_COLUMNS; c++)
        attrs[c] = (PGresAttDesc){
            .name = (char *)(uintptr_t) "column", .typid = 25, .typlen = -1, .atttypmod = -1};
    assert_true(PQsetResultAttrs(pg, (int)N_COLUMNS, attrs));
    for (int r = 0; r < N_ROWS; r++)
        for (int c = 0; c < (int)N_COLUMNS; c++) {
            const char *v = rows[r][c];
            assert_true(PQsetvalue(pg, r, c, (char *)(uintptr_t)v, v ? (int)strlen(v) : -1));
        }
    return pg;
}

static int setup(void **state)
{
    (void)state;
    resource_register(&places);
    resource_register(&coaches);
    return 0;
}

static char path[] = "/v1/places";

/* Renders every row as the caller (role, trainer id) sees it: a JSON array. */
static void render(const struct resource *res, unsigned role, const char *trainer_id,
                   const char *want, bool personal_shown)
{
    PGresult *pg = result();
    struct db_result r = {.res = pg};
    struct request *req = test_request(path);
    req->who.role = role;
    if (trainer_id)
        snprintf(req->who.trainer_id, sizeof req->who.trainer_id, "%s", trainer_id);
    jsonw_array_begin(&req->w);
    for (int i = 0; i < N_ROWS; i++)
        resource_render(req, res, &r, i);
    jsonw_array_end(&req->w);
    assert_true(jsonw_finished(&req->w));
    if (strcmp(req->out.data, want) != 0)
        fail_msg("role %u: wrote\n%s\nwant\n%s", role, req->out.data, want);
    assert_int_equal(req->personal_shown, personal_shown);
    test_request_free(req);
    PQclear(pg);
}

#define ROW0_HEAD                                                                                  \
    "{\"id\":\"11111111-1111-4111-8111-111111111111\",\"name\":\"Zaltbommel "                      \
    "\\\"Noord\\\"\\n\\u0001\","
#define ROW0_CONTACT "\"contact\":{\"name\":\"Anne de Vries\",\"email\":\"anne@example.nl\"},"
#define ROW0_QUOTE   "\"quote\":{\"amount\":1400000,\"note\":null},"
#define ROW0_TAIL                                                                                  \
    "\"open\":true,\"tags\":[\"open\",\"shut down\"],\"since\":\"2025-03-01T09:30:00.123Z\","      \
    "\"people\":[{\"personId\":\"22222222-2222-4222-8222-222222222222\",\"role\":\"host\"},"       \
    "{\"personId\":\"33333333-3333-4333-8333-333333333333\",\"role\":\"guest\"}],\"count\":12,"    \
    "\"version\":3,\"createdAt\":\"2025-03-01T09:30:00Z\",\"updatedAt\":\"2025-03-02T10:00:00."    \
    "5Z\"}"
#define ROW1_HEAD    "{\"id\":\"44444444-4444-4444-8444-444444444444\",\"name\":\"Fryslân\","
#define ROW1_CONTACT "\"contact\":null,"
#define ROW1_QUOTE   "\"quote\":null,"
#define ROW1_TAIL                                                                                  \
    "\"open\":false,\"tags\":[],\"since\":\"infinity\",\"people\":[],\"count\":null,\"version\":"  \
    "1,"                                                                                           \
    "\"createdAt\":\"2025-03-01T09:30:00.123456Z\",\"updatedAt\":\"2025-03-01T09:30:00.123456Z\"}"
#define ROW2_HEAD    "{\"id\":\"55555555-5555-4555-8555-555555555555\",\"name\":\"\","
#define ROW2_CONTACT "\"contact\":{\"name\":null,\"email\":\"x@example.nl\"},"
#define ROW2_QUOTE   "\"quote\":{\"amount\":null,\"note\":\"a note\"},"
#define ROW2_TAIL                                                                                  \
    "\"open\":true,\"tags\":[\"open\"],\"since\":null,"                                            \
    "\"people\":[{\"personId\":\"66666666-6666-4666-8666-666666666666\",\"role\":\"guest\"}],"     \
    "\"count\":0,\"version\":7,\"createdAt\":\"2024-12-31T23:59:59Z\","                            \
    "\"updatedAt\":\"2024-12-31T23:59:59.999999Z\"}"

/* Staff and administrators see everything; nested objects with no value are null. */
static void test_staff(void **state)
{
    (void)state;
    static const char want[] = "[" ROW0_HEAD ROW0_CONTACT ROW0_QUOTE ROW0_TAIL
                               "," ROW1_HEAD ROW1_CONTACT ROW1_QUOTE ROW1_TAIL
                               "," ROW2_HEAD ROW2_CONTACT ROW2_QUOTE ROW2_TAIL "]";
    render(&places, ROLE_STAFF, NULL, want, true);
    render(&places, ROLE_ADMIN, NULL, want, true);
    render(&coaches, ROLE_ADMIN, NULL, want, true);
}

/* A partner is kept from personal and internal data: the objects of only such fields go. */
static void test_partner(void **state)
{
    (void)state;
    static const char want[] =
        "[" ROW0_HEAD ROW0_TAIL "," ROW1_HEAD ROW1_TAIL "," ROW2_HEAD ROW2_TAIL "]";
    render(&places, ROLE_PARTNER, NULL, want, false);
    render(&coaches, ROLE_PARTNER, NULL, want, false);
}

/* A trainer is kept from internal data, and from personal data but in their own trainer
 * record. */
static void test_trainer(void **state)
{
    (void)state;
    static const char others[] =
        "[" ROW0_HEAD ROW0_TAIL "," ROW1_HEAD ROW1_TAIL "," ROW2_HEAD ROW2_TAIL "]";
    render(&places, ROLE_TRAINER, "11111111-1111-4111-8111-111111111111", others, false);
    render(&coaches, ROLE_TRAINER, "99999999-9999-4999-8999-999999999999", others, false);
    static const char own_first[] =
        "[" ROW0_HEAD ROW0_CONTACT ROW0_TAIL "," ROW1_HEAD ROW1_TAIL "," ROW2_HEAD ROW2_TAIL "]";
    render(&coaches, ROLE_TRAINER, "11111111-1111-4111-8111-111111111111", own_first, true);
    static const char own_last[] =
        "[" ROW0_HEAD ROW0_TAIL "," ROW1_HEAD ROW1_TAIL "," ROW2_HEAD ROW2_CONTACT ROW2_TAIL "]";
    render(&coaches, ROLE_TRAINER, "55555555-5555-4555-8555-555555555555", own_last, true);
}

/* The masks made at registration agree with resource_hidden for every role and field, in a
 * trainer's own row and in the others'. */
static void test_masks_agree(void **state)
{
    (void)state;
    static const unsigned all_roles[] = {ROLE_PUBLIC, ROLE_PARTNER, ROLE_STAFF, ROLE_ADMIN,
                                         ROLE_TRAINER};
    const struct resource *const resources[] = {&places, &coaches};
    for (size_t k = 0; k < 2; k++)
        for (size_t r = 0; r < sizeof all_roles / sizeof *all_roles; r++) {
            struct request *req = test_request(path);
            req->who.role = all_roles[r];
            strcpy(req->who.trainer_id, "11111111-1111-4111-8111-111111111111");
            const struct resource_render_plan *plan = &resources[k]->sql->render;
            int bit = __builtin_ctz(all_roles[r]);
            for (size_t i = 0; i < N_FIELDS; i++) {
                const struct field *f = &fields[i];
                bool own = resource_hidden(req, resources[k], f, req->who.trainer_id);
                bool other =
                    resource_hidden(req, resources[k], f, "22222222-2222-4222-8222-222222222222");
                assert_int_equal(own, (plan->hidden[bit] >> i) & 1);
                assert_int_equal(other,
                                 ((plan->hidden[bit] | plan->hidden_from_others[bit]) >> i) & 1);
            }
            test_request_free(req);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_staff),
        cmocka_unit_test(test_partner),
        cmocka_unit_test(test_trainer),
        cmocka_unit_test(test_masks_agree),
    };
    return cmocka_run_group_tests_name("render", tests, setup, NULL);
}
