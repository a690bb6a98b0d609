/* realtime — the live feed: every committed event, pushed to dashboards and
 * agents over WebSocket (GET /ws/realtime, GET /v1/stream) or Server-Sent
 * Events (GET /v1/events/stream), plus the event log as JSON pages
 * (GET /v1/events) and admin broadcasts (POST /v1/broadcast).
 *
 * Flow: the store calls realtime_on_commit after each durable commit (on
 * the SQLite writer thread or a PostgreSQL caller thread). That copies the
 * events into a mutex-protected queue and wakes the loop (uv_async_t); the
 * loop publishes them on the bus (src/bus), which delivers every node's
 * events, in order per tenant and once, to realtime's fan-out. Each client
 * has a position (the last seq it was given or skipped) and filters; a
 * client that resumes is replayed from the event log on the thread pool,
 * with live events held meanwhile, so it switches to live with no gap and
 * no duplicate.
 *
 * The hub hangs off the app (a->rt); it is created before the store (the
 * store needs its on_commit hook), started after (it needs the store), and
 * stopped when the server shuts down. */
#ifndef EH_REALTIME_H
#define EH_REALTIME_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct app app;
typedef struct rt_hub rt_hub;

/* Creates the hub (queue and loop wake-up only). NULL on OOM. */
rt_hub *realtime_new(app *a);
/* The store's on_commit hook (ud = the hub). Any thread; copies and
 * returns at once. */
void realtime_on_commit(void *ud, const store_event *ev, int n);
/* Creates the bus from a->cfg.bus and registers the routes. Returns 0, or
 * -1 after logging why. */
int realtime_start(app *a);
/* Adds a subscriber to the bus (after realtime_start): every committed
 * event of every tenant, this node's and other nodes', in order per tenant,
 * on the loop thread. 0, or -1 (no bus, or too many subscribers). */
int realtime_subscribe(app *a, void (*fn)(void *ud, const store_event *ev), void *ud);
/* Closes every client's feed and the hub's handles (on shutdown). */
void realtime_stop(app *a);
/* Frees the hub once its handles are closed (the loop must run after). */
void realtime_free(app *a);

/* For /health, /ready: open feeds, and the bus. */
size_t realtime_clients(const app *a);
const char *realtime_bus_kind(const app *a);
int realtime_bus_connected(const app *a);

/* ---- topics and filters (pure; unit-tested) ---- */

enum {
    RT_T_LEADS = 1 << 0,     /* lead.* */
    RT_T_SCORES = 1 << 1,    /* lead.scored, score.* */
    RT_T_NURTURE = 1 << 2,   /* nurture.* */
    RT_T_SYSTEM = 1 << 3,    /* system.*, broadcasts to "system" */
    RT_T_ACTIVITY = 1 << 4,  /* activity.* */
    RT_T_ALL = 1 << 5,       /* everything the principal may see */
};
#define RT_MAX_IDS 32

typedef struct rt_filter {
    int topics;                   /* RT_T_* bits */
    int64_t lead[RT_MAX_IDS];     /* lead:ID topics */
    int nlead;
    int64_t coaching[RT_MAX_IDS]; /* coaching:AGENT topics */
    int ncoaching;
    double min_score;             /* lead events: the lead's score >= this; < 0 = off */
    int64_t agent;                /* only events of this agent's leads; 0 = off */
    int64_t only_agent;           /* agent-role principal: only their own leads; 0 = off,
                                     -1 = an agent bound to no agent record (sees no leads) */
} rt_filter;

/* What an event is about, read once from its type and payload. */
typedef struct rt_event_info {
    int topic;          /* RT_T_* bit, 0 for coaching (see coaching_agent) */
    int is_lead;        /* a lead.* event */
    int64_t lead_id;    /* 0 if not known */
    int64_t agent_id;   /* 0 if not known */
    int has_score;
    double score;
    int64_t coaching_agent; /* coaching.*: the agent, 0 if unknown */
    int coaching;       /* a coaching.* event */
    char btopic[80];    /* a broadcast's topic ("" otherwise) */
} rt_event_info;

/* Resets f to "nothing" (no topics, no filters). */
void rt_filter_init(rt_filter *f);
/* Adds a topic ("leads", "lead:42", "scores", "coaching:7", "coaching:me",
 * "nurture", "system", "activity", "all"). me_agent is the principal's
 * agent (for coaching:me). Returns 0, or -1 for an unknown/malformed topic
 * or too many ids. */
int rt_filter_add_topic(rt_filter *f, const char *topic, int64_t me_agent);
/* Fills info from an event; payload may be NULL (unparsable). */
void rt_event_classify(const char *type, json_t *payload, rt_event_info *info);
/* 1 if the event passes the filter. */
int rt_filter_match(const rt_filter *f, const rt_event_info *info);
/* 1 if topic is a valid broadcast topic (same grammar as subscriptions,
 * except "all"). */
int rt_topic_valid(const char *topic);

#endif
