/* auth/jwt and the rate limiter: base64url strictness, the RFC 8037 A.4
 * Ed25519 JWS vector, signing and verifying ehub's claims, every way a
 * token must be refused (alg none, HS256 without a secret, an Ed25519 public
 * key used as an HS256 secret, unknown or duplicate header fields, unknown
 * kid, expiry, nbf, issuer, tampering), key rotation, key files, and token
 * buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/jwt.h"

/* RFC 8037 appendix A.1 (key) and A.4 (JWS). */
static const char RFC_D[] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
static const char RFC_X[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
static const char RFC_JWS[] =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

static const int64_t NOW = 1800000000;

static void b64(const char *s, unsigned char *out, size_t cap, size_t *n) {
    assert_int_equal(jwt_b64url_decode(s, strlen(s), out, cap, n), 0);
}

static void test_b64url(void **st) {
    char out[64];
    unsigned char back[64];
    size_t n;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\xfd"};
    const char *want[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy", "__79"};
    for (int i = 0; i < 8; i++) {
        assert_int_equal(jwt_b64url_encode(in[i], strlen(in[i]), out, sizeof out), strlen(want[i]));
        assert_string_equal(out, want[i]);
        assert_int_equal(jwt_b64url_decode(out, strlen(out), back, sizeof back, &n), 0);
        assert_int_equal(n, strlen(in[i]));
        assert_memory_equal(back, in[i], n);
    }
    /* Padding, the standard alphabet, whitespace, impossible lengths and
     * non-canonical last characters are refused. */
    const char *bad[] = {"Zg==", "Zm8=", "+/79", "Zm 9", "Z", "Zm9vY", "Zh", "Zm9", "Zm8\n"};
    for (int i = 0; i < 9; i++)
        assert_int_equal(jwt_b64url_decode(bad[i], strlen(bad[i]), back, sizeof back, &n), -1);
    assert_int_equal(jwt_b64url_decode("Zm9vYmFy", 8, back, 5, &n), -1); /* does not fit */
    assert_int_equal(jwt_b64url_encode("foobar", 6, out, 8), 0);          /* no room for NUL */
}

static void test_rfc8037_a4(void **st) {
    unsigned char seed[32], x[32], pk[32], sk[64];
    size_t n;
    b64(RFC_D, seed, sizeof seed, &n);
    assert_int_equal(n, 32);
    b64(RFC_X, x, sizeof x, &n);
    assert_int_equal(n, 32);
    assert_int_equal(crypto_sign_seed_keypair(pk, sk, seed), 0);
    assert_memory_equal(pk, x, 32);
    /* Ed25519 is deterministic: signing the A.4 input gives A.4's signature. */
    const char *dot2 = strrchr(RFC_JWS, '.');
    unsigned char sig[64];
    crypto_sign_detached(sig, NULL, (const unsigned char *)RFC_JWS, (size_t)(dot2 - RFC_JWS), sk);
    char sigb[100];
    jwt_b64url_encode(sig, 64, sigb, sizeof sigb);
    assert_string_equal(sigb, dot2 + 1);
    /* A.5: it validates, and the payload is the example text. */
    unsigned char payload[64];
    size_t pl;
    assert_int_equal(jwt_jws_verify_ed25519(x, RFC_JWS, strlen(RFC_JWS), payload, sizeof payload, &pl), JWT_OK);
    assert_int_equal(pl, 26);
    assert_memory_equal(payload, "Example of Ed25519 signing", 26);
    /* One flipped character anywhere: refused. */
    char t[sizeof RFC_JWS];
    for (size_t i = 0; i < strlen(RFC_JWS); i += 7) {
        memcpy(t, RFC_JWS, sizeof t);
        if (t[i] == '.') continue;
        t[i] = t[i] == 'A' ? 'B' : 'A';
        assert_int_not_equal(jwt_jws_verify_ed25519(x, t, strlen(t), payload, sizeof payload, &pl), JWT_OK);
    }
    /* The key set reads the seed as a base64url line and derives the same key. */
    jwt_keyset *ks = jwt_keyset_new();
    char err[200];
    char text[100];
    snprintf(text, sizeof text, "# RFC 8037 A.1\n%s\n", RFC_D);
    assert_int_equal(jwt_keyset_load_text(ks, text, strlen(text), err, sizeof err), 1);
    assert_memory_equal(jwt_keyset_public(ks, 0), x, 32);
    /* ehub's own verifier refuses it: no kid, and the payload is no claims set. */
    jwt_claims c;
    assert_int_equal(jwt_verify(ks, RFC_JWS, strlen(RFC_JWS), "ehub", NOW, 0, &c), JWT_ALG);
    jwt_keyset_free(ks);
}

static jwt_keyset *keyset(unsigned char fill) {
    unsigned char seed[32];
    memset(seed, fill, sizeof seed);
    jwt_keyset *ks = jwt_keyset_new();
    assert_non_null(ks);
    assert_int_equal(jwt_keyset_add_seed(ks, seed), 0);
    return ks;
}

static jwt_claims claims(void) {
    jwt_claims c = {0};
    snprintf(c.iss, sizeof c.iss, "ehub");
    c.sub = 42;
    c.tid = 7;
    snprintf(c.tenant, sizeof c.tenant, "acme");
    snprintf(c.role, sizeof c.role, "manager");
    c.agent = 3;
    c.iat = NOW;
    c.exp = NOW + 900;
    return c;
}

static void test_sign_verify(void **st) {
    jwt_keyset *ks = keyset(1);
    jwt_claims in = claims(), out;
    char tok[JWT_MAX_LEN];
    size_t n = jwt_sign(ks, &in, tok, sizeof tok);
    assert_true(n > 0 && n == strlen(tok));
    assert_int_equal(jwt_verify(ks, tok, n, "ehub", NOW + 10, 0, &out), JWT_OK);
    assert_int_equal(out.sub, 42);
    assert_int_equal(out.tid, 7);
    assert_string_equal(out.tenant, "acme");
    assert_string_equal(out.role, "manager");
    assert_int_equal(out.agent, 3);
    assert_int_equal(out.exp, NOW + 900);
    /* The header names the key. */
    char hdr[200];
    unsigned char raw[200];
    size_t rl;
    const char *dot = strchr(tok, '.');
    assert_int_equal(jwt_b64url_decode(tok, (size_t)(dot - tok), raw, sizeof raw, &rl), 0);
    snprintf(hdr, sizeof hdr, "%.*s", (int)rl, raw);
    char want[100];
    snprintf(want, sizeof want, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", jwt_keyset_kid(ks, 0));
    assert_string_equal(hdr, want);
    /* Expiry and clock skew. */
    assert_int_equal(jwt_verify(ks, tok, n, "ehub", NOW + 900, 0, &out), JWT_EXPIRED);
    assert_int_equal(jwt_verify(ks, tok, n, "ehub", NOW + 929, 30, &out), JWT_OK);
    assert_int_equal(jwt_verify(ks, tok, n, "ehub", NOW + 930, 30, &out), JWT_EXPIRED);
    assert_int_equal(jwt_verify(ks, tok, n, "ehub", NOW - 60, 30, &out), JWT_NOTYET); /* iat ahead */
    assert_int_equal(jwt_verify(ks, tok, n, "ehub", NOW - 20, 30, &out), JWT_OK);
    /* Issuer, another key, truncation. */
    assert_int_equal(jwt_verify(ks, tok, n, "other", NOW, 0, &out), JWT_CLAIMS);
    jwt_keyset *other = keyset(2);
    assert_int_equal(jwt_verify(other, tok, n, "ehub", NOW, 0, &out), JWT_ALG);
    assert_int_equal(jwt_verify(ks, tok, n - 1, "ehub", NOW, 0, &out), JWT_MALFORMED);
    tok[n - 10] = tok[n - 10] == 'A' ? 'B' : 'A';
    assert_int_equal(jwt_verify(ks, tok, n, "ehub", NOW, 0, &out), JWT_BADSIG);
    assert_int_equal(out.sub, 0); /* nothing left behind on failure */
    /* Claims with quotes cannot be signed (they would break the JSON). */
    jwt_claims bad = claims();
    snprintf(bad.tenant, sizeof bad.tenant, "a\"b");
    assert_int_equal(jwt_sign(ks, &bad, tok, sizeof tok), 0);
    assert_int_equal(jwt_sign(ks, &in, tok, 100), 0);
    jwt_keyset_free(ks);
    jwt_keyset_free(other);
}

/* A token with any header and payload, signed with Ed25519 (sk) or HS256
 * (secret), or unsigned ("" signature). */
static void forge(char *out, size_t cap, const char *header, const char *payload, const unsigned char *sk,
                  const unsigned char *secret, size_t slen) {
    size_t o = jwt_b64url_encode(header, strlen(header), out, cap);
    out[o++] = '.';
    o += jwt_b64url_encode(payload, strlen(payload), out + o, cap - o);
    unsigned char sig[64];
    size_t sl = 0;
    if (sk) {
        crypto_sign_detached(sig, NULL, (unsigned char *)out, o, sk);
        sl = 64;
    } else if (secret) {
        crypto_auth_hmacsha256_state h;
        crypto_auth_hmacsha256_init(&h, secret, slen);
        crypto_auth_hmacsha256_update(&h, (unsigned char *)out, o);
        crypto_auth_hmacsha256_final(&h, sig);
        sl = 32;
    }
    out[o++] = '.';
    jwt_b64url_encode(sig, sl, out + o, cap - o);
}

static const char PAYLOAD[] = "{\"iss\":\"ehub\",\"sub\":\"42\",\"tid\":7,\"tenant\":\"acme\",\"role\":\"admin\",\"iat\":1800000000,"
                              "\"exp\":1800000900}";

static void test_refusals(void **st) {
    unsigned char seed[32], pk[32], sk[64];
    memset(seed, 1, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    jwt_keyset *ks = keyset(1);
    const char *kid = jwt_keyset_kid(ks, 0);
    char h[256], tok[JWT_MAX_LEN];
    jwt_claims c;
#define CHECK(hdr, pl, skey, sec, slen, want)                                            \
    do {                                                                                 \
        forge(tok, sizeof tok, hdr, pl, skey, sec, slen);                                \
        assert_int_equal(jwt_verify(ks, tok, strlen(tok), "ehub", NOW, 0, &c), want);    \
    } while (0)
    snprintf(h, sizeof h, "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", kid);
    CHECK(h, PAYLOAD, sk, NULL, 0, JWT_OK);
    /* alg none, with or without a signature */
    CHECK("{\"alg\":\"none\"}", PAYLOAD, NULL, NULL, 0, JWT_ALG);
    snprintf(h, sizeof h, "{\"alg\":\"none\",\"kid\":\"%s\"}", kid);
    CHECK(h, PAYLOAD, sk, NULL, 0, JWT_ALG);
    CHECK("{\"alg\":\"None\"}", PAYLOAD, NULL, NULL, 0, JWT_ALG);
    /* HS256 with no secret configured; then the public key as the secret
     * (the classic confusion) once a different secret is configured. */
    snprintf(h, sizeof h, "{\"alg\":\"HS256\",\"kid\":\"%s\"}", kid);
    CHECK(h, PAYLOAD, NULL, pk, 32, JWT_ALG);
    const unsigned char secret[] = "0123456789abcdef0123456789abcdef-hs";
    assert_int_equal(jwt_keyset_set_hs256(ks, secret, 35), 0);
    CHECK(h, PAYLOAD, NULL, pk, 32, JWT_BADSIG);
    CHECK(h, PAYLOAD, NULL, secret, 35, JWT_OK);
    CHECK("{\"alg\":\"HS256\"}", PAYLOAD, NULL, secret, 35, JWT_OK);
    assert_int_equal(jwt_keyset_set_hs256(ks, secret, 31), -1); /* too short */
    /* EdDSA with an HS256-sized signature, RS256, unknown kid, no kid */
    snprintf(h, sizeof h, "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", kid);
    CHECK(h, PAYLOAD, NULL, secret, 35, JWT_BADSIG);
    snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"kid\":\"%s\"}", kid);
    CHECK(h, PAYLOAD, sk, NULL, 0, JWT_ALG);
    CHECK("{\"alg\":\"EdDSA\",\"kid\":\"0000000000000000\"}", PAYLOAD, sk, NULL, 0, JWT_ALG);
    CHECK("{\"alg\":\"EdDSA\"}", PAYLOAD, sk, NULL, 0, JWT_ALG);
    /* Header strictness: crit, jku, duplicates, wrong types, not an object */
    snprintf(h, sizeof h, "{\"alg\":\"EdDSA\",\"kid\":\"%s\",\"crit\":[\"exp\"]}", kid);
    CHECK(h, PAYLOAD, sk, NULL, 0, JWT_MALFORMED);
    snprintf(h, sizeof h, "{\"alg\":\"EdDSA\",\"kid\":\"%s\",\"jku\":\"http://evil\"}", kid);
    CHECK(h, PAYLOAD, sk, NULL, 0, JWT_MALFORMED);
    snprintf(h, sizeof h, "{\"alg\":\"none\",\"alg\":\"EdDSA\",\"kid\":\"%s\"}", kid);
    CHECK(h, PAYLOAD, sk, NULL, 0, JWT_MALFORMED);
    snprintf(h, sizeof h, "{\"alg\":\"EdDSA\",\"kid\":\"%s\",\"typ\":\"JOSE+JSON\"}", kid);
    CHECK(h, PAYLOAD, sk, NULL, 0, JWT_MALFORMED);
    CHECK("[\"EdDSA\"]", PAYLOAD, sk, NULL, 0, JWT_MALFORMED);
    CHECK("{\"alg\":1}", PAYLOAD, sk, NULL, 0, JWT_MALFORMED);
    /* Claims: each required one, types, duplicates, nbf */
    snprintf(h, sizeof h, "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", kid);
    const char *bad_claims[] = {
        "{\"iss\":\"ehub\",\"sub\":\"42\",\"tid\":7,\"tenant\":\"acme\",\"role\":\"admin\",\"iat\":1800000000}",
        "{\"iss\":\"ehub\",\"sub\":42,\"tid\":7,\"tenant\":\"acme\",\"role\":\"admin\",\"iat\":1800000000,\"exp\":1800000900}",
        "{\"iss\":\"ehub\",\"sub\":\"042\",\"tid\":7,\"tenant\":\"acme\",\"role\":\"admin\",\"iat\":1800000000,\"exp\":1800000900}",
        "{\"iss\":\"ehub\",\"sub\":\"42\",\"tid\":\"7\",\"tenant\":\"acme\",\"role\":\"admin\",\"iat\":1800000000,\"exp\":1800000900}",
        "{\"iss\":\"ehub\",\"sub\":\"42\",\"tid\":7,\"role\":\"admin\",\"iat\":1800000000,\"exp\":1800000900}",
        "{\"iss\":\"ehub\",\"sub\":\"42\",\"tid\":7,\"tenant\":\"acme\",\"role\":\"admin\",\"iat\":1800000000,\"exp\":1.8e9}",
        "{\"iss\":\"ehub\",\"sub\":\"42\",\"tid\":7,\"tenant\":\"acme\",\"role\":\"admin\",\"iat\":1800000000,\"exp\":-1}",
        "{\"iss\":\"evil\",\"sub\":\"42\",\"tid\":7,\"tenant\":\"acme\",\"role\":\"admin\",\"iat\":1800000000,\"exp\":1800000900}",
    };
    for (size_t i = 0; i < sizeof bad_claims / sizeof bad_claims[0]; i++) CHECK(h, bad_claims[i], sk, NULL, 0, JWT_CLAIMS);
    CHECK(h, "{\"iss\":\"ehub\",\"iss\":\"x\"}", sk, NULL, 0, JWT_MALFORMED);
    CHECK(h, "[1]", sk, NULL, 0, JWT_MALFORMED);
    CHECK(h, "{\"iss\":\"ehub\",\"sub\":\"42\",\"tid\":7,\"tenant\":\"acme\",\"role\":\"admin\",\"iat\":1800000000,"
             "\"nbf\":1800000100,\"exp\":1800000900}", sk, NULL, 0, JWT_NOTYET);
#undef CHECK
    /* Shapes */
    const char *shapes[] = {"", ".", "..", "a.b", "a.b.c.d", "e30.e30.", "e30.e30.AA=="};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        assert_int_not_equal(jwt_verify(ks, shapes[i], strlen(shapes[i]), "ehub", NOW, 0, &c), JWT_OK);
    static char big[JWT_MAX_LEN + 2];
    memset(big, 'A', sizeof big - 1);
    big[10] = '.';
    big[20] = '.';
    assert_int_equal(jwt_verify(ks, big, strlen(big), "ehub", NOW, 0, &c), JWT_MALFORMED);
    assert_string_equal(jwt_strerror(JWT_EXPIRED), "token expired");
    jwt_keyset_free(ks);
}

static void test_rotation_and_key_text(void **st) {
    jwt_keyset *old = keyset(1);
    jwt_claims in = claims(), out;
    char tok[JWT_MAX_LEN];
    assert_true(jwt_sign(old, &in, tok, sizeof tok) > 0);
    /* After rotation the new key signs and the old one still verifies. */
    unsigned char s1[32], s2[32];
    memset(s1, 1, 32);
    memset(s2, 9, 32);
    char text[400], h1[65], h2[65];
    sodium_bin2hex(h1, sizeof h1, s1, 32);
    sodium_bin2hex(h2, sizeof h2, s2, 32);
    snprintf(text, sizeof text, "%s\n\n  %s  \r\n", h2, h1);
    jwt_keyset *ks = jwt_keyset_new();
    char err[200];
    assert_int_equal(jwt_keyset_load_text(ks, text, strlen(text), err, sizeof err), 2);
    assert_string_not_equal(jwt_keyset_kid(ks, 0), jwt_keyset_kid(old, 0));
    assert_string_equal(jwt_keyset_kid(ks, 1), jwt_keyset_kid(old, 0));
    assert_int_equal(jwt_verify(ks, tok, strlen(tok), "ehub", NOW, 0, &out), JWT_OK);
    char tok2[JWT_MAX_LEN];
    assert_true(jwt_sign(ks, &in, tok2, sizeof tok2) > 0);
    assert_int_equal(jwt_verify(old, tok2, strlen(tok2), "ehub", NOW, 0, &out), JWT_ALG);
    jwt_keyset_free(ks);
    /* A duplicate key, junk, a public key only */
    ks = jwt_keyset_new();
    snprintf(text, sizeof text, "%s\n%s\n", h1, h1);
    assert_int_equal(jwt_keyset_load_text(ks, text, strlen(text), err, sizeof err), -1);
    jwt_keyset_free(ks);
    ks = jwt_keyset_new();
    assert_int_equal(jwt_keyset_load_text(ks, "not a key\n", 10, err, sizeof err), -1);
    assert_null(strstr(err, "not a key\n"));
    jwt_keyset_free(ks);
    /* PEM (PKCS#8), as openssl genpkey writes it */
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, s1, 32);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
    char *pem;
    long pl = BIO_get_mem_data(b, &pem);
    ks = jwt_keyset_new();
    assert_int_equal(jwt_keyset_load_text(ks, pem, (size_t)pl, err, sizeof err), 1);
    assert_string_equal(jwt_keyset_kid(ks, 0), jwt_keyset_kid(old, 0));
    jwt_keyset_free(ks);
    BIO_free(b);
    EVP_PKEY_free(pk);
    jwt_keyset_free(old);
}

static void test_limiter(void **st) {
    auth_rate r;
    assert_int_equal(auth_rate_parse("5/m", &r), 0);
    assert_true(r.burst == 5);
    assert_int_equal(auth_rate_parse("off", &r), 0);
    assert_true(r.burst == 0);
    assert_int_equal(auth_rate_parse("5/x", &r), -1);
    assert_int_equal(auth_rate_parse("-1/s", &r), -1);
    assert_int_equal(auth_rate_parse("5", &r), -1);
    auth_limiter *l = auth_limiter_new(64);
    assert_int_equal(auth_rate_parse("3/s", &r), 0);
    auth_limit_info in;
    int64_t t = 1000000;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(auth_limiter_check(l, "k", 1, &r, t, 1, &in), 1);
        assert_int_equal(in.remaining, 2 - i);
        assert_int_equal(in.limit, 3);
    }
    assert_int_equal(auth_limiter_check(l, "k", 1, &r, t, 1, &in), 0);
    assert_int_equal(in.retry_after_s, 1);
    assert_int_equal(auth_limiter_check(l, "other", 5, &r, t, 1, &in), 1); /* separate bucket */
    assert_int_equal(auth_limiter_check(l, "k", 1, &r, t + 340, 0, &in), 1); /* one token back */
    assert_int_equal(auth_limiter_check(l, "k", 1, &r, t + 340, 1, &in), 1);
    assert_int_equal(auth_limiter_check(l, "k", 1, &r, t + 340, 1, &in), 0);
    /* Many keys through a small table: the table stays bounded, keys that
     * are hammered keep being limited. */
    for (int i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof k, "x%d", i);
        auth_limiter_check(l, k, strlen(k), &r, t + 340, 1, NULL);
    }
    auth_rate off = {0};
    assert_int_equal(auth_limiter_check(l, "k", 1, &off, t, 1, &in), 1);
    auth_limiter_free(l);
}

static void test_passwords(void **st) {
    char h[AUTH_PWHASH_LEN];
    assert_int_equal(auth_password_hash("correct horse", 13, h), 0);
    assert_non_null(strstr(h, "$argon2id$"));
    assert_int_equal(auth_password_verify(h, "correct horse", 13), 1);
    assert_int_equal(auth_password_verify(h, "correct horsE", 13), 0);
    assert_int_equal(auth_password_verify(NULL, "correct horse", 13), 0);
    assert_null(auth_password_problem("12345678", 8));
    assert_non_null(auth_password_problem("1234567", 7));
    assert_non_null(auth_password_problem("12345678\n", 9));
    assert_non_null(auth_password_problem("1234567\xff", 8));
    assert_null(auth_password_problem("p\xc3\xa4ssw\xc3\xb6rd", 10));
    char e[AUTH_EMAIL_MAX + 1];
    assert_int_equal(auth_email_normalize("Boss@Acme.Test", e), 0);
    assert_string_equal(e, "boss@acme.test");
    assert_int_equal(auth_email_normalize("no-at.test", e), -1);
    assert_int_equal(auth_email_normalize("a@b@c.d", e), -1);
    assert_int_equal(auth_email_normalize("a b@c.d", e), -1);
    assert_int_equal(auth_refresh_wellformed("ehr_", 4), 0);
}

int main(void) {
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),        cmocka_unit_test(test_rfc8037_a4),
        cmocka_unit_test(test_sign_verify),   cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_rotation_and_key_text), cmocka_unit_test(test_limiter),
        cmocka_unit_test(test_passwords),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
