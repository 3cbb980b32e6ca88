/* embedded: what the build puts inside the binary (tools/embed.py writes embedded.c), so that a
 * deployed werklabd needs no files beside it. */
#ifndef WERKLAB_EMBEDDED_H
#define WERKLAB_EMBEDDED_H

#include <stddef.h>

struct embedded_migration {
    const char *version;  /* "0001" */
    const char *name;     /* "schema" */
    const char *checksum; /* SHA-256 (hex) of the SQL and its data */
    const char *sql;
    const char *copy_command; /* NULL, or COPY ... FROM STDIN to run with copy_data */
    const char *copy_data;
    size_t copy_len;
};

extern const struct embedded_migration embedded_migrations[];
extern const size_t embedded_migrations_count;
extern const char embedded_openapi_json[];
extern const size_t embedded_openapi_json_len;

#endif
