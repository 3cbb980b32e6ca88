/* problem: error answers as problem details (RFC 9457), the one shape of every error werklabd
 * sends: {"type": "about:blank", "title", "status", "detail", "instance"}, with the invalid
 * fields of a 400 ("invalidParams") and the conflicts of a 409 ("conflicts").
 *
 * Invalid fields and conflicts are collected on the request (in req->pool, up to
 * HTTP_MAX_INVALID and HTTP_MAX_CONFLICTS; more are dropped) and answered together. Texts are
 * cut at their limits on a whole UTF-8 character. The database's status classes (db.h) map to
 * HTTP here, once. */
#ifndef WERKLAB_PROBLEM_H
#define WERKLAB_PROBLEM_H

#include "db.h"

#define HTTP_MAX_INVALID   64
#define HTTP_MAX_CONFLICTS 16

struct request;

struct http_invalid_param {
    char name[96];
    const char *code; /* required, type, format, enum, minimum, maximum, minLength, ... */
    char reason[192];
};

struct http_conflict {
    const char *code;
    char detail[256];
};

/* Problem details (RFC 9457). detail is a printf format. */
void http_problem(struct request *req, int status, const char *detail, ...)
    __attribute__((format(printf, 3, 4)));
/* Collects an invalid field or query key; http_problem_invalid() answers 400 with all of them. */
void http_invalid(struct request *req, const char *name, const char *code, const char *reason, ...)
    __attribute__((format(printf, 4, 5)));
void http_problem_invalid(struct request *req);
/* Collects a conflict; http_problem_conflicts() answers 409 with all of them. */
void http_conflict(struct request *req, const char *code, const char *detail, ...)
    __attribute__((format(printf, 3, 4)));
void http_problem_conflicts(struct request *req, const char *detail);
/* 503 with Retry-After: the database is unreachable. */
void http_problem_unavailable(struct request *req);
/* For a statement that failed where no failure is expected of the client's making: 503 when the
 * database is unreachable or the statement collided with another (DB_RETRY), else 500 (a bug:
 * db has logged it). */
void http_problem_database(struct request *req, enum db_status status);

/* The reason phrase of a status werklabd answers with ("Internal Server Error" for others). */
const char *problem_title(int status);

#endif
