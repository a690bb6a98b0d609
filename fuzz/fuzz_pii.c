/* libFuzzer target for base/pii.
 *
 * The first byte picks the output capacity; the rest is the text. The
 * driver checks what must hold for any input: spans are in order, inside
 * the text, never overlapping and never empty; pii_find agrees with
 * pii_next; pii_redact's return does not depend on the capacity, its output
 * is NUL-terminated within cap, is a prefix of the full redaction, and when
 * cut, is cut on a UTF-8 character boundary. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/pii.h"

/* Well-formed UTF-8 (shortest forms not checked: enough to know where
 * characters start). */
static int utf8_ok(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t l = p[i] < 0x80 ? 1 : (p[i] & 0xE0) == 0xC0 ? 2 : (p[i] & 0xF0) == 0xE0 ? 3 : (p[i] & 0xF8) == 0xF0 ? 4 : 0;
        if (!l || i + l > n) return 0;
        for (size_t k = 1; k < l; k++)
            if ((p[i + k] & 0xC0) != 0x80) return 0;
        i += l;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t cap = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    pii_span sp[64];
    size_t cnt = pii_find(s, n, sp, 64), prev_end = 0, pos = 0;
    for (size_t i = 0; i < cnt && i < 64; i++) {
        if (sp[i].len == 0 || sp[i].start < prev_end || sp[i].start + sp[i].len > n) abort();
        if ((unsigned)sp[i].kind >= PII_NKINDS) abort();
        pii_span one;
        if (!pii_next(s, n, pos, &one) || one.start != sp[i].start || one.len != sp[i].len) abort();
        prev_end = pos = sp[i].start + sp[i].len;
    }
    size_t need = pii_redact(s, n, NULL, 0);
    char *full = malloc(need + 1), *part = malloc(cap ? cap : 1);
    if (!full || !part) abort();
    if (pii_redact(s, n, full, need + 1) != need || strlen(full) > need) abort();
    if (pii_redact(s, n, part, cap) != need) abort();
    if (cap) {
        size_t pl = strlen(part);
        if (pl >= cap || memcmp(part, full, pl) != 0) abort();
        /* when cut, the next byte of the full output starts a character */
        if (pl < need && utf8_ok((const unsigned char *)s, n) && (((unsigned char)full[pl]) & 0xC0) == 0x80) abort();
    }
    free(full);
    free(part);
    return 0;
}
