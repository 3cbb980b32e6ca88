#include "prepared.h"

#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS (2 * PREPARED_SLOTS)

static uint64_t hash_sql(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct prepared_statement *at(struct prepared *t, int plus_one)
{
    return plus_one ? &t->slot[plus_one - 1] : NULL;
}

static int number(const struct prepared *t, const struct prepared_statement *st)
{
    return (int)(st - t->slot) + 1;
}

/* ---- the order of use: newest first ---- */

static void unlink_use(struct prepared *t, struct prepared_statement *st)
{
    if (st->newer)
        at(t, st->newer)->older = st->older;
    else
        t->newest = st->older;
    if (st->older)
        at(t, st->older)->newer = st->newer;
    else
        t->oldest = st->newer;
    st->newer = st->older = 0;
}

static void push_newest(struct prepared *t, struct prepared_statement *st)
{
    int n = number(t, st);
    st->older = t->newest;
    st->newer = 0;
    if (t->newest)
        at(t, t->newest)->newer = n;
    else
        t->oldest = n;
    t->newest = n;
    st->used = ++t->clock;
}

/* ---- the hash chains ---- */

static void unlink_chain(struct prepared *t, struct prepared_statement *st)
{
    int n = number(t, st);
    for (int *link = &t->bucket[st->hash % BUCKETS]; *link; link = &at(t, *link)->chain) {
        if (*link == n) {
            *link = st->chain;
            break;
        }
    }
    st->chain = 0;
}

struct prepared_statement *prepared_find(struct prepared *t, const char *sql)
{
    uint64_t h = hash_sql(sql);
    for (int n = t->bucket[h % BUCKETS]; n; n = at(t, n)->chain) {
        struct prepared_statement *st = at(t, n);
        if (st->hash == h && strcmp(st->sql, sql) == 0) {
            unlink_use(t, st);
            push_newest(t, st);
            return st;
        }
    }
    return NULL;
}

struct prepared_statement *prepared_add(struct prepared *t, const char *sql,
                                        char evicted[PREPARED_NAME])
{
    evicted[0] = '\0';
    struct prepared_statement *st;
    if (t->count < PREPARED_SLOTS) {
        st = &t->slot[t->count++]; /* slots fill in order and are only ever reused after that */
    } else {
        st = at(t, t->oldest);
        if (st->prepared)
            memcpy(evicted, st->name, PREPARED_NAME);
        unlink_use(t, st);
        unlink_chain(t, st);
        free(st->sql);
    }
    st->sql = xstrdup(sql);
    st->hash = hash_sql(sql);
    st->prepared = false;
    snprintf(st->name, sizeof st->name, "s%llu", (unsigned long long)++t->names);
    int *head = &t->bucket[st->hash % BUCKETS];
    st->chain = *head;
    *head = number(t, st);
    push_newest(t, st);
    return st;
}

bool prepared_evicts_since(const struct prepared *t, uint64_t since)
{
    return t->count == PREPARED_SLOTS && t->slot[t->oldest - 1].used > since;
}

void prepared_clear(struct prepared *t)
{
    for (int i = 0; i < t->count; i++)
        free(t->slot[i].sql);
    memset(t, 0, sizeof *t);
}
