/* ws — an RFC 6455 WebSocket session over any byte transport, built on
 * wslay's event API.
 *
 * The session knows nothing of sockets: the owner feeds it the bytes it
 * received (ws_session_feed) and gives it a write callback through which
 * it emits frames. That keeps the protocol engine testable and fuzzable
 * apart from libuv; src/http/server.c glues it to a TCP connection after the
 * HTTP Upgrade handshake (ws_handshake_accept computes the accept key).
 *
 * Server side only: incoming frames must be masked, outgoing are not.
 * Limits: a message larger than max_message closes the session with 1009;
 * outgoing bytes not yet accepted by the transport are bounded by
 * max_queue: ws_session_send returns WS_EQUEUE past it and the owner
 * disconnects the slow consumer (1008). Not thread-safe: one thread (the
 * event loop) per session. */
#ifndef EH_WS_H
#define EH_WS_H

#include <stddef.h>
#include <stdint.h>

typedef struct ws_session ws_session;

enum {
    WS_OK = 0,
    WS_ERR = -1,     /* protocol error: the session is closing */
    WS_NOMEM = -2,
    WS_EQUEUE = -3,  /* send queue bound exceeded */
    WS_CLOSED = -4,  /* the session is closed or closing; nothing more can be sent */
};

enum { WS_TEXT = 1, WS_BINARY = 2 };

typedef struct ws_limits {
    size_t max_message;  /* largest incoming message in bytes (0 = 1 MiB) */
    size_t max_queue;    /* largest outgoing backlog in bytes (0 = 1 MiB) */
} ws_limits;

typedef struct ws_callbacks {
    void *ud;
    /* Hands len bytes to the transport. Return 0 if all were taken (copied),
     * -1 on a transport error (the session then stops). */
    int (*write)(void *ud, const uint8_t *data, size_t len);
    /* A complete message arrived (opcode WS_TEXT or WS_BINARY). data is
     * valid only during the call. Text messages are checked to be valid UTF-8
     * before delivery (invalid ones close the session with 1007). */
    void (*on_message)(void *ud, int opcode, const uint8_t *data, size_t len);
    /* The session ended: the close handshake finished, the peer closed, or a
     * protocol error/limit closed it. code is the close code sent or received
     * (1005 if none; 1006 if the transport failed). After this the owner
     * should close the transport once its pending writes are flushed. Called
     * at most once, always as the last thing a ws_session_* call does, so it
     * may free the session; the other callbacks must not. May be NULL. */
    void (*on_close)(void *ud, uint16_t code);
    /* A pong arrived (for keepalive bookkeeping). May be NULL. */
    void (*on_pong)(void *ud);
} ws_callbacks;

/* Creates a session; callbacks are copied. Returns NULL on OOM or if
 * cb->write is NULL. */
ws_session *ws_session_new(const ws_limits *limits, const ws_callbacks *cb);
/* Frees the session; no callback is called. NULL is a no-op. */
void ws_session_free(ws_session *s);

/* Processes received bytes: may call on_message/on_close/on_pong and write
 * (pongs, close replies). Returns WS_OK, or WS_ERR once the session is
 * closing because of bad input (or out of memory, or a write failure). */
int ws_session_feed(ws_session *s, const uint8_t *data, size_t len);

/* Queues a message and writes what the transport takes. Called from
 * on_message, the frame is written when ws_session_feed finishes and counts
 * toward max_queue until then. */
int ws_session_send(ws_session *s, int opcode, const void *data, size_t len);
int ws_session_ping(ws_session *s);
/* Starts the close handshake with code and reason (reason <= 123 bytes). */
int ws_session_close(ws_session *s, uint16_t code, const char *reason);

/* Bytes queued inside the session and not yet handed to write. */
size_t ws_session_queued(const ws_session *s);
/* 1 once a close frame has been sent or received, or an error occurred. */
int ws_session_closing(const ws_session *s);
/* 1 when nothing more will be read or written (handshake complete or
 * failed): the owner may close the transport. */
int ws_session_done(const ws_session *s);

/* ---- pre-encoded frames (fan-out) ----
 * A server frame is unmasked, so one message sent to many sessions is the
 * same bytes on every connection: the owner encodes it once
 * (ws_frame_header + payload) and hands those bytes to each transport
 * itself, bypassing the session's queue, when ws_session_raw_ok says that
 * keeps the order of the session's own frames. */

#define WS_FRAME_HEADER_MAX 10
/* Writes the header of one final, unmasked frame (opcode WS_TEXT or
 * WS_BINARY) of len payload bytes to out (WS_FRAME_HEADER_MAX bytes).
 * Returns the header length (2, 4 or 10), or 0 for a bad opcode. */
size_t ws_frame_header(uint8_t *out, int opcode, size_t len);
/* 1 if a pre-encoded data frame may be written to the transport now: the
 * session is open (no close sent, received or queued), nothing is queued
 * inside it, and the call is not from inside ws_session_feed (where sends
 * are deferred until feed returns, so a direct write would overtake them). */
int ws_session_raw_ok(const ws_session *s);

/* Computes Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (which
 * must be 24 base64 chars decoding to 16 bytes). out must hold 29 bytes.
 * Returns 0, or -1 if the key is invalid. */
int ws_handshake_accept(const char *key, size_t keylen, char *out, size_t outlen);

#endif
