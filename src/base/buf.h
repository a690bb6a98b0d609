/* buf — a growable byte buffer with a hard size cap (curl's dynbuf).
 *
 * Every buffer that holds external input has a `max`: appending past it
 * fails with BUF_TOO_BIG and leaves the buffer as it was, so a peer can never
 * make us allocate without bound. The contents are always NUL-terminated
 * (the terminator is not counted in len). The struct is public so buffers can
 * live inside other structs; the caller owns it and calls buf_free. */
#ifndef EH_BUF_H
#define EH_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum { BUF_OK = 0, BUF_NOMEM = -1, BUF_TOO_BIG = -2, BUF_INVALID = -3 };

typedef struct buf {
    char *p;     /* NULL until the first append */
    size_t len;  /* bytes used, excluding the NUL */
    size_t cap;  /* bytes allocated */
    size_t max;  /* largest len allowed */
} buf;

void buf_init(buf *b, size_t max);
int buf_append(buf *b, const void *data, size_t n);
int buf_puts(buf *b, const char *s);
int buf_putc(buf *b, char c);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf *b, const char *fmt, va_list ap);
/* Appends s as the inside of a JSON string (no quotes), escaping as needed.
 * Invalid UTF-8 bytes become U+FFFD so the output is always valid JSON. */
int buf_json_str(buf *b, const char *s, size_t n);
/* Appends d as jansson writes a real (json_dumps of json_real(d)): "%.17g",
 * ".0" added to an integral value, the exponent without '+' or leading
 * zeros; so text written here matches what a JSON tree dump gave, byte for
 * byte. NaN and infinities have no JSON form: BUF_INVALID, nothing appended. */
int buf_json_real(buf *b, double d);
/* Appends v in decimal (jansson's integer form), without printf. */
int buf_json_int(buf *b, long long v);
/* Writes v in decimal at o (at most 20 bytes, no NUL) and returns the end:
 * for text assembled in a buffer sized in advance (a response head). */
char *buf_fmt_u64(char *o, uint64_t v);
void buf_reset(buf *b);  /* len = 0, keeps the memory */
/* Removes the first n bytes (n <= len). */
void buf_consume(buf *b, size_t n);
/* Hands the memory to the caller (free with eh_free) and re-initialises b. */
char *buf_detach(buf *b, size_t *len);
void buf_free(buf *b);

#endif
