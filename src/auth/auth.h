/* auth — who is calling and what they may do: roles, API keys, and the
 * principal every authenticated request carries.
 *
 * API keys look like "ehk_" + 40 hex characters (160 random bits). Only the
 * SHA-256 of a key is stored (a key has far more entropy than a password,
 * so a slow hash buys nothing and would cost every request); the key itself
 * is shown once, when created. Keys belong to one tenant and carry one role.
 * Lookups and creation run inside store transactions (blocking: thread
 * pool only). */
#ifndef EH_AUTH_H
#define EH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "auth/jwt.h"
#include "base/config.h"
#include "store/store.h"

enum {
    ROLE_VIEWER = 1 << 0,
    ROLE_AGENT = 1 << 1,
    ROLE_ANALYST = 1 << 2,
    ROLE_MANAGER = 1 << 3,
    ROLE_ADMIN = 1 << 4,
};
/* Route role sets. */
#define ROLES_ANY (ROLE_VIEWER | ROLE_AGENT | ROLE_ANALYST | ROLE_MANAGER | ROLE_ADMIN)
#define ROLES_READ_ALL (ROLE_VIEWER | ROLE_ANALYST | ROLE_MANAGER | ROLE_ADMIN)
#define ROLES_LEAD_WRITE (ROLE_AGENT | ROLE_MANAGER | ROLE_ADMIN)
#define ROLES_MANAGE (ROLE_MANAGER | ROLE_ADMIN)

/* "admin" → ROLE_ADMIN ...; -1 if unknown. */
int auth_role_parse(const char *s);
const char *auth_role_name(int role);

#define AUTH_KEY_LEN 44  /* "ehk_" + 40 hex */
#define AUTH_HASH_HEX 65 /* 64 hex + NUL */

typedef struct auth_principal {
    int64_t tenant;
    char tenant_slug[65];
    int role;         /* one ROLE_* bit */
    int64_t key_id;
    int64_t agent_id; /* for ROLE_AGENT principals bound to an agent, else 0 */
    int64_t user_id;  /* a user (logged in with a JWT), else 0 */
} auth_principal;

/* SHA-256 hex of a presented key. */
void auth_key_hash(const char *key, size_t len, char out[AUTH_HASH_HEX]);
/* 1 if s looks like an API key (prefix and length), before any lookup. */
int auth_key_wellformed(const char *s, size_t len);

/* Creates a key for the transaction's tenant. key_out receives the key
 * (AUTH_KEY_LEN + 1 bytes), shown to the user once. */
int auth_key_create(store_tx *tx, const char *name, int role, char key_out[AUTH_KEY_LEN + 1],
                    int64_t *id, store_err *err);
/* Resolves a key hash (any tenant: run with tenant 0). STORE_NOTFOUND for an
 * unknown or revoked key. Read-only; see auth_key_touch. */
int auth_key_lookup(store_tx *tx, const char *hash, int64_t now_ms, auth_principal *p,
                    store_err *err);
/* Records that a key was used (last_used_at = now). */
int auth_key_touch(store_tx *tx, int64_t id, int64_t now_ms, store_err *err);
/* Revokes a key of the transaction's tenant. STORE_NOTFOUND if none. */
int auth_key_revoke(store_tx *tx, int64_t id, int64_t now_ms, store_err *err);

/* Lists the tenant's keys, newest first: [{id, name, prefix, role,
 * created_at, last_used_at, revoked_at}] (never the hash). */
int auth_key_list(store_tx *tx, json_t **out, store_err *err);

/* ---- users and passwords ----
 * Passwords are hashed with Argon2id (libsodium crypto_pwhash_str) at the
 * INTERACTIVE limits (2 passes, 64 MiB): about 0.1 s of one core and 64 MiB
 * per hash, so hashing and verifying run on the thread pool, outside any
 * store transaction, and the login route bounds how many run at once. */
#define AUTH_PWHASH_LEN 128       /* crypto_pwhash_STRBYTES */
#define AUTH_PASSWORD_MIN 8
#define AUTH_PASSWORD_MAX 1024
#define AUTH_EMAIL_MAX 254
/* 0 and the hash in out, or -1 (out of memory: the 64 MiB could not be had). */
int auth_password_hash(const char *pw, size_t len, char out[AUTH_PWHASH_LEN]);
/* 1 if pw matches hash. hash may be NULL: a dummy hash is then checked so
 * an unknown account costs as long as a known one; the answer is 0. */
int auth_password_verify(const char *hash, const char *pw, size_t len);
/* Checks a password's length (bytes) and that it is valid UTF-8 without
 * control characters; NULL if fine, else the reason. */
const char *auth_password_problem(const char *pw, size_t len);
/* Lower-cases and checks an e-mail address into out (AUTH_EMAIL_MAX + 1);
 * -1 if it is not one. */
int auth_email_normalize(const char *in, char *out);

typedef struct auth_user {
    int64_t id, tenant, agent_id;
    char email[AUTH_EMAIL_MAX + 1];
    char tenant_slug[65];
    int role, disabled;
    char pwhash[AUTH_PWHASH_LEN];
    int64_t created_at, updated_at, last_login_at;
} auth_user;

/* Creates a user of the transaction's tenant. STORE_CONFLICT if the e-mail
 * is taken; STORE_INVALID if agent_id is not one of the tenant's agents. */
int auth_user_create(store_tx *tx, const char *email, int role, const char *pwhash, int64_t agent_id,
                     int64_t now_ms, int64_t *id, store_err *err);
/* By id, in tenant (the transaction's, or any in scope 0). STORE_NOTFOUND. */
int auth_user_get(store_tx *tx, int64_t tenant, int64_t id, auth_user *u, store_err *err);
/* By tenant slug and e-mail (run in tenant scope 0). STORE_NOTFOUND if none. */
int auth_user_find_login(store_tx *tx, const char *slug, const char *email, auth_user *u, store_err *err);
json_t *auth_user_json(const auth_user *u);
/* Lists the tenant's users, by id, after `after`, at most limit. */
int auth_user_list(store_tx *tx, int64_t after, int limit, json_t **items, int64_t *next, store_err *err);

/* ---- refresh tokens ----
 * "ehr_" + 64 hex (256 random bits), stored as SHA-256. */
#define AUTH_REFRESH_LEN 68
int auth_refresh_wellformed(const char *s, size_t len);
/* Issues a token for user in family (NULL: a new family, i.e. a login).
 * *id gets the row id. */
int auth_refresh_issue(store_tx *tx, int64_t tenant, int64_t user, const char *family, int64_t now_ms,
                       int64_t ttl_ms, char out[AUTH_REFRESH_LEN + 1], int64_t *id, store_err *err);
typedef struct auth_refresh {
    int64_t id, tenant, user, expires_at, revoked_at;
    char family[40];
} auth_refresh;
/* Looks a presented token up by hash (tenant scope 0). STORE_NOTFOUND. */
int auth_refresh_find(store_tx *tx, const char *token, auth_refresh *r, store_err *err);
/* Revokes one token (replaced_by may be 0). */
int auth_refresh_revoke(store_tx *tx, int64_t id, int64_t replaced_by, int64_t now_ms, store_err *err);
/* Revokes every live token of a family, or (family NULL) of a user. */
int auth_refresh_revoke_all(store_tx *tx, const char *family, int64_t tenant, int64_t user, int64_t now_ms,
                            store_err *err);

/* ---- audit trail ----
 * Per tenant, append-only, hash-chained: entry N's hash is SHA-256 over
 * entry N-1's hash and entry N's canonical form, so editing or deleting an
 * entry breaks the chain from there on (auth_audit_verify). Append inside the
 * transaction that makes the change, so both commit or neither. */
typedef struct auth_actor {
    const char *who;  /* "user:12", "key:3", "cli", "anonymous" */
    const char *ip;   /* may be NULL */
} auth_actor;
/* Formats the actor of principal p into buf (32 bytes). */
const char *auth_actor_name(const auth_principal *p, char buf[32]);
/* Appends to tenant's trail. detail: a JSON object or NULL (not stolen). */
int auth_audit(store_tx *tx, int64_t tenant, const auth_actor *actor, const char *action, const char *target,
               json_t *detail, int64_t now_ms, store_err *err);
/* Newest first, seq < before (0 = from the newest), at most limit. */
int auth_audit_list(store_tx *tx, int64_t before, int limit, json_t **items, int64_t *next, store_err *err);
/* Checks the transaction's tenant's chain. *entries gets how many were
 * checked, *bad the first bad seq (0 if none), why a reason, head the last
 * hash (65 bytes). */
int auth_audit_verify(store_tx *tx, int64_t *entries, int64_t *bad, char *why, size_t whylen,
                      char head[65], store_err *err);

/* ---- provider webhooks in the trail: inbox checkpoints ----
 * Webhooks are not chained one by one (that cost the ingest hot path ~10 %):
 * each webhook_inbox row carries an id and the BLAKE2b-256 of its body as
 * received (body_hash, written by the insert), and a periodic job appends
 * one "webhooks.checkpoint" entry per tenant covering the rows that arrived
 * since the last one: {first_id, last_id, count, runs, digest}, runs being
 * the covered ids as [from, to] runs and digest the SHA-256 over each row's
 * (id, provider, webhook_id, type, received_at, body_hash) in id order.
 * No personal data is in an entry. */
#define AUTH_HASH_HEX 65
/* Lowercase hex BLAKE2b-256 (crypto_generichash, no key) of len bytes; the
 * caller must have called sodium_init (the server does at start). */
void auth_body_hash_hex(const void *data, size_t len, char out[AUTH_HASH_HEX]);
/* The hash of the body "{}" the providers' de-duplication rows carry. */
extern const char auth_empty_body_hash[AUTH_HASH_HEX];
/* Tenants (admin-scope transaction) with inbox rows no checkpoint covers
 * yet: up to max ids into ids, *n how many. */
int auth_inbox_pending(store_tx *tx, int64_t *ids, int max, int *n, store_err *err);
/* Appends one checkpoint entry (at most AUTH_CHECKPOINT_ROWS rows) for
 * the transaction's tenant, covering rows after tenants.inbox_checkpoint_id
 * in id order up to the first one received at or after now_ms - margin_ms;
 * call it again (a transaction each) until *entries is 0. If another node
 * moved the tenant's checkpoint meanwhile, this one writes nothing.
 * *entries (0 or 1) and *rows get what was written.
 * margin_ms 0 (SQLite always; on PostgreSQL the shutdown pass and `ehub
 * audit checkpoint`) covers every committed row: the caller's store_write
 * holds the tenant's row lock, which every webhook's transaction takes
 * before it draws an inbox id, so no lower id of the tenant can commit
 * later. */
/* An entry's rows bound the writer's hold: ~2 ms for 1,000 rows. */
#define AUTH_CHECKPOINT_ROWS 1000
int auth_inbox_checkpoint(store_tx *tx, int64_t margin_ms, int64_t now_ms, int *entries, int64_t *rows,
                          store_err *err);
/* Recomputes every checkpoint of the transaction's tenant from the inbox
 * rows (run it after auth_audit_verify said the chain is whole: the entries
 * are trusted). A body emptied by an erasure (its id in a contact.erase
 * entry's inbox_ids) or by retention (received before a retention.run
 * entry's inbox_before) keeps its body_hash and is accepted. *bad_seq is
 * the first failing checkpoint's seq (0 if none), *bad_row the row named. */
typedef struct auth_inbox_report {
    int64_t checkpoints, rows, covered_to;
    int64_t uncovered; /* rows after covered_to: not yet covered, not a failure */
    int64_t bad_seq, bad_row;
    char why[240];
} auth_inbox_report;
int auth_inbox_verify(store_tx *tx, auth_inbox_report *rep, store_err *err);

/* ---- rate limits ----
 * Token buckets in process memory, loop thread only. A rate "N/s", "N/m"
 * or "N/h" is a bucket of N tokens refilled at N per period; "0" or "off"
 * disables. The table has a fixed number of slots; keys are hashed with a
 * per-process random key (SipHash) so clients cannot aim collisions, and a
 * new key takes over the stalest slot of its neighbourhood (preferring one
 * whose bucket is full again, which forgets nothing). */
typedef struct auth_rate {
    double burst;     /* tokens; 0 = unlimited */
    double per_ms;    /* refill */
} auth_rate;
int auth_rate_parse(const char *s, auth_rate *r);

typedef struct auth_limiter auth_limiter;
auth_limiter *auth_limiter_new(size_t slots);
void auth_limiter_free(auth_limiter *l);

typedef struct auth_limit_info {
    long limit, remaining;
    long reset_s;        /* seconds until the bucket is full again */
    long retry_after_s;  /* when refused: seconds until a token is there */
} auth_limit_info;
/* Checks bucket `key` (any bytes, len bounded by the caller) under rate r.
 * consume: take a token when one is there. Returns 1 if a token is (was)
 * there, 0 if not. info may be NULL. */
int auth_limiter_check(auth_limiter *l, const char *key, size_t len, const auth_rate *r, int64_t now_ms,
                       int consume, auth_limit_info *info);

/* Buckets shared by every node through Redis (src/auth/rlredis.c): one Lua
 * script (EVALSHA) checks and takes from all of a request's buckets at once,
 * on Redis's clock. Thread-safe; blocking (thread pool only), with a 250 ms
 * timeout. url: redis://HOST[:PORT][/...]; prefix is put before each key.
 * NULL with a reason in err. */
typedef struct auth_redis_limiter auth_redis_limiter;
auth_redis_limiter *auth_redis_limiter_new(const char *url, const char *prefix, char *err, size_t errlen);
void auth_redis_limiter_free(auth_redis_limiter *l);
/* Takes a token from each of keys[0..n-1] (1-4) if every one has one
 * (*ok = 1), else takes nothing (*ok = 0); info[i] describes bucket i
 * afterwards. -1 if Redis could not be asked (then the caller decides; for
 * a second after a failure requests do not wait for Redis again). */
int auth_redis_limiter_take(auth_redis_limiter *l, int n, const char *const *keys, const auth_rate *rates, int *ok,
                            auth_limit_info *info);
/* Sliding windows through the same connections (a second script): at most
 * `limit` requests counted in any window_ms for `key` (at most 150 bytes;
 * the limiter's prefix goes before it). A counted request stays counted
 * until window_ms after it ended: take stamps it now + hold_ms (longer than
 * the request can last, so a node that dies holding it errs on the safe
 * side) and done stamps it with the time it ended. member names the
 * request (unique among the key's requests; at most 64 bytes).
 * take: *wait_ms 0 when counted, else how long until asking again may
 * succeed. done: block_ms > 0 (a provider's Retry-After) makes every take
 * of the key wait that long. Both -1 when Redis could not be asked. */
int auth_redis_window_take(auth_redis_limiter *l, const char *key, int limit, int64_t window_ms, int64_t hold_ms,
                           const char *member, int64_t *wait_ms);
int auth_redis_window_done(auth_redis_limiter *l, const char *key, int64_t window_ms, const char *member,
                           int64_t block_ms);

/* ---- key files (src/auth/keyfile.c) ---- */
/* Reads a secret file: a regular file of at most max bytes that neither
 * group nor others may read or write (refused otherwise, saying so). *out
 * is NUL-terminated; free it with auth_secret_free, which wipes it. */
int auth_secret_read(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen);
void auth_secret_free(char *p, size_t len);
/* The JWT key set cfg configures: --jwt-key-file, else DATA_DIR/jwt.keys
 * (created with one new key, mode 0600, when missing), plus the HS256
 * secret if --jwt-hs256-secret-file is set. NULL with a reason in err. */
jwt_keyset *auth_jwt_keys_load(const ehub_config *cfg, char *err, size_t errlen);
/* Rotation: writes a new key in front of the key file's keys (the new one
 * signs; the old ones still verify), keeping at most keep keys. Atomic
 * (written aside, renamed). kid gets the new key's id. */
int auth_jwt_rotate(const ehub_config *cfg, int keep, char kid[JWT_KID_LEN], int *nkeys, char *err, size_t errlen);

/* ---- command line (src/auth/cli.c): ehub user, audit, jwt ----
 * Their own flags are taken out of argv before the common options see the
 * rest (as ml_cli_parse does). Passwords never come from the command line:
 * --password-file (mode 0600 or stricter), EHUB_USER_PASSWORD, or stdin. */
typedef struct auth_cli {
    const char *email, *role, *password_file, *name;
    int64_t agent_id;
    int keep;
} auth_cli;
int auth_cli_parse(int argc, char **argv, auth_cli *c, int *rest, int *nrest, char *err, size_t errlen);
extern const char auth_cli_user_help[], auth_cli_audit_help[], auth_cli_jwt_help[];
/* Each returns the process exit code (0, 1 runtime failure, 2 usage). */
int auth_cli_user(const ehub_config *cfg, logger *log, const auth_cli *c, int npos, char **pos);
int auth_cli_audit(const ehub_config *cfg, logger *log, int npos, char **pos);
int auth_cli_jwt(const ehub_config *cfg, const auth_cli *c, int npos, char **pos);

#endif
