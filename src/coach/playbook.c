/* Playbooks and suggestions: what to say, from the analysis. The playbook
 * is data (the default in src/coach/data/playbook.json, a tenant's override in
 * the database); the rules that pick entries and explain why are here. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const char *const sections[] = {"questions", "objections", "intents", "warnings"};

static int known_key(int sec, const char *k) {
    const char *const *names = sec == 0 ? coach_qual_names : sec == 1 ? coach_objection_names
                               : sec == 2 ? coach_intent_names : coach_warning_names;
    int n = sec == 0 ? N_QUAL : sec == 1 ? N_OBJECTIONS : sec == 2 ? N_INTENTS : 3;
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], k) == 0) return 1;
    return 0;
}

int coach_playbook_check(const coach_ctx *c, const json_t *pb, char *why, size_t wl) {
    (void)c;
    if (!json_is_object(pb)) return snprintf(why, wl, "the playbook must be a JSON object"), -1;
    const char *sk;
    json_t *sv;
    json_object_foreach((json_t *)pb, sk, sv) {
        int sec = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(sections[i], sk) == 0) sec = i;
        if (sec < 0) return snprintf(why, wl, "%.40s: unknown section (questions, objections, intents, warnings)", sk), -1;
        if (!json_is_object(sv)) return snprintf(why, wl, "%s: must be an object", sk), -1;
        const char *k;
        json_t *v;
        json_object_foreach(sv, k, v) {
            if (!known_key(sec, k)) return snprintf(why, wl, "%s.%.40s: unknown item", sk, k), -1;
            if (!json_is_object(v) || json_object_size(v) > 2)
                return snprintf(why, wl, "%s.%s: must be {\"text\", \"why\"}", sk, k), -1;
            const char *fields[] = {"text", "why"};
            for (int f = 0; f < 2; f++) {
                json_t *s = json_object_get(v, fields[f]);
                if (!json_is_string(s) || json_string_length(s) < 1 || json_string_length(s) > 1000)
                    return snprintf(why, wl, "%s.%s.%s: a string of 1-1000 bytes", sk, k, fields[f]), -1;
            }
        }
    }
    return 0;
}

json_t *coach_playbook_merge(const coach_ctx *c, const json_t *ov) {
    json_t *m = json_deep_copy(c->playbook);
    if (!m || !ov) return m;
    for (int i = 0; i < 4; i++) {
        json_t *src = json_object_get(ov, sections[i]), *dst = json_object_get(m, sections[i]);
        if (json_is_object(src) && json_is_object(dst)) json_object_update(dst, src);
    }
    return m;
}

/* Adds {type, item, text, reason, message_id} using the playbook entry. */
static void add(json_t *out, const json_t *pb, const char *sec, const char *type, const char *item, const char *reason,
                json_t *msg_id) {
    json_t *e = json_object_get(json_object_get(pb, sec), item);
    const char *text = json_string_value(json_object_get(e, "text"));
    const char *why = json_string_value(json_object_get(e, "why"));
    if (!text) {
        json_decref(msg_id);
        return;
    }
    char r[600];
    snprintf(r, sizeof r, "%s%s%s", reason, why && *why ? " " : "", why ? why : "");
    json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", type, "item", item, "text", text,
                                         "reason", r, "message_id", msg_id ? msg_id : json_null()));
}

static json_t *id_of(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer(json_integer_value(v)) : json_null();
}

json_t *coach_suggest(const coach_ctx *c, const json_t *an, const json_t *pb) {
    (void)c;
    json_t *out = json_array();
    if (!out) return NULL;
    char r[400];
    /* warnings first: they are about what to do right now */
    const json_t *rt = json_object_get(an, "response_times");
    json_t *w = json_object_get(rt, "waiting_s");
    if (json_is_number(w) && json_number_value(w) > 300) {
        snprintf(r, sizeof r, "The lead's message has waited %.0f minutes for a reply.", json_number_value(w) / 60);
        add(out, pb, "warnings", "warning", "lead_waiting", r, id_of(rt, "waiting_message_id"));
    }
    const json_t *se = json_object_get(an, "sentiment");
    if (json_is_true(json_object_get(se, "dropping"))) {
        snprintf(r, sizeof r, "Sentiment fell to %.2f (average %.2f).", json_number_value(json_object_get(se, "last")),
                 json_number_value(json_object_get(se, "average")));
        add(out, pb, "warnings", "warning", "sentiment_dropping", r, id_of(se, "message_id"));
    }
    const json_t *quiet = json_object_get(an, "quiet_hours");
    size_t nq = json_array_size(quiet);
    if (nq) {
        const json_t *q = json_array_get(quiet, nq - 1);
        snprintf(r, sizeof r, "%zu message(s) went out in quiet hours; the latest at %02d:00 in %s.", nq,
                 (int)json_integer_value(json_object_get(q, "local_hour")),
                 json_string_value(json_object_get(an, "timezone")) ? json_string_value(json_object_get(an, "timezone")) : "?");
        add(out, pb, "warnings", "warning", "quiet_hours", r, id_of(q, "message_id"));
    }
    /* objections, then intents: answer what the lead said */
    const char *secs[2] = {"objections", "intents"}, *types[2] = {"objection", "next_step"},
               *keys[2] = {"objection", "intent"};
    for (int g = 0; g < 2; g++) {
        const json_t *arr = json_object_get(an, secs[g]);
        size_t i;
        const json_t *h;
        json_array_foreach(arr, i, h) {
            const char *item = json_string_value(json_object_get(h, keys[g]));
            snprintf(r, sizeof r, "The lead said \"%.200s\".", json_string_value(json_object_get(h, "phrase")));
            if (item) add(out, pb, secs[g], types[g], item, r, id_of(h, "message_id"));
        }
    }
    /* questions for what is missing, most decisive first, at most three */
    static const char *const order[] = {"timeline", "budget", "preapproval", "location", "property_type", "motivation",
                                        "decision_makers"};
    const json_t *qual = json_object_get(an, "qualification");
    int asked = 0;
    json_t *last_in = id_of(se, "message_id");
    for (int i = 0; i < 7 && asked < 3; i++) {
        if (json_is_true(json_object_get(json_object_get(qual, order[i]), "known"))) continue;
        snprintf(r, sizeof r, "%s is not known yet: no message or lead field mentions it.", order[i]);
        add(out, pb, "questions", "question", order[i], r, json_incref(last_in));
        asked++;
    }
    json_decref(last_in);
    while (json_array_size(out) > 12) json_array_remove(out, json_array_size(out) - 1);
    return out;
}
