/* migrate: the database schema, brought up to date from the migrations embedded in the binary.
 *
 * Migrations are applied in order, each in its own transaction, and recorded in schema_migrations
 * with a checksum. All of it runs under a PostgreSQL advisory lock, so instances starting together
 * take turns. A migration that was applied but has since changed stops everything: the database
 * and the binary disagree, and only a person can say which is right. */
#ifndef WERKLAB_MIGRATE_H
#define WERKLAB_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

/* Applies what is pending on pg. Returns how many were applied, or -1 with a message in err. */
int migrate_apply(PGconn *pg, char *err, size_t err_len);

/* "0001:<checksum>,0002:<checksum>": what schema_migrations holds when the database is current. */
const char *migrate_expected(void);

/* The query whose single value equals migrate_expected() on a current database. */
extern const char migrate_state_sql[];

#endif
