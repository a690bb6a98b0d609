/* Limits shared by every node through Redis (see auth.h): token buckets
 * (the request and login rate limits) and sliding windows (a provider's
 * "N requests in any T", such as GoHighLevel's 100 per 10 s). Each kind is
 * one Lua script that checks and takes atomically, with Redis's own clock,
 * so nodes whose clocks differ still agree. Called on pool threads: a small
 * set of synchronous hiredis connections, each used by one thread at a
 * time, with short timeouts; when Redis does not answer the caller falls
 * back to its local limiter. */
#include <hiredis/hiredis.h>
#include <math.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "base/alloc.h"
#include "base/clock.h"

#define RL_CONNS 16
#define RL_TIMEOUT_MS 250
#define RL_RETRY_MS 1000 /* after a failure, how long requests skip Redis */

/* KEYS: the buckets; ARGV: burst1, per_ms1, burst2, per_ms2 ...
 * Returns {ok, level1, level2, ...}: the levels before taking when ok is 0
 * (nothing taken), after taking when ok is 1. Levels as strings: Lua
 * numbers would be truncated to integers on the way out. */
static const char script[] =
    "local tm = redis.call('TIME')\n"
    "local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)\n"
    "local lv, ok = {}, 1\n"
    "for i = 1, #KEYS do\n"
    "  local burst, per = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])\n"
    "  local h = redis.call('HMGET', KEYS[i], 't', 'at')\n"
    "  local t, at = tonumber(h[1]), tonumber(h[2])\n"
    "  if t == nil or at == nil then t, at = burst, now end\n"
    "  t = math.min(burst, t + math.max(0, now - at) * per)\n"
    "  lv[i] = t\n"
    "  if t < 1 then ok = 0 end\n"
    "end\n"
    "local out = {ok}\n"
    "for i = 1, #KEYS do\n"
    "  local burst, per = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])\n"
    "  local t = lv[i]\n"
    "  if ok == 1 then t = t - 1 end\n"
    "  redis.call('HSET', KEYS[i], 't', tostring(t), 'at', tostring(now))\n"
    "  redis.call('PEXPIRE', KEYS[i], math.ceil((burst - t) / per) + 1000)\n"
    "  out[#out + 1] = tostring(t)\n"
    "end\n"
    "return out\n";

/* A sliding window: a sorted set of the requests counted (member: a name
 * the caller makes unique; score: when it stops counting minus the window,
 * i.e. its end time) and a key that exists while the provider told us to
 * wait (a 429's Retry-After).
 * KEYS: window, block. ARGV: 'take', limit, window_ms, member, hold_ms
 *   -> {1, 0} counted (scored now + hold_ms until 'done' gives its end),
 *      {0, ms} not counted: ask again in ms.
 * ARGV: 'done', window_ms, member, block_ms -> {1, 0}: the request ended
 *   now, and block_ms > 0 blocks the window that long (never shortens). */
static const char window_script[] =
    "local tm = redis.call('TIME')\n"
    "local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)\n"
    "if ARGV[1] == 'take' then\n"
    "  local limit, win, hold = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])\n"
    "  local blocked = redis.call('PTTL', KEYS[2])\n"
    "  if blocked > 0 then return {0, blocked} end\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - win)\n"
    "  if redis.call('ZCARD', KEYS[1]) < limit then\n"
    "    redis.call('ZADD', KEYS[1], now + hold, ARGV[4])\n"
    "    redis.call('PEXPIRE', KEYS[1], hold + win + 1000)\n"
    "    return {1, 0}\n"
    "  end\n"
    "  local first = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])\n"
    "  if first > now then return {0, math.floor(win / 10) + 1} end\n"
    "  return {0, math.max(1, first + win - now)}\n"
    "end\n"
    "local win, block = tonumber(ARGV[2]), tonumber(ARGV[4])\n"
    "redis.call('ZADD', KEYS[1], 'XX', now, ARGV[3])\n"
    "if redis.call('PTTL', KEYS[1]) < win + 1000 then redis.call('PEXPIRE', KEYS[1], win + 1000) end\n"
    "if block > 0 and redis.call('PTTL', KEYS[2]) < block then redis.call('SET', KEYS[2], '1', 'PX', block) end\n"
    "return {1, 0}\n";

enum { SCRIPT_BUCKETS, SCRIPT_WINDOW, SCRIPTS };
static const char *const scripts[SCRIPTS] = {script, window_script};

struct auth_redis_limiter {
    char host[256];
    int port;
    char prefix[64];
    char sha[SCRIPTS][41];
    pthread_mutex_t mu;
    redisContext *free[RL_CONNS];
    int nfree;
    int64_t skip_until; /* under mu */
};

auth_redis_limiter *auth_redis_limiter_new(const char *url, const char *prefix, char *err, size_t errlen) {
    if (strncmp(url, "redis://", 8)) {
        snprintf(err, errlen, "not a redis:// URL");
        return NULL;
    }
    auth_redis_limiter *l = eh_calloc(1, sizeof *l);
    if (!l) return NULL;
    const char *h = url + 8, *colon = strchr(h, ':'), *slash = strchr(h, '/');
    size_t hl = colon && (!slash || colon < slash) ? (size_t)(colon - h) : slash ? (size_t)(slash - h) : strlen(h);
    if (!hl || hl >= sizeof l->host) {
        snprintf(err, errlen, "bad Redis host");
        eh_free(l);
        return NULL;
    }
    memcpy(l->host, h, hl);
    l->port = colon && (!slash || colon < slash) ? atoi(colon + 1) : 6379;
    if (l->port <= 0 || l->port > 65535) {
        snprintf(err, errlen, "bad Redis port");
        eh_free(l);
        return NULL;
    }
    snprintf(l->prefix, sizeof l->prefix, "%s", prefix);
    /* the scripts' SHA-1s, as EVALSHA names them */
    for (int s = 0; s < SCRIPTS; s++) {
        unsigned char md[20];
        SHA1((const unsigned char *)scripts[s], strlen(scripts[s]), md);
        for (int i = 0; i < 20; i++) snprintf(l->sha[s] + 2 * i, 3, "%02x", md[i]);
    }
    pthread_mutex_init(&l->mu, NULL);
    return l;
}

void auth_redis_limiter_free(auth_redis_limiter *l) {
    if (!l) return;
    for (int i = 0; i < l->nfree; i++) redisFree(l->free[i]);
    pthread_mutex_destroy(&l->mu);
    eh_free(l);
}

static redisContext *conn_get(auth_redis_limiter *l) {
    pthread_mutex_lock(&l->mu);
    redisContext *c = NULL;
    int skip = l->skip_until > clock_wall_ms();
    if (!skip && l->nfree) c = l->free[--l->nfree];
    pthread_mutex_unlock(&l->mu);
    if (c || skip) return c;
    struct timeval tv = {0, RL_TIMEOUT_MS * 1000};
    c = redisConnectWithTimeout(l->host, l->port, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        /* a connect that failed skips Redis too: on a lost network each
         * one waits out its timeout, and every caller would pay it */
        pthread_mutex_lock(&l->mu);
        l->skip_until = clock_wall_ms() + RL_RETRY_MS;
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

static void conn_put(auth_redis_limiter *l, redisContext *c, int ok) {
    redisContext *dead[RL_CONNS];
    int ndead = 0;
    pthread_mutex_lock(&l->mu);
    if (!ok) {
        l->skip_until = clock_wall_ms() + RL_RETRY_MS;
        /* the idle ones most likely died with this one (a Redis restart):
         * reused, each would fail in turn and cost another second */
        memcpy(dead, l->free, (size_t)l->nfree * sizeof *dead);
        ndead = l->nfree;
        l->nfree = 0;
    } else if (l->nfree < RL_CONNS) {
        l->free[l->nfree++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&l->mu);
    if (c) redisFree(c);
    for (int i = 0; i < ndead; i++) redisFree(dead[i]);
}

/* Runs script `which` with argv[3..argc-1] (numkeys and after; argv[0..1]
 * are filled here), sending its body once if Redis does not know it. The
 * reply or NULL; *c is the connection, for the caller's conn_put. */
static redisReply *eval(auth_redis_limiter *l, redisContext *c, int which, int argc, const char **argv,
                        size_t *lens) {
    argv[0] = "EVALSHA";
    argv[1] = l->sha[which];
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8)) {
        /* first use on this Redis (or after SCRIPT FLUSH): send the body once */
        freeReplyObject(r);
        argv[0] = "EVAL";
        argv[1] = scripts[which];
        lens[0] = 4;
        lens[1] = strlen(scripts[which]);
        r = redisCommandArgv(c, argc, argv, lens);
    }
    return r;
}

int auth_redis_limiter_take(auth_redis_limiter *l, int n, const char *const *keys, const auth_rate *rates,
                            int *ok, auth_limit_info *info) {
    if (n < 1 || n > 4) return -1;
    redisContext *c = conn_get(l);
    if (!c) return -1;
    const char *argv[3 + 3 * 4 + 1];
    size_t lens[3 + 3 * 4 + 1];
    char keybuf[4][160], num[8][40];
    int k = 2;
    char nk[8];
    snprintf(nk, sizeof nk, "%d", n);
    argv[k++] = nk;
    for (int i = 0; i < n; i++) {
        snprintf(keybuf[i], sizeof keybuf[i], "%s%s", l->prefix, keys[i]);
        argv[k++] = keybuf[i];
    }
    for (int i = 0; i < n; i++) {
        snprintf(num[2 * i], sizeof num[0], "%.17g", rates[i].burst);
        snprintf(num[2 * i + 1], sizeof num[0], "%.17g", rates[i].per_ms);
        argv[k++] = num[2 * i];
        argv[k++] = num[2 * i + 1];
    }
    redisReply *r = eval(l, c, SCRIPT_BUCKETS, k, argv, lens);
    int good = r && r->type == REDIS_REPLY_ARRAY && r->elements == (size_t)n + 1 &&
               r->element[0]->type == REDIS_REPLY_INTEGER;
    for (int i = 0; good && i < n; i++) good = r->element[i + 1]->type == REDIS_REPLY_STRING;
    if (good) {
        *ok = r->element[0]->integer == 1;
        for (int i = 0; i < n; i++) {
            double t = strtod(r->element[i + 1]->str, NULL);
            const auth_rate *rt = &rates[i];
            info[i].limit = (long)rt->burst;
            info[i].remaining = (long)floor(t < 0 ? 0 : t);
            info[i].reset_s = (long)ceil((rt->burst - t) / rt->per_ms / 1000.0);
            info[i].retry_after_s = t >= 1.0 ? 0 : (long)ceil((1.0 - t) / rt->per_ms / 1000.0);
            if (t < 1.0 && info[i].retry_after_s < 1) info[i].retry_after_s = 1;
        }
    }
    if (r) freeReplyObject(r);
    /* an error reply (say, a Redis that refuses scripts) counts as down */
    conn_put(l, c, good && !c->err);
    return good ? 0 : -1;
}

/* The two calls of the window script: argv[2..] are numkeys, the keys and
 * ARGV. 0 with the reply's two integers, or -1 (Redis down or refusing). */
static int window_call(auth_redis_limiter *l, const char *key, int nargs, const char **args, long long out[2]) {
    redisContext *c = conn_get(l);
    if (!c) return -1;
    char kw[200], kb[210];
    snprintf(kw, sizeof kw, "%s%s", l->prefix, key);
    snprintf(kb, sizeof kb, "%s%s:block", l->prefix, key);
    const char *argv[5 + 5];
    size_t lens[5 + 5];
    int k = 2;
    argv[k++] = "2";
    argv[k++] = kw;
    argv[k++] = kb;
    for (int i = 0; i < nargs && k < 10; i++) argv[k++] = args[i];
    redisReply *r = eval(l, c, SCRIPT_WINDOW, k, argv, lens);
    int good = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_INTEGER &&
               r->element[1]->type == REDIS_REPLY_INTEGER;
    if (good) {
        out[0] = r->element[0]->integer;
        out[1] = r->element[1]->integer;
    }
    if (r) freeReplyObject(r);
    conn_put(l, c, good && !c->err);
    return good ? 0 : -1;
}

int auth_redis_window_take(auth_redis_limiter *l, const char *key, int limit, int64_t window_ms, int64_t hold_ms,
                           const char *member, int64_t *wait_ms) {
    if (limit < 1 || window_ms < 1 || hold_ms < 0 || strlen(key) > 150 || strlen(member) > 64) return -1;
    char nl[24], nw[24], nh[24];
    snprintf(nl, sizeof nl, "%d", limit);
    snprintf(nw, sizeof nw, "%lld", (long long)window_ms);
    snprintf(nh, sizeof nh, "%lld", (long long)hold_ms);
    const char *args[] = {"take", nl, nw, member, nh};
    long long out[2];
    if (window_call(l, key, 5, args, out)) return -1;
    *wait_ms = out[0] == 1 ? 0 : out[1] > 0 ? out[1] : 1;
    return 0;
}

int auth_redis_window_done(auth_redis_limiter *l, const char *key, int64_t window_ms, const char *member,
                           int64_t block_ms) {
    if (window_ms < 1 || strlen(key) > 150 || strlen(member) > 64) return -1;
    char nw[24], nb[24];
    snprintf(nw, sizeof nw, "%lld", (long long)window_ms);
    snprintf(nb, sizeof nb, "%lld", (long long)(block_ms > 0 ? block_ms : 0));
    const char *args[] = {"done", nw, member, nb};
    long long out[2];
    return window_call(l, key, 4, args, out);
}
