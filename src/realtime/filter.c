/* Topics and filters: which events a realtime client sees. Pure functions,
 * unit-tested in tests/unit/test_bus.c. */
#include <stdlib.h>
#include <string.h>

#include "realtime.h"

void rt_filter_init(rt_filter *f) {
    memset(f, 0, sizeof *f);
    f->min_score = -1;
}

static int parse_id(const char *s, int64_t *out) {
    if (!*s || strlen(s) > 18) return -1;
    int64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        v = v * 10 + (*s - '0');
    }
    if (v <= 0) return -1;
    *out = v;
    return 0;
}

static const struct {
    const char *name;
    int bit;
} named[] = {
    {"leads", RT_T_LEADS},     {"scores", RT_T_SCORES},     {"nurture", RT_T_NURTURE},
    {"system", RT_T_SYSTEM},   {"activity", RT_T_ACTIVITY}, {"all", RT_T_ALL},
};

int rt_filter_add_topic(rt_filter *f, const char *topic, int64_t me_agent) {
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (strcmp(topic, named[i].name) == 0) {
            f->topics |= named[i].bit;
            return 0;
        }
    int64_t id;
    if (strncmp(topic, "lead:", 5) == 0) {
        if (parse_id(topic + 5, &id) || f->nlead == RT_MAX_IDS) return -1;
        f->lead[f->nlead++] = id;
        return 0;
    }
    if (strncmp(topic, "coaching:", 9) == 0) {
        if (strcmp(topic + 9, "me") == 0) {
            if (me_agent <= 0) return -1;
            id = me_agent;
        } else if (parse_id(topic + 9, &id)) {
            return -1;
        }
        if (f->ncoaching == RT_MAX_IDS) return -1;
        f->coaching[f->ncoaching++] = id;
        return 0;
    }
    return -1;
}

int rt_topic_valid(const char *topic) {
    if (strcmp(topic, "all") == 0 || strcmp(topic, "coaching:me") == 0) return 0;
    rt_filter f;
    rt_filter_init(&f);
    return rt_filter_add_topic(&f, topic, 0) == 0;
}

static int64_t int_of(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static int prefix(const char *type, const char *p) { return strncmp(type, p, strlen(p)) == 0; }

/* A broadcast's topic decides where it goes, as a subscription would. */
static void classify_topic(const char *topic, rt_event_info *info) {
    rt_filter f;
    rt_filter_init(&f);
    if (rt_filter_add_topic(&f, topic, 0)) return;
    info->topic = f.topics & ~RT_T_ALL;
    if (f.nlead) info->lead_id = f.lead[0];
    if (f.ncoaching) {
        info->coaching = 1;
        info->coaching_agent = f.coaching[0];
    }
}

void rt_event_classify(const char *type, json_t *payload, rt_event_info *info) {
    memset(info, 0, sizeof *info);
    if (strcmp(type, "broadcast") == 0) {
        const char *t = json_string_value(json_object_get(payload, "topic"));
        if (t && strlen(t) < sizeof info->btopic) {
            strcpy(info->btopic, t);
            classify_topic(t, info);
        }
        return;
    }
    /* Lead events carry the lead itself (lead.created), {"lead": {...}}
     * (lead.updated), or {"lead_id", "agent_id"} (assignments). */
    json_t *lead = json_object_get(payload, "lead");
    if (!json_is_object(lead)) lead = payload;
    if (prefix(type, "lead.")) {
        info->is_lead = 1;
        info->topic = RT_T_LEADS;
        if (strcmp(type, "lead.scored") == 0) info->topic |= RT_T_SCORES;
        info->lead_id = int_of(payload, "lead_id");
        if (!info->lead_id) info->lead_id = int_of(lead, "id");
    } else if (prefix(type, "score.")) {
        info->topic = RT_T_SCORES;
        info->lead_id = int_of(payload, "lead_id");
    } else if (prefix(type, "activity.") || prefix(type, "message.")) {
        /* message.*: a one-off message's delivery, on its activity's topic */
        info->topic = RT_T_ACTIVITY;
        json_t *act = json_object_get(payload, "activity");
        info->lead_id = int_of(json_is_object(act) ? act : payload, "lead_id");
    } else if (prefix(type, "nurture.")) {
        info->topic = RT_T_NURTURE;
        info->lead_id = int_of(payload, "lead_id");
    } else if (prefix(type, "coaching.")) {
        info->coaching = 1;
        info->coaching_agent = int_of(payload, "agent_id");
        return;
    } else if (prefix(type, "system.")) {
        info->topic = RT_T_SYSTEM;
        return;
    } else {
        return; /* settings.*, agent.*, listing.*...: only "all" */
    }
    info->agent_id = int_of(lead, "agent_id");
    if (!info->agent_id) info->agent_id = int_of(payload, "agent_id");
    json_t *sc = json_object_get(lead, "score");
    if (!json_is_number(sc)) sc = json_object_get(payload, "score");
    if (json_is_number(sc)) {
        info->has_score = 1;
        info->score = json_number_value(sc);
    }
}

static int has_id(const int64_t *ids, int n, int64_t id) {
    for (int i = 0; i < n; i++)
        if (ids[i] == id) return 1;
    return 0;
}

int rt_filter_match(const rt_filter *f, const rt_event_info *info) {
    int broadcast = info->btopic[0] != 0;
    int ok;
    if (info->coaching) ok = has_id(f->coaching, f->ncoaching, info->coaching_agent) ||
                             ((f->topics & RT_T_ALL) && (!f->only_agent || info->coaching_agent == f->only_agent));
    else ok = (f->topics & (info->topic | RT_T_ALL)) ||
              (info->lead_id && has_id(f->lead, f->nlead, info->lead_id));
    if (!ok) return 0;
    if (broadcast) return 1;
    /* Everything about a lead (the lead, its activities, scores, nurture
     * steps) is filtered by the lead's agent and score. */
    int about_lead = info->is_lead || (info->topic & (RT_T_SCORES | RT_T_ACTIVITY | RT_T_NURTURE));
    if (info->coaching && f->only_agent) return info->coaching_agent == f->only_agent;
    if (!about_lead) {
        if (info->topic & f->topics) return 1;
        /* Matched through "all": settings and the like are not for agents. */
        return f->only_agent ? 0 : 1;
    }
    if (f->only_agent) {
        /* An agent sees a lead event only when it shows the lead is theirs. */
        if (f->only_agent < 0 || info->agent_id != f->only_agent) return 0;
    }
    if (f->agent && info->agent_id != f->agent) return 0;
    if (f->min_score >= 0 && (!info->has_score || info->score < f->min_score)) return 0;
    return 1;
}
