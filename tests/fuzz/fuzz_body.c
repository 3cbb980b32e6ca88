/* Body validation: the fuzz input is a request body. It is parsed as http.c does and validated
 * by resource_read_body() for every resource that takes POST (the route's context is its
 * resource: municipalities, API keys and the rest), as a create and as a merge patch. A body that
 * passes must have every required field; one that fails must have been answered 400 with a
 * well-formed problem document naming each field. */
#include "fuzz.h"

#include "api.h"
#include "buf.h"
#include "config.h"
#include "http.h"
#include "resource.h"
#include "router.h"

#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#define MAX_TARGETS 32

static struct {
    const struct route *route;
    const struct resource *res;
    char path[96];
} targets[MAX_TARGETS];
static size_t n_targets;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1); /* reproducible member order */
    static const struct config defaults = {.changes_retention_s = 60, .prune_interval_s = 60};
    api_register(&defaults);
    bool municipalities = false;
    for (size_t i = 0; i < router_count(); i++) {
        const struct route *r = router_at(i);
        if (r->method != HTTP_POST || !r->context || n_targets == MAX_TARGETS)
            continue;
        targets[n_targets].route = r;
        targets[n_targets].res = r->context;
        snprintf(targets[n_targets].path, sizeof targets[n_targets].path, "%s", r->pattern);
        municipalities |= strcmp(r->pattern, "/v1/municipalities") == 0;
        n_targets++;
    }
    FUZZ_CHECK(municipalities);
    return 0;
}

/* The problem document written for a refused body. */
static void check_problem(const struct request *req)
{
    FUZZ_CHECK(req->status == 400);
    FUZZ_CHECK(req->content_type && strcmp(req->content_type, "application/problem+json") == 0);
    FUZZ_CHECK(jsonw_finished(&req->w));
    json_error_t error;
    json_t *doc = json_loadb(req->out.data, req->out.len, JSON_REJECT_DUPLICATES, &error);
    if (!doc)
        fprintf(stderr, "problem is not JSON (%s): %.*s\n", error.text, (int)req->out.len,
                req->out.data);
    FUZZ_CHECK(doc != NULL);
    FUZZ_CHECK(json_is_object(doc));
    FUZZ_CHECK(json_integer_value(json_object_get(doc, "status")) == 400);
    FUZZ_CHECK(json_is_string(json_object_get(doc, "detail")));
    json_t *params = json_object_get(doc, "invalidParams");
    if (req->n_invalid == 0) {
        FUZZ_CHECK(params == NULL);
    } else {
        FUZZ_CHECK(json_is_array(params));
        FUZZ_CHECK(json_array_size(params) == (size_t)req->n_invalid);
        size_t i;
        json_t *p;
        json_array_foreach(params, i, p)
        {
            const char *name = json_string_value(json_object_get(p, "name"));
            FUZZ_CHECK(name != NULL);
            FUZZ_CHECK(strcmp(name, req->invalid[i].name) == 0);
            FUZZ_CHECK(json_is_string(json_object_get(p, "code")));
            FUZZ_CHECK(json_is_string(json_object_get(p, "reason")));
        }
    }
    json_decref(doc);
}

/* What a body that passed must hold. */
static void check_values(const struct resource *res, bool create, const struct resource_values *v)
{
    for (size_t i = 0; i < res->n_fields; i++) {
        const struct field *f = &res->fields[i];
        /* Never from a body: the server's own fields, the parent's id (the path gives it),
         * fields set after creation and, in a patch, fields fixed at creation. */
        if (f->flags & (FIELD_READONLY | FIELD_PARENT))
            FUZZ_CHECK(!v->given[i]);
        if (create && (f->flags & FIELD_NO_CREATE))
            FUZZ_CHECK(!v->given[i]);
        if (!create && (f->flags & FIELD_IMMUTABLE))
            FUZZ_CHECK(!v->given[i]);
        /* A create has every required field (record lists without a default aside). */
        if (create && (f->flags & FIELD_REQUIRED) &&
            !(f->flags & (FIELD_READONLY | FIELD_PARENT)) &&
            !(f->type == FIELD_RECORDS && !f->fallback))
            FUZZ_CHECK(v->given[i] && v->value[i]);
        if (v->given[i] && !v->value[i]) /* null: where allowed, or an optional field left out */
            FUZZ_CHECK((f->flags & FIELD_NULLABLE) || (create && !(f->flags & FIELD_REQUIRED)));
        if (!v->given[i] || !v->value[i])
            continue;
        const char *s = v->value[i];
        if (f->type == FIELD_ENUM) {
            bool found = false;
            for (const char *const *e = f->values; *e; e++)
                found |= strcmp(*e, s) == 0;
            FUZZ_CHECK(found);
        }
        if (f->type == FIELD_TEXT && f->max) {
            size_t chars = 0;
            for (const char *p = s; *p; p++)
                chars += ((unsigned char)*p & 0xC0) != 0x80;
            FUZZ_CHECK(chars <= (size_t)f->max);
        }
    }
}

static void validate(json_t *json, size_t t, bool create)
{
    struct request *req = xcalloc(1, sizeof *req);
    req->method = create ? HTTP_POST : HTTP_PATCH;
    req->method_name = create ? "POST" : "PATCH";
    req->path = targets[t].path;
    req->route = targets[t].route;
    req->json = json;
    jsonw_init(&req->w, &req->out);

    struct resource_values v;
    if (resource_read_body(req, targets[t].res, create, &v)) {
        FUZZ_CHECK(req->n_invalid == 0);
        FUZZ_CHECK(req->status == 0);
        FUZZ_CHECK(req->out.len == 0);
        check_values(targets[t].res, create, &v);
    } else {
        check_problem(req);
    }

    pool_free(&req->pool);
    buf_free(&req->out);
    free(req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *json = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json)
        return 0;
    for (size_t t = 0; t < n_targets; t++) {
        validate(json, t, true);
        validate(json, t, false);
    }
    json_decref(json);
    return 0;
}
