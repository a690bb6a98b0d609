#include "metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"

enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM, K_GAUGE_FN };

/* The hash table stops growing here: past METRICS_MAX_SERIES no series is
 * added, so a bigger table would only cost memory. */
#define MAX_TABLE 4096

/* One label-value tuple. Allocated as a single block (struct, bucket
 * counts, then the label values) so creating a series is one allocation
 * and updating it is none. Everything but the numbers is immutable once
 * the series is linked in. */
typedef struct series {
    struct series *hnext;  /* hash chain */
    struct series *next;   /* creation order, for rendering */
    uint32_t hash;
    size_t vlen[METRICS_MAX_LABELS];
    const char *v[METRICS_MAX_LABELS];
    double val;            /* counter or gauge */
    double sum;            /* histogram */
    uint64_t count;        /* histogram; also the +Inf bucket */
    uint64_t b[];          /* histogram: observations in (bound[i-1], bound[i]] */
} series;

struct metric {
    struct metric *next;   /* registration order; written once, under m->mu */
    metrics *reg;
    enum kind kind;
    char *name;
    char *help;            /* NULL: no HELP line */
    int nlabels;
    char *label[METRICS_MAX_LABELS];
    double *bound;
    int nbound;
    double (*fn)(void *);
    void *ud;

    /* mu guards everything below and every series' numbers and links. */
    pthread_mutex_t mu;
    series *head, *tail;
    int count;
    series **table;
    size_t nslots;         /* power of two */
};

struct metrics {
    /* Guards the family list while a family is appended. Render reads the
     * list without it (see metrics_render), so gauge functions and slow
     * output never hold up registration. */
    pthread_mutex_t mu;
    metric *head, *tail;
    metric *dropped;       /* ehub_metrics_dropped_series_total */
};

/* ---- names ---------------------------------------------------------- */

static int metric_name_ok(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return 0;
    }
    return 1;
}

/* Label names: like metric names without ':', and "__" is reserved for
 * Prometheus' own labels. */
static int label_name_ok(const char *s, size_t n) {
    if (n == 0 || memchr(s, ':', n)) return 0;
    if (n >= 2 && s[0] == '_' && s[1] == '_') return 0;
    return metric_name_ok(s, n);
}

/* Does family (name, kind) put `cand` on a line of the exposition? A
 * histogram also owns its _bucket, _sum and _count names. */
static int exposes(const char *name, enum kind kind, const char *cand) {
    if (strcmp(name, cand) == 0) return 1;
    if (kind != K_HISTOGRAM) return 0;
    size_t n = strlen(name);
    if (strncmp(name, cand, n) != 0) return 0;
    return strcmp(cand + n, "_bucket") == 0 || strcmp(cand + n, "_sum") == 0 ||
           strcmp(cand + n, "_count") == 0;
}

/* ---- series lookup -------------------------------------------------- */

/* FNV-1a over the values, each followed by a byte that cannot occur in
 * UTF-8 so ("ab","c") and ("a","bc") differ. */
static uint32_t hash_values(const char *const *v, const size_t *len, int n) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < len[i]; j++) {
            h ^= (unsigned char)v[i][j];
            h *= 16777619u;
        }
        h ^= 0xffu;
        h *= 16777619u;
    }
    return h;
}

/* Length of s cut to METRICS_MAX_LABEL_VALUE bytes, backing off so a
 * multi-byte UTF-8 character is never split. */
static size_t value_len(const char *s) {
    size_t n = strnlen(s, METRICS_MAX_LABEL_VALUE + 1);
    if (n <= METRICS_MAX_LABEL_VALUE) return n;
    n = METRICS_MAX_LABEL_VALUE;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

static void table_grow(metric *f) {
    if (f->nslots >= MAX_TABLE) return;
    size_t n = f->nslots * 2;
    series **t = eh_calloc(n, sizeof *t);
    if (!t) return; /* keep the old table: longer chains, still correct */
    for (series *s = f->head; s; s = s->next) {
        s->hnext = t[s->hash & (n - 1)];
        t[s->hash & (n - 1)] = s;
    }
    eh_free(f->table);
    f->table = t;
    f->nslots = n;
}

/* Finds or creates the series; caller holds f->mu. NULL when the cap is
 * reached or memory runs out. */
static series *lookup(metric *f, const char *const *v, const size_t *len, uint32_t h) {
    for (series *s = f->table[h & (f->nslots - 1)]; s; s = s->hnext) {
        if (s->hash != h) continue;
        int i = 0;
        while (i < f->nlabels && s->vlen[i] == len[i] && memcmp(s->v[i], v[i], len[i]) == 0) i++;
        if (i == f->nlabels) return s;
    }
    if (f->count >= METRICS_MAX_SERIES) return NULL;
    size_t head = sizeof(series) + (size_t)f->nbound * sizeof(uint64_t);
    size_t total = head;
    for (int i = 0; i < f->nlabels; i++) total += len[i] + 1;
    series *s = eh_calloc(1, total);
    if (!s) return NULL;
    char *p = (char *)s + head;
    for (int i = 0; i < f->nlabels; i++) {
        memcpy(p, v[i], len[i]);
        p[len[i]] = '\0';
        s->v[i] = p;
        s->vlen[i] = len[i];
        p += len[i] + 1;
    }
    s->hash = h;
    if (f->count >= (int)f->nslots) table_grow(f);
    s->hnext = f->table[h & (f->nslots - 1)];
    f->table[h & (f->nslots - 1)] = s;
    if (f->tail) f->tail->next = s;
    else f->head = s;
    f->tail = s;
    f->count++;
    return s;
}

enum op { OP_ADD, OP_SET, OP_OBSERVE };

static void update(metric *f, const char *const *values, double v, enum op op) {
    if (!f) return;
    /* Counters only go up; a NaN would poison a sum forever. */
    if (f->kind == K_COUNTER && !(v >= 0)) return;
    if (op == OP_OBSERVE && isnan(v)) return;
    const char *vals[METRICS_MAX_LABELS];
    size_t len[METRICS_MAX_LABELS];
    for (int i = 0; i < f->nlabels; i++) {
        vals[i] = values && values[i] ? values[i] : "";
        len[i] = value_len(vals[i]);
    }
    uint32_t h = hash_values(vals, len, f->nlabels);
    int bi = 0;
    if (op == OP_OBSERVE)
        while (bi < f->nbound && v > f->bound[bi]) bi++;

    pthread_mutex_lock(&f->mu);
    series *s = lookup(f, vals, len, h);
    if (s) {
        if (op == OP_ADD) s->val += v;
        else if (op == OP_SET) s->val = v;
        else {
            if (bi < f->nbound) s->b[bi]++;
            s->count++;
            s->sum += v;
        }
    }
    pthread_mutex_unlock(&f->mu);
    /* After unlocking: the dropped counter is another family with its own
     * lock, and its one series exists already, so this cannot recurse. */
    if (!s && f != f->reg->dropped) update(f->reg->dropped, NULL, 1, OP_ADD);
}

void metric_add(metric *f, const char *const *values, double v) {
    if (f && (f->kind == K_COUNTER || f->kind == K_GAUGE)) update(f, values, v, OP_ADD);
}

void metric_set(metric *f, const char *const *values, double v) {
    if (f && f->kind == K_GAUGE) update(f, values, v, OP_SET);
}

void metric_observe(metric *f, const char *const *values, double v) {
    if (f && f->kind == K_HISTOGRAM) update(f, values, v, OP_OBSERVE);
}

/* ---- registration --------------------------------------------------- */

static void family_free(metric *f) {
    if (!f) return;
    series *s = f->head;
    while (s) {
        series *n = s->next;
        eh_free(s);
        s = n;
    }
    eh_free(f->table);
    eh_free(f->name);
    eh_free(f->help);
    for (int i = 0; i < METRICS_MAX_LABELS; i++) eh_free(f->label[i]);
    eh_free(f->bound);
    pthread_mutex_destroy(&f->mu);
    eh_free(f);
}

/* Splits "a,b" into f->label; 0 on success, -1 on a bad list or OOM. */
static int parse_labels(metric *f, const char *labels) {
    if (!labels || !*labels) return 0;
    const char *p = labels;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (f->nlabels == METRICS_MAX_LABELS || !label_name_ok(p, n)) return -1;
        if (f->kind == K_HISTOGRAM && n == 2 && memcmp(p, "le", 2) == 0) return -1;
        for (int i = 0; i < f->nlabels; i++)
            if (strlen(f->label[i]) == n && memcmp(f->label[i], p, n) == 0) return -1;
        if (!(f->label[f->nlabels] = eh_strndup(p, n))) return -1;
        f->nlabels++;
        if (!e) return 0;
        p = e + 1;
    }
}

static metric *family_new(metrics *m, enum kind kind, const char *name, const char *help,
                          const char *labels, const double *bounds, int nbounds,
                          double (*fn)(void *), void *ud) {
    if (!m || !name || !metric_name_ok(name, strlen(name))) return NULL;
    if (nbounds < 0 || (nbounds > 0 && !bounds)) return NULL;
    for (int i = 0; i < nbounds; i++) {
        if (!isfinite(bounds[i])) return NULL; /* +Inf is implicit; NaN orders nothing */
        if (i > 0 && !(bounds[i] > bounds[i - 1])) return NULL;
    }
    metric *f = eh_calloc(1, sizeof *f);
    if (!f) return NULL;
    if (pthread_mutex_init(&f->mu, NULL) != 0) {
        eh_free(f);
        return NULL;
    }
    f->reg = m;
    f->kind = kind;
    f->fn = fn;
    f->ud = ud;
    f->nslots = 8;
    if (!(f->name = eh_strdup(name))) goto fail;
    if (help && !(f->help = eh_strdup(help))) goto fail;
    if (parse_labels(f, labels) != 0) goto fail;
    if (nbounds > 0) {
        if (!(f->bound = eh_malloc((size_t)nbounds * sizeof(double)))) goto fail;
        memcpy(f->bound, bounds, (size_t)nbounds * sizeof(double));
        f->nbound = nbounds;
    }
    if (!(f->table = eh_calloc(f->nslots, sizeof *f->table))) goto fail;
    /* A family without labels has exactly one series: create it now so it
     * renders as 0 from the start and updates never allocate. */
    if (kind != K_GAUGE_FN && f->nlabels == 0 && !lookup(f, NULL, NULL, hash_values(NULL, NULL, 0)))
        goto fail;

    pthread_mutex_lock(&m->mu);
    for (metric *o = m->head; o; o = o->next) {
        if (exposes(o->name, o->kind, name) || exposes(name, kind, o->name)) {
            pthread_mutex_unlock(&m->mu);
            goto fail;
        }
    }
    if (m->tail) m->tail->next = f;
    else m->head = f;
    m->tail = f;
    pthread_mutex_unlock(&m->mu);
    return f;
fail:
    family_free(f);
    return NULL;
}

metric *metrics_counter(metrics *m, const char *name, const char *help, const char *labels) {
    return family_new(m, K_COUNTER, name, help, labels, NULL, 0, NULL, NULL);
}

metric *metrics_gauge(metrics *m, const char *name, const char *help, const char *labels) {
    return family_new(m, K_GAUGE, name, help, labels, NULL, 0, NULL, NULL);
}

metric *metrics_histogram(metrics *m, const char *name, const char *help, const char *labels,
                          const double *buckets, int nbuckets) {
    return family_new(m, K_HISTOGRAM, name, help, labels, buckets, nbuckets, NULL, NULL);
}

int metrics_gauge_fn(metrics *m, const char *name, const char *help, double (*fn)(void *ud),
                     void *ud) {
    if (!fn) return -1;
    return family_new(m, K_GAUGE_FN, name, help, NULL, NULL, 0, fn, ud) ? 0 : -1;
}

metrics *metrics_new(void) {
    metrics *m = eh_calloc(1, sizeof *m);
    if (!m) return NULL;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        eh_free(m);
        return NULL;
    }
    m->dropped = metrics_counter(m, "ehub_metrics_dropped_series_total",
                                 "Metric updates dropped because a family reached its series cap "
                                 "or memory ran out.",
                                 NULL);
    if (!m->dropped) {
        metrics_free(m);
        return NULL;
    }
    return m;
}

void metrics_free(metrics *m) {
    if (!m) return;
    metric *f = m->head;
    while (f) {
        metric *n = f->next;
        family_free(f);
        f = n;
    }
    pthread_mutex_destroy(&m->mu);
    eh_free(m);
}

/* ---- rendering ------------------------------------------------------ */

/* Shortest of %.15g..%.17g that reads back as the same double, so 0.1
 * prints as "0.1" and 3 as "3". Exponent forms ("1e-05") are valid in the
 * text format. Assumes the C numeric locale, which ehub never changes. */
static void fmt_double(char *out, size_t n, double v) {
    if (isnan(v)) { snprintf(out, n, "NaN"); return; }
    if (isinf(v)) { snprintf(out, n, "%s", v > 0 ? "+Inf" : "-Inf"); return; }
    for (int p = 15; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, v);
        if (strtod(out, NULL) == v) return;
    }
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    unsigned min, cp;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* HELP text escapes backslash and newline; label values (quote = 1) also
 * the double quote. Invalid UTF-8 becomes U+FFFD because the format is
 * UTF-8 and label values may come from clients. */
static int put_escaped(buf *out, const char *s, size_t n, int quote) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    int rc;
    while (i < n) {
        const char *esc = NULL;
        size_t l = 1;
        if (u[i] == '\\') esc = "\\\\";
        else if (u[i] == '\n') esc = "\\n";
        else if (u[i] == '"' && quote) esc = "\\\"";
        else if (u[i] >= 0x80 && (l = utf8_len(u + i, n - i)) == 0) {
            esc = "\xEF\xBF\xBD";
            l = 1;
        }
        if (esc) {
            if (run && (rc = buf_append(out, s + i - run, run))) return rc;
            run = 0;
            if ((rc = buf_puts(out, esc))) return rc;
        } else {
            run += l;
        }
        i += l;
    }
    return run ? buf_append(out, s + n - run, run) : BUF_OK;
}

/* One sample line: name+suffix, the series' labels plus `le` if given,
 * then the value. s is NULL for a gauge function. */
static int put_line(buf *out, const metric *f, const series *s, const char *suffix,
                    const char *le, const char *value) {
    int rc;
    if ((rc = buf_puts(out, f->name)) || (rc = buf_puts(out, suffix))) return rc;
    int nl = s ? f->nlabels : 0;
    if (nl || le) {
        if ((rc = buf_putc(out, '{'))) return rc;
        for (int i = 0; i < nl; i++) {
            if ((i && (rc = buf_putc(out, ','))) || (rc = buf_puts(out, f->label[i])) ||
                (rc = buf_puts(out, "=\"")) || (rc = put_escaped(out, s->v[i], s->vlen[i], 1)) ||
                (rc = buf_putc(out, '"')))
                return rc;
        }
        if (le && (rc = buf_printf(out, "%sle=\"%s\"", nl ? "," : "", le))) return rc;
        if ((rc = buf_putc(out, '}'))) return rc;
    }
    return buf_printf(out, " %s\n", value);
}

static int render_family(buf *out, metric *f) {
    static const char *const type[] = {"counter", "gauge", "histogram", "gauge"};
    char num[40], le[40];
    int rc;
    if (f->help && ((rc = buf_printf(out, "# HELP %s ", f->name)) ||
                    (rc = put_escaped(out, f->help, strlen(f->help), 0)) ||
                    (rc = buf_putc(out, '\n'))))
        return rc;
    if ((rc = buf_printf(out, "# TYPE %s %s\n", f->name, type[f->kind]))) return rc;
    if (f->kind == K_GAUGE_FN) {
        fmt_double(num, sizeof num, f->fn(f->ud));
        return put_line(out, f, NULL, "", NULL, num);
    }
    uint64_t *cnt = NULL;
    if (f->nbound && !(cnt = eh_malloc((size_t)f->nbound * sizeof *cnt))) return BUF_NOMEM;
    pthread_mutex_lock(&f->mu);
    series *s = f->head;
    pthread_mutex_unlock(&f->mu);
    /* Lock per series, only to copy its numbers and next link: writers
     * wait at most one copy, never for output to be formatted. The label
     * values are immutable once linked, so they are read unlocked. */
    while (s && !rc) {
        pthread_mutex_lock(&f->mu);
        double val = s->val, sum = s->sum;
        uint64_t count = s->count;
        if (cnt) memcpy(cnt, s->b, (size_t)f->nbound * sizeof *cnt);
        series *next = s->next;
        pthread_mutex_unlock(&f->mu);

        if (f->kind != K_HISTOGRAM) {
            fmt_double(num, sizeof num, val);
            rc = put_line(out, f, s, "", NULL, num);
        } else {
            uint64_t cum = 0;
            for (int i = 0; i < f->nbound && !rc; i++) {
                cum += cnt[i];
                fmt_double(le, sizeof le, f->bound[i]);
                snprintf(num, sizeof num, "%" PRIu64, cum);
                rc = put_line(out, f, s, "_bucket", le, num);
            }
            snprintf(num, sizeof num, "%" PRIu64, count);
            if (!rc) rc = put_line(out, f, s, "_bucket", "+Inf", num);
            fmt_double(le, sizeof le, sum);
            if (!rc) rc = put_line(out, f, s, "_sum", NULL, le);
            if (!rc) rc = put_line(out, f, s, "_count", NULL, num);
        }
        s = next;
    }
    eh_free(cnt);
    return rc;
}

int metrics_render(metrics *m, buf *out) {
    if (!m) return BUF_OK;
    size_t start = out->len;
    /* Families are only ever appended, and every `next` but the tail's was
     * written under m->mu before we took it, so walking head..tail needs no
     * lock; families registered meanwhile show up in the next render. */
    pthread_mutex_lock(&m->mu);
    metric *f = m->head, *tail = m->tail;
    pthread_mutex_unlock(&m->mu);
    int rc = BUF_OK;
    for (; f && !rc; f = f == tail ? NULL : f->next) rc = render_family(out, f);
    if (rc) {
        out->len = start;
        if (out->p) out->p[start] = '\0';
    }
    return rc;
}

/* ---- process figures ------------------------------------------------ */

double metrics_process_rss_bytes(void *unused) {
    char b[256];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n <= 0) return -1;
    b[n] = '\0';
    unsigned long size, resident;
    if (sscanf(b, "%lu %lu", &size, &resident) != 2) return -1;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return -1;
    return (double)resident * (double)page;
}

/* getdents64 on a stack buffer rather than opendir: no allocation, so it
 * works (and reports) even when memory is short. */
double metrics_process_open_fds(void *unused) {
    int fd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    _Alignas(struct dirent64) char b[4096];
    long count = 0;
    for (;;) {
        ssize_t n = getdents64(fd, b, sizeof b);
        if (n < 0) {
            close(fd);
            return -1;
        }
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(b + off);
            off += d->d_reclen;
            if (d->d_name[0] == '.') continue; /* "." and ".." */
            if (strtol(d->d_name, NULL, 10) == fd) continue;
            count++;
        }
    }
    close(fd);
    return (double)count;
}
