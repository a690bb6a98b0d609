/* ed25519 — Ed25519 signature verification (RFC 8032) against a public key
 * that is used many times, with tables precomputed for that key.
 *
 * Why: every GoHighLevel webhook carries an Ed25519 signature, always under
 * the same few public keys, and libsodium's verifier spends about a quarter
 * of a webhook's CPU on it. Verification computes [S]B + [h](-A); libsodium
 * does it with ~253 point doublings because it knows nothing of A in
 * advance. Here ed25519_key_new builds, once per key, a table of multiples
 * of -A (and, once per process, the same table for the base point B), so
 * both products become table look-ups and ~50 additions each, with five
 * doublings in all: see bench/sig_bench.c for the measured gain.
 *
 * Acceptance rules are libsodium 1.0.18's crypto_sign_verify_detached,
 * exactly (tests/unit/test_ed25519.c and fuzz/fuzz_ed25519.c check it
 * against libsodium itself, so the switch changed no verdict):
 *   - the key must be a canonical encoding (y < p) of a point on the curve
 *     that does not have small order (order 1, 2, 4 or 8); a key with a
 *     torsion component but of large order is accepted;
 *   - S must be canonical (S < L), and R must not encode a point of small
 *     order;
 *   - h = SHA-512(R || A || M) mod L, and the signature is valid when the
 *     canonical encoding of [S]B - [h]A equals R byte for byte (the
 *     "cofactorless" equation; a non-canonical R never matches).
 *
 * Everything handled here is public (key, signature, message), so the code
 * is variable-time on purpose; it must never be used with secret scalars.
 * A key is immutable once built and may be shared by threads; verification
 * allocates nothing and keeps no state between calls. */
#ifndef EH_AUTH_ED25519_H
#define EH_AUTH_ED25519_H

#include <stddef.h>

enum {
    ED25519_OK = 0,
    ED25519_INVALID = -1, /* a key libsodium refuses; a signature that does not verify */
    ED25519_NOMEM = -2,
};

typedef struct ed25519_key ed25519_key;

/* Decodes and checks the 32-byte public key pk and builds its table (50 KB,
 * one allocation; ~0.25 ms). Returns ED25519_OK and sets *out (free
 * with ed25519_key_free), ED25519_INVALID if libsodium would refuse pk (not
 * canonical, not on the curve, small order) or an argument is NULL, or
 * ED25519_NOMEM (out of memory, or libsodium could not initialise); *out is
 * NULL on failure. */
int ed25519_key_new(const unsigned char pk[32], ed25519_key **out);

/* ED25519_OK if sig (R || S, 64 bytes) is a valid signature of msg[0..len)
 * under k, else ED25519_INVALID (also for a NULL k or sig, or a NULL msg with
 * len > 0). */
int ed25519_verify(const ed25519_key *k, const unsigned char sig[64], const void *msg, size_t len);

/* NULL is allowed. */
void ed25519_key_free(ed25519_key *k);

#endif
