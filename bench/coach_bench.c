/* In-process coaching benchmark: analysis + playbook merge + suggestions
 * for a 50-message conversation, timed one call at a time, printing
 * percentiles. Built and run by bench/coaching.sh against build/libehub.a.
 *
 *   coach_bench [iterations]      (default 20000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coach/coach.h"

static const char *const lines[] = {
    "Hi! We saw the listing on 5th street, is it still available?",
    "Yes it is! Would you like to see it this week?",
    "Maybe. We're relocating for a new job and need a 3 bedroom house near downtown.",
    "Great, what price range are you comfortable with?",
    "Our budget is around $450k but honestly everything looks too expensive right now.",
    "I understand. Have you talked to a lender yet?",
    "Not yet, rates are too high and we're a bit nervous about the monthly payment.",
    "That's fair. I can introduce you to a lender who can run the numbers.",
    "That would be really helpful, thanks! My wife wants to see the yard too.",
    "Of course. How about Saturday at 10 or Sunday at 2?",
};

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    int iters = argc > 1 ? atoi(argv[1]) : 20000;
    if (iters < 100) iters = 100;
    char why[160];
    coach_ctx *c = coach_ctx_new(why, sizeof why);
    if (!c) { fprintf(stderr, "coach_ctx_new: %s\n", why); return 1; }
    coach_msg m[50];
    long long t0 = 1763900000000LL;
    size_t bytes = 0;
    for (int i = 0; i < 50; i++) {
        const char *b = lines[i % 10];
        m[i] = (coach_msg){i + 1, i % 2 ? COACH_OUT : COACH_IN, "sms", b, strlen(b), t0 + i * 90000LL};
        bytes += strlen(b);
    }
    coach_facts f = {.preapproved = -1, .timezone = "America/Los_Angeles"};
    json_t *ov = json_loads("{\"objections\":{\"price_too_high\":{\"text\":\"Show comps.\",\"why\":\"Team rule.\"}}}", 0, NULL);
    double *lat = malloc(sizeof *lat * (size_t)iters);
    if (!lat || !ov) return 1;
    size_t nsug = 0;
    for (int i = 0; i < iters + 500; i++) { /* the first 500 warm the caches */
        double s = now_us();
        json_t *pb = coach_playbook_merge(c, ov);
        json_t *an = coach_analyze(c, m, 50, &f, t0 + 50 * 90000LL + 600000);
        json_t *sug = coach_suggest(c, an, pb);
        double e = now_us();
        if (!an || !sug) { fprintf(stderr, "analysis failed\n"); return 1; }
        nsug = json_array_size(sug);
        json_decref(sug);
        json_decref(an);
        json_decref(pb);
        if (i >= 500) lat[i - 500] = e - s;
    }
    qsort(lat, (size_t)iters, sizeof *lat, cmp);
    double sum = 0;
    for (int i = 0; i < iters; i++) sum += lat[i];
    printf("RESULT in-process messages=50 bytes=%zu suggestions=%zu iterations=%d mean_us=%.1f p50_us=%.1f "
           "p99_us=%.1f p999_us=%.1f max_us=%.1f\n",
           bytes, nsug, iters, sum / iters, lat[iters / 2], lat[(int)(iters * 0.99)], lat[(int)(iters * 0.999)],
           lat[iters - 1]);
    free(lat);
    json_decref(ov);
    coach_ctx_free(c);
    return 0;
}
