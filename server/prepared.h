/* prepared: the statements one database connection keeps prepared, found by their SQL.
 *
 * List SQL varies with page size, sort and filters, so a long-running connection meets more
 * distinct statements than it should keep prepared. The table holds PREPARED_SLOTS of them; when
 * it is full, adding one evicts the least recently used, whose name the caller then deallocates on
 * its connection. So every statement runs prepared, and a connection keeps at most
 * PREPARED_SLOTS prepared statements on the server.
 *
 * Lookups and additions are O(1): chained hashing over the fixed array of slots, with the order
 * of use kept in a doubly linked list. Names come from a counter per table, never from the SQL:
 * a statement prepared again after its eviction gets a new name, so a name always means one
 * preparation, also while an older one is still on its way to the server (pipeline mode).
 *
 * The slot count is a constant, small enough that a test can exceed it with distinct list shapes.
 * A zeroed struct is an empty table. Pure: nothing here talks to PostgreSQL. */
#ifndef WERKLAB_PREPARED_H
#define WERKLAB_PREPARED_H

#include <stdbool.h>
#include <stdint.h>

#define PREPARED_SLOTS 128
#define PREPARED_NAME  24 /* "s" and a decimal counter */

struct prepared_statement {
    char *sql; /* NULL: a free slot */
    uint64_t hash;
    char name[PREPARED_NAME];
    bool prepared; /* sent for preparing, and not known to have failed */
    uint64_t used; /* the table's clock at its last use */
    /* Slot numbers + 1, 0 for none: the next in its hash chain, its neighbours in the use order. */
    int chain, newer, older;
};

struct prepared {
    struct prepared_statement slot[PREPARED_SLOTS];
    int bucket[2 * PREPARED_SLOTS]; /* the first slot of each chain + 1; 0: empty */
    int count;
    int newest, oldest; /* slot + 1 */
    uint64_t clock;     /* advanced by every find and add */
    uint64_t names;     /* names given so far */
};

/* The statement with this SQL, now the most recently used; NULL when the table lacks it. */
struct prepared_statement *prepared_find(struct prepared *t, const char *sql);

/* Adds sql (not in the table) as the most recently used, under a new name and not yet prepared.
 * When the table is full the least recently used statement is evicted first: evicted gets its
 * name when it was prepared (the caller deallocates it), else "". */
struct prepared_statement *prepared_add(struct prepared *t, const char *sql,
                                        char evicted[PREPARED_NAME]);

/* Whether adding a statement now would evict one used after `since`, a value of t->clock read
 * earlier: lets a caller that prepares several statements at once (a pipeline batch) stop
 * before evicting one it is about to use. */
bool prepared_evicts_since(const struct prepared *t, uint64_t since);

/* Empties the table (its connection is gone: nothing is prepared any more). */
void prepared_clear(struct prepared *t);

#endif
