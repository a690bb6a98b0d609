/* base/csv: the streaming reader (quoting, line endings, BOM, every chunk
 * split, limits, malformed records with their line numbers and
 * resynchronisation, stopping, allocation failures, the bank_marketing file
 * with its timing) and the field writer (quoting, formula injection). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/csv.h"

/* ---- helpers: every row is rendered into text so whole parses compare ---- */

typedef struct sink {
    buf out;
    int stop_at;        /* stop after this many rows (0 = never) */
    int stop_on_error;
    int rows;
} sink;

static void sink_init(sink *s) {
    memset(s, 0, sizeof *s);
    buf_init(&s->out, 1 << 24);
}

/* "L<line> #<record> [<len>:<bytes>]...\n" or "L<line> #<record> !<code>@<line>\n" */
static int on_row(void *ud, const csv_row *row) {
    sink *s = ud;
    s->rows++;
    buf_printf(&s->out, "L%lu #%lu", row->line, row->record);
    if (row->error) {
        assert_int_equal(row->nfields, 0);
        assert_int_equal(row->error->record_line, row->line);
        buf_printf(&s->out, " !%d@%lu\n", row->error->code, row->error->line);
        if (s->stop_on_error) return 1;
    } else {
        assert_true(row->nfields >= 1);
        for (size_t i = 0; i < row->nfields; i++) {
            assert_int_equal(row->field[i][row->len[i]], '\0'); /* NUL-terminated copies */
            buf_printf(&s->out, " [%zu:", row->len[i]);
            buf_append(&s->out, row->field[i], row->len[i]);
            buf_putc(&s->out, ']');
        }
        buf_putc(&s->out, '\n');
    }
    return s->stop_at && s->rows >= s->stop_at;
}

/* Parses in one piece and returns the rendering (caller frees). */
static char *parse_all(const char *in, size_t n, const csv_limits *lim) {
    csv_reader *r = csv_new(lim);
    assert_non_null(r);
    sink s;
    sink_init(&s);
    assert_int_equal(csv_feed(r, in, n, on_row, &s), CSV_OK);
    assert_int_equal(csv_finish(r, on_row, &s), CSV_OK);
    csv_free(r);
    return buf_detach(&s.out, NULL);
}

static char *parse_split(const char *in, size_t n, const csv_limits *lim, const size_t *cuts,
                         size_t ncuts) {
    csv_reader *r = csv_new(lim);
    assert_non_null(r);
    sink s;
    sink_init(&s);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        assert_int_equal(csv_feed(r, in + at, to - at, on_row, &s), CSV_OK);
        at = to;
    }
    assert_int_equal(csv_finish(r, on_row, &s), CSV_OK);
    csv_free(r);
    return buf_detach(&s.out, NULL);
}

static void expect(const char *in, const char *want) {
    char *got = parse_all(in, strlen(in), NULL);
    assert_string_equal(got, want);
    eh_free(got);
}

static void expect_lim(const char *in, const csv_limits *lim, const char *want) {
    char *got = parse_all(in, strlen(in), lim);
    assert_string_equal(got, want);
    eh_free(got);
}

/* ---- reading ---- */

static void test_basic(void **st) {
    expect("a,b,c\n1,2,3\n", "L1 #1 [1:a] [1:b] [1:c]\nL2 #2 [1:1] [1:2] [1:3]\n");
    expect("a,b,c\n1,2,3", "L1 #1 [1:a] [1:b] [1:c]\nL2 #2 [1:1] [1:2] [1:3]\n"); /* no final EOL */
    expect("", "");
    expect("x", "L1 #1 [1:x]\n");
    expect(",,\n", "L1 #1 [0:] [0:] [0:]\n");
    expect("a,\n", "L1 #1 [1:a] [0:]\n");
    expect("a,", "L1 #1 [1:a] [0:]\n");
    expect(" a , b \n", "L1 #1 [3: a ] [3: b ]\n"); /* spaces are data */
}

static void test_quoting(void **st) {
    expect("\"a,b\",\"c\"\"d\",e\n", "L1 #1 [3:a,b] [3:c\"d] [1:e]\n");
    expect("\"\"\n", "L1 #1 [0:]\n");
    expect("\"\",\"\"\n", "L1 #1 [0:] [0:]\n");
    expect("\"\"\"\"\n", "L1 #1 [1:\"]\n");
    expect("\"x\ny\",z\nnext\n", "L1 #1 [3:x\ny] [1:z]\nL3 #2 [4:next]\n");
    expect("\"x\r\ny\",z\r\nnext\r\n", "L1 #1 [4:x\r\ny] [1:z]\nL3 #2 [4:next]\n");
    expect("\"a\n\n\nb\"\nc\n", "L1 #1 [5:a\n\n\nb]\nL5 #2 [1:c]\n");
    expect("\"quoted at EOF\"", "L1 #1 [13:quoted at EOF]\n");
    expect("a,\"\"", "L1 #1 [1:a] [0:]\n");
    /* a field with NUL bytes: len is authoritative */
    char *got = parse_all("a\0b,c\n", 6, NULL);
    assert_string_equal(got, "L1 #1 [3:a");
    assert_memory_equal(got, "L1 #1 [3:a\0b] [1:c]\n", 20);
    eh_free(got);
}

static void test_line_endings(void **st) {
    expect("a\r\nb\r\n", "L1 #1 [1:a]\nL2 #2 [1:b]\n");
    expect("a\rb\rc", "L1 #1 [1:a]\nL2 #2 [1:b]\nL3 #3 [1:c]\n");
    expect("a\nb\r\nc\rd\n", "L1 #1 [1:a]\nL2 #2 [1:b]\nL3 #3 [1:c]\nL4 #4 [1:d]\n");
    /* empty lines are skipped but counted */
    expect("\n\na\n\r\n\r\rb\n\n", "L3 #1 [1:a]\nL7 #2 [1:b]\n");
    expect("\r\n", "");
    expect("\n\n\n", "");
    /* \n\r is LF then a lone CR: two line endings */
    expect("a\n\rb\n", "L1 #1 [1:a]\nL3 #2 [1:b]\n");
}

static void test_bom(void **st) {
    expect("\xEF\xBB\xBF" "a,b\n", "L1 #1 [1:a] [1:b]\n");
    expect("\xEF\xBB\xBF", "");
    expect("\xEF\xBB\xBF\"q\"\n", "L1 #1 [1:q]\n");
    /* only at the very start */
    expect("a\n\xEF\xBB\xBF" "b\n", "L1 #1 [1:a]\nL2 #2 [4:\xEF\xBB\xBF" "b]\n");
    /* a partial BOM is data */
    expect("\xEF\xBBx\n", "L1 #1 [3:\xEF\xBBx]\n");
    expect("\xEF\xBB", "L1 #1 [2:\xEF\xBB]\n");
    expect("\xEF", "L1 #1 [1:\xEF]\n");
    /* two BOMs: the second is data */
    expect("\xEF\xBB\xBF\xEF\xBB\xBF", "L1 #1 [3:\xEF\xBB\xBF]\n");
}

static void test_delimiters(void **st) {
    csv_limits semi = {.delim = ';'}, tab = {.delim = '\t'};
    expect_lim("a;b,c;\"d;e\"\n", &semi, "L1 #1 [1:a] [3:b,c] [3:d;e]\n");
    expect_lim("a\tb c\t\"d\te\"\n", &tab, "L1 #1 [1:a] [3:b c] [3:d\te]\n");
    csv_limits bad = {.delim = '|'};
    assert_null(csv_new(&bad));
    assert_int_equal(csv_limits_valid(&bad), CSV_EINVAL);
    bad.delim = '"';
    assert_null(csv_new(&bad));
    bad.delim = '\n';
    assert_null(csv_new(&bad));
    assert_int_equal(csv_limits_valid(NULL), CSV_OK);
}

/* Malformed records: one error row each, at the right lines, and parsing
 * resumes at the next line ending outside quotes. */
static void test_malformed(void **st) {
    const char *in =
        "a,b\n"          /* 1 ok */
        "c\"d,e\n"       /* 2 quote inside an unquoted field */
        "\"f\"g,h\n"     /* 3 text after the closing quote */
        "i,j\n"          /* 4 ok */
        "\"k\nl\",m\n"   /* 5-6 ok */
        "x\"y,\"p\nq\",r\n" /* 7-8: error at 7, the quoted field after it spans to 8 */
        "s\n"            /* 9 ok */
        "n,\"o\n"        /* 10: unterminated, reported at EOF */
        "p\n";
    char want[512];
    snprintf(want, sizeof want,
             "L1 #1 [1:a] [1:b]\n"
             "L2 #2 !%d@2\n"
             "L3 #3 !%d@3\n"
             "L4 #4 [1:i] [1:j]\n"
             "L5 #5 [3:k\nl] [1:m]\n"
             "L7 #6 !%d@7\n"
             "L9 #7 [1:s]\n"
             "L10 #8 !%d@12\n",
             CSV_EQUOTE, CSV_EAFTER_QUOTE, CSV_EQUOTE, CSV_EUNTERMINATED);
    expect(in, want);

    /* error accessors */
    csv_reader *r = csv_new(NULL);
    sink s;
    sink_init(&s);
    assert_int_equal(csv_last_error(r)->code, 0);
    assert_int_equal(csv_feed(r, in, strlen(in), on_row, &s), CSV_OK);
    assert_int_equal(csv_error_count(r), 3);
    assert_int_equal(csv_last_error(r)->code, CSV_EQUOTE);
    assert_int_equal(csv_last_error(r)->line, 7);
    assert_int_equal(csv_line(r), 12);
    assert_int_equal(csv_finish(r, on_row, &s), CSV_OK);
    /* finish resets the reader for another stream */
    assert_int_equal(csv_error_count(r), 0);
    assert_int_equal(csv_line(r), 1);
    assert_int_equal(csv_feed(r, "\xEF\xBB\xBFz\n", 5, on_row, &s), CSV_OK);
    assert_non_null(strstr(s.out.p, "L1 #1 [1:z]\n"));
    csv_free(r);
    buf_free(&s.out);

    /* an error row in the middle of a CRLF file, and a stray quote on the last line */
    snprintf(want, sizeof want, "L1 #1 [1:a]\nL2 #2 !%d@2\nL3 #3 [1:c]\nL4 #4 !%d@4\n", CSV_EAFTER_QUOTE,
             CSV_EQUOTE);
    expect("a\r\n\"b\" ,x\r\nc\r\nd\"", want);
    /* unterminated quote on the last line without a newline */
    snprintf(want, sizeof want, "L1 #1 [1:a]\nL2 #2 !%d@2\n", CSV_EUNTERMINATED);
    expect("a\n\"bc", want);
    /* a quote in the middle of a quoted field that is followed by text */
    snprintf(want, sizeof want, "L1 #1 !%d@1\nL2 #2 [2:ok]\n", CSV_EAFTER_QUOTE);
    expect("\"say \"hi\"\"\nok\n", want);
}

static void test_limits(void **st) {
    char want[256];
    csv_limits lim = {.max_field = 4, .max_fields = 3, .max_row = 12};
    /* max_field: 4 bytes fine, 5 not; quotes and "" count as content only once */
    snprintf(want, sizeof want,
             "L1 #1 [4:abcd]\nL2 #2 !%d@2\nL3 #3 [4:a\"\"b]\nL4 #4 !%d@5\nL6 #5 [1:z]\n",
             CSV_EFIELD_TOO_BIG, CSV_EFIELD_TOO_BIG);
    expect_lim("abcd\nabcde\n\"a\"\"\"\"b\"\n\"ab\ncde\"\nz\n", &lim, want);
    /* max_fields: 3 fine, 4 not (an empty 4th field counts) */
    snprintf(want, sizeof want, "L1 #1 [1:a] [1:b] [1:c]\nL2 #2 !%d@2\nL3 #3 !%d@3\nL4 #4 [1:e]\n",
             CSV_ETOO_MANY_FIELDS, CSV_ETOO_MANY_FIELDS);
    expect_lim("a,b,c\na,b,c,d\n,,,\ne\n", &lim, want);
    /* max_row counts input bytes (quotes and delimiters too), not the line ending */
    snprintf(want, sizeof want, "L1 #1 [4:abcd] [4:efgh] [2:ij]\nL2 #2 !%d@2\nL3 #3 !%d@3\nL4 #4 [1:k]\n",
             CSV_EROW_TOO_BIG, CSV_EROW_TOO_BIG);
    expect_lim("abcd,efgh,ij\r\nabcd,efgh,ijk\r\n\"ab\",\"cd\",\"e\"\r\nk", &lim, want);
    /* a run crossing both limits reports the one its bytes cross first */
    csv_limits both = {.max_field = 5, .max_row = 8};
    snprintf(want, sizeof want, "L1 #1 !%d@1\nL2 #2 !%d@2\n", CSV_EFIELD_TOO_BIG, CSV_EROW_TOO_BIG);
    expect_lim("abcdefghij\nabcd,efgh,ij\n", &both, want);
    /* a huge quoted field is reported once, then skipped to its closing quote */
    csv_limits lim2 = {.max_field = 10};
    buf in;
    buf_init(&in, 1 << 20);
    buf_puts(&in, "a\n\"");
    for (int i = 0; i < 1000; i++) buf_puts(&in, "xx,\"\"\n");
    buf_puts(&in, "\",tail\nb\n");
    snprintf(want, sizeof want, "L1 #1 [1:a]\nL2 #2 !%d@4\nL1003 #3 [1:b]\n", CSV_EFIELD_TOO_BIG);
    char *got = parse_all(in.p, in.len, &lim2);
    assert_string_equal(got, want);
    eh_free(got);
    buf_free(&in);
    /* defaults: a 64 KiB field passes, one more byte does not */
    buf_init(&in, 1 << 20);
    for (int i = 0; i < 65536; i++) buf_putc(&in, 'y');
    buf_puts(&in, "\n");
    for (int i = 0; i < 65537; i++) buf_putc(&in, 'y');
    buf_puts(&in, "\nend\n");
    csv_reader *r = csv_new(NULL);
    sink s;
    sink_init(&s);
    assert_int_equal(csv_feed(r, in.p, in.len, on_row, &s), CSV_OK);
    assert_int_equal(csv_finish(r, on_row, &s), CSV_OK);
    snprintf(want, sizeof want, "L2 #2 !%d@2\nL3 #3 [3:end]\n", CSV_EFIELD_TOO_BIG);
    assert_non_null(strstr(s.out.p, want));
    assert_non_null(strstr(s.out.p, "L1 #1 [65536:yyy"));
    csv_free(r);
    buf_free(&s.out);
    buf_free(&in);
}

/* An input exercising every feature and error: any split must give the
 * same rows as one-shot parsing. */
static const char TRICKY[] =
    "\xEF\xBB\xBF" "id,name,note\r\n"
    "1,\"Doe, Jane\",\"said \"\"hi\"\"\"\r\n"
    "\r\n"
    "2,\"multi\r\nline\",x\n"
    "3,bad\"quote,y\r"
    "4,\"after\"quote,z\n"
    "5,,\"\"\n"
    "6,\"toolongfield_toolongfield\",w\r\n"
    "7,a,b,c,d,e\n"
    "8,\"\r\",\"\n\"\r"
    "9,last,\"unterminated\r\n";

static void test_chunk_boundaries(void **st) {
    csv_limits lim = {.max_field = 20, .max_fields = 4};
    size_t n = sizeof TRICKY - 1;
    char *ref = parse_all(TRICKY, n, &lim);
    /* sanity: the reference has every kind of row */
    assert_non_null(strstr(ref, "L1 #1 [2:id] [4:name] [4:note]\n"));
    assert_non_null(strstr(ref, "[9:Doe, Jane] [9:said \"hi\"]"));
    assert_non_null(strstr(ref, "L4 #3 [1:2] [11:multi\r\nline] [1:x]\n"));
    char e[64];
    snprintf(e, sizeof e, "L6 #4 !%d@6\n", CSV_EQUOTE);
    assert_non_null(strstr(ref, e));
    snprintf(e, sizeof e, "L7 #5 !%d@7\n", CSV_EAFTER_QUOTE);
    assert_non_null(strstr(ref, e));
    snprintf(e, sizeof e, "L9 #7 !%d@9\n", CSV_EFIELD_TOO_BIG);
    assert_non_null(strstr(ref, e));
    snprintf(e, sizeof e, "L10 #8 !%d@10\n", CSV_ETOO_MANY_FIELDS);
    assert_non_null(strstr(ref, e));
    assert_non_null(strstr(ref, "L11 #9 [1:8] [1:\r] [1:\n]\n"));
    snprintf(e, sizeof e, "L14 #10 !%d@15\n", CSV_EUNTERMINATED);
    assert_non_null(strstr(ref, e));

    /* one byte at a time */
    size_t cuts[sizeof TRICKY];
    for (size_t i = 0; i + 1 < n; i++) cuts[i] = i + 1;
    char *got = parse_split(TRICKY, n, &lim, cuts, n - 1);
    assert_string_equal(got, ref);
    eh_free(got);
    /* every single split point, and every pair */
    for (size_t a = 0; a <= n; a++) {
        got = parse_split(TRICKY, n, &lim, &a, 1);
        assert_string_equal(got, ref);
        eh_free(got);
        for (size_t b = a; b <= n; b += 7) {
            size_t two[2] = {a, b};
            got = parse_split(TRICKY, n, &lim, two, 2);
            assert_string_equal(got, ref);
            eh_free(got);
        }
    }
    /* Other limits, so runs cross the row and field limits in different
     * orders (the fuzzer found a run reporting the row limit where bytewise
     * feeding hit the field limit first). */
    static const csv_limits others[] = {{9, 4, 20, 0}, {30, 16, 12, 0}, {12, 3, 12, 0}, {1, 1, 1, 0}};
    for (size_t li = 0; li < sizeof others / sizeof others[0]; li++) {
        char *r2 = parse_all(TRICKY, n, &others[li]);
        got = parse_split(TRICKY, n, &others[li], cuts, n - 1);
        assert_string_equal(got, r2);
        eh_free(got);
        for (size_t a = 0; a <= n; a++) {
            got = parse_split(TRICKY, n, &others[li], &a, 1);
            assert_string_equal(got, r2);
            eh_free(got);
        }
        eh_free(r2);
    }
    /* random splits, empty chunks included */
    srand(12345);
    for (int round = 0; round < 2000; round++) {
        size_t k = (size_t)rand() % 20, c[20];
        for (size_t i = 0; i < k; i++) c[i] = (size_t)rand() % (n + 1);
        for (size_t i = 1; i < k; i++) /* insertion sort */
            for (size_t j = i; j > 0 && c[j - 1] > c[j]; j--) {
                size_t t = c[j];
                c[j] = c[j - 1];
                c[j - 1] = t;
            }
        got = parse_split(TRICKY, n, &lim, c, k);
        assert_string_equal(got, ref);
        eh_free(got);
    }
    eh_free(ref);
}

static void test_stop(void **st) {
    const char *in = "a\nb\nc\nd\n";
    csv_reader *r = csv_new(NULL);
    sink s;
    sink_init(&s);
    s.stop_at = 2;
    assert_int_equal(csv_feed(r, in, strlen(in), on_row, &s), CSV_STOPPED);
    assert_int_equal(s.rows, 2);
    assert_int_equal(csv_feed(r, in, strlen(in), on_row, &s), CSV_STOPPED);
    assert_int_equal(csv_finish(r, on_row, &s), CSV_STOPPED);
    assert_int_equal(s.rows, 2);
    csv_free(r);
    buf_free(&s.out);

    /* stop at the first bad record; finish's last record can stop too */
    r = csv_new(NULL);
    sink_init(&s);
    s.stop_on_error = 1;
    in = "a\nb\"\nc\n";
    assert_int_equal(csv_feed(r, in, strlen(in), on_row, &s), CSV_STOPPED);
    assert_int_equal(s.rows, 2);
    assert_int_equal(csv_last_error(r)->code, CSV_EQUOTE);
    assert_int_equal(csv_last_error(r)->line, 2);
    csv_free(r);
    buf_free(&s.out);

    r = csv_new(NULL);
    sink_init(&s);
    s.stop_at = 1;
    assert_int_equal(csv_feed(r, "x", 1, on_row, &s), CSV_OK);
    assert_int_equal(csv_finish(r, on_row, &s), CSV_STOPPED);
    csv_free(r);
    buf_free(&s.out);

    /* bad arguments fail at once and never call back */
    r = csv_new(NULL);
    sink_init(&s);
    assert_int_equal(csv_feed(r, NULL, 3, on_row, &s), CSV_EINVAL);
    assert_int_equal(csv_feed(r, "a", 1, NULL, &s), CSV_EINVAL);
    assert_int_equal(csv_feed(r, NULL, 0, on_row, &s), CSV_OK);
    assert_int_equal(s.rows, 0);
    csv_free(r);
    csv_free(NULL);
    buf_free(&s.out);
}

static void test_strerror(void **st) {
    int codes[] = {CSV_OK, CSV_STOPPED, CSV_ENOMEM, CSV_EINVAL, CSV_EIO, CSV_EFIELD_TOO_BIG,
                   CSV_ETOO_MANY_FIELDS, CSV_EROW_TOO_BIG, CSV_EQUOTE, CSV_EAFTER_QUOTE,
                   CSV_EUNTERMINATED};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_string_not_equal(csv_strerror(codes[i]), "unknown error");
    assert_string_equal(csv_strerror(12345), "unknown error");
}

/* Every allocation in turn fails: feed/finish return CSV_ENOMEM (or csv_new
 * NULL) and nothing crashes or leaks; with enough allocations the result is
 * the normal one. */
static void test_alloc_failure(void **st) {
    csv_limits lim = {.max_field = 20, .max_fields = 4};
    size_t n = sizeof TRICKY - 1;
    char *ref = parse_all(TRICKY, n, &lim);
    int succeeded = 0;
    for (long k = 0; k < 200 && !succeeded; k++) {
        sink s;
        sink_init(&s);
        /* give the sink's own buffer its memory before failures start */
        buf_printf(&s.out, "%*s", 4096, "");
        buf_reset(&s.out);
        eh_alloc_fail_after(k);
        csv_reader *r = csv_new(&lim);
        int rc = CSV_ENOMEM;
        if (r) {
            /* in uneven chunks so growth happens mid-record */
            size_t at = 0;
            rc = CSV_OK;
            while (rc == CSV_OK && at < n) {
                size_t m = n - at < 5 ? n - at : 5;
                rc = csv_feed(r, TRICKY + at, m, on_row, &s);
                at += m;
            }
            if (rc == CSV_OK) rc = csv_finish(r, on_row, &s);
            if (rc == CSV_ENOMEM) {
                /* terminal: later calls say so again without calling back */
                int rows = s.rows;
                assert_int_equal(csv_feed(r, "x\n", 2, on_row, &s), CSV_ENOMEM);
                assert_int_equal(csv_finish(r, on_row, &s), CSV_ENOMEM);
                assert_int_equal(s.rows, rows);
            }
            csv_free(r);
        }
        eh_alloc_fail_after(-1);
        assert_true(rc == CSV_OK || rc == CSV_ENOMEM);
        if (rc == CSV_OK) {
            assert_string_equal(s.out.p, ref);
            succeeded = 1;
        }
        buf_free(&s.out);
    }
    assert_true(succeeded);
    eh_free(ref);

    /* csv_read_file and csv_write_field under failure */
    char path[] = "/tmp/ehub_test_csv_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fwrite(TRICKY, 1, n, f);
    fclose(f);
    for (long k = 0; k < 20; k++) {
        sink s;
        sink_init(&s);
        buf_printf(&s.out, "%*s", 4096, "");
        buf_reset(&s.out);
        csv_error err;
        eh_alloc_fail_after(k);
        int rc = csv_read_file(path, &lim, on_row, &s, &err);
        eh_alloc_fail_after(-1);
        assert_true(rc == CSV_OK || rc == CSV_ENOMEM);
        buf_free(&s.out);
    }
    unlink(path);

    /* the buffer starts with 64 bytes: a 200-byte field needs a realloc */
    buf out;
    buf_init(&out, 1000);
    assert_int_equal(csv_write_field(&out, "ab", 2, 0), BUF_OK);
    char big[200];
    memset(big, '"', sizeof big);
    eh_alloc_fail_after(0);
    int rc = csv_write_field(&out, big, sizeof big, 0);
    eh_alloc_fail_after(-1);
    assert_int_equal(rc, BUF_NOMEM);
    assert_string_equal(out.p, "ab");
    assert_int_equal(out.len, 2);
    buf_free(&out);
}

static int count_rows(void *ud, const csv_row *row) {
    size_t *c = ud;
    if (row->error) return 1;
    if (row->nfields != 15) return 1;
    c[0]++;
    c[1] += row->len[0];
    return 0;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int slow_build(void) {
#if defined(__SANITIZE_ADDRESS__)
    return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return 1;
#endif
#endif
    const char *pre = getenv("LD_PRELOAD"); /* valgrind preloads vgpreload_*.so */
    return (pre && strstr(pre, "vgpreload")) || getenv("EHUB_SLOW_TESTS") != NULL;
}

static void test_bank_marketing(void **st) {
    const char *dir = getenv("EHUB_SHARED_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/leads/bank_marketing.csv", dir ? dir : "../shared/data");
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(path, sizeof path, "/work/shared/data/leads/bank_marketing.csv");
        f = fopen(path, "rb");
    }
    if (!f) {
        fprintf(stderr, "# bank_marketing.csv not found, skipped\n");
        skip();
    }
    /* parsing alone, from memory, in 64 KiB chunks as csv_read_file does */
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *data = malloc((size_t)size);
    assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    double best = 1e9;
    size_t c[2];
    for (int round = 0; round < 5; round++) {
        c[0] = c[1] = 0;
        double t0 = now_ms();
        csv_reader *r = csv_new(NULL);
        int rc = CSV_OK;
        for (long at = 0; rc == CSV_OK && at < size; at += 65536) {
            size_t m = (size_t)(size - at < 65536 ? size - at : 65536);
            rc = csv_feed(r, data + at, m, count_rows, c);
        }
        if (rc == CSV_OK) rc = csv_finish(r, count_rows, c);
        csv_free(r);
        double t = now_ms() - t0;
        if (t < best) best = t;
        assert_int_equal(rc, CSV_OK);
    }
    free(data);
    assert_int_equal(c[0], 41189); /* header + 41,188 leads */
    /* the whole file through csv_read_file (read + parse) */
    c[0] = c[1] = 0;
    csv_error err;
    double t0 = now_ms();
    assert_int_equal(csv_read_file(path, NULL, count_rows, c, &err), CSV_OK);
    double tf = now_ms() - t0;
    assert_int_equal(c[0], 41189);
    assert_int_equal(err.code, 0);
    printf("# bank_marketing.csv: %ld bytes, %zu records, parse %.2f ms (%.0f MB/s), "
           "csv_read_file %.2f ms\n",
           size, c[0], best, size / 1e3 / best, tf);
    if (!slow_build()) assert_true(best < 100.0);
}

static void test_read_file_errors(void **st) {
    sink s;
    sink_init(&s);
    csv_error err;
    errno = 0;
    assert_int_equal(csv_read_file("/nonexistent/ehub.csv", NULL, on_row, &s, &err), CSV_EIO);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(err.code, CSV_EIO);
    csv_limits bad = {.delim = 'x'};
    assert_int_equal(csv_read_file("/dev/null", &bad, on_row, &s, &err), CSV_EINVAL);
    assert_int_equal(csv_read_file("/dev/null", NULL, on_row, &s, &err), CSV_OK);
    assert_int_equal(err.code, 0);
    assert_int_equal(s.rows, 0);
    /* a directory opens but cannot be read */
    assert_int_equal(csv_read_file("/", NULL, on_row, &s, &err), CSV_EIO);
    /* stopping on the first bad record leaves it in err */
    char path[] = "/tmp/ehub_test_csv_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs("a,b\nc,d\n\"e\"x,f\ng,h\n", f);
    fclose(f);
    s.stop_on_error = 1;
    assert_int_equal(csv_read_file(path, NULL, on_row, &s, &err), CSV_STOPPED);
    assert_int_equal(err.code, CSV_EAFTER_QUOTE);
    assert_int_equal(err.line, 3);
    assert_int_equal(err.record_line, 3);
    unlink(path);
    buf_free(&s.out);
}

/* ---- writing ---- */

static void wf(const char *in, int flags, const char *want) {
    buf b;
    buf_init(&b, 1024);
    assert_int_equal(csv_write_field(&b, in, strlen(in), flags), BUF_OK);
    assert_string_equal(b.p ? b.p : "", want);
    buf_free(&b);
}

static void test_write_field(void **st) {
    wf("plain", 0, "plain");
    wf("", 0, "");
    wf("a,b", 0, "\"a,b\"");
    wf("a;b", 0, "\"a;b\"");
    wf("say \"hi\"", 0, "\"say \"\"hi\"\"\"");
    wf("\"", 0, "\"\"\"\"");
    wf("two\nlines", 0, "\"two\nlines\"");
    wf("cr\r", 0, "\"cr\r\"");
    wf(" spaced ", 0, " spaced ");
    /* formula injection */
    wf("=1+1", 0, "'=1+1");
    wf("+1", 0, "'+1");
    wf("-3", 0, "'-3");
    wf("@SUM(A1)", 0, "'@SUM(A1)");
    wf("\tx", 0, "\"'\tx\"");
    wf("\rx", 0, "\"'\rx\"");
    wf("=HYPERLINK(\"http://x\",\"y\")", 0, "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
    wf("a=1", 0, "a=1");
    /* numbers the caller vouches for are written unchanged... */
    wf("-3", CSV_WRITE_NUMBER, "-3");
    wf("+2.5", CSV_WRITE_NUMBER, "+2.5");
    wf("-1.5e-7", CSV_WRITE_NUMBER, "-1.5e-7");
    wf("-.5", CSV_WRITE_NUMBER, "-.5");
    wf("42", CSV_WRITE_NUMBER, "42");
    /* ...but only if they are numbers */
    wf("-1+cmd|' /C calc'!A0", CSV_WRITE_NUMBER, "'-1+cmd|' /C calc'!A0");
    wf("=1", CSV_WRITE_NUMBER, "'=1");
    wf("-", CSV_WRITE_NUMBER, "'-");
    wf("-1e", CSV_WRITE_NUMBER, "'-1e");
    wf("-.", CSV_WRITE_NUMBER, "'-.");
    wf("-3 ", CSV_WRITE_NUMBER, "'-3 ");
    /* the cap: too big leaves the buffer untouched */
    buf b;
    buf_init(&b, 8);
    assert_int_equal(csv_write_field(&b, "abc", 3, 0), BUF_OK);
    assert_int_equal(csv_write_field(&b, "x,y\"", 4, 0), BUF_TOO_BIG); /* needs 7 */
    assert_string_equal(b.p, "abc");
    assert_int_equal(csv_write_field(&b, "x,y", 3, 0), BUF_OK);          /* needs 5 */
    assert_string_equal(b.p, "abc\"x,y\"");
    buf_free(&b);
}

/* What the writer produces, the reader gives back (with the injection
 * prefix where one was added). */
static void test_round_trip(void **st) {
    const char *fields[] = {"plain", "", "a,b", "say \"hi\"", "two\r\nlines", "=cmd", "-3", ";", "\t"};
    size_t nf = sizeof fields / sizeof fields[0];
    buf out;
    buf_init(&out, 4096);
    for (int rowi = 0; rowi < 3; rowi++) {
        for (size_t i = 0; i < nf; i++) {
            if (i) buf_putc(&out, ',');
            assert_int_equal(csv_write_field(&out, fields[i], strlen(fields[i]),
                                             i == 6 ? CSV_WRITE_NUMBER : 0), BUF_OK);
        }
        buf_puts(&out, "\r\n");
    }
    char *got = parse_all(out.p, out.len, NULL);
    const char *row = "[5:plain] [0:] [3:a,b] [8:say \"hi\"] [10:two\r\nlines] [5:'=cmd] [2:-3] [1:;] [2:'\t]\n";
    char want[512];
    snprintf(want, sizeof want, "L1 #1 %sL3 #2 %sL5 #3 %s", row, row, row);
    assert_string_equal(got, want);
    eh_free(got);
    buf_free(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),           cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_line_endings),    cmocka_unit_test(test_bom),
        cmocka_unit_test(test_delimiters),      cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),          cmocka_unit_test(test_chunk_boundaries),
        cmocka_unit_test(test_stop),            cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_alloc_failure),   cmocka_unit_test(test_bank_marketing),
        cmocka_unit_test(test_read_file_errors), cmocka_unit_test(test_write_field),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests_name("csv", tests, NULL, NULL);
}
