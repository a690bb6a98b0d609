/* ws — RFC 6455 session on top of wslay's event API (see ws.h).
 *
 * How the pieces fit:
 * - Input is push-based: ws_session_feed points s->in at the caller's bytes
 *   and runs wslay_event_recv, whose recv callback copies from s->in and
 *   reports WOULDBLOCK once nothing is left to hand over.
 * - Output: wslay's send callback hands every byte to cb.write, which takes
 *   all or fails, so after each public call wslay's queue is empty unless we
 *   are inside wslay_event_recv. Sends made from on_message are queued and
 *   flushed when feed finishes; that deferred backlog is what max_queue
 *   bounds (a client pipelining requests cannot make us buffer unboundedly).
 * - Data messages are reassembled here (wslay's no-buffering mode) in a
 *   capped buf, so the memory goes through eh_malloc, can be failure-injected
 *   by tests, and is held once rather than twice (wslay would keep chunks and
 *   then a flattened copy).
 * - A small frame-header scanner sits in front of wslay (release_len). wslay
 *   answers header-level violations (oversized or fragmented control frames,
 *   non-minimal lengths) with a close frame carrying no status code; we stop
 *   before such a header and send 1002 ourselves. It also hands control
 *   frames to wslay only whole: wslay validates a close reason's UTF-8
 *   per received chunk, skipping the first two bytes of *every* chunk, so a
 *   close frame split across reads could be wrongly rejected with 1007.
 * - on_close is invoked only as the last action of a public function, never
 *   from inside wslay, so the owner may free the session from it. */
#include "http/ws.h"

#include <openssl/evp.h>
#include <string.h>
#include <wslay/wslay.h>

#include "base/alloc.h"
#include "base/buf.h"

#define WS_DEFAULT_LIMIT ((size_t)1 << 20)
/* Largest control frame on the wire: 2-byte header, 4-byte mask, 125 bytes. */
#define WS_MAX_CTRL_FRAME 131

struct ws_session {
    wslay_event_context_ptr ctx;
    ws_callbacks cb;
    size_t max_message;
    size_t max_queue;

    buf msg;              /* data message being reassembled */
    uint8_t cur_opcode;   /* opcode of the frame being received */

    /* Bytes being handed to wslay by recv_cb. */
    const uint8_t *in;
    size_t in_len;

    /* Frame scanner state, in step with wslay's own parser. */
    uint8_t hdr[14];      /* data-frame header bytes seen so far */
    uint8_t hdr_len;
    uint64_t skip;        /* bytes of the current frame still to pass through */
    /* An incomplete control frame held back until it is whole. */
    uint8_t pend[WS_MAX_CTRL_FRAME];
    size_t pend_len;

    unsigned hdr_bad : 1;      /* scanner found a header wslay would reject */
    unsigned in_recv : 1;      /* inside wslay_event_recv: defer writes */
    unsigned failing : 1;      /* we queued an error close; ignore further input */
    unsigned input_error : 1;  /* feed's sticky WS_ERR */
    unsigned close_queued : 1; /* the owner asked to close */
    unsigned dead : 1;         /* transport failed: nothing more goes out */
    unsigned closed_cb : 1;    /* on_close already called */
};

/* ---- UTF-8 ---------------------------------------------------------------
 * Strict RFC 3629 validation: no overlongs, surrogates or code points above
 * U+10FFFF, as RFC 6455 §8.1 requires for text messages and close reasons. */
static int utf8_valid(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) { i++; continue; }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the first continuation byte */
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) { need = 2; lo = 0xA0; }
        else if (c == 0xED) { need = 2; hi = 0x9F; }
        else if (c >= 0xE1 && c <= 0xEF) need = 2;
        else if (c == 0xF0) { need = 3; lo = 0x90; }
        else if (c == 0xF4) { need = 3; hi = 0x8F; }
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else return 0;
        if (n - i - 1 < need) return 0;
        if (p[i + 1] < lo || p[i + 1] > hi) return 0;
        for (size_t k = 2; k <= need; k++)
            if ((p[i + k] & 0xC0) != 0x80) return 0;
        i += need + 1;
    }
    return 1;
}

/* ---- state helpers --------------------------------------------------------- */

static int is_done(const ws_session *s) {
    return s->dead || (!wslay_event_get_read_enabled(s->ctx) &&
                       !wslay_event_get_write_enabled(s->ctx));
}

/* Fails the connection from our side: queue a close with code, read no more.
 * If the close cannot even be queued (OOM) there is nothing to tell the peer,
 * so writing stops too and the session is done. */
static void fail_close(ws_session *s, uint16_t code) {
    if (s->failing) return;
    s->failing = 1;
    s->input_error = 1;
    /* "" rather than NULL: wslay memcpy()s the reason even when it is empty. */
    int r = wslay_event_queue_close(s->ctx, code, (const uint8_t *)"", 0);
    if (r != 0 && r != WSLAY_ERR_NO_MORE_MSG) wslay_event_shutdown_write(s->ctx);
    wslay_event_shutdown_read(s->ctx);
}

/* Writes everything wslay has queued. A failure of any kind leaves the
 * transport in an unknown state, so the session is over (1006). */
static void flush(ws_session *s) {
    if (s->dead) return;
    if (wslay_event_send(s->ctx) != 0) {
        s->dead = 1;
        wslay_event_shutdown_read(s->ctx);
        wslay_event_shutdown_write(s->ctx);
    }
}

/* Must be the last thing a public function does: on_close may free s. */
static void check_done(ws_session *s) {
    if (s->closed_cb || !is_done(s)) return;
    s->closed_cb = 1;
    /* The code we sent is the peer's own when we were echoing its close;
     * otherwise it is the reason we closed. 1006 when no close went out. */
    uint16_t code = s->dead ? WSLAY_CODE_ABNORMAL_CLOSURE
                            : wslay_event_get_status_code_sent(s->ctx);
    if (s->cb.on_close) s->cb.on_close(s->cb.ud, code);
}

/* ---- frame scanner ----------------------------------------------------------
 * Mirrors wslay_frame_recv's header parsing closely enough to know where
 * frames start and to catch the violations it reports as WSLAY_ERR_PROTO. */

/* Total wire length of the control frame starting at p (len bytes
 * available): 2 while the length byte is missing, 0 if the header is one
 * wslay would reject. */
static size_t ctrl_frame_len(const uint8_t *p, size_t len) {
    if (len < 2) return 2;
    size_t len7 = p[1] & 0x7f;
    if (!(p[0] & 0x80) || len7 > 125) return 0;
    return 2 + ((p[1] & 0x80) ? 4 : 0) + len7;
}

/* How many of the avail input bytes at p may go to wslay now, at most cap
 * (the free space in wslay's buffer). */
static size_t release_len(ws_session *s, const uint8_t *p, size_t avail, size_t cap) {
    size_t i = 0;
    size_t lim = cap < avail ? cap : avail;
    while (i < lim && !s->hdr_bad) {
        if (s->skip > 0) {
            size_t k = lim - i;
            if (k > s->skip) k = (size_t)s->skip;
            i += k;
            s->skip -= k;
            continue;
        }
        if (s->hdr_len == 0 && (p[i] & 0x08)) {
            /* Control frame: held back until the input has all of it (see
             * the top comment). One that is whole but exceeds cap still
             * passes in pieces; wslay asks for input only when fewer than
             * 8 bytes of its 4 KiB buffer are unread, so that does not
             * happen in practice. */
            size_t total = ctrl_frame_len(p + i, avail - i);
            if (total == 0) { s->hdr_bad = 1; break; }
            if (avail - i < total) break;
            s->skip = total;
            continue;
        }
        /* A data-frame header byte. */
        s->hdr[s->hdr_len] = p[i];
        size_t hl = (size_t)s->hdr_len + 1;
        if (hl >= 2) {
            size_t len7 = s->hdr[1] & 0x7f;
            size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
            size_t hend = 2 + ext + ((s->hdr[1] & 0x80) ? 4 : 0);
            uint64_t plen = len7;
            if (ext && hl >= 2 + ext) {
                plen = 0;
                for (size_t k = 0; k < ext; k++) plen = (plen << 8) | s->hdr[2 + k];
                /* RFC 6455 §5.2: the minimal length encoding, 63-bit max.
                 * Stop before the byte that completes a bad length so wslay
                 * never sees it. */
                if ((ext == 2 && plen < 126) ||
                    (ext == 8 && (plen < 65536 || (plen >> 63)))) {
                    s->hdr_bad = 1;
                    break;
                }
            }
            if (hl == hend) {
                s->skip = plen;
                hl = 0;
            }
        }
        s->hdr_len = (uint8_t)hl;
        i++;
    }
    return i;
}

/* ---- wslay callbacks ---------------------------------------------------------- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *out, size_t len, int flags,
                       void *ud) {
    ws_session *s = ud;
    size_t n = release_len(s, s->in, s->in_len, len);
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(out, s->in, n);
    s->in += n;
    s->in_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                       int flags, void *ud) {
    ws_session *s = ud;
    if (s->cb.write(s->cb.ud, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void frame_start_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *ud) {
    ws_session *s = ud;
    s->cur_opcode = arg->opcode;
    if (s->failing) return;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->payload_length == 1) {
        /* A status code is two bytes; wslay would read one byte as "no code". */
        fail_close(s, WSLAY_CODE_PROTOCOL_ERROR);
    } else if (!wslay_is_ctrl_frame(arg->opcode) &&
               arg->payload_length > s->max_message - s->msg.len) {
        /* wslay checks each frame alone in no-buffering mode; the limit is
         * on the whole message. */
        fail_close(s, WSLAY_CODE_MESSAGE_TOO_BIG);
    }
}

static void frame_chunk_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *ud) {
    ws_session *s = ud;
    if (s->failing) return;
    /* Control payloads are buffered by wslay itself, which also checks a
     * close reason's UTF-8 (correctly, since the scanner hands it whole
     * frames). */
    if (wslay_is_ctrl_frame(s->cur_opcode)) return;
    if (buf_append(&s->msg, arg->data, arg->data_length) != BUF_OK)
        fail_close(s, WSLAY_CODE_INTERNAL_SERVER_ERROR); /* OOM: the cap was checked */
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud) {
    ws_session *s = ud;
    /* wslay finishes the frame in hand even after we stopped reading. */
    if (s->failing) return;
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        /* wslay checks text incrementally too; this keeps ws.h's promise
         * whatever the library version does. */
        if (arg->opcode == WSLAY_TEXT_FRAME &&
            !utf8_valid((const uint8_t *)s->msg.p, s->msg.len)) {
            fail_close(s, WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA);
            return;
        }
        static const uint8_t empty[1];
        const uint8_t *data = s->msg.len ? (const uint8_t *)s->msg.p : empty;
        if (s->cb.on_message)
            s->cb.on_message(s->cb.ud, arg->opcode == WSLAY_TEXT_FRAME ? WS_TEXT : WS_BINARY,
                             data, s->msg.len);
        /* Keep a small buffer for the next message; give back big ones so an
         * idle connection stays cheap. */
        if (s->msg.cap > 4096) buf_free(&s->msg);
        else buf_reset(&s->msg);
    } else if (arg->opcode == WSLAY_PONG) {
        if (s->cb.on_pong) s->cb.on_pong(s->cb.ud);
    }
    /* Pings and closes are answered by wslay itself. */
}

/* ---- public API ------------------------------------------------------------------ */

ws_session *ws_session_new(const ws_limits *limits, const ws_callbacks *cb) {
    if (!cb || !cb->write) return NULL;
    ws_session *s = eh_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cb = *cb;
    s->max_message = limits && limits->max_message ? limits->max_message : WS_DEFAULT_LIMIT;
    s->max_queue = limits && limits->max_queue ? limits->max_queue : WS_DEFAULT_LIMIT;
    buf_init(&s->msg, s->max_message);
    struct wslay_event_callbacks wcb = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_frame_recv_start_callback = frame_start_cb,
        .on_frame_recv_chunk_callback = frame_chunk_cb,
        .on_msg_recv_callback = msg_cb,
    };
    if (wslay_event_context_server_init(&s->ctx, &wcb, s) != 0) {
        eh_free(s);
        return NULL;
    }
    wslay_event_config_set_no_buffering(s->ctx, 1);
    /* Per-frame backstop; the per-message limit is ours (frame_start_cb).
     * Never below 125 so a legal ping is not mistaken for a huge message. */
    wslay_event_config_set_max_recv_msg_length(s->ctx,
                                               s->max_message < 125 ? 125 : s->max_message);
    return s;
}

void ws_session_free(ws_session *s) {
    if (!s) return;
    wslay_event_context_free(s->ctx);
    buf_free(&s->msg);
    eh_free(s);
}

/* Hands n bytes at p to wslay; returns how many it did not take. */
static size_t run(ws_session *s, const uint8_t *p, size_t n) {
    s->in = p;
    s->in_len = n;
    s->in_recv = 1;
    int r = wslay_event_recv(s->ctx);
    s->in_recv = 0;
    size_t left = s->in_len;
    s->in = NULL;
    s->in_len = 0;
    if (r != 0) fail_close(s, r == WSLAY_ERR_NOMEM ? WSLAY_CODE_INTERNAL_SERVER_ERROR
                                                   : WSLAY_CODE_PROTOCOL_ERROR);
    return left;
}

int ws_session_feed(ws_session *s, const uint8_t *data, size_t len) {
    if (!s || s->in_recv) return WS_ERR; /* re-entered from on_message */
    if (len && !data) return WS_ERR;
    if (!s->dead && wslay_event_get_read_enabled(s->ctx)) {
        if (s->pend_len > 0) {
            /* Complete the held-back control frame first. */
            for (;;) {
                size_t want = ctrl_frame_len(s->pend, s->pend_len);
                if (want <= s->pend_len || len == 0) break;
                size_t k = want - s->pend_len < len ? want - s->pend_len : len;
                memcpy(s->pend + s->pend_len, data, k);
                s->pend_len += k;
                data += k;
                len -= k;
            }
            if (ctrl_frame_len(s->pend, s->pend_len) <= s->pend_len) {
                run(s, s->pend, s->pend_len);
                s->pend_len = 0;
            }
        }
        if (s->pend_len == 0 && len > 0 && wslay_event_get_read_enabled(s->ctx)) {
            size_t left = run(s, data, len);
            if (left > 0 && wslay_event_get_read_enabled(s->ctx) && !s->hdr_bad) {
                /* Only an incomplete control frame is left behind. */
                if (left <= sizeof s->pend) {
                    memcpy(s->pend, data + (len - left), left);
                    s->pend_len = left;
                } else {
                    fail_close(s, WSLAY_CODE_INTERNAL_SERVER_ERROR); /* scanner out of step */
                }
            }
        }
        if (s->hdr_bad) fail_close(s, WSLAY_CODE_PROTOCOL_ERROR);
        /* wslay stops reading on its own for protocol errors it catches
         * (unmasked frame, bad opcode or RSV, 1009, 1007, bad close code);
         * a received close is the only clean reason. */
        if (!wslay_event_get_read_enabled(s->ctx) && !wslay_event_get_close_received(s->ctx))
            s->input_error = 1;
    }
    flush(s);
    int rc = s->input_error || s->dead ? WS_ERR : WS_OK;
    check_done(s);
    return rc;
}

int ws_session_closing(const ws_session *s) {
    if (!s) return 1;
    return s->dead || s->failing || s->close_queued || !wslay_event_get_read_enabled(s->ctx) ||
           !wslay_event_get_write_enabled(s->ctx) || wslay_event_get_close_sent(s->ctx) ||
           wslay_event_get_close_received(s->ctx);
}

int ws_session_done(const ws_session *s) { return !s || is_done(s); }

/* wslay's count is of payload bytes; frame headers (2-14 bytes each) are
 * left out, which is close enough for a backlog bound. */
size_t ws_session_queued(const ws_session *s) {
    return s ? wslay_event_get_queued_msg_length(s->ctx) : 0;
}

/* Queues one frame and, outside feed, writes it out. */
static int queue(ws_session *s, uint8_t opcode, const void *data, size_t len) {
    if (ws_session_closing(s)) return WS_CLOSED;
    struct wslay_event_msg m = {opcode, data, len};
    int r = wslay_event_queue_msg(s->ctx, &m);
    if (r == WSLAY_ERR_NO_MORE_MSG) return WS_CLOSED;
    if (r == WSLAY_ERR_NOMEM) return WS_NOMEM;
    if (r != 0) return WS_ERR;
    if (s->in_recv) return WS_OK; /* feed flushes when wslay is done */
    flush(s);
    int rc = s->dead ? WS_CLOSED : WS_OK;
    check_done(s);
    return rc;
}

int ws_session_send(ws_session *s, int opcode, const void *data, size_t len) {
    if (!s || (opcode != WS_TEXT && opcode != WS_BINARY) || (len && !data)) return WS_ERR;
    if (ws_session_closing(s)) return WS_CLOSED;
    size_t q = wslay_event_get_queued_msg_length(s->ctx);
    if (len > s->max_queue || q > s->max_queue - len) return WS_EQUEUE;
    return queue(s, opcode == WS_TEXT ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME,
                 len ? data : "", len);
}

int ws_session_ping(ws_session *s) {
    if (!s) return WS_ERR;
    return queue(s, WSLAY_PING, "", 0);
}

/* Codes an endpoint may put on the wire (RFC 6455 §7.4); 1004-1006 and
 * 1015 are reserved. 1012-1014 (IANA: service restart, try again later,
 * bad gateway) are understood by browsers and most clients, though wslay
 * peers reject them; the realtime feed uses 1013 for "lagging, resume
 * later". */
static int sendable_code(uint16_t code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int ws_session_close(ws_session *s, uint16_t code, const char *reason) {
    if (!s) return WS_ERR;
    size_t rl = reason ? strlen(reason) : 0;
    if (!sendable_code(code) || rl > 123 || !utf8_valid((const uint8_t *)reason, rl))
        return WS_ERR;
    if (ws_session_closing(s)) return WS_CLOSED;
    int r = wslay_event_queue_close(s->ctx, code, (const uint8_t *)(rl ? reason : ""), rl);
    if (r == WSLAY_ERR_NO_MORE_MSG) return WS_CLOSED;
    if (r == WSLAY_ERR_NOMEM) return WS_NOMEM;
    if (r != 0) return WS_ERR;
    s->close_queued = 1;
    if (s->in_recv) return WS_OK;
    flush(s);
    int rc = s->dead ? WS_CLOSED : WS_OK;
    check_done(s);
    return rc;
}

size_t ws_frame_header(uint8_t *out, int opcode, size_t len) {
    if (opcode != WS_TEXT && opcode != WS_BINARY) return 0;
    out[0] = (uint8_t)(0x80 | opcode); /* FIN, no RSV bits */
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    uint64_t n = (uint64_t)len;
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(n >> (56 - 8 * i));
    return 10;
}

int ws_session_raw_ok(const ws_session *s) {
    return s && !s->in_recv && !ws_session_closing(s) && wslay_event_get_queued_msg_count(s->ctx) == 0;
}

int ws_handshake_accept(const char *key, size_t keylen, char *out, size_t outlen) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    if (!key || !out || outlen < 29 || keylen != 24) return -1;
    /* 16 bytes encode as 22 base64 characters and "==" (RFC 6455 §4.1). */
    for (size_t i = 0; i < 22; i++) {
        char c = key[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return -1;
    }
    if (key[22] != '=' || key[23] != '=') return -1;
    unsigned char in[24 + sizeof guid - 1];
    memcpy(in, key, 24);
    memcpy(in + 24, guid, sizeof guid - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(in, sizeof in, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) return -1;
    if (EVP_EncodeBlock((unsigned char *)out, md, 20) != 28) return -1;
    return 0;
}
