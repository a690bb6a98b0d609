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
