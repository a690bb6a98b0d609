/* jwt — the access tokens users get at login: compact JWS (RFC 7515) with
 * EdDSA / Ed25519 signatures (RFC 8037), or HS256 when an operator
 * configured a shared secret, and ehub's claims.
 *
 * Written here rather than taken from a library because the attack surface
 * is the parser, and this one is small: the token is bounded in length, each
 * part is strict base64url (no padding, canonical last character), the
 * header is a JSON object with only alg, typ and kid (anything else, "crit"
 * included, is refused), alg must be one the key set holds a key for and the
 * key is chosen by kid and must be of that algorithm (so an Ed25519 public
 * key can never be used as an HS256 secret), "none" is never accepted, and
 * signatures are compared in constant time. Verification is local: no
 * storage, safe on the loop thread (~50 µs).
 *
 * A key set holds one signing key and any number of verification-only keys
 * (previous keys, kept through a rotation so tokens they signed stay valid
 * until they expire). kid = first 16 hex characters of SHA-256 of the
 * Ed25519 public key, so every node loading the same key agrees on it.
 * A jwt_keyset is immutable after loading and may be shared by threads. */
#ifndef EH_AUTH_JWT_H
#define EH_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

enum {
    JWT_OK = 0,
    JWT_MALFORMED = -1, /* not a compact JWS we accept: length, base64url, JSON, header fields */
    JWT_ALG = -2,       /* alg not allowed, or no key with that kid/alg */
    JWT_BADSIG = -3,    /* signature does not verify */
    JWT_EXPIRED = -4,   /* exp passed (beyond the leeway) */
    JWT_NOTYET = -5,    /* nbf / iat in the future (beyond the leeway) */
    JWT_CLAIMS = -6,    /* required claim missing or of the wrong type, wrong iss */
    JWT_NOMEM = -7,
};

#define JWT_MAX_LEN 4096        /* longest token accepted */
#define JWT_MAX_HEADER 512      /* decoded header bytes */
#define JWT_MAX_PAYLOAD 2048    /* decoded payload bytes */
#define JWT_KID_LEN 17          /* 16 hex + NUL */
#define JWT_MAX_KEYS 16
#define JWT_HS256_MIN_SECRET 32 /* bytes */

/* ---- base64url without padding (RFC 7515 section 2) ---- */
/* Writes the encoding of in[0..n) and a NUL; returns its length, or 0 if
 * cap is too small (out is then ""). */
size_t jwt_b64url_encode(const void *in, size_t n, char *out, size_t cap);
/* Strict decode: alphabet A-Z a-z 0-9 - _, no padding, no whitespace, length
 * mod 4 != 1, unused bits zero. Returns 0 and *outlen, or -1. */
int jwt_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *outlen);

/* ---- keys ---- */
typedef struct jwt_keyset jwt_keyset;

jwt_keyset *jwt_keyset_new(void);
void jwt_keyset_free(jwt_keyset *ks);
/* Adds an Ed25519 key from its 32-byte seed. The first key added signs; the
 * others only verify. Returns 0, or -1 (set full, duplicate kid). */
int jwt_keyset_add_seed(jwt_keyset *ks, const unsigned char seed[32]);
/* Adds an Ed25519 public key (verification only). */
int jwt_keyset_add_public(jwt_keyset *ks, const unsigned char pk[32]);
/* Enables HS256 verification with secret (at least JWT_HS256_MIN_SECRET
 * bytes; copied). Tokens are still signed with Ed25519. */
int jwt_keyset_set_hs256(jwt_keyset *ks, const void *secret, size_t n);
int jwt_keyset_count(const jwt_keyset *ks);
/* kid of key i (0 = the signing key), or NULL. */
const char *jwt_keyset_kid(const jwt_keyset *ks, int i);
/* Public key of key i as 32 bytes, or NULL. */
const unsigned char *jwt_keyset_public(const jwt_keyset *ks, int i);

/* Parses key text: one key per line as 64 hex characters or the 43-character
 * base64url of a 32-byte seed, and/or "-----BEGIN PRIVATE KEY-----" PEM blocks
 * (PKCS#8 Ed25519, as `openssl genpkey -algorithm ed25519` writes). '#'
 * lines and blank lines are ignored. Keys are added in file order (the
 * first one signs). Returns the number of keys added, or -1 with a reason
 * in err (the key material is never quoted). */
int jwt_keyset_load_text(jwt_keyset *ks, const char *text, size_t len, char *err, size_t errlen);

/* ---- claims ---- */
typedef struct jwt_claims {
    char iss[64];
    int64_t sub;          /* user id */
    int64_t tid;          /* tenant id */
    char tenant[65];      /* tenant slug */
    char role[16];        /* role name */
    int64_t agent;        /* linked agent id, 0 if none */
    int64_t iat, nbf, exp; /* seconds since the epoch; nbf 0 if absent */
} jwt_claims;

/* Signs claims with the signing key into out (NUL-terminated). Returns the
 * token length, or 0 if there is no signing key, a claim string is too long
 * or not plain printable ASCII, or out is too small (JWT_MAX_LEN is enough). */
size_t jwt_sign(const jwt_keyset *ks, const jwt_claims *c, char *out, size_t cap);

/* Verifies token[0..n) (need not be NUL-terminated) and fills *c. iss: the
 * issuer the token must name. now: seconds since the epoch. leeway: seconds
 * of clock skew allowed for exp/nbf/iat. Returns a JWT_* code. */
int jwt_verify(const jwt_keyset *ks, const char *token, size_t n, const char *iss, int64_t now,
               int64_t leeway, jwt_claims *c);
/* A short English reason for a JWT_* code. */
const char *jwt_strerror(int rc);

/* ---- lower level, for tests and interop ----
 * Verifies a compact JWS with alg EdDSA (header checked as above, kid
 * optional) under the raw public key pk and copies the decoded payload into
 * payload (cap bytes) and *plen. Payload need not be JSON. */
int jwt_jws_verify_ed25519(const unsigned char pk[32], const char *token, size_t n,
                           unsigned char *payload, size_t cap, size_t *plen);

#endif
