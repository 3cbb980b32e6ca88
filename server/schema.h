/* schema: the contract of the registered resources, told by their descriptions.
 *
 * `werklabd schema` prints it: for each resource registered with resource_register(), the JSON
 * Schema (OpenAPI 3.0 dialect: `nullable: true`, and `null` in an enum that may be null) of what
 * a read gives, what a create and a merge patch take, and the query keys its list takes with
 * the rules of their values. It reads only the descriptions and the route table: no database,
 * no network, so it runs wherever the binary does (CI, a build).
 *
 * openapi.yaml stays hand-written; tests/api/test_openapi_fields.py holds it to this output,
 * field by field (see the opening comment of resource/schema.c for why). */
#ifndef WERKLAB_SCHEMA_H
#define WERKLAB_SCHEMA_H

#include <jansson.h>
#include <stdio.h>

/* The document, a new reference (the caller json_decref()s it):
 *   {"openapi": "3.0.3",
 *    "resources": [{"name", "path", "itemPath", "operations": ["list", "create", ...],
 *                   "read": schema, "create": schema, "patch": schema,
 *                   "list": {"parameters": {"<query key>": schema, ...}}}, ...]}
 * "create", "patch" and "list" are there only when the resource has that operation. */
json_t *schema_document(void);

/* Writes schema_document() to out as indented JSON and a newline; -1 when writing failed. */
int schema_print(FILE *out);

#endif
