/* csv: a list as CSV (RFC 4180, comma or semicolon), every page of it, streamed. The first page
 * is read before answering, so a database that is down still gets its 503; later pages are read
 * while the answer streams, CSV_PAGE rows at a time, by the same keyset plan as JSON pages. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        if (!resource_hidden(c->req, c->res, &c->res->fields[i], NULL))
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
    const char *id = db_value(r, row, 0);
    csv_cell(&c->pending, id, c->delimiter, true);
    for (size_t i = 0; i < res->n_fields; i++) {
        if (resource_hidden(c->req, res, &res->fields[i], NULL))
            continue;
        /* A column some rows show this caller (their own record) is empty in the others. */
        const char *v =
            resource_hidden(c->req, res, &res->fields[i], id) ? NULL : db_value(r, row, 1 + (int)i);
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
    list_page_query(c->req, c->res, &c->plan, c->started ? after : NULL, CSV_PAGE, &q);
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
void list_answer_csv(struct request *req, const struct resource *res, const struct list_plan *plan,
                     char delimiter)
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
    if (c->rows == 0 && !list_parent_found(req, res)) {
        csv_free(c);
        return;
    }
    /* Later pages are read while the answer streams, after it has waited for its audit entry
     * (audit.h): a list whose later pages may show personal data is recorded as a read of it. */
    for (size_t i = 0; !c->done && i < res->n_fields; i++)
        if ((res->fields[i].flags & FIELD_PERSONAL) &&
            !resource_hidden(req, res, &res->fields[i], NULL))
            req->personal_shown = true;
    char disposition[160];
    const char *name = strrchr(res->path, '/') + 1;
    snprintf(disposition, sizeof disposition, "attachment; filename=\"%s.csv\"", name);
    http_reply_stream(req, 200, "text/csv; charset=utf-8", csv_read, csv_free, c);
    http_set_header(req, "Content-Disposition", disposition);
    list_cache_header(req, res);
}
