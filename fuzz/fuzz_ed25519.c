/* libFuzzer target for auth/ed25519, differential: every verdict must be
 * libsodium 1.0.18's crypto_sign_verify_detached's (the verifier it
 * replaced); a disagreement aborts with the inputs in hex.
 *
 * Input layout (missing bytes read as zero). First byte even, raw mode:
 *   32 bytes key, 64 bytes signature, the rest: the message.
 *   The signature and message are also checked under a fixed valid key.
 * First byte odd, signed mode, so that valid signatures are exercised:
 *   32 bytes seed (-> key pair), 1 byte mutation, 2 bytes of arguments
 *   (a, b), 32 bytes of extra data, the rest: the message. The message is
 *   signed, then, by the mutation (mod 8):
 *     0 nothing (must verify)        1 signature byte a ^= b (b != 0)
 *     2 S + L                        3 R := small-order encoding a
 *     4 R := identity, S := h x (the equation holds; R is small order)
 *     5 message bit a flipped        6 S := the extra data
 *     7 key := A + torsion point (a mod 8) and a signature satisfying the
 *       equation for it, R carrying torsion too (r from the extra data);
 *       b odd then flips bit (b / 2 mod 512) of it.
 * Seeds in fuzz/corpus/ed25519/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth/ed25519.h"

static ed25519_key *fixed;
static unsigned char fixed_pk[32];
static const unsigned char IDENTITY[32] = {1};
static unsigned char torsion[8][32]; /* [k] T for a point T of order 8 */
static unsigned char small[16][32];  /* small-order encodings, as libsodium lists them */
static int n_small;

static void hex(const char *what, const unsigned char *p, size_t n) {
    fprintf(stderr, "%s ", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, "%02x", p[i]);
    fprintf(stderr, "\n");
}

static void check_same(const unsigned char pk[32], const ed25519_key *k, const unsigned char sig[64],
                       const unsigned char *m, size_t len, int must_verify) {
    int ours = k && ed25519_verify(k, sig, m, len) == ED25519_OK;
    int theirs = crypto_sign_verify_detached(sig, m, len, pk) == 0;
    if (ours != theirs || (must_verify && !ours)) {
        fprintf(stderr, "ed25519 %d, libsodium %d, expected valid %d\n", ours, theirs, must_verify);
        hex("key", pk, 32);
        hex("sig", sig, 64);
        hex("msg", m, len);
        abort();
    }
}

/* ours == libsodium for (pk, sig, m), building the key for pk */
static void check_key(const unsigned char pk[32], const unsigned char sig[64], const unsigned char *m,
                      size_t len, int must_verify) {
    ed25519_key *k = NULL;
    int rc = ed25519_key_new(pk, &k);
    if (rc == ED25519_NOMEM || (rc == ED25519_OK) != (k != NULL)) abort();
    check_same(pk, k, sig, m, len, must_verify);
    ed25519_key_free(k);
}

/* [n]p by double-and-add on libsodium's point addition, which takes any
 * point on the curve, torsion included. */
static void mul_point(unsigned char out[32], const unsigned char p[32], const unsigned char n[32]) {
    unsigned char acc[32];
    memcpy(acc, IDENTITY, 32);
    for (int bit = 255; bit >= 0; bit--) {
        if (crypto_core_ed25519_add(acc, acc, acc) != 0) abort();
        if ((n[bit / 8] >> (bit % 8)) & 1)
            if (crypto_core_ed25519_add(acc, acc, p) != 0) abort();
    }
    memcpy(out, acc, 32);
}

static void add_small(const unsigned char e[32]) {
    for (int i = 0; i < n_small; i++)
        if (memcmp(small[i], e, 32) == 0) return;
    if (n_small == 16) abort();
    memcpy(small[n_small++], e, 32);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    if (sodium_init() < 0) abort();
    unsigned char seed[32] = "ehub fuzz_ed25519 fixed key....", sk[64];
    crypto_sign_seed_keypair(fixed_pk, sk, seed);
    if (ed25519_key_new(fixed_pk, &fixed) != ED25519_OK) abort();

    /* The curve's group is (Z/8) x (Z/L): [L]P is P's torsion part. Find a
     * P whose torsion part has order 8 ([4][L]P is not the identity). */
    unsigned char l[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                           0xa2, 0xde, 0xf9, 0xde, 0x14, [31] = 0x10};
    unsigned char four[32] = {4}, p[32] = {0}, t[32], t4[32], tmp[32];
    for (int y = 2;; y++) {
        if (y > 1000) abort();
        p[0] = (unsigned char)y;
        p[1] = (unsigned char)(y >> 8);
        if (crypto_core_ed25519_add(tmp, p, IDENTITY) != 0) continue; /* not on the curve */
        mul_point(t, p, l);
        mul_point(t4, t, four);
        if (memcmp(t4, IDENTITY, 32) != 0) break;
    }
    memcpy(torsion[0], IDENTITY, 32);
    for (int k = 1; k < 8; k++)
        if (crypto_core_ed25519_add(torsion[k], torsion[k - 1], t) != 0) abort();
    /* each torsion point with either sign bit, and y = p, p + 1 unreduced */
    for (int k = 0; k < 8; k++) {
        memcpy(tmp, torsion[k], 32);
        add_small(tmp);
        tmp[31] ^= 0x80;
        add_small(tmp);
    }
    for (int v = 0; v < 4; v++) {
        memset(tmp, 0xff, 32);
        tmp[0] = (unsigned char)(0xed + v % 2);
        tmp[31] = v < 2 ? 0x7f : 0xff;
        add_small(tmp);
    }
    if (n_small != 14) abort();
    return 0;
}

static void hash_reduce(unsigned char h[32], const unsigned char R[32], const unsigned char A[32],
                        const unsigned char *m, size_t len) {
    unsigned char digest[64];
    crypto_hash_sha512_state st;
    crypto_hash_sha512_init(&st);
    crypto_hash_sha512_update(&st, R, 32);
    crypto_hash_sha512_update(&st, A, 32);
    crypto_hash_sha512_update(&st, m, len);
    crypto_hash_sha512_final(&st, digest);
    crypto_core_ed25519_scalar_reduce(h, digest);
}

/* The secret scalar of a seed, reduced mod L. */
static void secret_scalar(unsigned char x[32], const unsigned char seed[32]) {
    unsigned char az[64], wide[64] = {0};
    crypto_hash_sha512(az, seed, 32);
    az[0] &= 248;
    az[31] &= 127;
    az[31] |= 64;
    memcpy(wide, az, 32);
    crypto_core_ed25519_scalar_reduce(x, wide);
}

/* Mutation 7: A = [x]B + T with T = torsion[tk]; R = [r]B + T' for the T'
 * that satisfies [S]B - [h]A = R with S = r + h x (see test_ed25519.c's
 * equation_sig). Returns 0 if no T' does for this r. */
static int mixed_order(unsigned char A[32], unsigned char sig[64], const unsigned char pk[32],
                       const unsigned char x[32], int tk, const unsigned char extra[32],
                       const unsigned char *m, size_t len) {
    unsigned char r[32], wide[64] = {0}, rb[32], tors_k[8][32];
    memcpy(wide, extra, 32);
    crypto_core_ed25519_scalar_reduce(r, wide);
    if (crypto_scalarmult_ed25519_base_noclamp(rb, r) != 0) return 0; /* r = 0 */
    if (crypto_core_ed25519_add(A, pk, torsion[tk]) != 0) abort();
    memcpy(tors_k[0], IDENTITY, 32);
    for (int k = 1; k < 8; k++)
        if (crypto_core_ed25519_add(tors_k[k], tors_k[k - 1], torsion[tk]) != 0) abort();
    for (int c = 0; c < 8; c++) {
        unsigned char h[32], hx[32];
        if (crypto_core_ed25519_add(sig, rb, torsion[c]) != 0) abort();
        hash_reduce(h, sig, A, m, len);
        if (memcmp(tors_k[(8 - (h[0] & 7)) & 7], torsion[c], 32) != 0) continue;
        crypto_core_ed25519_scalar_mul(hx, h, x);
        crypto_core_ed25519_scalar_add(sig + 32, r, hx);
        return 1;
    }
    return 0;
}

static void signed_mode(const uint8_t *in, const uint8_t *msg, size_t len) {
    const uint8_t *seed = in, *extra = in + 35;
    int kind = in[32] % 8, a = in[33], b = in[34];
    unsigned char pk[32], sk[64], sig[64], x[32], h[32];
    crypto_sign_seed_keypair(pk, sk, seed);
    crypto_sign_detached(sig, NULL, msg, len, sk);
    unsigned char *m = malloc(len + 1); /* the message, mutable */
    if (!m) abort();
    if (len) memcpy(m, msg, len);
    int valid = 0;
    switch (kind) {
    case 0:
        valid = 1;
        break;
    case 1:
        sig[a % 64] ^= (unsigned char)(b ? b : 1);
        break;
    case 2: { /* S + L: the same [S]B, not canonical */
        static const unsigned char l[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                            0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                            [31] = 0x10};
        unsigned c = 0;
        for (int i = 0; i < 32; i++) {
            c += sig[32 + i] + l[i];
            sig[32 + i] = (unsigned char)c;
            c >>= 8;
        }
        break;
    }
    case 3:
        memcpy(sig, small[a % n_small], 32);
        break;
    case 4: /* [h x]B - [h]A is the identity, which R then encodes */
        memcpy(sig, IDENTITY, 32);
        secret_scalar(x, seed);
        hash_reduce(h, sig, pk, m, len);
        crypto_core_ed25519_scalar_mul(sig + 32, h, x);
        break;
    case 5:
        if (len) m[(a * 256 + b) / 8 % len] ^= (unsigned char)(1 << (b % 8));
        break;
    case 6:
        memcpy(sig + 32, extra, 32);
        break;
    default: {
        unsigned char A[32];
        secret_scalar(x, seed);
        if (!mixed_order(A, sig, pk, x, a % 8, extra, m, len)) break;
        int flip = b & 1;
        if (flip) sig[(b / 2) % 64] ^= (unsigned char)(1 << (b % 8));
        check_key(A, sig, m, len, !flip);
        free(m);
        return;
    }
    }
    check_key(pk, sig, m, len, valid);
    free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t head[1 + 67] = {0};
    size_t n = size < sizeof head ? size : sizeof head;
    if (n) memcpy(head, data, n);
    if (head[0] & 1) {
        size_t used = sizeof head;
        signed_mode(head + 1, size > used ? data + used : NULL, size > used ? size - used : 0);
        return 0;
    }
    uint8_t raw[96] = {0};
    size_t used = 1 + sizeof raw;
    if (size > 1) memcpy(raw, data + 1, size - 1 < sizeof raw ? size - 1 : sizeof raw);
    const uint8_t *m = size > used ? data + used : NULL;
    size_t len = size > used ? size - used : 0;
    check_key(raw, raw + 32, m, len, 0);
    check_same(fixed_pk, fixed, raw + 32, m, len, 0);
    return 0;
}
