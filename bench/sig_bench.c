/* What an Ed25519 webhook signature costs to verify. Signs N GoHighLevel-
 * style ContactCreate bodies (~1 KB each, one tenant key) with libsodium,
 * then verifies all of them with libsodium's crypto_sign_verify_detached,
 * with auth/ed25519 (ed25519_verify on a key built once) and with OpenSSL
 * (a context per call, as auth/sig.c does for its other schemes), the
 * three in turn, several rounds in the same run; prints the best round's µs
 * per verification for each and the ratios, plus what ed25519_key_new
 * costs. Every verification must succeed, or the run aborts. Built against
 * a build's libehub.a (`make build/tools/sig_bench`):
 *
 *   sig_bench [n] [rounds]     (default 20000 3) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "auth/ed25519.h"

#define BODY_MAX 1200

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* A ContactCreate body like GoHighLevel's, ~1 KB, different per i. */
static size_t make_body(char *out, int i) {
    int n = snprintf(out, BODY_MAX,
                     "{\"type\":\"ContactCreate\",\"locationId\":\"ve9EPM428h8vShlRW1KT\","
                     "\"id\":\"nmFmQEsNgz6AVpgLVUJ%05d\",\"address1\":\"3535 1st St N\","
                     "\"city\":\"Dolomite\",\"state\":\"AL\",\"companyName\":\"Loram ipsum\","
                     "\"country\":\"US\",\"source\":\"public api\",\"dateAdded\":"
                     "\"2021-11-26T12:41:02.193Z\",\"dateOfBirth\":\"1990-09-25T00:00:00.000Z\","
                     "\"dnd\":true,\"email\":\"john%d@deo.com\",\"name\":\"John Deo\","
                     "\"firstName\":\"John\",\"lastName\":\"Deo\",\"phone\":\"+919509597501\","
                     "\"postalCode\":\"452001\",\"tags\":[\"nisi sint commodo amet\","
                     "\"consequat\"],\"website\":\"https://www.google.com/\",\"attachments\":[],"
                     "\"assignedTo\":\"nmFmQEsNgz6AVpgLVUJ0\",\"customFields\":[{\"id\":"
                     "\"BcdmQEsNgz6AVpgLVUJ0\",\"value\":\"XYZ Corp\"},{\"id\":"
                     "\"EgyiUrZNmF8Eq3nL2U5X\",\"value\":\"Referral from a neighbour who bought "
                     "last spring; wants three bedrooms, a garden and a short commute\"}],"
                     "\"dndSettings\":{\"Call\":{\"status\":\"active\",\"message\":\"\","
                     "\"code\":\"\"},\"Email\":{\"status\":\"inactive\"},\"SMS\":{\"status\":"
                     "\"inactive\"},\"WhatsApp\":{\"status\":\"inactive\"},\"GMB\":{\"status\":"
                     "\"inactive\"},\"FB\":{\"status\":\"inactive\"}},\"timestamp\":"
                     "\"2025-01-28T14:35:00.000Z\",\"webhookId\":\"6f9c7e2a-53b5-4a0e-9d7e-%012d\"}",
                     i, i, i);
    return n > 0 && n < BODY_MAX ? (size_t)n : 0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    if (n < 1 || rounds < 1 || sodium_init() < 0) return 1;

    unsigned char pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    char *bodies = malloc((size_t)n * BODY_MAX);
    size_t *lens = malloc((size_t)n * sizeof *lens);
    unsigned char *sigs = malloc((size_t)n * 64);
    if (!bodies || !lens || !sigs) return 1;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        char *b = bodies + (size_t)i * BODY_MAX;
        if (!(lens[i] = make_body(b, i))) return 1;
        total += lens[i];
        crypto_sign_detached(sigs + 64 * (size_t)i, NULL, (unsigned char *)b, lens[i], sk);
    }

    ed25519_key *key;
    if (ed25519_key_new(pk, &key) != ED25519_OK) return 1;
    EVP_PKEY *ossl = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
    if (!ossl) return 1;

    const char *names[3] = {"libsodium crypto_sign_verify_detached", "auth/ed25519 ed25519_verify",
                            "OpenSSL EVP_DigestVerify"};
    double best[3] = {1e300, 1e300, 1e300};
    for (int r = 0; r < rounds; r++) {
        for (int m = 0; m < 3; m++) {
            int bad = 0;
            double t0 = now_us();
            for (int i = 0; i < n; i++) {
                const unsigned char *b = (unsigned char *)bodies + (size_t)i * BODY_MAX;
                const unsigned char *s = sigs + 64 * (size_t)i;
                if (m == 0) {
                    bad += crypto_sign_verify_detached(s, b, lens[i], pk) != 0;
                } else if (m == 1) {
                    bad += ed25519_verify(key, s, b, lens[i]) != ED25519_OK;
                } else {
                    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
                    bad += !ctx || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, ossl) != 1 ||
                           EVP_DigestVerify(ctx, s, 64, b, lens[i]) != 1;
                    EVP_MD_CTX_free(ctx);
                }
            }
            double us = (now_us() - t0) / n;
            if (bad) {
                fprintf(stderr, "%s: %d of %d signatures did not verify\n", names[m], bad, n);
                return 1;
            }
            if (us < best[m]) best[m] = us;
        }
    }

    int keys = 200;
    double t0 = now_us();
    for (int i = 0; i < keys; i++) {
        ed25519_key *k;
        if (ed25519_key_new(pk, &k) != ED25519_OK) return 1;
        ed25519_key_free(k);
    }
    double key_us = (now_us() - t0) / keys;

    printf("%d signatures of %zu-byte bodies on average, best of %d rounds\n", n, total / (size_t)n,
           rounds);
    for (int m = 0; m < 3; m++) printf("  %-40s %7.2f us/verify\n", names[m], best[m]);
    printf("  libsodium / ed25519_verify             %7.2fx\n", best[0] / best[1]);
    printf("  OpenSSL / ed25519_verify               %7.2fx\n", best[2] / best[1]);
    printf("  ed25519_key_new (table for one key)    %7.2f us\n", key_us);

    ed25519_key_free(key);
    EVP_PKEY_free(ossl);
    free(bodies);
    free(lens);
    free(sigs);
    return 0;
}
