/* registry: a resource's description checked and turned into SQL once, at startup, its routes
 * registered, and the registry of every resource (for constraint rules and resource_named).
 * Everything here aborts on a description that is wrong: a bug, found before serving. */
#include "audit.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESOURCES 32

static struct resource *registry[MAX_RESOURCES];
static size_t n_registry;

static const char *const list_keys_common[] = {"limit", "cursor", "sort", "delimiter"};

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

size_t resource_group_len(const char *name)
{
    const char *dot = strchr(name, '.');
    return dot ? (size_t)(dot - name) : 0;
}

bool resource_same_group(const char *a, const char *b)
{
    size_t n = resource_group_len(a);
    return n > 0 && n == resource_group_len(b) && strncmp(a, b, n) == 0;
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
        for (size_t k = i + 2; k < res->n_fields && resource_group_len(f->name); k++)
            if (resource_same_group(f->name, res->fields[k].name) &&
                !resource_same_group(f->name, res->fields[k - 1].name))
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
    for (int kind = 0; kind < REACH_KINDS; kind++) {
        if (!res->scope[kind])
            continue;
        buf_puts(&b, s->get);
        list_append_reach(&b, kind, res->scope[kind], parent_column ? 3 : 2);
        s->get_scoped[kind] = buf_detach(&b);
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
    s->insert_params = s->n_stored;
    s->insert_audited = audit_sql_around(s->insert, s->insert_params + 1);

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
    s->update_params = s->n_updatable + 3 + (parent_column ? 1 : 0);
    s->update_audited = audit_sql_around(s->update, s->update_params + 1);

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

    /* guard: $1 id [, $2 the reach]; writing, it locks the row */
    for (int kind = REACH_NONE; kind < REACH_KINDS; kind++)
        for (int writing = 0; writing <= 1; writing++) {
            if (kind != REACH_NONE && !res->scope[kind])
                continue;
            buf_printf(&b, "SELECT version FROM %s WHERE id = $1", res->table);
            if (kind != REACH_NONE)
                list_append_reach(&b, kind, res->scope[kind], 2);
            if (writing)
                buf_puts(&b, " FOR UPDATE");
            s->guard[kind + 1][writing] = buf_detach(&b);
        }

    if (res->n_filters > RESOURCE_MAX_FILTERS)
        die(res, "too many filters");
    size_t k = 0;
    for (size_t i = 0; i < sizeof list_keys_common / sizeof *list_keys_common; i++)
        s->list_keys[k++] = list_keys_common[i];
    for (size_t i = 0; i < res->n_filters; i++) {
        const struct filter *flt = &res->filters[i];
        s->list_keys[k++] = flt->key;
        bool by_field = flt->kind == FILTER_ANY || flt->kind == FILTER_EQUALS;
        if (by_field && !flt->field)
            die(res, "a filter of values needs the field whose rules they follow");
        s->filter_field[i] = flt->field ? (int)resource_field(res, flt->field) : -1;
        if (flt->kind == FILTER_SEARCH && flt->field &&
            !(res->fields[s->filter_field[i]].flags & FIELD_PERSONAL))
            die(res, "a search names the personal field it reads; this one is not personal");
        for (int kind = 0; kind < REACH_KINDS; kind++) {
            if (!flt->scope_of[kind])
                continue;
            if (!res->scope[kind])
                die(res, "a filter checks a reach the resource is not limited by");
            buf_puts(&b, "SELECT true WHERE true");
            struct buf of = {0};
            buf_printf(&of, "(%s)", flt->scope_of[kind]);
            list_append_reach(&b, kind, of.data, 2);
            buf_free(&of);
            s->filter_within[i][kind] = buf_detach(&b);
        }
    }
    s->list_keys[k] = NULL;
    for (size_t i = 0; i < res->n_sort_keys; i++)
        if (res->sort_keys[i].personal &&
            !(res->fields[resource_field(res, res->sort_keys[i].personal)].flags & FIELD_PERSONAL))
            die(res, "a sort key names the personal field it orders by; this one is not personal");
    for (const struct field_ref *ref = res->field_refs; ref && ref->name; ref++)
        *ref->index = resource_field(res, ref->name);
    resource_render_prepare(res);
}

void resource_register(struct resource *res)
{
    if (n_registry == MAX_RESOURCES)
        die(res, "too many resources");
    if (!res->item_param)
        res->item_param = "id";
    build_sql(res);
    if (res->parent_table) {
        for (size_t i = 0; i < n_registry && !res->sql->parent_resource; i++)
            if (strcmp(registry[i]->table, res->parent_table) == 0)
                res->sql->parent_resource = registry[i];
        if (!res->sql->parent_resource)
            die(res, "its parent_table is no resource registered before it");
    }
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
         .roles = res->patch_roles ? res->patch_roles : res->write_roles},
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

const char *resource_select_list(const struct resource *res)
{
    return res->sql->select_list;
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
const struct constraint_rule *resource_rule(const char *constraint)
{
    for (size_t i = 0; i < n_registry; i++)
        for (size_t k = 0; k < registry[i]->n_constraints; k++)
            if (strcmp(registry[i]->constraints[k].constraint, constraint) == 0)
                return &registry[i]->constraints[k];
    return NULL;
}
