/* replicas: which database serves a read — a PostgreSQL streaming replica that has replayed far
 * enough, or the primary.
 *
 * Reads of resources and lists may run on a replica (WERKLAB_READ_DATABASE_URL); everything else
 * runs on the primary. A thread of its own asks every REPLICAS_POLL_MS where the primary's WAL
 * stands (pg_current_wal_lsn) and how far each replica has replayed it
 * (pg_last_wal_replay_lsn). A replica's lag is the time since the primary was at the first
 * position the replica has not replayed yet, so an idle primary means no lag, and a paused or
 * stalled replica's lag grows by the clock. A replica is used while it answers, is in recovery
 * and lags no more than the configured bound; the primary serves the reads it cannot.
 *
 * Positions are what make a client read its writes: a write's answer carries the WAL position
 * after its commit (the Consistency-Token), and a read that brings one back is served only by a
 * database known to have replayed that far. The instance that made a write also remembers its
 * position for the caller (key or person) for REPLICAS_REMEMBER_MS, for clients that do not send
 * the token back. */
#ifndef WERKLAB_REPLICAS_H
#define WERKLAB_REPLICAS_H

#include "buf.h"
#include "jsonw.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REPLICAS_MAX         8
#define REPLICAS_POLL_MS     200
#define REPLICAS_REMEMBER_MS 5000
#define REPLICAS_TOKEN_LEN   16 /* hexadecimal digits */

/* Where a read goes: REPLICAS_PRIMARY, or 1..replicas_count() for a replica. */
#define REPLICAS_PRIMARY 0u

/* Takes the comma-separated replica URLs (NULL or "": none) and the lag bound, before any other
 * call. Returns 0, or -1 with why in err. */
int replicas_configure(const char *primary_url, const char *urls, unsigned max_lag_ms, char *err,
                       size_t err_len);
/* How many replicas are configured (0: every read runs on the primary, and there are no
 * positions). */
unsigned replicas_count(void);
/* Replica i's URL (1..count), for its connections. */
const char *replicas_url(unsigned target);
/* "primary", "replica-1", ... */
const char *replicas_name(unsigned target);

/* Starts the polling thread and waits for its first round (at most a connect timeout), so that
 * the replicas are used from the first request. No-op without replicas. */
int replicas_start(void);
void replicas_stop(void);

/* The database for a read that must see at least position min (0: any): a usable replica that
 * has replayed min, taken in turn, else REPLICAS_PRIMARY. *position gets a WAL position that the
 * chosen database had replayed before the read runs (0 when unknown). Counts the read for
 * /metrics. */
unsigned replicas_choose(uint64_t min, uint64_t *position);
/* A read ran on target (for /metrics: reads by the database that ran them). */
void replicas_served(unsigned target);
/* A connection to replica target failed: it is not chosen until the poller reaches it again. */
void replicas_failed(unsigned target);
/* The primary's WAL position at the last poll (0: unknown). */
uint64_t replicas_primary_position(void);

/* Read your writes without the token: the position of caller's last write here, kept for
 * REPLICAS_REMEMBER_MS (caller: a key id or a person's subject; "" is nobody). */
void replicas_note_write(const char *caller, uint64_t position);
uint64_t replicas_recent_write(const char *caller);

/* The Consistency-Token's text: REPLICAS_TOKEN_LEN lower-case hexadecimal digits. Parse is
 * strict: anything else is false. */
void replicas_format_token(uint64_t position, char out[REPLICAS_TOKEN_LEN + 1]);
bool replicas_parse_token(const char *text, uint64_t *position);

/* For /readyz: whether some replica is used for reads now; the "databases" member, each database
 * with its state (the primary's is primary_up). */
bool replicas_any_up(void);
void replicas_describe(struct jsonw *w, bool primary_up);
/* For /metrics: lag, whether each replica is used, reads by target. */
void replicas_metrics(struct buf *out);

#endif
