#include "migrate.h"

#include "buf.h"
#include "embedded.h"
#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 'werklab' in ASCII: the advisory lock that serialises migrations. */
#define MIGRATION_LOCK "8390318437507424609"

const char migrate_state_sql[] = "SELECT string_agg(version || ':' || checksum, ',' ORDER BY "
                                 "version) FROM schema_migrations";

/* The statements of migrating. They run on a connection of their own (db_connect_once()), not
 * through db_exec(): a migration is a script of many statements, some with COPY data, which only
 * the simple protocol takes. */

/* Instances starting together take turns. */
static const char SQL_LOCK[] = "SELECT pg_advisory_lock(" MIGRATION_LOCK ")";
static const char SQL_UNLOCK[] = "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")";
/* What has been applied, with checksums: made by the first run, before any migration. */
static const char SQL_CREATE_LEDGER[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, name text "
    "NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())";
/* The checksum recorded for version $1. */
static const char SQL_APPLIED_CHECKSUM[] =
    "SELECT checksum FROM schema_migrations WHERE version = $1";
/* Records migration $1 (name $2, checksum $3), in the migration's own transaction. */
static const char SQL_RECORD[] =
    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)";

static bool run(PGconn *pg, const char *sql, char *err, size_t err_len)
{
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, err_len, "%s", PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

static bool copy_in(PGconn *pg, const struct embedded_migration *m, char *err, size_t err_len)
{
    PGresult *res = PQexec(pg, m->copy_command);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        snprintf(err, err_len, "%s", PQresultErrorMessage(res));
        PQclear(res);
        return false;
    }
    PQclear(res);
    if (PQputCopyData(pg, m->copy_data, (int)m->copy_len) != 1 || PQputCopyEnd(pg, NULL) != 1) {
        snprintf(err, err_len, "%s", PQerrorMessage(pg));
        return false;
    }
    bool ok = true;
    while ((res = PQgetResult(pg)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            snprintf(err, err_len, "%s", PQresultErrorMessage(res));
            ok = false;
        }
        PQclear(res);
    }
    return ok;
}

/* The checksum recorded for version, or NULL when it was never applied. */
static char *applied_checksum(PGconn *pg, const char *version)
{
    const char *params[] = {version};
    PGresult *res = PQexecParams(pg, SQL_APPLIED_CHECKSUM, 1, NULL, params, NULL, NULL, 0);
    char *sum = NULL;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        sum = xstrdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return sum;
}

static int apply_locked(PGconn *pg, char *err, size_t err_len)
{
    char why[512];
    if (!run(pg, SQL_CREATE_LEDGER, why, sizeof why)) {
        snprintf(err, err_len, "cannot create schema_migrations: %s", why);
        return -1;
    }
    int applied = 0;
    for (size_t i = 0; i < embedded_migrations_count; i++) {
        const struct embedded_migration *m = &embedded_migrations[i];
        char *sum = applied_checksum(pg, m->version);
        if (sum) {
            bool same = strcmp(sum, m->checksum) == 0;
            free(sum);
            if (!same) {
                snprintf(err, err_len,
                         "migration %s_%s was applied with another checksum: the file changed "
                         "after it ran; restore it and add a new migration instead",
                         m->version, m->name);
                return -1;
            }
            continue;
        }
        const char *params[] = {m->version, m->name, m->checksum};
        bool ok = run(pg, "BEGIN", why, sizeof why) && run(pg, m->sql, why, sizeof why) &&
                  (!m->copy_command || copy_in(pg, m, why, sizeof why));
        if (ok) {
            PGresult *res = PQexecParams(pg, SQL_RECORD, 3, NULL, params, NULL, NULL, 0);
            ok = PQresultStatus(res) == PGRES_COMMAND_OK;
            if (!ok)
                snprintf(why, sizeof why, "%s", PQresultErrorMessage(res));
            PQclear(res);
        }
        if (!ok || !run(pg, "COMMIT", why, sizeof why)) {
            char ignored[64];
            run(pg, "ROLLBACK", ignored, sizeof ignored);
            snprintf(err, err_len, "migration %s_%s failed: %s", m->version, m->name, why);
            return -1;
        }
        log_event("info", "applied migration %s_%s", m->version, m->name);
        applied++;
    }
    return applied;
}

int migrate_apply(PGconn *pg, char *err, size_t err_len)
{
    char why[512];
    if (!run(pg, SQL_LOCK, why, sizeof why)) {
        snprintf(err, err_len, "cannot take the migration lock: %s", why);
        return -1;
    }
    int applied = apply_locked(pg, err, err_len);
    run(pg, SQL_UNLOCK, why, sizeof why);
    return applied;
}

const char *migrate_expected(void)
{
    static char *expected;
    if (!expected) {
        struct buf b = {0};
        for (size_t i = 0; i < embedded_migrations_count; i++)
            buf_printf(&b, "%s%s:%s", i ? "," : "", embedded_migrations[i].version,
                       embedded_migrations[i].checksum);
        expected = buf_detach(&b);
    }
    return expected;
}
