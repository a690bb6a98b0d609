/* Time zones without the C library's process-wide TZ (which threads
 * cannot share): the zones our users live in, with their daylight-saving
 * rules (US and EU), and fixed offsets ("UTC-08:00", "+05:30"). */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "tz.h"


int64_t tz_days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}
static int64_t weekday(int64_t days) { return ((days % 7) + 11) % 7; } /* 0 = Sunday; 1970-01-01 was a Thursday */

enum { DST_NONE, DST_US, DST_EU };
static const struct tzinfo {
    const char *name;
    int off; /* standard offset, minutes east of UTC */
    int dst;
} zones[] = {
    {"America/New_York", -300, DST_US},   {"America/Detroit", -300, DST_US},    {"America/Toronto", -300, DST_US},
    {"US/Eastern", -300, DST_US},         {"America/Chicago", -360, DST_US},    {"US/Central", -360, DST_US},
    {"America/Denver", -420, DST_US},     {"US/Mountain", -420, DST_US},        {"America/Phoenix", -420, DST_NONE},
    {"America/Los_Angeles", -480, DST_US}, {"US/Pacific", -480, DST_US},       {"America/Vancouver", -480, DST_US},
    {"America/Anchorage", -540, DST_US},  {"Pacific/Honolulu", -600, DST_NONE}, {"America/Mexico_City", -360, DST_NONE},
    {"America/Sao_Paulo", -180, DST_NONE}, {"Europe/London", 0, DST_EU},        {"Europe/Dublin", 0, DST_EU},
    {"Europe/Lisbon", 0, DST_EU},         {"Europe/Paris", 60, DST_EU},         {"Europe/Berlin", 60, DST_EU},
    {"Europe/Madrid", 60, DST_EU},        {"Europe/Rome", 60, DST_EU},          {"Europe/Amsterdam", 60, DST_EU},
    {"Europe/Brussels", 60, DST_EU},      {"Europe/Zurich", 60, DST_EU},        {"Europe/Stockholm", 60, DST_EU},
    {"Europe/Warsaw", 60, DST_EU},        {"Europe/Athens", 120, DST_EU},       {"Europe/Helsinki", 120, DST_EU},
    {"Asia/Dubai", 240, DST_NONE},        {"Asia/Kolkata", 330, DST_NONE},      {"Asia/Singapore", 480, DST_NONE},
    {"Asia/Shanghai", 480, DST_NONE},     {"Asia/Hong_Kong", 480, DST_NONE},    {"Asia/Tokyo", 540, DST_NONE},
    {"UTC", 0, DST_NONE},                 {"Etc/UTC", 0, DST_NONE},             {"GMT", 0, DST_NONE},
};

/* "+05:30", "-8", "UTC-08:00", "GMT+1": minutes, or 0 with *ok = 0. */
static int parse_offset(const char *s, int *ok) {
    *ok = 0;
    if (strncmp(s, "UTC", 3) == 0 || strncmp(s, "GMT", 3) == 0) s += 3;
    if (*s != '+' && *s != '-') return 0;
    int sign = *s++ == '-' ? -1 : 1, h = 0, m = 0, nd = 0;
    while (*s >= '0' && *s <= '9' && nd < 2) h = h * 10 + (*s++ - '0'), nd++;
    if (!nd) return 0;
    if (*s == ':') s++;
    if (*s) {
        if (!(s[0] >= '0' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && !s[2])) return 0;
        m = (s[0] - '0') * 10 + (s[1] - '0');
    }
    if (h > 14) return 0;
    *ok = 1;
    return sign * (h * 60 + m);
}

int tz_offset(const char *tz, int64_t utc_ms, int *ok) {
    *ok = 0;
    if (!tz || !*tz) return 0;
    int64_t t = utc_ms / 1000;
    int off = parse_offset(tz, ok), dst = DST_NONE;
    if (!*ok) {
        size_t i = 0, nz = sizeof zones / sizeof zones[0];
        for (; i < nz && strcmp(zones[i].name, tz) != 0; i++) {}
        if (i == nz) return 0;
        off = zones[i].off, dst = zones[i].dst;
        *ok = 1;
    }
    if (dst != DST_NONE) {
        time_t tt = (time_t)t;
        struct tm g;
        if (!gmtime_r(&tt, &g)) return off;
        int y = g.tm_year + 1900;
        int64_t start, end;
        if (dst == DST_US) { /* 2nd Sunday of March 02:00 local to 1st Sunday of November 02:00 local */
            int64_t m1 = tz_days_from_civil(y, 3, 1), n1 = tz_days_from_civil(y, 11, 1);
            start = (m1 + (7 - weekday(m1)) % 7 + 7) * 86400 + 7200 - off * 60;
            end = (n1 + (7 - weekday(n1)) % 7) * 86400 + 3600 - off * 60;
        } else { /* last Sunday of March to last Sunday of October, 01:00 UTC */
            int64_t m = tz_days_from_civil(y, 4, 1) - 1, o = tz_days_from_civil(y, 11, 1) - 1;
            start = (m - weekday(m)) * 86400 + 3600;
            end = (o - weekday(o)) * 86400 + 3600;
        }
        if (t >= start && t < end) off += 60;
    }
    return off;
}
