/* bus — carries committed events from the store to every node's realtime
 * feed, in order per tenant, once.
 *
 * Two implementations behind one API:
 *   inproc  events published on this node reach this node's subscribers;
 *   redis   the same, plus a PUBLISH on one Redis channel, and every event
 *           another node publishes there reaches our subscribers too.
 * Events published here are always delivered locally at once, without a
 * round trip through Redis, so local clients keep being served while Redis
 * is down.
 *
 * Whatever the path, deliveries go through a sequencer (bus_seq): per
 * tenant it delivers seq n+1 after n, drops what it already delivered
 * (an event may arrive twice: locally and back from Redis), and holds events
 * that arrive after a gap. A gap that does not close by itself within a few
 * milliseconds (a message lost while Redis was down, or on_commit calls
 * that raced on PostgreSQL) is filled by reading the event log
 * (store_events_after) on the thread pool. After a reconnect every tenant
 * the node knows is caught up from the log the same way; what this node
 * published while Redis was unreachable is kept (bounded) and published
 * when it is back.
 *
 * Threads: everything here runs on the loop thread (the store is only
 * touched from pool jobs). Subscribers are called on the loop thread. */
#ifndef EH_BUS_H
#define EH_BUS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/log.h"
#include "base/metrics.h"
#include "store/store.h"

/* ---- the sequencer (pure logic, no I/O) ---- */

typedef struct bus_seq bus_seq;

/* Called for each event in delivery order. ev is valid during the call. */
typedef void (*bus_fn)(void *ud, const store_event *ev);

enum {
    BUS_SEQ_DELIVERED = 0, /* delivered (and maybe held ones after it) */
    BUS_SEQ_DUP = 1,       /* already delivered: dropped */
    BUS_SEQ_HELD = 2,      /* after a gap: held until the gap is filled */
    BUS_SEQ_NOMEM = -1,    /* could not hold it: dropped (a later fill brings it back) */
};

/* max_held: events held per tenant while waiting for a gap (0 = 4096);
 * beyond it events are dropped, not held, and come back with the fill.
 * Returns NULL on OOM. */
bus_seq *bus_seq_new(size_t max_held);
void bus_seq_free(bus_seq *q);
/* Offers one event (copied if held). Calls out for it and for every held
 * event it makes deliverable. A tenant seen for the first time starts at
 * this event unless bus_seq_watch set its position before, or a lookback
 * is set (below). */
int bus_seq_offer(bus_seq *q, const store_event *ev, bus_fn out, void *ud);
/* With a lookback n > 0, a tenant seen for the first time starts n events
 * before its first event, which is held: the caller fills the gap from the
 * event log. Older events then still arrive in order (commits of one tenant
 * reported out of order on PostgreSQL cannot be mistaken for duplicates);
 * subscribers drop what they already have by seq. Default 0. */
void bus_seq_set_lookback(bus_seq *q, int64_t n);
/* Sets the position of a tenant not seen yet (no effect on a known one):
 * events after seq are delivered, seq and older are duplicates. */
void bus_seq_watch(bus_seq *q, int64_t tenant, int64_t seq);
/* Last delivered seq of a tenant, -1 if unknown. */
int64_t bus_seq_position(const bus_seq *q, int64_t tenant);
/* Tenants with held events (a gap), up to max; returns how many. */
int bus_seq_gaps(const bus_seq *q, int64_t *tenants, int max);
/* Every known tenant, up to max; returns how many. */
int bus_seq_tenants(const bus_seq *q, int64_t *tenants, int max);
/* Events held over all tenants. */
size_t bus_seq_held(const bus_seq *q);

/* ---- the bus ---- */

typedef struct bus bus;

typedef struct bus_opts {
    uv_loop_t *loop;
    const char *url;  /* "inproc" or "redis://HOST[:PORT][/CHANNEL]" (default channel "ehub:events") */
    store *st;        /* for gap fills; borrowed, must outlive the bus */
    logger *log;      /* borrowed */
    metrics *m;       /* borrowed, may be NULL */
    size_t max_unsent; /* events kept for publishing while Redis is down (0 = 10000) */
} bus_opts;

/* Creates the bus and, for Redis, starts connecting (a Redis that is not
 * there yet is retried with backoff; it is not an error here). Returns NULL
 * with a message in err for a malformed URL or OOM. */
bus *bus_new(const bus_opts *o, char *err, size_t errlen);
/* Adds a subscriber (at most 8). Returns 0 or -1. */
int bus_subscribe(bus *b, bus_fn fn, void *ud);
/* Publishes committed events (in any order; the sequencer sorts them out).
 * Events are copied. Returns 0, or -1 on OOM (those events then reach
 * other nodes only through their gap fills). */
int bus_publish(bus *b, const store_event *ev, int n);
/* See bus_seq_watch: a subscriber that read a tenant's position from the
 * store tells the bus, so the first live event it sees is not mistaken for
 * the start. */
void bus_watch(bus *b, int64_t tenant, int64_t seq);
int64_t bus_position(const bus *b, int64_t tenant);

const char *bus_kind(const bus *b);  /* "inproc" or "redis" */
/* 1 if events reach other nodes (always 1 for inproc). */
int bus_connected(const bus *b);
/* Milliseconds between commit and delivery of the last delivered event. */
double bus_lag_ms(const bus *b);

/* Closes connections and handles; frees the bus once they are closed and
 * running pool jobs have finished (the loop must keep running). Subscribers
 * are not called any more. NULL is a no-op. */
void bus_free(bus *b);

/* ---- wire format (exposed for tests) ----
 * One Redis message per event: "TENANT SEQ TIME_MS TYPE\nPAYLOAD". */
/* Encodes into a new string (caller eh_frees); NULL on OOM. */
char *bus_encode(const store_event *ev, size_t *len);
/* Decodes; ev's strings point into buf, which is modified. 0 or -1. */
int bus_decode(char *buf, size_t len, store_event *ev);

#endif
