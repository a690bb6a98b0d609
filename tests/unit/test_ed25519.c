/* auth/ed25519 against libsodium 1.0.18's crypto_sign_verify_detached, the
 * verifier it replaces and must agree with on every input: RFC 8032's test
 * vectors, thousands of random keys, messages and tampered signatures,
 * every small-order encoding as R and as the key, keys with a torsion
 * component, random 32-byte keys against an independent statement of
 * libsodium's key rules (OpenSSL BIGNUM arithmetic, not our field code),
 * argument checks, allocation failure and one key shared by threads.
 *
 * Random inputs come from a seeded generator; the seed is printed, and
 * EHUB_TEST_SEED=n repeats a run. EHUB_ED25519_ROUNDS sets the number of
 * random keys (default 3000, 6 s under ASan; 300 under valgrind). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <sodium.h>

#include "auth/ed25519.h"
#include "base/alloc.h"

/* ---- helpers ---- */

static uint64_t seed;

/* Deterministic random bytes: a ChaCha20 stream per call, keyed by the run's
 * seed and a call counter. */
static void rnd(void *buf, size_t n) {
    static uint64_t counter;
    unsigned char key[randombytes_SEEDBYTES] = {0};
    memcpy(key, &seed, sizeof seed);
    uint64_t c = counter++;
    memcpy(key + 8, &c, sizeof c);
    randombytes_buf_deterministic(buf, n, key);
}

/* A scalar below L. */
static void rnd_scalar(unsigned char s[32]) {
    unsigned char wide[64];
    rnd(wide, sizeof wide);
    crypto_core_ed25519_scalar_reduce(s, wide);
}

static uint32_t rnd_below(uint32_t n) {
    uint32_t v;
    rnd(&v, sizeof v);
    return v % n;
}

static size_t unhex(unsigned char *out, const char *hex) {
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
    return n;
}

static int sodium_ok(const unsigned char sig[64], const unsigned char *m, size_t len,
                     const unsigned char pk[32]) {
    return crypto_sign_verify_detached(sig, m, len, pk) == 0;
}

/* Our verdict for (pk, sig, m): a key ed25519_key_new refuses verifies
 * nothing, as in auth/sig. */
static int ours_ok(const unsigned char pk[32], const unsigned char sig[64], const unsigned char *m,
                   size_t len) {
    ed25519_key *k;
    int rc = ed25519_key_new(pk, &k);
    assert_int_not_equal(rc, ED25519_NOMEM);
    if (rc != ED25519_OK) return 0;
    int ok = ed25519_verify(k, sig, m, len) == ED25519_OK;
    ed25519_key_free(k);
    return ok;
}

static void same_verdict(const ed25519_key *k, const unsigned char pk[32], const unsigned char sig[64],
                         const unsigned char *m, size_t len, const char *what) {
    int a = ed25519_verify(k, sig, m, len) == ED25519_OK, b = sodium_ok(sig, m, len, pk);
    if (a != b)
        fail_msg("%s: ed25519_verify says %s, libsodium %s (seed %llu)", what, a ? "valid" : "invalid",
                 b ? "valid" : "invalid", (unsigned long long)seed);
}

/* L, the order of B, little-endian. */
static const unsigned char L_BYTES[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                          0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                          [31] = 0x10};

/* s += L (little-endian, 32 bytes; S < L < 2^253 so it cannot overflow) */
static void add_l(unsigned char s[32]) {
    unsigned c = 0;
    for (int i = 0; i < 32; i++) {
        c += s[i] + L_BYTES[i];
        s[i] = (unsigned char)c;
        c >>= 8;
    }
}

/* ---- the small-order points, derived ----
 *
 * On -x^2 + y^2 = 1 + d x^2 y^2 a point of order 8 doubles to one of order
 * 4, (+-sqrt(-1), 0); y(2P) = (x^2 + y^2)/(2 - y^2 + x^2) = 0 means
 * x^2 = -y^2, and the curve equation then gives d y^4 + 2 y^2 - 1 = 0, so
 * y^2 = (-1 +- sqrt(1 + d)) / d. Computed here with OpenSSL's BIGNUM; the
 * point (y8, even x) then generates all eight torsion points through
 * libsodium's point addition. */

static const char P_HEX[] = "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed";

static unsigned char torsion[8][32]; /* torsion[k] = [k] T8, canonical */
/* Every encoding libsodium 1.0.18 treats as small order: the torsion
 * points, with either sign bit, and y = p and p + 1 (0 and 1, not reduced). */
static unsigned char small[16][32];
static int n_small;
static BIGNUM *bn_p, *bn_d;
static BN_CTX *bn_ctx;

static void bn_to_le32(const BIGNUM *v, unsigned char out[32]) {
    assert_int_equal(BN_bn2lebinpad(v, out, 32), 32);
}

static void add_small(const unsigned char e[32]) {
    for (int i = 0; i < n_small; i++)
        if (memcmp(small[i], e, 32) == 0) return;
    assert_true(n_small < 16);
    memcpy(small[n_small++], e, 32);
}

static int setup(void **st) {
    if (sodium_init() < 0) return -1;
    const char *env = getenv("EHUB_TEST_SEED");
    seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    fprintf(stderr, "# test_ed25519: EHUB_TEST_SEED=%llu\n", (unsigned long long)seed);

    bn_ctx = BN_CTX_new();
    bn_p = BN_new();
    bn_d = BN_new();
    BIGNUM *t = BN_new(), *u = BN_new(), *s = BN_new(), *y = BN_new();
    BN_hex2bn(&bn_p, P_HEX);
    /* d = -121665 / 121666 */
    BN_set_word(t, 121666);
    BN_mod_inverse(u, t, bn_p, bn_ctx);
    BN_set_word(t, 121665);
    BN_mod_mul(bn_d, t, u, bn_p, bn_ctx);
    BN_sub(bn_d, bn_p, bn_d);
    /* s = sqrt(1 + d); y^2 = (-1 +- s) / d, one of which is a square */
    BN_copy(t, bn_d);
    BN_add_word(t, 1);
    if (!BN_mod_sqrt(s, t, bn_p, bn_ctx)) return -1;
    BN_mod_inverse(u, bn_d, bn_p, bn_ctx);
    int found = 0;
    for (int sign = 0; sign < 2 && !found; sign++) {
        if (sign) BN_sub(s, bn_p, s);
        BN_sub(t, s, BN_value_one()); /* s - 1 = -1 + s */
        BN_mod_mul(t, t, u, bn_p, bn_ctx);
        ERR_set_mark();
        found = BN_mod_sqrt(y, t, bn_p, bn_ctx) != NULL;
        ERR_pop_to_mark();
    }
    if (!found) return -1;
    unsigned char t8[32];
    bn_to_le32(y, t8);
    /* [k] T8 for k = 0..8: eight distinct points, and [8] T8 = identity. */
    memset(torsion[0], 0, 32);
    torsion[0][0] = 1;
    memcpy(torsion[1], t8, 32);
    for (int k = 2; k <= 8; k++) {
        unsigned char r[32];
        if (crypto_core_ed25519_add(r, torsion[k - 1], t8) != 0) return -1;
        if (k < 8) memcpy(torsion[k], r, 32);
        else if (memcmp(r, torsion[0], 32) != 0) return -1;
    }
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < i; j++)
            if (memcmp(torsion[i], torsion[j], 32) == 0) return -1;
    BN_free(t);
    BN_free(u);
    BN_free(s);
    BN_free(y);
    return 0;
}

static int teardown(void **st) {
    BN_free(bn_p);
    BN_free(bn_d);
    BN_CTX_free(bn_ctx);
    return 0;
}

static void build_small_list(void) {
    if (n_small) return;
    for (int k = 0; k < 8; k++) {
        unsigned char e[32];
        memcpy(e, torsion[k], 32);
        add_small(e);
        e[31] ^= 0x80;
        add_small(e);
    }
    for (int v = 0; v < 2; v++) { /* p + v */
        unsigned char e[32];
        memset(e, 0xff, 32);
        e[0] = (unsigned char)(0xed + v);
        e[31] = 0x7f;
        add_small(e);
        e[31] = 0xff;
        add_small(e);
    }
    /* y in {1, -1, 0, y8, -y8} with both sign bits, and the 2 aliases x 2 */
    assert_int_equal(n_small, 14);
}

/* libsodium 1.0.18's rules for a verification key, restated on BIGNUMs:
 * y (bits 0..254) below p, not the y of a small-order point (nor p or
 * p + 1), and (y^2 - 1)/(d y^2 + 1) a square (x exists). */
static int key_rule(const unsigned char pk[32]) {
    unsigned char e[32];
    memcpy(e, pk, 32);
    e[31] &= 0x7f;
    for (int i = 0; i < n_small; i++) {
        unsigned char f[32];
        memcpy(f, small[i], 32);
        f[31] &= 0x7f;
        if (memcmp(e, f, 32) == 0) return 0;
    }
    BIGNUM *y = BN_lebin2bn(e, 32, NULL), *u = BN_new(), *v = BN_new(), *ex = BN_new();
    int ok = BN_cmp(y, bn_p) < 0;
    if (ok) {
        BN_mod_sqr(u, y, bn_p, bn_ctx);
        BN_mod_mul(v, u, bn_d, bn_p, bn_ctx);
        BN_add_word(v, 1);
        BN_sub_word(u, 1); /* y^2 >= 1 here: y = 0 is on the list */
        BN_mod_inverse(v, v, bn_p, bn_ctx);
        BN_mod_mul(u, u, v, bn_p, bn_ctx);
        /* Euler's criterion: u^((p-1)/2) is 1 for a non-zero square */
        BN_sub(ex, bn_p, BN_value_one());
        BN_rshift1(ex, ex);
        BN_mod_exp(v, u, ex, bn_p, bn_ctx);
        ok = BN_is_zero(u) || BN_is_one(v);
    }
    BN_free(y);
    BN_free(u);
    BN_free(v);
    BN_free(ex);
    return ok;
}

/* A signature that satisfies the cofactorless equation [S]B - [h]A = R for
 * A = [a]B + tors (tors a torsion point; A_enc is the encoding hashed, which
 * need not be canonical), with R = [r]B + T' for the torsion point T' that
 * makes it hold: R' = [r + h a]B - [h]A = [r]B - [h]tors, and [h]tors
 * depends on h mod 8 only. r may be zero (R is then T' itself). Returns 0
 * if none of the 8 candidates for T' works for this r and message. */
static int equation_sig(unsigned char sig[64], const unsigned char r[32], const unsigned char a[32],
                        const unsigned char tors[32], const unsigned char A_enc[32],
                        const unsigned char *m, size_t len) {
    unsigned char rb[32], zero[32] = {0};
    if (memcmp(r, zero, 32) == 0) memcpy(rb, torsion[0], 32);
    else assert_int_equal(crypto_scalarmult_ed25519_base_noclamp(rb, r), 0);
    /* tors_k[k] = [k] tors */
    unsigned char tors_k[8][32];
    memcpy(tors_k[0], torsion[0], 32);
    for (int k = 1; k < 8; k++) assert_int_equal(crypto_core_ed25519_add(tors_k[k], tors_k[k - 1], tors), 0);
    for (int c = 0; c < 8; c++) {
        unsigned char R[32], digest[64], h[32], ha[32];
        assert_int_equal(crypto_core_ed25519_add(R, rb, torsion[c]), 0);
        crypto_hash_sha512_state st;
        crypto_hash_sha512_init(&st);
        crypto_hash_sha512_update(&st, R, 32);
        crypto_hash_sha512_update(&st, A_enc, 32);
        crypto_hash_sha512_update(&st, m, len);
        crypto_hash_sha512_final(&st, digest);
        crypto_core_ed25519_scalar_reduce(h, digest);
        /* -[h] tors = [(8 - h mod 8) mod 8] tors must be T' */
        if (memcmp(tors_k[(8 - (h[0] & 7)) & 7], torsion[c], 32) != 0) continue;
        memcpy(sig, R, 32);
        crypto_core_ed25519_scalar_mul(ha, h, a);
        crypto_core_ed25519_scalar_add(sig + 32, r, ha);
        return 1;
    }
    return 0;
}

/* ---- RFC 8032 section 7.1 ---- */

static const struct {
    const char *name, *sk, *pk, *msg, *sig;
} rfc[] = {
    {"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
    {"TEST 1024", "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
     "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
     "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1"
     "e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
     "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a"
     "7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
     "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10"
     "3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
     "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d"
     "502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
     "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b"
     "eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
     "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b"
     "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
     "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d"
     "cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
     "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7"
     "984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
     "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09"
     "43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
     "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161"
     "0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
     "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca"
     "c60c905c15fc910840b94c00a0b9d0",
     "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03"},
    {"TEST SHA(abc)", "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"},
};

static void test_rfc8032(void **st) {
    for (size_t v = 0; v < sizeof rfc / sizeof rfc[0]; v++) {
        unsigned char seed32[32], pk[32], sig[64], m[1024], kpk[32], ksk[64], own[64];
        unhex(seed32, rfc[v].sk);
        unhex(pk, rfc[v].pk);
        unhex(sig, rfc[v].sig);
        size_t len = unhex(m, rfc[v].msg);
        /* The transcription is right: libsodium derives the same key and,
         * Ed25519 being deterministic, the same signature. */
        crypto_sign_seed_keypair(kpk, ksk, seed32);
        assert_memory_equal(kpk, pk, 32);
        crypto_sign_detached(own, NULL, m, len, ksk);
        assert_memory_equal(own, sig, 64);

        ed25519_key *k;
        assert_int_equal(ed25519_key_new(pk, &k), ED25519_OK);
        if (ed25519_verify(k, sig, m, len) != ED25519_OK) fail_msg("%s does not verify", rfc[v].name);
        /* every single-bit change of R, S, the message or the key fails */
        for (int bit = 0; bit < 512; bit++) {
            sig[bit / 8] ^= (unsigned char)(1 << (bit % 8));
            assert_int_equal(ed25519_verify(k, sig, m, len), ED25519_INVALID);
            same_verdict(k, pk, sig, m, len, rfc[v].name);
            sig[bit / 8] ^= (unsigned char)(1 << (bit % 8));
        }
        for (size_t bit = 0; bit < 8 * len; bit += 1 + 8 * (len / 64)) {
            m[bit / 8] ^= (unsigned char)(1 << (bit % 8));
            assert_int_equal(ed25519_verify(k, sig, m, len), ED25519_INVALID);
            m[bit / 8] ^= (unsigned char)(1 << (bit % 8));
        }
        m[len] = 0;
        assert_int_equal(ed25519_verify(k, sig, m, len + 1), ED25519_INVALID);
        if (len) assert_int_equal(ed25519_verify(k, sig, m, len - 1), ED25519_INVALID);
        for (int bit = 0; bit < 256; bit++) {
            pk[bit / 8] ^= (unsigned char)(1 << (bit % 8));
            assert_false(ours_ok(pk, sig, m, len));
            assert_false(sodium_ok(sig, m, len, pk));
            pk[bit / 8] ^= (unsigned char)(1 << (bit % 8));
        }
        ed25519_key_free(k);
    }
}

/* ---- random keys, messages and tampering, against libsodium ---- */

static int rounds(void) {
    const char *env = getenv("EHUB_ED25519_ROUNDS");
    if (env) return atoi(env);
    const char *pre = getenv("LD_PRELOAD"); /* valgrind preloads vgpreload_*.so */
    return pre && strstr(pre, "vgpreload") ? 300 : 3000;
}

static void test_differential(void **st) {
    build_small_list();
    int n = rounds();
    static unsigned char m[2001];
    long compared = 0;
    for (int it = 0; it < n; it++) {
        unsigned char kseed[32], pk[32], sk[64], sig[64], bad[64];
        rnd(kseed, sizeof kseed);
        crypto_sign_seed_keypair(pk, sk, kseed);
        size_t len = rnd_below(2001);
        rnd(m, len);
        crypto_sign_detached(sig, NULL, m, len, sk);
        ed25519_key *k;
        assert_int_equal(ed25519_key_new(pk, &k), ED25519_OK);
        assert_int_equal(ed25519_verify(k, sig, m, len), ED25519_OK);
        same_verdict(k, pk, sig, m, len, "valid");
        compared += 8 + (len > 0) + (it % 4 == 0);

        /* 1 to 3 random bit flips in the signature */
        memcpy(bad, sig, 64);
        for (int f = 0, nf = 1 + (int)rnd_below(3); f < nf; f++) {
            uint32_t b = rnd_below(512);
            bad[b / 8] ^= (unsigned char)(1 << (b % 8));
        }
        same_verdict(k, pk, bad, m, len, "bit flips in the signature");
        if (len) {
            uint32_t b = rnd_below((uint32_t)(8 * len));
            m[b / 8] ^= (unsigned char)(1 << (b % 8));
            same_verdict(k, pk, sig, m, len, "bit flip in the message");
            m[b / 8] ^= (unsigned char)(1 << (b % 8));
        }
        /* S + L: the same point, [S + L]B = [S]B, but not canonical */
        memcpy(bad, sig, 64);
        add_l(bad + 32);
        assert_int_equal(ed25519_verify(k, bad, m, len), ED25519_INVALID);
        same_verdict(k, pk, bad, m, len, "S + L");
        /* S at or above L: random top bits */
        memcpy(bad, sig, 64);
        bad[63] |= (unsigned char)(0x10 << rnd_below(4));
        same_verdict(k, pk, bad, m, len, "S >= L");
        /* R replaced by a small-order encoding (a different one each time) */
        memcpy(bad, sig, 64);
        memcpy(bad, small[it % n_small], 32);
        same_verdict(k, pk, bad, m, len, "small-order R");
        /* R with its sign bit flipped: -R */
        memcpy(bad, sig, 64);
        bad[31] ^= 0x80;
        same_verdict(k, pk, bad, m, len, "-R");
        /* random bytes */
        rnd(bad, 64);
        same_verdict(k, pk, bad, m, len, "random signature");
        /* another key's valid signature */
        if (it % 4 == 0) {
            unsigned char pk2[32], sk2[64];
            rnd(kseed, sizeof kseed);
            crypto_sign_seed_keypair(pk2, sk2, kseed);
            crypto_sign_detached(bad, NULL, m, len, sk2);
            same_verdict(k, pk, bad, m, len, "other key");
        }
        ed25519_key_free(k);
    }
    print_message("%d keys: %ld verdicts (valid and tampered signatures) agreed with libsodium\n", n,
                  compared);
}

/* ---- torsion: keys and R with a small-order component ---- */

/* Keys A = [a]B + T of large order but not in the prime-order subgroup:
 * libsodium accepts them (it does not check the subgroup), and signatures
 * that satisfy its equation verify, with R carrying a torsion component
 * too. Our tables of -A must be exact for them. */
static void test_mixed_order_keys(void **st) {
    unsigned char m[64];
    int valid = 0;
    for (int k = 0; k < 8; k++) {
        unsigned char a[32], ab[32], A[32];
        rnd_scalar(a);
        assert_int_equal(crypto_scalarmult_ed25519_base_noclamp(ab, a), 0);
        assert_int_equal(crypto_core_ed25519_add(A, ab, torsion[k]), 0);
        if (k) assert_int_equal(crypto_core_ed25519_is_valid_point(A), 0); /* not in the subgroup */
        ed25519_key *key;
        assert_int_equal(ed25519_key_new(A, &key), ED25519_OK);
        for (int found = 0, tries = 0; found < 4; tries++) {
            assert_true(tries < 200);
            unsigned char r[32], sig[64];
            size_t len = rnd_below(sizeof m);
            rnd(m, len);
            rnd_scalar(r);
            if (!equation_sig(sig, r, a, torsion[k], A, m, len)) continue;
            found++;
            assert_true(sodium_ok(sig, m, len, A));
            assert_int_equal(ed25519_verify(key, sig, m, len), ED25519_OK);
            valid++;
            sig[32] ^= 1;
            same_verdict(key, A, sig, m, len, "mixed-order key, S changed");
        }
        ed25519_key_free(key);
    }
    assert_int_equal(valid, 32);
}

/* An R of small order for which the equation holds: S = h a (r = 0), so
 * [S]B - [h]A = -[h]T is small-order and equals R. libsodium refuses R
 * before computing; we must refuse it too. */
static void test_small_order_r_satisfying_equation(void **st) {
    unsigned char m[16], zero[32] = {0};
    for (int k = 0; k < 8; k++) {
        unsigned char a[32], ab[32], A[32], sig[64];
        rnd_scalar(a);
        assert_int_equal(crypto_scalarmult_ed25519_base_noclamp(ab, a), 0);
        assert_int_equal(crypto_core_ed25519_add(A, ab, torsion[k]), 0);
        int tries = 0;
        do {
            assert_true(tries++ < 200);
            rnd(m, sizeof m);
        } while (!equation_sig(sig, zero, a, torsion[k], A, m, sizeof m));
        ed25519_key *key;
        assert_int_equal(ed25519_key_new(A, &key), ED25519_OK);
        assert_false(sodium_ok(sig, m, sizeof m, A));
        assert_int_equal(ed25519_verify(key, sig, m, sizeof m), ED25519_INVALID);
        ed25519_key_free(key);
    }
}

/* Small-order keys, identity included, and non-canonical aliases of small
 * y: refused by ed25519_key_new, and by libsodium even for a signature that
 * satisfies the equation (so it is the key libsodium refuses). */
static void test_small_order_keys(void **st) {
    build_small_list();
    unsigned char zero[32] = {0}, m[8] = "webhook!";
    for (int i = 0; i < n_small; i++) {
        const unsigned char *A = small[i];
        ed25519_key *key = (ed25519_key *)1;
        assert_int_equal(ed25519_key_new(A, &key), ED25519_INVALID);
        assert_null(key);
        assert_false(key_rule(A));
        assert_int_equal(crypto_core_ed25519_is_valid_point(A), 0);
        /* The point libsodium decodes A to: y reduced mod p, x's sign from
         * bit 255 (x = 0 when y = +-1, whatever the bit says). */
        unsigned char point[32];
        memcpy(point, A, 32);
        if (point[0] >= 0xed && point[30] == 0xff && (point[31] & 0x7f) == 0x7f) {
            int y = point[0] - 0xed; /* p or p + 1 */
            memset(point, 0, 32);
            point[0] = (unsigned char)y;
            point[31] = A[31] & 0x80;
        }
        int k = -1;
        for (int j = 0; j < 8; j++) {
            unsigned char p1[32], p2[32];
            memcpy(p1, point, 32);
            memcpy(p2, torsion[j], 32);
            if (memcmp(p1, p2, 32) == 0) k = j;
            /* x = 0 with the sign bit set: the same point as torsion[j] */
            p1[31] &= 0x7f;
            if (k < 0 && memcmp(p1, p2, 32) == 0 && (j == 0 || j == 4)) k = j;
        }
        assert_true(k >= 0);
        unsigned char r[32], sig[64];
        int tries = 0;
        do {
            assert_true(tries++ < 200);
            rnd_scalar(r);
        } while (!equation_sig(sig, r, zero, torsion[k], A, m, sizeof m));
        assert_false(sodium_ok(sig, m, sizeof m, A));
        assert_false(ours_ok(A, sig, m, sizeof m));
    }
}

/* Key acceptance against key_rule, libsodium's rules restated on BIGNUMs:
 * random encodings (about half are on the curve; of those, 1 in 8 is in the
 * prime-order subgroup), every y from p to 2^255 - 1, and keys from
 * crypto_sign_keypair. Where crypto_core_ed25519_is_valid_point applies (it
 * also demands the prime-order subgroup), it agrees. */
static void test_key_rules(void **st) {
    build_small_list();
    int accepted = 0, in_subgroup = 0, n = rounds();
    for (int i = 0; i < n + 38; i++) {
        unsigned char pk[32];
        if (i < n) {
            rnd(pk, 32);
        } else { /* y = p + j, j < 19, either sign: not canonical */
            int j = (i - n) / 2;
            memset(pk, 0xff, 32);
            pk[0] = (unsigned char)(0xed + j);
            pk[31] = (i - n) % 2 ? 0xff : 0x7f;
        }
        ed25519_key *k;
        int rc = ed25519_key_new(pk, &k);
        assert_int_not_equal(rc, ED25519_NOMEM);
        if ((rc == ED25519_OK) != key_rule(pk)) {
            char hex[65];
            sodium_bin2hex(hex, sizeof hex, pk, 32);
            fail_msg("key %s: ed25519_key_new %d, libsodium's rules say %s", hex, rc,
                     key_rule(pk) ? "accept" : "refuse");
        }
        if (crypto_core_ed25519_is_valid_point(pk)) {
            assert_int_equal(rc, ED25519_OK);
            in_subgroup++;
        }
        if (i >= n) assert_int_equal(rc, ED25519_INVALID);
        accepted += rc == ED25519_OK;
        ed25519_key_free(k);
    }
    /* the sample is what it should be: ~1/2 on the curve, ~1/16 in the subgroup */
    assert_true(accepted > n / 3 && accepted < 2 * n / 3);
    assert_true(in_subgroup > n / 60 && in_subgroup < n / 6);
    for (int i = 0; i < 100; i++) {
        unsigned char pk[32], sk[64];
        crypto_sign_keypair(pk, sk);
        assert_true(key_rule(pk));
        assert_true(crypto_core_ed25519_is_valid_point(pk));
    }
}

/* ---- API edges ---- */

static void test_arguments(void **st) {
    unsigned char pk[32], sk[64], sig[64];
    crypto_sign_keypair(pk, sk);
    crypto_sign_detached(sig, NULL, NULL, 0, sk);
    ed25519_key *k = (ed25519_key *)1;
    assert_int_equal(ed25519_key_new(NULL, &k), ED25519_INVALID);
    assert_null(k);
    assert_int_equal(ed25519_key_new(pk, NULL), ED25519_INVALID);
    assert_int_equal(ed25519_key_new(pk, &k), ED25519_OK);
    /* the empty message, given as NULL or not */
    assert_int_equal(ed25519_verify(k, sig, NULL, 0), ED25519_OK);
    assert_int_equal(ed25519_verify(k, sig, "", 0), ED25519_OK);
    assert_int_equal(ed25519_verify(k, sig, NULL, 1), ED25519_INVALID);
    assert_int_equal(ed25519_verify(NULL, sig, "", 0), ED25519_INVALID);
    assert_int_equal(ed25519_verify(k, NULL, "", 0), ED25519_INVALID);
    /* S = L - 1 is canonical, S = L is not; neither verifies here */
    memcpy(sig + 32, L_BYTES, 32);
    assert_int_equal(ed25519_verify(k, sig, "", 0), ED25519_INVALID);
    sig[32]--;
    assert_int_equal(ed25519_verify(k, sig, "", 0), ED25519_INVALID);
    ed25519_key_free(k);
    ed25519_key_free(NULL);
}

static void test_alloc_failure(void **st) {
    unsigned char pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    ed25519_key *k = (ed25519_key *)1;
    eh_alloc_fail_after(0);
    int rc = ed25519_key_new(pk, &k);
    eh_alloc_fail_after(-1);
    assert_int_equal(rc, ED25519_NOMEM);
    assert_null(k);
    assert_int_equal(ed25519_key_new(pk, &k), ED25519_OK);
    ed25519_key_free(k);
}

/* ---- one key, several threads ---- */

#define T_MSGS 64
static struct {
    ed25519_key *key;
    unsigned char msg[T_MSGS][300];
    unsigned char sig[T_MSGS][64];
} shared;

static void *verify_loop(void *arg) {
    long failures = 0, start = (long)(intptr_t)arg;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < T_MSGS; i++) {
            int j = (int)((start + i) % T_MSGS);
            failures += ed25519_verify(shared.key, shared.sig[j], shared.msg[j], 300) != ED25519_OK;
            /* the next message's signature must not pass for this one */
            failures += ed25519_verify(shared.key, shared.sig[(j + 1) % T_MSGS], shared.msg[j], 300) !=
                        ED25519_INVALID;
        }
    }
    return (void *)(intptr_t)failures;
}

static void test_threads(void **st) {
    unsigned char pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    assert_int_equal(ed25519_key_new(pk, &shared.key), ED25519_OK);
    for (int i = 0; i < T_MSGS; i++) {
        rnd(shared.msg[i], 300);
        crypto_sign_detached(shared.sig[i], NULL, shared.msg[i], 300, sk);
    }
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, verify_loop, (void *)(intptr_t)(i * 17)), 0);
    long failures = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        assert_int_equal(pthread_join(t[i], &r), 0);
        failures += (long)(intptr_t)r;
    }
    assert_int_equal(failures, 0);
    ed25519_key_free(shared.key);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc8032),
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_mixed_order_keys),
        cmocka_unit_test(test_small_order_r_satisfying_equation),
        cmocka_unit_test(test_small_order_keys),
        cmocka_unit_test(test_key_rules),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("ed25519", tests, setup, teardown);
}
