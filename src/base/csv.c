#include "csv.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

/* Where the reader is inside a record. Only these few states exist, and the
 * skip mode after an error runs the very same machine without storing
 * anything, so resynchronisation follows exactly the quoting rules that
 * normal parsing does. */
enum {
    ST_REC,    /* before the first byte of a record */
    ST_FSTART, /* at the start of a field inside a record */
    ST_UNQ,    /* inside an unquoted field */
    ST_QUO,    /* inside a quoted field */
    ST_QQ,     /* just read a quote inside a quoted field: "" or the closing one */
};

/* Byte classes for the fast loops: a run of class-0 bytes is copied at once. */
enum { C_DELIM = 1, C_QUOTE = 2, C_EOL = 4 };

static const unsigned char BOM[3] = {0xEF, 0xBB, 0xBF};

struct csv_reader {
    csv_limits lim;
    unsigned char cls[256]; /* per reader because the delimiter is configurable */
    int state;
    int bad;        /* the current record had an error: skip to its end */
    int stopped;    /* the callback asked to stop: terminal */
    int nomem;      /* an allocation failed mid-record: terminal */
    int pending_cr; /* the previous byte was a CR (already counted as a line) */
    int bom_done;   /* past the point where a BOM may appear */
    int bom_n;      /* BOM bytes matched so far (a BOM may straddle feeds) */
    unsigned long line, rec_line, records, nerr;
    size_t raw;     /* input bytes of the current record so far */
    size_t fstart;  /* offset in data where the current field starts */
    buf data;       /* fields of the current record, each NUL-terminated */
    size_t nf;      /* completed fields in the current record */
    size_t cap;     /* entries in off/len/ptr */
    size_t *off, *len;
    const char **ptr;
    csv_error err;  /* the last bad record */
};

/* Results of the internal steps: go on, the callback stopped us, or OOM. */
enum { GO = 0, STOP = 1, NOMEM = -1 };

int csv_limits_valid(const csv_limits *lim) {
    if (!lim) return CSV_OK;
    if (lim->delim && lim->delim != ',' && lim->delim != ';' && lim->delim != '\t')
        return CSV_EINVAL;
    /* The row buffer holds max_row + 1 bytes; keep far from overflow. */
    if (lim->max_row > SIZE_MAX / 4 || lim->max_fields > SIZE_MAX / 64) return CSV_EINVAL;
    return CSV_OK;
}

static void reset_record(csv_reader *r) {
    r->state = ST_REC;
    r->bad = 0;
    r->raw = 0;
    r->fstart = 0;
    r->nf = 0;
    buf_reset(&r->data);
}

static void reset_stream(csv_reader *r) {
    reset_record(r);
    r->pending_cr = 0;
    r->bom_done = 0;
    r->bom_n = 0;
    r->line = 1;
    r->rec_line = 1;
    r->records = 0;
    r->nerr = 0;
    memset(&r->err, 0, sizeof r->err);
}

csv_reader *csv_new(const csv_limits *lim) {
    if (csv_limits_valid(lim) != CSV_OK) return NULL;
    csv_reader *r = eh_calloc(1, sizeof *r);
    if (!r) return NULL;
    if (lim) r->lim = *lim;
    if (!r->lim.max_field) r->lim.max_field = CSV_DEFAULT_MAX_FIELD;
    if (!r->lim.max_fields) r->lim.max_fields = CSV_DEFAULT_MAX_FIELDS;
    if (!r->lim.max_row) r->lim.max_row = CSV_DEFAULT_MAX_ROW;
    if (!r->lim.delim) r->lim.delim = ',';
    r->cls[(unsigned char)r->lim.delim] = C_DELIM;
    r->cls['"'] = C_QUOTE;
    r->cls['\r'] = C_EOL;
    r->cls['\n'] = C_EOL;
    /* Every stored record is at most its input size plus one NUL (each
     * delimiter becomes a NUL, quotes vanish), so max_row + 1 bounds it. */
    buf_init(&r->data, r->lim.max_row + 1);
    reset_stream(r);
    return r;
}

void csv_free(csv_reader *r) {
    if (!r) return;
    buf_free(&r->data);
    eh_free(r->off);
    eh_free(r->len);
    eh_free(r->ptr);
    eh_free(r);
}

const csv_error *csv_last_error(const csv_reader *r) { return &r->err; }
unsigned long csv_error_count(const csv_reader *r) { return r->nerr; }
unsigned long csv_line(const csv_reader *r) { return r->line; }

/* Reports the current record as bad and switches to skip mode. */
static int fail(csv_reader *r, int code, csv_row_fn fn, void *ud) {
    r->bad = 1;
    r->err.code = code;
    r->err.line = r->line;
    r->err.record_line = r->rec_line;
    r->nerr++;
    r->records++;
    buf_reset(&r->data);
    csv_row row = {0, NULL, NULL, r->rec_line, r->records, &r->err};
    if (fn(ud, &row)) {
        r->stopped = 1;
        return STOP;
    }
    return GO;
}

/* Counts n input bytes of the record that are not field content (quotes,
 * delimiters) against max_row. */
static int count(csv_reader *r, size_t n, csv_row_fn fn, void *ud) {
    if (r->bad) return GO;
    r->raw += n;
    if (r->raw > r->lim.max_row) return fail(r, CSV_EROW_TOO_BIG, fn, ud);
    return GO;
}

/* Appends n bytes of field content. */
static int take(csv_reader *r, const char *p, size_t n, csv_row_fn fn, void *ud) {
    if (r->bad) return GO;
    /* Outside skip mode raw <= max_row and the field <= max_field. Report
     * whichever limit this run crosses first, byte by byte, so the error does
     * not depend on how the input was split into chunks. */
    size_t row_room = r->lim.max_row - r->raw;
    size_t field_room = r->lim.max_field - (r->data.len - r->fstart);
    if (n > row_room || n > field_room)
        return fail(r, row_room <= field_room ? CSV_EROW_TOO_BIG : CSV_EFIELD_TOO_BIG, fn, ud);
    r->raw += n;
    int rc = buf_append(&r->data, p, n);
    if (rc == BUF_NOMEM) return NOMEM;
    if (rc) return fail(r, CSV_EROW_TOO_BIG, fn, ud); /* cannot happen: see csv_new */
    return GO;
}

static int end_field(csv_reader *r, csv_row_fn fn, void *ud) {
    if (r->bad) return GO;
    if (r->nf >= r->cap) {
        /* Grow the three arrays together; capped by max_fields. */
        size_t cap = r->cap ? r->cap * 2 : 16;
        if (cap > r->lim.max_fields) cap = r->lim.max_fields;
        size_t *off = eh_realloc(r->off, cap * sizeof *off);
        if (!off) return NOMEM;
        r->off = off;
        size_t *len = eh_realloc(r->len, cap * sizeof *len);
        if (!len) return NOMEM;
        r->len = len;
        const char **ptr = eh_realloc(r->ptr, cap * sizeof *ptr);
        if (!ptr) return NOMEM;
        r->ptr = ptr;
        r->cap = cap;
    }
    size_t n = r->data.len - r->fstart;
    int rc = buf_putc(&r->data, '\0');
    if (rc == BUF_NOMEM) return NOMEM;
    if (rc) return fail(r, CSV_EROW_TOO_BIG, fn, ud);
    r->off[r->nf] = r->fstart;
    r->len[r->nf] = n;
    r->nf++;
    r->fstart = r->data.len;
    return GO;
}

/* A delimiter outside quotes: the field ends and another begins. */
static int next_field(csv_reader *r, csv_row_fn fn, void *ud) {
    int rc = count(r, 1, fn, ud);
    if (rc) return rc;
    if ((rc = end_field(r, fn, ud))) return rc;
    if (!r->bad && r->nf >= r->lim.max_fields) return fail(r, CSV_ETOO_MANY_FIELDS, fn, ud);
    return GO;
}

static int emit(csv_reader *r, csv_row_fn fn, void *ud) {
    for (size_t i = 0; i < r->nf; i++) r->ptr[i] = r->data.p + r->off[i];
    r->records++;
    csv_row row = {r->nf, r->ptr, r->len, r->rec_line, r->records, NULL};
    if (fn(ud, &row)) {
        r->stopped = 1;
        return STOP;
    }
    return GO;
}

/* A line ending outside quotes (c is '\r' or '\n'). */
static int end_record(csv_reader *r, char c, csv_row_fn fn, void *ud) {
    int rc = GO;
    if (!r->bad) {
        rc = end_field(r, fn, ud);
        if (rc == GO && !r->bad) rc = emit(r, fn, ud);
    }
    reset_record(r);
    r->line++;
    r->pending_cr = (c == '\r');
    return rc;
}

static int parse(csv_reader *r, const char *d, size_t n, csv_row_fn fn, void *ud) {
    const unsigned char *cls = r->cls;
    const char delim = r->lim.delim;
    size_t i = 0;
    int rc;
#define STEP(call)                     \
    do {                               \
        if ((rc = (call)) != GO) return rc; \
    } while (0)
    while (i < n) {
        char c = d[i];
        if (r->pending_cr) {
            r->pending_cr = 0;
            if (c == '\n') {
                /* The LF of a CRLF: the line was counted at the CR. */
                if (r->state == ST_QUO) STEP(take(r, d + i, 1, fn, ud));
                i++;
                continue;
            }
        }
        switch (r->state) {
        case ST_REC:
            if (c == '\r' || c == '\n') { /* an empty line */
                r->line++;
                r->pending_cr = (c == '\r');
                i++;
                continue;
            }
            r->rec_line = r->line;
            r->state = ST_FSTART;
            /* fall through */
        case ST_FSTART:
            if (c == '"') {
                r->state = ST_QUO;
                i++;
                STEP(count(r, 1, fn, ud));
                continue;
            }
            r->state = ST_UNQ;
            /* fall through */
        case ST_UNQ: {
            size_t j = i;
            while (j < n && !cls[(unsigned char)d[j]]) j++;
            if (j > i) {
                size_t k = i;
                i = j;
                STEP(take(r, d + k, j - k, fn, ud));
                continue;
            }
            i++;
            if (c == delim) {
                r->state = ST_FSTART;
                STEP(next_field(r, fn, ud));
            } else if (c == '\r' || c == '\n') {
                STEP(end_record(r, c, fn, ud));
            } else { /* a quote inside an unquoted field */
                STEP(count(r, 1, fn, ud));
                if (!r->bad) STEP(fail(r, CSV_EQUOTE, fn, ud));
            }
            continue;
        }
        case ST_QUO: {
            size_t j = i;
            while (j < n && !(cls[(unsigned char)d[j]] & (C_QUOTE | C_EOL))) j++;
            if (j > i) {
                size_t k = i;
                i = j;
                STEP(take(r, d + k, j - k, fn, ud));
                continue;
            }
            i++;
            if (c == '"') {
                r->state = ST_QQ;
                STEP(count(r, 1, fn, ud));
            } else { /* a line ending inside quotes is data */
                r->line++;
                r->pending_cr = (c == '\r');
                STEP(take(r, &c, 1, fn, ud));
            }
            continue;
        }
        case ST_QQ:
            if (c == '"') { /* "" stands for one quote */
                r->state = ST_QUO;
                i++;
                STEP(take(r, &c, 1, fn, ud));
            } else if (c == delim) {
                r->state = ST_FSTART;
                i++;
                STEP(next_field(r, fn, ud));
            } else if (c == '\r' || c == '\n') {
                i++;
                STEP(end_record(r, c, fn, ud));
            } else {
                /* Text after the closing quote. In skip mode the rest of the
                 * field is treated as unquoted text, without consuming c. */
                r->state = ST_UNQ;
                if (!r->bad) STEP(fail(r, CSV_EAFTER_QUOTE, fn, ud));
            }
            continue;
        }
    }
#undef STEP
    return GO;
}

static int result(csv_reader *r, int rc) {
    if (rc == NOMEM) {
        r->nomem = 1;
        return CSV_ENOMEM;
    }
    return rc == STOP ? CSV_STOPPED : CSV_OK;
}

int csv_feed(csv_reader *r, const char *data, size_t len, csv_row_fn fn, void *ud) {
    if (!r || !fn || (!data && len)) return CSV_EINVAL;
    if (r->stopped) return CSV_STOPPED;
    if (r->nomem) return CSV_ENOMEM;
    if (!r->bom_done) {
        while (len && r->bom_n < 3 && (unsigned char)*data == BOM[r->bom_n]) {
            r->bom_n++;
            data++;
            len--;
        }
        if (r->bom_n == 3) {
            r->bom_done = 1;
        } else if (len) {
            /* Not a BOM after all: the bytes held back are data. */
            r->bom_done = 1;
            int rc = parse(r, (const char *)BOM, (size_t)r->bom_n, fn, ud);
            if (rc) return result(r, rc);
        } else {
            return CSV_OK; /* the BOM might still complete */
        }
    }
    return result(r, parse(r, data, len, fn, ud));
}

int csv_finish(csv_reader *r, csv_row_fn fn, void *ud) {
    if (!r || !fn) return CSV_EINVAL;
    if (r->stopped) return CSV_STOPPED;
    if (r->nomem) return CSV_ENOMEM;
    int rc = GO;
    if (!r->bom_done && r->bom_n) rc = parse(r, (const char *)BOM, (size_t)r->bom_n, fn, ud);
    if (rc == GO && !r->bad) {
        switch (r->state) {
        case ST_REC:
            break;
        case ST_QUO:
            rc = fail(r, CSV_EUNTERMINATED, fn, ud);
            break;
        default: /* FSTART (after a delimiter), UNQ, QQ: a complete last record */
            rc = end_field(r, fn, ud);
            if (rc == GO && !r->bad) rc = emit(r, fn, ud);
            break;
        }
    }
    if (rc != GO) return result(r, rc);
    reset_stream(r);
    return CSV_OK;
}

int csv_read_file(const char *path, const csv_limits *lim, csv_row_fn fn, void *ud,
                  csv_error *err) {
    enum { CHUNK = 64 * 1024 };
    int rc = CSV_OK, saved_errno = 0;
    unsigned long line = 0;
    csv_reader *r = NULL;
    char *chunk = NULL;
    FILE *f = NULL;
    if (err) memset(err, 0, sizeof *err);
    if (!path || !fn || csv_limits_valid(lim) != CSV_OK) {
        rc = CSV_EINVAL;
        goto out;
    }
    if (!(r = csv_new(lim)) || !(chunk = eh_malloc(CHUNK))) {
        rc = CSV_ENOMEM;
        goto out;
    }
    if (!(f = fopen(path, "rb"))) {
        saved_errno = errno;
        rc = CSV_EIO;
        goto out;
    }
    size_t n;
    while (rc == CSV_OK && (n = fread(chunk, 1, CHUNK, f)) > 0) rc = csv_feed(r, chunk, n, fn, ud);
    if (rc == CSV_OK && ferror(f)) {
        saved_errno = errno ? errno : EIO;
        rc = CSV_EIO;
    }
    line = r->line;
    if (rc == CSV_OK) rc = csv_finish(r, fn, ud);
out:
    if (err) {
        if (r && r->nerr) {
            *err = r->err;
        } else {
            err->code = rc;
            err->line = line;
        }
    }
    if (f) fclose(f);
    eh_free(chunk);
    csv_free(r);
    if (saved_errno) errno = saved_errno;
    return rc;
}

const char *csv_strerror(int code) {
    switch (code) {
    case CSV_OK: return "ok";
    case CSV_STOPPED: return "stopped by the caller";
    case CSV_ENOMEM: return "out of memory";
    case CSV_EINVAL: return "invalid argument or limits";
    case CSV_EIO: return "cannot read the file";
    case CSV_EFIELD_TOO_BIG: return "field too long";
    case CSV_ETOO_MANY_FIELDS: return "too many fields in the record";
    case CSV_EROW_TOO_BIG: return "record too long";
    case CSV_EQUOTE: return "quote inside an unquoted field";
    case CSV_EAFTER_QUOTE: return "text after a closing quote";
    case CSV_EUNTERMINATED: return "quoted field not closed before end of input";
    default: return "unknown error";
    }
}

/* A plain decimal number: [+-]digits[.digits][e[+-]digits], with at least
 * one digit before or after the point. Strict on purpose: anything looser
 * (e.g. "-1+1") could still be a formula. */
static int is_number(const char *s, size_t n) {
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
    }
    if (!digits) return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t e = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++, e++;
        if (!e) return 0;
    }
    return i == n;
}

int csv_write_field(buf *out, const char *s, size_t n, int flags) {
    if (!s) n = 0;
    int prefix = n > 0 && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' ||
                           s[0] == '\t' || s[0] == '\r') &&
                 !((flags & CSV_WRITE_NUMBER) && is_number(s, n));
    size_t quotes = 0;
    int quote = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"') quotes++;
        if (c == '"' || c == '\r' || c == '\n' || c == ',' || c == ';' || c == '\t') quote = 1;
    }
    size_t total = n + (size_t)prefix + (quote ? 2 + quotes : 0);
    if (total > out->max - out->len) return BUF_TOO_BIG;
    size_t saved = out->len;
    int rc = BUF_OK;
    if (quote) rc = buf_putc(out, '"');
    if (!rc && prefix) rc = buf_putc(out, '\'');
    if (!rc && !quote) {
        rc = buf_append(out, s, n);
    } else if (!rc) {
        size_t start = 0;
        for (size_t i = 0; i < n && !rc; i++) {
            if (s[i] != '"') continue;
            /* Copy through the quote, then write it once more to escape it. */
            rc = buf_append(out, s + start, i + 1 - start);
            if (!rc) rc = buf_putc(out, '"');
            start = i + 1;
        }
        if (!rc) rc = buf_append(out, s + start, n - start);
        if (!rc) rc = buf_putc(out, '"');
    }
    if (rc) {
        out->len = saved;
        if (out->p) out->p[saved] = '\0';
    }
    return rc;
}
