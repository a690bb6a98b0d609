/* The audit trail: an append-only, hash-chained log per tenant.
 *
 * Entry hash = SHA-256 of the canonical form
 *     "ehub-audit-v1\n" prev_hash "\n" tenant "\n" seq "\n" created_at "\n"
 *     field(actor) field(action) field(target) field(ip) field(detail)
 * where field(x) is "<byte length>:<bytes>\n", or "-\n" for NULL: every
 * byte of every column is covered and no two entries share a form. The
 * first entry's prev_hash is 64 zeros. tenants.audit_seq holds the last seq
 * handed out (taken with UPDATE ... RETURNING, which on PostgreSQL also
 * row-locks the tenant so the chain cannot fork), so a verifier notices
 * entries removed from the end as well as from the middle.
 *
 * What this proves: that the rows were not edited, removed or reordered by
 * anyone who did not also recompute every later hash. Someone with write
 * access to the database can rewrite the whole chain; to catch that, keep the
 * head hash `ehub audit verify` prints somewhere else. */
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

static const char zero_hash[] = "0000000000000000000000000000000000000000000000000000000000000000";

static void field(crypto_hash_sha256_state *st, const char *s) {
    char pre[32];
    if (!s) {
        crypto_hash_sha256_update(st, (const unsigned char *)"-\n", 2);
        return;
    }
    size_t n = strlen(s);
    int k = snprintf(pre, sizeof pre, "%zu:", n);
    crypto_hash_sha256_update(st, (const unsigned char *)pre, (size_t)k);
    crypto_hash_sha256_update(st, (const unsigned char *)s, n);
    crypto_hash_sha256_update(st, (const unsigned char *)"\n", 1);
}

static void entry_hash(const char *prev, int64_t tenant, int64_t seq, int64_t at, const char *actor,
                       const char *action, const char *target, const char *ip, const char *detail, char out[65]) {
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    char head[256];
    int k = snprintf(head, sizeof head, "ehub-audit-v1\n%s\n%lld\n%lld\n%lld\n", prev, (long long)tenant,
                     (long long)seq, (long long)at);
    crypto_hash_sha256_update(&st, (const unsigned char *)head, (size_t)k);
    field(&st, actor);
    field(&st, action);
    field(&st, target);
    field(&st, ip);
    field(&st, detail);
    unsigned char md[32];
    crypto_hash_sha256_final(&st, md);
    sodium_bin2hex(out, 65, md, 32);
}

const char *auth_actor_name(const auth_principal *p, char buf[32]) {
    if (p && p->user_id) snprintf(buf, 32, "user:%lld", (long long)p->user_id);
    else if (p && p->key_id) snprintf(buf, 32, "key:%lld", (long long)p->key_id);
    else snprintf(buf, 32, "anonymous");
    return buf;
}

int auth_audit(store_tx *tx, int64_t tenant, const auth_actor *actor, const char *action, const char *target,
               json_t *detail, int64_t now_ms, store_err *err) {
    if (sodium_init() < 0) return STORE_ERR;
    char *d = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    store_rows *r = NULL;
    store_val v1[] = {SV_I(tenant)};
    int rc = store_query(tx, "UPDATE tenants SET audit_seq = audit_seq + 1 WHERE id = $1 RETURNING audit_seq", v1, 1,
                         &r, err);
    int64_t seq = 0;
    if (rc == STORE_OK && store_rows_count(r) == 1) seq = store_rows_int(r, 0, 0);
    else if (rc == STORE_OK) {
        rc = STORE_NOTFOUND;
        if (err) {
            err->code = rc;
            snprintf(err->msg, sizeof err->msg, "audit: no such tenant");
        }
    }
    store_rows_free(r);
    r = NULL;
    char prev[65];
    snprintf(prev, sizeof prev, "%s", zero_hash);
    if (rc == STORE_OK && seq > 1) {
        store_val v2[] = {SV_I(tenant), SV_I(seq - 1)};
        rc = store_query(tx, "SELECT hash FROM audit_log WHERE tenant_id = $1 AND seq = $2", v2, 2, &r, err);
        /* A missing predecessor (deleted by hand) still chains to something
         * a verifier will flag: the zero hash. */
        if (rc == STORE_OK && store_rows_count(r) == 1) snprintf(prev, sizeof prev, "%s", store_rows_text(r, 0, 0));
        store_rows_free(r);
    }
    if (rc == STORE_OK) {
        const char *det = d ? d : "{}";
        char hash[65];
        entry_hash(prev, tenant, seq, now_ms, actor->who, action, target, actor->ip, det, hash);
        store_val v3[] = {SV_I(tenant), SV_I(seq), SV_I(now_ms), SV_S(actor->who), SV_S(action), SV_S(target),
                          SV_S(actor->ip), SV_S(det), SV_S(prev), SV_S(hash)};
        rc = store_query(tx,
                         "INSERT INTO audit_log (tenant_id, seq, created_at, actor, action, target, ip, detail, "
                         "prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                         v3, 10, NULL, err);
    }
    free(d);
    return rc;
}

int auth_audit_list(store_tx *tx, int64_t before, int limit, json_t **items, int64_t *next, store_err *err) {
    store_rows *r = NULL;
    store_val v[] = {SV_I(store_tx_tenant(tx)), SV_I(before > 0 ? before : INT64_MAX), SV_I(limit + 1)};
    int rc = store_query(tx,
                         "SELECT seq, created_at, actor, action, target, ip, detail, hash FROM audit_log "
                         "WHERE tenant_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
                         v, 3, &r, err);
    if (rc) return rc;
    *items = json_array();
    *next = 0;
    int n = store_rows_count(r);
    for (int i = 0; i < n && i < limit; i++) {
        json_error_t je;
        json_t *det = json_loads(store_rows_text(r, i, 6), 0, &je);
        json_t *e = json_pack("{s:I, s:I, s:s, s:s, s:o, s:o, s:o, s:s}", "seq", (json_int_t)store_rows_int(r, i, 0),
                              "time", (json_int_t)store_rows_int(r, i, 1), "actor", store_rows_text(r, i, 2), "action",
                              store_rows_text(r, i, 3), "target",
                              store_rows_isnull(r, i, 4) ? json_null() : json_string(store_rows_text(r, i, 4)), "ip",
                              store_rows_isnull(r, i, 5) ? json_null() : json_string(store_rows_text(r, i, 5)),
                              "detail", det ? det : json_object(), "hash", store_rows_text(r, i, 7));
        json_array_append_new(*items, e);
        if (i == limit - 1 && n > limit) *next = store_rows_int(r, i, 0);
    }
    store_rows_free(r);
    return STORE_OK;
}

int auth_audit_verify(store_tx *tx, int64_t *entries, int64_t *bad, char *why, size_t whylen, char head[65],
                      store_err *err) {
    if (sodium_init() < 0) return STORE_ERR;
    int64_t tenant = store_tx_tenant(tx);
    *entries = 0;
    *bad = 0;
    why[0] = 0;
    snprintf(head, 65, "%s", zero_hash);
    store_rows *r = NULL;
    store_val v0[] = {SV_I(tenant)};
    int rc = store_query(tx, "SELECT audit_seq FROM tenants WHERE id = $1", v0, 1, &r, err);
    if (rc) return rc;
    int64_t last = store_rows_count(r) ? store_rows_int(r, 0, 0) : 0;
    store_rows_free(r);
    char prev[65];
    snprintf(prev, sizeof prev, "%s", zero_hash);
    int64_t expect = 1;
    for (;;) {
        store_val v[] = {SV_I(tenant), SV_I(expect - 1)};
        rc = store_query(tx,
                         "SELECT seq, created_at, actor, action, target, ip, detail, prev_hash, hash FROM audit_log "
                         "WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT 1000",
                         v, 2, &r, err);
        if (rc) return rc;
        int n = store_rows_count(r);
        for (int i = 0; i < n; i++) {
            int64_t seq = store_rows_int(r, i, 0);
            if (seq != expect) {
                *bad = expect;
                snprintf(why, whylen, "entry %lld is missing", (long long)expect);
                store_rows_free(r);
                return STORE_OK;
            }
            char h[65];
            entry_hash(prev, tenant, seq, store_rows_int(r, i, 1), store_rows_text(r, i, 2), store_rows_text(r, i, 3),
                       store_rows_text(r, i, 4), store_rows_text(r, i, 5), store_rows_text(r, i, 6), h);
            const char *ph = store_rows_text(r, i, 7), *sh = store_rows_text(r, i, 8);
            if (!ph || strcmp(ph, prev)) {
                *bad = seq;
                snprintf(why, whylen, "entry %lld does not chain to entry %lld", (long long)seq, (long long)seq - 1);
            } else if (!sh || strcmp(sh, h)) {
                *bad = seq;
                snprintf(why, whylen, "entry %lld was changed (hash mismatch)", (long long)seq);
            }
            if (*bad) {
                store_rows_free(r);
                return STORE_OK;
            }
            memcpy(prev, h, sizeof prev);
            (*entries)++;
            expect++;
        }
        store_rows_free(r);
        if (n < 1000) break;
    }
    if (expect - 1 < last) {
        *bad = expect;
        snprintf(why, whylen, "entries %lld..%lld are missing from the end", (long long)expect, (long long)last);
    } else if (expect - 1 > last) {
        *bad = last + 1;
        snprintf(why, whylen, "entry %lld is beyond the last one handed out", (long long)last + 1);
    }
    memcpy(head, prev, 65);
    return STORE_OK;
}

/* ---- webhook inbox checkpoints ----
 * Why checkpoints and not one entry per webhook: an entry costs the write an
 * UPDATE of the tenant row (a row lock on PostgreSQL) and two statements,
 * ~10 % of ingest throughput. The insert only adds the body's SHA-256; the
 * chain work happens here, off the hot path, once per interval.
 *
 * Ranges: checkpoint k covers the tenant's rows with ids in
 * (last_id of k-1, last_id of k]; runs lists exactly which ids those were,
 * so a verifier names a deleted id (in runs, not in the table) or an
 * inserted one (in the table, in the range, not in runs). The next
 * checkpoint starts after tenants.inbox_checkpoint_id, moved with a
 * compare-and-set, so two nodes running this at once cannot both write
 * (the second one's UPDATE waits for the first's row lock on PostgreSQL,
 * then changes nothing) and ranges neither overlap nor leave gaps. */

const char auth_empty_body_hash[AUTH_HASH_HEX] =
    "c09da522dac261c3d2566230bed10d2f3ef13f8e7654576c12e857e07f786098";

#define CHECKPOINT_RUNS 200 /* keeps one entry's detail under ~5 KB */

/* BLAKE2b-256 (libsodium), not SHA-256: this runs once per webhook on the
 * ingest path. Under callgrind, 600 bytes cost 3.8k instructions against
 * 19k for OpenSSL's SHA-256 and 36k for libsodium's; that was most of what
 * the checkpoints added to the hot path. */
void auth_body_hash_hex(const void *data, size_t len, char out[AUTH_HASH_HEX]) {
    unsigned char md[32];
    crypto_generichash(md, sizeof md, (const unsigned char *)data, len, NULL, 0);
    sodium_bin2hex(out, AUTH_HASH_HEX, md, 32);
}

/* The checkpoint digest: SHA-256 (OpenSSL) over "ehub-inbox-v1\n" and, per
 * covered row, its columns in the audit chain's field form ("<length>:<bytes>\n",
 * "-\n" for NULL): id, provider, webhook_id, type, received_at, body_hash —
 * the body by its hash, so an emptied body still verifies. A row's fields
 * are gathered in a buffer and hashed with one update (the job hashes every
 * webhook once; per-field updates and snprintf were 14k instructions a row). */
typedef struct digest {
    EVP_MD_CTX *ctx;
    size_t n;
    char b[1024];
} digest;

static size_t put_int(char *p, int64_t v) {
    char tmp[24];
    size_t k = 0, n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do tmp[k++] = (char)('0' + u % 10);
    while ((u /= 10));
    if (v < 0) p[n++] = '-';
    while (k) p[n++] = tmp[--k];
    return n;
}

static void dflush(digest *d) {
    if (d->n) EVP_DigestUpdate(d->ctx, d->b, d->n);
    d->n = 0;
}

static void dfield(digest *d, const char *s, size_t len) {
    if (d->n + 48 > sizeof d->b) dflush(d);
    if (!s) {
        memcpy(d->b + d->n, "-\n", 2);
        d->n += 2;
        return;
    }
    d->n += put_int(d->b + d->n, (int64_t)len);
    d->b[d->n++] = ':';
    if (len + 1 > sizeof d->b - d->n) {
        dflush(d);
        EVP_DigestUpdate(d->ctx, s, len);
    } else {
        memcpy(d->b + d->n, s, len);
        d->n += len;
    }
    d->b[d->n++] = '\n';
}

static void dint(digest *d, int64_t v) {
    char num[24];
    dfield(d, num, put_int(num, v));
}

static void dstr(digest *d, const char *s) { dfield(d, s, s ? strlen(s) : 0); }

static int digest_start(digest *d) {
    d->n = 0;
    d->ctx = EVP_MD_CTX_new();
    if (!d->ctx || !EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(d->ctx);
        d->ctx = NULL;
        return STORE_NOMEM;
    }
    EVP_DigestUpdate(d->ctx, "ehub-inbox-v1\n", 14);
    return STORE_OK;
}

static void digest_row(digest *d, int64_t id, const char *provider, const char *webhook_id, const char *type,
                       int64_t received_at, const char *body_hash) {
    dint(d, id);
    dstr(d, provider);
    dstr(d, webhook_id);
    dstr(d, type);
    dint(d, received_at);
    dstr(d, body_hash);
}

/* Finishes (out may be NULL to only release). */
static void digest_end(digest *d, char out[AUTH_HASH_HEX]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    dflush(d);
    if (out) {
        if (!EVP_DigestFinal_ex(d->ctx, md, &n) || n != 32) memset(md, 0, sizeof md);
        sodium_bin2hex(out, AUTH_HASH_HEX, md, 32);
    }
    EVP_MD_CTX_free(d->ctx);
    d->ctx = NULL;
}

int auth_inbox_pending(store_tx *tx, int64_t *ids, int max, int *n, store_err *err) {
    store_rows *r = NULL;
    store_val v[] = {SV_I(max)};
    /* one probe of the (tenant_id, id) index per tenant */
    int rc = store_query(tx,
                         "SELECT t.id FROM tenants t WHERE EXISTS (SELECT 1 FROM webhook_inbox w WHERE "
                         "w.tenant_id = t.id AND w.id > t.inbox_checkpoint_id) ORDER BY t.id LIMIT $1",
                         v, 1, &r, err);
    *n = 0;
    for (int i = 0; !rc && i < store_rows_count(r) && *n < max; i++) ids[(*n)++] = store_rows_int(r, i, 0);
    store_rows_free(r);
    return rc;
}

/* Writes one checkpoint entry after `last`; *covered 0 when there was
 * nothing old enough, *next the new last id, *moved 0 if another node got
 * there first. */
static int checkpoint_one(store_tx *tx, int64_t last, int64_t before, int64_t now_ms, int64_t *covered,
                          int64_t *next, int *moved, store_err *err) {
    int64_t tenant = store_tx_tenant(tx);
    *covered = 0;
    *moved = 0;
    store_rows *r = NULL;
    store_val v[] = {SV_I(tenant), SV_I(last), SV_I(AUTH_CHECKPOINT_ROWS)};
    /* the body is read only where the insert left no hash (rows from before
     * migration 013) */
    int rc = store_query(tx,
                         "SELECT id, provider, webhook_id, type, received_at, body_hash, "
                         "CASE WHEN body_hash IS NULL THEN body END FROM webhook_inbox "
                         "WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                         v, 3, &r, err);
    if (rc) return rc;
    digest st;
    if (digest_start(&st)) {
        store_rows_free(r);
        return STORE_NOMEM;
    }
    json_t *runs = json_array(), *run = NULL;
    int64_t first = 0, prev = 0, count = 0;
    int n = store_rows_count(r);
    for (int i = 0; !rc && i < n; i++) {
        int64_t id = store_rows_int(r, i, 0), at = store_rows_int(r, i, 4);
        /* Rows committed out of id order (PostgreSQL: a transaction holding
         * id 100 commits after the one holding 101) must not fall behind a
         * checkpoint: stop at the first row too young to be sure every
         * lower id has committed. */
        if (at >= before) break;
        int extend = run && id == prev + 1;
        if (!extend && json_array_size(runs) == CHECKPOINT_RUNS) break;
        char bh[AUTH_HASH_HEX];
        const char *h = store_rows_text(r, i, 5);
        if (!h) {
            auth_body_hash_hex(store_rows_text(r, i, 6), store_rows_len(r, i, 6), bh);
            h = bh;
            store_val u[] = {SV_I(tenant), SV_I(id), SV_S(bh)};
            rc = store_query(tx, "UPDATE webhook_inbox SET body_hash = $3 WHERE tenant_id = $1 AND id = $2", u, 3,
                             NULL, err);
        }
        digest_row(&st, id, store_rows_text(r, i, 1), store_rows_text(r, i, 2), store_rows_text(r, i, 3), at, h);
        if (extend) {
            json_array_set_new(run, 1, json_integer((json_int_t)id));
        } else {
            run = json_pack("[I, I]", (json_int_t)id, (json_int_t)id);
            json_array_append_new(runs, run);
        }
        if (!first) first = id;
        prev = id;
        count++;
    }
    store_rows_free(r);
    if (rc || !count) {
        digest_end(&st, NULL);
        json_decref(runs);
        return rc;
    }
    store_val c[] = {SV_I(tenant), SV_I(last), SV_I(prev)};
    rc = store_query(tx, "UPDATE tenants SET inbox_checkpoint_id = $3 WHERE id = $1 AND inbox_checkpoint_id = $2", c,
                     3, NULL, err);
    if (!rc && store_tx_changes(tx) == 1) {
        char digest[AUTH_HASH_HEX];
        digest_end(&st, digest);
        json_t *d = json_pack("{s:I, s:I, s:I, s:o, s:s}", "first_id", (json_int_t)first, "last_id", (json_int_t)prev,
                              "count", (json_int_t)count, "runs", runs, "digest", digest);
        runs = NULL;
        auth_actor who = {"scheduler", NULL};
        rc = auth_audit(tx, tenant, &who, "webhooks.checkpoint", NULL, d, now_ms, err);
        json_decref(d);
        if (!rc) {
            *moved = 1;
            *covered = count;
            *next = prev;
        }
    }
    if (st.ctx) digest_end(&st, NULL);
    json_decref(runs);
    return rc;
}

int auth_inbox_checkpoint(store_tx *tx, int64_t margin_ms, int64_t now_ms, int *entries, int64_t *rows,
                          store_err *err) {
    if (sodium_init() < 0) return STORE_ERR;
    *entries = 0;
    *rows = 0;
    store_rows *r = NULL;
    store_val v[] = {SV_I(store_tx_tenant(tx))};
    int rc = store_query(tx, "SELECT inbox_checkpoint_id FROM tenants WHERE id = $1", v, 1, &r, err);
    if (rc) return rc;
    int64_t last = store_rows_count(r) ? store_rows_int(r, 0, 0) : 0;
    store_rows_free(r);
    if (margin_ms > 0 && store_tx_kind(tx) == STORE_POSTGRES) {
        /* The margin alone trusts that no transaction holding an id runs
         * that long. Check it: a transaction holding an id below a covered
         * row took it before that row's (>= margin ago), so while any
         * transaction has held an xid for half the margin the checkpoint
         * waits for a later tick rather than risk a row committing into a
         * covered range. Clock skew between nodes up to half the margin is
         * tolerated. */
        store_val m[] = {SV_I(margin_ms / 2)};
        r = NULL;
        rc = store_query(tx,
                         "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND backend_xid IS NOT NULL "
                         "AND pid <> pg_backend_pid() "
                         "AND xact_start < now() - make_interval(secs => $1::bigint / 1000.0) LIMIT 1",
                         m, 1, &r, err);
        int busy = !rc && store_rows_count(r) > 0;
        store_rows_free(r);
        if (rc || busy) return rc;
    }
    /* One entry per transaction: on SQLite the writer serves every webhook,
     * and a pass of several entries held it for 50-100 ms under ingest load
     * (the p99.9 of bench/ingest.sh); the callers loop instead. */
    int64_t covered = 0, next = last;
    int moved = 0;
    if ((rc = checkpoint_one(tx, last, now_ms - margin_ms, now_ms, &covered, &next, &moved, err))) return rc;
    if (moved) {
        *entries = 1;
        *rows = covered;
    }
    return STORE_OK;
}

/* What may legitimately have emptied a covered body. */
typedef struct exempt {
    json_t *ids;      /* {"<inbox id>": true} from contact.erase entries */
    int64_t before;   /* the latest retention.run inbox_before */
} exempt;

static int load_exempt(store_tx *tx, exempt *ex, store_err *err) {
    ex->ids = json_object();
    ex->before = 0;
    int64_t after = 0;
    for (;;) {
        store_rows *r = NULL;
        store_val v[] = {SV_I(store_tx_tenant(tx)), SV_I(after)};
        int rc = store_query(tx,
                             "SELECT seq, action, detail FROM audit_log WHERE tenant_id = $1 AND seq > $2 AND "
                             "action IN ('contact.erase', 'retention.run') ORDER BY seq LIMIT 1000",
                             v, 2, &r, err);
        if (rc) return rc;
        int n = store_rows_count(r);
        for (int i = 0; i < n; i++) {
            after = store_rows_int(r, i, 0);
            json_t *d = json_loads(store_rows_text(r, i, 2), 0, NULL), *x;
            size_t k;
            json_array_foreach(json_object_get(d, "inbox_ids"), k, x) {
                char key[24];
                snprintf(key, sizeof key, "%lld", (long long)json_integer_value(x));
                json_object_set_new(ex->ids, key, json_true());
            }
            int64_t b = (int64_t)json_integer_value(json_object_get(d, "inbox_before"));
            if (b > ex->before) ex->before = b;
            json_decref(d);
        }
        store_rows_free(r);
        if (n < 1000) return STORE_OK;
    }
}

static int bad_row(auth_inbox_report *rep, int64_t seq, int64_t row, const char *fmt, long long a, long long b) {
    rep->bad_seq = seq;
    rep->bad_row = row;
    char what[160];
    snprintf(what, sizeof what, fmt, a, b);
    snprintf(rep->why, sizeof rep->why, "webhooks.checkpoint %lld: %s", (long long)seq, what);
    return 1;
}

/* Checks one checkpoint's range (after, last] against its detail; returns
 * 1 when something is wrong (rep filled). */
static int verify_one(store_tx *tx, int64_t seq, int64_t after, json_t *d, const exempt *ex, auth_inbox_report *rep,
                      int *bad, store_err *err) {
    int64_t last = (int64_t)json_integer_value(json_object_get(d, "last_id"));
    int64_t count = (int64_t)json_integer_value(json_object_get(d, "count"));
    const char *want = json_string_value(json_object_get(d, "digest"));
    json_t *runs = json_object_get(d, "runs");
    *bad = 0;
    if (!json_is_array(runs) || !want || last <= after) {
        *bad = bad_row(rep, seq, 0, "the entry's detail is malformed (last_id %lld after %lld)", (long long)last,
                       (long long)after);
        return STORE_OK;
    }
    digest st;
    if (digest_start(&st)) return STORE_NOMEM;
    size_t ri = 0;
    int64_t expect = 0, run_end = -1, seen = 0, pos = after;
    /* the next id the runs name, or 0 when they are exhausted */
#define NEXT_EXPECTED()                                                                                              \
    do {                                                                                                             \
        if (expect && expect < run_end) expect++;                                                                    \
        else if (ri < json_array_size(runs)) {                                                                       \
            json_t *ru = json_array_get(runs, ri++);                                                                 \
            expect = (int64_t)json_integer_value(json_array_get(ru, 0));                                             \
            run_end = (int64_t)json_integer_value(json_array_get(ru, 1));                                            \
        } else expect = 0;                                                                                           \
    } while (0)
    NEXT_EXPECTED();
    for (;;) {
        store_rows *r = NULL;
        store_val v[] = {SV_I(store_tx_tenant(tx)), SV_I(pos), SV_I(last)};
        int rc = store_query(tx,
                             "SELECT id, provider, webhook_id, type, received_at, body_hash, body FROM webhook_inbox "
                             "WHERE tenant_id = $1 AND id > $2 AND id <= $3 ORDER BY id LIMIT 500",
                             v, 3, &r, err);
        if (rc) {
            digest_end(&st, NULL);
            return rc;
        }
        int n = store_rows_count(r);
        for (int i = 0; i < n && !*bad; i++) {
            int64_t id = store_rows_int(r, i, 0), at = store_rows_int(r, i, 4);
            pos = id;
            if (!expect || id < expect) {
                *bad = bad_row(rep, seq, id, "inbox row %lld was inserted inside the range it covers (ids up to %lld)",
                               (long long)id, (long long)last);
                break;
            }
            if (id > expect) {
                *bad = bad_row(rep, seq, expect, "inbox row %lld was deleted", (long long)expect, 0);
                break;
            }
            const char *h = store_rows_text(r, i, 5), *body = store_rows_text(r, i, 6);
            char bh[AUTH_HASH_HEX];
            auth_body_hash_hex(body ? body : "", store_rows_len(r, i, 6), bh);
            if (!h) {
                *bad = bad_row(rep, seq, id, "inbox row %lld lost its body_hash", (long long)id, 0);
            } else if (strcmp(h, bh)) {
                char key[24];
                snprintf(key, sizeof key, "%lld", (long long)id);
                int emptied = body && !strcmp(body, "{}");
                if (!emptied)
                    *bad = bad_row(rep, seq, id, "inbox row %lld was edited (its body does not match body_hash)",
                                   (long long)id, 0);
                else if (!json_object_get(ex->ids, key) && !(at < ex->before))
                    *bad = bad_row(rep, seq, id,
                                   "inbox row %lld's body was emptied, and no contact.erase or retention.run entry "
                                   "did it",
                                   (long long)id, 0);
            }
            if (*bad) break;
            digest_row(&st, id, store_rows_text(r, i, 1), store_rows_text(r, i, 2), store_rows_text(r, i, 3), at, h);
            seen++;
            NEXT_EXPECTED();
        }
        store_rows_free(r);
        if (*bad) {
            digest_end(&st, NULL);
            return STORE_OK;
        }
        if (n < 500) break;
    }
#undef NEXT_EXPECTED
    if (expect) {
        digest_end(&st, NULL);
        *bad = bad_row(rep, seq, expect, "inbox row %lld was deleted", (long long)expect, 0);
        return STORE_OK;
    }
    char got[AUTH_HASH_HEX];
    digest_end(&st, got);
    if (seen != count || strcmp(got, want))
        *bad = bad_row(rep, seq, 0,
                       "an inbox row with an id in %lld..%lld was edited (provider, webhook id, type, time or "
                       "body_hash: the digest differs)",
                       (long long)after + 1, (long long)last);
    else rep->rows += seen;
    return STORE_OK;
}

int auth_inbox_verify(store_tx *tx, auth_inbox_report *rep, store_err *err) {
    if (sodium_init() < 0) return STORE_ERR;
    memset(rep, 0, sizeof *rep);
    exempt ex;
    int rc = load_exempt(tx, &ex, err);
    int64_t after = 0, seq = 0;
    int bad = 0;
    while (!rc && !bad) {
        store_rows *r = NULL;
        store_val v[] = {SV_I(store_tx_tenant(tx)), SV_I(seq)};
        rc = store_query(tx,
                         "SELECT seq, detail FROM audit_log WHERE tenant_id = $1 AND seq > $2 AND "
                         "action = 'webhooks.checkpoint' ORDER BY seq LIMIT 200",
                         v, 2, &r, err);
        if (rc) break;
        int n = store_rows_count(r);
        for (int i = 0; !rc && !bad && i < n; i++) {
            seq = store_rows_int(r, i, 0);
            json_t *d = json_loads(store_rows_text(r, i, 1), 0, NULL);
            rc = verify_one(tx, seq, after, d, &ex, rep, &bad, err);
            if (!rc && !bad) {
                rep->checkpoints++;
                after = (int64_t)json_integer_value(json_object_get(d, "last_id"));
            }
            json_decref(d);
        }
        store_rows_free(r);
        if (n < 200) break;
    }
    rep->covered_to = after;
    if (!rc && !bad) {
        /* the tenant's mark must be where the last checkpoint left it: moved
         * further, rows in between would never be covered */
        store_rows *r = NULL;
        store_val v[] = {SV_I(store_tx_tenant(tx))};
        rc = store_query(tx, "SELECT inbox_checkpoint_id FROM tenants WHERE id = $1", v, 1, &r, err);
        if (!rc && store_rows_count(r) && store_rows_int(r, 0, 0) != after)
            bad_row(rep, seq, 0, "tenants.inbox_checkpoint_id is %lld, the last checkpoint covers up to %lld",
                    (long long)store_rows_int(r, 0, 0), (long long)after);
        store_rows_free(r);
        /* what arrived since: not yet covered (the next pass will), so an
         * operator knows how much the trail does not vouch for yet */
        r = NULL;
        store_val u[] = {SV_I(store_tx_tenant(tx)), SV_I(after)};
        if (!rc) rc = store_query(tx, "SELECT count(*) FROM webhook_inbox WHERE tenant_id = $1 AND id > $2", u, 2, &r, err);
        if (!rc && store_rows_count(r)) rep->uncovered = store_rows_int(r, 0, 0);
        store_rows_free(r);
    }
    json_decref(ex.ids);
    return rc;
}
