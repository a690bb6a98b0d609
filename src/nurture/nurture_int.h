/* Shared between the nurture module's files; the module's interface is
 * nurture.h. */
#ifndef EH_NURTURE_INT_H
#define EH_NURTURE_INT_H

#include <stdint.h>

#include "nurture.h"

struct app;

/* Queues the first action step at or after `step` of an enrollment (waits
 * before it add to due), or completes the enrollment (sequence.c). */
int nurture_schedule(store_tx *tx, int64_t enrollment, const json_t *steps, int step, int64_t due, int64_t now_ms,
                     store_err *err);
/* When quiet hours (minutes after local midnight: start..end, wrapping
 * midnight when start > end) end for a lead in time zone tz, if now_ms is
 * inside them; 0 when it is not. Unknown zones are America/New_York. */
int64_t nurture_quiet_until(const char *tz, int quiet_start, int quiet_end, int64_t now_ms);

/* ---- provider.c ---- */

/* "N/s", "N/m", "N/h": 0 with *n and *window_ms, or -1. */
int nurture_rate_parse(const char *s, int *n, int64_t *window_ms);

/* At most `limit` requests per tenant in any window_ms, as the provider
 * sees them. Not thread-safe: the caller holds its lock. */
typedef struct nurture_window nurture_window;
nurture_window *nurture_window_new(int limit, int64_t window_ms); /* NULL on OOM */
void nurture_window_free(nurture_window *w);
/* 0 and *slot when a request may start now, else the time to try again. */
int64_t nurture_window_take(nurture_window *w, int64_t tenant, int64_t now, int *slot);
/* The request of `slot` ended at `end` (slot < 0: none to release);
 * retry_after_until > 0: the provider said wait until then (429). */
void nurture_window_done(nurture_window *w, int64_t tenant, int slot, int64_t end, int64_t retry_after_until);
/* The request of `slot` will not be made after all (another limiter said
 * wait): the slot is free again, as it was before the take. */
void nurture_window_release(nurture_window *w, int64_t tenant, int slot);

/* ---- limit.c ----
 * A provider's per-tenant window ("limit requests in any window_ms"): this
 * node's, and with --bus redis:// also the one every node shares through
 * Redis (keys ehub:<name>:w:<tenant>); the node's alone while Redis does
 * not answer. Thread-safe; take and done may wait for Redis (short
 * timeouts), so they run on pool threads, never on the loop. */
typedef struct nurture_limit nurture_limit;
typedef struct nurture_lease {
    int slot;        /* the node's window's slot held, or -1 */
    int shared;      /* counted in the shared window too, as member */
    char member[40];
} nurture_lease;
/* name: "ghl", "apollo" (the Redis keys and the metrics
 * ehub_nurture_<name>_paced_total{window}, and with Redis
 * ehub_nurture_<name>_window_fallbacks_total and _window_shared); title and
 * what name it in the log ("GoHighLevel", "sends"). hold_ms: how long a
 * shared entry counts as in flight if its node never says it ended. NULL on
 * OOM or when the Redis URL is unusable (logged). The caller frees it. */
nurture_limit *nurture_limit_new(struct app *a, const char *name, const char *title, const char *what, int limit,
                                 int64_t window_ms, int64_t hold_ms);
void nurture_limit_free(nurture_limit *l);
int nurture_limit_max(const nurture_limit *l);
int64_t nurture_limit_window_ms(const nurture_limit *l);
/* 0 when a request may start now (ls holds its place in each window that
 * applies), else when to ask again (ls holds nothing). */
int64_t nurture_limit_take(nurture_limit *l, int64_t tenant, int64_t now, nurture_lease *ls);
/* ls's request ended at `end` (or will not be made: call it all the same);
 * retry_after_until > end: the provider said wait until then (a 429), for
 * every node. ls holds nothing after. */
void nurture_limit_done(nurture_limit *l, int64_t tenant, nurture_lease *ls, int64_t end, int64_t retry_after_until);

/* When local time in tz is next in [start, end) (minutes after midnight,
 * wrapping when start > end): t itself if it already is. */
int64_t nurture_window_opens(const char *tz, int start, int end, int64_t t);

/* Email as SMTP carries it: multipart/alternative with a text part made
 * from the HTML and the HTML part (both base64), Subject RFC 2047-encoded
 * when not ASCII. 0, or -1 (out of memory or over out's cap). */
int nurture_mime(buf *out, const char *from, const char *to, const char *subject, const char *html,
                 const char *message_id, int64_t date_ms);
int nurture_html_to_text(const char *html, buf *out);
/* The other way, for what an agent typed: HTML-escaped, line breaks as
 * <br>. 0, or a BUF_* error (out's cap). */
int nurture_text_to_html(const char *text, buf *out);
/* 0 if ref is "env:EHUB_SMTP_..." or "file:NAME" (a plain file name). */
int nurture_secret_ref_ok(const char *ref);
/* Resolves such a reference (files: in secrets_dir) into out, first line
 * only. 0, or -1 with err. */
int nurture_secret_read(const char *ref, const char *secrets_dir, char *out, size_t cap, char *err, size_t errlen);

/* ---- enrich.c: Apollo enrichment and the "gone cold" trigger ---- */
struct app;
typedef struct nurture_bg nurture_bg;
nurture_bg *nurture_bg_new(struct app *a); /* NULL on OOM */
void nurture_bg_free(nurture_bg *b);
/* On the loop: 1 when a round is due (at most one runs at a time). */
int nurture_bg_due(nurture_bg *b, int64_t now_ms);
/* A round is three stages. On the pool: the enrichments due claimed and
 * their Apollo requests built, and the cold scan when due. */
void nurture_bg_work(nurture_bg *b);
/* On the loop: the requests started on cl; sent(ud) runs on the loop when
 * the last has ended. Returns how many started (0: sent is not called). */
struct curlloop;
int nurture_bg_send(nurture_bg *b, struct curlloop *cl, void (*sent)(void *ud), void *ud);
/* On the pool: the answers recorded. Always after nurture_bg_work. */
void nurture_bg_record(nurture_bg *b);

/* POST /v1/leads/{id}/messages (message.c). */
int nurture_message_register(struct app *a);

/* The dispatcher's timer on the app's loop (send.c). */
nurture_ctx *nurture_ctx_start(struct app *a);

#endif
