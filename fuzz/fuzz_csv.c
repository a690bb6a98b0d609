/* libFuzzer target for base/csv.
 *
 * The first bytes of the input choose the limits, the delimiter and up to
 * eight split points; the rest is the CSV. The driver checks what must hold
 * for any input: a row has fields or an error, never both; every field is a
 * NUL-terminated copy within max_field; line numbers never go backwards; and
 * parsing in pieces gives exactly the same rows as parsing in one call. It
 * also round-trips each field through csv_write_field. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/csv.h"

typedef struct check {
    csv_limits lim;
    buf out;           /* rendering of the rows, to compare two parses */
    unsigned long last_line, last_record;
} check;

static int on_row(void *ud, const csv_row *row) {
    check *c = ud;
    if (row->line < c->last_line || row->record != c->last_record + 1) abort();
    c->last_line = row->line;
    c->last_record = row->record;
    buf_printf(&c->out, "L%lu #%lu", row->line, row->record);
    if (row->error) {
        if (row->nfields != 0 || row->error->line < row->line) abort();
        buf_printf(&c->out, " !%d@%lu\n", row->error->code, row->error->line);
        return 0;
    }
    if (row->nfields == 0 || row->nfields > c->lim.max_fields) abort();
    for (size_t i = 0; i < row->nfields; i++) {
        if (row->len[i] > c->lim.max_field || row->field[i][row->len[i]] != '\0') abort();
        buf_printf(&c->out, " [%zu:", row->len[i]);
        buf_append(&c->out, row->field[i], row->len[i]);
        buf_putc(&c->out, ']');
        /* The writer must accept anything the reader produced. */
        buf w;
        buf_init(&w, 4 * row->len[i] + 8);
        if (csv_write_field(&w, row->field[i], row->len[i], (int)(i & 1)) != BUF_OK) abort();
        buf_free(&w);
    }
    buf_putc(&c->out, '\n');
    return 0;
}

static char *parse(const csv_limits *lim, const uint8_t *d, size_t n, const size_t *cuts,
                   size_t ncuts) {
    check c;
    memset(&c, 0, sizeof c);
    csv_reader *r = csv_new(lim);
    if (!r) abort();
    c.lim = *lim;
    buf_init(&c.out, 1 << 26);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        if (csv_feed(r, (const char *)d + at, to - at, on_row, &c) != CSV_OK) abort();
        at = to;
    }
    if (csv_finish(r, on_row, &c) != CSV_OK) abort();
    csv_free(r);
    return buf_detach(&c.out, NULL);
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    static const char delims[] = {',', ';', '\t', ','};
    csv_limits lim = {
        .max_field = 1 + data[0] % 64u,
        .max_fields = 1 + data[1] % 16u,
        .max_row = 1 + (size_t)data[2] * 4u,
        .delim = delims[data[3] & 3],
    };
    size_t ncuts = (data[3] >> 2) & 7;
    data += 4, size -= 4;
    if (size < ncuts) return 0;
    size_t cuts[8];
    for (size_t i = 0; i < ncuts; i++) cuts[i] = data[i];
    data += ncuts, size -= ncuts;
    for (size_t i = 0; i < ncuts; i++) cuts[i] = size ? cuts[i] * 131u % (size + 1) : 0;
    qsort(cuts, ncuts, sizeof cuts[0], cmp_size);

    char *whole = parse(&lim, data, size, NULL, 0);
    char *split = parse(&lim, data, size, cuts, ncuts);
    if (strcmp(whole, split) != 0) abort();
    eh_free(split);
    /* one byte at a time for small inputs */
    if (size <= 256) {
        size_t each[256];
        for (size_t i = 0; i + 1 < size; i++) each[i] = i + 1;
        split = parse(&lim, data, size, each, size ? size - 1 : 0);
        if (strcmp(whole, split) != 0) abort();
        eh_free(split);
    }
    eh_free(whole);
    return 0;
}
