/* libFuzzer target for auth/jwt: arbitrary bytes as a token through
 * jwt_verify (with an Ed25519 key and an HS256 secret configured, at several
 * clocks) and the lower-level JWS check, as base64url (decode, then encode
 * must give the input back), and as key-file text.
 *
 * Invariants checked besides memory safety: a result code is one of the
 * JWT_* codes; a token that verifies carries the claims the checks promise
 * (issuer, positive ids, exp in the future); base64url is canonical.
 * Seeds in fuzz/corpus/jwt/ are valid tokens and tokens one step from
 * valid (alg none, HS256 with the public key, crit header, expired). */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"

static jwt_keyset *ks;
static unsigned char pk[32];

static void check(int cond) {
    if (!cond) abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    unsigned char seed[32];
    memset(seed, 1, sizeof seed);
    ks = jwt_keyset_new();
    check(ks && jwt_keyset_add_seed(ks, seed) == 0);
    memset(seed, 2, sizeof seed);
    check(jwt_keyset_add_seed(ks, seed) == 0);
    check(jwt_keyset_set_hs256(ks, "0123456789abcdef0123456789abcdef", 32) == 0);
    memcpy(pk, jwt_keyset_public(ks, 0), 32);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    static const int64_t clocks[] = {0, 1800000000, 1800000899, INT64_C(1) << 40};
    for (int i = 0; i < 4; i++) {
        jwt_claims c;
        int rc = jwt_verify(ks, s, size, "ehub", clocks[i], 30, &c);
        check(rc <= JWT_OK && rc >= JWT_NOMEM);
        if (rc == JWT_OK) {
            check(!strcmp(c.iss, "ehub") && c.sub > 0 && c.tid > 0 && c.tenant[0] && c.role[0]);
            check(clocks[i] < c.exp + 30);
        } else {
            check(c.sub == 0 && c.tid == 0);
        }
    }
    unsigned char payload[JWT_MAX_PAYLOAD];
    size_t pl;
    int rc = jwt_jws_verify_ed25519(pk, s, size, payload, sizeof payload, &pl);
    check(rc <= JWT_OK && rc >= JWT_NOMEM);
    if (rc == JWT_OK) check(pl <= sizeof payload);

    static unsigned char raw[8192];
    static char back[8192 * 2];
    size_t n;
    if (size <= sizeof raw && jwt_b64url_decode(s, size, raw, sizeof raw, &n) == 0) {
        size_t m = jwt_b64url_encode(raw, n, back, sizeof back);
        check(m == size && memcmp(back, s, size) == 0);
    }

    jwt_keyset *k2 = jwt_keyset_new();
    char err[200];
    int added = jwt_keyset_load_text(k2, s, size, err, sizeof err);
    check(added >= -1 && added <= JWT_MAX_KEYS && added == (added < 0 ? -1 : jwt_keyset_count(k2)));
    jwt_keyset_free(k2);
    return 0;
}
