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

#endif
