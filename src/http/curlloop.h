/* curlloop — libcurl transfers driven by the libuv loop.
 *
 * One curl multi handle whose sockets are watched with uv_poll
 * (CURLMOPT_SOCKETFUNCTION) and whose timeouts are a uv_timer
 * (CURLMOPT_TIMERFUNCTION); curl_multi_socket_action runs on the loop
 * thread when a socket is ready or the timer fires, and a transfer's
 * completion callback runs on the loop thread too. Nothing here blocks:
 * name resolution is curl's threaded resolver, and connections stay in the
 * multi handle's cache, so a provider called again reuses its connection.
 *
 * Everything is loop-thread only. An easy handle may be built and read on
 * any thread (the thread pool does, for nurture), but between
 * curlloop_add and its callback it belongs to the loop; curlloop uses its
 * CURLOPT_PRIVATE meanwhile. At most `max_active` transfers run at once;
 * more wait in order (up to `max_queued`), and curlloop_add refuses past
 * that. Each transfer still needs its own CURLOPT_TIMEOUT_MS: the waiting
 * time before it starts is bounded by the ones ahead of it.
 *
 * Shutdown: curlloop_close refuses new transfers, lets the running and
 * waiting ones finish for at most grace_ms, then ends the rest with
 * CURLE_ABORTED_BY_CALLBACK (their callbacks run, on the loop), closes its
 * handles, and calls closed(ud) when its memory is gone. */
#ifndef EH_CURLLOOP_H
#define EH_CURLLOOP_H

#include <curl/curl.h>
#include <stdint.h>
#include <uv.h>

typedef struct curlloop curlloop;

/* A transfer ended: cc is its result (CURLE_OK: read the response code
 * with curl_easy_getinfo). The handle is out of the multi handle and the
 * caller's again (to clean up, or to read on another thread). */
typedef void (*curlloop_done_fn)(CURL *h, CURLcode cc, void *ud);

/* NULL on OOM or if curl's multi interface cannot be set up. Calls
 * curl_global_init (idempotent; first call before any other thread uses
 * libcurl). */
curlloop *curlloop_new(uv_loop_t *loop, int max_active, int max_queued);

/* Starts h (or queues it behind max_active). 0, or -1 when closing, the
 * queue is full or memory is short: then done is never called. */
int curlloop_add(curlloop *cl, CURL *h, curlloop_done_fn done, void *ud);

/* Transfers running, and waiting to run. */
int curlloop_active(const curlloop *cl);
int curlloop_queued(const curlloop *cl);

/* See above. grace_ms 0: end every transfer now. cl is invalid once
 * closed(ud) has run (closed may be NULL). Calling it twice does nothing. */
void curlloop_close(curlloop *cl, uint64_t grace_ms, void (*closed)(void *ud), void *ud);

#endif
