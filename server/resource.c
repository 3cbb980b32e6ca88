#include "resource.h"

#include "crypto.h"
#include "log.h"
#include "validate.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_RESOURCES  32
#define MAX_SORT       RESOURCE_SORT_MAX
#define MAX_PARAMS     48
#define DEFAULT_LIMIT  RESOURCE_LIMIT_DEFAULT
#define MAX_LIMIT      RESOURCE_LIMIT_MAX
#define CURSOR_MAC_LEN 16

struct resource_sql {
    char *select_list;
    int n_columns; /* id, the fields, version, created_at, updated_at */
    /* Statements; with a parent, each also checks the parent column against the path. */
    char *get, *get_scoped, *insert, *update, *remove, *probe, *parent_exists;
    char *scope_condition;           /* "(<scope>) = ANY ($::uuid[])" */
    char *parent_condition;          /* "<parent column> = $" */
    int stored[RESOURCE_MAX_FIELDS]; /* fields that are columns of the table: INSERT */
    int n_stored;
    int updatable[RESOURCE_MAX_FIELDS]; /* of those, what a patch may set: UPDATE */
    int n_updatable;
    int parent; /* index of the FIELD_PARENT field, or -1 */
    regex_t pattern[RESOURCE_MAX_FIELDS];
    bool has_pattern[RESOURCE_MAX_FIELDS];
    const char *list_keys[40];
    char item_path[128];
    struct route routes[5];
};

static struct resource *registry[MAX_RESOURCES];
static size_t n_registry;
static unsigned char cursor_key[64];
static size_t cursor_key_len;

static const char *const list_keys_common[] = {"limit", "cursor", "sort", "delimiter"};

/* ---- description checks and SQL ---- */

static const char *cast_of(enum field_type t)
{
    switch (t) {
    case FIELD_ENUM_ARRAY: return "text[]";
    case FIELD_BOOL: return "boolean";
    case FIELD_INT: return "integer";
    case FIELD_DATE: return "date";
    case FIELD_TIMESTAMP: return "timestamptz";
    case FIELD_UUID: return "uuid";
    default: return "text";
    }
}

static void die(const struct resource *res, const char *what)
{
    fprintf(stderr, "werklabd: resource %s: %s\n", res->name, what);
    abort();
}

size_t resource_field(const struct resource *res, const char *name)
{
    for (size_t i = 0; i < res->n_fields; i++)
        if (strcmp(res->fields[i].name, name) == 0)
            return i;
    die(res, name);
    return 0;
}

/* Length of the group prefix of a nested name ("contact" of "contact.email"), or 0. */
static size_t group_len(const char *name)
{
    const char *dot = strchr(name, '.');
    return dot ? (size_t)(dot - name) : 0;
}

static bool same_group(const char *a, const char *b)
{
    size_t n = group_len(a);
    return n > 0 && n == group_len(b) && strncmp(a, b, n) == 0;
}

static void build_sql(struct resource *res)
{
    struct resource_sql *s = xcalloc(1, sizeof *s);
    res->sql = s;
    s->parent = -1;
    if (res->n_fields > RESOURCE_MAX_FIELDS)
        die(res, "too many fields");

    struct buf b = {0};
    buf_puts(&b, "id");
    for (size_t i = 0; i < res->n_fields; i++) {
        const struct field *f = &res->fields[i];
        buf_printf(&b, ", %s", f->column);
        if (f->flags & FIELD_PARENT) {
            if (s->parent >= 0 || !res->parent_table || f->type != FIELD_UUID)
                die(res, "one FIELD_PARENT, a UUID, with parent_table");
            s->parent = (int)i;
            s->stored[s->n_stored++] = (int)i;
        } else if (f->type == FIELD_RECORDS) {
            if (!f->members || (!(f->flags & FIELD_READONLY) && !f->replace))
                die(res, "a FIELD_RECORDS needs members, and replace unless read-only");
        } else if (!(f->flags & FIELD_READONLY)) {
            s->stored[s->n_stored++] = (int)i;
            s->updatable[s->n_updatable++] = (int)i;
        }
        if (f->pattern) {
            if (regcomp(&s->pattern[i], f->pattern, REG_EXTENDED | REG_NOSUB) != 0)
                die(res, "a pattern does not compile");
            s->has_pattern[i] = true;
        }
        if (f->type == FIELD_ENUM && !f->values)
            die(res, "an enum without values");
        if (f->type == FIELD_ENUM_ARRAY && !f->values && !f->pattern)
            die(res, "an array needs values or a pattern");
        /* Fields of one nested object stand together, so rendering can open it once. */
        for (size_t k = i + 2; k < res->n_fields && group_len(f->name); k++)
            if (same_group(f->name, res->fields[k].name) &&
                !same_group(f->name, res->fields[k - 1].name))
                die(res, "fields of one object are not together");
    }
    buf_puts(&b, ", version, created_at, updated_at");
    s->select_list = buf_detach(&b);
    s->n_columns = (int)res->n_fields + 4;
    const char *parent_column = s->parent >= 0 ? res->fields[s->parent].column : NULL;
    if (parent_column) {
        buf_printf(&b, "%s = $::uuid", parent_column);
        s->parent_condition = buf_detach(&b);
        buf_printf(&b, "SELECT 1 FROM %s WHERE id = $1", res->parent_table);
        s->parent_exists = buf_detach(&b);
    }

    /* get: $1 id [, $2 parent] */
    buf_printf(&b, "SELECT %s FROM %s WHERE id = $1", s->select_list, res->table);
    if (parent_column)
        buf_printf(&b, " AND %s = $2", parent_column);
    s->get = buf_detach(&b);
    if (res->scope) {
        buf_printf(&b, "%s AND (%s) = ANY ($%d::uuid[])", s->get, res->scope,
                   parent_column ? 3 : 2);
        s->get_scoped = buf_detach(&b);
        buf_printf(&b, "(%s) = ANY ($::uuid[])", res->scope);
        s->scope_condition = buf_detach(&b);
    }

    /* insert: the stored fields in order */
    buf_printf(&b, "INSERT INTO %s (", res->table);
    for (int i = 0; i < s->n_stored; i++)
        buf_printf(&b, "%s%s", i ? ", " : "", res->fields[s->stored[i]].column);
    buf_puts(&b, ") VALUES (");
    for (int i = 0; i < s->n_stored; i++)
        buf_printf(&b, "%s$%d::%s", i ? ", " : "", i + 1, cast_of(res->fields[s->stored[i]].type));
    buf_printf(&b, ") RETURNING %s", s->select_list);
    s->insert = buf_detach(&b);

    /* update: $1 id, $2 the version If-Match names (NULL: any), $3 a mask of '0'/'1' saying
     * which updatable fields the patch sets, $4... their values [, then the parent]. */
    buf_printf(&b, "UPDATE %s SET ", res->table);
    for (int i = 0; i < s->n_updatable; i++) {
        const struct field *f = &res->fields[s->updatable[i]];
        buf_printf(&b, "%s%s = CASE WHEN substr($3, %d, 1) = '1' THEN $%d::%s ELSE %s END",
                   i ? ", " : "", f->column, i + 1, i + 4, cast_of(f->type), f->column);
    }
    if (s->n_updatable == 0)
        buf_puts(&b, "version = version");
    buf_puts(&b, " WHERE id = $1 AND ($2::integer IS NULL OR version = $2::integer)");
    if (parent_column)
        buf_printf(&b, " AND %s = $%d", parent_column, s->n_updatable + 4);
    buf_printf(&b, " RETURNING %s", s->select_list);
    s->update = buf_detach(&b);

    /* remove: $1 id, $2 version [, $3 parent] */
    buf_printf(&b,
               "DELETE FROM %s WHERE id = $1 AND ($2::integer IS NULL OR version = $2::integer)",
               res->table);
    if (parent_column)
        buf_printf(&b, " AND %s = $3", parent_column);
    buf_puts(&b, " RETURNING id");
    s->remove = buf_detach(&b);

    /* probe: $1 id [, $2 parent] */
    buf_printf(&b, "SELECT version FROM %s WHERE id = $1", res->table);
    if (parent_column)
        buf_printf(&b, " AND %s = $2", parent_column);
    s->probe = buf_detach(&b);

    size_t k = 0;
    for (size_t i = 0; i < sizeof list_keys_common / sizeof *list_keys_common; i++)
        s->list_keys[k++] = list_keys_common[i];
    for (size_t i = 0; i < res->n_filters; i++) {
        if (k + 1 >= sizeof s->list_keys / sizeof *s->list_keys)
            die(res, "too many filters");
        s->list_keys[k++] = res->filters[i].key;
    }
    s->list_keys[k] = NULL;
}

void resource_register(struct resource *res)
{
    if (n_registry == MAX_RESOURCES)
        die(res, "too many resources");
    if (!res->item_param)
        res->item_param = "id";
    build_sql(res);
    registry[n_registry++] = res;

    struct resource_sql *s = res->sql;
    snprintf(s->item_path, sizeof s->item_path, "%s/{%s}", res->path, res->item_param);
    struct route all[] = {
        {.method = HTTP_GET,
         .pattern = res->path,
         .handler = resource_list,
         .roles = res->read_roles,
         .query_keys = s->list_keys,
         .csv = true},
        {.method = HTTP_POST,
         .pattern = res->path,
         .handler = res->on_create ? res->on_create : resource_create,
         .roles = res->create_roles ? res->create_roles : res->write_roles,
         .no_idempotency = res->no_idempotency},
        {.method = HTTP_GET,
         .pattern = s->item_path,
         .handler = resource_get,
         .roles = res->read_roles},
        {.method = HTTP_PATCH,
         .pattern = s->item_path,
         .handler = res->on_patch ? res->on_patch : resource_patch,
         .roles = res->write_roles},
        {.method = HTTP_DELETE,
         .pattern = s->item_path,
         .handler = res->on_delete ? res->on_delete : resource_delete,
         .roles = res->write_roles},
    };
    size_t n = 0;
    for (size_t i = 0; i < 5; i++)
        if (res->methods & (1u << i)) {
            s->routes[n] = all[i];
            s->routes[n++].context = res;
        }
    router_add(s->routes, n);
}

void resource_set_cursor_key(const unsigned char *key, size_t len)
{
    cursor_key_len = len < sizeof cursor_key ? len : sizeof cursor_key;
    memcpy(cursor_key, key, cursor_key_len);
}

const char *resource_select_list(const struct resource *res)
{
    return res->sql->select_list;
}

/* ---- validating values ---- */

static bool in_values(const char *const *values, const char *s)
{
    for (; *values; values++)
        if (strcmp(*values, s) == 0)
            return true;
    return false;
}

static void list_values(struct buf *b, const char *const *values)
{
    for (const char *const *v = values; *v; v++)
        buf_printf(b, "%s%s", v == values ? "" : ", ", *v);
}

/* Appends s as an element of a PostgreSQL array literal. */
static void array_element(struct buf *b, const char *s)
{
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_putc(b, '\\');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
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
                struct buf allowed = {0};
                list_values(&allowed, m->values);
                http_invalid(req, at, "enum", "%s must be one of: %s", m->name, allowed.data);
                buf_free(&allowed);
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

/* Checks one JSON value against f; sets *out (NULL for null) or records why not. */
static bool check_value(struct request *req, const struct resource *res, size_t index,
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
    case FIELD_INT: {
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
    case FIELD_ENUM_ARRAY: {
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
                struct buf allowed = {0};
                list_values(&allowed, f->values);
                http_invalid(req, name, "enum", "item %zu must be one of: %s", i, allowed.data);
                buf_free(&allowed);
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
            array_element(&b, s);
        }
        buf_putc(&b, '}');
        if (!ok || (f->min && json_array_size(value) < (size_t)f->min)) {
            if (ok)
                http_invalid(req, name, "minLength", "must have at least %ld item%s", f->min,
                             f->min == 1 ? "" : "s");
            buf_free(&b);
            return false;
        }
        free(v->owned[index]); /* a filter checks several values in one scratch */
        v->owned[index] = buf_detach(&b);
        *out = v->owned[index];
        return true;
    }
    case FIELD_RECORDS:
        if (!resource_check_records(req, name, value, f->members))
            return false;
        free(v->owned[index]);
        v->owned[index] = json_dumps(value, JSON_COMPACT);
        if (!v->owned[index])
            abort();
        *out = v->owned[index];
        return true;
    default: break;
    }

    const char *s = json_string_value(value);
    if (!s) {
        http_invalid(req, name, "type", "must be a string");
        return false;
    }
    size_t chars = validate_chars(s);
    switch (f->type) {
    case FIELD_ENUM:
        if (!in_values(f->values, s)) {
            struct buf allowed = {0};
            list_values(&allowed, f->values);
            http_invalid(req, name, "enum", "must be one of: %s", allowed.data);
            buf_free(&allowed);
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
        const char *out;
        if (check_value(req, res, i, value, v, &out)) {
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
        if (group_len(f->name) == n && strncmp(f->name, name, n) == 0) {
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
            if (group_len(res->fields[i].name) == n && strncmp(res->fields[i].name, name, n) == 0 &&
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
        resource_values_free(v);
        return false;
    }
    return true;
}

void resource_values_free(struct resource_values *v)
{
    for (size_t i = 0; i < RESOURCE_MAX_FIELDS; i++) {
        free(v->owned[i]);
        v->owned[i] = NULL;
    }
}

/* ---- rendering ---- */

/* "2025-03-01 09:30:00.123+00" (UTC, ISO) → "2025-03-01T09:30:00.123Z" */
void resource_write_timestamp(struct jsonw *w, const char *pg)
{
    if (!pg) {
        jsonw_null(w);
        return;
    }
    char out[40];
    size_t n = strcspn(pg, "+");
    if (n >= sizeof out - 1 || n < 19) {
        jsonw_string(w, pg);
        return;
    }
    memcpy(out, pg, n);
    out[10] = 'T';
    out[n] = 'Z';
    out[n + 1] = '\0';
    jsonw_string(w, out);
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

/* "a b;c d" → [{"m1":"a","m2":"b"},{"m1":"c","m2":"d"}] */
static void write_records(struct jsonw *w, const struct record_member *members, const char *text)
{
    jsonw_array_begin(w);
    for (const char *p = text; *p;) {
        jsonw_object_begin(w);
        for (const struct record_member *m = members; m->name; m++) {
            size_t n = strcspn(p, " ;");
            jsonw_key(w, m->name);
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

static void write_value(struct jsonw *w, const struct field *f, const char *v)
{
    if (f->type == FIELD_RECORDS) {
        write_records(w, f->members, v ? v : "");
        return;
    }
    if (!v) {
        jsonw_null(w);
        return;
    }
    switch (f->type) {
    case FIELD_INT: jsonw_raw(w, v); break;
    case FIELD_BOOL: jsonw_bool(w, v[0] == 't'); break;
    case FIELD_TIMESTAMP: resource_write_timestamp(w, v); break;
    case FIELD_ENUM_ARRAY: write_array(w, v); break;
    default: jsonw_string(w, v); break;
    }
}

static bool hidden(const struct request *req, const struct field *f)
{
    return req->who.role == ROLE_PARTNER && (f->flags & (FIELD_PERSONAL | FIELD_INTERNAL));
}

/* Writes one field's value, noting when personal data leaves the server (for the audit). */
static void write_field(struct request *req, const struct field *f, const char *v)
{
    if (v && (f->flags & FIELD_PERSONAL))
        req->personal_shown = true;
    write_value(&req->w, f, v);
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
    static const struct field timestamp = {.type = FIELD_TIMESTAMP};
    struct jsonw *w = &req->w;
    int base = 1; /* column of fields[0] */
    jsonw_kv_string(w, "id", db_value(r, row, 0));
    for (size_t i = 0; i < res->n_fields;) {
        const struct field *f = &res->fields[i];
        size_t g = group_len(f->name);
        if (!g) {
            if (!hidden(req, f)) {
                jsonw_key(w, f->name);
                write_field(req, f, db_value(r, row, base + (int)i));
            }
            i++;
            continue;
        }
        size_t end = i;
        bool any_value = false, any_visible = false;
        while (end < res->n_fields && same_group(f->name, res->fields[end].name)) {
            any_value |= db_value(r, row, base + (int)end) != NULL;
            any_visible |= !hidden(req, &res->fields[end]);
            end++;
        }
        if (any_visible) {
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)g, f->name);
            jsonw_key(w, key);
            if (!any_value) {
                jsonw_null(w);
            } else {
                jsonw_object_begin(w);
                for (size_t k = i; k < end; k++) {
                    if (hidden(req, &res->fields[k]))
                        continue;
                    jsonw_key(w, res->fields[k].name + g + 1);
                    write_field(req, &res->fields[k], db_value(r, row, base + (int)k));
                }
                jsonw_object_end(w);
            }
        }
        i = end;
    }
    int tail = base + (int)res->n_fields;
    if (res->no_meta)
        return;
    jsonw_key(w, "version");
    jsonw_raw(w, db_value(r, row, tail));
    jsonw_key(w, "createdAt");
    write_value(w, &timestamp, db_value(r, row, tail + 1));
    jsonw_key(w, "updatedAt");
    write_value(w, &timestamp, db_value(r, row, tail + 2));
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
    if (http_etag(req, version) && status == 200 && req->method != HTTP_PATCH) {
        http_reply_not_modified(req);
        return;
    }
    resource_render(req, res, r, 0);
    http_reply(req, status);
}

/* ---- failures ---- */

static const struct constraint_rule *find_rule(const char *constraint)
{
    for (size_t i = 0; i < n_registry; i++)
        for (size_t k = 0; k < registry[i]->n_constraints; k++)
            if (strcmp(registry[i]->constraints[k].constraint, constraint) == 0)
                return &registry[i]->constraints[k];
    return NULL;
}

void resource_fail(struct request *req, const struct resource *res, const struct db_result *r,
                   bool deleting)
{
    const struct constraint_rule *rule = find_rule(r->constraint);
    switch (r->status) {
    case DB_UNAVAILABLE: http_problem_unavailable(req); return;
    case DB_UNIQUE:
        http_conflict(req, rule && rule->code ? rule->code : "unique", "%s",
                      rule ? rule->reason : "a unique value is taken");
        http_problem_conflicts(req, "A value that must be unique is taken.");
        return;
    case DB_FOREIGN_KEY:
        if (deleting) {
            http_conflict(req, "referenced", "%s %s", res->name,
                          rule && rule->referenced_by ? rule->referenced_by
                                                      : "is referenced by other resources");
            http_problem_conflicts(req, "Other resources depend on this one.");
        } else if (rule && rule->field && res->sql->parent >= 0 &&
                   strcmp(rule->field, res->fields[res->sql->parent].name) == 0) {
            http_problem(req, 404, "There is nothing at %s.", req->path);
        } else {
            http_invalid(req, rule && rule->field ? rule->field : "body", "reference", "%s",
                         rule ? rule->reason : "refers to something that does not exist");
            http_problem_invalid(req);
        }
        return;
    case DB_CHECK:
    case DB_EXCLUSION:
        /* A rule about one field is invalid input; a rule about the state is a conflict. */
        if (rule && rule->field) {
            http_invalid(req, rule->field, rule->code ? rule->code : "format", "%s", rule->reason);
            http_problem_invalid(req);
            return;
        }
        if (rule) {
            http_conflict(req, rule->code ? rule->code : "conflict", "%s", rule->reason);
            http_problem_conflicts(req, "The change conflicts with the current state.");
            return;
        }
        log_event("error", "%s: unmapped constraint %s: %s", res->name, r->constraint, r->message);
        http_problem(req, 400, "The values break a rule of %s.", res->name);
        return;
    case DB_INVALID_INPUT:
        /* PostgreSQL's words are for the log: they name its types and encodings. */
        log_event("warning", "%s: a value was refused by the database: %s", res->name, r->message);
        http_problem(req, 400, "A value could not be stored: it is outside what this field takes.");
        return;
    case DB_RETRY:
        http_problem(req, 409, "The change collided with another one; try again.");
        return;
    default:
        log_event("error", "%s: %s", res->name, r->message);
        http_problem(req, 500, "The server failed to handle this request.");
        return;
    }
}

/* The id of the item in the path, and for a nested resource the parent's id (always {id}). */
static const char *item_id(const struct request *req, const struct resource *res)
{
    return http_param(req, res->item_param);
}

static const char *parent_id(const struct request *req, const struct resource *res)
{
    return res->sql->parent >= 0 ? http_param(req, "id") : NULL;
}

void resource_answer_missing(struct request *req, const struct resource *res, const char *id)
{
    struct db_result r;
    const char *params[] = {id, parent_id(req, res)};
    if (db_exec(res->sql->probe, params[1] ? 2 : 1, params, &r) != DB_OK)
        resource_fail(req, res, &r, false);
    else if (db_rows(&r) == 0)
        http_problem(req, 404, "There is no %s with id %s here.", res->name, id);
    else
        http_problem(req, 412, "The %s has changed: its version is now %s.", res->name,
                     db_value(&r, 0, 0));
    db_clear(&r);
}

/* ---- the standard handlers ---- */

static const struct resource *resource_of(const struct request *req)
{
    return req->route->context;
}

/* "{id1,id2}" of the municipalities a partner key is limited to. */
static char *scope_array(const struct request *req)
{
    struct buf b = {0};
    buf_putc(&b, '{');
    for (int i = 0; i < req->who.n_municipalities; i++)
        buf_printf(&b, "%s%s", i ? "," : "", req->who.municipality_ids[i]);
    buf_putc(&b, '}');
    return buf_detach(&b);
}

static bool scoped(const struct request *req, const struct resource *res)
{
    return res->scope && req->who.role == ROLE_PARTNER && req->who.limited;
}

char *resource_scope(const struct request *req, const struct resource *res)
{
    return scoped(req, res) ? scope_array(req) : NULL;
}

/* The statement reading row id (under its parent, within a partner's municipalities), with its
 * parameters in params (n of them); free() *scope after the statement has run. */
static const char *row_statement(const struct request *req, const struct resource *res,
                                 const char *id, const char *params[3], int *n, char **scope)
{
    *scope = scoped(req, res) ? scope_array(req) : NULL;
    params[0] = id;
    *n = 1;
    if (parent_id(req, res))
        params[(*n)++] = parent_id(req, res);
    if (*scope)
        params[(*n)++] = *scope;
    return *scope ? res->sql->get_scoped : res->sql->get;
}

/* Reads the row id into r. */
static enum db_status select_row(const struct request *req, const struct resource *res,
                                 const char *id, struct db_result *r)
{
    const char *params[3];
    int n;
    char *scope;
    const char *sql = row_statement(req, res, id, params, &n, &scope);
    enum db_status s = db_exec(sql, n, params, r);
    free(scope);
    return s;
}

static void answer_get(struct request *req, struct db_result *r)
{
    const struct resource *res = resource_of(req);
    if (r->status != DB_OK)
        resource_fail(req, res, r, false);
    else if (db_rows(r) == 0)
        http_problem(req, 404, "There is no %s with id %s here.", res->name, item_id(req, res));
    else
        resource_answer_row(req, res, r, 200);
}

/* The most frequent request of all: read on the pipeline, not holding a worker meanwhile. */
void resource_get(struct request *req)
{
    const struct resource *res = resource_of(req);
    const char *params[3];
    int n;
    char *scope;
    const char *sql = row_statement(req, res, item_id(req, res), params, &n, &scope);
    http_defer(req, sql, n, params, answer_get);
    free(scope);
}

/* Writes the records fields the body gives; on failure r holds the error. */
static bool write_records_fields(const struct resource *res, const char *id,
                                 const struct resource_values *v, struct db_result *r)
{
    for (size_t i = 0; i < res->n_fields; i++) {
        if (res->fields[i].type != FIELD_RECORDS || !v->given[i])
            continue;
        for (const char *const *sql = res->fields[i].replace; *sql; sql++) {
            const char *params[] = {id, v->value[i] ? v->value[i] : "[]"};
            if (db_exec(*sql, strstr(*sql, "$2") ? 2 : 1, params, r) != DB_OK)
                return false;
            db_clear(r);
        }
    }
    return true;
}

static bool gives_records(const struct resource *res, const struct resource_values *v)
{
    for (size_t i = 0; i < res->n_fields; i++)
        if (res->fields[i].type == FIELD_RECORDS && v->given[i])
            return true;
    return false;
}

/* Runs the INSERT or UPDATE of a write into r. *touched is false when a patch changes nothing
 * (then the row is only read, and its version stays). */
static enum db_status write_statement(struct request *req, const struct resource *res,
                                      struct resource_write *w, const char *version,
                                      struct db_result *r, bool *touched)
{
    const struct resource_sql *s = res->sql;
    struct resource_values *v = w->values;
    const char *params[4 + RESOURCE_MAX_FIELDS];
    if (w->create) {
        for (int i = 0; i < s->n_stored; i++)
            params[i] = v->value[s->stored[i]];
        *touched = true;
        return db_exec(s->insert, s->n_stored, params, r);
    }
    char mask[RESOURCE_MAX_FIELDS + 1];
    bool any = gives_records(res, v);
    for (int i = 0; i < s->n_updatable; i++) {
        mask[i] = v->given[s->updatable[i]] ? '1' : '0';
        any |= v->given[s->updatable[i]];
        params[3 + i] = v->value[s->updatable[i]];
    }
    mask[s->n_updatable] = '\0';
    params[0] = w->id;
    params[1] = version;
    params[2] = mask;
    int n = 3 + s->n_updatable;
    if (parent_id(req, res))
        params[n++] = parent_id(req, res);
    *touched = any;
    if (any)
        return db_exec(s->update, n, params, r);
    return select_row(req, res, w->id, r); /* nothing to change: answer the current state */
}

/* Create and patch: the row, its records and the resource's hooks, in one transaction when
 * anything beyond the row is written. */
static void write_row(struct request *req, bool create)
{
    const struct resource *res = resource_of(req);
    struct resource_values v;
    if (!resource_read_body(req, res, create, &v))
        return;
    char version_buf[16];
    const char *version = create ? NULL : http_if_match(req, version_buf);
    struct resource_write w = {
        .create = create, .id = create ? NULL : item_id(req, res), .values = &v};
    struct db_result r = {0};
    /* Always a transaction: the audit entry commits with the write, or neither does. */
    bool tx = true;
    bool touched;
    char row_id[37];

    if (version && !*version) {
        http_problem(req, 412, "If-Match must name the current version, e.g. \"3\".");
        goto done;
    }
    if (create && parent_id(req, res)) {
        v.value[res->sql->parent] = parent_id(req, res);
        v.given[res->sql->parent] = true;
    }
    if (tx && db_begin() != DB_OK) {
        http_problem_unavailable(req);
        goto done;
    }
    if (res->before_write && !res->before_write(req, res, &w))
        goto rollback;
    if (write_statement(req, res, &w, version, &r, &touched) != DB_OK) {
        resource_fail(req, res, &r, false);
        goto rollback;
    }
    if (db_rows(&r) == 0 ||
        (!touched && version && strcmp(version, db_value(&r, 0, res->sql->n_columns - 3)) != 0)) {
        resource_answer_missing(req, res, w.id);
        goto rollback;
    }
    snprintf(row_id, sizeof row_id, "%s", db_value(&r, 0, 0));
    w.id = row_id;
    if (tx) {
        db_clear(&r);
        if (!write_records_fields(res, row_id, &v, &r)) {
            resource_fail(req, res, &r, false);
            goto rollback;
        }
        if (res->after_write && !res->after_write(req, res, &w))
            goto rollback;
        /* Read the row again: records and computed fields may have changed with the write. */
        if (select_row(req, res, row_id, &r) != DB_OK || db_rows(&r) != 1) {
            resource_fail(req, res, &r, false);
            goto rollback;
        }
        if (!http_audit_now(req, create ? 201 : 200, row_id)) {
            http_problem_unavailable(req);
            goto rollback;
        }
        enum db_status committed = db_commit();
        if (committed != DB_OK) {
            if (committed == DB_UNAVAILABLE)
                http_problem_unavailable(req);
            else
                http_problem(req, 409, "The change collided with another one; try again.");
            goto rollback;
        }
        req->audited = true;
    }
    resource_answer_row(req, res, &r, create ? 201 : 200);
    goto done;
rollback:
    if (tx)
        db_rollback();
done:
    db_clear(&r);
    resource_values_free(&v);
}

void resource_create(struct request *req)
{
    write_row(req, true);
}

void resource_patch(struct request *req)
{
    write_row(req, false);
}

void resource_delete(struct request *req)
{
    const struct resource *res = resource_of(req);
    const char *id = item_id(req, res);
    char version_buf[16];
    const char *version = http_if_match(req, version_buf);
    if (version && !*version) {
        http_problem(req, 412, "If-Match must name the current version, e.g. \"3\".");
        return;
    }
    const char *params[] = {id, version, parent_id(req, res)};
    struct db_result r = {0};
    if (db_begin() != DB_OK) {
        http_problem_unavailable(req);
        return;
    }
    if (db_exec(res->sql->remove, params[2] ? 3 : 2, params, &r) != DB_OK)
        resource_fail(req, res, &r, true);
    else if (db_rows(&r) == 0)
        resource_answer_missing(req, res, id);
    else if (!http_audit_now(req, 204, id) || db_commit() != DB_OK)
        http_problem_unavailable(req);
    else {
        http_reply_empty(req, 204);
        req->audited = true;
    }
    if (req->status != 204)
        db_rollback();
    db_clear(&r);
}

/* ---- lists ---- */

struct sort_choice {
    const struct sort_key *key;
    bool descending;
};

#define MAX_SPLIT 8 /* values of an `each` filter read as separate scans */

struct list_query {
    bool out_of_scope; /* a filter names something outside a partner's municipalities */
    struct buf sql;
    const char *params[MAX_PARAMS];
    char *owned[MAX_PARAMS];
    int n;
    /* A filter read one value at a time: where its condition goes in sql, and the values. */
    const struct filter *split;
    size_t split_at;
    int n_split;
    char *split_values[MAX_SPLIT];
};

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

/* Appends sql, with "$" replaced by parameter number n. */
static void append_condition(struct buf *b, const char *sql, int n)
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

/* Parses sort; returns how many keys, or -1 after recording why not. canonical gets the
 * normalised text, which the cursor carries. */
static int parse_sort(struct request *req, const struct resource *res, struct sort_choice *out,
                      char *canonical, size_t canonical_len)
{
    const char *sort = http_query(req, "sort");
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

void resource_sign(struct buf *out, const char *payload, size_t len)
{
    unsigned char mac[CRYPTO_SHA256_LEN];
    crypto_hmac_sha256(cursor_key, cursor_key_len, payload, len, mac);
    char *text = xmalloc(crypto_base64url_len(len) + 1);
    crypto_base64url_encode((const unsigned char *)payload, len, text);
    char mac_text[32];
    crypto_base64url_encode(mac, CURSOR_MAC_LEN, mac_text);
    buf_printf(out, "%s.%s", text, mac_text);
    free(text);
}

bool resource_unsign(const char *token, struct buf *payload)
{
    const char *dot = strchr(token, '.');
    /* The signature decodes into a fixed buffer: anything longer than ours is not ours. */
    if (!dot || strlen(token) > 4096 || strlen(dot + 1) != crypto_base64url_len(CURSOR_MAC_LEN))
        return false;
    size_t text_len = (size_t)(dot - token);
    unsigned char *data = xmalloc(text_len + 1);
    long n = crypto_base64url_decode(token, text_len, data);
    unsigned char mac[CRYPTO_SHA256_LEN], given[CRYPTO_SHA256_LEN];
    bool ok = n > 0 && crypto_base64url_decode(dot + 1, strlen(dot + 1), given) == CURSOR_MAC_LEN;
    if (ok) {
        crypto_hmac_sha256(cursor_key, cursor_key_len, data, (size_t)n, mac);
        ok = crypto_equal(mac, given, CURSOR_MAC_LEN);
    }
    if (ok) {
        buf_reset(payload);
        buf_append(payload, data, (size_t)n);
    }
    free(data);
    return ok;
}

static void write_cursor(struct buf *out, const char *sort, const struct db_result *r, int row,
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
    resource_sign(out, payload.data, payload.len);
    buf_free(&payload);
}

/* Decodes a cursor made for sort; fills values (n_sort + 1 strings, the last the id), owned
 * by *json. False when it is not one of ours, or not for this sort. */
static bool read_cursor(const char *cursor, const char *sort, int n_sort, json_t **json,
                        const char **values)
{
    struct buf payload = {0};
    *json = resource_unsign(cursor, &payload)
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

/* True when the thing a filter names lies in one of a partner key's municipalities. */
static bool within_scope(const struct request *req, const struct filter *flt, const char *value)
{
    struct db_result r;
    const char *params[] = {value};
    bool inside = false;
    if (db_exec(flt->municipality_of, 1, params, &r) == DB_OK && db_rows(&r) == 1 &&
        db_value(&r, 0, 0))
        for (int i = 0; i < req->who.n_municipalities; i++)
            inside |= strcmp(req->who.municipality_ids[i], db_value(&r, 0, 0)) == 0;
    db_clear(&r);
    return inside;
}

/* Filters from the query string into conditions; false after recording what is invalid. */
static void add_filters(struct request *req, const struct resource *res, struct list_query *q)
{
    for (size_t i = 0; i < res->n_filters; i++) {
        const struct filter *flt = &res->filters[i];
        const char *value = http_query(req, flt->key);
        if (!value)
            continue;
        int before = req->n_invalid;
        if (flt->kind == FILTER_SEARCH) {
            if (!*value || validate_chars(value) > RESOURCE_SEARCH_MAX)
                http_invalid(req, flt->key, "maxLength", "must have 1 to 200 characters");
            else
                append_condition(&q->sql, flt->sql, add_param(q, value));
            continue;
        }
        if (flt->kind == FILTER_SINCE) {
            if (!validate_timestamp(value))
                http_invalid(req, flt->key, "format",
                             "must be an RFC 3339 timestamp, e.g. 2025-03-01T09:30:00Z");
            else
                append_condition(&q->sql, flt->sql, add_param(q, value));
            continue;
        }
        /* ANY and EQUALS follow the rules of a field; reuse its checks on each value. */
        size_t f = resource_field(res, flt->field);
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
            if (as_json && check_value(req, res, f, as_json, &scratch, &checked) && checked) {
                if (res->fields[f].type == FIELD_ENUM_ARRAY)
                    checked = one;
                if (flt->kind == FILTER_EQUALS) {
                    append_condition(&q->sql, flt->sql, add_owned_param(q, xstrdup(checked)));
                } else {
                    buf_puts(&array, count ? "," : "");
                    array_element(&array, checked);
                    if (count < MAX_SPLIT)
                        values[count] = xstrdup(checked);
                }
                if (flt->municipality_of && scoped(req, res) && !within_scope(req, flt, checked))
                    q->out_of_scope = true;
                count++;
            }
            json_decref(as_json);
            free(one);
            if (!comma)
                break;
            p = comma + 1;
        }
        resource_values_free(&scratch);
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
            append_condition(&q->sql, flt->each, add_owned_param(q, values[0]));
        } else {
            if (flt->kind == FILTER_ANY && req->n_invalid == before)
                append_condition(&q->sql, flt->sql, add_owned_param(q, buf_detach(&array)));
            for (int k = 0; k < count && k < MAX_SPLIT; k++)
                free(values[k]);
        }
        buf_free(&array);
    }
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

/* What a list request asks for, checked once; each page is built from it. */
struct list_plan {
    struct sort_choice sort[MAX_SORT];
    int n_sort;
    char canonical[128]; /* the sort as a cursor carries it */
    long limit;
};

static void list_query_free(struct list_query *q)
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
        append_condition(&merged, q->split->each, n);
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

/* The SQL of one page: filters, scope and parent, rows after `after` (the sort values and the
 * id of the last row seen; NULL for the first page) in the plan's order, at most `rows`. */
static void page_query(struct request *req, const struct resource *res, const struct list_plan *p,
                       const char *const *after, long rows, struct list_query *q)
{
    buf_printf(&q->sql, "SELECT %s", res->sql->select_list);
    for (int i = 0; i < p->n_sort; i++)
        buf_printf(&q->sql, ", %s AS sort_%d", p->sort[i].key->expr, i + 1);
    buf_printf(&q->sql, ", %s.id AS row_id FROM %s WHERE true", res->table, res->table);
    add_filters(req, res, q);
    if (scoped(req, res))
        append_condition(&q->sql, res->sql->scope_condition, add_owned_param(q, scope_array(req)));
    const char *parent = parent_id(req, res);
    if (parent)
        append_condition(&q->sql, res->sql->parent_condition, add_param(q, parent));

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

/* An empty list under a parent that does not exist is a wrong path: answers 404 (or the
 * database's failure) and returns false. */
static bool parent_found(struct request *req, const struct resource *res)
{
    const char *parent = parent_id(req, res);
    if (!parent)
        return true;
    struct db_result exists;
    const char *p[] = {parent};
    enum db_status st = db_exec(res->sql->parent_exists, 1, p, &exists);
    bool found = st == DB_OK && db_rows(&exists) == 1;
    if (st != DB_OK)
        resource_fail(req, res, &exists, false);
    else if (!found)
        http_problem(req, 404, "There is nothing at %s.", req->path);
    db_clear(&exists);
    return found;
}

/* ---- CSV: every page, streamed ---- */

#define CSV_PAGE 500

struct csv_stream {
    struct request *req;
    const struct resource *res;
    struct list_plan plan;
    char *after[MAX_SORT + 1]; /* the last row sent: sort values and id */
    bool started, done;
    long rows; /* sent so far */
    char delimiter;
    struct buf pending;
    size_t sent;
};

/* One cell, RFC 4180: quoted when it holds the delimiter, a quote or a line break; a cell a
 * spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading '. */
static void csv_cell(struct buf *b, const char *s, char delimiter, bool first)
{
    if (!first)
        buf_putc(b, delimiter);
    if (!s || !*s)
        return;
    bool formula = strchr("=+-@\t\r", s[0]) != NULL;
    bool quote = formula || strchr(s, delimiter) || strpbrk(s, "\"\r\n") || s[0] == ' ' ||
                 s[strlen(s) - 1] == ' ';
    if (quote)
        buf_putc(b, '"');
    if (formula)
        buf_putc(b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            buf_putc(b, '"');
        buf_putc(b, *p);
    }
    if (quote)
        buf_putc(b, '"');
}

/* A field's value as CSV text: arrays and records joined with ", ". */
static void csv_value(struct buf *b, const struct field *f, const char *v, char delimiter)
{
    struct buf text = {0};
    if (v && f->type == FIELD_BOOL) {
        buf_puts(&text, v[0] == 't' ? "true" : "false");
    } else if (v && f->type == FIELD_TIMESTAMP) {
        struct jsonw w;
        jsonw_init(&w, &text);
        jsonw_array_begin(&w);
        resource_write_timestamp(&w, v);
        jsonw_array_end(&w);
        memmove(text.data, text.data + 2, text.len - 4); /* ["…"] → … */
        text.len -= 4;
        text.data[text.len] = '\0';
    } else if (v && f->type == FIELD_ENUM_ARRAY) {
        for (const char *p = v + (*v == '{'); *p && *p != '}'; p++)
            if (*p == ',')
                buf_puts(&text, ", ");
            else if (*p != '"')
                buf_putc(&text, *p);
    } else if (v && f->type == FIELD_RECORDS) {
        for (const char *p = v; *p; p++)
            buf_puts(&text, *p == ';' ? ", " : *p == ' ' ? ":" : (char[]){*p, 0});
    } else if (v) {
        buf_puts(&text, v);
    }
    csv_cell(b, text.data ? text.data : "", delimiter, false);
    buf_free(&text);
}

static void csv_header(struct csv_stream *c)
{
    csv_cell(&c->pending, "id", c->delimiter, true);
    for (size_t i = 0; i < c->res->n_fields; i++)
        if (!hidden(c->req, &c->res->fields[i]))
            csv_cell(&c->pending, c->res->fields[i].name, c->delimiter, false);
    if (!c->res->no_meta) {
        csv_cell(&c->pending, "version", c->delimiter, false);
        csv_cell(&c->pending, "createdAt", c->delimiter, false);
        csv_cell(&c->pending, "updatedAt", c->delimiter, false);
    }
    buf_puts(&c->pending, "\r\n");
}

static void csv_row(struct csv_stream *c, const struct db_result *r, int row)
{
    static const struct field text = {.type = FIELD_TEXT}, timestamp = {.type = FIELD_TIMESTAMP};
    const struct resource *res = c->res;
    csv_cell(&c->pending, db_value(r, row, 0), c->delimiter, true);
    for (size_t i = 0; i < res->n_fields; i++) {
        if (hidden(c->req, &res->fields[i]))
            continue;
        const char *v = db_value(r, row, 1 + (int)i);
        if (v && (res->fields[i].flags & FIELD_PERSONAL))
            c->req->personal_shown = true;
        csv_value(&c->pending, &res->fields[i], v, c->delimiter);
    }
    if (!res->no_meta) {
        int tail = 1 + (int)res->n_fields;
        csv_value(&c->pending, &text, db_value(r, row, tail), c->delimiter);
        csv_value(&c->pending, &timestamp, db_value(r, row, tail + 1), c->delimiter);
        csv_value(&c->pending, &timestamp, db_value(r, row, tail + 2), c->delimiter);
    }
    buf_puts(&c->pending, "\r\n");
}

/* Fetches the next page into pending. False when the database failed. */
static bool csv_next_page(struct csv_stream *c)
{
    struct list_query q = {0};
    const char *after[MAX_SORT + 1];
    for (int i = 0; i <= c->plan.n_sort; i++)
        after[i] = c->after[i];
    page_query(c->req, c->res, &c->plan, c->started ? after : NULL, CSV_PAGE, &q);
    struct db_result r;
    bool ok = db_exec(q.sql.data, q.n, q.params, &r) == DB_OK;
    if (ok) {
        if (!c->started)
            csv_header(c);
        c->started = true;
        int rows = db_rows(&r);
        c->rows += rows;
        for (int i = 0; i < rows; i++)
            csv_row(c, &r, i);
        if (rows > 0) {
            for (int i = 0; i < c->plan.n_sort; i++) {
                free(c->after[i]);
                c->after[i] = xstrdup(db_value(&r, rows - 1, c->res->sql->n_columns + i));
            }
            free(c->after[c->plan.n_sort]);
            c->after[c->plan.n_sort] = xstrdup(db_value(&r, rows - 1, 0));
        }
        c->done = rows < CSV_PAGE;
    }
    db_clear(&r);
    list_query_free(&q);
    return ok;
}

static long csv_read(void *ctx, char *out, size_t max)
{
    struct csv_stream *c = ctx;
    while (c->sent == c->pending.len && !c->done) {
        buf_reset(&c->pending);
        c->sent = 0;
        if (!csv_next_page(c))
            return -1;
    }
    size_t n = c->pending.len - c->sent;
    if (n > max)
        n = max;
    memcpy(out, c->pending.data + c->sent, n);
    c->sent += n;
    return (long)n;
}

static void csv_free(void *ctx)
{
    struct csv_stream *c = ctx;
    for (int i = 0; i <= MAX_SORT; i++)
        free(c->after[i]);
    buf_free(&c->pending);
    free(c);
}

/* Public lists may be cached: Cache-Control: public, max-age=N. */
static void cache_header(struct request *req, const struct resource *res)
{
    if (!res->cache_seconds)
        return;
    char cache[48];
    snprintf(cache, sizeof cache, "public, max-age=%u", res->cache_seconds);
    http_set_header(req, "Cache-Control", cache);
}

static void answer_csv(struct request *req, const struct resource *res,
                       const struct list_plan *plan, char delimiter)
{
    struct csv_stream *c = xcalloc(1, sizeof *c);
    c->req = req;
    c->res = res;
    c->plan = *plan;
    c->delimiter = delimiter;
    /* The first page is read now, so that a database that is down still gets its 503. */
    if (!csv_next_page(c)) {
        csv_free(c);
        http_problem_unavailable(req);
        return;
    }
    if (c->rows == 0 && !parent_found(req, res)) {
        csv_free(c);
        return;
    }
    /* Later pages are read while the answer streams, after it has waited for its audit entry
     * (audit.h): a list whose later pages may show personal data is recorded as a read of it. */
    for (size_t i = 0; !c->done && i < res->n_fields; i++)
        if ((res->fields[i].flags & FIELD_PERSONAL) && !hidden(req, &res->fields[i]))
            req->personal_shown = true;
    char disposition[160];
    const char *name = strrchr(res->path, '/') + 1;
    snprintf(disposition, sizeof disposition, "attachment; filename=\"%s.csv\"", name);
    http_reply_stream(req, 200, "text/csv; charset=utf-8", csv_read, csv_free, c);
    http_set_header(req, "Content-Disposition", disposition);
    cache_header(req, res);
}

void resource_list(struct request *req)
{
    const struct resource *res = resource_of(req);
    struct list_query q = {0};
    json_t *cursor_json = NULL;
    struct db_result r = {0};
    struct list_plan plan = {.limit = DEFAULT_LIMIT};

    resource_read_limit(req, http_query(req, "limit"), MAX_LIMIT, &plan.limit);
    const char *delimiter = http_query(req, "delimiter");
    if (delimiter && strcmp(delimiter, "comma") != 0 && strcmp(delimiter, "semicolon") != 0)
        http_invalid(req, "delimiter", "enum", "must be comma or semicolon");
    plan.n_sort = parse_sort(req, res, plan.sort, plan.canonical, sizeof plan.canonical);

    const char *cursor = http_query(req, "cursor");
    const char *after[MAX_SORT + 1];
    if (cursor && !read_cursor(cursor, plan.n_sort > 0 ? plan.canonical : NULL, plan.n_sort,
                               &cursor_json, after))
        http_invalid(req, "cursor", "format",
                     "is not a cursor this list gave out for this sort order");
    /* Checks the filters (and whether they name anything outside a partner's scope). */
    if (plan.n_sort > 0)
        page_query(req, res, &plan, cursor && !req->n_invalid ? after : NULL,
                   req->wants_csv ? CSV_PAGE : plan.limit + 1, &q);
    else
        add_filters(req, res, &q);
    if (req->n_invalid) {
        http_problem_invalid(req);
        goto done;
    }
    if (q.out_of_scope) {
        http_problem(req, 404, "A filter names something this key cannot see.");
        goto done;
    }
    if (req->wants_csv) {
        answer_csv(req, res, &plan, delimiter && strcmp(delimiter, "semicolon") == 0 ? ';' : ',');
        goto done;
    }

    if (db_exec(q.sql.data, q.n, q.params, &r) != DB_OK) {
        resource_fail(req, res, &r, false);
        goto done;
    }
    int rows = db_rows(&r);
    bool more = rows > plan.limit;
    if (rows == 0 && !parent_found(req, res))
        goto done;
    struct jsonw *w = &req->w;
    jsonw_object_begin(w);
    jsonw_key(w, "items");
    jsonw_array_begin(w);
    for (int i = 0; i < rows && i < plan.limit; i++)
        resource_render(req, res, &r, i);
    jsonw_array_end(w);
    jsonw_key(w, "next");
    if (more) {
        struct buf token = {0}, link = {0}, header = {0};
        write_cursor(&token, plan.canonical, &r, (int)plan.limit - 1, res->sql->n_columns,
                     plan.n_sort);
        next_link(&link, req, token.data);
        jsonw_string(w, link.data);
        buf_printf(&header, "<%s>; rel=\"next\"", link.data);
        http_set_header(req, "Link", header.data);
        buf_free(&token);
        buf_free(&link);
        buf_free(&header);
    } else {
        jsonw_null(w);
    }
    jsonw_object_end(w);
    http_reply(req, 200);
    cache_header(req, res);

done:
    db_clear(&r);
    if (cursor_json)
        json_decref(cursor_json);
    list_query_free(&q);
}

void resource_read_limit(struct request *req, const char *text, long max, long *limit)
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

size_t resource_count(void)
{
    return n_registry;
}

const struct resource *resource_at(size_t i)
{
    return i < n_registry ? registry[i] : NULL;
}

const struct resource *resource_named(const char *name)
{
    for (size_t i = 0; i < n_registry; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
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

bool resource_guard(struct request *req, const struct resource *res, const char *id, bool writing)
{
    char *scope = resource_scope(req, res);
    struct buf sql = {0};
    buf_printf(&sql, "SELECT version FROM %s WHERE id = $1", res->table);
    if (scope)
        append_condition(&sql, res->sql->scope_condition, 2);
    if (writing)
        buf_puts(&sql, " FOR UPDATE");
    const char *params[] = {id, scope};
    struct db_result r;
    enum db_status s = db_exec(sql.data, scope ? 2 : 1, params, &r);
    bool found = s == DB_OK && db_rows(&r) == 1;
    char wanted[16];
    const char *if_match = writing ? http_if_match(req, wanted) : NULL;
    if (s != DB_OK) {
        resource_fail(req, res, &r, false);
    } else if (!found) {
        http_problem(req, 404, "There is no %s with id %s.", res->name, id);
    } else if (if_match && strcmp(if_match, db_value(&r, 0, 0)) != 0) {
        http_problem(req, 412, "The %s has changed: its version is now %s.", res->name,
                     db_value(&r, 0, 0));
        found = false;
    } else if (!writing) {
        http_etag(req, db_value(&r, 0, 0));
    }
    db_clear(&r);
    buf_free(&sql);
    free(scope);
    return found;
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
    jsonw_object_begin(w);
    jsonw_key(w, "items");
    jsonw_array_begin(w);
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
    jsonw_array_end(w);
    jsonw_key(w, "next");
    jsonw_null(w);
    jsonw_object_end(w);
    http_reply(req, 200);
    db_clear(&r);
}
