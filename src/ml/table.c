/* A CSV file read into memory for training and batch scoring: the header,
 * and every cell as a trimmed NUL-terminated string in one pool, indexed by
 * offsets (rows x cols). 41k rows of 15 columns take a few MB. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/csv.h"
#include "ml.h"

#define MAX_COLS 4096

struct ml_table {
    size_t ncols, nrows, skipped;
    char **names;
    char *pool;     /* cells, NUL-terminated */
    size_t pool_len, pool_cap;
    size_t *cell;   /* offsets into pool, nrows * ncols */
    size_t cell_cap;
    int failed;
    char err[ML_ERR_LEN];
};

static int pool_add(ml_table *t, const char *s, size_t n, size_t *off) {
    /* trimmed: CSV from spreadsheets is full of " 29.85" and "Yes " */
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (t->pool_len + n + 1 > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap * 2 : 1 << 16;
        while (cap < t->pool_len + n + 1) cap *= 2;
        char *p = eh_realloc(t->pool, cap);
        if (!p) return -1;
        t->pool = p;
        t->pool_cap = cap;
    }
    memcpy(t->pool + t->pool_len, s, n);
    t->pool[t->pool_len + n] = 0;
    *off = t->pool_len;
    t->pool_len += n + 1;
    return 0;
}

static int on_row(void *ud, const csv_row *row) {
    ml_table *t = ud;
    if (row->error) {
        if (!t->names) {
            snprintf(t->err, sizeof t->err, "line %lu: %s", row->line, csv_strerror(row->error->code));
            t->failed = 1;
            return 1;
        }
        t->skipped++;
        return 0;
    }
    if (!t->names) {
        if (row->nfields > MAX_COLS) {
            snprintf(t->err, sizeof t->err, "more than %d columns", MAX_COLS);
            t->failed = 1;
            return 1;
        }
        t->names = eh_calloc(row->nfields, sizeof *t->names);
        if (!t->names) goto oom;
        t->ncols = row->nfields;
        for (size_t i = 0; i < row->nfields; i++) {
            const char *s = row->field[i];
            size_t n = row->len[i];
            while (n && isspace((unsigned char)*s)) s++, n--;
            while (n && isspace((unsigned char)s[n - 1])) n--;
            t->names[i] = eh_malloc(n + 1);
            if (!t->names[i]) goto oom;
            memcpy(t->names[i], s, n);
            t->names[i][n] = 0;
        }
        return 0;
    }
    if (row->nfields != t->ncols) {
        t->skipped++;
        return 0;
    }
    if ((t->nrows + 1) * t->ncols > t->cell_cap) {
        size_t cap = t->cell_cap ? t->cell_cap * 2 : 1024 * t->ncols;
        size_t *c = eh_realloc(t->cell, cap * sizeof *c);
        if (!c) goto oom;
        t->cell = c;
        t->cell_cap = cap;
    }
    for (size_t i = 0; i < t->ncols; i++)
        if (pool_add(t, row->field[i], row->len[i], &t->cell[t->nrows * t->ncols + i])) goto oom;
    t->nrows++;
    return 0;
oom:
    snprintf(t->err, sizeof t->err, "out of memory");
    t->failed = 1;
    return 1;
}

/* The delimiter is the most frequent of , ; and tab in the header line. */
static char sniff_delim(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return ',';
    char line[65536];
    char d = ',';
    if (fgets(line, sizeof line, f)) {
        int c = 0, s = 0, tab = 0;
        for (char *p = line; *p; p++) c += *p == ',', s += *p == ';', tab += *p == '\t';
        if (s > c && s >= tab) d = ';';
        else if (tab > c && tab > s) d = '\t';
    }
    fclose(f);
    return d;
}

ml_table *ml_table_read(const char *path, char *err, size_t errlen) {
    ml_table *t = eh_calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    csv_limits lim = {.max_field = 64 * 1024, .max_fields = MAX_COLS + 1, .max_row = 1024 * 1024,
                      .delim = sniff_delim(path)};
    csv_error ce;
    int rc = csv_read_file(path, &lim, on_row, t, &ce);
    if (rc == CSV_EIO) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        ml_table_free(t);
        return NULL;
    }
    if (t->failed || rc < 0) {
        snprintf(err, errlen, "%s: %s", path, t->failed ? t->err : csv_strerror(rc));
        ml_table_free(t);
        return NULL;
    }
    if (!t->names) {
        snprintf(err, errlen, "%s: empty file (expected a header row)", path);
        ml_table_free(t);
        return NULL;
    }
    for (size_t i = 0; i < t->ncols; i++)
        for (size_t j = i + 1; j < t->ncols; j++)
            if (strcmp(t->names[i], t->names[j]) == 0) {
                snprintf(err, errlen, "%s: column \"%.64s\" appears twice in the header", path, t->names[i]);
                ml_table_free(t);
                return NULL;
            }
    return t;
}

void ml_table_free(ml_table *t) {
    if (!t) return;
    if (t->names)
        for (size_t i = 0; i < t->ncols; i++) eh_free(t->names[i]);
    eh_free(t->names);
    eh_free(t->pool);
    eh_free(t->cell);
    eh_free(t);
}

size_t ml_table_rows(const ml_table *t) { return t->nrows; }
size_t ml_table_cols(const ml_table *t) { return t->ncols; }
size_t ml_table_skipped(const ml_table *t) { return t->skipped; }
const char *ml_table_name(const ml_table *t, size_t col) { return t->names[col]; }

int ml_table_col(const ml_table *t, const char *name) {
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->names[i], name) == 0) return (int)i;
    return -1;
}

const char *ml_table_cell(const ml_table *t, size_t row, size_t col) {
    return t->pool + t->cell[row * t->ncols + col];
}

int ml_is_missing(const char *s) {
    static const char *const na[] = {"", "na", "n/a", "nan", "null", "none", "?", "#n/a", "-"};
    /* every marker starts with one of these (or is empty): most values are
     * told apart by their first byte, without nine strcasecmp calls */
    if (!s[0]) return 1;
    if (!strchr("nN?#-", s[0])) return 0;
    /* and none is longer than four bytes ("no", "nonexistent", "nov" are
     * common values that start with n) */
    if (strnlen(s, 5) > 4) return 0;
    for (size_t i = 0; i < sizeof na / sizeof na[0]; i++)
        if (strcasecmp(s, na[i]) == 0) return 1;
    return 0;
}

int ml_parse_number(const char *s, double *out) {
    char tmp[64];
    size_t n = 0;
    const char *p = s;
    if (*p == '$') p++;
    for (; *p && n + 1 < sizeof tmp; p++) {
        if (*p == ',' && n > 0 && isdigit((unsigned char)p[1])) continue; /* 1,250 */
        tmp[n++] = *p;
    }
    if (*p) return -1;
    if (n && tmp[n - 1] == '%') n--;
    tmp[n] = 0;
    if (!n) return -1;
    /* strtod also reads "inf", "nan" and hex; data never means those */
    for (size_t i = 0; i < n; i++)
        if (!(isdigit((unsigned char)tmp[i]) || tmp[i] == '.' || tmp[i] == '-' || tmp[i] == '+' || tmp[i] == 'e' ||
              tmp[i] == 'E'))
            return -1;
    char *end;
    errno = 0;
    double d = strtod(tmp, &end);
    if (*end || end == tmp || !isfinite(d)) return -1;
    *out = d;
    return 0;
}

/* %.15g prints 15 significant digits, correctly rounded from the double's
 * exact value, in fixed notation when the decimal exponent is in [-4, 14],
 * without trailing zeros. Here the digits come from x scaled in long
 * double: with a 64-bit mantissa the scaled value is within ~1e-5 of
 * exact, so the rounding is the correctly rounded one unless the fraction
 * is that close to one half; then, and outside the fixed range, snprintf
 * decides. */
int ml_format_g15(double x, char out[ML_G15_LEN]) {
#if LDBL_MANT_DIG >= 64
    static const long double p10[] = {1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
                                      1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L};
    long double a = fabsl((long double)x);
    if (isfinite(x) && a >= 1e-4L && a < 1e15L) {
        /* the decimal exponent e: a 10^(14-e) in [10^14, 10^15); the
         * powers are exact (at most 10^18), the product rounded once */
        int e = 14;
        long double scaled = a;
        while (scaled < 1e14L) scaled = a * p10[14 - --e];
        long double fl = floorl(scaled), frac = scaled - fl;
        if (fabsl(frac - 0.5L) > 1e-4L) {
            uint64_t n = (uint64_t)fl + (frac > 0.5L);
            if (n >= 1000000000000000ull) { /* rounded up to 10^15 */
                n /= 10;
                e++;
            }
            if (e <= 14 && n >= 100000000000000ull) {
                char dig[16];
                for (int i = 14; i >= 0; i--, n /= 10) dig[i] = (char)('0' + n % 10);
                int nd = 15;
                while (nd > 1 && dig[nd - 1] == '0') nd--;
                int k = 0;
                if (x < 0) out[k++] = '-';
                if (e >= 0) {
                    for (int i = 0; i <= e; i++) out[k++] = i < nd ? dig[i] : '0';
                    if (nd > e + 1) {
                        out[k++] = '.';
                        for (int i = e + 1; i < nd; i++) out[k++] = dig[i];
                    }
                } else {
                    out[k++] = '0';
                    out[k++] = '.';
                    for (int i = 0; i < -e - 1; i++) out[k++] = '0';
                    for (int i = 0; i < nd; i++) out[k++] = dig[i];
                }
                out[k] = 0;
                return k;
            }
        }
    }
#endif
    return snprintf(out, ML_G15_LEN, "%.15g", x);
}
