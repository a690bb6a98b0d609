/* sig — webhook signature checks for the providers that call us.
 *
 * GoHighLevel signs with Ed25519 (x-ghl-signature) or, legacy, RSA-SHA256
 * (x-wh-signature); SendGrid's event webhook signs timestamp + raw body with
 * ECDSA P-256 / SHA-256 (DER signature); Twilio signs with HMAC-SHA1 over the
 * URL and sorted POST parameters. This module is the one place that turns
 * "public key text + signature header + raw bytes" into yes/no, so that the
 * webhook handlers never touch libcrypto or base64 themselves.
 *
 * Everything here is pure computation on caller-owned memory: nothing is
 * kept between calls except a loaded sig_key, and every input is length-
 * bounded so a hostile request cannot make us allocate or loop without limit.
 * Functions never abort; they return one of the SIG_* codes below. A sig_key
 * is immutable once loaded and may be used by several threads at once (each
 * call creates its own libcrypto contexts).
 *
 * Comparing a computed HMAC with a header must go through sig_equal, never
 * memcmp/strcmp, so response timing does not leak how many bytes matched. */
#ifndef EH_AUTH_SIG_H
#define EH_AUTH_SIG_H

#include <stddef.h>

enum {
    SIG_OK = 0,
    SIG_BAD = -1,       /* well-formed, but the signature does not verify */
    SIG_MALFORMED = -2, /* bad/empty/oversized base64, bad key, wrong key type, bad argument */
    SIG_NOMEM = -3,     /* out of memory, ours or libcrypto's (a server-side failure) */
};

/* Bounds on external input. A signature header longer than this is rejected
 * before any decoding; 2 KiB of base64 holds an RSA-8192 signature, which is
 * also the largest RSA key we load (verification cost grows with the key). */
#define SIG_SIG_B64_MAX 2048
/* Key text (PEM or bare base64) longer than this is not a key we accept. */
#define SIG_KEY_TEXT_MAX 8192
#define SIG_RSA_MIN_BITS 2048
#define SIG_RSA_MAX_BITS 8192
/* Most POST parameters a Twilio signature may cover (Twilio sends ~30). */
#define SIG_TWILIO_MAX_PARAMS 4096

/* Output sizes including the terminating NUL. */
#define SIG_HMAC_SHA1_B64_SIZE 29   /* 20 bytes -> 28 base64 chars */
#define SIG_HMAC_SHA256_HEX_SIZE 65 /* 32 bytes -> 64 hex chars */

/* ---- base64 (standard alphabet, RFC 4648 section 4) ---- */

/* Bytes sig_b64_encode needs for n input bytes, NUL included; 0 if that
 * would overflow size_t. */
size_t sig_b64_encoded_size(size_t n);

/* Writes the padded base64 of in[0..n) and a NUL into out. Returns SIG_OK,
 * or SIG_MALFORMED if cap < sig_b64_encoded_size(n) (out is then set to "" if
 * cap > 0). */
int sig_b64_encode(const void *in, size_t n, char *out, size_t cap);

/* Decodes in[0..n) into out (at most cap bytes) and sets *out_len. Padding
 * is optional, but if present it must be complete ("QQ==", not "QQ=").
 * Strict on purpose: no whitespace, no URL-safe alphabet, and the unused low
 * bits of the last character must be zero, so every byte string has exactly
 * one accepted encoding (replay caches keyed by signature text stay sound).
 * Returns SIG_OK, or SIG_MALFORMED for any invalid input or if the result
 * would not fit in cap (out may then hold partial output). Empty input
 * decodes to zero bytes. */
int sig_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *out_len);

/* ---- public keys ---- */

typedef enum {
    SIG_KEY_ED25519 = 1,
    SIG_KEY_RSA = 2,        /* rsaEncryption, SIG_RSA_MIN_BITS..SIG_RSA_MAX_BITS */
    SIG_KEY_EC_P256 = 3,    /* id-ecPublicKey on prime256v1 */
} sig_key_type;

typedef struct sig_key sig_key;

/* Loads a SubjectPublicKeyInfo public key from text[0..len): either PEM
 * ("-----BEGIN PUBLIC KEY-----" ... "-----END PUBLIC KEY-----") or the bare
 * base64 of the DER (SendGrid's dashboard shows it that way); whitespace and
 * CR/LF anywhere in the base64 are ignored, since people paste keys wrapped
 * and from Windows. text need not be NUL-terminated. Only the three key types
 * above are accepted; PKCS#1 "RSA PUBLIC KEY", private keys, certificates,
 * other curves, Ed448 and RSA outside the size bounds are SIG_MALFORMED.
 *
 * On SIG_OK *out is a new key owned by the caller (free with sig_key_free).
 * On failure *out is NULL and, if err is not NULL, a one-line reason is
 * written to err (errlen bytes, NUL-terminated). Returns SIG_OK,
 * SIG_MALFORMED or SIG_NOMEM; libcrypto's decoder reports some of its own
 * allocation failures as a decode error, so out of memory can also show up
 * as SIG_MALFORMED. Decoding costs about a thousand small allocations inside
 * libcrypto: load keys once at start-up, not per request. */
int sig_key_load(const char *text, size_t len, sig_key **out, char *err, size_t errlen);

/* The key's type; 0 for NULL. */
sig_key_type sig_key_kind(const sig_key *k);
/* Key size in bits as libcrypto reports it (e.g. 256 for P-256); 0 for NULL. */
int sig_key_bits(const sig_key *k);
/* NULL is allowed. */
void sig_key_free(sig_key *k);

/* ---- signature verification ----
 *
 * All three take the raw signed bytes msg[0..len) (any length; msg may be
 * NULL only when len is 0) and the signature as NUL-terminated base64 text,
 * of which at most SIG_SIG_B64_MAX characters are read. They return
 *   SIG_OK        the signature is valid for msg under key;
 *   SIG_BAD       it decodes but is not a valid signature (wrong bytes,
 *                 wrong length, non-DER ECDSA, tampered message, other key);
 *   SIG_MALFORMED key is NULL or of another type, sig_b64 is NULL, empty,
 *                 too long or not valid base64, or msg is NULL with len > 0;
 *   SIG_NOMEM     libcrypto could not allocate or set up its contexts
 *                 (our failure, not the sender's: answer 5xx, not 4xx).
 * Any result other than SIG_OK means "reject the request". libcrypto does
 * not report every allocation failure as such, so under memory exhaustion a
 * valid signature may come back SIG_BAD: the answer errs towards rejecting. */

/* Ed25519 (RFC 8032, pure: the message itself is signed, no pre-hash). */
int sig_verify_ed25519(const sig_key *key, const void *msg, size_t len, const char *sig_b64);
/* RSASSA-PKCS1-v1_5 with SHA-256. */
int sig_verify_rsa_sha256(const sig_key *key, const void *msg, size_t len, const char *sig_b64);
/* ECDSA on P-256 with SHA-256; the signature is the DER SEQUENCE{r, s}. */
int sig_verify_ecdsa_p256_sha256(const sig_key *key, const void *msg, size_t len,
                                 const char *sig_b64);

/* ---- shared-secret schemes ---- */

/* HMAC-SHA1(secret, data), base64-encoded with padding, into out
 * (SIG_HMAC_SHA1_B64_SIZE bytes, NUL-terminated). The secret is raw bytes so
 * base64-decoded secrets work too. An empty secret is refused
 * (SIG_MALFORMED): a misconfigured empty secret would let anyone forge.
 * Returns SIG_OK, SIG_MALFORMED (empty secret, NULL argument) or SIG_NOMEM. */
int sig_hmac_sha1_b64(const void *secret, size_t secret_len, const void *data, size_t len,
                      char out[SIG_HMAC_SHA1_B64_SIZE]);
/* HMAC-SHA256(secret, data) as lowercase hex into out
 * (SIG_HMAC_SHA256_HEX_SIZE bytes). Same rules and returns as above. */
int sig_hmac_sha256_hex(const void *secret, size_t secret_len, const void *data, size_t len,
                        char out[SIG_HMAC_SHA256_HEX_SIZE]);

/* One POST parameter, already form-decoded. Lengths are explicit because a
 * decoded value may contain NUL bytes. The pointers are only read. */
typedef struct sig_param {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} sig_param;

/* Twilio's X-Twilio-Signature for a form-encoded request:
 *   base64(HMAC-SHA1(auth_token, full_url + name1 value1 + name2 value2 ...))
 * with the parameters ordered by name, bytewise. Parameters that share a name
 * are ordered by value and exact (name, value) duplicates count once; this is
 * what Twilio's own validators do (twilio-python, twilio-node), so a repeated
 * field validates whatever order our form parser kept. params may be given in
 * any order and is not modified; n may be 0 (params may then be NULL). For
 * JSON bodies Twilio signs the URL alone (with bodySHA256 in its query).
 *
 * full_url is the exact URL Twilio requested, query included, NUL-terminated.
 * Writes SIG_HMAC_SHA1_B64_SIZE bytes into out_b64; compare with the header
 * using sig_equal. Returns SIG_OK, SIG_MALFORMED (NULL/empty token, NULL url,
 * n > SIG_TWILIO_MAX_PARAMS, a parameter with a NULL pointer and non-zero
 * length) or SIG_NOMEM. */
int sig_twilio(const char *auth_token, const char *full_url, const sig_param *params, size_t n,
               char out_b64[SIG_HMAC_SHA1_B64_SIZE]);

/* 1 if a[0..n) equals b[0..n), else 0, in time that depends only on n. The
 * length itself is not secret: check it before calling. */
int sig_equal(const void *a, const void *b, size_t n);

/* ---- GoHighLevel's published public keys (PEM, NUL-terminated) ---- */

/* Ed25519 key for the x-ghl-signature header. */
extern const char SIG_GHL_ED25519_PEM[];
/* RSA-4096 key for the legacy x-wh-signature header (RSA-SHA256). */
extern const char SIG_GHL_RSA_PEM[];

#endif
