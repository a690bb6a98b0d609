/* tz — local time in a lead's time zone, thread-safe and allocation-free.
 *
 * Known: about forty IANA names (the Americas, Europe, a few Asian hubs;
 * US and EU daylight-saving rules applied) and fixed offsets such as
 * "UTC-08:00", "GMT+1", "+05:30". Anything else is unknown: the caller
 * decides the fallback. */
#ifndef EH_TZ_H
#define EH_TZ_H

#include <stdint.h>

/* Minutes east of UTC in zone tz at utc_ms; *ok = 0 (and 0 returned) for
 * an unknown or empty zone. */
int tz_offset(const char *tz, int64_t utc_ms, int *ok);
/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t tz_days_from_civil(int y, int m, int d);

#endif
