#include "ids.h"

#include <openssl/rand.h>

int ids_random_hex(char *out, size_t outlen, size_t nbytes) {
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    if (nbytes > sizeof raw || outlen < nbytes * 2 + 1) return -1;
    if (RAND_bytes(raw, (int)nbytes) != 1) return -1;
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[nbytes * 2] = '\0';
    return 0;
}

int ids_request_id_valid(const char *s, size_t n) {
    if (n == 0 || n > 128) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok) return 0;
    }
    return 1;
}
