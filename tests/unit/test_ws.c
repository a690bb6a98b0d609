/* Unit tests for src/http/ws.c: the session is driven exactly as the server
 * drives it (feed bytes in, collect bytes from the write callback), with
 * client frames built by a small encoder below and server frames parsed back
 * by a small decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "http/ws.h"

/* ---- harness ------------------------------------------------------------ */

typedef struct msg_rec {
    int opcode;
    uint8_t *data;
    size_t len;
} msg_rec;

typedef struct T {
    ws_session *s;
    uint8_t *out; /* everything written, in order */
    size_t out_len, out_cap;
    size_t writes;
    int fail_write;          /* write returns -1 while set */
    msg_rec msgs[16];
    size_t nmsgs;
    int closes;
    uint16_t close_code;
    int pongs;
    int echo;                /* on_message replies with the same payload */
    int echo_rc;             /* last ws_session_send rc from on_message */
    size_t echo_copies;      /* replies per message */
    int raw_ok_in_msg;       /* ws_session_raw_ok seen from on_message (-1 = not called) */
    int free_on_close;
} T;

static int t_write(void *ud, const uint8_t *data, size_t len) {
    T *t = ud;
    if (t->fail_write) return -1;
    if (t->out_len + len > t->out_cap) {
        size_t cap = t->out_cap ? t->out_cap : 256;
        while (cap < t->out_len + len) cap *= 2;
        uint8_t *p = realloc(t->out, cap);
        if (!p) return -1;
        t->out = p;
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, data, len);
    t->out_len += len;
    t->writes++;
    return 0;
}

static void t_message(void *ud, int opcode, const uint8_t *data, size_t len) {
    T *t = ud;
    assert_non_null(data);
    if (t->nmsgs < 16) {
        msg_rec *m = &t->msgs[t->nmsgs++];
        m->opcode = opcode;
        m->data = malloc(len + 1);
        assert_non_null(m->data);
        memcpy(m->data, data, len);
        m->len = len;
    }
    t->raw_ok_in_msg = ws_session_raw_ok(t->s);
    if (t->echo)
        for (size_t i = 0; i < (t->echo_copies ? t->echo_copies : 1); i++)
            t->echo_rc = ws_session_send(t->s, opcode, data, len);
}

static void t_close(void *ud, uint16_t code) {
    T *t = ud;
    t->closes++;
    t->close_code = code;
    if (t->free_on_close) {
        ws_session_free(t->s);
        t->s = NULL;
    }
}

static void t_pong(void *ud) { ((T *)ud)->pongs++; }

static T *t_new(size_t max_message, size_t max_queue) {
    T *t = calloc(1, sizeof *t);
    assert_non_null(t);
    ws_limits lim = {max_message, max_queue};
    ws_callbacks cb = {t, t_write, t_message, t_close, t_pong};
    t->s = ws_session_new(&lim, &cb);
    assert_non_null(t->s);
    return t;
}

static void t_free(T *t) {
    ws_session_free(t->s);
    for (size_t i = 0; i < t->nmsgs; i++) free(t->msgs[i].data);
    free(t->out);
    free(t);
}

static void t_clear_out(T *t) { t->out_len = 0; }

/* ---- client frame encoder (RFC 6455 §5.2) ------------------------------------ */

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Writes one frame into out (room for len + 14) and returns its size.
 * b0 is the first byte as-is (FIN, RSV, opcode). */
static size_t enc_raw(uint8_t *out, uint8_t b0, int masked, const void *payload, size_t len) {
    size_t n = 0;
    out[n++] = b0;
    uint8_t m = masked ? 0x80 : 0;
    if (len < 126) {
        out[n++] = m | (uint8_t)len;
    } else if (len < 65536) {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = m | 127;
        for (int i = 7; i >= 0; i--) out[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (masked) {
        memcpy(out + n, KEY, 4);
        n += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++) out[n + i] = masked ? p[i] ^ KEY[i % 4] : p[i];
    return n + len;
}

static size_t enc(uint8_t *out, int fin, int opcode, const void *payload, size_t len) {
    return enc_raw(out, (uint8_t)((fin ? 0x80 : 0) | opcode), 1, payload, len);
}

static int feed_frame(T *t, int fin, int opcode, const void *payload, size_t len) {
    uint8_t *f = malloc(len + 14);
    assert_non_null(f);
    size_t n = enc(f, fin, opcode, payload, len);
    int rc = ws_session_feed(t->s, f, n);
    free(f);
    return rc;
}

static int feed_close(T *t, uint16_t code, const char *reason) {
    uint8_t p[125];
    size_t n = 0;
    if (code) {
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        n = 2;
    }
    if (reason) {
        memcpy(p + n, reason, strlen(reason));
        n += strlen(reason);
    }
    return feed_frame(t, 1, 0x8, p, n);
}

/* ---- server frame decoder ------------------------------------------------------- */

typedef struct frame {
    int fin, rsv, opcode, masked;
    uint64_t len;
    const uint8_t *payload;
    size_t hdr_len;
} frame;

/* Parses the frame at out[*off]; returns 0 if a whole frame was there. */
static int dec(const T *t, size_t *off, frame *f) {
    const uint8_t *p = t->out + *off;
    size_t n = t->out_len - *off;
    if (n < 2) return -1;
    f->fin = p[0] >> 7;
    f->rsv = (p[0] >> 4) & 7;
    f->opcode = p[0] & 0xf;
    f->masked = p[1] >> 7;
    uint64_t len = p[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
        if (n < 4) return -1;
        len = ((uint64_t)p[2] << 8) | p[3];
        h = 4;
    } else if (len == 127) {
        if (n < 10) return -1;
        len = 0;
        for (int i = 0; i < 8; i++) len = (len << 8) | p[2 + i];
        h = 10;
    }
    if (f->masked) h += 4;
    if (n < h || n - h < len) return -1;
    f->len = len;
    f->hdr_len = h;
    f->payload = p + h;
    *off += h + (size_t)len;
    return 0;
}

/* The only frame written must be a close with code (0 = empty payload). */
static void expect_only_close(T *t, uint16_t code) {
    size_t off = 0;
    frame f;
    assert_int_equal(dec(t, &off, &f), 0);
    assert_int_equal(f.opcode, 0x8);
    assert_int_equal(f.fin, 1);
    assert_int_equal(f.masked, 0);
    if (code) {
        assert_true(f.len >= 2);
        assert_int_equal((f.payload[0] << 8) | f.payload[1], code);
    } else {
        assert_int_equal(f.len, 0);
    }
    assert_int_equal(off, t->out_len);
}

/* A protocol failure: close(code) written, on_close(code) once, done. */
static void expect_failed(T *t, int rc, uint16_t code) {
    assert_int_equal(rc, WS_ERR);
    expect_only_close(t, code);
    assert_int_equal(t->closes, 1);
    assert_int_equal(t->close_code, code);
    assert_true(ws_session_done(t->s));
    assert_true(ws_session_closing(t->s));
    assert_int_equal(ws_session_send(t->s, WS_TEXT, "x", 1), WS_CLOSED);
}

/* ---- handshake ------------------------------------------------------------------------ */

static void test_accept_rfc_example(void **state) {
    char out[29];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    assert_int_equal(ws_handshake_accept(key, strlen(key), out, sizeof out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_accept_invalid_keys(void **state) {
    char out[29];
    const char *bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",     /* 23 chars */
        "dGhlIHNhbXBsZSBub25jZQ===",   /* 25 chars */
        "dGhlIHNhbXBsZSBub25jZQAA",    /* no padding: 18 bytes */
        "dGhlIHNhbXBsZSBub25j ZQ==",   /* space */
        "dGhlIHNhbXBsZSBub25jZ*==",    /* bad char */
        "dGhlIHNhbXBsZSBub25=ZQ==",    /* padding in the middle */
        "dGhlIHNhbXBsZSBub25jZQ=A",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(ws_handshake_accept(bad[i], strlen(bad[i]), out, sizeof out), -1);
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    assert_int_equal(ws_handshake_accept(key, 24, out, 28), -1); /* no room for NUL */
    assert_int_equal(ws_handshake_accept(NULL, 24, out, sizeof out), -1);
    /* keylen, not NUL, bounds the key */
    assert_int_equal(ws_handshake_accept("dGhlIHNhbXBsZSBub25jZQ==xx", 24, out, sizeof out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* ---- receiving ------------------------------------------------------------------------- */

static void test_text_message(void **state) {
    T *t = t_new(0, 0);
    assert_int_equal(feed_frame(t, 1, 0x1, "Hello", 5), WS_OK);
    assert_int_equal(t->nmsgs, 1);
    assert_int_equal(t->msgs[0].opcode, WS_TEXT);
    assert_int_equal(t->msgs[0].len, 5);
    assert_memory_equal(t->msgs[0].data, "Hello", 5);
    assert_int_equal(t->out_len, 0);
    assert_false(ws_session_closing(t->s));
    assert_false(ws_session_done(t->s));
    /* binary, empty, and several frames in one feed */
    uint8_t buf[64];
    size_t n = enc(buf, 1, 0x2, "\x00\xff", 2);
    n += enc(buf + n, 1, 0x1, "", 0);
    n += enc(buf + n, 1, 0x1, "\xc3\xa9t\xc3\xa9", 6);
    assert_int_equal(ws_session_feed(t->s, buf, n), WS_OK);
    assert_int_equal(t->nmsgs, 4);
    assert_int_equal(t->msgs[1].opcode, WS_BINARY);
    assert_memory_equal(t->msgs[1].data, "\x00\xff", 2);
    assert_int_equal(t->msgs[2].len, 0);
    assert_memory_equal(t->msgs[3].data, "\xc3\xa9t\xc3\xa9", 6);
    assert_int_equal(t->closes, 0);
    t_free(t);
}

static void test_large_message_64bit_length(void **state) {
    T *t = t_new(0, 0);
    size_t len = 70000;
    uint8_t *p = malloc(len);
    for (size_t i = 0; i < len; i++) p[i] = (uint8_t)(i * 7);
    assert_int_equal(feed_frame(t, 1, 0x2, p, len), WS_OK);
    assert_int_equal(t->nmsgs, 1);
    assert_int_equal(t->msgs[0].len, len);
    assert_memory_equal(t->msgs[0].data, p, len);
    free(p);
    t_free(t);
}

static void test_fragmented_message(void **state) {
    T *t = t_new(0, 0);
    uint8_t buf[128];
    size_t n = enc(buf, 0, 0x1, "Hel", 3);
    n += enc(buf + n, 1, 0x9, "hb", 2); /* control frame between fragments */
    n += enc(buf + n, 0, 0x0, "lo \xe2\x82", 5); /* a character split across fragments */
    n += enc(buf + n, 1, 0x0, "\xac!", 2);
    assert_int_equal(ws_session_feed(t->s, buf, n), WS_OK);
    assert_int_equal(t->nmsgs, 1);
    assert_int_equal(t->msgs[0].opcode, WS_TEXT);
    assert_int_equal(t->msgs[0].len, 10);
    assert_memory_equal(t->msgs[0].data, "Hello \xe2\x82\xac!", 10);
    size_t off = 0;
    frame f;
    assert_int_equal(dec(t, &off, &f), 0);
    assert_int_equal(f.opcode, 0xA);
    assert_memory_equal(f.payload, "hb", 2);
    assert_int_equal(off, t->out_len);
    t_free(t);
}

static void test_byte_at_a_time(void **state) {
    T *t = t_new(0, 0);
    uint8_t buf[512];
    uint8_t big[300];
    memset(big, 'z', sizeof big);
    size_t n = enc(buf, 0, 0x2, big, sizeof big); /* 16-bit length */
    n += enc(buf + n, 1, 0x9, "ping!", 5);
    n += enc(buf + n, 1, 0x0, "end", 3);
    n += enc(buf + n, 1, 0xA, "", 0);
    size_t close_at = n;
    uint8_t cp[] = {0x03, 0xe8, 'b', 'y', 'e', ' ', 0xe2, 0x82, 0xac};
    n += enc(buf + n, 1, 0x8, cp, sizeof cp);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ws_session_feed(t->s, buf + i, 1), WS_OK);
        if (i + 1 < n) assert_int_equal(t->closes, 0);
        if (i + 1 == close_at) {
            assert_int_equal(t->nmsgs, 1);
            assert_int_equal(t->pongs, 1);
        }
    }
    assert_int_equal(t->nmsgs, 1);
    assert_int_equal(t->msgs[0].len, sizeof big + 3);
    assert_memory_equal(t->msgs[0].data + sizeof big, "end", 3);
    size_t off = 0;
    frame f;
    assert_int_equal(dec(t, &off, &f), 0);
    assert_int_equal(f.opcode, 0xA);
    assert_memory_equal(f.payload, "ping!", 5);
    /* The close reason arrived one byte per read and is echoed intact. */
    assert_int_equal(dec(t, &off, &f), 0);
    assert_int_equal(f.opcode, 0x8);
    assert_int_equal(f.len, sizeof cp);
    assert_memory_equal(f.payload, cp, sizeof cp);
    assert_int_equal(off, t->out_len);
    assert_int_equal(t->closes, 1);
    assert_int_equal(t->close_code, 1000);
    assert_true(ws_session_done(t->s));
    t_free(t);
}

static void test_every_split_point(void **state) {
    /* Same stream cut in two at every offset: the result never changes. */
    uint8_t buf[256];
    size_t n = enc(buf, 0, 0x1, "ab", 2);
    n += enc(buf + n, 1, 0x9, "p", 1);
    n += enc(buf + n, 1, 0x0, "cd", 2);
    uint8_t cp[] = {0x03, 0xe9, 0xc3, 0xa9};
    n += enc(buf + n, 1, 0x8, cp, sizeof cp);
    for (size_t cut = 0; cut <= n; cut++) {
        T *t = t_new(0, 0);
        assert_int_equal(ws_session_feed(t->s, buf, cut), WS_OK);
        assert_int_equal(ws_session_feed(t->s, buf + cut, n - cut), WS_OK);
        assert_int_equal(t->nmsgs, 1);
        assert_memory_equal(t->msgs[0].data, "abcd", 4);
        assert_int_equal(t->closes, 1);
        assert_int_equal(t->close_code, 1001);
        size_t off = 0;
        frame f;
        assert_int_equal(dec(t, &off, &f), 0);
        /* wslay drops a pong still queued when the close echo is queued,
         * i.e. when ping and close arrive in the same read. */
        size_t ping_end = 8 + 7;
        if (cut < ping_end || cut == n) {
            assert_int_equal(f.opcode, 0x8);
        } else {
            assert_int_equal(f.opcode, 0xA);
            assert_int_equal(dec(t, &off, &f), 0);
        }
        assert_int_equal(f.opcode, 0x8);
        assert_memory_equal(f.payload, cp, sizeof cp);
        t_free(t);
    }
}

static void test_ping_pong(void **state) {
    T *t = t_new(0, 0);
    uint8_t p[125];
    memset(p, 'p', sizeof p);
    assert_int_equal(feed_frame(t, 1, 0x9, p, sizeof p), WS_OK);
    size_t off = 0;
    frame f;
    assert_int_equal(dec(t, &off, &f), 0);
    assert_int_equal(f.fin, 1);
    assert_int_equal(f.opcode, 0xA);
    assert_int_equal(f.masked, 0);
    assert_int_equal(f.len, 125);
    assert_memory_equal(f.payload, p, 125);
    assert_int_equal(off, t->out_len);
    /* pong from the peer */
    assert_int_equal(feed_frame(t, 1, 0xA, "x", 1), WS_OK);
    assert_int_equal(t->pongs, 1);
    assert_int_equal(t->nmsgs, 0);
    /* our ping */
    t_clear_out(t);
    assert_int_equal(ws_session_ping(t->s), WS_OK);
    off = 0;
    assert_int_equal(dec(t, &off, &f), 0);
    assert_int_equal(f.opcode, 0x9);
    assert_int_equal(f.len, 0);
    t_free(t);
}

static void test_truncated_frame_waits(void **state) {
    T *t = t_new(0, 0);
    uint8_t buf[256];
    uint8_t p[200];
    memset(p, 'q', sizeof p);
    size_t n = enc(buf, 1, 0x1, p, sizeof p);
    /* first header byte, then part of the 16-bit length, then the rest */
    assert_int_equal(ws_session_feed(t->s, buf, 1), WS_OK);
    assert_int_equal(ws_session_feed(t->s, buf + 1, 2), WS_OK);
    assert_int_equal(ws_session_feed(t->s, buf + 3, 5), WS_OK);
    assert_int_equal(t->nmsgs, 0);
    assert_int_equal(ws_session_feed(t->s, buf + 8, n - 9), WS_OK);
    assert_int_equal(t->nmsgs, 0);
    assert_int_equal(ws_session_feed(t->s, NULL, 0), WS_OK);
    assert_int_equal(ws_session_feed(t->s, buf + n - 1, 1), WS_OK);
    assert_int_equal(t->nmsgs, 1);
    assert_int_equal(t->msgs[0].len, sizeof p);
    /* a control frame cut in its payload is held until whole */
    n = enc(buf, 1, 0x9, "abcdef", 6);
    assert_int_equal(ws_session_feed(t->s, buf, n - 3), WS_OK);
    assert_int_equal(t->out_len, 0);
    assert_int_equal(ws_session_feed(t->s, buf + n - 3, 3), WS_OK);
    size_t off = 0;
    frame f;
    assert_int_equal(dec(t, &off, &f), 0);
    assert_int_equal(f.opcode, 0xA);
    assert_memory_equal(f.payload, "abcdef", 6);
    assert_int_equal(t->closes, 0);
    t_free(t);
}

/* ---- sending ----------------------------------------------------------------------------- */

static void check_sent_frame(size_t len, uint8_t len7, size_t hdr_len) {
    T *t = t_new(0, 0);
    uint8_t *p = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) p[i] = (uint8_t)(i ^ 0x5a);
    assert_int_equal(ws_session_send(t->s, WS_BINARY, p, len), WS_OK);
    assert_int_equal(ws_session_queued(t->s), 0);
    assert_int_equal(t->out_len, hdr_len + len);
    assert_int_equal(t->out[0], 0x82); /* FIN, binary */
    assert_int_equal(t->out[1], len7);  /* no mask bit */
    if (len7 == 126) {
        assert_int_equal((t->out[2] << 8) | t->out[3], len);
    } else if (len7 == 127) {
        uint64_t l = 0;
        for (int i = 0; i < 8; i++) l = (l << 8) | t->out[2 + i];
        assert_int_equal(l, len);
    }
    if (len) assert_memory_equal(t->out + hdr_len, p, len);
    free(p);
    t_free(t);
}

static void test_send_frame_headers(void **state) {
    check_sent_frame(0, 0, 2);
    check_sent_frame(125, 125, 2);
    check_sent_frame(126, 126, 4);
    check_sent_frame(65535, 126, 4);
    check_sent_frame(65536, 127, 10);
    T *t = t_new(0, 0);
    assert_int_equal(ws_session_send(t->s, WS_TEXT, "hi", 2), WS_OK);
    assert_int_equal(t->out[0], 0x81);
    assert_int_equal(t->out[1], 2);
    assert_int_equal(ws_session_send(t->s, 0x9, "", 0), WS_ERR);  /* not a data opcode */
    assert_int_equal(ws_session_send(t->s, WS_TEXT, NULL, 3), WS_ERR);
    t_free(t);
}

/* A pre-encoded frame (ws_frame_header + payload) is byte for byte what
 * the session itself sends for the same message, at every length class. */
static void test_frame_header_matches_session(void **state) {
    size_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t len = lens[k];
        uint8_t *p = malloc(len + 1);
        assert_non_null(p);
        for (size_t i = 0; i < len; i++) p[i] = (uint8_t)('a' + i % 26);
        for (int op = WS_TEXT; op <= WS_BINARY; op++) {
            T *t = t_new(0, 0);
            assert_int_equal(ws_session_send(t->s, op, p, len), WS_OK);
            uint8_t h[WS_FRAME_HEADER_MAX];
            size_t hl = ws_frame_header(h, op, len);
            assert_int_equal(hl + len, t->out_len);
            assert_memory_equal(h, t->out, hl);
            if (len) assert_memory_equal(t->out + hl, p, len);
            t_free(t);
        }
        free(p);
    }
    uint8_t h[WS_FRAME_HEADER_MAX];
    assert_int_equal(ws_frame_header(h, 0x9, 0), 0); /* control frames are the session's */
    assert_int_equal(ws_frame_header(h, 0, 0), 0);
}

/* Raw frames may go out only when they cannot overtake the session's own:
 * not from inside feed, not once a close is on its way. */
static void test_raw_ok(void **state) {
    T *t = t_new(0, 0);
    assert_true(ws_session_raw_ok(t->s));
    t->raw_ok_in_msg = -1;
    uint8_t buf[32];
    size_t n = enc(buf, 1, 0x1, "hi", 2);
    assert_int_equal(ws_session_feed(t->s, buf, n), WS_OK);
    assert_int_equal(t->raw_ok_in_msg, 0);
    assert_true(ws_session_raw_ok(t->s)); /* feed returned: its queue is flushed */
    assert_int_equal(ws_session_close(t->s, 1000, "bye"), WS_OK);
    assert_false(ws_session_raw_ok(t->s));
    assert_false(ws_session_raw_ok(NULL));
    t_free(t);
    t = t_new(0, 0);
    assert_int_equal(feed_close(t, 1000, "done"), WS_OK);
    assert_false(ws_session_raw_ok(t->s));
    t_free(t);
}

static void test_max_queue(void **state) {
    T *t = t_new(0, 100);
    uint8_t p[101] = {0};
    assert_int_equal(ws_session_send(t->s, WS_BINARY, p, 101), WS_EQUEUE);
    assert_int_equal(t->out_len, 0);
    assert_int_equal(ws_session_send(t->s, WS_BINARY, p, 100), WS_OK);
    /* Replies made inside on_message wait for feed to end: the second of
     * two 60-byte replies would take the backlog past 100. */
    t_clear_out(t);
    t->echo = 1;
    t->echo_copies = 2;
    assert_int_equal(feed_frame(t, 1, 0x2, p, 60), WS_OK);
    assert_int_equal(t->echo_rc, WS_EQUEUE);
    assert_int_equal(ws_session_queued(t->s), 0); /* flushed when feed returned */
    size_t off = 0;
    frame f;
    assert_int_equal(dec(t, &off, &f), 0);
    assert_int_equal(f.len, 60);
    assert_int_equal(off, t->out_len); /* only one reply went out */
    /* the owner disconnects the slow consumer */
    assert_int_equal(ws_session_close(t->s, 1008, "slow"), WS_OK);
    assert_int_equal(t->closes, 0);
    t_free(t);
}

static void test_echo_inside_feed(void **state) {
    T *t = t_new(0, 0);
    t->echo = 1;
    uint8_t buf[64];
    size_t n = enc(buf, 1, 0x1, "one", 3);
    n += enc(buf + n, 1, 0x1, "two", 3);
    assert_int_equal(ws_session_feed(t->s, buf, n), WS_OK);
    assert_int_equal(t->echo_rc, WS_OK);
    size_t off = 0;
    frame f;
    assert_int_equal(dec(t, &off, &f), 0);
    assert_memory_equal(f.payload, "one", 3);
    assert_int_equal(dec(t, &off, &f), 0);
    assert_memory_equal(f.payload, "two", 3);
    assert_int_equal(off, t->out_len);
    t_free(t);
}

/* ---- closing ----------------------------------------------------------------------------- */

static void test_client_close(void **state) {
    T *t = t_new(0, 0);
    assert_int_equal(feed_close(t, 1000, "done"), WS_OK);
    size_t off = 0;
    frame f;
    assert_int_equal(dec(t, &off, &f), 0);
    assert_int_equal(f.opcode, 0x8);
    assert_int_equal(f.masked, 0);
    assert_int_equal((f.payload[0] << 8) | f.payload[1], 1000);
    assert_int_equal(t->closes, 1);
    assert_int_equal(t->close_code, 1000);
    assert_true(ws_session_done(t->s));
    assert_true(ws_session_closing(t->s));
    /* later input is ignored; nothing more is called or written */
    size_t out = t->out_len;
    assert_int_equal(feed_frame(t, 1, 0x1, "late", 4), WS_OK);
    assert_int_equal(feed_close(t, 1000, NULL), WS_OK);
    assert_int_equal(t->nmsgs, 0);
    assert_int_equal(t->out_len, out);
    assert_int_equal(t->closes, 1);
    assert_int_equal(ws_session_send(t->s, WS_TEXT, "x", 1), WS_CLOSED);
    assert_int_equal(ws_session_ping(t->s), WS_CLOSED);
    assert_int_equal(ws_session_close(t->s, 1000, NULL), WS_CLOSED);
    assert_int_equal(t->closes, 1);
    t_free(t);
}

static void test_client_close_without_code(void **state) {
    T *t = t_new(0, 0);
    uint8_t buf[64];
    size_t n = enc(buf, 1, 0x8, "", 0);
    n += enc(buf + n, 1, 0x1, "after", 5); /* same read, after the close */
    assert_int_equal(ws_session_feed(t->s, buf, n), WS_OK);
    expect_only_close(t, 0);
    assert_int_equal(t->nmsgs, 0);
    assert_int_equal(t->closes, 1);
    assert_int_equal(t->close_code, 1005);
    t_free(t);
}

static void test_server_close_handshake(void **state) {
    T *t = t_new(0, 0);
    assert_int_equal(ws_session_close(t->s, 1001, "bye"), WS_OK);
    size_t off = 0;
    frame f;
    assert_int_equal(dec(t, &off, &f), 0);
    assert_int_equal(f.opcode, 0x8);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.payload, "\x03\xe9" "bye", 5);
    assert_true(ws_session_closing(t->s));
    assert_false(ws_session_done(t->s));
    assert_int_equal(t->closes, 0);
    assert_int_equal(ws_session_send(t->s, WS_TEXT, "x", 1), WS_CLOSED);
    assert_int_equal(ws_session_close(t->s, 1000, NULL), WS_CLOSED);
    /* the peer may still send data before its close reply */
    assert_int_equal(feed_frame(t, 1, 0x1, "in flight", 9), WS_OK);
    assert_int_equal(t->nmsgs, 1);
    t_clear_out(t);
    assert_int_equal(feed_close(t, 1000, NULL), WS_OK);
    assert_int_equal(t->out_len, 0); /* no second close frame */
    assert_int_equal(t->closes, 1);
    assert_int_equal(t->close_code, 1001);
    assert_true(ws_session_done(t->s));
    t_free(t);
}

static void test_close_argument_checks(void **state) {
    T *t = t_new(0, 0);
    char longr[125];
    memset(longr, 'r', 124);
    longr[124] = '\0';
    assert_int_equal(ws_session_close(t->s, 1000, longr), WS_ERR); /* 124 > 123 */
    assert_int_equal(ws_session_close(t->s, 1005, NULL), WS_ERR);  /* reserved */
    assert_int_equal(ws_session_close(t->s, 999, NULL), WS_ERR);
    assert_int_equal(ws_session_close(t->s, 1000, "\xff"), WS_ERR);
    assert_int_equal(t->out_len, 0);
    longr[123] = '\0';
    assert_int_equal(ws_session_close(t->s, 4000, longr), WS_OK);
    size_t off = 0;
    frame f;
    assert_int_equal(dec(t, &off, &f), 0);
    assert_int_equal(f.len, 125);
    t_free(t);
}

static void test_close_from_on_close_free(void **state) {
    /* on_close may free the session. */
    T *t = t_new(0, 0);
    t->free_on_close = 1;
    assert_int_equal(feed_close(t, 1000, NULL), WS_OK);
    assert_null(t->s);
    assert_int_equal(t->closes, 1);
    t_free(t);
}

/* ---- protocol errors and limits ---------------------------------------------------------- */

static void test_too_big(void **state) {
    T *t = t_new(16, 0);
    uint8_t p[17];
    memset(p, 'a', sizeof p);
    expect_failed(t, feed_frame(t, 1, 0x1, p, 17), 1009);
    assert_int_equal(t->nmsgs, 0);
    t_free(t);
    /* exactly the limit is fine */
    t = t_new(16, 0);
    assert_int_equal(feed_frame(t, 1, 0x1, p, 16), WS_OK);
    assert_int_equal(t->nmsgs, 1);
    t_free(t);
    /* the limit is on the whole message, not each fragment */
    t = t_new(16, 0);
    assert_int_equal(feed_frame(t, 0, 0x2, p, 10), WS_OK);
    expect_failed(t, feed_frame(t, 1, 0x0, p, 10), 1009);
    assert_int_equal(t->nmsgs, 0);
    t_free(t);
    /* a huge declared length is refused at the first payload byte, before
     * anything is allocated for it (wslay reports a frame with its data) */
    t = t_new(0, 0);
    uint8_t h[] = {0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4, 'x'};
    assert_int_equal(ws_session_feed(t->s, h, sizeof h - 1), WS_OK);
    expect_failed(t, ws_session_feed(t->s, h + sizeof h - 1, 1), 1009);
    t_free(t);
}

static void test_invalid_utf8(void **state) {
    const char *bad[] = {
        "\xff",                 /* never valid */
        "ab\xc0\xaf",           /* overlong '/' */
        "\xed\xa0\x80",         /* surrogate */
        "\xf4\x90\x80\x80",     /* above U+10FFFF */
        "\xe2\x82",             /* truncated at the end */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        T *t = t_new(0, 0);
        expect_failed(t, feed_frame(t, 1, 0x1, bad[i], strlen(bad[i])), 1007);
        assert_int_equal(t->nmsgs, 0);
        t_free(t);
    }
    /* the same bytes are fine as binary */
    T *t = t_new(0, 0);
    assert_int_equal(feed_frame(t, 1, 0x2, "\xff", 1), WS_OK);
    assert_int_equal(t->nmsgs, 1);
    t_free(t);
    /* invalid across fragments */
    t = t_new(0, 0);
    assert_int_equal(feed_frame(t, 0, 0x1, "ok\xe2", 3), WS_OK);
    expect_failed(t, feed_frame(t, 1, 0x0, "\x28", 1), 1007);
    assert_int_equal(t->nmsgs, 0);
    t_free(t);
    /* invalid close reason */
    t = t_new(0, 0);
    expect_failed(t, feed_frame(t, 1, 0x8, "\x03\xe8\xff", 3), 1007);
    t_free(t);
}

static void test_unmasked_frame(void **state) {
    T *t = t_new(0, 0);
    uint8_t buf[16];
    size_t n = enc_raw(buf, 0x81, 0, "hi", 2);
    expect_failed(t, ws_session_feed(t->s, buf, n), 1002);
    assert_int_equal(t->nmsgs, 0);
    t_free(t);
}

static void test_protocol_errors(void **state) {
    uint8_t p[200];
    memset(p, 'x', sizeof p);
    struct {
        const char *name;
        uint8_t b0;
        size_t len;
    } cases[] = {
        {"ping > 125", 0x89, 126},
        {"fragmented ping", 0x09, 1},
        {"reserved data opcode", 0x83, 1},
        {"reserved control opcode", 0x8B, 0},
        {"rsv1 without extension", 0xC1, 1},
        {"continuation with nothing to continue", 0x80, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        T *t = t_new(0, 0);
        uint8_t buf[256];
        size_t n = enc_raw(buf, cases[i].b0, 1, p, cases[i].len);
        print_message("case: %s\n", cases[i].name);
        expect_failed(t, ws_session_feed(t->s, buf, n), 1002);
        assert_int_equal(t->nmsgs, 0);
        t_free(t);
    }
    /* new data message while a fragmented one is open */
    T *t = t_new(0, 0);
    assert_int_equal(feed_frame(t, 0, 0x1, "a", 1), WS_OK);
    expect_failed(t, feed_frame(t, 1, 0x1, "b", 1), 1002);
    t_free(t);
    /* non-minimal 16-bit and 64-bit lengths */
    uint8_t h16[] = {0x82, 0xfe, 0x00, 0x05, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e'};
    t = t_new(0, 0);
    expect_failed(t, ws_session_feed(t->s, h16, sizeof h16), 1002);
    t_free(t);
    uint8_t h64[] = {0x82, 0xff, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 1, 2, 3, 4};
    t = t_new(0, 0);
    expect_failed(t, ws_session_feed(t->s, h64, sizeof h64), 1002);
    t_free(t);
    /* close codes: 1 byte, reserved on the wire, out of range */
    t = t_new(0, 0);
    expect_failed(t, feed_frame(t, 1, 0x8, "\x03", 1), 1002);
    t_free(t);
    t = t_new(0, 0);
    expect_failed(t, feed_close(t, 1005, NULL), 1002);
    t_free(t);
    t = t_new(0, 0);
    expect_failed(t, feed_close(t, 999, NULL), 1002);
    t_free(t);
    /* the bad header can arrive a byte at a time */
    t = t_new(0, 0);
    assert_int_equal(ws_session_feed(t->s, h16, 1), WS_OK);
    assert_int_equal(ws_session_feed(t->s, h16 + 1, 1), WS_OK);
    assert_int_equal(ws_session_feed(t->s, h16 + 2, 1), WS_OK);
    expect_failed(t, ws_session_feed(t->s, h16 + 3, 1), 1002);
    t_free(t);
}

/* ---- transport and allocation failures ------------------------------------------------------ */

static void test_write_failure(void **state) {
    /* during feed (the pong) */
    T *t = t_new(0, 0);
    t->fail_write = 1;
    assert_int_equal(feed_frame(t, 1, 0x9, "", 0), WS_ERR);
    assert_int_equal(t->closes, 1);
    assert_int_equal(t->close_code, 1006);
    assert_true(ws_session_done(t->s));
    assert_true(ws_session_closing(t->s));
    t->fail_write = 0;
    assert_int_equal(ws_session_send(t->s, WS_TEXT, "x", 1), WS_CLOSED);
    assert_int_equal(feed_frame(t, 1, 0x1, "x", 1), WS_ERR);
    assert_int_equal(t->nmsgs, 0);
    assert_int_equal(t->closes, 1);
    assert_int_equal(t->out_len, 0);
    t_free(t);
    /* during send */
    t = t_new(0, 0);
    t->fail_write = 1;
    assert_int_equal(ws_session_send(t->s, WS_TEXT, "x", 1), WS_CLOSED);
    assert_int_equal(t->closes, 1);
    assert_int_equal(t->close_code, 1006);
    assert_true(ws_session_done(t->s));
    assert_int_equal(ws_session_ping(t->s), WS_CLOSED);
    assert_int_equal(t->closes, 1);
    t_free(t);
    /* while answering the peer's close */
    t = t_new(0, 0);
    t->fail_write = 1;
    assert_int_equal(feed_close(t, 1000, NULL), WS_ERR);
    assert_int_equal(t->closes, 1);
    assert_int_equal(t->close_code, 1006);
    t_free(t);
}

/* One session's life: messages, a fragmented one, a ping, a reply, close. */
static void scenario(ws_session *s) {
    uint8_t buf[1024];
    uint8_t big[600];
    memset(big, 'b', sizeof big);
    size_t n = enc(buf, 1, 0x1, "hello", 5);
    n += enc(buf + n, 0, 0x2, big, 300);
    n += enc(buf + n, 1, 0x9, "p", 1);
    n += enc(buf + n, 1, 0x0, big, 300);
    (void)ws_session_feed(s, buf, n);
    (void)ws_session_send(s, WS_TEXT, "reply", 5);
    (void)ws_session_ping(s);
    (void)ws_session_close(s, 1000, "bye");
    n = enc(buf, 1, 0x8, "\x03\xe8", 2);
    (void)ws_session_feed(s, buf, n);
}

static void test_alloc_failures(void **state) {
    /* Fail the k-th allocation for every k the scenario makes; wslay's own
     * allocations use plain malloc and are not covered. */
    for (long k = 0; k < 64; k++) {
        T *t = calloc(1, sizeof *t);
        assert_non_null(t);
        t->echo = 1;
        ws_callbacks cb = {t, t_write, t_message, t_close, t_pong};
        eh_alloc_fail_after(k);
        t->s = ws_session_new(NULL, &cb);
        if (t->s) scenario(t->s);
        eh_alloc_fail_after(-1);
        if (t->s) assert_true(t->closes <= 1);
        t_free(t);
    }
    /* reassembly OOM closes with 1011 */
    T *t = t_new(0, 0);
    eh_alloc_fail_after(0);
    int rc = feed_frame(t, 1, 0x1, "hello", 5);
    eh_alloc_fail_after(-1);
    expect_failed(t, rc, 1011);
    assert_int_equal(t->nmsgs, 0);
    t_free(t);
}

static void test_new_arguments(void **state) {
    ws_callbacks cb = {0};
    assert_null(ws_session_new(NULL, &cb));
    assert_null(ws_session_new(NULL, NULL));
    ws_session_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_rfc_example),
        cmocka_unit_test(test_accept_invalid_keys),
        cmocka_unit_test(test_text_message),
        cmocka_unit_test(test_large_message_64bit_length),
        cmocka_unit_test(test_fragmented_message),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_every_split_point),
        cmocka_unit_test(test_ping_pong),
        cmocka_unit_test(test_truncated_frame_waits),
        cmocka_unit_test(test_send_frame_headers),
        cmocka_unit_test(test_frame_header_matches_session),
        cmocka_unit_test(test_raw_ok),
        cmocka_unit_test(test_max_queue),
        cmocka_unit_test(test_echo_inside_feed),
        cmocka_unit_test(test_client_close),
        cmocka_unit_test(test_client_close_without_code),
        cmocka_unit_test(test_server_close_handshake),
        cmocka_unit_test(test_close_argument_checks),
        cmocka_unit_test(test_close_from_on_close_free),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_unmasked_frame),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_write_failure),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_new_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
