/* resource bodies (server/resource/body.c): each field type's table of values taken and refused
 * (with the invalidParams code a client sees), the flags' rules (required, nullable, read-only,
 * immutable, set by a patch only, the parent in the path), nested objects, and a body with
 * several faults reported all at once. A resource of every kind of field is registered here
 * without routes; no database is involved. */
#include "resource.h"
#include "resource/internal.h"
#include "test_request.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *const kinds[] = {"a", "b", NULL};
static const char *const tag_values[] = {"x", "y", "z", NULL};
static const char *const link_roles[] = {"host", "guest", NULL};
static const struct record_member link_members[] = {
    {"targetId", FIELD_UUID, NULL}, {"role", FIELD_ENUM, link_roles}, {NULL, 0, NULL}};
static const char *const replace_links[] = {"SELECT $1, $2", NULL};

static const struct field fields[] = {
    {.name = "title", .column = "title", .type = FIELD_TEXT, .flags = FIELD_REQUIRED, .max = 5},
    {.name = "kind",
     .column = "kind",
     .type = FIELD_ENUM,
     .flags = FIELD_NULLABLE,
     .values = kinds},
    {.name = "tags",
     .column = "tags",
     .type = FIELD_ENUM_ARRAY,
     .min = 1,
     .values = tag_values,
     .fallback = "{x}"},
    {.name = "active", .column = "active", .type = FIELD_BOOL, .fallback = "false"},
    {.name = "count", .column = "count", .type = FIELD_INT, .flags = FIELD_NULLABLE, .max = 10},
    {.name = "day", .column = "day", .type = FIELD_DATE, .flags = FIELD_NULLABLE},
    {.name = "at", .column = "at", .type = FIELD_TIMESTAMP, .flags = FIELD_NULLABLE},
    {.name = "ref", .column = "ref", .type = FIELD_UUID, .flags = FIELD_NULLABLE},
    {.name = "mail", .column = "mail", .type = FIELD_EMAIL, .flags = FIELD_NULLABLE, .max = 254},
    {.name = "site", .column = "site", .type = FIELD_URL, .flags = FIELD_NULLABLE, .max = 100},
    {.name = "phone", .column = "phone", .type = FIELD_PHONE, .flags = FIELD_NULLABLE, .max = 40},
    {.name = "code",
     .column = "code",
     .type = FIELD_TEXT,
     .flags = FIELD_NULLABLE,
     .pattern = "^GM[0-9]{4}$",
     .hint = "must be a CBS code"},
    {.name = "secret", .column = "secret", .type = FIELD_TEXT, .flags = FIELD_READONLY},
    {.name = "origin", .column = "origin", .type = FIELD_TEXT, .flags = FIELD_IMMUTABLE},
    {.name = "status",
     .column = "status",
     .type = FIELD_ENUM,
     .flags = FIELD_NO_CREATE,
     .values = kinds},
    {.name = "contact.name", .column = "contact_name", .type = FIELD_TEXT, .flags = FIELD_NULLABLE},
    {.name = "contact.email",
     .column = "contact_email",
     .type = FIELD_EMAIL,
     .flags = FIELD_NULLABLE},
    {.name = "links",
     .column = "links",
     .type = FIELD_RECORDS,
     .members = link_members,
     .replace = replace_links},
};

static size_t title_index, links_index;
static const struct field_ref refs[] = {
    {"title", &title_index}, {"links", &links_index}, {NULL, NULL}};

static struct resource things = {
    .name = "thing",
    .table = "things",
    .path = "/v1/things",
    .fields = fields,
    .n_fields = sizeof fields / sizeof *fields,
    .field_refs = refs,
};

static int setup(void **state)
{
    (void)state;
    resource_register(&things);
    return 0;
}

struct outcome {
    struct request *req;
    struct resource_values v;
    bool ok;
};

/* Reads body (JSON text) as a create or a patch. */
static struct outcome *read_body(const char *body, bool create)
{
    struct outcome *o = calloc(1, sizeof *o);
    o->req = test_request(NULL);
    o->req->json = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(o->req->json);
    o->ok = resource_read_body(o->req, &things, create, &o->v);
    return o;
}

static void done(struct outcome *o)
{
    test_request_free(o->req);
    free(o);
}

static size_t index_of(const char *name)
{
    return resource_field(&things, name);
}

/* One member's value in a patch: NULL code means taken (as stored, when stored is given). */
struct case_ {
    const char *field;
    const char *json;
    const char *code;
    const char *stored;
};

static void run_cases(const struct case_ *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"%s\": %s}", cases[i].field, cases[i].json);
        struct outcome *o = read_body(body, false);
        if (!cases[i].code) {
            if (!o->ok)
                fail_msg("%s refused: %s", body, o->req->invalid[0].reason);
            size_t f = index_of(cases[i].field);
            assert_true(o->v.given[f]);
            if (cases[i].stored)
                assert_string_equal(o->v.value[f], cases[i].stored);
        } else {
            if (o->ok)
                fail_msg("%s taken", body);
            assert_int_equal(o->req->status, 400);
            assert_int_equal(o->req->n_invalid, 1);
            const char *code = test_invalid_code(o->req, cases[i].field);
            if (!code || strcmp(code, cases[i].code) != 0)
                fail_msg("%s: code %s, not %s", body, code ? code : "(none)", cases[i].code);
        }
        done(o);
    }
}

#define RUN(cases) run_cases(cases, sizeof cases / sizeof *cases)

static void text_types(void **state)
{
    (void)state;
    static const struct case_ cases[] = {
        {"title", "\"abc\"", NULL, "abc"},
        {"title", "\"ëëëëë\"", NULL, NULL}, /* characters, not bytes */
        {"title", "\"abcdef\"", "maxLength", NULL},
        {"title", "\"\"", "minLength", NULL},
        {"title", "5", "type", NULL},
        {"title", "null", "required", NULL},
        {"kind", "\"a\"", NULL, "a"},
        {"kind", "\"c\"", "enum", NULL},
        {"kind", "null", NULL, NULL},
        {"day", "\"2025-02-28\"", NULL, NULL},
        {"day", "\"2025-02-30\"", "format", NULL},
        {"day", "\"2025-2-3\"", "format", NULL},
        {"at", "\"2025-03-01T09:30:00Z\"", NULL, NULL},
        {"at", "\"2025-03-01T09:30:00+01:00\"", NULL, NULL},
        {"at", "\"2025-03-01 09:30\"", "format", NULL},
        {"ref", "\"0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13\"", NULL, NULL},
        {"ref", "\"0b1e6f8c\"", "format", NULL},
        {"mail", "\"a@example.nl\"", NULL, NULL},
        {"mail", "\"not an address\"", "format", NULL},
        {"site", "\"https://example.nl/x\"", NULL, NULL},
        {"site", "\"ftp://example.nl\"", "format", NULL},
        {"site", "\"/relative\"", "format", NULL},
        {"phone", "\"+31 (0)20-123 4567\"", NULL, NULL},
        {"phone", "\"12345\"", "pattern", NULL},
        {"phone", "\"call me\"", "pattern", NULL},
        {"code", "\"GM0297\"", NULL, NULL},
        {"code", "\"GM297\"", "pattern", NULL},
        {"code", "null", NULL, NULL},
    };
    RUN(cases);
}

static void other_types(void **state)
{
    (void)state;
    static const struct case_ cases[] = {
        {"active", "true", NULL, "true"},
        {"active", "false", NULL, "false"},
        {"active", "\"true\"", "type", NULL},
        {"active", "null", "type", NULL},
        {"count", "0", NULL, "0"},
        {"count", "10", NULL, "10"},
        {"count", "11", "maximum", NULL},
        {"count", "-1", "minimum", NULL},
        {"count", "1.5", "type", NULL},
        {"count", "\"3\"", "type", NULL},
        {"count", "null", NULL, NULL},
        {"tags", "[\"x\", \"z\"]", NULL, "{\"x\",\"z\"}"},
        {"tags", "[]", "minLength", NULL},
        {"tags", "[\"x\", \"x\"]", "enum", NULL},
        {"tags", "[\"w\"]", "enum", NULL},
        {"tags", "[1]", "type", NULL},
        {"tags", "\"x\"", "type", NULL},
        {"links", "[]", NULL, "[]"},
        {"links", "[{\"targetId\": \"0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13\", \"role\": \"host\"}]",
         NULL, NULL},
        {"links", "{}", "type", NULL},
    };
    RUN(cases);
}

/* Records are checked member by member; the faults are named by the item. */
static void records(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *code;
    } cases[] = {
        {"[1]", "type"},
        {"[{\"role\": \"host\"}]", "required"},
        {"[{\"targetId\": 5, \"role\": \"host\"}]", "type"},
        {"[{\"targetId\": \"x\", \"role\": \"host\"}]", "format"},
        {"[{\"targetId\": \"0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13\", \"role\": \"boss\"}]", "enum"},
        {"[{\"targetId\": \"0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13\", \"role\": \"host\", "
         "\"extra\": \"1\"}]",
         "unknown"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"links\": %s}", cases[i].json);
        struct outcome *o = read_body(body, false);
        assert_false(o->ok);
        assert_non_null(test_invalid_code(o->req, "links[0]"));
        assert_string_equal(test_invalid_code(o->req, "links[0]"), cases[i].code);
        done(o);
    }
    /* The first member identifies a record: twice is refused, in any case of letters. */
    struct outcome *o = read_body("{\"links\": ["
                                  "{\"targetId\": \"0b1e6f8c-3a52-4c1d-9f7e-2d4b6a8c0e13\", "
                                  "\"role\": \"host\"},"
                                  "{\"targetId\": \"0B1E6F8C-3A52-4C1D-9F7E-2D4B6A8C0E13\", "
                                  "\"role\": \"guest\"}]}",
                                  false);
    assert_false(o->ok);
    assert_string_equal(test_invalid_code(o->req, "links[1]"), "unknown");
    done(o);
}

static void flags(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        bool create;
        const char *name;
        const char *code;
    } cases[] = {
        {"{\"title\": \"a\", \"secret\": \"s\"}", true, "secret", "unknown"},
        {"{\"secret\": \"s\"}", false, "secret", "unknown"},
        {"{\"title\": \"a\", \"origin\": \"o\"}", true, NULL, NULL},
        {"{\"origin\": \"o\"}", false, "origin", "unknown"},
        {"{\"status\": \"a\"}", false, NULL, NULL},
        {"{\"title\": \"a\", \"status\": \"a\"}", true, "status", "unknown"},
        {"{\"id\": \"x\"}", false, "id", "unknown"},
        {"{\"version\": 3}", false, "version", "unknown"},
        {"{\"nothing\": 3}", false, "nothing", "unknown"},
        {"{}", true, "title", "required"},
        {"{}", false, NULL, NULL},
        {"{\"contact\": null}", false, NULL, NULL},
        {"{\"contact\": 3}", false, "contact", "type"},
        {"{\"contact\": {\"email\": \"bad\"}}", false, "contact.email", "format"},
        {"{\"contact\": {\"fax\": \"1\"}}", false, "contact.fax", "unknown"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct outcome *o = read_body(cases[i].body, cases[i].create);
        if (!cases[i].name) {
            if (!o->ok)
                fail_msg("%s refused: %s %s", cases[i].body, o->req->invalid[0].name,
                         o->req->invalid[0].reason);
        } else {
            if (o->ok)
                fail_msg("%s taken", cases[i].body);
            const char *code = test_invalid_code(o->req, cases[i].name);
            if (!code || strcmp(code, cases[i].code) != 0)
                fail_msg("%s: %s has %s, not %s", cases[i].body, cases[i].name,
                         code ? code : "(none)", cases[i].code);
        }
        done(o);
    }
}

/* A create fills what it leaves out: fallbacks, and null for optional fields; a patch only
 * what it gives. `contact: null` clears every member of the object. */
static void defaults(void **state)
{
    (void)state;
    struct outcome *o = read_body("{\"title\": \"a\"}", true);
    assert_true(o->ok);
    assert_true(o->v.given[index_of("active")]);
    assert_string_equal(o->v.value[index_of("active")], "false");
    assert_string_equal(o->v.value[index_of("tags")], "{x}");
    assert_true(o->v.given[index_of("kind")]);
    assert_null(o->v.value[index_of("kind")]);
    assert_false(o->v.given[links_index]); /* records without a fallback: left alone */
    assert_string_equal(o->v.value[title_index], "a");
    done(o);

    o = read_body("{\"kind\": \"b\"}", false);
    assert_true(o->ok);
    assert_false(o->v.given[index_of("active")]);
    assert_false(o->v.given[title_index]);
    done(o);

    o = read_body("{\"contact\": null}", false);
    assert_true(o->ok);
    assert_true(o->v.given[index_of("contact.name")]);
    assert_true(o->v.given[index_of("contact.email")]);
    assert_null(o->v.value[index_of("contact.email")]);
    done(o);
}

/* Every fault at once, each named once: a required field that was given but invalid is not
 * also reported as missing. */
static void several_at_once(void **state)
{
    (void)state;
    struct outcome *o = read_body("{\"title\": \"too long\", \"count\": 99, \"kind\": \"c\", "
                                  "\"secret\": \"s\", \"nothing\": 1}",
                                  true);
    assert_false(o->ok);
    assert_int_equal(o->req->n_invalid, 5);
    assert_string_equal(test_invalid_code(o->req, "title"), "maxLength");
    assert_string_equal(test_invalid_code(o->req, "count"), "maximum");
    assert_string_equal(test_invalid_code(o->req, "kind"), "enum");
    assert_string_equal(test_invalid_code(o->req, "secret"), "unknown");
    assert_string_equal(test_invalid_code(o->req, "nothing"), "unknown");
    assert_int_equal(o->req->status, 400);
    assert_non_null(strstr(o->req->out.data, "5 invalid fields"));
    done(o);

    o = read_body("[1, 2]", true);
    assert_false(o->ok);
    assert_int_equal(o->req->status, 400);
    assert_int_equal(o->req->n_invalid, 0);
    done(o);
}

/* field_refs are resolved at registration. */
static void refs_resolved(void **state)
{
    (void)state;
    assert_int_equal(title_index, 0);
    assert_int_equal(links_index, index_of("links"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_types),    cmocka_unit_test(other_types),
        cmocka_unit_test(records),       cmocka_unit_test(flags),
        cmocka_unit_test(defaults),      cmocka_unit_test(several_at_once),
        cmocka_unit_test(refs_resolved),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
