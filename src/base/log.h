/* log — structured JSON-line logging.
 *
 * One line per event on the logger's file descriptor (stderr by default),
 * written with a single write(2) so lines from several threads never
 * interleave. Build a line on the stack:
 *
 *     log_line l;
 *     if (log_begin(lg, &l, LOG_INFO, "http.request")) {
 *         log_str(&l, "method", "GET");
 *         log_int(&l, "status", 200);
 *         log_end(&l);
 *     }
 *
 * log_begin returns 0 (and nothing is written) below the logger's level.
 * Lines longer than LOG_LINE_MAX are truncated with "truncated":true.
 *
 * The message and every log_str/log_strn value are free text: they pass
 * through pii_redact (src/base/pii.h) before they are written, so an
 * e-mail, phone, SSN, card, street address, date of birth or IBAN in them
 * comes out as [EMAIL], [PHONE]... whoever wrote the call. log_id writes
 * verbatim and is only for identifiers the server made or validated
 * (request ids, route patterns, methods, client addresses, tenant slugs),
 * which redaction could mangle (a hex id that happens to pass Luhn).
 * Still, do not log message bodies: redaction is the safety net. */
#ifndef EH_LOG_H
#define EH_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF } log_level;

#define LOG_LINE_MAX 2048

typedef struct logger logger;

typedef struct log_line {
    const logger *lg;
    size_t n;
    int truncated;
    char buf[LOG_LINE_MAX];
} log_line;

/* fd: where lines go (2 for stderr). Returns NULL on OOM. */
logger *log_new(int fd, log_level level);
void log_free(logger *lg);
void log_set_level(logger *lg, log_level level);
log_level log_get_level(const logger *lg);
/* Parses "debug|info|warn|error|off"; returns -1 if unknown. */
int log_level_parse(const char *s);

int log_begin(const logger *lg, log_line *l, log_level level, const char *msg);
void log_str(log_line *l, const char *key, const char *val);
void log_strn(log_line *l, const char *key, const char *val, size_t n);
/* Verbatim (no redaction): identifiers only, see above. */
void log_id(log_line *l, const char *key, const char *val);
void log_int(log_line *l, const char *key, int64_t val);
void log_double(log_line *l, const char *key, double val);
void log_bool(log_line *l, const char *key, int val);
void log_end(log_line *l);

/* One-shot helper: a line with just a message and an optional error text. */
void log_msg(const logger *lg, log_level level, const char *msg, const char *err);

#endif
