/* schema: the JSON Schema of each registered resource, from its description (schema.h).
 *
 * Why openapi.yaml stays hand-written, held to this output by a test, rather than generated
 * from it: the document is read by people as much as by tools. Its schemas carry descriptions
 * and examples that no field table holds, share parts by $ref (Contact, Phone, the enums) and
 * keep an order and wording that reviewers read in a diff; a generator would either lose that
 * or need a merge step that knows which YAML lines are whose. A test that compares every field
 * of every read, create and patch schema and every list parameter with `werklabd schema`
 * (tests/api/test_openapi_fields.py) catches drift either way, names the field, and leaves the
 * fix where it belongs: the document when it tells less or other than the code, the
 * description when the code is wrong.
 *
 * What is printed is what the code enforces, not what the description's comments say: the
 * rules of check_value() (body.c) for values a body or a filter gives, the rendering's for
 * reads. So a required text field has minLength 1 even with min 0, a phone number at least 6
 * characters, an integer its minimum even when it is 0 (check_value refuses below min). */
#include "schema.h"

#include "internal.h"
#include "router.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* validate_phone() as a pattern: digits, spaces, + - ( ), and at least 6 digits. */
#define PHONE_PATTERN   "^[ +()-]*([0-9][ +()-]*){6,}$"
#define PHONE_MIN_CHARS 6
/* validate_url() takes absolute http and https URLs only. */
#define URL_PATTERN "^https?://"

enum shape { SHAPE_READ, SHAPE_CREATE, SHAPE_PATCH };

static json_t *string_array(const char *const *values)
{
    json_t *a = json_array();
    for (; *values; values++)
        json_array_append_new(a, json_string(*values));
    return a;
}

static void set(json_t *o, const char *key, json_t *value)
{
    json_object_set_new(o, key, value);
}

/* The fewest characters check_value() takes for a text field. */
static long min_chars(const struct field *f)
{
    long min = f->min ? f->min : (f->flags & FIELD_REQUIRED) ? 1 : 0;
    if (f->type == FIELD_PHONE && min < PHONE_MIN_CHARS)
        min = PHONE_MIN_CHARS;
    return min;
}

/* One member of an ENUM_ARRAY. */
static json_t *element_schema(const struct field *f)
{
    json_t *s = json_pack("{s:s}", "type", "string");
    if (f->values)
        set(s, "enum", string_array(f->values));
    else
        set(s, "pattern", json_string(f->pattern));
    return s;
}

static json_t *records_schema(const struct record_member *members)
{
    json_t *props = json_object(), *required = json_array();
    for (const struct record_member *m = members; m->name; m++) {
        json_t *s = json_pack("{s:s}", "type", "string");
        if (m->type == FIELD_UUID)
            set(s, "format", json_string("uuid"));
        else
            set(s, "enum", string_array(m->values));
        set(props, m->name, s);
        json_array_append_new(required, json_string(m->name));
    }
    json_t *item = json_pack("{s:s, s:o, s:b, s:o}", "type", "object", "required", required,
                             "additionalProperties", 0, "properties", props);
    return json_pack("{s:s, s:o}", "type", "array", "items", item);
}

/* The rules of a value of f. checked: the value passed check_value() (anything a body or a
 * filter gives, and what a read shows of a writable field); else only what the description
 * states (a read-only field's value is the server's). */
static json_t *value_schema(const struct field *f, bool checked)
{
    json_t *s = json_object();
    switch (f->type) {
    case FIELD_TEXT:
    case FIELD_EMAIL:
    case FIELD_URL:
    case FIELD_PHONE: {
        set(s, "type", json_string("string"));
        if (f->type == FIELD_EMAIL)
            set(s, "format", json_string("email"));
        if (f->type == FIELD_URL)
            set(s, "format", json_string("uri"));
        long min = checked ? min_chars(f) : f->min;
        if (min > 0)
            set(s, "minLength", json_integer(min));
        if (f->max)
            set(s, "maxLength", json_integer(f->max));
        const char *pattern = f->type == FIELD_URL     ? URL_PATTERN
                              : f->type == FIELD_PHONE ? PHONE_PATTERN
                                                       : f->pattern;
        if (pattern)
            set(s, "pattern", json_string(pattern));
        break;
    }
    case FIELD_ENUM:
        set(s, "type", json_string("string"));
        set(s, "enum", string_array(f->values));
        break;
    case FIELD_ENUM_ARRAY:
        set(s, "type", json_string("array"));
        set(s, "uniqueItems", json_true());
        if (f->min)
            set(s, "minItems", json_integer(f->min));
        set(s, "items", element_schema(f));
        break;
    case FIELD_BOOL: set(s, "type", json_string("boolean")); break;
    case FIELD_INT:
        set(s, "type", json_string("integer"));
        if (checked || f->min || f->max) /* check_value: never below min, 0 or not */
            set(s, "minimum", json_integer(f->min));
        if (f->max)
            set(s, "maximum", json_integer(f->max));
        break;
    case FIELD_DATE:
        json_object_update_new(s, json_pack("{s:s, s:s}", "type", "string", "format", "date"));
        break;
    case FIELD_TIMESTAMP:
        json_object_update_new(s, json_pack("{s:s, s:s}", "type", "string", "format", "date-time"));
        break;
    case FIELD_UUID:
        json_object_update_new(s, json_pack("{s:s, s:s}", "type", "string", "format", "uuid"));
        break;
    case FIELD_RECORDS: json_object_update_new(s, records_schema(f->members)); break;
    }
    return s;
}

/* A stored fallback ("false", "10", "{}", "inquiry") as the JSON value it stands for. */
static json_t *fallback_value(const struct field *f)
{
    switch (f->type) {
    case FIELD_BOOL: return json_boolean(strcmp(f->fallback, "true") == 0);
    case FIELD_INT: return json_integer(strtol(f->fallback, NULL, 10));
    case FIELD_ENUM_ARRAY: {
        json_t *a = json_array();
        const char *p = f->fallback + (*f->fallback == '{');
        while (*p && *p != '}') {
            size_t n = strcspn(p, ",}");
            json_array_append_new(a, json_stringn(p, n));
            p += n + (p[n] == ',');
        }
        return a;
    }
    case FIELD_RECORDS: return json_loads(f->fallback, 0, NULL);
    default: return json_string(f->fallback);
    }
}

/* Whether a partner key may get a row of res: from a read, or as the answer to its write (a
 * route open to the public is open to every key). */
static bool partner_sees(const struct resource *res)
{
    unsigned roles = res->read_roles;
    if (res->methods & RESOURCE_CREATE)
        roles |= res->create_roles ? res->create_roles : res->write_roles;
    if (res->methods & RESOURCE_PATCH)
        roles |= res->write_roles;
    return (roles & (ROLE_PARTNER | ROLE_PUBLIC)) != 0;
}

/* Whether every answer showing a row of res has f (partner keys get no personal or internal
 * fields). */
static bool always_shown(const struct resource *res, const struct field *f)
{
    return !(partner_sees(res) && (f->flags & (FIELD_PERSONAL | FIELD_INTERNAL)));
}

static bool in_shape(const struct field *f, enum shape shape)
{
    switch (shape) {
    case SHAPE_READ: return true;
    case SHAPE_CREATE: return !(f->flags & (FIELD_READONLY | FIELD_PARENT | FIELD_NO_CREATE));
    case SHAPE_PATCH: return !(f->flags & (FIELD_READONLY | FIELD_PARENT | FIELD_IMMUTABLE));
    }
    return false;
}

static bool is_required(const struct resource *res, const struct field *f, enum shape shape)
{
    if (shape == SHAPE_READ)
        return always_shown(res, f);
    return shape == SHAPE_CREATE && (f->flags & FIELD_REQUIRED);
}

static json_t *field_schema(const struct field *f, enum shape shape)
{
    bool server_made = (f->flags & (FIELD_READONLY | FIELD_PARENT)) != 0;
    json_t *s = value_schema(f, !(f->flags & FIELD_READONLY));
    if (f->flags & FIELD_NULLABLE) {
        set(s, "nullable", json_true());
        json_t *values = json_object_get(s, "enum");
        if (values) /* OpenAPI 3.0.3: an enum that may be null lists null */
            json_array_append_new(values, json_null());
    }
    if (shape == SHAPE_READ && server_made)
        set(s, "readOnly", json_true());
    if (f->flags & FIELD_PERSONAL)
        set(s, "x-personal", json_true());
    /* What a create that leaves f out stores: its fallback; records left out are none. */
    if (shape == SHAPE_CREATE && f->fallback && !(f->flags & FIELD_REQUIRED))
        set(s, "default", fallback_value(f));
    else if (shape == SHAPE_CREATE && f->type == FIELD_RECORDS && !(f->flags & FIELD_REQUIRED))
        set(s, "default", json_array());
    return s;
}

/* An object schema of fields [from, to) of res, names cut after `skip` characters. Fills
 * *any_required when one of them is required. */
static json_t *object_schema(const struct resource *res, size_t from, size_t to, size_t skip,
                             enum shape shape, bool *any_required)
{
    json_t *o = json_pack("{s:s}", "type", "object");
    json_t *required = json_array(), *props = json_object();
    if (shape != SHAPE_READ)
        set(o, "additionalProperties", json_false());
    for (size_t i = from; i < to;) {
        const struct field *f = &res->fields[i];
        const char *name = f->name + skip;
        size_t g = resource_group_len(name);
        if (!g) {
            if (in_shape(f, shape)) {
                set(props, name, field_schema(f, shape));
                if (is_required(res, f, shape))
                    json_array_append_new(required, json_string(name));
            }
            i++;
            continue;
        }
        /* A nested object: the fields of one group stand together (resource_register). */
        size_t end = i;
        bool nullable = true, personal = true, read_only = true, any = false, group_required;
        while (end < to && strncmp(res->fields[end].name + skip, name, g + 1) == 0) {
            const struct field *m = &res->fields[end];
            nullable &= (m->flags & FIELD_NULLABLE) != 0;
            personal &= (m->flags & FIELD_PERSONAL) != 0;
            read_only &= (m->flags & FIELD_READONLY) != 0;
            any |= in_shape(m, shape);
            end++;
        }
        if (any) {
            json_t *nested = object_schema(res, i, end, skip + g + 1, shape, &group_required);
            if (nullable)
                set(nested, "nullable", json_true());
            if (shape == SHAPE_READ && read_only)
                set(nested, "readOnly", json_true());
            if (personal)
                set(nested, "x-personal", json_true());
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)g, name);
            set(props, key, nested);
            if (group_required)
                json_array_append_new(required, json_string(key));
        }
        i = end;
    }
    *any_required = json_array_size(required) > 0;
    if (*any_required)
        set(o, "required", required);
    else
        json_decref(required);
    set(o, "properties", props);
    return o;
}

static json_t *shape_schema(const struct resource *res, enum shape shape)
{
    bool any;
    json_t *o = object_schema(res, 0, res->n_fields, 0, shape, &any);
    if (shape != SHAPE_READ)
        return o;
    /* Every row has an id; and version, createdAt and updatedAt unless no_meta. */
    json_t *props = json_object(), *required = json_array();
    set(props, "id",
        json_pack("{s:s, s:s, s:b}", "type", "string", "format", "uuid", "readOnly", 1));
    json_array_append_new(required, json_string("id"));
    json_object_update(props, json_object_get(o, "properties"));
    json_t *fields_required = json_object_get(o, "required");
    if (fields_required)
        json_array_extend(required, fields_required);
    if (!res->no_meta) {
        set(props, "version",
            json_pack("{s:s, s:i, s:b}", "type", "integer", "minimum", 1, "readOnly", 1));
        set(props, "createdAt",
            json_pack("{s:s, s:s, s:b}", "type", "string", "format", "date-time", "readOnly", 1));
        set(props, "updatedAt",
            json_pack("{s:s, s:s, s:b}", "type", "string", "format", "date-time", "readOnly", 1));
        for (const char *const *k =
                 (const char *const[]){"version", "createdAt", "updatedAt", NULL};
             *k; k++)
            json_array_append_new(required, json_string(*k));
    }
    set(o, "required", required);
    set(o, "properties", props);
    return o;
}

/* The rules of a filter's value (plan.c). */
static json_t *filter_schema(const struct resource *res, const struct filter *flt)
{
    switch (flt->kind) {
    case FILTER_SEARCH:
        return json_pack("{s:s, s:i, s:i}", "type", "string", "minLength", 1, "maxLength",
                         RESOURCE_SEARCH_MAX);
    case FILTER_SINCE: return json_pack("{s:s, s:s}", "type", "string", "format", "date-time");
    case FILTER_EQUALS:
    case FILTER_ANY: break;
    }
    /* ANY and EQUALS: each value follows the field's rules (a member's, for an array). */
    const struct field *f = &res->fields[res->sql->filter_field[flt - res->filters]];
    json_t *one = f->type == FIELD_ENUM_ARRAY ? element_schema(f) : value_schema(f, true);
    if (flt->kind == FILTER_EQUALS)
        return one;
    return json_pack("{s:s, s:i, s:o}", "type", "array", "minItems", 1, "items", one);
}

static json_t *sort_schema(const struct resource *res)
{
    json_t *keys = json_array();
    for (size_t i = 0; i < res->n_sort_keys; i++) {
        char desc[64];
        snprintf(desc, sizeof desc, "-%s", res->sort_keys[i].key);
        json_array_append_new(keys, json_string(res->sort_keys[i].key));
        json_array_append_new(keys, json_string(desc));
    }
    size_t most = res->n_sort_keys < RESOURCE_SORT_MAX ? res->n_sort_keys : RESOURCE_SORT_MAX;
    return json_pack("{s:s, s:i, s:i, s:{s:s, s:o}}", "type", "array", "minItems", 1, "maxItems",
                     (int)most, "items", "type", "string", "enum", keys);
}

/* The query keys the list route of res takes (its route's own list), each with its rules. */
static json_t *list_parameters(const struct resource *res)
{
    const struct route *list = NULL;
    for (size_t i = 0; i < router_count(); i++)
        if (router_at(i)->context == res && router_at(i)->method == HTTP_GET &&
            strcmp(router_at(i)->pattern, res->path) == 0)
            list = router_at(i);
    json_t *params = json_object();
    for (const char *const *k = list && list->query_keys ? list->query_keys : NULL; k && *k; k++) {
        json_t *s = NULL;
        if (strcmp(*k, "limit") == 0)
            s = json_pack("{s:s, s:i, s:i, s:i}", "type", "integer", "minimum", 1, "maximum",
                          RESOURCE_LIMIT_MAX, "default", RESOURCE_LIMIT_DEFAULT);
        else if (strcmp(*k, "cursor") == 0)
            s = json_pack("{s:s}", "type", "string");
        else if (strcmp(*k, "sort") == 0)
            s = sort_schema(res);
        else if (strcmp(*k, "delimiter") == 0) /* resource_list: CSV cells */
            s = json_pack("{s:s, s:[s,s], s:s}", "type", "string", "enum", "comma", "semicolon",
                          "default", "comma");
        for (size_t i = 0; !s && i < res->n_filters; i++)
            if (strcmp(res->filters[i].key, *k) == 0)
                s = filter_schema(res, &res->filters[i]);
        if (!s) {
            fprintf(stderr, "werklabd: schema: %s: no rule for the query key %s\n", res->name, *k);
            abort();
        }
        set(params, *k, s);
    }
    return json_pack("{s:o}", "parameters", params);
}

static json_t *resource_schema(const struct resource *res)
{
    static const char *const operations[] = {"list", "create", "get", "patch", "delete"};
    json_t *ops = json_array();
    for (size_t i = 0; i < 5; i++)
        if (res->methods & (1u << i))
            json_array_append_new(ops, json_string(operations[i]));
    char item[160];
    snprintf(item, sizeof item, "%s/{%s}", res->path, res->item_param ? res->item_param : "id");
    json_t *r =
        json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", res->name, "path", res->path, "itemPath",
                  item, "operations", ops, "read", shape_schema(res, SHAPE_READ));
    if (res->methods & RESOURCE_CREATE)
        set(r, "create", shape_schema(res, SHAPE_CREATE));
    if (res->methods & RESOURCE_PATCH)
        set(r, "patch", shape_schema(res, SHAPE_PATCH));
    if (res->methods & RESOURCE_LIST)
        set(r, "list", list_parameters(res));
    return r;
}

json_t *schema_document(void)
{
    json_t *resources = json_array();
    for (size_t i = 0; i < resource_count(); i++)
        json_array_append_new(resources, resource_schema(resource_at(i)));
    return json_pack("{s:s, s:o}", "openapi", "3.0.3", "resources", resources);
}

int schema_print(FILE *out)
{
    json_t *doc = schema_document();
    int rc = json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (rc == 0 && (fputc('\n', out) == EOF || fflush(out) != 0))
        rc = -1;
    return rc;
}
