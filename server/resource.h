/* resource: one implementation of list, read, create, merge-patch and delete for every resource.
 *
 * A resource is described as data: its table, its fields with their JSON names, columns, types
 * and rules, the filters and sort keys its list takes, and what its constraints mean. From that
 * description resource_register() builds the SQL once and registers the routes; the handlers
 * here validate bodies (reporting every invalid field at once), page lists by keyset with signed
 * cursors, render rows as JSON (leaving out personal data for whoever may not see it), and map
 * constraint violations to 400 or 409. A resource that needs more (a secret made on creation, a
 * status machine) replaces single handlers and reuses the parts below.
 *
 * Every table has id (uuid), version, created_at and updated_at; a trigger keeps version and
 * updated_at, so they are not in the descriptions.
 *
 * The implementation is the family in server/resource/ (resource/internal.h lists its files);
 * lists and their envelope are declared in list.h, opaque cursors in token.h. */
#ifndef WERKLAB_RESOURCE_H
#define WERKLAB_RESOURCE_H

#include "db.h"
#include "http.h"
#include "list.h"

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#define RESOURCE_MAX_FIELDS  40
#define RESOURCE_MAX_FILTERS 35

/* The rules of every list's common query keys (resource_list), for whoever describes them. */
#define RESOURCE_LIMIT_DEFAULT 50  /* limit when none is given */
#define RESOURCE_LIMIT_MAX     200 /* the largest limit */
#define RESOURCE_SORT_MAX      3   /* sort keys in one sort */
#define RESOURCE_SEARCH_MAX    200 /* characters of a FILTER_SEARCH value (at least 1) */

enum field_type {
    FIELD_TEXT,
    FIELD_ENUM,       /* text, one of values */
    FIELD_ENUM_ARRAY, /* text[], distinct members of values */
    FIELD_BOOL,
    FIELD_INT,
    FIELD_DATE,      /* YYYY-MM-DD */
    FIELD_TIMESTAMP, /* RFC 3339 in, UTC with Z out */
    FIELD_UUID,
    FIELD_EMAIL,
    FIELD_URL,   /* absolute http(s) */
    FIELD_PHONE, /* digits, spaces, + - ( ) */
    /* A list of small records, e.g. [{"initiativeId": ..., "role": "host"}], kept in a table of
     * its own: read through `column` (an expression giving "v1 v2;v1 v2"), written by `replace`
     * in the same transaction as the row. Members are UUIDs or enum words, never with spaces. */
    FIELD_RECORDS,
};

enum field_flag {
    FIELD_REQUIRED = 1, /* must be given on create; never null */
    FIELD_NULLABLE = 2, /* may be null (read-only ones too); null in a patch clears it */
    FIELD_READONLY = 4, /* the server's; invalid in a body */
    FIELD_PERSONAL =
        8, /* personal data: left out for partner keys (and trainers, resource_hidden) */
    FIELD_INTERNAL = 16,  /* not personal, but not for partners or trainers (e.g. quotes) */
    FIELD_IMMUTABLE = 32, /* given on create, never changed by a patch */
    FIELD_NO_CREATE = 64, /* set by a patch only (e.g. a status staff move along) */
    FIELD_PARENT = 128,   /* the id of the parent in the collection path, e.g. werklabId */
};

struct record_member {
    const char *name;
    enum field_type type;      /* FIELD_UUID or FIELD_ENUM */
    const char *const *values; /* FIELD_ENUM */
};

struct field {
    const char *name;   /* JSON name; "contact.email" is "email" inside the "contact" object */
    const char *column; /* SQL column; for read-only fields any expression */
    enum field_type type;
    unsigned flags;
    long min, max;             /* characters for text, value for integers; max 0: no limit */
    const char *const *values; /* ENUM and ENUM_ARRAY: NULL-terminated */
    const char *pattern;       /* TEXT: POSIX extended regex the value must match */
    const char *hint;          /* the reason given when pattern fails */
    const char *fallback;      /* stored when a create leaves the field out */
    const struct record_member *members; /* FIELD_RECORDS: NULL-name terminated */
    /* FIELD_RECORDS: statements that replace the records; $1 is the row's id, $2 the records
     * as a JSON array (a statement may use $1 only). NULL-terminated. */
    const char *const *replace;
    /* Who may write it, where fewer than may write the resource (e.g. a feedback's moderation,
     * staff's): for the others it is invalid in a body. 0: whoever may write the resource. */
    unsigned write_roles;
};

enum filter_kind {
    FILTER_ANY,    /* comma-separated values, each valid for field: sql gets a text[] */
    FILTER_EQUALS, /* one value valid for field */
    FILTER_SEARCH, /* free text for full-text search */
    FILTER_SINCE,  /* RFC 3339 timestamp */
};

struct filter {
    const char *key; /* query key */
    enum filter_kind kind;
    /* ANY, EQUALS: the field whose rules the values follow. SEARCH: the personal field the
     * search reads, if any — a caller who may not see it in every row may not search, or the
     * rows a search returns would tell what the field holds. */
    const char *field;
    const char *sql; /* condition; "$" stands for the parameter */
    /* For a filter naming something a caller's reach is limited by (list.h: municipalityId,
     * werklabId, sessionId): per kind of reach, SQL giving for $1 the id of that kind the thing
     * belongs to, so that a caller limited to others gets 404, as for the thing itself. NULL for
     * a kind: the filter names nothing of that kind (it only narrows the list). */
    const char *scope_of[REACH_KINDS];
    /* ANY only: the condition for one value ("status = $::text"). One value is then filtered by
     * it, and several are read as one ordered index scan per value, merged, instead of one scan
     * in list order that passes over every row of the other values (an index on (column, sort
     * key, id) serves each). */
    const char *each;
};

struct sort_key {
    const char *key;  /* query name, e.g. "name" */
    const char *expr; /* SQL expression; must never be NULL */
    const char *cast; /* its type, for comparing with cursor values */
    /* The field whose value it orders by, when that is personal: a caller who may not see it
     * in every row may not sort by it, since the order, and the cursor carrying the last row's
     * value, would tell what it holds. NULL for keys nobody is kept from. */
    const char *personal;
};

/* What a violated constraint (or a trigger raising under a constraint name) means:
 * - unique: a 409 conflict, code `code` or "unique";
 * - foreign key: writing, an invalid reference in `field` (404 when it is the parent in the
 *   path); deleting what it references, a 409 conflict naming `referenced_by`;
 * - check or exclusion: with a `field`, that field is invalid (code `code`); without, a 409
 *   conflict with code `code`: a rule about the state, not about one value. */
struct constraint_rule {
    const char *constraint;
    const char *field;         /* JSON name of the field at fault, or NULL */
    const char *code;          /* invalidParams or conflict code */
    const char *reason;        /* the reason or conflict detail */
    const char *referenced_by; /* FK: "is used by initiatives" */
};

enum resource_method {
    RESOURCE_LIST = 1,
    RESOURCE_CREATE = 2,
    RESOURCE_GET = 4,
    RESOURCE_PATCH = 8,
    RESOURCE_DELETE = 16,
    RESOURCE_ALL = 31,
};

/* A field a resource's own code (a hook, a handler of its own) reads by index: resource_register()
 * stores the index of the field named `name` in *index, and aborts at startup on a name that is
 * not a field, so that no request looks a field up by name. */
struct field_ref {
    const char *name;
    size_t *index;
};

struct resource_sql; /* built by resource_register() */
struct resource_values;
struct resource;

/* A write in progress, handed to a resource's hooks. */
struct resource_write {
    bool create;
    const char *id; /* the row's id; NULL in before_write of a create */
    struct resource_values *values;
    char note[64]; /* the hooks' own: e.g. a status read before the write */
};

/* A hook runs inside the write's transaction. It returns false after answering (the
 * transaction is then rolled back). */
typedef bool (*resource_hook)(struct request *req, const struct resource *res,
                              struct resource_write *w);

struct resource {
    const char *name;  /* singular, in messages: "municipality" */
    const char *table; /* SQL table */
    const char *path;  /* collection path: "/v1/municipalities" */
    const struct field *fields;
    size_t n_fields;
    const struct filter *filters;
    size_t n_filters;
    const struct sort_key *sort_keys;
    size_t n_sort_keys;
    const struct constraint_rule *constraints;
    size_t n_constraints;
    /* What a limited caller reaches (list.h, enum reach): per kind, SQL giving the id of that
     * kind a row belongs to — [REACH_MUNICIPALITY] its municipality, for partner keys limited to
     * municipalities; [REACH_WERKLAB] its werklab, for trainers. Reads, filters, CSV, guards and
     * writes of a limited caller all keep to it; outside is 404. NULL for a kind: that kind does
     * not limit the resource, and what such a caller may do with it is up to the route roles
     * (a trainer then reads it as a partner does: personal and internal data hidden). */
    const char *scope[REACH_KINDS];
    /* Its rows are trainers: a trainer sees their own row whole, the others as a partner would. */
    bool trainer_self;
    const char *item_param;   /* path parameter of an item: "id" unless named */
    const char *parent_table; /* with a FIELD_PARENT field: the table it refers to */
    bool no_meta;             /* render without version, createdAt and updatedAt */
    unsigned cache_seconds;   /* lists are public and cacheable this long; 0: no-store */
    bool no_idempotency;      /* its POST answers hold a secret: never stored for replay */
    /* Its rows show state that changes without a new version (a webhook subscription's
     * backlog): the ETag serves If-Match, and a GET never answers 304. */
    bool live;
    resource_hook before_write, after_write;
    unsigned methods;      /* enum resource_method bits to register */
    unsigned read_roles;   /* enum role bits for LIST and GET */
    unsigned write_roles;  /* for CREATE, PATCH and DELETE */
    unsigned create_roles; /* for CREATE when it differs from write_roles; 0: write_roles */
    unsigned patch_roles;  /* for PATCH when it differs from write_roles; 0: write_roles */
    /* Replacements for the standard handlers; NULL: standard. */
    route_handler on_create, on_patch, on_delete;
    const struct field_ref *field_refs; /* resolved by resource_register(); NULL-name ends */
    struct resource_sql *sql;
};

/* Checks the description, builds its SQL and registers its routes. Aborts on a description
 * that is wrong (a bug, found at startup). */
void resource_register(struct resource *res);

/* Values of a body, by field index; what a create or patch will write. */
struct resource_values {
    const char *value[RESOURCE_MAX_FIELDS]; /* NULL: SQL NULL */
    bool given[RESOURCE_MAX_FIELDS];
    char scratch[RESOURCE_MAX_FIELDS][40]; /* numbers and booleans as text */
    /* Arrays and records as text live in the request's pool: nothing here is freed. */
};

/* Validates a JSON array of records against members; name is the field for invalidParams.
 * Returns false after recording what is wrong. */
bool resource_check_records(struct request *req, const char *name, json_t *value,
                            const struct record_member *members);

/* Validates req->json as a create (all required present) or a merge patch. On failure it has
 * answered 400 and returns false. */
bool resource_read_body(struct request *req, const struct resource *res, bool create,
                        struct resource_values *v);

/* Writes row `row` of r (selected with the resource's select list) as a JSON object. */
void resource_render(struct request *req, const struct resource *res, const struct db_result *r,
                     int row);
/* The same members without the braces, for a handler that adds members of its own. */
void resource_render_members(struct request *req, const struct resource *res,
                             const struct db_result *r, int row);
/* Writes a timestamp PostgreSQL gave (UTC, ISO) as RFC 3339 with Z; NULL writes null. */
void resource_write_timestamp(struct jsonw *w, const char *pg);
/* Answers a failed statement: 400 (invalid value, bad reference), 409 (unique, dependents),
 * 503 (unavailable) or 500. */
void resource_fail(struct request *req, const struct resource *res, const struct db_result *r,
                   bool deleting);
/* The select list, and "SELECT <list> FROM <table>". */
const char *resource_select_list(const struct resource *res);
/* Answers 200 (or 201 with Location) with row 0 of r and its ETag. */
void resource_answer_row(struct request *req, const struct resource *res, const struct db_result *r,
                         int status);
/* Answers a missing row after a conditional write: 404 when id is gone or outside a limited
 * caller's reach, else 412. */
void resource_answer_missing(struct request *req, const struct resource *res, const char *id);

/* The kind of reach that limits this caller in res (REACH_NONE: none), and in *param the value
 * standing for it in SQL (list_reach). */
enum reach resource_scope(struct request *req, const struct resource *res, const char **param);

/* For what belongs to a row (a werklab's trainers, a session's attendance): finds row id of
 * res within the caller's reach (a partner's municipalities, a trainer's werklabs). Reading, it
 * sets the row's ETag; writing (inside a transaction), it locks the row and holds If-Match against
 * its version. Answers 404, 412 or 503 and returns false when the request cannot go on. */
bool resource_guard(struct request *req, const struct resource *res, const char *id, bool writing);
/* db_begin() and resource_guard(writing): false after answering; the request's end rolls back. */
bool resource_begin_guarded(struct request *req, const struct resource *res, const char *id);
/* Answers 200 with {"items": [...], "next": null}, one object a row of sql (with $1 = param),
 * its members named in order by members (NULL-terminated); a member ending in "At" is a
 * timestamp, the others strings. */
void resource_answer_rows(struct request *req, const struct resource *res, const char *sql,
                          const char *param, const char *const *members);
/* The registered resource with this name ("participant"), or NULL. */
const struct resource *resource_named(const char *name);
/* The registered resources, in the order of registration (e.g. for `werklabd schema`). */
size_t resource_count(void);
const struct resource *resource_at(size_t i);
/* Writes a JSON array of the rows of res matching condition (SQL with $1…$n). False when the
 * database failed (nothing written then). */
bool resource_render_where(struct request *req, const struct resource *res, const char *condition,
                           int n, const char *const *params);

/* The standard handlers, for resources that replace some and keep others. */
void resource_list(struct request *req);
void resource_get(struct request *req);
void resource_create(struct request *req);
void resource_patch(struct request *req);
void resource_delete(struct request *req);

#endif
