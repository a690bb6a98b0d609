/* The bus sequencer: per-tenant order and deduplication. See bus.h. */
#include <string.h>

#include "base/alloc.h"
#include "bus.h"

typedef struct held {
    store_event ev; /* strings owned */
} held;

typedef struct tstate {
    int64_t tenant; /* 0 = empty slot */
    int64_t pos;    /* last delivered seq */
    held *h;        /* sorted by seq, no duplicates */
    int nh, caph;
} tstate;

struct bus_seq {
    tstate *t;
    size_t cap, n; /* open addressing, cap a power of two */
    size_t max_held, nheld;
    int64_t lookback;
};

void bus_seq_set_lookback(bus_seq *q, int64_t n) { q->lookback = n > 0 ? n : 0; }

bus_seq *bus_seq_new(size_t max_held) {
    bus_seq *q = eh_calloc(1, sizeof *q);
    if (!q) return NULL;
    q->cap = 64;
    q->t = eh_calloc(q->cap, sizeof *q->t);
    if (!q->t) {
        eh_free(q);
        return NULL;
    }
    q->max_held = max_held ? max_held : 4096;
    return q;
}

static void held_free(held *h) {
    eh_free((char *)h->ev.type);
    eh_free((char *)h->ev.payload);
}

void bus_seq_free(bus_seq *q) {
    if (!q) return;
    for (size_t i = 0; i < q->cap; i++) {
        for (int j = 0; j < q->t[i].nh; j++) held_free(&q->t[i].h[j]);
        eh_free(q->t[i].h);
    }
    eh_free(q->t);
    eh_free(q);
}

static size_t slot_of(int64_t tenant, size_t cap) {
    uint64_t x = (uint64_t)tenant * 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 32) & (cap - 1);
}

static tstate *find(const bus_seq *q, int64_t tenant) {
    for (size_t i = slot_of(tenant, q->cap);; i = (i + 1) & (q->cap - 1)) {
        if (q->t[i].tenant == tenant) return &q->t[i];
        if (q->t[i].tenant == 0) return NULL;
    }
}

static int grow(bus_seq *q) {
    size_t cap = q->cap * 2;
    tstate *t = eh_calloc(cap, sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < q->cap; i++) {
        if (!q->t[i].tenant) continue;
        size_t j = slot_of(q->t[i].tenant, cap);
        while (t[j].tenant) j = (j + 1) & (cap - 1);
        t[j] = q->t[i];
    }
    eh_free(q->t);
    q->t = t;
    q->cap = cap;
    return 0;
}

/* Adds a tenant at position pos; NULL on OOM. */
static tstate *add(bus_seq *q, int64_t tenant, int64_t pos) {
    if ((q->n + 1) * 2 > q->cap && grow(q)) return NULL;
    size_t i = slot_of(tenant, q->cap);
    while (q->t[i].tenant) i = (i + 1) & (q->cap - 1);
    q->t[i].tenant = tenant;
    q->t[i].pos = pos;
    q->n++;
    return &q->t[i];
}

void bus_seq_watch(bus_seq *q, int64_t tenant, int64_t seq) {
    if (tenant <= 0 || find(q, tenant)) return;
    add(q, tenant, seq < 0 ? 0 : seq);
}

int64_t bus_seq_position(const bus_seq *q, int64_t tenant) {
    const tstate *t = find(q, tenant);
    return t ? t->pos : -1;
}

static int hold(bus_seq *q, tstate *t, const store_event *ev) {
    int lo = 0, hi = t->nh;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (t->h[mid].ev.seq < ev->seq) lo = mid + 1;
        else hi = mid;
    }
    if (lo < t->nh && t->h[lo].ev.seq == ev->seq) return BUS_SEQ_DUP;
    if ((size_t)t->nh >= q->max_held) return BUS_SEQ_NOMEM;
    if (t->nh == t->caph) {
        int cap = t->caph ? t->caph * 2 : 8;
        held *h = eh_realloc(t->h, (size_t)cap * sizeof *h);
        if (!h) return BUS_SEQ_NOMEM;
        t->h = h;
        t->caph = cap;
    }
    held c = {*ev};
    c.ev.type = eh_strdup(ev->type);
    c.ev.payload = eh_strdup(ev->payload);
    if (!c.ev.type || !c.ev.payload) {
        held_free(&c);
        return BUS_SEQ_NOMEM;
    }
    if (lo < t->nh) memmove(&t->h[lo + 1], &t->h[lo], (size_t)(t->nh - lo) * sizeof *t->h);
    t->h[lo] = c;
    t->nh++;
    q->nheld++;
    return BUS_SEQ_HELD;
}

int bus_seq_offer(bus_seq *q, const store_event *ev, bus_fn out, void *ud) {
    tstate *t = find(q, ev->tenant);
    if (!t) {
        /* First sight: start here (or lookback events earlier, see
         * bus_seq_set_lookback). Without a lookback, a late older event for
         * this tenant is taken for a duplicate. */
        int64_t start = ev->seq - 1 - q->lookback;
        if (!(t = add(q, ev->tenant, start < 0 ? 0 : start))) return BUS_SEQ_NOMEM;
    }
    if (ev->seq <= t->pos) return BUS_SEQ_DUP;
    if (ev->seq > t->pos + 1) return hold(q, t, ev);
    int64_t tenant = ev->tenant;
    t->pos = ev->seq;
    out(ud, ev);
    /* Subscribers should not add tenants from out, but stay safe if the
     * table moved. */
    t = find(q, tenant);
    int k = 0;
    while (k < t->nh && t->h[k].ev.seq <= t->pos + 1) {
        if (t->h[k].ev.seq == t->pos + 1) {
            t->pos++;
            out(ud, &t->h[k].ev);
            t = find(q, tenant);
        }
        k++;
    }
    if (k) {
        for (int i = 0; i < k; i++) held_free(&t->h[i]);
        memmove(t->h, t->h + k, (size_t)(t->nh - k) * sizeof *t->h);
        t->nh -= k;
        q->nheld -= (size_t)k;
    }
    return BUS_SEQ_DELIVERED;
}

int bus_seq_gaps(const bus_seq *q, int64_t *tenants, int max) {
    int n = 0;
    for (size_t i = 0; i < q->cap && n < max; i++)
        if (q->t[i].tenant && q->t[i].nh) tenants[n++] = q->t[i].tenant;
    return n;
}

int bus_seq_tenants(const bus_seq *q, int64_t *tenants, int max) {
    int n = 0;
    for (size_t i = 0; i < q->cap && n < max; i++)
        if (q->t[i].tenant) tenants[n++] = q->t[i].tenant;
    return n;
}

size_t bus_seq_held(const bus_seq *q) { return q->nheld; }
