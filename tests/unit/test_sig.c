/* auth/sig: base64, key loading (PEM and bare base64 DER), Ed25519 /
 * RSA-SHA256 / ECDSA-P256 verification against keys generated here, the
 * GoHighLevel keys, HMAC and Twilio's published vector, constant-time
 * compare, allocation failure (ours and libcrypto's), and shared keys used
 * from several threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "auth/sig.h"
#include "base/alloc.h"

/* Keys generated once for the whole suite (RSA generation is slow). */
static struct {
    EVP_PKEY *ed, *ed2, *rsa, *rsa2, *ec, *ec2;
} fx;

static int setup(void **st) {
    fx.ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    fx.ed2 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    fx.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    fx.rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    fx.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    fx.ec2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    return fx.ed && fx.ed2 && fx.rsa && fx.rsa2 && fx.ec && fx.ec2 ? 0 : -1;
}

static int teardown(void **st) {
    EVP_PKEY_free(fx.ed);
    EVP_PKEY_free(fx.ed2);
    EVP_PKEY_free(fx.rsa);
    EVP_PKEY_free(fx.rsa2);
    EVP_PKEY_free(fx.ec);
    EVP_PKEY_free(fx.ec2);
    return 0;
}

/* ---- helpers ---- */

/* Public key as SPKI PEM text; caller frees with free(). */
static char *pub_pem(EVP_PKEY *pk) {
    BIO *b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PUBKEY(b, pk), 1);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

/* Public key as bare base64 of the SPKI DER (SendGrid style). */
static char *pub_b64(EVP_PKEY *pk) {
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(pk, &der);
    assert_true(n > 0);
    size_t cap = sig_b64_encoded_size((size_t)n);
    char *s = malloc(cap);
    assert_int_equal(sig_b64_encode(der, (size_t)n, s, cap), SIG_OK);
    OPENSSL_free(der);
    return s;
}

static sig_key *load(const char *text) {
    sig_key *k = NULL;
    char err[200];
    int rc = sig_key_load(text, strlen(text), &k, err, sizeof err);
    if (rc != SIG_OK) fail_msg("sig_key_load: %d %s", rc, err);
    return k;
}

static sig_key *load_pub(EVP_PKEY *pk) {
    char *pem = pub_pem(pk);
    sig_key *k = load(pem);
    free(pem);
    return k;
}

/* Raw signature of msg by pk (md NULL for Ed25519). */
static size_t sign_raw(EVP_PKEY *pk, const EVP_MD *md, const void *msg, size_t len,
                       unsigned char *sig, size_t cap) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, md, NULL, pk), 1);
    size_t n = cap;
    assert_int_equal(EVP_DigestSign(ctx, sig, &n, msg, len), 1);
    EVP_MD_CTX_free(ctx);
    return n;
}

static void sign_b64(EVP_PKEY *pk, const EVP_MD *md, const void *msg, size_t len, char *out,
                     size_t cap) {
    unsigned char sig[1024];
    size_t n = sign_raw(pk, md, msg, len, sig, sizeof sig);
    assert_int_equal(sig_b64_encode(sig, n, out, cap), SIG_OK);
}

/* Flips one bit of the decoded signature and re-encodes it. */
static void tamper_b64(const char *in, char *out, size_t cap, size_t byte) {
    unsigned char raw[1536];
    size_t n;
    assert_int_equal(sig_b64_decode(in, strlen(in), raw, sizeof raw, &n), SIG_OK);
    raw[byte % n] ^= 0x01;
    assert_int_equal(sig_b64_encode(raw, n, out, cap), SIG_OK);
}

typedef int (*verify_fn)(const sig_key *, const void *, size_t, const char *);

/* The behaviour every verifier must share, for one key type. */
static void check_verifier(verify_fn verify, EVP_PKEY *pk, EVP_PKEY *other, const EVP_MD *md,
                           const sig_key *wrong_type) {
    const char msg[] = "1700000000{\"type\":\"ContactCreate\",\"id\":\"abc\"}";
    size_t len = sizeof msg - 1;
    char sig[2048], bad[2100];
    sign_b64(pk, md, msg, len, sig, sizeof sig);

    sig_key *k = load_pub(pk);
    sig_key *ko = load_pub(other);
    assert_int_equal(verify(k, msg, len, sig), SIG_OK);

    /* tampered message: a changed byte, one byte fewer, one more */
    char msg2[sizeof msg];
    memcpy(msg2, msg, sizeof msg);
    msg2[5] ^= 1;
    assert_int_equal(verify(k, msg2, len, sig), SIG_BAD);
    assert_int_equal(verify(k, msg, len - 1, sig), SIG_BAD);
    assert_int_equal(verify(k, msg, len + 1, sig), SIG_BAD);
    assert_int_equal(verify(k, NULL, 0, sig), SIG_BAD);

    /* tampered signature: first, middle and last byte */
    for (size_t at = 0; at < 3; at++) {
        unsigned char raw[1536];
        size_t n;
        assert_int_equal(sig_b64_decode(sig, strlen(sig), raw, sizeof raw, &n), SIG_OK);
        tamper_b64(sig, bad, sizeof bad, at == 0 ? 0 : at == 1 ? n / 2 : n - 1);
        assert_int_equal(verify(k, msg, len, bad), SIG_BAD);
    }
    /* truncated and extended signatures are well-formed base64 but wrong */
    {
        unsigned char raw[1536];
        size_t n;
        assert_int_equal(sig_b64_decode(sig, strlen(sig), raw, sizeof raw, &n), SIG_OK);
        assert_int_equal(sig_b64_encode(raw, n - 1, bad, sizeof bad), SIG_OK);
        assert_int_equal(verify(k, msg, len, bad), SIG_BAD);
        raw[n] = 0;
        assert_int_equal(sig_b64_encode(raw, n + 1, bad, sizeof bad), SIG_OK);
        assert_int_equal(verify(k, msg, len, bad), SIG_BAD);
        assert_int_equal(verify(k, msg, len, "AAAA"), SIG_BAD);
    }

    /* the other key of the same type */
    assert_int_equal(verify(ko, msg, len, sig), SIG_BAD);
    /* a key of another type, and no key */
    assert_int_equal(verify(wrong_type, msg, len, sig), SIG_MALFORMED);
    assert_int_equal(verify(NULL, msg, len, sig), SIG_MALFORMED);

    /* bad base64, empty, missing, oversized */
    snprintf(bad, sizeof bad, "%s", sig);
    bad[3] = '*';
    assert_int_equal(verify(k, msg, len, bad), SIG_MALFORMED);
    snprintf(bad, sizeof bad, " %s", sig);
    assert_int_equal(verify(k, msg, len, bad), SIG_MALFORMED);
    assert_int_equal(verify(k, msg, len, ""), SIG_MALFORMED);
    assert_int_equal(verify(k, msg, len, "="), SIG_MALFORMED);
    assert_int_equal(verify(k, msg, len, "===="), SIG_MALFORMED);
    assert_int_equal(verify(k, msg, len, NULL), SIG_MALFORMED);
    assert_int_equal(verify(k, NULL, 5, sig), SIG_MALFORMED);
    char *huge = malloc(SIG_SIG_B64_MAX + 5);
    memset(huge, 'A', SIG_SIG_B64_MAX + 4);
    huge[SIG_SIG_B64_MAX + 4] = 0;
    assert_int_equal(verify(k, msg, len, huge), SIG_MALFORMED);
    huge[SIG_SIG_B64_MAX] = 0; /* exactly at the bound: decodes, does not verify */
    assert_int_equal(verify(k, msg, len, huge), SIG_BAD);
    free(huge);

    /* empty and large messages */
    sign_b64(pk, md, "", 0, sig, sizeof sig);
    assert_int_equal(verify(k, "", 0, sig), SIG_OK);
    assert_int_equal(verify(k, NULL, 0, sig), SIG_OK);
    size_t big_len = 3 * 1024 * 1024 + 7;
    unsigned char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++) big[i] = (unsigned char)(i * 131 + 7);
    sign_b64(pk, md, big, big_len, sig, sizeof sig);
    assert_int_equal(verify(k, big, big_len, sig), SIG_OK);
    big[big_len / 2] ^= 0x80;
    assert_int_equal(verify(k, big, big_len, sig), SIG_BAD);
    free(big);

    sig_key_free(k);
    sig_key_free(ko);
}

/* ---- base64 ---- */

static void test_b64_vectors(void **st) {
    /* RFC 4648 section 10 */
    static const char *v[][2] = {{"", ""},         {"f", "Zg=="},       {"fo", "Zm8="},
                                 {"foo", "Zm9v"},  {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                 {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char enc[16];
        size_t n = strlen(v[i][0]);
        assert_int_equal(sig_b64_encoded_size(n), strlen(v[i][1]) + 1);
        assert_int_equal(sig_b64_encode(v[i][0], n, enc, sizeof enc), SIG_OK);
        assert_string_equal(enc, v[i][1]);
        unsigned char dec[16];
        size_t dn = 99;
        assert_int_equal(sig_b64_decode(v[i][1], strlen(v[i][1]), dec, sizeof dec, &dn), SIG_OK);
        assert_int_equal(dn, n);
        assert_memory_equal(dec, v[i][0], n);
        /* and without padding */
        size_t un = strcspn(v[i][1], "=");
        assert_int_equal(sig_b64_decode(v[i][1], un, dec, sizeof dec, &dn), SIG_OK);
        assert_int_equal(dn, n);
        assert_memory_equal(dec, v[i][0], n);
    }
}

static void test_b64_roundtrip(void **st) {
    unsigned char in[300], out[300];
    char enc[420];
    for (size_t n = 0; n < sizeof in; n++) {
        for (size_t i = 0; i < n; i++) in[i] = (unsigned char)(i * 73 + n * 29 + 255);
        assert_int_equal(sig_b64_encode(in, n, enc, sizeof enc), SIG_OK);
        assert_int_equal(strlen(enc), sig_b64_encoded_size(n) - 1);
        size_t dn;
        assert_int_equal(sig_b64_decode(enc, strlen(enc), out, n, &dn), SIG_OK); /* exact cap */
        assert_int_equal(dn, n);
        assert_memory_equal(in, out, n);
        size_t un = strcspn(enc, "=");
        assert_int_equal(sig_b64_decode(enc, un, out, n, &dn), SIG_OK);
        assert_int_equal(dn, n);
        assert_memory_equal(in, out, n);
        if (n) { /* one byte short of room */
            assert_int_equal(sig_b64_decode(enc, strlen(enc), out, n - 1, &dn), SIG_MALFORMED);
            assert_int_equal(dn, 0);
        }
    }
    /* every byte value survives, including '+' and '/' in the output */
    for (int i = 0; i < 256; i++) in[i] = (unsigned char)i;
    assert_int_equal(sig_b64_encode(in, 256, enc, sizeof enc), SIG_OK);
    assert_non_null(strchr(enc, '+'));
    assert_non_null(strchr(enc, '/'));
    size_t dn;
    assert_int_equal(sig_b64_decode(enc, strlen(enc), out, sizeof out, &dn), SIG_OK);
    assert_int_equal(dn, 256);
    assert_memory_equal(in, out, 256);
}

static void test_b64_reject(void **st) {
    static const char *rejects[] = {
        "Z",          /* 6 bits */
        "Zg=",        /* incomplete padding */
        "Zg===",      /* too much padding */
        "=",          "==",       "====",       "A===",
        "Zh==",       /* non-zero leftover bits: a second spelling of "f" */
        "Zm9=",       /* ditto for "fo" */
        "Zh",         "Zm9",
        "Zg==Zg==",   /* padding in the middle */
        "Zm9v\n",     "Zm 9v",     " Zm9v",     "Zm9v\r\n",
        "Zm-v",       "Zm_v",     /* URL-safe alphabet */
        "Zm9v!",      "Zm9\x80",  "Zm\xffv",
    };
    unsigned char out[64];
    for (size_t i = 0; i < sizeof rejects / sizeof rejects[0]; i++) {
        size_t n = 77;
        int rc = sig_b64_decode(rejects[i], strlen(rejects[i]), out, sizeof out, &n);
        if (rc != SIG_MALFORMED) fail_msg("accepted \"%s\"", rejects[i]);
        assert_int_equal(n, 0);
    }
    size_t n;
    /* an embedded NUL is just another invalid character */
    assert_int_equal(sig_b64_decode("Zm\0v", 4, out, sizeof out, &n), SIG_MALFORMED);
    /* valid: unpadded "Zm8" ("fo") and "Zg" ("f") */
    assert_int_equal(sig_b64_decode("Zm8", 3, out, sizeof out, &n), SIG_OK);
    assert_int_equal(n, 2);
    assert_int_equal(sig_b64_decode("Zg", 2, out, sizeof out, &n), SIG_OK);
    assert_int_equal(n, 1);
    /* argument errors */
    assert_int_equal(sig_b64_decode(NULL, 4, out, sizeof out, &n), SIG_MALFORMED);
    assert_int_equal(sig_b64_decode("Zm9v", 4, out, sizeof out, NULL), SIG_MALFORMED);
    assert_int_equal(sig_b64_decode("Zm9v", 4, NULL, 0, &n), SIG_MALFORMED); /* no room */
    assert_int_equal(sig_b64_decode(NULL, 0, NULL, 0, &n), SIG_OK);
    assert_int_equal(n, 0);
    /* encode into too small a buffer leaves "" */
    char enc[8] = "xxxxxxx";
    assert_int_equal(sig_b64_encode("foobar", 6, enc, 8), SIG_MALFORMED);
    assert_string_equal(enc, "");
    assert_int_equal(sig_b64_encode("foobar", 6, enc, 0), SIG_MALFORMED);
    assert_int_equal(sig_b64_encode(NULL, 3, enc, sizeof enc), SIG_MALFORMED);
    assert_int_equal(sig_b64_encoded_size(SIZE_MAX), 0);
}

/* ---- keys ---- */

static void test_key_load_forms(void **st) {
    char *pem = pub_pem(fx.rsa);
    char *b64 = pub_b64(fx.rsa);
    sig_key *k;
    char err[200];

    k = load(pem);
    assert_int_equal(sig_key_kind(k), SIG_KEY_RSA);
    assert_int_equal(sig_key_bits(k), 2048);
    sig_key_free(k);

    k = load(b64);
    assert_int_equal(sig_key_kind(k), SIG_KEY_RSA);
    sig_key_free(k);

    /* CRLF line ends, surrounding blanks, body on one line, base64 wrapped */
    char text[4096], *o = text;
    o += sprintf(o, "\r\n  ");
    for (const char *p = pem; *p; p++) {
        if (*p == '\n') *o++ = '\r';
        *o++ = *p;
    }
    sprintf(o, "   \n\t");
    sig_key_free(load(text));
    char *one = malloc(strlen(pem) + 1);
    o = one;
    const char *body = pem + strlen("-----BEGIN PUBLIC KEY-----\n");
    o += sprintf(o, "-----BEGIN PUBLIC KEY-----");
    for (const char *p = body; *p != '-'; p++)
        if (*p != '\n') *o++ = *p;
    sprintf(o, "-----END PUBLIC KEY-----");
    sig_key_free(load(one));
    free(one);
    snprintf(text, sizeof text, "%.20s\n%.20s\n %s", b64, b64 + 20, b64 + 40);
    sig_key_free(load(text));

    /* not NUL-terminated: only len bytes are read */
    char *copy = malloc(strlen(pem) + 8);
    memcpy(copy, pem, strlen(pem));
    memcpy(copy + strlen(pem), "garbage", 7);
    assert_int_equal(sig_key_load(copy, strlen(pem), &k, err, sizeof err), SIG_OK);
    sig_key_free(k);
    assert_int_equal(sig_key_load(copy, strlen(pem) + 7, &k, err, sizeof err), SIG_MALFORMED);
    assert_null(k);
    free(copy);

    /* Ed25519 and P-256, in both forms */
    char *ed = pub_b64(fx.ed);
    k = load(ed);
    assert_int_equal(sig_key_kind(k), SIG_KEY_ED25519);
    sig_key_free(k);
    free(ed);
    char *ec = pub_b64(fx.ec);
    k = load(ec);
    assert_int_equal(sig_key_kind(k), SIG_KEY_EC_P256);
    assert_int_equal(sig_key_bits(k), 256);
    sig_key_free(k);
    free(ec);
    ec = pub_pem(fx.ec);
    sig_key_free(load(ec));
    free(ec);
    free(pem);
    free(b64);
}

static void expect_reject(const char *text, size_t len, const char *why) {
    sig_key *k = (sig_key *)1;
    char err[200] = "";
    int rc = sig_key_load(text, len, &k, err, sizeof err);
    if (rc != SIG_MALFORMED) fail_msg("accepted (%d) key text: %.60s", rc, text ? text : "(null)");
    assert_null(k);
    if (why && !strstr(err, why)) fail_msg("reason \"%s\" lacks \"%s\"", err, why);
}

static char *pem_of(EVP_PKEY *pk, int private) {
    BIO *b = BIO_new(BIO_s_mem());
    if (private)
        assert_int_equal(PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL), 1);
    else
        assert_int_equal(PEM_write_bio_PUBKEY(b, pk), 1);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static void test_key_load_rejects(void **st) {
    char buf[8192 + 64];
    expect_reject(NULL, 10, "no key");
    expect_reject("", 0, "empty");
    expect_reject(" \r\n\t ", 5, "empty");
    expect_reject("hello world", 11, "base64");
    expect_reject("AAAA", 4, "SubjectPublicKeyInfo");
    expect_reject("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----", 51, "empty");
    expect_reject("-----BEGIN PUBLIC KEY-----", 26, "PEM");
    expect_reject("-----BEGIN PUBLIC KEY-----END PUBLIC KEY-----", 45, "PEM");
    expect_reject("-----", 5, "PEM");

    char *pem = pub_pem(fx.rsa);
    size_t pl = strlen(pem);
    /* PKCS#1 "RSA PUBLIC KEY" label */
    snprintf(buf, sizeof buf, "%s", pem);
    char *bl = strstr(buf, "BEGIN PUBLIC");
    memmove(bl + 10, bl + 6, strlen(bl + 6) + 1);
    memcpy(bl + 6, "RSA ", 4);
    expect_reject(buf, strlen(buf), "SubjectPublicKeyInfo");
    /* trailing garbage after END, two keys, missing END, a header line */
    snprintf(buf, sizeof buf, "%sx", pem);
    expect_reject(buf, strlen(buf), "PEM");
    snprintf(buf, sizeof buf, "%s%s", pem, pem);
    expect_reject(buf, strlen(buf), NULL);
    snprintf(buf, sizeof buf, "%.*s", (int)(pl - 26), pem);
    expect_reject(buf, strlen(buf), "END");
    snprintf(buf, sizeof buf, "-----BEGIN PUBLIC KEY-----\nComment: x\n%s", pem + 27);
    expect_reject(buf, strlen(buf), "base64");
    /* a corrupted body */
    snprintf(buf, sizeof buf, "%s", pem);
    buf[40] = buf[40] == 'A' ? 'B' : 'A';
    expect_reject(buf, strlen(buf), NULL);
    free(pem);

    /* DER with bytes after the key */
    unsigned char *der = NULL;
    int dn = i2d_PUBKEY(fx.ed, &der);
    unsigned char der2[128];
    memcpy(der2, der, (size_t)dn);
    der2[dn] = 0;
    OPENSSL_free(der);
    sig_b64_encode(der2, (size_t)dn + 1, buf, sizeof buf);
    expect_reject(buf, strlen(buf), "after the key");
    sig_b64_encode(der2, (size_t)dn - 1, buf, sizeof buf);
    expect_reject(buf, strlen(buf), "SubjectPublicKeyInfo");

    /* private keys are not public keys */
    char *priv = pem_of(fx.ec, 1);
    expect_reject(priv, strlen(priv), "PEM");
    free(priv);

    /* key types and sizes we do not verify with */
    EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
    EVP_PKEY *x25519 = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    assert_true(weak && p384 && ed448 && x25519);
    char *t;
    t = pem_of(weak, 0);
    expect_reject(t, strlen(t), "1024 bits");
    free(t);
    t = pem_of(p384, 0);
    expect_reject(t, strlen(t), "P-256");
    free(t);
    t = pem_of(ed448, 0);
    expect_reject(t, strlen(t), "ED448");
    free(t);
    t = pem_of(x25519, 0);
    expect_reject(t, strlen(t), "X25519");
    free(t);
    EVP_PKEY_free(weak);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(ed448);
    EVP_PKEY_free(x25519);

    /* over the size bound, even if it were valid */
    memset(buf, ' ', SIG_KEY_TEXT_MAX + 1);
    memcpy(buf, "AAAA", 4);
    expect_reject(buf, SIG_KEY_TEXT_MAX + 1, "longer");

    /* no out pointer; err may be NULL or tiny */
    assert_int_equal(sig_key_load("AAAA", 4, NULL, NULL, 0), SIG_MALFORMED);
    sig_key *k;
    assert_int_equal(sig_key_load("AAAA", 4, &k, NULL, 0), SIG_MALFORMED);
    char tiny[4];
    assert_int_equal(sig_key_load("AAAA", 4, &k, tiny, sizeof tiny), SIG_MALFORMED);
    assert_int_equal(strlen(tiny), 3);
    sig_key_free(NULL);
    assert_int_equal(sig_key_kind(NULL), 0);
    assert_int_equal(sig_key_bits(NULL), 0);
}

/* ---- verifiers ---- */

static void test_ed25519(void **st) {
    sig_key *rsa = load_pub(fx.rsa);
    check_verifier(sig_verify_ed25519, fx.ed, fx.ed2, NULL, rsa);
    sig_key_free(rsa);
}

/* libcrypto takes any 32 bytes as an Ed25519 key; the verifier refuses
 * some (not on the curve, non-canonical, small order), as libsodium did.
 * Such a key still loads, as before, and verifies nothing. */
static void test_ed25519_refused_points(void **st) {
    unsigned char der[44] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
    unsigned char raw[64] = {0};
    char b64[100], sig[100];
    assert_int_equal(sig_b64_encode(raw, 64, sig, sizeof sig), SIG_OK);
    for (int c = 0; c < 4; c++) {
        memset(der + 12, 0, 32); /* y = 0: a point of order 4 */
        if (c == 1) der[12] = 1; /* the identity */
        if (c == 2) der[12] = 2; /* y = 2 is not on the curve */
        if (c == 3) memset(der + 12, 0xff, 32); /* y >= p */
        assert_int_equal(sig_b64_encode(der, sizeof der, b64, sizeof b64), SIG_OK);
        sig_key *k = load(b64);
        assert_int_equal(sig_key_kind(k), SIG_KEY_ED25519);
        assert_int_equal(sig_verify_ed25519(k, "", 0, sig), SIG_BAD);
        assert_int_equal(sig_verify_ed25519(k, "msg", 3, sig), SIG_BAD);
        sig_key_free(k);
    }
}

static void test_rsa_sha256(void **st) {
    sig_key *ed = load_pub(fx.ed);
    check_verifier(sig_verify_rsa_sha256, fx.rsa, fx.rsa2, EVP_sha256(), ed);
    /* The same key signing with SHA-1 or PSS must not pass as PKCS#1 SHA-256. */
    const char msg[] = "payload";
    sig_key *k = load_pub(fx.rsa);
    char sig[1024];
    sign_b64(fx.rsa, EVP_sha1(), msg, 7, sig, sizeof sig);
    assert_int_equal(sig_verify_rsa_sha256(k, msg, 7, sig), SIG_BAD);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx;
    assert_int_equal(EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, fx.rsa), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
    unsigned char raw[512];
    size_t rn = sizeof raw;
    assert_int_equal(EVP_DigestSign(ctx, raw, &rn, (const unsigned char *)msg, 7), 1);
    EVP_MD_CTX_free(ctx);
    sig_b64_encode(raw, rn, sig, sizeof sig);
    assert_int_equal(sig_verify_rsa_sha256(k, msg, 7, sig), SIG_BAD);
    sig_key_free(k);
    sig_key_free(ed);
}

/* SendGrid's published vector (the test of its event-webhook library,
 * sendgrid-nodejs packages/eventwebhook): the dashboard's verification key
 * as bare base64, the signature over timestamp + payload. */
static void test_sendgrid_vector(void **st) {
    sig_key *k = load("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlv"
                      "FYPAZFceEu/1FwCM/QmGUhA==");
    const char *sig = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
    const char *payload = "{\"category\":\"example_payload\",\"event\":\"test_event\",\"message_id\":\"message_id\"}";
    char msg[256];
    int n = snprintf(msg, sizeof msg, "%s%s", "1588788367", payload);
    assert_int_equal(sig_verify_ecdsa_p256_sha256(k, msg, (size_t)n, sig), SIG_OK);
    /* the library's negative cases: another payload, a changed signature,
     * another timestamp, another key */
    n = snprintf(msg, sizeof msg, "%s%s", "1588788367", "payload");
    assert_int_equal(sig_verify_ecdsa_p256_sha256(k, msg, (size_t)n, sig), SIG_BAD);
    n = snprintf(msg, sizeof msg, "%s%s", "1588788367", payload);
    assert_int_equal(sig_verify_ecdsa_p256_sha256(
                         k, msg, (size_t)n,
                         "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0="),
                     SIG_BAD);
    n = snprintf(msg, sizeof msg, "%s%s", "timestamp", payload);
    assert_int_equal(sig_verify_ecdsa_p256_sha256(k, msg, (size_t)n, sig), SIG_BAD);
    sig_key *other = load("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7a"
                          "NDthvj+y7GjUuFDb/R1NGe1OPzpA==");
    n = snprintf(msg, sizeof msg, "%s%s", "1588788367", payload);
    assert_int_equal(sig_verify_ecdsa_p256_sha256(other, msg, (size_t)n, sig), SIG_BAD);
    sig_key_free(other);
    sig_key_free(k);
}

static void test_ecdsa_p256(void **st) {
    sig_key *ed = load_pub(fx.ed);
    check_verifier(sig_verify_ecdsa_p256_sha256, fx.ec, fx.ec2, EVP_sha256(), ed);

    /* SendGrid: key pasted as bare base64, signature over timestamp + body. */
    char *b64 = pub_b64(fx.ec);
    sig_key *k = load(b64);
    free(b64);
    const char ts[] = "1600112502";
    const char body[] = "[{\"email\":\"hello@world.com\",\"event\":\"dropped\"}]\r\n";
    char signed_bytes[128];
    int n = snprintf(signed_bytes, sizeof signed_bytes, "%s%s", ts, body);
    char sig[256];
    sign_b64(fx.ec, EVP_sha256(), signed_bytes, (size_t)n, sig, sizeof sig);
    assert_int_equal(sig_verify_ecdsa_p256_sha256(k, signed_bytes, (size_t)n, sig), SIG_OK);
    assert_int_equal(sig_verify_ecdsa_p256_sha256(k, body, sizeof body - 1, sig), SIG_BAD);

    /* A raw r||s (JWS style) signature is not DER: rejected, not crashed. */
    unsigned char der[80];
    size_t dl = sign_raw(fx.ec, EVP_sha256(), "m", 1, der, sizeof der);
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
    assert_non_null(es);
    unsigned char rs[64];
    BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
    ECDSA_SIG_free(es);
    sig_b64_encode(rs, 64, sig, sizeof sig);
    assert_int_equal(sig_verify_ecdsa_p256_sha256(k, "m", 1, sig), SIG_BAD);
    /* DER with a trailing byte is rejected too (no malleable encodings) */
    der[dl] = 0;
    sig_b64_encode(der, dl + 1, sig, sizeof sig);
    assert_int_equal(sig_verify_ecdsa_p256_sha256(k, "m", 1, sig), SIG_BAD);
    sig_b64_encode(der, dl, sig, sizeof sig);
    assert_int_equal(sig_verify_ecdsa_p256_sha256(k, "m", 1, sig), SIG_OK);
    sig_key_free(k);
    sig_key_free(ed);
}

static void test_ghl_keys(void **st) {
    sig_key *ed = load(SIG_GHL_ED25519_PEM);
    sig_key *rsa = load(SIG_GHL_RSA_PEM);
    assert_int_equal(sig_key_kind(ed), SIG_KEY_ED25519);
    assert_int_equal(sig_key_kind(rsa), SIG_KEY_RSA);
    assert_int_equal(sig_key_bits(rsa), 4096);

    const char body[] = "{\"type\":\"ContactCreate\",\"locationId\":\"ve9EPM428h8vShlRW1KT\"}";
    size_t len = sizeof body - 1;
    /* Forgeries: a signature by our own key, and random bytes of the right size. */
    char sig[1024];
    sign_b64(fx.ed, NULL, body, len, sig, sizeof sig);
    assert_int_equal(sig_verify_ed25519(ed, body, len, sig), SIG_BAD);
    unsigned char raw[512];
    for (size_t i = 0; i < sizeof raw; i++) raw[i] = (unsigned char)(i * 7 + 3);
    sig_b64_encode(raw, 64, sig, sizeof sig);
    assert_int_equal(sig_verify_ed25519(ed, body, len, sig), SIG_BAD);
    sig_b64_encode(raw, 512, sig, sizeof sig);
    assert_int_equal(sig_verify_rsa_sha256(rsa, body, len, sig), SIG_BAD);
    memset(raw, 0xff, sizeof raw); /* larger than the modulus */
    sig_b64_encode(raw, 512, sig, sizeof sig);
    assert_int_equal(sig_verify_rsa_sha256(rsa, body, len, sig), SIG_BAD);
    sign_b64(fx.rsa, EVP_sha256(), body, len, sig, sizeof sig); /* 256 bytes: wrong length */
    assert_int_equal(sig_verify_rsa_sha256(rsa, body, len, sig), SIG_BAD);
    /* each header with the other scheme's key */
    assert_int_equal(sig_verify_rsa_sha256(ed, body, len, sig), SIG_MALFORMED);
    assert_int_equal(sig_verify_ed25519(rsa, body, len, sig), SIG_MALFORMED);
    sig_key_free(ed);
    sig_key_free(rsa);
}

/* ---- HMAC, Twilio, compare ---- */

static void test_hmac(void **st) {
    const char fox[] = "The quick brown fox jumps over the lazy dog";
    char b64[SIG_HMAC_SHA1_B64_SIZE], hex[SIG_HMAC_SHA256_HEX_SIZE];
    /* HMAC_SHA1("key", fox) = de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9 */
    assert_int_equal(sig_hmac_sha1_b64("key", 3, fox, sizeof fox - 1, b64), SIG_OK);
    assert_string_equal(b64, "3nybhbi3iqa8ino29wqQcBydtNk=");
    assert_int_equal(sig_hmac_sha256_hex("key", 3, fox, sizeof fox - 1, hex), SIG_OK);
    assert_string_equal(hex, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
    /* RFC 4231 test case 2 */
    assert_int_equal(sig_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, hex), SIG_OK);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* RFC 4231 test case 6: a key longer than the block is hashed first */
    unsigned char longkey[131];
    memset(longkey, 0xaa, sizeof longkey);
    const char tc6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    assert_int_equal(sig_hmac_sha256_hex(longkey, sizeof longkey, tc6, sizeof tc6 - 1, hex), SIG_OK);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    /* empty data is fine; an empty secret is refused */
    assert_int_equal(sig_hmac_sha1_b64("key", 3, NULL, 0, b64), SIG_OK);
    assert_int_equal(strlen(b64), 28);
    assert_int_equal(sig_hmac_sha1_b64("", 0, fox, 3, b64), SIG_MALFORMED);
    assert_string_equal(b64, "");
    assert_int_equal(sig_hmac_sha256_hex(NULL, 3, fox, 3, hex), SIG_MALFORMED);
    assert_int_equal(sig_hmac_sha256_hex("k", 1, NULL, 3, hex), SIG_MALFORMED);
    assert_int_equal(sig_hmac_sha256_hex("k", 1, fox, 3, NULL), SIG_MALFORMED);
}

#define P(n, v) {n, sizeof n - 1, v, sizeof v - 1}

static void test_twilio_vector(void **st) {
    /* Twilio's documented example, deliberately out of order. */
    const sig_param params[] = {
        P("To", "+18005551212"),         P("Digits", "1234"),   P("CallSid", "CA1234567890ABCDE"),
        P("From", "+12349013030"),       P("Caller", "+12349013030"),
    };
    const sig_param copy[5] = {params[0], params[1], params[2], params[3], params[4]};
    char out[SIG_HMAC_SHA1_B64_SIZE];
    const char url[] = "https://mycompany.com/myapp.php?foo=1&bar=2";
    assert_int_equal(sig_twilio("12345", url, params, 5, out), SIG_OK);
    assert_string_equal(out, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    assert_true(sig_equal(out, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", 28));
    assert_memory_equal(params, copy, sizeof copy); /* input untouched */

    /* It is exactly HMAC-SHA1 over url + sorted name/value pairs. */
    char manual[SIG_HMAC_SHA1_B64_SIZE];
    const char s[] = "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDE"
                     "Caller+12349013030Digits1234From+12349013030To+18005551212";
    assert_int_equal(sig_hmac_sha1_b64("12345", 5, s, sizeof s - 1, manual), SIG_OK);
    assert_string_equal(out, manual);

    /* no parameters: the URL alone (JSON bodies, bodySHA256 in the query) */
    assert_int_equal(sig_twilio("12345", url, NULL, 0, out), SIG_OK);
    assert_int_equal(sig_hmac_sha1_b64("12345", 5, url, sizeof url - 1, manual), SIG_OK);
    assert_string_equal(out, manual);
}

static void test_twilio_ordering(void **st) {
    char a[SIG_HMAC_SHA1_B64_SIZE], b[SIG_HMAC_SHA1_B64_SIZE], m[SIG_HMAC_SHA1_B64_SIZE];
    const char url[] = "https://x.test/hook";
    /* Byte order, not locale or case-folded: "B" < "a" < "a\0" < "ab" < "b". */
    const sig_param p1[] = {P("b", "5"), P("ab", "4"), P("a\0", "3"), P("a", "2"), P("B", "1")};
    assert_int_equal(sig_twilio("tok", url, p1, 5, a), SIG_OK);
    const char s1[] = "https://x.test/hookB1a2a\0003ab4b5";
    assert_int_equal(sig_hmac_sha1_b64("tok", 3, s1, sizeof s1 - 1, m), SIG_OK);
    assert_string_equal(a, m);

    /* A repeated name: values are ordered and an exact repeat counts once,
     * as Twilio's validators do, so the order our form parser kept does not
     * matter. */
    const sig_param p2[] = {P("Tag", "z"), P("Body", "hi"), P("Tag", "a"), P("Tag", "z")};
    const sig_param p3[] = {P("Tag", "a"), P("Tag", "z"), P("Body", "hi")};
    assert_int_equal(sig_twilio("tok", url, p2, 4, a), SIG_OK);
    assert_int_equal(sig_twilio("tok", url, p3, 3, b), SIG_OK);
    assert_string_equal(a, b);
    const char s2[] = "https://x.test/hookBodyhiTagaTagz";
    assert_int_equal(sig_hmac_sha1_b64("tok", 3, s2, sizeof s2 - 1, m), SIG_OK);
    assert_string_equal(a, m);

    /* empty names and values */
    const sig_param p4[] = {P("x", ""), {NULL, 0, NULL, 0}};
    assert_int_equal(sig_twilio("tok", url, p4, 2, a), SIG_OK);
    const char s4[] = "https://x.test/hookx";
    assert_int_equal(sig_hmac_sha1_b64("tok", 3, s4, sizeof s4 - 1, m), SIG_OK);
    assert_string_equal(a, m);

    /* argument errors */
    const sig_param bad[] = {{NULL, 3, "v", 1}};
    assert_int_equal(sig_twilio("tok", url, bad, 1, a), SIG_MALFORMED);
    assert_string_equal(a, "");
    assert_int_equal(sig_twilio("", url, p1, 5, a), SIG_MALFORMED);
    assert_int_equal(sig_twilio(NULL, url, p1, 5, a), SIG_MALFORMED);
    assert_int_equal(sig_twilio("tok", NULL, p1, 5, a), SIG_MALFORMED);
    assert_int_equal(sig_twilio("tok", url, NULL, 2, a), SIG_MALFORMED);
    assert_int_equal(sig_twilio("tok", url, p1, SIG_TWILIO_MAX_PARAMS + 1, a), SIG_MALFORMED);
    assert_int_equal(sig_twilio("tok", url, p1, 5, NULL), SIG_MALFORMED);

    /* the most parameters allowed, all with the same name */
    sig_param *many = calloc(SIG_TWILIO_MAX_PARAMS, sizeof *many);
    char (*vals)[8] = calloc(SIG_TWILIO_MAX_PARAMS, 8);
    for (size_t i = 0; i < SIG_TWILIO_MAX_PARAMS; i++) {
        snprintf(vals[i], 8, "%zu", (i * 7919) % SIG_TWILIO_MAX_PARAMS);
        many[i] = (sig_param){"n", 1, vals[i], strlen(vals[i])};
    }
    assert_int_equal(sig_twilio("tok", url, many, SIG_TWILIO_MAX_PARAMS, a), SIG_OK);
    free(many);
    free(vals);
}

static void test_equal(void **st) {
    assert_true(sig_equal("abc", "abc", 3));
    assert_false(sig_equal("abc", "abd", 3));
    assert_false(sig_equal("xbc", "abc", 3));
    assert_true(sig_equal("abc", "abd", 2));
    assert_true(sig_equal(NULL, NULL, 0));
    assert_false(sig_equal(NULL, "a", 1));
}

/* ---- failure injection and threads ---- */

/* libcrypto's allocations go through these hooks (set in main). With
 * ossl_counted set they use eh_malloc, so the failure countdown reaches inside
 * OpenSSL too; otherwise only this module's own allocations can fail. */
static int ossl_counted;
static void *ossl_malloc(size_t n, const char *f, int l) {
    return ossl_counted ? eh_malloc(n) : malloc(n ? n : 1);
}
static void *ossl_realloc(void *p, size_t n, const char *f, int l) {
    return ossl_counted ? eh_realloc(p, n) : realloc(p, n ? n : 1);
}
static void ossl_free(void *p, const char *f, int l) { free(p); }

static int reset_alloc(void **st) {
    eh_alloc_fail_after(-1);
    ossl_counted = 0;
    return 0;
}

enum { OP_LOAD_ED, OP_LOAD_RSA, OP_LOAD_EC, OP_VERIFY_ED, OP_VERIFY_RSA, OP_VERIFY_EC,
       OP_FORGED_ED, OP_TWILIO, OP_HMAC, OP_COUNT };

static struct {
    char *pem[3];        /* Ed25519 PEM, RSA PEM, P-256 bare base64 */
    sig_key *key[3];
    char sig[3][512];    /* valid signatures of "msg" */
    char forged[512];    /* an Ed25519 signature of "msh" */
} ops;

static int run_op(int op) {
    sig_key *k = NULL;
    char out[SIG_HMAC_SHA256_HEX_SIZE];
    const sig_param params[] = {P("To", "+1800"), P("Body", "hello")};
    int rc;
    switch (op) {
    case OP_LOAD_ED: case OP_LOAD_RSA: case OP_LOAD_EC:
        rc = sig_key_load(ops.pem[op], strlen(ops.pem[op]), &k, NULL, 0);
        assert_true(rc == SIG_OK ? k != NULL : k == NULL);
        sig_key_free(k);
        return rc;
    case OP_VERIFY_ED: return sig_verify_ed25519(ops.key[0], "msg", 3, ops.sig[0]);
    case OP_VERIFY_RSA: return sig_verify_rsa_sha256(ops.key[1], "msg", 3, ops.sig[1]);
    case OP_VERIFY_EC: return sig_verify_ecdsa_p256_sha256(ops.key[2], "msg", 3, ops.sig[2]);
    case OP_FORGED_ED: return sig_verify_ed25519(ops.key[0], "msg", 3, ops.forged);
    case OP_TWILIO: return sig_twilio("tok", "https://x.test/", params, 2, out);
    default: return sig_hmac_sha256_hex("k", 1, "d", 1, out);
    }
}

static void ops_setup(void) {
    ops.pem[0] = pub_pem(fx.ed);
    ops.pem[1] = pub_pem(fx.rsa);
    ops.pem[2] = pub_b64(fx.ec);
    for (int i = 0; i < 3; i++) ops.key[i] = load(ops.pem[i]);
    sign_b64(fx.ed, NULL, "msg", 3, ops.sig[0], sizeof ops.sig[0]);
    sign_b64(fx.rsa, EVP_sha256(), "msg", 3, ops.sig[1], sizeof ops.sig[1]);
    sign_b64(fx.ec, EVP_sha256(), "msg", 3, ops.sig[2], sizeof ops.sig[2]);
    sign_b64(fx.ed, NULL, "msh", 3, ops.forged, sizeof ops.forged);
}

static void ops_teardown(void) {
    for (int i = 0; i < 3; i++) {
        sig_key_free(ops.key[i]);
        free(ops.pem[i]);
    }
}

/* Only our own allocations fail: every error must be exactly SIG_NOMEM. */
static void test_alloc_failure_ours(void **st) {
    ops_setup();
    for (int op = 0; op < OP_COUNT; op++) {
        int want = op == OP_FORGED_ED ? SIG_BAD : SIG_OK;
        assert_int_equal(run_op(op), want);
        int rc = -99;
        long i;
        for (i = 0; i < 100; i++) {
            eh_alloc_fail_after(i);
            rc = run_op(op);
            eh_alloc_fail_after(-1);
            if (rc == want) break;
            if (rc != SIG_NOMEM) fail_msg("op %d, allocation %ld failing: %d", op, i, rc);
        }
        assert_int_equal(rc, want);
        /* Key loading and Twilio allocate; verification and HMAC do not. */
        int allocates = op <= OP_LOAD_EC || op == OP_TWILIO;
        assert_int_equal(i > 0, allocates);
    }
    ops_teardown();
}

/* Every allocation can fail, libcrypto's included. libcrypto does not always
 * say it ran out of memory, so the codes are looser (see sig.h), but nothing
 * may crash or leak, nothing forged may pass, and everything works again
 * once memory is back. */
static void test_alloc_failure_all(void **st) {
    ops_setup();
    ossl_counted = 1;
    for (int op = 0; op < OP_COUNT; op++) {
        int want = op == OP_FORGED_ED ? SIG_BAD : SIG_OK;
        assert_int_equal(run_op(op), want); /* warm: one-time set-up is done */
        int rc = -99;
        long i;
        /* Every failure point for the first 300 allocations, then every
         * 17th: a key load makes over a thousand inside libcrypto. */
        for (i = 0; i < 20000; i += i < 300 ? 1 : 17) {
            eh_alloc_fail_after(i);
            rc = run_op(op);
            eh_alloc_fail_after(-1);
            if (rc == want && (op == OP_FORGED_ED ? i > 2000 : 1)) break;
            int ok;
            if (op <= OP_LOAD_EC)
                ok = rc == SIG_NOMEM || rc == SIG_MALFORMED;
            else if (op == OP_TWILIO || op == OP_HMAC)
                ok = rc == SIG_NOMEM;
            else
                ok = rc == SIG_NOMEM || rc == SIG_BAD; /* never SIG_OK if forged */
            if (!ok) fail_msg("op %d, allocation %ld failing: %d", op, i, rc);
        }
        assert_int_equal(rc, want);
        assert_int_equal(run_op(op), want);
    }
    ossl_counted = 0;
    ops_teardown();
}

struct thread_arg {
    const sig_key *ed, *rsa, *ec;
    const char *ed_sig, *rsa_sig, *ec_sig;
    int failures;
};

static void *verify_loop(void *p) {
    struct thread_arg *a = p;
    for (int i = 0; i < 200; i++) {
        a->failures += sig_verify_ed25519(a->ed, "msg", 3, a->ed_sig) != SIG_OK;
        a->failures += sig_verify_rsa_sha256(a->rsa, "msg", 3, a->rsa_sig) != SIG_OK;
        a->failures += sig_verify_ecdsa_p256_sha256(a->ec, "msg", 3, a->ec_sig) != SIG_OK;
        a->failures += sig_verify_ed25519(a->ed, "msh", 3, a->ed_sig) != SIG_BAD;
    }
    return NULL;
}

static void test_threads(void **st) {
    sig_key *ed = load_pub(fx.ed), *rsa = load_pub(fx.rsa), *ec = load_pub(fx.ec);
    char ed_sig[256], rsa_sig[512], ec_sig[256];
    sign_b64(fx.ed, NULL, "msg", 3, ed_sig, sizeof ed_sig);
    sign_b64(fx.rsa, EVP_sha256(), "msg", 3, rsa_sig, sizeof rsa_sig);
    sign_b64(fx.ec, EVP_sha256(), "msg", 3, ec_sig, sizeof ec_sig);
    enum { N = 4 };
    pthread_t t[N];
    struct thread_arg a[N];
    for (int i = 0; i < N; i++) {
        a[i] = (struct thread_arg){ed, rsa, ec, ed_sig, rsa_sig, ec_sig, 0};
        assert_int_equal(pthread_create(&t[i], NULL, verify_loop, &a[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].failures, 0);
    }
    sig_key_free(ed);
    sig_key_free(rsa);
    sig_key_free(ec);
}

int main(void) {
    /* Before libcrypto allocates anything, or the call is refused. */
    if (!CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free)) {
        fprintf(stderr, "CRYPTO_set_mem_functions refused\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_vectors),      cmocka_unit_test(test_b64_roundtrip),
        cmocka_unit_test(test_b64_reject),       cmocka_unit_test(test_key_load_forms),
        cmocka_unit_test(test_key_load_rejects), cmocka_unit_test(test_ed25519),
        cmocka_unit_test(test_rsa_sha256),       cmocka_unit_test(test_ecdsa_p256),
        cmocka_unit_test(test_ghl_keys),         cmocka_unit_test(test_hmac),
        cmocka_unit_test(test_twilio_vector),    cmocka_unit_test(test_twilio_ordering),
        cmocka_unit_test(test_sendgrid_vector),  cmocka_unit_test(test_ed25519_refused_points),
        cmocka_unit_test(test_equal),
        cmocka_unit_test_teardown(test_alloc_failure_ours, reset_alloc),
        cmocka_unit_test_teardown(test_alloc_failure_all, reset_alloc),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("sig", tests, setup, teardown);
}
