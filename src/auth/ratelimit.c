/* Token buckets for rate limits, in a fixed-size table (see auth.h). */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "base/alloc.h"

#define PROBE 8

typedef struct slot {
    uint64_t h;        /* SipHash of the key; 0 = empty */
    double tokens;
    int64_t at_ms;     /* when tokens was computed */
} slot;

struct auth_limiter {
    size_t n;
    unsigned char key[crypto_shorthash_KEYBYTES];
    slot *s;
};

int auth_rate_parse(const char *s, auth_rate *r) {
    memset(r, 0, sizeof *r);
    if (!s || !*s || !strcmp(s, "off") || !strcmp(s, "0")) return 0;
    char *end;
    long n = strtol(s, &end, 10);
    if (end == s || n <= 0 || n > 100000000 || *end != '/') return -1;
    double ms;
    if (!strcmp(end, "/s")) ms = 1000;
    else if (!strcmp(end, "/m")) ms = 60000;
    else if (!strcmp(end, "/h")) ms = 3600000;
    else return -1;
    r->burst = (double)n;
    r->per_ms = (double)n / ms;
    return 0;
}

auth_limiter *auth_limiter_new(size_t slots) {
    if (sodium_init() < 0 || slots < PROBE || slots > (1u << 24)) return NULL;
    auth_limiter *l = eh_calloc(1, sizeof *l);
    if (!l) return NULL;
    l->s = eh_calloc(slots, sizeof *l->s);
    if (!l->s) {
        eh_free(l);
        return NULL;
    }
    l->n = slots;
    randombytes_buf(l->key, sizeof l->key);
    return l;
}

void auth_limiter_free(auth_limiter *l) {
    if (!l) return;
    eh_free(l->s);
    eh_free(l);
}

static double level(const slot *s, const auth_rate *r, int64_t now) {
    double t = s->tokens + (double)(now - s->at_ms) * r->per_ms;
    return t > r->burst ? r->burst : t;
}

int auth_limiter_check(auth_limiter *l, const char *key, size_t len, const auth_rate *r, int64_t now_ms,
                       int consume, auth_limit_info *info) {
    if (r->burst <= 0) {
        if (info) memset(info, 0, sizeof *info);
        return 1;
    }
    unsigned char hb[8];
    crypto_shorthash(hb, (const unsigned char *)key, len, l->key);
    uint64_t h;
    memcpy(&h, hb, 8);
    if (!h) h = 1;
    size_t base = (size_t)(h % l->n);
    slot *s = NULL, *victim = NULL;
    double victim_score = 0;
    for (size_t i = 0; i < PROBE; i++) {
        slot *c = &l->s[(base + i) % l->n];
        if (c->h == h) {
            s = c;
            break;
        }
        /* Empty slots first, then full buckets (nothing to forget), then the
         * least recently touched. */
        double score = !c->h ? 1e300 : level(c, r, now_ms) >= r->burst ? 1e299 : (double)(now_ms - c->at_ms);
        if (!victim || score > victim_score) {
            victim = c;
            victim_score = score;
        }
    }
    if (!s) {
        s = victim;
        s->h = h;
        s->tokens = r->burst;
        s->at_ms = now_ms;
    }
    double t = level(s, r, now_ms);
    int ok = t >= 1.0;
    if (consume) {
        s->tokens = ok ? t - 1.0 : t;
        s->at_ms = now_ms;
    }
    if (info) {
        double left = consume && ok ? t - 1.0 : t;
        info->limit = (long)r->burst;
        info->remaining = (long)floor(left);
        info->reset_s = (long)ceil((r->burst - left) / r->per_ms / 1000.0);
        info->retry_after_s = ok ? 0 : (long)ceil((1.0 - t) / r->per_ms / 1000.0);
        if (!ok && info->retry_after_s < 1) info->retry_after_s = 1;
    }
    return ok;
}
