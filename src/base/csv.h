/* csv — a streaming RFC 4180 reader and a safe field writer.
 *
 * Leads arrive as CSV from three places: HTTP import (the body comes in
 * chunks of any size), the CLI importer and the ML trainer (files of 40k+
 * rows). All three push bytes into one reader as they get them and receive
 * each complete record through a callback, so nothing has to hold a whole
 * file and a record split across chunks is handled in one place.
 *
 * What it accepts: fields separated by a delimiter (',' by default, or ';'
 * or '\t'); fields enclosed in double quotes may contain delimiters, quotes
 * (written "") and line endings. Records end at CRLF, LF or a lone CR. A
 * UTF-8 byte-order mark at the very start is skipped. Empty lines (a line
 * ending at the start of a record) are skipped; a line holding only `""` is a
 * record with one empty field. Bytes are not checked for UTF-8 validity and a
 * field may contain NUL bytes: `len` is authoritative.
 *
 * Errors in the input never stop the reader. A malformed or oversized record
 * is handed to the callback as a row with `error` set (and no fields) as soon
 * as the problem is seen; the callback decides whether to go on (return 0)
 * or stop (non-zero). The reader then skips the rest of that record: it keeps
 * following the quoting rules, with quotes opening a quoted field only at the
 * start of a field, and resumes at the first line ending that is not inside
 * a quoted field. So a stray quote in an unquoted field (`a"b`) skips to the
 * end of its line, but a field that opens a quote and never closes it swallows
 * the following lines up to the next closing quote (or up to EOF, where it is
 * reported once, as the record's error — not again as unterminated). Each bad
 * record produces exactly one error row.
 *
 * Line numbers are physical and 1-based: a record whose quoted field spans
 * three lines starts at line N and the next record starts at N+3. CRLF counts
 * as one line ending.
 *
 * A reader is owned by its creator (csv_free) and is not thread-safe; each
 * reader is independent, with no shared state. */
#ifndef EH_CSV_H
#define EH_CSV_H

#include <stddef.h>

#include "base/buf.h"

/* Return codes of csv_feed / csv_finish / csv_read_file. */
enum {
    CSV_OK = 0,
    CSV_STOPPED = 1,       /* the callback returned non-zero */
    CSV_ENOMEM = -1,       /* allocation failed; the reader is unusable (csv_free it) */
    CSV_EINVAL = -2,       /* bad limits or arguments */
    CSV_EIO = -3,          /* csv_read_file: open/read failed; errno says why */
};

/* Codes of a bad record (csv_row.error->code). */
enum {
    CSV_EFIELD_TOO_BIG = -10,   /* a field is longer than max_field bytes */
    CSV_ETOO_MANY_FIELDS = -11, /* a record has more than max_fields fields */
    CSV_EROW_TOO_BIG = -12,     /* a record is longer than max_row bytes */
    CSV_EQUOTE = -13,           /* a quote inside an unquoted field: a"b */
    CSV_EAFTER_QUOTE = -14,     /* text after a closing quote: "a"b */
    CSV_EUNTERMINATED = -15,    /* EOF inside a quoted field */
};

/* Zero members take the default. */
typedef struct csv_limits {
    size_t max_field;  /* bytes of one field after unquoting; default 64 KiB */
    size_t max_fields; /* fields per record; default 512 */
    size_t max_row;    /* bytes of one record as it appears in the input,
                          quotes and delimiters included, its final line
                          ending not; default 1 MiB */
    char delim;        /* ',' (default), ';' or '\t' */
} csv_limits;

#define CSV_DEFAULT_MAX_FIELD (64u * 1024u)
#define CSV_DEFAULT_MAX_FIELDS 512u
#define CSV_DEFAULT_MAX_ROW (1024u * 1024u)

typedef struct csv_error {
    int code;                  /* CSV_E* */
    unsigned long line;        /* physical line where the problem was found */
    unsigned long record_line; /* line where the bad record started */
} csv_error;

/* One record, valid only during the callback: copy what you keep. */
typedef struct csv_row {
    size_t nfields;            /* >= 1 for a good record, 0 for a bad one */
    const char *const *field;  /* field[i]: NUL-terminated copy of field i */
    const size_t *len;         /* len[i]: its length in bytes */
    unsigned long line;        /* 1-based physical line where the record started */
    unsigned long record;      /* 1-based index of the record, good and bad counted */
    const csv_error *error;    /* NULL for a good record */
} csv_row;

/* Return 0 to go on, non-zero to stop: csv_feed/csv_finish then return
 * CSV_STOPPED without reading further. */
typedef int (*csv_row_fn)(void *ud, const csv_row *row);

typedef struct csv_reader csv_reader;

/* lim may be NULL (all defaults); it is copied. Returns NULL if out of memory
 * or if the limits are invalid (csv_limits_valid says which). */
csv_reader *csv_new(const csv_limits *lim);
/* CSV_OK, or CSV_EINVAL if the delimiter is not ',', ';' or '\t'. */
int csv_limits_valid(const csv_limits *lim);

/* Parses len bytes (any split of the stream: a record, a quote pair or a CRLF
 * may straddle calls) and calls fn for every record completed by them.
 * Returns CSV_OK; CSV_STOPPED if fn asked to stop (now or in an earlier call;
 * the rest of the input is then ignored for good); CSV_ENOMEM (the reader
 * cannot continue). Bad records do not change the return value: they reach
 * fn with row->error set. */
int csv_feed(csv_reader *r, const char *data, size_t len, csv_row_fn fn, void *ud);

/* Ends the stream: delivers the last record if it had no line ending, or an
 * CSV_EUNTERMINATED error row if it ended inside quotes. Same returns as
 * csv_feed. Afterwards the reader is back in its initial state (line 1, BOM
 * allowed, counters zero) and can read another stream, unless it stopped or
 * ran out of memory. */
int csv_finish(csv_reader *r, csv_row_fn fn, void *ud);

/* The most recent bad record's error (code 0 if none yet), and how many bad
 * records this stream has had. */
const csv_error *csv_last_error(const csv_reader *r);
unsigned long csv_error_count(const csv_reader *r);
/* Physical line the reader is on (1-based). */
unsigned long csv_line(const csv_reader *r);

void csv_free(csv_reader *r);

/* Reads a whole file through a reader with limits lim (NULL = defaults).
 * Returns CSV_OK, CSV_STOPPED, CSV_ENOMEM, CSV_EINVAL or CSV_EIO (errno set).
 * If err is not NULL it receives: the last bad record's error if there was
 * one (so a callback that stops on the first bad row finds it here), else
 * {code = return value, line = line reached}. */
int csv_read_file(const char *path, const csv_limits *lim, csv_row_fn fn, void *ud,
                  csv_error *err);

/* A short English description of any CSV_* code. Never NULL. */
const char *csv_strerror(int code);

/* Writing (export). Flags for csv_write_field: */
enum {
    /* The caller formatted this value as a number: if it really is one
     * (optional sign, digits, optional fraction and exponent) it is written
     * unchanged, so -3 stays -3. Anything else is still neutralised. */
    CSV_WRITE_NUMBER = 1,
};

/* Appends one field to out, quoted if it contains a quote, CR, LF, ',', ';'
 * or '\t' (so it is safe for any of the reader's delimiters). Unless the
 * value is a number and flags has CSV_WRITE_NUMBER, a field starting with
 * = + - @ TAB or CR gets a leading single quote so spreadsheets show it as
 * text instead of running it as a formula (OWASP "CSV injection"). The
 * caller writes delimiters and line endings. Returns BUF_OK, BUF_NOMEM or
 * BUF_TOO_BIG; on failure out is left as it was. */
int csv_write_field(buf *out, const char *s, size_t n, int flags);

#endif
