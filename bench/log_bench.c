/* What the log module's redaction costs per line. Writes the request log's
 * line (method, path, route, status, bytes, duration, request id, ip,
 * tenant) to /dev/null N times with the path through pii_redact (log_str,
 * as the server does) and with every value verbatim (log_id: the line
 * before redaction), alternately in the same run; then a warn line with a
 * 120-byte error text quoting an e-mail and a phone (the case redaction is
 * for). Prints ns per line. Built against a build's libehub.a
 * (`make build/tools/log_bench`):
 *
 *   log_bench [lines]     (default 200000) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void request_line(logger *lg, int redact) {
    log_line l;
    if (!log_begin(lg, &l, LOG_INFO, "http.request")) return;
    log_id(&l, "method", "POST");
    if (redact) log_str(&l, "path", "/v1/leads/48213/activities");
    else log_id(&l, "path", "/v1/leads/48213/activities");
    log_id(&l, "route", "/v1/leads/{id}/activities");
    log_int(&l, "status", 201);
    log_int(&l, "bytes", 312);
    log_double(&l, "duration_ms", 0.734);
    log_id(&l, "request_id", "9f3c2a71d04e5b86000000000000a1b2");
    log_id(&l, "ip", "127.0.0.1");
    log_id(&l, "tenant", "acme-realty");
    log_end(&l);
}

static const char *err_text =
    "provider answered 400: {\"message\":\"The 'To' number +14155550123 is not valid\",\"email\":\"jo@example.com\"}";

static void error_line(logger *lg, int redact) {
    log_line l;
    if (!log_begin(lg, &l, LOG_WARN, "nurture: send failed")) return;
    if (redact) log_str(&l, "error", err_text);
    else log_id(&l, "error", err_text);
    log_end(&l);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200000;
    int fd = open("/dev/null", O_WRONLY);
    logger *lg = log_new(fd, LOG_INFO);
    if (fd < 0 || !lg || n < 1) return 1;
    void (*fns[2])(logger *, int) = {request_line, error_line};
    const char *names[2] = {"request line", "error line (e-mail + phone)"};
    for (int f = 0; f < 2; f++) {
        double t[2] = {0, 0};
        for (int round = 0; round < 6; round++) /* alternate, so load on the machine hits both */
            for (int redact = 0; redact < 2; redact++) {
                double t0 = now_ns();
                for (int i = 0; i < n / 6; i++) fns[f](lg, redact);
                t[redact] += now_ns() - t0;
            }
        double per = (double)(n / 6 * 6);
        printf("%-28s verbatim %7.0f ns/line   redacted %7.0f ns/line   (+%.0f ns)\n", names[f], t[0] / per,
               t[1] / per, (t[1] - t[0]) / per);
    }
    log_free(lg);
    close(fd);
    return 0;
}
