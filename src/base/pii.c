/* PII detection: hand-written scanners per kind instead of regular
 * expressions, so the cost is linear, nothing allocates, and the checks
 * that make the difference between a number and a card (Luhn, mod 97, NANP
 * ranges) sit next to the matching. See pii.h for the rules. */
#include "pii.h"

#include <stdint.h>
#include <string.h>

static const char *const kind_names[PII_NKINDS] = {"email", "phone", "ssn", "card", "address", "dob", "iban"};
static const char *const placeholders[PII_NKINDS] = {"[EMAIL]", "[PHONE]", "[SSN]", "[CARD]",
                                                     "[ADDRESS]", "[DOB]", "[IBAN]"};

const char *pii_kind_name(pii_kind k) { return (unsigned)k < PII_NKINDS ? kind_names[k] : NULL; }
const char *pii_placeholder(pii_kind k) { return (unsigned)k < PII_NKINDS ? placeholders[k] : NULL; }

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
static int is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static int is_alnum(unsigned char c) { return is_digit(c) || is_alpha(c); }
static unsigned char lower(unsigned char c) { return is_upper(c) ? (unsigned char)(c | 0x20) : c; }

/* A byte before position i that lets a token start there. */
static int boundary_before(const char *s, size_t i) {
    if (i == 0) return 1;
    unsigned char p = (unsigned char)s[i - 1];
    return !is_alnum(p) && p != '_';
}
static int boundary_at(const char *s, size_t n, size_t i) {
    if (i >= n) return 1;
    unsigned char c = (unsigned char)s[i];
    return !is_alnum(c) && c != '_';
}

/* Case-insensitive: does s[i..) start with word w (ASCII lower-case)? */
static int ci_prefix(const char *s, size_t n, size_t i, const char *w) {
    size_t k = 0;
    for (; w[k]; k++)
        if (i + k >= n || lower((unsigned char)s[i + k]) != (unsigned char)w[k]) return 0;
    return 1;
}

/* Is one of the words in `words` (as whole words) within s[lo..hi)? */
static int word_in_window(const char *s, size_t lo, size_t hi, const char *const *words) {
    for (size_t i = lo; i < hi; i++) {
        if (!boundary_before(s, i)) continue;
        for (const char *const *w = words; *w; w++) {
            size_t wl = strlen(*w);
            if (i + wl <= hi && ci_prefix(s, hi, i, *w) && boundary_at(s, hi, i + wl)) return 1;
        }
    }
    return 0;
}

/* ---- email ---- */

static int is_local(unsigned char c) { return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'; }

static size_t match_email(const char *s, size_t n, size_t i) {
    if (!is_alnum((unsigned char)s[i])) return 0;
    if (i > 0 && is_local((unsigned char)s[i - 1])) return 0;
    size_t j = i;
    while (j < n && j - i <= 64 && is_local((unsigned char)s[j])) j++;
    if (j >= n || s[j] != '@' || j == i || j - i > 64) return 0;
    size_t d = j + 1, k = d, last_dot = 0;
    while (k < n && k - d < 253) {
        unsigned char c = (unsigned char)s[k];
        if (is_alnum(c) || c == '-') k++;
        else if (c == '.' && k + 1 < n && is_alnum((unsigned char)s[k + 1]) && k > d && s[k - 1] != '.') {
            last_dot = k;
            k++;
        } else break;
    }
    if (!last_dot) return 0;
    /* The TLD: letters only, at least two. */
    for (size_t t = last_dot + 1; t < k; t++)
        if (!is_alpha((unsigned char)s[t])) return 0;
    if (k - last_dot - 1 < 2 || !is_alnum((unsigned char)s[d])) return 0;
    return k - i;
}

/* ---- IBAN ---- */

int pii_iban_ok(const char *s, size_t n) {
    char c[40];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)s[i];
        if (x == ' ') continue;
        if (!is_alnum(x) || m >= 34) return 0;
        c[m++] = (char)(is_alpha(x) ? (x & ~0x20) : x);
    }
    if (m < 15 || !is_upper((unsigned char)c[0]) || !is_upper((unsigned char)c[1]) ||
        !is_digit((unsigned char)c[2]) || !is_digit((unsigned char)c[3]))
        return 0;
    /* Move the first four characters to the end, letters count 10..35,
     * and the whole number must be 1 mod 97. */
    unsigned r = 0;
    for (size_t k = 0; k < m; k++) {
        unsigned char x = (unsigned char)c[(k + 4) % m];
        if (is_digit(x)) r = (r * 10 + (x - '0')) % 97;
        else r = (r * 100 + (x - 'A' + 10)) % 97;
    }
    return r == 1;
}

static size_t match_iban(const char *s, size_t n, size_t i) {
    if (i + 15 > n || !is_upper((unsigned char)s[i]) || !is_upper((unsigned char)s[i + 1]) ||
        !is_digit((unsigned char)s[i + 2]) || !is_digit((unsigned char)s[i + 3]))
        return 0;
    size_t k = i, chars = 0, best = 0;
    while (k < n && chars < 34) {
        unsigned char c = (unsigned char)s[k];
        if (is_digit(c) || is_upper(c)) {
            k++, chars++;
            if (chars >= 15 && boundary_at(s, n, k) && pii_iban_ok(s + i, k - i)) best = k - i;
        } else if (c == ' ' && k + 1 < n && (is_digit((unsigned char)s[k + 1]) || is_upper((unsigned char)s[k + 1])) &&
                   k > i && s[k - 1] != ' ') {
            k++;
        } else break;
    }
    return best;
}

/* ---- dates of birth ---- */

static const char *const months[] = {"january", "february", "march", "april", "may", "june", "july",
                                     "august", "september", "october", "november", "december"};

/* A month name (full or 3-letter abbreviation, optional '.') at i: its
 * length, 0 if none. */
static size_t match_month(const char *s, size_t n, size_t i) {
    for (int m = 0; m < 12; m++) {
        size_t fl = strlen(months[m]);
        if (ci_prefix(s, n, i, months[m]) && boundary_at(s, n, i + fl)) return fl;
        char ab[4] = {months[m][0], months[m][1], months[m][2], 0};
        if (ci_prefix(s, n, i, ab)) {
            if (i + 3 < n && s[i + 3] == '.') return 4;
            if (boundary_at(s, n, i + 3)) return 3;
            if (m == 8 && ci_prefix(s, n, i, "sept") && boundary_at(s, n, i + 4)) return 4;
        }
    }
    return 0;
}

static size_t digits_at(const char *s, size_t n, size_t i, size_t max, int *val) {
    size_t k = 0;
    int v = 0;
    while (i + k < n && k < max && is_digit((unsigned char)s[i + k])) v = v * 10 + (s[i + k] - '0'), k++;
    if (i + k < n && is_digit((unsigned char)s[i + k])) return 0; /* too many digits */
    *val = v;
    return k;
}

/* A date at i: its length, with *year (4-digit years as is, 2-digit years
 * as given) and *y4 set; 0 if none. */
static size_t match_date(const char *s, size_t n, size_t i, int *year, int *y4) {
    int a, b, c;
    size_t k = i, l;
    if (is_digit((unsigned char)s[i])) {
        l = digits_at(s, n, k, 4, &a);
        if (!l) return 0;
        k += l;
        if (k >= n) return 0;
        char sep = s[k];
        if (l == 4) { /* yyyy-mm-dd or yyyy/mm/dd */
            if (sep != '-' && sep != '/') return 0;
            k++;
            if (!(l = digits_at(s, n, k, 2, &b)) || k + l >= n || s[k + l] != sep) return 0;
            k += l + 1;
            if (!(l = digits_at(s, n, k, 2, &c))) return 0;
            k += l;
            if (b < 1 || b > 12 || c < 1 || c > 31) return 0;
            *year = a, *y4 = 1;
            return boundary_at(s, n, k) ? k - i : 0;
        }
        if (l > 2) return 0;
        if (sep == '/' || sep == '-' || sep == '.') {
            k++;
            if (!(l = digits_at(s, n, k, 2, &b)) || k + l >= n || s[k + l] != sep) return 0;
            k += l + 1;
            if (!(l = digits_at(s, n, k, 4, &c)) || (l != 2 && l != 4)) return 0;
            k += l;
            /* m/d or d/m: either reading must be a real day and month. */
            if (a < 1 || b < 1 || !((a <= 12 && b <= 31) || (b <= 12 && a <= 31))) return 0;
            if (k < n && (s[k] == '/' || s[k] == '-' || (s[k] == '.' && k + 1 < n && is_digit((unsigned char)s[k + 1]))))
                return 0;
            *year = c, *y4 = l == 4;
            return boundary_at(s, n, k) ? k - i : 0;
        }
        if (sep == ' ') { /* 3 March 1985 */
            if (a < 1 || a > 31) return 0;
            k++;
            size_t ml = match_month(s, n, k);
            if (!ml) return 0;
            k += ml;
            if (k < n && s[k] == ',') k++;
            if (k >= n || s[k] != ' ') return 0;
            k++;
            if ((l = digits_at(s, n, k, 4, &c)) != 4) return 0;
            *year = c, *y4 = 1;
            return boundary_at(s, n, k + l) ? k + l - i : 0;
        }
        return 0;
    }
    size_t ml = match_month(s, n, k); /* March 3, 1985 */
    if (!ml) return 0;
    k += ml;
    if (k >= n || s[k] != ' ') return 0;
    k++;
    if (!(l = digits_at(s, n, k, 2, &b)) || b < 1 || b > 31) return 0;
    k += l;
    if (ci_prefix(s, n, k, "st") || ci_prefix(s, n, k, "nd") || ci_prefix(s, n, k, "rd") || ci_prefix(s, n, k, "th"))
        k += 2;
    if (k < n && s[k] == ',') k++;
    if (k >= n || s[k] != ' ') return 0;
    k++;
    if ((l = digits_at(s, n, k, 4, &c)) != 4) return 0;
    *year = c, *y4 = 1;
    return boundary_at(s, n, k + l) ? k + l - i : 0;
}

static const char *const dob_words[] = {"dob", "d.o.b", "birth", "birthdate", "birthday", "born", NULL};

static size_t match_dob(const char *s, size_t n, size_t i) {
    int year = 0, y4 = 0;
    size_t l = match_date(s, n, i, &year, &y4);
    if (!l) return 0;
    size_t lo = i > 40 ? i - 40 : 0;
    size_t hi = i + l + 30 < n ? i + l + 30 : n;
    if (word_in_window(s, lo, i, dob_words) || word_in_window(s, i + l, hi, dob_words)) return l;
    return y4 && year >= 1920 && year <= 2008 ? l : 0;
}

/* ---- street addresses ---- */

static const char *const suffixes_full[] = {"street", "avenue", "road", "boulevard", "drive", "lane", "court",
                                            "way", "place", "circle", "terrace", "parkway", "highway", "trail",
                                            "square", "plaza", "alley", "crescent", NULL};
static const char *const suffixes_abbr[] = {"st", "ave", "av", "rd", "blvd", "dr", "ln", "ct", "pl", "cir",
                                            "ter", "pkwy", "hwy", "trl", "sq", NULL};
static const char *const stop_words[] = {"and", "the", "a", "of", "to", "in", "on", "at", "for", "with", "or",
                                         "my", "our", "your", "is", "are", "was", "more", "new", "old", NULL};
static const char *const directions[] = {"n", "s", "e", "w", "ne", "nw", "se", "sw", "north", "south", "east",
                                         "west", NULL};
static const char *const units[] = {"apt", "unit", "suite", "ste", "#", NULL};

/* A whole word from `list` at i: its length, else 0. */
static size_t word_of(const char *s, size_t n, size_t i, const char *const *list) {
    for (const char *const *w = list; *w; w++) {
        size_t wl = strlen(*w);
        if (ci_prefix(s, n, i, *w) && boundary_at(s, n, i + wl)) return wl;
    }
    return 0;
}

static size_t match_address(const char *s, size_t n, size_t i) {
    int num;
    size_t k = i, l = digits_at(s, n, i, 6, &num);
    if (!l || s[i] == '0') return 0;
    k += l;
    if (k >= n || s[k] != ' ') return 0;
    k++;
    size_t dl = word_of(s, n, k, directions);
    if (dl && k + dl < n && (s[k + dl] == ' ' || s[k + dl] == '.')) {
        k += dl + (s[k + dl] == '.');
        if (k < n && s[k] == ' ') k++;
    }
    int words = 0, caps = 1;
    while (words < 4 && k < n) {
        /* Is the word here a suffix (after at least one name word)? */
        if (words > 0) {
            size_t sl = word_of(s, n, k, suffixes_full);
            int abbr = 0;
            if (!sl) sl = word_of(s, n, k, suffixes_abbr), abbr = 1;
            if (sl && (caps || (abbr && words <= 3))) {
                size_t end = k + sl;
                if (abbr && end < n && s[end] == '.') end++;
                /* an optional unit: " Apt 4B", ", Unit 3", " #12" */
                size_t u = end;
                if (u < n && s[u] == ',') u++;
                if (u < n && s[u] == ' ') {
                    u++;
                    size_t ul = u < n && s[u] == '#' ? 1 : word_of(s, n, u, units);
                    if (ul) {
                        u += ul;
                        if (u < n && s[u] == '.') u++;
                        if (u < n && s[u] == ' ') u++;
                        size_t v = u;
                        while (v < n && v - u < 6 && is_alnum((unsigned char)s[v])) v++;
                        if (v > u && boundary_at(s, n, v)) end = v;
                    }
                }
                return end - i;
            }
        }
        /* a name word: letters, or an ordinal like 5th / 21st */
        size_t w = k;
        if (is_digit((unsigned char)s[w])) {
            while (w < n && is_digit((unsigned char)s[w])) w++;
            if (!(ci_prefix(s, n, w, "st") || ci_prefix(s, n, w, "nd") || ci_prefix(s, n, w, "rd") ||
                  ci_prefix(s, n, w, "th")))
                return 0;
            w += 2;
        } else {
            if (!is_alpha((unsigned char)s[w])) return 0;
            if (!is_upper((unsigned char)s[w])) caps = 0;
            /* "3 more days", "2 old houses"; but "Old Auburn Rd" is a name */
            if (!is_upper((unsigned char)s[w]) && word_of(s, n, w, stop_words)) return 0;
            while (w < n && (is_alpha((unsigned char)s[w]) || s[w] == '\'')) w++;
        }
        if (!boundary_at(s, n, w) || w - k > 24) return 0;
        words++;
        k = w;
        if (k >= n || s[k] != ' ') return 0;
        k++;
    }
    return 0;
}

/* ---- numbers: SSN, card, phone ---- */

int pii_luhn_ok(const char *s, size_t n) {
    int sum = 0, dbl = 0, cnt = 0;
    for (size_t i = n; i-- > 0;) {
        if (!is_digit((unsigned char)s[i])) continue;
        int d = s[i] - '0';
        if (dbl && (d *= 2) > 9) d -= 9;
        sum += d;
        dbl = !dbl;
        cnt++;
    }
    return cnt > 0 && sum % 10 == 0;
}

typedef struct ngroups {
    int n;
    int plus;
    int len[8];
    char sep[8];  /* separator before group i (0 for the first) */
    int paren[8];
    size_t end[8];
    char digits[40];
    int nd[8];    /* digits up to and including group i */
} ngroups;

static void scan_groups(const char *s, size_t n, size_t i, ngroups *g) {
    memset(g, 0, sizeof *g);
    size_t k = i;
    if (s[k] == '+') g->plus = 1, k++;
    int total = 0;
    while (g->n < 8 && k < n) {
        int par = 0;
        size_t st = k;
        if (s[k] == '(' && g->n <= 2) par = 1, k++;
        size_t d0 = k;
        while (k < n && is_digit((unsigned char)s[k]) && total < 39 && k - d0 < 19) g->digits[total++] = s[k++];
        if (k == d0 || (k < n && is_digit((unsigned char)s[k]))) return;
        g->len[g->n] = (int)(k - d0);
        if (par) {
            if (k >= n || s[k] != ')') return;
            k++;
        }
        (void)st;
        g->paren[g->n] = par;
        g->end[g->n] = k;
        g->nd[g->n] = total;
        g->n++;
        /* a separator continues the number only if another group follows */
        if (k + 1 < n && (s[k] == ' ' || s[k] == '-' || s[k] == '.') &&
            (is_digit((unsigned char)s[k + 1]) || (s[k + 1] == '(' && g->n <= 2))) {
            g->sep[g->n] = s[k];
            k++;
        } else if (par && k < n && is_digit((unsigned char)s[k])) {
            g->sep[g->n] = ')';  /* "(415)555-0101" */
        } else {
            return;
        }
    }
}

static const char *const ssn_words[] = {"ssn", "social", "security", "ss#", NULL};

static int ssn_valid(const char *d) {
    int area = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
    int grp = (d[3] - '0') * 10 + (d[4] - '0');
    int ser = (d[5] - '0') * 1000 + (d[6] - '0') * 100 + (d[7] - '0') * 10 + (d[8] - '0');
    return area != 0 && area != 666 && area < 900 && grp != 0 && ser != 0;
}

/* Classifies the first k groups; -1 if they are none of the kinds. */
static int classify(const char *s, size_t i, const ngroups *g, int k) {
    int tot = g->nd[k - 1];
    const char *d = g->digits;
    int any_paren = 0, seps_ok_card = 1;
    for (int x = 0; x < k; x++) {
        any_paren |= g->paren[x];
        if (x > 0 && g->sep[x] != ' ' && g->sep[x] != '-') seps_ok_card = 0;
    }
    if (!g->plus && !any_paren) {
        if (k == 3 && g->len[0] == 3 && g->len[1] == 2 && g->len[2] == 4 && g->sep[1] == g->sep[2] &&
            (g->sep[1] == '-' || g->sep[1] == ' ') && ssn_valid(d))
            return PII_SSN;
        if (k == 1 && tot == 9 && ssn_valid(d)) {
            size_t lo = i > 30 ? i - 30 : 0;
            if (word_in_window(s, lo, i, ssn_words)) return PII_SSN;
        }
        if (tot >= 13 && tot <= 19 && seps_ok_card && d[0] >= '2' && d[0] <= '6') {
            int groups_ok = 1;
            for (int x = 0; x < k; x++) groups_ok &= g->len[x] >= 3 || k == 1;
            if (groups_ok && pii_luhn_ok(d, (size_t)tot)) return PII_CARD;
        }
    }
    if (g->plus) return tot >= 8 && tot <= 15 && d[0] != '0' && k >= 1 ? PII_PHONE : -1;
    if (d[0] == '0' && d[1] == '0' && d[2] != '0' && tot >= 10 && tot <= 15 && k >= 2 && g->sep[1] == ' ')
        return PII_PHONE;
    int nanp10 = tot == 10 && d[0] >= '2' && d[3] >= '2';
    if (nanp10 && (k == 1 || (k == 3 && g->len[0] == 3 && g->len[1] == 3 && g->len[2] == 4) ||
                   (k == 2 && g->paren[0] && g->len[0] == 3 && g->len[1] == 7)))
        return PII_PHONE;
    if (tot == 11 && d[0] == '1' && d[1] >= '2' && d[4] >= '2' &&
        (k == 1 || (k == 4 && g->len[0] == 1 && g->len[1] == 3 && g->len[2] == 3 && g->len[3] == 4)))
        return PII_PHONE;
    /* national numbers with a trunk 0 are written with spaces or dots;
     * dashed zero-led groups are parcel and reference numbers */
    int dash = 0;
    for (int x = 1; x < k; x++) dash |= g->sep[x] == '-';
    if (d[0] == '0' && d[1] != '0' && tot >= 10 && tot <= 11 && k >= 2 && !dash) return PII_PHONE;
    if (k == 2 && tot == 7 && g->len[0] == 3 && g->sep[1] == '-' && !any_paren && d[0] >= '2') return PII_PHONE;
    return -1;
}

static size_t match_number(const char *s, size_t n, size_t i, pii_kind *kind) {
    unsigned char c = (unsigned char)s[i];
    if (!(is_digit(c) || ((c == '+' || c == '(') && i + 1 < n && is_digit((unsigned char)s[i + 1])))) return 0;
    if (i > 0 && (s[i - 1] == '.' || s[i - 1] == '-' || s[i - 1] == '/' || s[i - 1] == '$' || s[i - 1] == ',')) return 0;
    /* the tail of a longer digit sequence ("9400 1000 0000 ...") is not a
     * number of its own */
    if (i >= 2 && s[i - 1] == ' ' && is_digit((unsigned char)s[i - 2])) return 0;
    ngroups g;
    scan_groups(s, n, i, &g);
    for (int k = g.n; k >= 1; k--) {
        size_t end = g.end[k - 1];
        if (!boundary_at(s, n, end)) continue;
        /* "1.5" or "3-4" continuing after the groups: part of something else */
        if (end + 1 < n && (s[end] == '/' || s[end] == ',' || s[end] == '.' || s[end] == '-') &&
            is_digit((unsigned char)s[end + 1]))
            continue;
        int kd = classify(s, i, &g, k);
        if (kd >= 0) {
            *kind = (pii_kind)kd;
            return end - i;
        }
    }
    return 0;
}

/* ---- driver ---- */

int pii_next(const char *s, size_t n, size_t from, pii_span *sp) {
    if (!s) return 0;
    for (size_t i = from; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || !(is_alnum(c) || c == '+' || c == '(')) continue;
        size_t l;
        if (is_alnum(c) && (l = match_email(s, n, i))) {
            *sp = (pii_span){i, l, PII_EMAIL};
            return 1;
        }
        if (!boundary_before(s, i)) continue;
        if (is_upper(c) && (l = match_iban(s, n, i))) {
            *sp = (pii_span){i, l, PII_IBAN};
            return 1;
        }
        if (is_alnum(c) && (l = match_dob(s, n, i))) {
            *sp = (pii_span){i, l, PII_DOB};
            return 1;
        }
        if (is_digit(c) && (l = match_address(s, n, i))) {
            *sp = (pii_span){i, l, PII_ADDRESS};
            return 1;
        }
        pii_kind k;
        if ((l = match_number(s, n, i, &k))) {
            *sp = (pii_span){i, l, k};
            return 1;
        }
    }
    return 0;
}

size_t pii_find(const char *s, size_t n, pii_span *out, size_t max) {
    size_t cnt = 0, pos = 0;
    pii_span sp;
    while (pii_next(s, n, pos, &sp)) {
        if (cnt < max) out[cnt] = sp;
        cnt++;
        pos = sp.start + sp.len;
    }
    return cnt;
}

/* Output that counts what it would need and remembers the first byte that
 * did not fit, so the cut can be moved back to a character boundary. */
typedef struct sink {
    char *out;
    size_t cap, len, need;
    int cut_byte;  /* -1 until something did not fit */
} sink;

static void put(sink *o, const char *p, size_t m) {
    for (size_t k = 0; k < m; k++) {
        if (o->len + 1 < o->cap) o->out[o->len++] = p[k];
        else if (o->cut_byte < 0) o->cut_byte = (unsigned char)p[k];
    }
    o->need += m;
}

size_t pii_redact(const char *s, size_t n, char *out, size_t cap) {
    sink o = {out, cap, 0, 0, -1};
    size_t pos = 0;
    pii_span sp;
    while (s && pii_next(s, n, pos, &sp)) {
        put(&o, s + pos, sp.start - pos);
        const char *ph = placeholders[sp.kind];
        put(&o, ph, strlen(ph));
        pos = sp.start + sp.len;
    }
    if (s) put(&o, s + pos, n - pos);
    if (cap == 0) return o.need;
    size_t w = o.len;
    if (o.cut_byte >= 0 && (o.cut_byte & 0xC0) == 0x80) {
        /* the cut fell inside a character: drop its first bytes too */
        while (w > 0 && ((unsigned char)out[w - 1] & 0xC0) == 0x80) w--;
        if (w > 0 && (unsigned char)out[w - 1] >= 0xC0) w--;
    }
    out[w] = '\0';
    return o.need;
}
