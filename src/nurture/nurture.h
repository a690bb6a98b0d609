/* nurture — lead recovery and nurture: SMS and email templates, sequences
 * of steps, enrollments, and the durable queue that sends them through
 * Twilio, SendGrid, SMTP or GoHighLevel (see README "Nurture").
 *
 * A sequence is an ordered list of steps ({"type":"sms"|"email",
 * "template":NAME}, {"type":"wait","minutes":N}, {"type":"task",
 * "text":...}). A lead is enrolled by hand or, for sequences that start on
 * "new_lead", in the very transaction that creates it, with its first
 * step queued due now: nothing acknowledged is ever without its nurture.
 * The dispatcher claims due steps (nurture_jobs), checks consent, do-not-
 * disturb, quiet hours in the lead's time zone and the daily cap, renders
 * the template, and sends with the step's idempotency key, so a crash or a
 * retry is never a second message. Messages sent are the lead's outbound
 * activities; provider callbacks update their status, and an inbound
 * reply or STOP ends the lead's enrollments at once.
 *
 * Templates: {{first_name}}, {{last_name}}, {{email}}, {{phone}},
 * {{agent.name}}, {{agent.phone}}, {{agent.email}}, {{listing.address}},
 * {{listing.price}}, {{tenant.name}}; {{first_name|there}} gives a
 * default for an empty value. Values are HTML-escaped in email bodies. */
#ifndef EH_NURTURE_H
#define EH_NURTURE_H

#include <jansson.h>
#include <stdint.h>

#include "base/buf.h"
#include "leads/entity.h"
#include "store/store.h"

#define NURTURE_MAX_BODY 4000  /* template and rendered message bytes */
#define NURTURE_MAX_STEPS 20
#define NURTURE_MAX_ATTEMPTS 5 /* then the step fails (dead letter) */

extern const entity entity_template, entity_sequence;

/* Renders tmpl with vars ({first_name,..., agent:{...}, listing:{...},
 * tenant:{...}}); html: escape values for an HTML body. Returns 0, or -1
 * with err naming an unknown variable or a message over NURTURE_MAX_BODY. */
int nurture_render(const char *tmpl, const json_t *vars, int html, buf *out, char *err, size_t errlen);
/* 0 if every {{...}} in tmpl is a known variable, else -1 with err. */
int nurture_check_vars(const char *tmpl, char *err, size_t errlen);

/* How an SMS body travels: GSM-7 (160 septets, 153 per part when split;
 * characters of the extension table count twice) or, with any other
 * character, UCS-2 (70 UTF-16 units, 67 per part). */
typedef struct nurture_sms_info {
    int gsm7;     /* 1: GSM-7, 0: UCS-2 */
    int units;    /* septets or UTF-16 units */
    int segments; /* 0 for an empty body */
} nurture_sms_info;
void nurture_sms_segments(const char *utf8, nurture_sms_info *out);

/* A marketing SMS must tell how to opt out: the word STOP. */
int nurture_has_opt_out(const char *body);

/* Opt-out and opt-in keywords (CTIA's list, case-insensitive, whole body
 * trimmed): 1 STOP-like, 2 START-like, 0 neither. */
int nurture_keyword(const char *body);

/* In the transaction that created lead_id: enrolls it in the tenant's
 * active sequences that start on new leads, first step due now. */
int nurture_on_new_lead(store_tx *tx, int64_t lead_id, int64_t now_ms, store_err *err);
/* Enrolls by hand; STORE_CONFLICT if already active in that sequence,
 * STORE_NOTFOUND if no such lead or sequence. *enrollment gets the id. */
int nurture_enroll(store_tx *tx, int64_t sequence_id, int64_t lead_id, int64_t now_ms, int64_t *enrollment,
                   store_err *err);
/* The same, saying why in nurture.enrolled ("gone cold", ...). */
int nurture_enroll_why(store_tx *tx, int64_t sequence_id, int64_t lead_id, const char *why, int64_t now_ms,
                       int64_t *enrollment, store_err *err);
/* Ends every active enrollment of a lead (reason: replied, opt_out, won,
 * lost, agent_takeover, manual); their queued steps are skipped. */
int nurture_exit_lead(store_tx *tx, int64_t lead_id, const char *reason, int64_t now_ms, int *n, store_err *err);

/* After an outbound activity written by a person (not nurture): a
 * message (sms, email) or call by the agent takes the lead over and ends
 * its enrollments ("agent_takeover"), unless it is the echo of a message
 * nurture sent (same provider_message_id). */
int nurture_on_outbound(store_tx *tx, int64_t lead_id, int64_t activity_id, const char *channel,
                        const char *provider_message_id, int64_t now_ms, store_err *err);

/* After a lead write: ends its enrollments if it is closed (won, lost,
 * abandoned) or do-not-disturb. */
int nurture_on_lead_changed(store_tx *tx, int64_t lead_id, int64_t now_ms, store_err *err);

/* ---- running it (send.c) ---- */
struct app;
typedef struct nurture_ctx nurture_ctx;
/* Starts the dispatcher on the app's loop (a timer every 100 ms; the
 * claims and sends run on the thread pool) and registers the routes. */
int nurture_register(struct app *a);
/* Due work announced on the event bus (a new enrolment, a one-off
 * message) starts a claim at once instead of at the next tick. Call after
 * realtime_start (the bus). 0 or -1. */
int nurture_wake_start(struct app *a);
/* Stops the timer; in-flight sends finish. */
void nurture_stop(nurture_ctx *c);
void nurture_free(nurture_ctx *c);

#endif
