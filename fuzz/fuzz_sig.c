/* libFuzzer target for auth/sig: arbitrary bytes as key text (PEM or bare
 * base64), as signature header and as signed message, through every
 * verifier, plus base64 round trips and the HMAC/Twilio helpers.
 *
 * Input layout (missing parts are empty):
 *   u16le key_len, key_len bytes of key text,
 *   u16le sig_len, sig_len bytes of signature text,
 *   the rest: the message.
 * Besides the key from the input, the GoHighLevel keys and a fixed P-256 key
 * are tried so the verifiers run even when the key text does not parse.
 * Seeds in fuzz/corpus/sig/ carry valid key + signature + message triples. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sig.h"

static const char P256_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1H98mz/By71UlcszSNCS2nPdwEhI\n"
    "KV53KrHLNrssB9zH25uVfE7Qkyx1bZWaN25/lQEau9I9rYc9+yv0z8la6g==\n"
    "-----END PUBLIC KEY-----\n";

/* Loaded once; read-only afterwards (libFuzzer runs inputs one at a time). */
static sig_key *fixed[3];

static void check(int cond) {
    if (!cond) abort();
}

static int known_code(int rc) {
    return rc == SIG_OK || rc == SIG_BAD || rc == SIG_MALFORMED || rc == SIG_NOMEM;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *pems[3] = {SIG_GHL_ED25519_PEM, SIG_GHL_RSA_PEM, P256_PEM};
    for (int i = 0; i < 3; i++)
        if (sig_key_load(pems[i], strlen(pems[i]), &fixed[i], NULL, 0) != SIG_OK) abort();
    return 0;
}

/* Takes a u16le length and that many bytes (clamped) off the front. */
static const uint8_t *take(const uint8_t **p, size_t *n, size_t *out_len) {
    size_t len = 0;
    if (*n >= 2) {
        len = (size_t)(*p)[0] | (size_t)(*p)[1] << 8;
        *p += 2;
        *n -= 2;
    } else {
        *p += *n;
        *n = 0;
    }
    if (len > *n) len = *n;
    const uint8_t *part = *p;
    *p += len;
    *n -= len;
    *out_len = len;
    return part;
}

static char *cstr(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void verify_all(const sig_key *k, const char *sig, const uint8_t *msg, size_t len) {
    int r[3] = {
        sig_verify_ed25519(k, msg, len, sig),
        sig_verify_rsa_sha256(k, msg, len, sig),
        sig_verify_ecdsa_p256_sha256(k, msg, len, sig),
    };
    for (int i = 0; i < 3; i++) check(known_code(r[i]));
    /* A key answers to its own scheme only. */
    int own = (int)sig_key_kind(k) - 1;
    for (int i = 0; i < 3; i++)
        if (i != own) check(r[i] == SIG_MALFORMED);
}

static void base64_props(const uint8_t *data, size_t size) {
    /* decode(anything) either fails or re-encodes to the same bytes, modulo
     * optional padding: the decoder accepts one spelling per byte string. */
    size_t cap = size / 4 * 3 + 3;
    unsigned char *dec = malloc(cap);
    size_t dn;
    if (sig_b64_decode((const char *)data, size, dec, cap, &dn) == SIG_OK) {
        size_t ecap = sig_b64_encoded_size(dn);
        char *enc = malloc(ecap);
        check(sig_b64_encode(dec, dn, enc, ecap) == SIG_OK);
        size_t el = strlen(enc), unpadded = el;
        while (unpadded && enc[unpadded - 1] == '=') unpadded--;
        check((el == size || unpadded == size) && memcmp(enc, data, size) == 0);
        free(enc);
    }
    free(dec);
    /* encode(anything) decodes back to it. */
    size_t ecap = sig_b64_encoded_size(size);
    char *enc = malloc(ecap);
    unsigned char *back = malloc(size + 1);
    check(sig_b64_encode(data, size, enc, ecap) == SIG_OK);
    check(sig_b64_decode(enc, strlen(enc), back, size, &dn) == SIG_OK);
    check(dn == size && memcmp(back, data, size) == 0);
    free(enc);
    free(back);
}

/* Splits msg as "a=b&c=d..." (no decoding) into Twilio parameters. */
static void twilio(const char *token, const char *url, const uint8_t *msg, size_t len) {
    sig_param ps[64];
    size_t n = 0, i = 0;
    while (i < len && n < 64) {
        size_t j = i;
        while (j < len && msg[j] != '&') j++;
        size_t eq = i;
        while (eq < j && msg[eq] != '=') eq++;
        ps[n].name = (const char *)msg + i;
        ps[n].name_len = eq - i;
        ps[n].value = eq < j ? (const char *)msg + eq + 1 : NULL;
        ps[n].value_len = eq < j ? j - eq - 1 : 0;
        n++;
        i = j + 1;
    }
    char a[SIG_HMAC_SHA1_B64_SIZE], b[SIG_HMAC_SHA1_B64_SIZE];
    int rc = sig_twilio(token, url, ps, n, a);
    check(known_code(rc));
    if (rc == SIG_OK) {
        /* Order of the parameters must not matter. */
        for (size_t k = 0; k < n / 2; k++) {
            sig_param t = ps[k];
            ps[k] = ps[n - 1 - k];
            ps[n - 1 - k] = t;
        }
        check(sig_twilio(token, url, ps, n, b) == SIG_OK);
        check(strlen(a) == 28 && sig_equal(a, b, 28));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    base64_props(data, size);

    const uint8_t *p = data;
    size_t n = size, key_len, sig_len;
    const uint8_t *key_text = take(&p, &n, &key_len);
    const uint8_t *sig_text = take(&p, &n, &sig_len);
    const uint8_t *msg = p;
    size_t msg_len = n;

    char *sig = cstr(sig_text, sig_len);
    sig_key *k = NULL;
    char err[128];
    int rc = sig_key_load((const char *)key_text, key_len, &k, err, sizeof err);
    check(known_code(rc) && rc != SIG_BAD);
    if (rc == SIG_OK) {
        sig_key_type t = sig_key_kind(k);
        check(t == SIG_KEY_ED25519 || t == SIG_KEY_RSA || t == SIG_KEY_EC_P256);
        verify_all(k, sig, msg, msg_len);
        sig_key_free(k);
    } else {
        check(k == NULL && strlen(err) > 0);
    }
    for (int i = 0; i < 3; i++) verify_all(fixed[i], sig, msg, msg_len);

    char *token = cstr(key_text, key_len);
    char out[SIG_HMAC_SHA256_HEX_SIZE];
    rc = sig_hmac_sha1_b64(key_text, key_len, msg, msg_len, out);
    check(rc == (key_len ? SIG_OK : SIG_MALFORMED));
    rc = sig_hmac_sha256_hex(key_text, key_len, msg, msg_len, out);
    check(rc == (key_len ? SIG_OK : SIG_MALFORMED));
    twilio(token, sig, msg, msg_len);
    free(token);
    free(sig);
    return 0;
}
