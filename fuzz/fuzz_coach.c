/* libFuzzer target for the coach analyzer (src/coach/analysis.c,
 * playbook.c): the input is split at 0xFF bytes into up to 64 messages;
 * each message's first byte chooses its direction and channel (call or
 * sms), its time, and the zone. The driver checks what must hold for any
 * text: the analysis exists, serialises, names only message ids it was
 * given, and turns into suggestions with a text and a reason each. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coach/coach.h"

static coach_ctx *C;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!C) {
        char why[160];
        if (!(C = coach_ctx_new(why, sizeof why))) abort();
    }
    coach_msg m[64];
    int n = 0;
    size_t p = 0;
    while (p < size && n < 64) {
        size_t e = p;
        while (e < size && data[e] != 0xFF) e++;
        if (e > p) {
            uint8_t h = data[p];
            size_t len = e - p - 1;
            if (len > COACH_MAX_BODY) len = COACH_MAX_BODY;
            m[n] = (coach_msg){n + 1, h % 3, (h & 8) ? "call" : "sms", (const char *)data + p + 1, len,
                               (h & 16) ? 0 : 1763900000000LL + (int64_t)(h >> 5) * 3600000LL * n};
            n++;
        }
        p = e + 1;
    }
    coach_facts f = {.preapproved = -1, .timezone = size && (data[0] & 64) ? "Europe/Berlin" : NULL};
    json_t *an = coach_analyze(C, m, n, &f, 1763990000000LL);
    if (!an) abort();
    char *s = json_dumps(an, 0);
    if (!s) abort();
    free(s);
    const char *lists[] = {"intents", "objections"};
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(an, lists[l]), i, v) {
            json_int_t id = json_integer_value(json_object_get(v, "message_id"));
            if (id < 1 || id > n) abort();
        }
    }
    json_t *pb = coach_playbook_merge(C, NULL);
    json_t *sug = coach_suggest(C, an, pb);
    if (!sug) abort();
    size_t i;
    json_t *v;
    json_array_foreach(sug, i, v) {
        if (!json_string_value(json_object_get(v, "text")) || !json_string_value(json_object_get(v, "reason"))) abort();
    }
    json_decref(sug);
    json_decref(pb);
    json_decref(an);
    return 0;
}
