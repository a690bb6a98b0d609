/* libFuzzer target for src/http/ws.c.
 *
 * The first input byte picks where the rest is cut in two; both parts are
 * fed to a server session that echoes every message (so replies are queued
 * from inside feed, against a small max_queue). Then the owner-side calls
 * (ping, send, close) run on whatever state the input left. The low bits of
 * that byte also make the transport fail halfway (bit 0) and allocations
 * fail after the first (bit 1), so those paths are fuzzed too.
 *
 * Beyond sanitizer findings it traps on broken promises of ws.h: on_close
 * more than once or not at all once done, an invalid UTF-8 text message or
 * one over max_message delivered, or output that is not a sequence of
 * well-formed, unmasked server frames ending at the first close. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "http/ws.h"

#define MAX_MESSAGE 512
#define OUT_CAP (64u * 1024)

typedef struct fz {
    ws_session *s;
    uint8_t *out;
    size_t out_len;
    int overflow; /* output beyond OUT_CAP is not checked */
    size_t fail_at; /* writes fail once this much was written */
    int failed;
    int closes;
} fz;

#define CHECK(c) \
    do { \
        if (!(c)) __builtin_trap(); \
    } while (0)

/* Independent of ws.c's validator on purpose: decode and range-check. */
static int utf8_ok(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t c = p[i], min;
        size_t k;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { k = 1; c &= 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { k = 2; c &= 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { k = 3; c &= 0x07; min = 0x10000; }
        else return 0;
        if (n - i - 1 < k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) return 0;
            c = (c << 6) | (p[i + j] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
        i += k + 1;
    }
    return 1;
}

static int on_write(void *ud, const uint8_t *data, size_t len) {
    fz *f = ud;
    CHECK(len > 0);
    if (f->failed || f->out_len >= f->fail_at) {
        f->failed = 1;
        return -1;
    }
    if (f->overflow || len > OUT_CAP - f->out_len) {
        f->overflow = 1;
        return 0;
    }
    memcpy(f->out + f->out_len, data, len);
    f->out_len += len;
    return 0;
}

static void on_message(void *ud, int opcode, const uint8_t *data, size_t len) {
    fz *f = ud;
    CHECK(opcode == WS_TEXT || opcode == WS_BINARY);
    CHECK(len <= MAX_MESSAGE);
    CHECK(data != NULL);
    if (opcode == WS_TEXT) CHECK(utf8_ok(data, len));
    CHECK(f->closes == 0);
    int rc = ws_session_send(f->s, opcode, data, len);
    /* no write happens inside feed, so not WS_CLOSED for a failed one */
    CHECK(rc == WS_OK || rc == WS_EQUEUE || rc == WS_CLOSED || rc == WS_NOMEM);
}

static void on_close(void *ud, uint16_t code) {
    fz *f = ud;
    f->closes++;
    CHECK(f->closes == 1);
    CHECK(code >= 1000);
}

static void on_pong(void *ud) {}

static void check_done(fz *f) {
    if (ws_session_done(f->s)) CHECK(f->closes == 1);
    if (f->closes) CHECK(ws_session_done(f->s) && ws_session_closing(f->s));
}

/* Every written frame is a final, unmasked server frame with RSV 0, a known
 * opcode and a valid length; nothing follows a close. Only a failed write
 * may leave the last frame cut short. */
#define WHOLE(c) \
    do { \
        if (!(c)) { \
            CHECK(f->failed); \
            return; \
        } \
    } while (0)
static void check_output(const fz *f) {
    if (f->overflow) return;
    size_t off = 0;
    int closed = 0;
    while (off < f->out_len) {
        CHECK(!closed);
        const uint8_t *p = f->out + off;
        size_t n = f->out_len - off;
        WHOLE(n >= 2);
        CHECK((p[0] & 0xF0) == 0x80); /* FIN, no RSV */
        int op = p[0] & 0x0F;
        CHECK(op == 1 || op == 2 || op == 8 || op == 9 || op == 10);
        CHECK((p[1] & 0x80) == 0); /* servers never mask */
        uint64_t len = p[1] & 0x7F;
        size_t h = 2;
        if (len == 126) {
            WHOLE(n >= 4);
            len = ((uint64_t)p[2] << 8) | p[3];
            CHECK(len >= 126);
            h = 4;
        } else if (len == 127) {
            WHOLE(n >= 10);
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
            CHECK(len >= 65536);
            h = 10;
        }
        WHOLE(n >= h && n - h >= len);
        if (op >= 8) CHECK(len <= 125);
        if (op == 1) CHECK(utf8_ok(p + h, (size_t)len));
        if (op == 8) {
            CHECK(len != 1);
            closed = 1;
        }
        off += h + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t rest = size - 1;
    size_t cut = (size_t)data[0] * rest / 255;
    const uint8_t *in = data + 1;

    char accept[29];
    (void)ws_handshake_accept((const char *)in, rest < 24 ? rest : 24, accept, sizeof accept);

    fz f = {0};
    f.out = malloc(OUT_CAP);
    if (!f.out) return 0;
    f.fail_at = (data[0] & 1) ? rest / 2 : SIZE_MAX;
    ws_limits lim = {MAX_MESSAGE, 2 * MAX_MESSAGE};
    ws_callbacks cb = {&f, on_write, on_message, on_close, on_pong};
    f.s = ws_session_new(&lim, &cb);
    if (!f.s) {
        free(f.out);
        return 0;
    }

    if (data[0] & 2) eh_alloc_fail_after(1);
    int rc = ws_session_feed(f.s, in, cut);
    CHECK(rc == WS_OK || rc == WS_ERR);
    check_done(&f);
    rc = ws_session_feed(f.s, in + cut, rest - cut);
    CHECK(rc == WS_OK || rc == WS_ERR);
    check_done(&f);

    eh_alloc_fail_after(-1);

    /* Calls on a closing session refuse; otherwise they succeed unless the
     * transport fails under them. */
    int closing = ws_session_closing(f.s);
    rc = ws_session_ping(f.s);
    CHECK(closing ? rc == WS_CLOSED : (rc == WS_OK || (f.failed && rc == WS_CLOSED)));
    closing = ws_session_closing(f.s);
    rc = ws_session_send(f.s, WS_TEXT, "ok", 2);
    CHECK(closing ? rc == WS_CLOSED : (rc == WS_OK || (f.failed && rc == WS_CLOSED)));
    check_done(&f);
    closing = ws_session_closing(f.s);
    rc = ws_session_close(f.s, 1000, "fuzz");
    CHECK(closing ? rc == WS_CLOSED : (rc == WS_OK || (f.failed && rc == WS_CLOSED)));
    CHECK(ws_session_closing(f.s));
    check_done(&f);
    CHECK(ws_session_send(f.s, WS_BINARY, "x", 1) == WS_CLOSED);

    check_output(&f);
    ws_session_free(f.s);
    free(f.out);
    return 0;
}
