/* Users, passwords, refresh tokens, and the API-key listing. */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "base/ids.h"

/* A hash of a random password nobody knows, with the same parameters as
 * real ones: verified instead of a missing user's, so "no such user" takes
 * as long as "wrong password". */
static const char dummy_hash[crypto_pwhash_STRBYTES] =
    "$argon2id$v=19$m=65536,t=2,p=1$XihhbUbyeaeupNWCx1bTXQ$9IhhiJb3y0l59yPCX3WgeYEbjL68w2P+kgY3rn6vs1E";

static void set_err(store_err *err, int code, const char *msg) {
    if (!err) return;
    err->code = code;
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

int auth_password_hash(const char *pw, size_t len, char out[AUTH_PWHASH_LEN]) {
    if (sodium_init() < 0) return -1;
    return crypto_pwhash_str(out, pw, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                             crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0 ? 0 : -1;
}

int auth_password_verify(const char *hash, const char *pw, size_t len) {
    if (sodium_init() < 0) return 0;
    if (!hash || !*hash) {
        int same_cost = crypto_pwhash_str_verify(dummy_hash, pw, len);
        (void)same_cost;
        return 0;
    }
    return crypto_pwhash_str_verify(hash, pw, len) == 0;
}

const char *auth_password_problem(const char *pw, size_t len) {
    if (len < AUTH_PASSWORD_MIN) return "at least 8 characters";
    if (len > AUTH_PASSWORD_MAX) return "at most 1024 bytes";
    const unsigned char *s = (const unsigned char *)pw;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!n || i + n > len) return "not valid UTF-8";
        for (size_t k = 1; k < n; k++)
            if ((s[i + k] & 0xC0) != 0x80) return "not valid UTF-8";
        if (n == 1 && (c < 0x20 || c == 0x7f)) return "control characters are not allowed";
        i += n;
    }
    return NULL;
}

int auth_email_normalize(const char *in, char *out) {
    size_t n = in ? strlen(in) : 0;
    if (n < 3 || n > AUTH_EMAIL_MAX) return -1;
    const char *at = strchr(in, '@');
    if (!at || at == in || !at[1] || strchr(at + 1, '@') || !strchr(at + 1, '.')) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == ',') return -1;
        out[i] = (char)tolower(c);
    }
    out[n] = 0;
    return 0;
}

/* ---- users ---- */

#define USER_COLS "u.id, u.tenant_id, u.email, u.role, u.password_hash, u.agent_id, u.disabled, " \
                  "u.created_at, u.updated_at, u.last_login_at, t.slug"

static void user_from(const store_rows *r, int i, auth_user *u) {
    memset(u, 0, sizeof *u);
    u->id = store_rows_int(r, i, 0);
    u->tenant = store_rows_int(r, i, 1);
    snprintf(u->email, sizeof u->email, "%s", store_rows_text(r, i, 2));
    u->role = auth_role_parse(store_rows_text(r, i, 3));
    snprintf(u->pwhash, sizeof u->pwhash, "%s", store_rows_text(r, i, 4));
    u->agent_id = store_rows_int(r, i, 5);
    u->disabled = (int)store_rows_int(r, i, 6);
    u->created_at = store_rows_int(r, i, 7);
    u->updated_at = store_rows_int(r, i, 8);
    u->last_login_at = store_rows_int(r, i, 9);
    snprintf(u->tenant_slug, sizeof u->tenant_slug, "%s", store_rows_text(r, i, 10));
}

static int check_agent(store_tx *tx, int64_t agent_id, store_err *err) {
    if (!agent_id) return STORE_OK;
    store_rows *r = NULL;
    store_val v[] = {SV_I(agent_id), SV_I(store_tx_tenant(tx))};
    int rc = store_query(tx, "SELECT 1 FROM agents WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL", v, 2,
                         &r, err);
    if (rc == STORE_OK && store_rows_count(r) == 0) {
        rc = STORE_INVALID;
        set_err(err, rc, "agent_id: no such agent");
    }
    store_rows_free(r);
    return rc;
}

int auth_user_create(store_tx *tx, const char *email, int role, const char *pwhash, int64_t agent_id,
                     int64_t now_ms, int64_t *id, store_err *err) {
    int rc = check_agent(tx, agent_id, err);
    if (rc) return rc;
    store_rows *r = NULL;
    store_val v[] = {SV_I(store_tx_tenant(tx)), SV_S(email), SV_S(auth_role_name(role)), SV_S(pwhash),
                     agent_id ? SV_I(agent_id) : SV_NULLV, SV_I(now_ms)};
    rc = store_query(tx,
                     "INSERT INTO users (tenant_id, email, role, password_hash, agent_id, created_at, updated_at) "
                     "VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
                     v, 6, &r, err);
    if (rc == STORE_OK && id) *id = store_rows_int(r, 0, 0);
    store_rows_free(r);
    return rc;
}

int auth_user_get(store_tx *tx, int64_t tenant, int64_t id, auth_user *u, store_err *err) {
    store_rows *r = NULL;
    store_val v[] = {SV_I(id), SV_I(tenant)};
    int rc = store_query(tx, "SELECT " USER_COLS " FROM users u JOIN tenants t ON t.id = u.tenant_id "
                             "WHERE u.id = $1 AND u.tenant_id = $2", v, 2, &r, err);
    if (rc == STORE_OK && store_rows_count(r) == 0) {
        rc = STORE_NOTFOUND;
        set_err(err, rc, "no such user");
    } else if (rc == STORE_OK) {
        user_from(r, 0, u);
    }
    store_rows_free(r);
    return rc;
}

int auth_user_find_login(store_tx *tx, const char *slug, const char *email, auth_user *u, store_err *err) {
    store_rows *r = NULL;
    store_val v[] = {SV_S(slug), SV_S(email)};
    int rc = store_query(tx, "SELECT " USER_COLS " FROM users u JOIN tenants t ON t.id = u.tenant_id "
                             "WHERE t.slug = $1 AND u.email = $2", v, 2, &r, err);
    if (rc == STORE_OK && store_rows_count(r) == 0) {
        rc = STORE_NOTFOUND;
        set_err(err, rc, "no such user");
    } else if (rc == STORE_OK) {
        user_from(r, 0, u);
    }
    store_rows_free(r);
    return rc;
}

static json_t *int_or_null(int64_t v) { return v ? json_integer(v) : json_null(); }

json_t *auth_user_json(const auth_user *u) {
    return json_pack("{s:I, s:s, s:s, s:o, s:b, s:I, s:I, s:o}", "id", (json_int_t)u->id, "email", u->email, "role",
                     auth_role_name(u->role), "agent_id", int_or_null(u->agent_id), "disabled", u->disabled,
                     "created_at", (json_int_t)u->created_at, "updated_at", (json_int_t)u->updated_at,
                     "last_login_at", int_or_null(u->last_login_at));
}

int auth_user_list(store_tx *tx, int64_t after, int limit, json_t **items, int64_t *next, store_err *err) {
    store_rows *r = NULL;
    store_val v[] = {SV_I(store_tx_tenant(tx)), SV_I(after), SV_I(limit + 1)};
    int rc = store_query(tx, "SELECT " USER_COLS " FROM users u JOIN tenants t ON t.id = u.tenant_id "
                             "WHERE u.tenant_id = $1 AND u.id > $2 ORDER BY u.id LIMIT $3", v, 3, &r, err);
    if (rc) return rc;
    *items = json_array();
    *next = 0;
    int n = store_rows_count(r);
    for (int i = 0; i < n && i < limit; i++) {
        auth_user u;
        user_from(r, i, &u);
        json_array_append_new(*items, auth_user_json(&u));
        if (i == limit - 1 && n > limit) *next = u.id;
    }
    store_rows_free(r);
    return STORE_OK;
}

/* ---- refresh tokens ---- */

int auth_refresh_wellformed(const char *s, size_t len) {
    if (len != AUTH_REFRESH_LEN || strncmp(s, "ehr_", 4) != 0) return 0;
    for (size_t i = 4; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

int auth_refresh_issue(store_tx *tx, int64_t tenant, int64_t user, const char *family, int64_t now_ms,
                       int64_t ttl_ms, char out[AUTH_REFRESH_LEN + 1], int64_t *id, store_err *err) {
    char hex[65], fam[33];
    if (ids_random_hex(hex, sizeof hex, 32) || (!family && ids_random_hex(fam, sizeof fam, 16))) {
        set_err(err, STORE_ERR, "no randomness for a refresh token");
        return STORE_ERR;
    }
    snprintf(out, AUTH_REFRESH_LEN + 1, "ehr_%s", hex);
    char hash[AUTH_HASH_HEX];
    auth_key_hash(out, AUTH_REFRESH_LEN, hash);
    store_rows *r = NULL;
    store_val v[] = {SV_I(tenant), SV_I(user), SV_S(family ? family : fam), SV_S(hash), SV_I(now_ms),
                     SV_I(now_ms + ttl_ms)};
    int rc = store_query(tx,
                         "INSERT INTO refresh_tokens (tenant_id, user_id, family_id, hash, created_at, expires_at) "
                         "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                         v, 6, &r, err);
    if (rc == STORE_OK && id) *id = store_rows_int(r, 0, 0);
    store_rows_free(r);
    sodium_memzero(hex, sizeof hex);
    return rc;
}

int auth_refresh_find(store_tx *tx, const char *token, auth_refresh *out, store_err *err) {
    char hash[AUTH_HASH_HEX];
    auth_key_hash(token, strlen(token), hash);
    store_rows *r = NULL;
    store_val v[] = {SV_S(hash)};
    int rc = store_query(tx, "SELECT id, tenant_id, user_id, family_id, expires_at, revoked_at FROM refresh_tokens "
                             "WHERE hash = $1", v, 1, &r, err);
    if (rc == STORE_OK && store_rows_count(r) == 0) {
        rc = STORE_NOTFOUND;
        set_err(err, rc, "unknown refresh token");
    } else if (rc == STORE_OK) {
        memset(out, 0, sizeof *out);
        out->id = store_rows_int(r, 0, 0);
        out->tenant = store_rows_int(r, 0, 1);
        out->user = store_rows_int(r, 0, 2);
        snprintf(out->family, sizeof out->family, "%s", store_rows_text(r, 0, 3));
        out->expires_at = store_rows_int(r, 0, 4);
        out->revoked_at = store_rows_isnull(r, 0, 5) ? 0 : store_rows_int(r, 0, 5);
    }
    store_rows_free(r);
    return rc;
}

int auth_refresh_revoke(store_tx *tx, int64_t id, int64_t replaced_by, int64_t now_ms, store_err *err) {
    store_val v[] = {SV_I(now_ms), replaced_by ? SV_I(replaced_by) : SV_NULLV, SV_I(id)};
    return store_query(tx, "UPDATE refresh_tokens SET revoked_at = $1, replaced_by = $2 WHERE id = $3", v, 3, NULL,
                       err);
}

int auth_refresh_revoke_all(store_tx *tx, const char *family, int64_t tenant, int64_t user, int64_t now_ms,
                            store_err *err) {
    if (family) {
        store_val v[] = {SV_I(now_ms), SV_S(family)};
        return store_query(tx, "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
                           v, 2, NULL, err);
    }
    store_val v[] = {SV_I(now_ms), SV_I(tenant), SV_I(user)};
    return store_query(tx, "UPDATE refresh_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND user_id = $3 "
                           "AND revoked_at IS NULL", v, 3, NULL, err);
}

/* ---- API keys ---- */

int auth_key_list(store_tx *tx, json_t **out, store_err *err) {
    store_rows *r = NULL;
    store_val v[] = {SV_I(store_tx_tenant(tx))};
    int rc = store_query(tx, "SELECT id, name, prefix, role, created_at, last_used_at, revoked_at FROM api_keys "
                             "WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1000", v, 1, &r, err);
    if (rc) return rc;
    *out = json_array();
    for (int i = 0; i < store_rows_count(r); i++) {
        json_array_append_new(
            *out, json_pack("{s:I, s:s, s:s, s:s, s:I, s:o, s:o}", "id", (json_int_t)store_rows_int(r, i, 0), "name",
                            store_rows_text(r, i, 1), "prefix", store_rows_text(r, i, 2), "role",
                            store_rows_text(r, i, 3), "created_at", (json_int_t)store_rows_int(r, i, 4),
                            "last_used_at", store_rows_isnull(r, i, 5) ? json_null() : json_integer(store_rows_int(r, i, 5)),
                            "revoked_at", store_rows_isnull(r, i, 6) ? json_null() : json_integer(store_rows_int(r, i, 6))));
    }
    store_rows_free(r);
    return STORE_OK;
}
