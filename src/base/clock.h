/* clock — wall-clock and monotonic time. */
#ifndef EH_CLOCK_H
#define EH_CLOCK_H

#include <stdint.h>
#include <stddef.h>

int64_t clock_wall_ms(void);   /* milliseconds since the Unix epoch */
uint64_t clock_mono_ns(void);  /* monotonic nanoseconds, for durations */
/* Formats epoch milliseconds as RFC 3339 UTC ("2026-11-23T09:19:37.123Z").
 * out must hold 25 bytes. */
void clock_rfc3339(int64_t ms, char *out, size_t outlen);

#endif
