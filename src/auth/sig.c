#include "auth/sig.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "auth/ed25519.h"
#include "base/alloc.h"

const char SIG_GHL_ED25519_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=\n"
    "-----END PUBLIC KEY-----\n";

const char SIG_GHL_RSA_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC\n"
    "Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6\n"
    "dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB\n"
    "csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv\n"
    "uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF\n"
    "3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU\n"
    "J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp\n"
    "IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN\n"
    "h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC\n"
    "HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ\n"
    "PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk\n"
    "T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==\n"
    "-----END PUBLIC KEY-----\n";

struct sig_key {
    EVP_PKEY *pk; /* owned; never modified after sig_key_load returns */
    sig_key_type type;
    int bits;
    /* Ed25519 only: the key with its precomputed tables; NULL when the
     * point is one libsodium would refuse (see sig_key_load). */
    ed25519_key *ed25519;
};

/* libcrypto reports failures on a thread-local error queue. We empty it on
 * every exit path so a stale entry cannot be mistaken for a later failure by
 * other code on this thread, and use it to tell "out of memory" (a server
 * problem: 5xx) from "bad input" (the sender's problem: 4xx). */
static int drain_errors_nomem(void) {
    int nomem = 0;
    unsigned long e;
    while ((e = ERR_get_error()) != 0)
        if (!ERR_SYSTEM_ERROR(e) && ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE) nomem = 1;
    return nomem;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- base64 ---- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

size_t sig_b64_encoded_size(size_t n) {
    size_t groups = n / 3 + (n % 3 != 0);
    if (groups > (SIZE_MAX - 1) / 4) return 0;
    return groups * 4 + 1;
}

int sig_b64_encode(const void *in, size_t n, char *out, size_t cap) {
    size_t need = sig_b64_encoded_size(n);
    if (!out || need == 0 || cap < need || (!in && n)) {
        if (out && cap) out[0] = '\0';
        return SIG_MALFORMED;
    }
    const unsigned char *p = in;
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = B64[(v >> 6) & 63];
        *o++ = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = B64[v >> 18];
        *o++ = B64[(v >> 12) & 63];
        *o++ = B64[(v >> 6) & 63];
        *o++ = '=';
    }
    *o = '\0';
    return SIG_OK;
}

int sig_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *out_len) {
    if (out_len) *out_len = 0;
    if (!out_len || (!in && n) || (!out && cap)) return SIG_MALFORMED;
    const unsigned char *s = (const unsigned char *)in;
    if (n && s[n - 1] == '=') {
        /* Padding, when present, must make the length a multiple of 4; the
         * '=' characters then stand for 1 or 2 missing input characters. */
        if (n % 4) return SIG_MALFORMED;
        n -= (n >= 2 && s[n - 2] == '=') ? 2 : 1;
    }
    size_t rem = n % 4;
    if (rem == 1) return SIG_MALFORMED; /* 6 bits cannot end a byte */
    size_t need = n / 4 * 3 + (rem ? rem - 1 : 0);
    if (need > cap) return SIG_MALFORMED;
    unsigned char *o = out;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        int a = b64_val(s[i]), b = b64_val(s[i + 1]), c = b64_val(s[i + 2]), d = b64_val(s[i + 3]);
        if ((a | b | c | d) < 0) return SIG_MALFORMED;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        *o++ = (unsigned char)(v >> 16);
        *o++ = (unsigned char)(v >> 8);
        *o++ = (unsigned char)v;
    }
    if (rem) {
        int a = b64_val(s[i]), b = b64_val(s[i + 1]), c = rem == 3 ? b64_val(s[i + 2]) : 0;
        if ((a | b | c) < 0) return SIG_MALFORMED;
        /* Non-zero leftover bits would give a second spelling of the same
         * bytes; refuse it (see the header). */
        if (rem == 2 && (b & 0x0f)) return SIG_MALFORMED;
        if (rem == 3 && (c & 0x03)) return SIG_MALFORMED;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        *o++ = (unsigned char)(v >> 16);
        if (rem == 3) *o++ = (unsigned char)(v >> 8);
    }
    *out_len = (size_t)(o - out);
    return SIG_OK;
}

/* ---- keys ---- */

static const char PEM_BEGIN[] = "-----BEGIN PUBLIC KEY-----";
static const char PEM_END[] = "-----END PUBLIC KEY-----";

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Turns the (trimmed) key text into DER bytes in a new eh_malloc buffer. */
static int key_text_to_der(const char *s, size_t n, unsigned char **der, size_t *der_len,
                           char *err, size_t errlen) {
    const size_t bl = sizeof PEM_BEGIN - 1, el = sizeof PEM_END - 1;
    if (n >= 5 && memcmp(s, "-----", 5) == 0) {
        if (n < bl + el || memcmp(s, PEM_BEGIN, bl) != 0) {
            set_err(err, errlen, "only \"%s\" (SubjectPublicKeyInfo) PEM is accepted", PEM_BEGIN);
            return SIG_MALFORMED;
        }
        if (memcmp(s + n - el, PEM_END, el) != 0) {
            set_err(err, errlen, "PEM does not end with \"%s\"", PEM_END);
            return SIG_MALFORMED;
        }
        s += bl;
        n -= bl + el;
    }
    char *b64 = eh_malloc(n + 1);
    if (!b64) return SIG_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_space((unsigned char)s[i])) b64[m++] = s[i];
    size_t cap = m / 4 * 3 + 3;
    unsigned char *d = eh_malloc(cap);
    if (!d) {
        eh_free(b64);
        return SIG_NOMEM;
    }
    int rc = sig_b64_decode(b64, m, d, cap, der_len);
    eh_free(b64);
    if (rc != SIG_OK || *der_len == 0) {
        eh_free(d);
        set_err(err, errlen, "%s", rc != SIG_OK ? "key is not valid base64" : "key is empty");
        return SIG_MALFORMED;
    }
    *der = d;
    return SIG_OK;
}

/* Decides whether a decoded key is one we verify with. */
static int classify_key(EVP_PKEY *pk, sig_key_type *type, int *bits, char *err, size_t errlen) {
    *bits = EVP_PKEY_get_bits(pk);
    if (EVP_PKEY_is_a(pk, "ED25519")) {
        *type = SIG_KEY_ED25519;
        return SIG_OK;
    }
    if (EVP_PKEY_is_a(pk, "RSA")) {
        if (*bits < SIG_RSA_MIN_BITS || *bits > SIG_RSA_MAX_BITS) {
            set_err(err, errlen, "RSA key of %d bits; %d to %d accepted", *bits, SIG_RSA_MIN_BITS,
                    SIG_RSA_MAX_BITS);
            return SIG_MALFORMED;
        }
        *type = SIG_KEY_RSA;
        return SIG_OK;
    }
    if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64] = "";
        /* Keys with explicit curve parameters have no group name: refused,
         * as they let the sender pick a curve. */
        if (EVP_PKEY_get_group_name(pk, group, sizeof group, NULL) != 1 ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
            set_err(err, errlen, "EC key not on P-256 (%s)", group[0] ? group : "explicit curve");
            return SIG_MALFORMED;
        }
        *type = SIG_KEY_EC_P256;
        return SIG_OK;
    }
    const char *name = EVP_PKEY_get0_type_name(pk);
    set_err(err, errlen, "unsupported key type %s", name ? name : "(unknown)");
    return SIG_MALFORMED;
}

/* Starts one verification with the key so libcrypto builds its per-provider
 * copy of the key now, while the caller still owns it alone, rather than
 * lazily inside the first concurrent verifications. */
static int warm_up(EVP_PKEY *pk, sig_key_type type) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) return SIG_NOMEM;
    int ok = EVP_DigestVerifyInit(ctx, NULL, type == SIG_KEY_ED25519 ? NULL : EVP_sha256(), NULL,
                                  pk) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? SIG_OK : SIG_NOMEM;
}

int sig_key_load(const char *text, size_t len, sig_key **out, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!out) return SIG_MALFORMED;
    *out = NULL;
    if (!text) {
        set_err(err, errlen, "no key");
        return SIG_MALFORMED;
    }
    if (len > SIG_KEY_TEXT_MAX) {
        set_err(err, errlen, "key text longer than %d bytes", SIG_KEY_TEXT_MAX);
        return SIG_MALFORMED;
    }
    while (len && is_space((unsigned char)text[0])) text++, len--;
    while (len && is_space((unsigned char)text[len - 1])) len--;
    if (!len) {
        set_err(err, errlen, "key is empty");
        return SIG_MALFORMED;
    }

    unsigned char *der;
    size_t der_len;
    int rc = key_text_to_der(text, len, &der, &der_len, err, errlen);
    if (rc == SIG_NOMEM) set_err(err, errlen, "out of memory");
    if (rc != SIG_OK) return rc;

    const unsigned char *p = der;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)der_len);
    size_t used = (size_t)(p - der);
    eh_free(der);
    if (!pk) {
        int nomem = drain_errors_nomem();
        /* libcrypto may report out-of-memory as a plain decode error, so
         * the message below can be wrong under memory exhaustion (see the
         * header); it is right for every key text a person could paste. */
        set_err(err, errlen, "%s", nomem ? "out of memory" : "not a DER SubjectPublicKeyInfo");
        return nomem ? SIG_NOMEM : SIG_MALFORMED;
    }
    /* Bytes after the key mean the text was not (only) a key. */
    if (used != der_len) {
        set_err(err, errlen, "%zu unexpected bytes after the key", der_len - used);
        rc = SIG_MALFORMED;
        goto fail;
    }
    sig_key_type type;
    int bits;
    if ((rc = classify_key(pk, &type, &bits, err, errlen)) != SIG_OK) goto fail;
    if ((rc = warm_up(pk, type)) != SIG_OK) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    sig_key *k = eh_malloc(sizeof *k);
    if (!k) {
        set_err(err, errlen, "out of memory");
        rc = SIG_NOMEM;
        goto fail;
    }
    k->pk = pk;
    k->type = type;
    k->bits = bits;
    k->ed25519 = NULL;
    if (type == SIG_KEY_ED25519) {
        unsigned char raw[32];
        size_t rawlen = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) != 1 || rawlen != 32) {
            set_err(err, errlen, "cannot read the Ed25519 public key");
            eh_free(k);
            rc = SIG_MALFORMED;
            goto fail;
        }
        /* libcrypto takes any 32 bytes as an Ed25519 key. A point that the
         * verifier refuses (not on the curve, non-canonical, small order)
         * still loads, as it always has, and every signature under it is
         * SIG_BAD: libsodium, which verified before, refused such keys
         * per signature, not at load. */
        if (ed25519_key_new(raw, &k->ed25519) == ED25519_NOMEM) {
            set_err(err, errlen, "out of memory");
            eh_free(k);
            rc = SIG_NOMEM;
            goto fail;
        }
    }
    *out = k;
    drain_errors_nomem();
    return SIG_OK;
fail:
    EVP_PKEY_free(pk);
    drain_errors_nomem();
    return rc;
}

sig_key_type sig_key_kind(const sig_key *k) { return k ? k->type : (sig_key_type)0; }
int sig_key_bits(const sig_key *k) { return k ? k->bits : 0; }

void sig_key_free(sig_key *k) {
    if (!k) return;
    EVP_PKEY_free(k->pk);
    ed25519_key_free(k->ed25519);
    eh_free(k);
}

/* ---- verification ---- */

static int verify(const sig_key *key, sig_key_type want, const void *msg, size_t len,
                  const char *sig_b64) {
    if (!key || key->type != want || !sig_b64 || (!msg && len)) return SIG_MALFORMED;
    size_t n = strnlen(sig_b64, SIG_SIG_B64_MAX + 1);
    if (n == 0 || n > SIG_SIG_B64_MAX) return SIG_MALFORMED;
    /* On the stack: the bound above makes this at most 1536 bytes. */
    unsigned char sig[SIG_SIG_B64_MAX / 4 * 3];
    size_t sig_len;
    if (sig_b64_decode(sig_b64, n, sig, sizeof sig, &sig_len) != SIG_OK) return SIG_MALFORMED;

    if (want == SIG_KEY_ED25519) {
        /* Not libcrypto, not libsodium: auth/ed25519 verifies with tables
         * precomputed for this key at load, accepting exactly what
         * libsodium 1.0.18 accepts. On ~1 KB bodies bench/sig_bench.c
         * measured 21.3-21.7 µs per verification against libsodium's
         * 52-53 µs (OpenSSL: 109-110 µs), and callgrind 0.27M instructions
         * against 0.68M; libsodium's had been a quarter of a webhook's
         * whole CPU. */
        if (sig_len != 64 || !key->ed25519) return SIG_BAD;
        return ed25519_verify(key->ed25519, sig, msg, len) == ED25519_OK ? SIG_OK : SIG_BAD;
    }

    /* A context per call keeps a shared key usable from many threads. */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) {
        drain_errors_nomem();
        return SIG_NOMEM;
    }
    int rc;
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *md = want == SIG_KEY_ED25519 ? NULL : EVP_sha256();
    if (EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key->pk) != 1 ||
        (want == SIG_KEY_RSA && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)) {
        /* The key type was checked at load, so failing to set up is a
         * resource problem on our side, not the sender's fault. */
        rc = SIG_NOMEM;
    } else {
        int r = EVP_DigestVerify(ctx, sig, sig_len, msg ? msg : (const void *)"", len);
        /* 0 is "does not verify"; negative is "could not even parse it"
         * (e.g. non-DER ECDSA). Both reject the request as SIG_BAD unless
         * libcrypto ran out of memory on the way. */
        rc = r == 1 ? SIG_OK : SIG_BAD;
    }
    EVP_MD_CTX_free(ctx);
    if (drain_errors_nomem() && rc != SIG_OK) rc = SIG_NOMEM;
    return rc;
}

int sig_verify_ed25519(const sig_key *key, const void *msg, size_t len, const char *sig_b64) {
    return verify(key, SIG_KEY_ED25519, msg, len, sig_b64);
}

int sig_verify_rsa_sha256(const sig_key *key, const void *msg, size_t len, const char *sig_b64) {
    return verify(key, SIG_KEY_RSA, msg, len, sig_b64);
}

int sig_verify_ecdsa_p256_sha256(const sig_key *key, const void *msg, size_t len,
                                 const char *sig_b64) {
    return verify(key, SIG_KEY_EC_P256, msg, len, sig_b64);
}

/* ---- HMAC ---- */

typedef struct mac_run {
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx;
} mac_run;

static void mac_end(mac_run *m) {
    EVP_MAC_CTX_free(m->ctx);
    EVP_MAC_free(m->mac);
}

/* Streaming HMAC, so Twilio's URL + parameters need not be copied into one
 * buffer first. */
static int mac_begin(mac_run *m, const char *digest, const void *key, size_t key_len) {
    m->ctx = NULL;
    m->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (m->mac) m->ctx = EVP_MAC_CTX_new(m->mac);
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (!m->ctx || EVP_MAC_init(m->ctx, key, key_len, params) != 1) {
        mac_end(m);
        drain_errors_nomem();
        return SIG_NOMEM;
    }
    return SIG_OK;
}

static int mac_update(mac_run *m, const void *p, size_t n) {
    return n == 0 || EVP_MAC_update(m->ctx, p, n) == 1;
}

static int mac_finish(mac_run *m, unsigned char *out, size_t cap, size_t *out_len) {
    int ok = EVP_MAC_final(m->ctx, out, out_len, cap) == 1;
    mac_end(m);
    drain_errors_nomem();
    return ok ? SIG_OK : SIG_NOMEM;
}

static int hmac(const char *digest, const void *secret, size_t secret_len, const void *data,
                size_t len, unsigned char *out, size_t cap, size_t *out_len) {
    if (!secret || !secret_len || (!data && len)) return SIG_MALFORMED;
    mac_run m;
    int rc = mac_begin(&m, digest, secret, secret_len);
    if (rc != SIG_OK) return rc;
    if (!mac_update(&m, data, len)) {
        mac_end(&m);
        drain_errors_nomem();
        return SIG_NOMEM;
    }
    return mac_finish(&m, out, cap, out_len);
}

int sig_hmac_sha1_b64(const void *secret, size_t secret_len, const void *data, size_t len,
                      char out[SIG_HMAC_SHA1_B64_SIZE]) {
    if (!out) return SIG_MALFORMED;
    out[0] = '\0';
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t md_len;
    int rc = hmac("SHA1", secret, secret_len, data, len, md, sizeof md, &md_len);
    if (rc != SIG_OK) return rc;
    return sig_b64_encode(md, md_len, out, SIG_HMAC_SHA1_B64_SIZE);
}

int sig_hmac_sha256_hex(const void *secret, size_t secret_len, const void *data, size_t len,
                        char out[SIG_HMAC_SHA256_HEX_SIZE]) {
    if (!out) return SIG_MALFORMED;
    out[0] = '\0';
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t md_len;
    int rc = hmac("SHA256", secret, secret_len, data, len, md, sizeof md, &md_len);
    if (rc != SIG_OK) return rc;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < md_len && i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return SIG_OK;
}

/* ---- Twilio ---- */

static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn) {
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    if (c) return c;
    return (an > bn) - (an < bn);
}

static int param_cmp(const void *x, const void *y) {
    const sig_param *a = *(const sig_param *const *)x, *b = *(const sig_param *const *)y;
    int c = bytes_cmp(a->name, a->name_len, b->name, b->name_len);
    return c ? c : bytes_cmp(a->value, a->value_len, b->value, b->value_len);
}

int sig_twilio(const char *auth_token, const char *full_url, const sig_param *params, size_t n,
               char out_b64[SIG_HMAC_SHA1_B64_SIZE]) {
    if (!out_b64) return SIG_MALFORMED;
    out_b64[0] = '\0';
    if (!auth_token || !auth_token[0] || !full_url || n > SIG_TWILIO_MAX_PARAMS || (n && !params))
        return SIG_MALFORMED;
    for (size_t i = 0; i < n; i++)
        if ((!params[i].name && params[i].name_len) || (!params[i].value && params[i].value_len))
            return SIG_MALFORMED;

    /* Sort pointers, not the caller's array, which stays untouched. */
    const sig_param **order = NULL;
    if (n) {
        order = eh_malloc(n * sizeof *order);
        if (!order) return SIG_NOMEM;
        for (size_t i = 0; i < n; i++) order[i] = &params[i];
        qsort(order, n, sizeof *order, param_cmp);
    }
    mac_run m;
    int rc = mac_begin(&m, "SHA1", auth_token, strlen(auth_token));
    if (rc != SIG_OK) {
        eh_free(order);
        return rc;
    }
    int ok = mac_update(&m, full_url, strlen(full_url));
    for (size_t i = 0; ok && i < n; i++) {
        /* An exact repeat of the previous (name, value) is signed once. */
        if (i && param_cmp(&order[i - 1], &order[i]) == 0) continue;
        ok = mac_update(&m, order[i]->name, order[i]->name_len) &&
             mac_update(&m, order[i]->value, order[i]->value_len);
    }
    eh_free(order);
    if (!ok) {
        mac_end(&m);
        drain_errors_nomem();
        return SIG_NOMEM;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t md_len;
    if ((rc = mac_finish(&m, md, sizeof md, &md_len)) != SIG_OK) return rc;
    return sig_b64_encode(md, md_len, out_b64, SIG_HMAC_SHA1_B64_SIZE);
}

int sig_equal(const void *a, const void *b, size_t n) {
    if (n && (!a || !b)) return 0;
    return CRYPTO_memcmp(a, b, n) == 0;
}
