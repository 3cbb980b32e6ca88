/* Figures for partners: werklabs by status, participants, sessions held, initiatives that took
 * part and the average rating, per year and province — aggregates only, computed by PostgreSQL
 * from the rows themselves, over the werklabs the caller reaches (list.h): a limited partner's
 * municipalities', a trainer's own. A werklab's year is that of its first session, in
 * Europe/Amsterdam, or of its creation while it has no sessions. */
#include "api.h"
#include "common.h"
#include "validate.h"

#include <stdlib.h>
#include <string.h>

static const char SQL_FIGURES[] =
    "WITH per AS ("
    " SELECT w.id, w.status, w.participant_count, m.province,"
    " coalesce(extract(year FROM w.starts_on),"
    " extract(year FROM w.created_at AT TIME ZONE 'Europe/Amsterdam'))::integer AS year"
    " FROM werklabs w JOIN municipalities m ON m.id = w.municipality_id"
    " WHERE true %s"
    " AND ($2::text IS NULL OR m.province = $2::text))"
    " SELECT p.year, p.province, count(*),"
    " count(*) FILTER (WHERE p.status = 'inquiry'), count(*) FILTER (WHERE p.status = 'intake'),"
    " count(*) FILTER (WHERE p.status = 'planned'), count(*) FILTER (WHERE p.status = 'running'),"
    " count(*) FILTER (WHERE p.status = 'completed'),"
    " count(*) FILTER (WHERE p.status = 'cancelled'),"
    " coalesce(sum(p.participant_count), 0),"
    " (SELECT count(*) FROM sessions s JOIN per q ON q.id = s.werklab_id WHERE q.year = p.year"
    " AND q.province IS NOT DISTINCT FROM p.province AND s.ends_at <= now()),"
    " (SELECT count(DISTINCT si.initiative_id) FROM session_initiatives si"
    " JOIN sessions s ON s.id = si.session_id JOIN per q ON q.id = s.werklab_id"
    " WHERE q.year = p.year AND q.province IS NOT DISTINCT FROM p.province),"
    " (SELECT round(avg(f.rating), 2) FROM feedback f JOIN per q ON q.id = f.werklab_id"
    " WHERE q.year = p.year AND q.province IS NOT DISTINCT FROM p.province)"
    " FROM per p WHERE ($1::integer IS NULL OR p.year = $1::integer)"
    " GROUP BY p.year, p.province ORDER BY p.year, p.province NULLS LAST";

/* SQL_FIGURES within each kind of reach, [0] unlimited; made by stats_register. */
static char *figures[REACH_KINDS + 1];

static const char *const statuses[] = {"inquiry", "intake",    "planned",
                                       "running", "completed", "cancelled"};

static void answer_stats(struct request *req, struct db_result *r, void *unused);

static void stats(struct request *req)
{
    const char *year = http_query(req, "year"), *province = http_query(req, "province");
    if (year && !validate_whole(year, 2000, 2100, NULL))
        http_invalid(req, "year", "format", "must be a year from 2000 to 2100");
    if (province) {
        bool known = false;
        for (const char *const *p = provinces; *p; p++)
            known |= strcmp(*p, province) == 0;
        if (!known)
            http_invalid(req, "province", "enum", "must be one of the 12 provinces");
    }
    if (req->n_invalid) {
        http_problem_invalid(req);
        return;
    }
    /* A limited caller sees figures over what it reaches only: the statement of its reach. */
    const char *reach;
    enum reach kind = list_reach(req, &reach);
    const char *params[] = {year, province, reach};
    http_defer_read(req, figures[kind + 1], kind == REACH_NONE ? 2 : 3, params, answer_stats, NULL);
}

static void answer_stats(struct request *req, struct db_result *result, void *unused)
{
    (void)unused;
    if (result->status != DB_OK) {
        http_problem_database(req, result->status);
        return;
    }
    const struct db_result r = *result;
    struct jsonw *w = &req->w;
    list_begin(req);
    for (int i = 0; i < db_rows(&r); i++) {
        jsonw_object_begin(w);
        jsonw_key(w, "year");
        jsonw_raw(w, db_value(&r, i, 0));
        jsonw_kv_string(w, "province", db_value(&r, i, 1));
        jsonw_key(w, "werklabs");
        jsonw_object_begin(w);
        jsonw_key(w, "total");
        jsonw_raw(w, db_value(&r, i, 2));
        for (int s = 0; s < 6; s++) {
            jsonw_key(w, statuses[s]);
            jsonw_raw(w, db_value(&r, i, 3 + s));
        }
        jsonw_object_end(w);
        jsonw_key(w, "participants");
        jsonw_raw(w, db_value(&r, i, 9));
        jsonw_key(w, "sessionsHeld");
        jsonw_raw(w, db_value(&r, i, 10));
        jsonw_key(w, "initiatives");
        jsonw_raw(w, db_value(&r, i, 11));
        jsonw_key(w, "averageRating");
        jsonw_raw(w, db_value(&r, i, 12) ? db_value(&r, i, 12) : "null");
        jsonw_object_end(w);
    }
    list_end(req, NULL);
}

static const char *const stats_keys[] = {"year", "province", NULL};

static struct route routes[] = {
    {.method = HTTP_GET,
     .pattern = "/v1/stats",
     .handler = stats,
     .roles = ROLES_READ | ROLE_TRAINER,
     .query_keys = stats_keys},
};

void stats_register(void)
{
    /* SQL_FIGURES for each kind of reach (and none), its werklabs limited by list_reach's
     * condition with $3: the one condition every list of a limited caller uses. */
    static const char *const reach_of_werklab[REACH_KINDS] = {
        [REACH_MUNICIPALITY] = "w.municipality_id",
        [REACH_WERKLAB] = "w.id",
    };
    for (int kind = REACH_NONE; kind < REACH_KINDS; kind++) {
        struct buf condition = {0}, sql = {0};
        if (kind != REACH_NONE)
            list_append_reach(&condition, kind, reach_of_werklab[kind], 3);
        buf_printf(&sql, SQL_FIGURES, condition.data ? condition.data : "");
        figures[kind + 1] = buf_detach(&sql);
        buf_free(&condition);
    }
    router_add(routes, COUNT(routes));
}
