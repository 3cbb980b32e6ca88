/* The resource family's private contract: what its files share and nothing outside uses.
 *
 * The family (resource.h is its public face, list.h the lists' part of it):
 *   registry.c  descriptions checked and turned into SQL once, routes, the registry itself
 *   body.c      request bodies checked against the fields, every error reported at once
 *   render.c    rows as JSON, and the answers made of them
 *   fail.c      a failed statement as the HTTP answer it means (constraints to 400/404/409)
 *   handlers.c  the standard item handlers (get, create, patch, delete) and resource_guard
 *   plan.c      what one page of a list reads: sort, filters, scope, keyset SQL, split and merge
 *   list.c      lists answered: limits, cursors, the {"items","next"} envelope, Link
 *   csv.c       a list as CSV, every page, streamed
 *   schema.c    the descriptions as JSON Schema (`werklabd schema`, schema.h)
 * The request never changes anything here: all state is built by resource_register() at
 * startup and only read afterwards. */
#ifndef WERKLAB_RESOURCE_INTERNAL_H
#define WERKLAB_RESOURCE_INTERNAL_H

#include "list.h"
#include "resource.h"

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_SORT      RESOURCE_SORT_MAX /* sort keys a list takes at once */
#define MAX_PARAMS    48                /* parameters of one list statement */
#define MAX_SPLIT     8                 /* values of an `each` filter read as separate scans */
#define DEFAULT_LIMIT RESOURCE_LIMIT_DEFAULT
#define MAX_LIMIT     RESOURCE_LIMIT_MAX
#define CSV_PAGE      500 /* rows read at a time while CSV streams */

#define RENDER_ROLES 5 /* the bits of enum role (auth.h) */

/* How rows of a resource are written, worked out at registration (resource_render_prepare) so
 * that a row costs no lookups, measuring or escaping of names. */
struct resource_render_plan {
    struct jsonw_name member[RESOURCE_MAX_FIELDS]; /* field's name in its object: "email" */
    struct jsonw_name group[RESOURCE_MAX_FIELDS];  /* at a nested object's first field: "contact" */
    size_t group_end[RESOURCE_MAX_FIELDS];         /* there: past its last field; 0 elsewhere */
    struct jsonw_name *records[RESOURCE_MAX_FIELDS]; /* FIELD_RECORDS: its members' names */
    /* Per role (by its bit's number): the fields hidden in every row, one bit each, and those
     * hidden but in the row of the caller's own trainer record (resource_hidden). */
    uint64_t hidden[RENDER_ROLES];
    uint64_t hidden_from_others[RENDER_ROLES];
};

/* What resource_register() builds from a description. */
struct resource_sql {
    char *select_list;
    int n_columns; /* id, the fields, version, created_at, updated_at */
    /* Statements; with a parent, each also checks the parent column against the path. */
    char *get, *insert, *update, *remove, *probe, *parent_exists;
    /* insert and update with the audit entry of the row they return, in one statement
     * (audit_sql_around()): the entry's values follow the statement's own parameters. */
    char *insert_audited, *update_audited;
    int insert_params, update_params; /* the statement's own parameters */
    /* get within each kind of reach: $1 id [, $2 parent], then the reach's parameter */
    char *get_scoped[REACH_KINDS];
    /* resource_guard's: [1 + kind of reach, 0 unlimited][writing],
     * "SELECT version ... [reach $2] [FOR UPDATE]" */
    char *guard[REACH_KINDS + 1][2];
    /* A filter's check that what it names lies in the caller's reach: $1 the value, $2 the
     * reach's parameter; NULL where the filter names nothing of that kind. */
    char *filter_within[RESOURCE_MAX_FILTERS][REACH_KINDS];
    /* The resource of parent_table (registered before), whose reach a nested list's parent is
     * found within; NULL without a parent. */
    const struct resource *parent_resource;
    char *parent_condition;          /* "<parent column> = $" */
    int stored[RESOURCE_MAX_FIELDS]; /* fields that are columns of the table: INSERT */
    int n_stored;
    int updatable[RESOURCE_MAX_FIELDS]; /* of those, what a patch may set: UPDATE */
    int n_updatable;
    int parent; /* index of the FIELD_PARENT field, or -1 */
    regex_t pattern[RESOURCE_MAX_FIELDS];
    bool has_pattern[RESOURCE_MAX_FIELDS];
    /* The field each filter follows (ANY, EQUALS), resolved at registration; -1: none. */
    int filter_field[RESOURCE_MAX_FILTERS];
    const char *list_keys[RESOURCE_MAX_FILTERS + 5];
    char item_path[128];
    struct route routes[5];
    struct resource_render_plan render;
};

/* ---- registry.c ---- */

/* Index of the field named name; aborts when there is none (a bug). Only at registration:
 * code that runs in requests takes its indices from field_refs (resource.h). */
size_t resource_field(const struct resource *res, const char *name);

/* Length of the group prefix of a nested name ("contact" of "contact.email"), or 0. */
size_t resource_group_len(const char *name);
/* True when a and b are members of the same nested object. */
bool resource_same_group(const char *a, const char *b);
/* The rule any registered resource gives for a constraint, or NULL. */
const struct constraint_rule *resource_rule(const char *constraint);

/* ---- body.c ---- */

/* Checks one JSON value against field index of res; sets *out (NULL for null, in v or the request's
 * pool) or records why not (http_invalid) and returns false. */
bool resource_check_value(struct request *req, const struct resource *res, size_t index,
                          json_t *value, struct resource_values *v, const char **out);

/* ---- render.c ---- */

/* Fills res->sql->render from the description (at registration). */
void resource_render_prepare(const struct resource *res);

/* True when f is left out for this caller: personal and internal data for a partner key; for a
 * trainer internal data, and personal data but of what belongs to their werklabs (a resource
 * limited by REACH_WERKLAB) and of their own trainer record. id: the row's id; NULL asks about
 * the column (true only when no row of it shows f to this caller). */
bool resource_hidden(const struct request *req, const struct resource *res, const struct field *f,
                     const char *id);

/* True when f is left out of at least one row for this caller (a trainer reading the other
 * trainers): what may not be searched or sorted by. */
bool resource_hidden_somewhere(const struct request *req, const struct resource *res,
                               const struct field *f);

/* ---- small things every file asks ---- */

static inline const struct resource *resource_of(const struct request *req)
{
    return req->route->context;
}

/* The id of the item in the path. */
static inline const char *resource_item_id(const struct request *req, const struct resource *res)
{
    return http_param(req, res->item_param);
}

/* For a nested resource the parent's id in the path (always {id}); NULL otherwise. */
static inline const char *resource_parent_id(const struct request *req, const struct resource *res)
{
    return res->sql->parent >= 0 ? http_param(req, "id") : NULL;
}

/* The kind of reach that limits this caller in res, or REACH_NONE. */
static inline enum reach resource_scoped(const struct request *req, const struct resource *res)
{
    if (req->who.role == ROLE_TRAINER && res->scope[REACH_WERKLAB])
        return REACH_WERKLAB;
    if (req->who.role == ROLE_PARTNER && req->who.limited && res->scope[REACH_MUNICIPALITY])
        return REACH_MUNICIPALITY;
    return REACH_NONE;
}

/* ---- plan.c ---- */

struct sort_choice {
    const struct sort_key *key;
    bool descending;
};

/* What a list request asks for, checked once; each page is built from it. */
struct list_plan {
    struct sort_choice sort[MAX_SORT];
    int n_sort;
    char canonical[128]; /* the sort as a cursor carries it */
    long limit;
};

/* The statement of one page, with its parameters. */
struct list_query {
    bool out_of_scope; /* a filter names something outside the caller's reach */
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

/* Appends " AND (sql)" with "$" replaced by parameter number n. */
void list_append_condition(struct buf *b, const char *sql, int n);
/* Parses the `sort` query value (NULL: createdAt); returns how many keys, or -1 after recording
 * why not. canonical gets the normalised text, which the cursor carries. */
int list_parse_sort(struct request *req, const struct resource *res, const char *sort,
                    struct sort_choice *out, char *canonical, size_t canonical_len);
/* Filters from the query string into conditions of q; records what is invalid. */
void list_add_filters(struct request *req, const struct resource *res, struct list_query *q);
/* The SQL of one page into q: filters, scope and parent, rows after `after` (the sort values
 * and the id of the last row seen; NULL for the first page) in the plan's order, at most
 * `rows`. The select list is followed by the sort values (sort_1...) and row_id. */
void list_page_query(struct request *req, const struct resource *res, const struct list_plan *p,
                     const char *const *after, long rows, struct list_query *q);
void list_query_free(struct list_query *q);
/* An empty list under a parent that does not exist is a wrong path: answers 404 (or the
 * database's failure) and returns false. */
bool list_parent_found(struct request *req, const struct resource *res);
/* The same in two steps, for a caller that defers the statement: the statement that finds the
 * parent, with its parameters (NULL without a parent: nothing to find), and the answer from its
 * result (true: found; else 404 or the failure answered). */
const char *list_parent_query(struct request *req, const struct resource *res,
                              const char *params[2], int *n);
bool list_parent_answer(struct request *req, const struct resource *res, struct db_result *r);

/* ---- list.c ---- */

/* Cache-Control: public, max-age=N for a public list; nothing otherwise. */
void list_cache_header(struct request *req, const struct resource *res);
/* The signed cursor of row `row` of r for the sort `sort` (its values in n_sort columns from
 * first_sort_column, the id in column 0). */
void list_write_cursor(struct buf *out, const char *sort, const struct db_result *r, int row,
                       int first_sort_column, int n_sort);
/* Decodes a cursor made for sort; fills values (n_sort + 1 strings, the last the id), owned by
 * *json (json_decref it, also on failure). False when it is not one of ours, or not for this
 * sort. sort NULL (the sort order is invalid): only checks that the cursor is ours. */
bool list_read_cursor(const char *cursor, const char *sort, int n_sort, json_t **json,
                      const char **values);

/* ---- csv.c ---- */

/* Answers the list as CSV, streaming page after page. */
void list_answer_csv(struct request *req, const struct resource *res, const struct list_plan *plan,
                     char delimiter);

#endif
