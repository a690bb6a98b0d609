/* Compact JWS / JWT: base64url, key sets, signing and strict verification.
 * See jwt.h for the rules and why they are what they are. */
#include "jwt.h"

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

typedef struct jwt_key {
    char kid[JWT_KID_LEN];
    unsigned char pk[32];
    unsigned char sk[64]; /* libsodium secret key (seed + pk); unused if !has_sk */
    int has_sk;
} jwt_key;

struct jwt_keyset {
    jwt_key k[JWT_MAX_KEYS];
    int n;
    unsigned char hs[256];
    size_t hs_len; /* 0 = HS256 refused */
};

/* ---- base64url ---- */

static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t jwt_b64url_encode(const void *in, size_t n, char *out, size_t cap) {
    const unsigned char *p = in;
    size_t need = n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
    if (n > (SIZE_MAX - 4) / 4 * 3 || cap < need + 1) {
        if (cap) out[0] = 0;
        return 0;
    }
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64u[v >> 18];
        out[o++] = b64u[(v >> 12) & 63];
        out[o++] = b64u[(v >> 6) & 63];
        out[o++] = b64u[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        out[o++] = b64u[v >> 18];
        out[o++] = b64u[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        out[o++] = b64u[v >> 18];
        out[o++] = b64u[(v >> 12) & 63];
        out[o++] = b64u[(v >> 6) & 63];
    }
    out[o] = 0;
    return o;
}

static int b64u_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

int jwt_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *outlen) {
    if (n % 4 == 1) return -1;
    size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (need > cap) return -1;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64u_val((unsigned char)in[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero: one accepted spelling per byte string. */
    if (acc != 0) return -1;
    *outlen = o;
    return 0;
}

/* ---- key sets ---- */

jwt_keyset *jwt_keyset_new(void) {
    if (sodium_init() < 0) return NULL;
    return eh_calloc(1, sizeof(jwt_keyset));
}

void jwt_keyset_free(jwt_keyset *ks) {
    if (!ks) return;
    sodium_memzero(ks, sizeof *ks);
    eh_free(ks);
}

static void kid_of(const unsigned char pk[32], char kid[JWT_KID_LEN]) {
    unsigned char h[32];
    crypto_hash_sha256(h, pk, 32);
    sodium_bin2hex(kid, JWT_KID_LEN, h, 8);
}

static jwt_key *add_slot(jwt_keyset *ks, const unsigned char pk[32]) {
    char kid[JWT_KID_LEN];
    kid_of(pk, kid);
    for (int i = 0; i < ks->n; i++)
        if (!strcmp(ks->k[i].kid, kid)) return NULL;
    if (ks->n >= JWT_MAX_KEYS) return NULL;
    jwt_key *k = &ks->k[ks->n++];
    memcpy(k->kid, kid, sizeof kid);
    memcpy(k->pk, pk, 32);
    return k;
}

int jwt_keyset_add_seed(jwt_keyset *ks, const unsigned char seed[32]) {
    unsigned char pk[32], sk[64];
    if (crypto_sign_seed_keypair(pk, sk, seed)) return -1;
    jwt_key *k = add_slot(ks, pk);
    if (!k) {
        sodium_memzero(sk, sizeof sk);
        return -1;
    }
    memcpy(k->sk, sk, 64);
    k->has_sk = 1;
    sodium_memzero(sk, sizeof sk);
    return 0;
}

int jwt_keyset_add_public(jwt_keyset *ks, const unsigned char pk[32]) {
    return add_slot(ks, pk) ? 0 : -1;
}

int jwt_keyset_set_hs256(jwt_keyset *ks, const void *secret, size_t n) {
    if (n < JWT_HS256_MIN_SECRET || n > sizeof ks->hs) return -1;
    memcpy(ks->hs, secret, n);
    ks->hs_len = n;
    return 0;
}

int jwt_keyset_count(const jwt_keyset *ks) { return ks ? ks->n : 0; }

const char *jwt_keyset_kid(const jwt_keyset *ks, int i) {
    return ks && i >= 0 && i < ks->n ? ks->k[i].kid : NULL;
}

const unsigned char *jwt_keyset_public(const jwt_keyset *ks, int i) {
    return ks && i >= 0 && i < ks->n ? ks->k[i].pk : NULL;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int add_pem(jwt_keyset *ks, const char *text, size_t len, char *err, size_t errlen) {
    BIO *b = BIO_new_mem_buf(text, (int)len);
    EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    unsigned char seed[32];
    size_t sl = sizeof seed;
    int rc = -1;
    if (!pk) snprintf(err, errlen, "a PEM block is not a readable private key");
    else if (EVP_PKEY_id(pk) != EVP_PKEY_ED25519 || EVP_PKEY_get_raw_private_key(pk, seed, &sl) != 1 || sl != 32)
        snprintf(err, errlen, "a PEM private key is not Ed25519");
    else if (jwt_keyset_add_seed(ks, seed)) snprintf(err, errlen, "duplicate key, or more than %d keys", JWT_MAX_KEYS);
    else rc = 0;
    EVP_PKEY_free(pk);
    sodium_memzero(seed, sizeof seed);
    return rc;
}

int jwt_keyset_load_text(jwt_keyset *ks, const char *text, size_t len, char *err, size_t errlen) {
    int added = 0, lineno = 0;
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        lineno++;
        size_t s = i, t = e;
        while (s < t && (text[s] == ' ' || text[s] == '\t' || text[s] == '\r')) s++;
        while (t > s && (text[t - 1] == ' ' || text[t - 1] == '\t' || text[t - 1] == '\r')) t--;
        size_t n = t - s;
        const char *l = text + s;
        if (n == 0 || l[0] == '#') {
            i = e + 1;
            continue;
        }
        if (n >= 11 && !strncmp(l, "-----BEGIN ", 11)) {
            /* The block runs to its END line. */
            const char *end = NULL;
            for (size_t k = e; k + 9 <= len; k++)
                if (!strncmp(text + k, "-----END ", 9)) {
                    end = text + k;
                    break;
                }
            if (!end) {
                snprintf(err, errlen, "line %d: PEM block without an END line", lineno);
                return -1;
            }
            size_t stop = (size_t)(end - text);
            while (stop < len && text[stop] != '\n') stop++;
            if (add_pem(ks, l, (size_t)(text + stop - l), err, errlen)) return -1;
            for (size_t k = e; k < stop && k < len; k++)
                if (text[k] == '\n') lineno++;
            added++;
            i = stop + 1;
            continue;
        }
        unsigned char seed[32];
        size_t sl = 0;
        int ok = 0;
        if (n == 64) {
            ok = 1;
            for (size_t k = 0; k < 32 && ok; k++) {
                int hi = hexval(l[2 * k]), lo = hexval(l[2 * k + 1]);
                if (hi < 0 || lo < 0) ok = 0;
                else seed[k] = (unsigned char)(hi << 4 | lo);
            }
        } else if (n == 43) {
            ok = jwt_b64url_decode(l, n, seed, sizeof seed, &sl) == 0 && sl == 32;
        }
        if (!ok) {
            snprintf(err, errlen, "line %d: not a key (64 hex characters, 43 base64url characters, or PEM)", lineno);
            sodium_memzero(seed, sizeof seed);
            return -1;
        }
        int rc = jwt_keyset_add_seed(ks, seed);
        sodium_memzero(seed, sizeof seed);
        if (rc) {
            snprintf(err, errlen, "line %d: duplicate key, or more than %d keys", lineno, JWT_MAX_KEYS);
            return -1;
        }
        added++;
        i = e + 1;
    }
    return added;
}

/* ---- sign ---- */

static int plain(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n > max) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\') return 0;
    return 1;
}

size_t jwt_sign(const jwt_keyset *ks, const jwt_claims *c, char *out, size_t cap) {
    if (cap) out[0] = 0;
    if (!ks || ks->n == 0 || !ks->k[0].has_sk) return 0;
    if (!plain(c->iss, 63) || !plain(c->tenant, 64) || !plain(c->role, 15)) return 0;
    const jwt_key *k = &ks->k[0];
    char header[128], payload[512];
    int hn = snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", k->kid);
    char agent[32] = "null";
    if (c->agent > 0) snprintf(agent, sizeof agent, "%lld", (long long)c->agent);
    int pn = snprintf(payload, sizeof payload,
                      "{\"iss\":\"%s\",\"sub\":\"%lld\",\"tid\":%lld,\"tenant\":\"%s\",\"role\":\"%s\","
                      "\"agent\":%s,\"iat\":%lld,\"exp\":%lld}",
                      c->iss, (long long)c->sub, (long long)c->tid, c->tenant, c->role, agent, (long long)c->iat,
                      (long long)c->exp);
    if (hn <= 0 || pn <= 0 || (size_t)pn >= sizeof payload) return 0;
    size_t o = jwt_b64url_encode(header, (size_t)hn, out, cap);
    if (!o || o + 2 > cap) return 0;
    out[o++] = '.';
    size_t p = jwt_b64url_encode(payload, (size_t)pn, out + o, cap - o);
    if (!p) return 0;
    o += p;
    unsigned char sig[64];
    crypto_sign_detached(sig, NULL, (const unsigned char *)out, o, k->sk);
    if (o + 2 > cap) return 0;
    out[o++] = '.';
    size_t s = jwt_b64url_encode(sig, sizeof sig, out + o, cap - o);
    if (!s) {
        out[0] = 0;
        return 0;
    }
    return o + s;
}

/* ---- verify ---- */

typedef struct parts {
    const char *signing;  /* header.payload */
    size_t signing_len;
    char alg[8];
    char kid[72];
    int has_kid;
    unsigned char payload[JWT_MAX_PAYLOAD];
    size_t payload_len;
    unsigned char sig[64];
    size_t sig_len;
} parts;

/* Splits and decodes the token and checks the header. */
static int split(const char *tok, size_t n, parts *p) {
    if (!tok || n == 0 || n > JWT_MAX_LEN) return JWT_MALFORMED;
    const char *d1 = memchr(tok, '.', n);
    if (!d1) return JWT_MALFORMED;
    const char *d2 = memchr(d1 + 1, '.', (size_t)(tok + n - d1 - 1));
    if (!d2 || memchr(d2 + 1, '.', (size_t)(tok + n - d2 - 1))) return JWT_MALFORMED;
    unsigned char hb[JWT_MAX_HEADER];
    size_t hl;
    if (jwt_b64url_decode(tok, (size_t)(d1 - tok), hb, sizeof hb, &hl) || hl == 0) return JWT_MALFORMED;
    if (jwt_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), p->payload, sizeof p->payload, &p->payload_len))
        return JWT_MALFORMED;
    if (jwt_b64url_decode(d2 + 1, (size_t)(tok + n - d2 - 1), p->sig, sizeof p->sig, &p->sig_len))
        return JWT_MALFORMED;
    p->signing = tok;
    p->signing_len = (size_t)(d2 - tok);

    json_error_t je;
    json_t *h = json_loadb((const char *)hb, hl, JSON_REJECT_DUPLICATES, &je);
    if (!h) return JWT_MALFORMED;
    int rc = JWT_OK;
    if (!json_is_object(h)) rc = JWT_MALFORMED;
    const char *key;
    json_t *v;
    p->alg[0] = 0;
    p->has_kid = 0;
    if (rc == JWT_OK) json_object_foreach(h, key, v) {
        const char *s = json_string_value(v);
        if (!strcmp(key, "alg") && s && strlen(s) < sizeof p->alg) {
            snprintf(p->alg, sizeof p->alg, "%s", s);
        } else if (!strcmp(key, "typ") && s && !strcmp(s, "JWT")) {
        } else if (!strcmp(key, "kid") && s && strlen(s) < sizeof p->kid) {
            snprintf(p->kid, sizeof p->kid, "%s", s);
            p->has_kid = 1;
        } else {
            rc = JWT_MALFORMED; /* unknown header (crit, jku, x5u ...) or a bad value */
            break;
        }
    }
    json_decref(h);
    if (rc == JWT_OK && !p->alg[0]) rc = JWT_MALFORMED;
    return rc;
}

static int check_ed25519(const unsigned char pk[32], const parts *p) {
    if (p->sig_len != 64) return JWT_BADSIG;
    return crypto_sign_verify_detached(p->sig, (const unsigned char *)p->signing, p->signing_len, pk) == 0
               ? JWT_OK : JWT_BADSIG;
}

int jwt_jws_verify_ed25519(const unsigned char pk[32], const char *token, size_t n,
                           unsigned char *payload, size_t cap, size_t *plen) {
    if (sodium_init() < 0) return JWT_NOMEM;
    parts *p = eh_malloc(sizeof *p);
    if (!p) return JWT_NOMEM;
    int rc = split(token, n, p);
    if (rc == JWT_OK && strcmp(p->alg, "EdDSA")) rc = JWT_ALG;
    if (rc == JWT_OK) rc = check_ed25519(pk, p);
    if (rc == JWT_OK && p->payload_len > cap) rc = JWT_NOMEM;
    if (rc == JWT_OK) {
        memcpy(payload, p->payload, p->payload_len);
        *plen = p->payload_len;
    }
    eh_free(p);
    return rc;
}

static int get_int(json_t *o, const char *k, int64_t *out, int required) {
    json_t *v = json_object_get(o, k);
    if (!v) return required ? -1 : 0;
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > ((json_int_t)1 << 40)) return -1;
    *out = (int64_t)x;
    return 0;
}

static int get_str(json_t *o, const char *k, char *out, size_t cap) {
    const char *s = json_string_value(json_object_get(o, k));
    if (!s || !*s || strlen(s) >= cap) return -1;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

int jwt_verify(const jwt_keyset *ks, const char *token, size_t n, const char *iss, int64_t now,
               int64_t leeway, jwt_claims *c) {
    memset(c, 0, sizeof *c);
    if (!ks) return JWT_ALG;
    parts *p = eh_malloc(sizeof *p);
    if (!p) return JWT_NOMEM;
    int rc = split(token, n, p);
    if (rc == JWT_OK) {
        if (!strcmp(p->alg, "EdDSA")) {
            const jwt_key *k = NULL;
            for (int i = 0; p->has_kid && i < ks->n; i++)
                if (!strcmp(ks->k[i].kid, p->kid)) k = &ks->k[i];
            rc = k ? check_ed25519(k->pk, p) : JWT_ALG;
        } else if (!strcmp(p->alg, "HS256") && ks->hs_len) {
            unsigned char mac[32];
            crypto_auth_hmacsha256_state st;
            crypto_auth_hmacsha256_init(&st, ks->hs, ks->hs_len);
            crypto_auth_hmacsha256_update(&st, (const unsigned char *)p->signing, p->signing_len);
            crypto_auth_hmacsha256_final(&st, mac);
            rc = p->sig_len == 32 && sodium_memcmp(mac, p->sig, 32) == 0 ? JWT_OK : JWT_BADSIG;
        } else {
            rc = JWT_ALG; /* none, RS256, HS256 without a secret ... */
        }
    }
    json_t *o = NULL;
    if (rc == JWT_OK) {
        json_error_t je;
        o = json_loadb((const char *)p->payload, p->payload_len, JSON_REJECT_DUPLICATES, &je);
        if (!o || !json_is_object(o)) rc = JWT_MALFORMED;
    }
    if (rc == JWT_OK) {
        char sub[24];
        json_t *agent = json_object_get(o, "agent");
        if (get_str(o, "iss", c->iss, sizeof c->iss) || strcmp(c->iss, iss) ||
            get_str(o, "sub", sub, sizeof sub) || get_str(o, "tenant", c->tenant, sizeof c->tenant) ||
            get_str(o, "role", c->role, sizeof c->role) || get_int(o, "tid", &c->tid, 1) || c->tid <= 0 ||
            get_int(o, "exp", &c->exp, 1) || get_int(o, "iat", &c->iat, 1) || get_int(o, "nbf", &c->nbf, 0) ||
            (agent && !json_is_null(agent) && get_int(o, "agent", &c->agent, 1)))
            rc = JWT_CLAIMS;
        if (rc == JWT_OK) {
            /* sub is a user id in decimal */
            char *end;
            long long v = strtoll(sub, &end, 10);
            if (*end || v <= 0 || sub[0] == '0' || sub[0] == '+' || sub[0] == '-') rc = JWT_CLAIMS;
            else c->sub = v;
        }
        if (rc == JWT_OK && now >= c->exp + leeway) rc = JWT_EXPIRED;
        if (rc == JWT_OK && (c->nbf > now + leeway || c->iat > now + leeway)) rc = JWT_NOTYET;
    }
    json_decref(o);
    sodium_memzero(p, sizeof *p);
    eh_free(p);
    if (rc != JWT_OK) memset(c, 0, sizeof *c);
    return rc;
}

const char *jwt_strerror(int rc) {
    switch (rc) {
    case JWT_OK: return "ok";
    case JWT_MALFORMED: return "malformed token";
    case JWT_ALG: return "algorithm or key not accepted";
    case JWT_BADSIG: return "bad signature";
    case JWT_EXPIRED: return "token expired";
    case JWT_NOTYET: return "token not valid yet";
    case JWT_CLAIMS: return "missing or invalid claims";
    case JWT_NOMEM: return "out of memory";
    }
    return "invalid token";
}
