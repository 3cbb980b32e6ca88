/* body: a request body checked against a resource's fields, into the values a create or patch
 * writes. Every field type's rules live in resource_check_value(), which list filters reuse for
 * their values; the flags (required, nullable, read-only, immutable, set only by a patch) are
 * applied in take_member() and resource_read_body(). Every invalid member is reported, not just
 * the first. */
#include "internal.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool in_values(const char *const *values, const char *s)
{
    for (; *values; values++)
        if (strcmp(*values, s) == 0)
            return true;
    return false;
}

/* Appends "a, b, c" of a NULL-terminated list. */
static void list_values(struct buf *b, const char *const *values)
{
    for (const char *const *v = values; *v; v++)
        buf_printf(b, "%s%s", v == values ? "" : ", ", *v);
}

/* Records that a value is not one of values; subject ("item 2 ", "role ") begins the reason. */
static void invalid_enum(struct request *req, const char *name, const char *subject,
                         const char *const *values)
{
    struct buf allowed = {0};
    list_values(&allowed, values);
    http_invalid(req, name, "enum", "%smust be one of: %s", subject, allowed.data);
    buf_free(&allowed);
}

bool resource_check_records(struct request *req, const char *name, json_t *value,
                            const struct record_member *members)
{
    if (!json_is_array(value)) {
        http_invalid(req, name, "type", "must be an array");
        return false;
    }
    int before = req->n_invalid;
    size_t i;
    json_t *item;
    json_array_foreach(value, i, item)
    {
        char at[112];
        snprintf(at, sizeof at, "%s[%zu]", name, i);
        if (!json_is_object(item)) {
            http_invalid(req, at, "type", "must be an object");
            continue;
        }
        const char *key;
        json_t *member;
        json_object_foreach(item, key, member)
        {
            bool known = false;
            for (const struct record_member *m = members; m->name; m++)
                known |= strcmp(m->name, key) == 0;
            if (!known)
                http_invalid(req, at, "unknown", "has no member %s", key);
        }
        for (const struct record_member *m = members; m->name; m++) {
            json_t *got = json_object_get(item, m->name);
            const char *text = json_string_value(got);
            if (!got) {
                http_invalid(req, at, "required", "needs %s", m->name);
            } else if (!text) {
                http_invalid(req, at, "type", "%s must be a string", m->name);
            } else if (m->type == FIELD_UUID && !router_is_uuid(text, strlen(text))) {
                http_invalid(req, at, "format", "%s must be a UUID", m->name);
            } else if (m->type == FIELD_ENUM && !in_values(m->values, text)) {
                char subject[80];
                snprintf(subject, sizeof subject, "%s ", m->name);
                invalid_enum(req, at, subject, m->values);
            }
        }
        /* The first member identifies a record: it may appear once. */
        const char *id = json_string_value(json_object_get(item, members[0].name));
        for (size_t k = 0; id && k < i; k++) {
            const char *other =
                json_string_value(json_object_get(json_array_get(value, k), members[0].name));
            if (other && strcasecmp(other, id) == 0) {
                http_invalid(req, at, "unknown", "repeats %s %s", members[0].name, id);
                break;
            }
        }
    }
    return req->n_invalid == before;
}

/* FIELD_INT: a whole number within min and max, as text in v's scratch. */
static bool check_int(struct request *req, const struct field *f, size_t index, json_t *value,
                      struct resource_values *v, const char **out)
{
    const char *name = f->name;
    if (!json_is_integer(value)) {
        http_invalid(req, name, "type", "must be a whole number");
        return false;
    }
    json_int_t n = json_integer_value(value);
    if (n < f->min) {
        http_invalid(req, name, "minimum", "must be at least %ld", f->min);
        return false;
    }
    if (f->max && n > f->max) {
        http_invalid(req, name, "maximum", "must be at most %ld", f->max);
        return false;
    }
    snprintf(v->scratch[index], sizeof v->scratch[index], "%lld", (long long)n);
    *out = v->scratch[index];
    return true;
}

/* FIELD_ENUM_ARRAY: distinct strings, each one of values (or matching the pattern), at least
 * min of them; stored as a PostgreSQL array literal in the request's pool. */
static bool check_array(struct request *req, const struct resource *res, size_t index,
                        json_t *value, const char **out)
{
    const struct field *f = &res->fields[index];
    const char *name = f->name;
    if (!json_is_array(value)) {
        http_invalid(req, name, "type", "must be an array");
        return false;
    }
    struct buf b = {0};
    buf_putc(&b, '{');
    size_t i;
    json_t *item;
    bool ok = true;
    json_array_foreach(value, i, item)
    {
        const char *s = json_string_value(item);
        if (!s) {
            http_invalid(req, name, "type", "item %zu must be a string", i);
            ok = false;
            break;
        }
        if (f->values && !in_values(f->values, s)) {
            char subject[32];
            snprintf(subject, sizeof subject, "item %zu ", i);
            invalid_enum(req, name, subject, f->values);
            ok = false;
            break;
        }
        if (!f->values && regexec(&res->sql->pattern[index], s, 0, NULL, 0)) {
            http_invalid(req, name, "pattern", "item %zu %s", i,
                         f->hint ? f->hint : "has the wrong form");
            ok = false;
            break;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(json_string_value(json_array_get(value, k)), s) == 0) {
                http_invalid(req, name, "enum", "lists %s more than once", s);
                ok = false;
            }
        if (!ok)
            break;
        if (i)
            buf_putc(&b, ',');
        buf_put_array_element(&b, s);
    }
    buf_putc(&b, '}');
    if (!ok || (f->min && json_array_size(value) < (size_t)f->min)) {
        if (ok)
            http_invalid(req, name, "minLength", "must have at least %ld item%s", f->min,
                         f->min == 1 ? "" : "s");
        buf_free(&b);
        return false;
    }
    *out = pool_strdup(&req->pool, b.data);
    buf_free(&b);
    return true;
}

/* The types given as JSON strings: enum words, dates, timestamps, UUIDs, and text (with its
 * length, its kind: e-mail, URL, phone, and its pattern). */
static bool check_string(struct request *req, const struct resource *res, size_t index,
                         json_t *value, const char **out)
{
    const struct field *f = &res->fields[index];
    const char *name = f->name;
    const char *s = json_string_value(value);
    if (!s) {
        http_invalid(req, name, "type", "must be a string");
        return false;
    }
    size_t chars = validate_chars(s);
    switch (f->type) {
    case FIELD_ENUM:
        if (!in_values(f->values, s)) {
            invalid_enum(req, name, "", f->values);
            return false;
        }
        break;
    case FIELD_DATE:
        if (strlen(s) != 10 || !validate_date(s)) {
            http_invalid(req, name, "format", "must be a date, YYYY-MM-DD");
            return false;
        }
        break;
    case FIELD_TIMESTAMP:
        if (!validate_timestamp(s)) {
            http_invalid(req, name, "format",
                         "must be an RFC 3339 timestamp with an offset, e.g. 2025-03-01T09:30:00Z");
            return false;
        }
        break;
    case FIELD_UUID:
        if (!router_is_uuid(s, strlen(s))) {
            http_invalid(req, name, "format", "must be a UUID");
            return false;
        }
        break;
    default:
        if (chars < (size_t)(f->min ? f->min : (f->flags & FIELD_REQUIRED) ? 1 : 0)) {
            http_invalid(req, name, "minLength", "must have at least %ld character%s",
                         f->min ? f->min : 1, f->min > 1 ? "s" : "");
            return false;
        }
        if (f->max && chars > (size_t)f->max) {
            http_invalid(req, name, "maxLength", "must have at most %ld characters", f->max);
            return false;
        }
        if (f->type == FIELD_EMAIL && !validate_email(s)) {
            http_invalid(req, name, "format", "must be an e-mail address");
            return false;
        }
        if (f->type == FIELD_URL && !validate_url(s)) {
            http_invalid(req, name, "format", "must be an absolute http or https URL");
            return false;
        }
        if (f->type == FIELD_PHONE && !validate_phone(s)) {
            http_invalid(req, name, "pattern",
                         "must be a phone number: at least 6 digits, with spaces, +, -, ( and )");
            return false;
        }
        if (res->sql->has_pattern[index] && regexec(&res->sql->pattern[index], s, 0, NULL, 0)) {
            http_invalid(req, name, "pattern", "%s", f->hint ? f->hint : "has the wrong form");
            return false;
        }
        break;
    }
    *out = s;
    return true;
}

/* value as compact JSON text, in the request's pool. */
static const char *dumped(struct request *req, const json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT);
    if (!text)
        abort(); /* only out of memory: fatal, as everywhere (buf.h) */
    const char *copy = pool_strdup(&req->pool, text);
    free(text);
    return copy;
}

bool resource_check_value(struct request *req, const struct resource *res, size_t index,
                          json_t *value, struct resource_values *v, const char **out)
{
    const struct field *f = &res->fields[index];
    const char *name = f->name;
    *out = NULL;
    if (json_is_null(value)) {
        if (f->flags & FIELD_NULLABLE)
            return true;
        http_invalid(req, name, f->flags & FIELD_REQUIRED ? "required" : "type",
                     "must not be null");
        return false;
    }
    switch (f->type) {
    case FIELD_BOOL:
        if (!json_is_boolean(value)) {
            http_invalid(req, name, "type", "must be true or false");
            return false;
        }
        *out = json_is_true(value) ? "true" : "false";
        return true;
    case FIELD_INT: return check_int(req, f, index, value, v, out);
    case FIELD_ENUM_ARRAY: return check_array(req, res, index, value, out);
    case FIELD_RECORDS:
        if (!resource_check_records(req, name, value, f->members))
            return false;
        *out = dumped(req, value);
        return true;
    default: return check_string(req, res, index, value, out);
    }
}

static bool is_own_field(const char *name)
{
    return strcmp(name, "id") == 0 || strcmp(name, "version") == 0 ||
           strcmp(name, "createdAt") == 0 || strcmp(name, "updatedAt") == 0;
}

/* Takes one member of the body (or of a nested object, with prefix "contact."). */
static void take_member(struct request *req, const struct resource *res, bool create,
                        const char *prefix, const char *key, json_t *value,
                        struct resource_values *v)
{
    char name[128];
    snprintf(name, sizeof name, "%s%s", prefix, key);
    for (size_t i = 0; i < res->n_fields; i++) {
        const struct field *f = &res->fields[i];
        if (strcmp(f->name, name) != 0)
            continue;
        if (f->flags & FIELD_READONLY) {
            http_invalid(req, name, "unknown", "is read-only");
            return;
        }
        if (f->flags & FIELD_PARENT) {
            http_invalid(req, name, "unknown", "is given by the path");
            return;
        }
        if (create && (f->flags & FIELD_NO_CREATE)) {
            http_invalid(req, name, "unknown", "is set after creation, not with it");
            return;
        }
        if (!create && (f->flags & FIELD_IMMUTABLE)) {
            http_invalid(req, name, "unknown", "cannot be changed after creation");
            return;
        }
        if (f->write_roles && !(f->write_roles & req->who.role)) {
            http_invalid(req, name, "forbidden", "is not set by a %s",
                         auth_role_name(req->who.role));
            return;
        }
        const char *out;
        if (resource_check_value(req, res, i, value, v, &out)) {
            v->value[i] = out;
            v->given[i] = true;
        }
        return;
    }
    /* A nested object: "contact": {...} or "contact": null. */
    size_t n = strlen(name);
    bool group = false, all_nullable = true, writable = false;
    for (size_t i = 0; i < res->n_fields; i++) {
        const struct field *f = &res->fields[i];
        if (resource_group_len(f->name) == n && strncmp(f->name, name, n) == 0) {
            group = true;
            all_nullable &= (f->flags & FIELD_NULLABLE) != 0;
            writable |= !(f->flags & FIELD_READONLY);
        }
    }
    if (!group || prefix[0]) {
        if (prefix[0] == '\0' && is_own_field(name))
            http_invalid(req, name, "unknown", "is read-only");
        else
            http_invalid(req, name, "unknown", "is not a field of %s", res->name);
        return;
    }
    if (!writable) {
        http_invalid(req, name, "unknown", "is read-only");
        return;
    }
    if (json_is_null(value)) {
        if (!all_nullable) {
            http_invalid(req, name, "type", "must be an object");
            return;
        }
        for (size_t i = 0; i < res->n_fields; i++)
            if (resource_group_len(res->fields[i].name) == n &&
                strncmp(res->fields[i].name, name, n) == 0 &&
                !(res->fields[i].flags & FIELD_READONLY)) {
                v->value[i] = NULL;
                v->given[i] = true;
            }
        return;
    }
    if (!json_is_object(value)) {
        http_invalid(req, name, "type", "must be an object%s", all_nullable ? " or null" : "");
        return;
    }
    char nested[130];
    snprintf(nested, sizeof nested, "%s.", name);
    const char *k;
    json_t *member;
    json_object_foreach(value, k, member) take_member(req, res, create, nested, k, member, v);
}

bool resource_read_body(struct request *req, const struct resource *res, bool create,
                        struct resource_values *v)
{
    memset(v, 0, sizeof *v);
    if (!json_is_object(req->json)) {
        http_problem(req, 400, "The body must be a JSON object.");
        return false;
    }
    const char *key;
    json_t *value;
    json_object_foreach(req->json, key, value) take_member(req, res, create, "", key, value, v);
    if (create) {
        for (size_t i = 0; i < res->n_fields; i++) {
            const struct field *f = &res->fields[i];
            if (v->given[i] || (f->flags & (FIELD_READONLY | FIELD_PARENT)) ||
                (f->type == FIELD_RECORDS && !f->fallback))
                continue;
            bool named_invalid = false;
            for (int k = 0; k < req->n_invalid; k++)
                named_invalid |= strcmp(req->invalid[k].name, f->name) == 0;
            if (f->flags & FIELD_REQUIRED) {
                if (!named_invalid)
                    http_invalid(req, f->name, "required", "is required");
            } else {
                v->value[i] = f->fallback;
                v->given[i] = true;
            }
        }
    }
    if (req->n_invalid) {
        http_problem_invalid(req);
        return false;
    }
    return true;
}
