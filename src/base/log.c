#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "pii.h"

struct logger {
    int fd;
    log_level level;
};

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

logger *log_new(int fd, log_level level) {
    logger *lg = eh_calloc(1, sizeof *lg);
    if (!lg) return NULL;
    lg->fd = fd;
    lg->level = level;
    return lg;
}

void log_free(logger *lg) { eh_free(lg); }
void log_set_level(logger *lg, log_level level) { lg->level = level; }
log_level log_get_level(const logger *lg) { return lg->level; }

int log_level_parse(const char *s) {
    for (int i = 0; i <= LOG_OFF; i++)
        if (strcmp(s, level_names[i]) == 0) return i;
    return -1;
}

/* Room kept at the end of the buffer for `,"truncated":true}\n`. */
#define TAIL 24

static void put(log_line *l, const char *s, size_t n) {
    if (l->truncated) return;
    if (l->n + n > LOG_LINE_MAX - TAIL) {
        l->truncated = 1;
        return;
    }
    memcpy(l->buf + l->n, s, n);
    l->n += n;
}

static void put_json_str(log_line *l, const char *s, size_t n) {
    /* Escape into a bounded scratch buffer, then copy. */
    buf b;
    buf_init(&b, LOG_LINE_MAX);
    if (buf_json_str(&b, s, n) != BUF_OK) {
        l->truncated = 1;
        buf_free(&b);
        return;
    }
    put(l, "\"", 1);
    put(l, b.p ? b.p : "", b.len);
    put(l, "\"", 1);
    buf_free(&b);
}

/* Free text (the message, every string value but identifiers) passes
 * through pii_redact before it is escaped: whatever a caller hands in -- an
 * error that quotes user input, a database error quoting a row, a
 * provider's answer -- no e-mail, phone, SSN, card, address, date of birth
 * or IBAN reaches the log. A value that would not fit the line is dropped
 * and the line marked truncated, as put_json_str does, so a cut never
 * leaves half an e-mail behind. */
static void put_text(log_line *l, const char *s, size_t n) {
    if (l->truncated) return;
    char red[LOG_LINE_MAX];
    size_t m = n < sizeof red ? pii_redact(s, n, red, sizeof red) : sizeof red;
    if (m >= sizeof red) {
        l->truncated = 1;
        return;
    }
    put_json_str(l, red, m);
}

static void put_key(log_line *l, const char *key) {
    put(l, ",", 1);
    put_json_str(l, key, strlen(key));
    put(l, ":", 1);
}

int log_begin(const logger *lg, log_line *l, log_level level, const char *msg) {
    if (!lg || level < lg->level || lg->level == LOG_OFF) return 0;
    l->lg = lg;
    l->n = 0;
    l->truncated = 0;
    char ts[32];
    clock_rfc3339(clock_wall_ms(), ts, sizeof ts);
    int n = snprintf(l->buf, LOG_LINE_MAX, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", ts,
                     level_names[level]);
    l->n = (size_t)n;
    put_text(l, msg, strlen(msg));
    return 1;
}

void log_strn(log_line *l, const char *key, const char *val, size_t n) {
    put_key(l, key);
    if (val) put_text(l, val, n);
    else put(l, "null", 4);
}

void log_id(log_line *l, const char *key, const char *val) {
    put_key(l, key);
    if (val) put_json_str(l, val, strlen(val));
    else put(l, "null", 4);
}

void log_str(log_line *l, const char *key, const char *val) {
    log_strn(l, key, val, val ? strlen(val) : 0);
}

void log_int(log_line *l, const char *key, int64_t val) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)val);
    put_key(l, key);
    put(l, tmp, (size_t)n);
}

void log_double(log_line *l, const char *key, double val) {
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp, "%.6g", val);
    put_key(l, key);
    if (val != val || val > 1e308 || val < -1e308) put(l, "null", 4);
    else put(l, tmp, (size_t)n);
}

void log_bool(log_line *l, const char *key, int val) {
    put_key(l, key);
    if (val) put(l, "true", 4);
    else put(l, "false", 5);
}

void log_end(log_line *l) {
    if (l->truncated) {
        memcpy(l->buf + l->n, ",\"truncated\":true", 17);
        l->n += 17;
    }
    l->buf[l->n++] = '}';
    l->buf[l->n++] = '\n';
    size_t off = 0;
    while (off < l->n) {
        ssize_t w = write(l->lg->fd, l->buf + off, l->n - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* nowhere left to report a logging failure */
        }
        off += (size_t)w;
    }
}

void log_msg(const logger *lg, log_level level, const char *msg, const char *err) {
    log_line l;
    if (!log_begin(lg, &l, level, msg)) return;
    if (err) log_str(&l, "error", err);
    log_end(&l);
}
