/* Shared between the nurture module's files; the module's interface is
 * nurture.h. */
#ifndef EH_NURTURE_INT_H
#define EH_NURTURE_INT_H

#include <stdint.h>

#include "nurture.h"

/* Queues the first action step at or after `step` of an enrollment (waits
 * before it add to due), or completes the enrollment (sequence.c). */
int nurture_schedule(store_tx *tx, int64_t enrollment, const json_t *steps, int step, int64_t due, int64_t now_ms,
                     store_err *err);
/* When quiet hours (minutes after local midnight: start..end, wrapping
 * midnight when start > end) end for a lead in time zone tz, if now_ms is
 * inside them; 0 when it is not. Unknown zones are America/New_York. */
int64_t nurture_quiet_until(const char *tz, int quiet_start, int quiet_end, int64_t now_ms);

struct app;
/* The dispatcher's timer on the app's loop (send.c). */
nurture_ctx *nurture_ctx_start(struct app *a);

#endif
