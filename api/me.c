/* GET /v1/me: who is asking, as werklabd sees them — for a front end that signed a person in and
 * wants to show or decide by their role, and for anyone checking what a key may do.
 *
 * Every member is always there, null where it does not apply: a key has keyId and no subject;
 * a person's token has subject, client and name (if the token gives one); a limited partner has
 * the CBS codes of its municipalities; a trainer the id of the trainer record the token was
 * linked to. Nothing is read but the caller's own identity, so nothing is audited. */
#include "api.h"
#include "common.h"

#include <string.h>

/* The codes of the municipalities a limited partner may read ($1: their ids), in code order. */
static const char SQL_CODES[] =
    "SELECT code FROM municipalities WHERE id = ANY ($1::uuid[]) ORDER BY code";

static void nullable(struct jsonw *w, const char *key, const char *value)
{
    jsonw_kv_string(w, key, value && *value ? value : NULL);
}

/* Writes the codes of who's municipalities; false when the database could not be asked. */
static bool write_codes(struct request *req)
{
    const struct auth_identity *who = &req->who;
    struct buf ids = {0};
    buf_putc(&ids, '{');
    for (int i = 0; i < who->n_municipalities; i++)
        buf_printf(&ids, "%s%s", i ? "," : "", who->municipality_ids[i]);
    buf_putc(&ids, '}');
    const char *params[] = {ids.data};
    struct db_result r;
    enum db_status s = db_exec(SQL_CODES, 1, params, &r);
    buf_free(&ids);
    if (s == DB_OK) {
        jsonw_array_begin(&req->w);
        for (int i = 0; i < db_rows(&r); i++)
            jsonw_string(&req->w, db_value(&r, i, 0));
        jsonw_array_end(&req->w);
    }
    db_clear(&r);
    return s == DB_OK;
}

static void me(struct request *req)
{
    const struct auth_identity *who = &req->who;
    struct jsonw *w = &req->w;
    jsonw_object_begin(w);
    jsonw_kv_string(w, "role", auth_role_name(who->role));
    nullable(w, "keyId", who->key_id);
    nullable(w, "subject", who->subject);
    nullable(w, "client", who->client);
    nullable(w, "name", who->name);
    jsonw_key(w, "municipalities");
    if (who->role == ROLE_PARTNER && who->limited) {
        if (!write_codes(req)) {
            http_problem_unavailable(req);
            return;
        }
    } else {
        jsonw_raw(w, "null");
    }
    nullable(w, "trainerId", who->role == ROLE_TRAINER ? who->trainer_id : NULL);
    jsonw_object_end(w);
    http_set_header(req, "Cache-Control", "no-store");
    http_reply(req, 200);
}

static struct route routes[] = {
    {.method = HTTP_GET,
     .pattern = "/v1/me",
     .handler = me,
     .roles = ROLE_PARTNER | ROLE_STAFF | ROLE_ADMIN | ROLE_TRAINER},
};

void me_register(void)
{
    router_add(routes, COUNT(routes));
}
