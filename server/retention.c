#include "retention.h"

#include "audit.h"
#include "buf.h"
#include "db.h"
#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A run's own bound, in place of the statement timeout meant for requests: a run is made of
 * batches that take a few seconds at most (migrations/0008_retention.sql), and a backlog must be
 * worked off also where requests get a short timeout. */
#define RUN_TIMEOUT_MS "60000"

/* The run's own statement timeout, for the rest of its transaction only. */
static const char SQL_RUN_TIMEOUT[] =
    "SELECT set_config('statement_timeout', '" RUN_TIMEOUT_MS "', true)";
/* One run with the three periods in days (inquiries, participants, audit entries): one row per
 * kind of record it changed, and "failed"; no row when another instance holds the run's lock
 * (migrations/0008_retention.sql). */
static const char SQL_RUN[] =
    "SELECT what, changed FROM retention_run($1::integer, $2::integer, $3::integer)";

static char periods[3][16];

void retention_configure(unsigned inquiry_days, unsigned participant_days, unsigned audit_days)
{
    snprintf(periods[0], sizeof periods[0], "%u", inquiry_days);
    snprintf(periods[1], sizeof periods[1], "%u", participant_days);
    snprintf(periods[2], sizeof periods[2], "%u", audit_days);
}

/* Fills e's resource with the counts of r's rows (what, changed) but "failed", and *failed with
 * how many werklabs the run could not anonymise. */
static void summarise(const struct db_result *r, struct audit_entry *e, long long *failed)
{
    struct buf counts = {0};
    for (int i = 0; i < db_rows(r); i++) {
        const char *what = db_value(r, i, 0), *n = db_value(r, i, 1);
        if (strcmp(what, "failed") == 0) {
            *failed = strtoll(n, NULL, 10);
            continue;
        }
        buf_printf(&counts, "%s%s=%s", counts.len ? " " : "", what, n);
    }
    snprintf(e->resource, sizeof e->resource, "%s", counts.data ? counts.data : "");
    buf_free(&counts);
}

/* One run inside the open transaction, with its audit entry e; true when it ran (this instance
 * had the lock and the run succeeded), so that it and its entry are committed. */
static bool apply(struct audit_entry *e)
{
    const char *params[] = {periods[0], periods[1], periods[2]};
    struct db_result r;
    bool ran = false;
    if (db_exec(SQL_RUN_TIMEOUT, 0, NULL, &r) == DB_OK) {
        db_clear(&r);
        db_exec(SQL_RUN, 3, params, &r);
    }
    if (r.status != DB_OK) {
        log_event("error", "retention: the run failed: %s", r.message);
    } else if (db_rows(&r) == 0) {
        log_event("info", "retention: another instance is running it; skipped");
    } else {
        long long failed = 0;
        summarise(&r, e, &failed);
        ran = true;
        if (failed)
            log_event("error",
                      "retention: the people of %lld closed werklab%s could not be anonymised: a "
                      "constraint refused a value the erasure writes; they are tried again each "
                      "run",
                      failed, failed == 1 ? "" : "s");
    }
    db_clear(&r);
    if (ran && audit_write(e) != DB_OK) {
        log_event("error", "retention: the audit entry could not be written; nothing was changed");
        return false;
    }
    return ran;
}

void retention_run(void)
{
    if (db_begin() != DB_OK)
        return; /* the database is away: the next run tries again */
    struct audit_entry e = {.action = "retention", .status = 200};
    if (!apply(&e))
        db_rollback();
    else if (db_commit() != DB_OK)
        log_event("error", "retention: the run could not be committed; nothing was changed");
    else
        log_event("info", "retention: %s", e.resource);
}
