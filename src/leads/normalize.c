#include "normalize.h"

#include <string.h>

/* ASCII-only classification: <ctype.h> depends on the locale, and a lead's
 * canonical phone must not change with the server's LANG. */
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }
static char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

/* Does s (n bytes) start with the lowercase ASCII word w, ignoring case? */
static int ci_prefix(const char *s, size_t n, const char *w) {
    size_t k = strlen(w);
    if (n < k) return 0;
    for (size_t i = 0; i < k; i++)
        if (to_lower(s[i]) != w[i]) return 0;
    return 1;
}

static void trim(const char **p, const char **end) {
    while (*p < *end && is_space(**p)) (*p)++;
    while (*end > *p && is_space((*end)[-1])) (*end)--;
}

static int fail_out(int rc, char *out, size_t outlen) {
    if (out && outlen) out[0] = '\0';
    return rc;
}

static int put(const char *s, size_t n, char *out, size_t outlen) {
    if (n + 1 > outlen) return fail_out(NORM_NOSPACE, out, outlen);
    memcpy(out, s, n);
    out[n] = '\0';
    return NORM_OK;
}

/* ---- phones ---- */

/* The default countries we can place a national number in. Small on
 * purpose: our customers are US/Canadian teams with some leads abroad; a
 * number from anywhere else must come with its country code. `trunk` is the
 * national prefix dialled before an area code and dropped in E.164 ("020" in
 * London is +44 20); `idd` is the prefix for calling abroad from there. */
typedef struct country {
    char iso[3];
    const char *cc;
    const char *trunk;
    const char *idd;
} country;

static const country COUNTRIES[] = {
    {"US", "1", "", "011"},  {"CA", "1", "", "011"},  /* NANP: no trunk prefix */
    {"GB", "44", "0", "00"}, {"IE", "353", "0", "00"}, {"DE", "49", "0", "00"},
    {"FR", "33", "0", "00"}, {"NL", "31", "0", "00"}, {"BE", "32", "0", "00"},
    {"CH", "41", "0", "00"}, {"AT", "43", "0", "00"}, {"AU", "61", "0", "0011"},
    {"NZ", "64", "0", "00"}, {"IN", "91", "0", "00"},
    /* No trunk prefix: Spain's numbers start 6-9; Italy's landline 0 is part
     * of the number (+39 06 ...); Mexico abolished its prefixes in 2019. */
    {"ES", "34", "", "00"},  {"IT", "39", "", "00"},  {"MX", "52", "", "00"},
};

static const country *find_country(const char *iso) {
    if (!iso) iso = "US";
    if (strlen(iso) != 2) return NULL;
    for (size_t i = 0; i < sizeof COUNTRIES / sizeof COUNTRIES[0]; i++) {
        if (to_lower(iso[0]) == to_lower(COUNTRIES[i].iso[0]) &&
            to_lower(iso[1]) == to_lower(COUNTRIES[i].iso[1]))
            return &COUNTRIES[i];
    }
    return NULL;
}

/* NANP: NXX-NXX-XXXX where N is 2-9 (0 and 1 would be operator and long-
 * distance prefixes, so no real area code or exchange starts with them). */
static int nanp_ok(const char *d, size_t n) {
    return n == 10 && d[0] >= '2' && d[3] >= '2';
}

/* An extension after the number ("x123", "ext. 123", "#123"): valid if it
 * is a marker followed by 1-10 digits, which we drop. */
static int extension_ok(const char *p, const char *end) {
    size_t n = (size_t)(end - p);
    if (ci_prefix(p, n, "extension")) p += 9;
    else if (ci_prefix(p, n, "ext")) p += 3;
    else if (*p == 'x' || *p == 'X' || *p == '#') p += 1;
    else return 0;
    while (p < end && (*p == '.' || *p == ':' || *p == ' ' || *p == '=')) p++;
    size_t digits = 0;
    while (p < end && is_digit(*p)) p++, digits++;
    return p == end && digits >= 1 && digits <= 10;
}

/* If d is "cc 0 ..." for a country of ours that has a trunk 0, the 0 is a
 * national habit written into an international number ("+44 (0)20 ...",
 * "+44 020 ..."): it is dropped. Country codes are prefix-free, so matching
 * one is unambiguous. */
static size_t drop_trunk_after_cc(char *d, size_t n) {
    for (size_t i = 0; i < sizeof COUNTRIES / sizeof COUNTRIES[0]; i++) {
        const country *c = &COUNTRIES[i];
        size_t k = strlen(c->cc);
        if (c->trunk[0] && n > k && memcmp(d, c->cc, k) == 0 && d[k] == c->trunk[0]) {
            memmove(d + k, d + k + 1, n - k - 1);
            return n - 1;
        }
    }
    return n;
}

int norm_phone_e164(const char *in, const char *default_country, char *out, size_t outlen) {
    if (!in || !out) return fail_out(NORM_BADARG, out, outlen);
    const country *home = find_country(default_country);
    if (!home) return fail_out(NORM_BADARG, out, outlen);

    const char *p = in, *end = in + strlen(in);
    trim(&p, &end);
    if (ci_prefix(p, (size_t)(end - p), "tel:")) {
        /* RFC 3966: parameters such as ";ext=12" or ";phone-context=" follow. */
        p += 4;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        if (semi) end = semi;
        trim(&p, &end);
    }

    /* Room for "+" and an over-long number: anything past 20 digits is
     * invalid however it is prefixed. */
    char dig[24];
    size_t nd = 0;
    int plus = 0;
    for (; p < end; p++) {
        char c = *p;
        if (is_digit(c)) {
            if (nd >= 20) return fail_out(NORM_INVALID, out, outlen);
            dig[nd++] = c;
        } else if (c == '+') {
            if (nd || plus) return fail_out(NORM_INVALID, out, outlen);
            plus = 1;
        } else if (c == ' ' || c == '-' || c == '.' || c == '/' || c == '(' || c == ')') {
            continue;
        } else {
            break;
        }
    }
    if (nd == 0 || (p < end && !extension_ok(p, end))) return fail_out(NORM_INVALID, out, outlen);

    char *d = dig;
    size_t n = nd;
    int intl = plus;
    if (!intl) {
        size_t k = strlen(home->idd);
        if (n > k && memcmp(d, home->idd, k) == 0) {
            d += k, n -= k, intl = 1;
        } else if (n > 2 && d[0] == '0' && d[1] == '0') {
            d += 2, n -= 2, intl = 1; /* ITU's recommended prefix, used by most */
        }
    }

    char e[NORM_PHONE_MAX];
    size_t len = 0;
    e[len++] = '+';
    if (intl) {
        if (d[0] == '0') return fail_out(NORM_INVALID, out, outlen); /* no country code starts with 0 */
        n = drop_trunk_after_cc(d, n);
        if (d[0] == '1') {
            if (!nanp_ok(d + 1, n - 1)) return fail_out(NORM_INVALID, out, outlen);
        } else if (n < 8 || n > 15) {
            return fail_out(NORM_INVALID, out, outlen);
        }
    } else if (!strcmp(home->cc, "1")) {
        if (n == 11 && d[0] == '1') d++, n--; /* the NANP long-distance 1 */
        if (!nanp_ok(d, n)) return fail_out(NORM_INVALID, out, outlen);
        e[len++] = '1';
    } else {
        size_t k = strlen(home->trunk);
        if (k && n > k && memcmp(d, home->trunk, k) == 0) d += k, n -= k;
        size_t cc = strlen(home->cc);
        if (d[0] == '0' && k) return fail_out(NORM_INVALID, out, outlen);
        if (cc + n < 8 || cc + n > 15) return fail_out(NORM_INVALID, out, outlen);
        memcpy(e + len, home->cc, cc);
        len += cc;
    }
    memcpy(e + len, d, n);
    len += n;
    return put(e, len, out, outlen);
}

/* ---- email ---- */

static int is_atext(char c) {
    return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static int local_ok(const char *s, size_t n) {
    if (n < 1 || n > 64 || s[0] == '.' || s[n - 1] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i + 1] == '.') return 0; /* i < n-1 here: the last byte is no dot */
        } else if (!is_atext(s[i])) {
            return 0;
        }
    }
    return 1;
}

static int domain_ok(const char *s, size_t n) {
    if (n < 1 || n > 253) return 0;
    size_t labels = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '-') return 0;
            continue;
        }
        size_t len = i - start;
        const char *l = s + start;
        if (len < 1 || len > 63 || l[0] == '-' || l[len - 1] == '-') return 0;
        labels++;
        if (i == n) { /* the top-level domain */
            if (labels < 2) return 0;
            if (ci_prefix(l, len, "xn--")) return len > 4;
            if (len < 2) return 0;
            for (size_t j = 0; j < len; j++)
                if (!is_alpha(l[j])) return 0;
        }
        start = i + 1;
    }
    return 1;
}

int norm_email(const char *in, char *out, size_t outlen) {
    if (!in || !out) return fail_out(NORM_BADARG, out, outlen);
    const char *p = in, *end = in + strlen(in);
    trim(&p, &end);
    size_t n = (size_t)(end - p);
    if (n < 3 || n > 254) return fail_out(NORM_INVALID, out, outlen);
    const char *at = memchr(p, '@', n);
    if (!at || memchr(at + 1, '@', (size_t)(end - at - 1))) return fail_out(NORM_INVALID, out, outlen);
    if (!local_ok(p, (size_t)(at - p)) || !domain_ok(at + 1, (size_t)(end - at - 1)))
        return fail_out(NORM_INVALID, out, outlen);
    if (n + 1 > outlen) return fail_out(NORM_NOSPACE, out, outlen);
    for (size_t i = 0; i < n; i++) out[i] = to_lower(p[i]);
    out[n] = '\0';
    return NORM_OK;
}

/* ---- ZIP ---- */

int norm_zip_us(const char *in, char *out, size_t outlen) {
    if (!in || !out) return fail_out(NORM_BADARG, out, outlen);
    const char *p = in, *end = in + strlen(in);
    trim(&p, &end);
    size_t n = (size_t)(end - p), i = 0;
    while (i < n && is_digit(p[i])) i++;
    int ok;
    if (i == 5 && n == 5) ok = 1;
    else if (i == 9 && n == 9) ok = 1;
    else if (i == 5 && n == 10 && (p[5] == '-' || p[5] == ' ')) {
        ok = 1;
        for (size_t j = 6; j < 10; j++) ok &= is_digit(p[j]);
    } else ok = 0;
    if (!ok || memcmp(p, "00000", 5) == 0) return fail_out(NORM_INVALID, out, outlen);
    return put(p, 5, out, outlen);
}
