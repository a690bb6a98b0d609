/* Conversation analysis: one pass over each message's words, looked up in
 * one hash table that holds the sentiment lexicon and the first word of
 * every cue phrase, so a 50-message conversation costs tens of
 * microseconds. See coach.h for what is found. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/tz.h"
#include "base/pii.h"
#include "internal.h"

extern const char coach_data_lexicon[], coach_data_cues[], coach_data_playbook[];
extern const unsigned long coach_data_lexicon_len, coach_data_cues_len, coach_data_playbook_len;

const char *const coach_intent_names[N_INTENTS] = {"ready_to_buy",  "ready_to_sell",  "just_browsing",
                                                   "wants_showing", "price_question", "financing_question"};
const char *const coach_objection_names[N_OBJECTIONS] = {"price_too_high",      "not_ready",       "other_agent",
                                                         "needs_to_sell_first", "rates_financing", "just_looking"};
const char *const coach_qual_names[N_QUAL] = {"budget",        "timeline",   "preapproval",    "location",
                                              "property_type", "motivation", "decision_makers"};
const char *const coach_warning_names[3] = {"lead_waiting", "sentiment_dropping", "quiet_hours"};

enum { F_SENT = 1, F_NEG = 2, F_INT = 4, F_BUT = 8 };

/* ---- the word table ---- */

static uint32_t hash(const char *w, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)w[i]) * 16777619u;
    return h;
}

int32_t coach_lookup(const coach_ctx *c, const char *w, size_t len) {
    uint32_t m = c->cap - 1;
    for (uint32_t i = hash(w, len) & m;; i = (i + 1) & m) {
        const centry *e = &c->tab[i];
        if (!e->w) return -1;
        if (e->len == len && memcmp(e->w, w, len) == 0) return (int32_t)i;
    }
}

/* Finds or adds a word (which must live as long as the context). */
static int32_t intern(coach_ctx *c, const char *w, size_t len) {
    uint32_t m = c->cap - 1;
    for (uint32_t i = hash(w, len) & m;; i = (i + 1) & m) {
        centry *e = &c->tab[i];
        if (!e->w) {
            e->w = w;
            e->len = (uint16_t)len;
            e->first_cue = -1;
            e->mult = 1;
            return (int32_t)i;
        }
        if (e->len == len && memcmp(e->w, w, len) == 0) return (int32_t)i;
    }
}

static int label_of(const char *s, size_t n, const char *const *names, int count) {
    for (int i = 0; i < count; i++)
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) return i;
    return -1;
}

/* Splits the embedded TSV into lines of up to 3 tab-separated fields,
 * NUL-terminating them in place (the copy is c->words' memory). */
static int parse_tsv(char *p, int (*row)(coach_ctx *c, char **f, int nf, char *why, size_t wl), coach_ctx *c,
                     char *why, size_t wl) {
    int line = 0;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        line++;
        if (*p && *p != '#') {
            char *f[3] = {p, NULL, NULL};
            int nf = 1;
            for (char *t = p; (t = strchr(t, '\t')) && nf < 3;) *t++ = 0, f[nf++] = t;
            if (row(c, f, nf, why, wl)) {
                size_t used = strlen(why);
                snprintf(why + used, wl - used, " (line %d)", line);
                return -1;
            }
        }
        if (!nl) break;
        p = nl + 1;
    }
    return 0;
}

static int lex_row(coach_ctx *c, char **f, int nf, char *why, size_t wl) {
    if (nf != 3 || !*f[0] || strlen(f[0]) > 32) return snprintf(why, wl, "lexicon: expected term, kind, value"), -1;
    centry *e = &c->tab[intern(c, f[0], strlen(f[0]))];
    double v = atof(f[2]);
    if (strcmp(f[1], "sent") == 0) e->flags |= F_SENT, e->sent = (float)v;
    else if (strcmp(f[1], "neg") == 0) e->flags |= F_NEG;
    else if (strcmp(f[1], "int") == 0) e->flags |= F_INT, e->mult = (float)v;
    else if (strcmp(f[1], "but") == 0) e->flags |= F_BUT;
    else return snprintf(why, wl, "lexicon: unknown kind %s", f[1]), -1;
    return 0;
}

static int cue_row(coach_ctx *c, char **f, int nf, char *why, size_t wl) {
    if (nf != 3) return snprintf(why, wl, "cues: expected group, label, phrase"), -1;
    cue q = {.next = -1};
    int lab;
    if (strcmp(f[0], "intent") == 0) q.group = CUE_INTENT, lab = label_of(f[1], strlen(f[1]), coach_intent_names, N_INTENTS);
    else if (strcmp(f[0], "objection") == 0)
        q.group = CUE_OBJECTION, lab = label_of(f[1], strlen(f[1]), coach_objection_names, N_OBJECTIONS);
    else if (strcmp(f[0], "qual") == 0) q.group = CUE_QUAL, lab = label_of(f[1], strlen(f[1]), coach_qual_names, N_QUAL);
    else return snprintf(why, wl, "cues: unknown group %s", f[0]), -1;
    if (lab < 0) return snprintf(why, wl, "cues: unknown label %s", f[1]), -1;
    q.label = (uint8_t)lab;
    for (char *w = f[2]; *w;) {
        char *sp = strchr(w, ' ');
        size_t l = sp ? (size_t)(sp - w) : strlen(w);
        if (l && q.ntok < CUE_MAX_TOK) q.tok[q.ntok++] = intern(c, w, l);
        else if (l) return snprintf(why, wl, "cues: phrase too long"), -1;
        if (!sp) break;
        w = sp + 1;
    }
    if (!q.ntok) return snprintf(why, wl, "cues: empty phrase"), -1;
    /* Longer phrases first in each chain, so the longest match wins. */
    int32_t *link = &c->tab[q.tok[0]].first_cue;
    while (*link >= 0 && c->cues[*link].ntok >= q.ntok) link = &c->cues[*link].next;
    q.next = *link;
    c->cues[c->ncues] = q;
    *link = c->ncues++;
    return 0;
}

coach_ctx *coach_ctx_new(char *why, size_t wl) {
    coach_ctx *c = eh_calloc(1, sizeof *c);
    size_t total = coach_data_lexicon_len + coach_data_cues_len + 2;
    if (!c || !(c->words = eh_malloc(total))) goto oom;
    memcpy(c->words, coach_data_lexicon, coach_data_lexicon_len + 1);
    char *cues_txt = c->words + coach_data_lexicon_len + 1;
    memcpy(cues_txt, coach_data_cues, coach_data_cues_len + 1);
    /* Every line adds at most CUE_MAX_TOK words: size the table from the line count. */
    size_t lines = 2;
    for (const char *p = c->words; p < c->words + total; p++) lines += *p == '\n';
    c->cap = 64;
    while (c->cap < lines * 4) c->cap <<= 1;
    c->tab = eh_calloc(c->cap, sizeof *c->tab);
    c->cues = eh_calloc(lines, sizeof *c->cues);
    if (!c->tab || !c->cues) goto oom;
    c->tok_num = intern(c, "#", 1);
    c->tok_money = intern(c, "$", 1);
    if (parse_tsv(c->words, lex_row, c, why, wl) || parse_tsv(cues_txt, cue_row, c, why, wl)) {
        coach_ctx_free(c);
        return NULL;
    }
    json_error_t je;
    c->playbook = json_loadb(coach_data_playbook, coach_data_playbook_len, JSON_REJECT_DUPLICATES, &je);
    if (!c->playbook || coach_playbook_check(c, c->playbook, why, wl)) {
        if (!c->playbook) snprintf(why, wl, "default playbook: %s", je.text);
        coach_ctx_free(c);
        return NULL;
    }
    return c;
oom:
    snprintf(why, wl, "out of memory");
    coach_ctx_free(c);
    return NULL;
}

void coach_ctx_free(coach_ctx *c) {
    if (!c) return;
    eh_free(c->tab);
    eh_free(c->words);
    eh_free(c->cues);
    json_decref(c->playbook);
    eh_free(c);
}

json_t *coach_playbook_default(const coach_ctx *c) { return json_incref(c->playbook); }

/* ---- time zones ---- */

int64_t coach_days_from_civil(int y, int m, int d) { return tz_days_from_civil(y, m, d); }

int coach_local_hour(const char *tz, int64_t utc_ms) {
    int ok, off = tz_offset(tz, utc_ms, &ok);
    if (!ok) return -1;
    int64_t local = utc_ms / 1000 + off * 60;
    return (int)(((local % 86400) + 86400) % 86400 / 3600);
}

/* ---- tokens ---- */

typedef struct tok {
    int32_t e;        /* entry, -1 if the word is unknown */
    uint32_t off, len; /* in the message body */
} tok;

static int wordc(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80 || c == '\'';
}
static int digitc(unsigned char c) { return c >= '0' && c <= '9'; }

/* Splits s[0..n) into words (lower-cased, "’" read as "'", inner hyphens
 * kept) and numbers (any number is "#", a money amount "$"). */
static int tokenize(const coach_ctx *c, const char *s, size_t n, size_t base, tok *out, int max) {
    int nt = 0;
    size_t i = 0;
    char w[40];
    while (i < n && nt < max) {
        unsigned char ch = (unsigned char)s[i];
        int money = 0;
        if (ch == '$' && i + 1 < n && digitc((unsigned char)s[i + 1])) money = 1, i++, ch = (unsigned char)s[i];
        if (digitc(ch)) {
            size_t st = i - money;
            double v = 0;
            int frac = 0;
            double scale = 1;
            while (i < n && (digitc((unsigned char)s[i]) || ((s[i] == ',' || s[i] == '.') && i + 1 < n &&
                                                              digitc((unsigned char)s[i + 1])))) {
                if (s[i] == '.') frac = 1;
                else if (s[i] != ',') {
                    if (frac) scale /= 10, v += (s[i] - '0') * scale;
                    else v = v * 10 + (s[i] - '0');
                }
                i++;
            }
            if (i < n && (s[i] == 'k' || s[i] == 'K' || s[i] == 'm' || s[i] == 'M') &&
                (i + 1 >= n || !wordc((unsigned char)s[i + 1])))
                money = 1, i++;
            if (v >= 10000) money = 1;
            out[nt++] = (tok){money ? c->tok_money : c->tok_num, (uint32_t)(base + st), (uint32_t)(i - st)};
            continue;
        }
        if (!wordc(ch) || ch == '\'') {
            i++;
            continue;
        }
        size_t st = i, wl = 0;
        while (i < n) {
            unsigned char d = (unsigned char)s[i];
            if (d == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 && (unsigned char)s[i + 2] == 0x99) {
                if (wl < sizeof w) w[wl++] = '\'';
                i += 3;
            } else if (wordc(d)) {
                if (wl < sizeof w) w[wl++] = (char)(d >= 'A' && d <= 'Z' ? d | 0x20 : d);
                i++;
            } else if (d == '-' && i + 1 < n && wordc((unsigned char)s[i + 1]) && wl) {
                if (wl < sizeof w) w[wl++] = '-';
                i++;
            } else break;
        }
        int32_t e = wl < sizeof w ? coach_lookup(c, w, wl) : -1;
        out[nt++] = (tok){e, (uint32_t)(base + st), (uint32_t)(i - st)};
    }
    return nt;
}

/* ---- analysis ---- */

enum { VOICE_LEAD = 0, VOICE_AGENT = 1, VOICE_NONE = 2 };

static const char *const agent_labels[] = {"agent", "me", "rep", "realtor", "broker", NULL};
static const char *const lead_labels[] = {"lead",  "client",   "buyer",  "seller",  "customer",
                                          "caller", "prospect", "contact", "homeowner", NULL};

/* "Agent: ..." at the start of a line: the voice, and *skip = label length. */
static int speaker(const char *s, size_t n, size_t *skip) {
    size_t k = 0;
    while (k < n && k < 24 && s[k] != ':' && s[k] != '\n') k++;
    if (k >= n || s[k] != ':' || k == 0) return VOICE_NONE;
    char w[24];
    size_t wl = 0;
    for (size_t i = 0; i < k; i++) {
        char ch = s[i];
        if (ch == ' ' && wl == 0) continue;
        w[wl++] = (char)(ch >= 'A' && ch <= 'Z' ? ch | 0x20 : ch);
    }
    while (wl && w[wl - 1] == ' ') wl--;
    for (int v = 0; v < 2; v++)
        for (const char *const *l = v ? lead_labels : agent_labels; *l; l++)
            if (strlen(*l) == wl && memcmp(*l, w, wl) == 0) {
                *skip = k + 1;
                return v ? VOICE_LEAD : VOICE_AGENT;
            }
    return VOICE_NONE;
}

typedef struct hit {
    int found, count;
    int64_t msg;
    uint32_t off, len; /* evidence in that message */
    int mi;            /* message index */
} hit;

typedef struct state {
    const coach_ctx *c;
    const coach_msg *m;
    hit intent[N_INTENTS], objection[N_OBJECTIONS], qual[N_QUAL];
    tok *toks;
    /* per-message */
    double sent_sum;
    int sent_words;
    int bang;
    long words[2]; /* talk ratio: agent, lead words in labelled calls */
    int labelled;
} state;

/* The evidence for a cue: from the match to the end of its clause, at most
 * 120 bytes, cut on a character boundary. */
static void evidence(const char *body, size_t blen, uint32_t off, uint32_t *len) {
    size_t e = off + *len;
    /* a '.' ends the clause only before a space ("ann@example.com", "1.5") */
    while (e < blen && e - off < 120 && body[e] != '!' && body[e] != '?' && body[e] != '\n' && body[e] != ';' &&
           !(body[e] == '.' && (e + 1 >= blen || body[e + 1] == ' ')))
        e++;
    /* personal data running past the end is taken whole, so that redaction
     * never sees a fragment it cannot recognise; the window bounds the scan */
    size_t from = off > 64 ? off - 64 : 0, win = e + 64 < blen ? e + 64 : blen;
    pii_span sp;
    while (pii_next(body, win, from, &sp) && sp.start < e) {
        if (sp.start + sp.len > e) {
            e = sp.start + sp.len;
            break;
        }
        from = sp.start + sp.len;
    }
    /* cut before a character that started inside the clause (body[blen] may not exist) */
    while (e < blen && e > off + *len && (((unsigned char)body[e] & 0xC0) == 0x80)) e--;
    while (e > off + *len && body[e - 1] == ' ') e--;
    *len = (uint32_t)(e - off);
}

static void score_segment(state *st, const tok *t, int nt, int lead_voice) {
    const coach_ctx *c = st->c;
    int last_neg = -10;
    for (int i = 0; i < nt; i++) {
        if (t[i].e < 0) continue;
        const centry *e = &c->tab[t[i].e];
        if (e->flags & F_BUT) st->sent_sum *= 0.5;
        if (e->flags & F_SENT) {
            double v = e->sent;
            if (i > 0 && t[i - 1].e >= 0 && (c->tab[t[i - 1].e].flags & F_INT)) v *= c->tab[t[i - 1].e].mult;
            if (i - last_neg <= 3) v *= -0.5;
            st->sent_sum += v;
            st->sent_words++;
        }
        if (e->flags & F_NEG) last_neg = i;
    }
    (void)lead_voice;
}

static void record(hit *h, int64_t id, int mi, uint32_t off, uint32_t len) {
    h->found = 1;
    h->count++;
    h->msg = id;
    h->mi = mi;
    h->off = off;
    h->len = len;
}

static void match_cues(state *st, const tok *t, int nt, int mi) {
    const coach_ctx *c = st->c;
    const coach_msg *m = &st->m[mi];
    int covered[3] = {0, 0, 0}; /* per group: tokens before this index are inside a match */
    for (int i = 0; i < nt; i++) {
        if (t[i].e < 0) continue;
        for (int32_t q = c->tab[t[i].e].first_cue; q >= 0; q = c->cues[q].next) {
            const cue *cu = &c->cues[q];
            if (i < covered[cu->group] || i + cu->ntok > nt) continue;
            int k = 1;
            while (k < cu->ntok && t[i + k].e == cu->tok[k]) k++;
            if (k < cu->ntok) continue;
            /* "not ready to buy" is no intent to buy */
            if (cu->group == CUE_INTENT) {
                int negated = 0;
                for (int b = i - 1; b >= 0 && b >= i - 2; b--)
                    if (t[b].e >= 0 && (c->tab[t[b].e].flags & F_NEG)) negated = 1;
                if (negated) continue;
            }
            uint32_t off = t[i].off, len = t[i + cu->ntok - 1].off + t[i + cu->ntok - 1].len - off;
            hit *h = cu->group == CUE_INTENT ? &st->intent[cu->label]
                     : cu->group == CUE_OBJECTION ? &st->objection[cu->label] : &st->qual[cu->label];
            /* within one message the first mention carries the clause (and
             * only it pays for finding the clause's end) */
            if (cu->group == CUE_QUAL && h->found && h->mi == mi) h->count++;
            else {
                if (cu->group == CUE_QUAL) evidence(m->body, m->len, off, &len);
                record(h, m->id, mi, off, len);
            }
            covered[cu->group] = i + cu->ntok;
        }
    }
}

/* Analyses one message: sentiment over its own voice, cues over what the
 * lead says, talk-ratio words of labelled calls. */
static void analyze_msg(state *st, int mi, int maxtok) {
    const coach_msg *m = &st->m[mi];
    st->sent_sum = 0;
    st->sent_words = 0;
    st->bang = 0;
    int own = m->dir == COACH_OUT ? VOICE_AGENT : VOICE_LEAD;
    int is_call = m->channel && strcmp(m->channel, "call") == 0;
    size_t p = 0;
    while (p < m->len) {
        size_t e = p;
        while (e < m->len && m->body[e] != '\n') e++;
        size_t skip = 0;
        int v = speaker(m->body + p, e - p, &skip);
        int voice = v == VOICE_NONE ? own : v;
        if (v != VOICE_NONE) st->labelled |= is_call;
        int nt = tokenize(st->c, m->body + p + skip, e - p - skip, p + skip, st->toks, maxtok);
        if (is_call && v != VOICE_NONE) st->words[v == VOICE_AGENT ? 0 : 1] += nt;
        if (voice == own) {
            score_segment(st, st->toks, nt, voice == VOICE_LEAD);
            for (size_t k = p; k < e; k++) st->bang += m->body[k] == '!';
        }
        /* what the lead says: inbound messages, notes about the lead, lead lines */
        if (voice == VOICE_LEAD && (m->dir != COACH_OUT || v == VOICE_LEAD)) match_cues(st, st->toks, nt, mi);
        p = e + 1;
    }
}

static double compound(double sum, int bang) {
    if (sum != 0 && bang) sum += (sum > 0 ? 0.3 : -0.3) * (bang > 3 ? 3 : bang);
    return sum / sqrt(sum * sum + 15.0);
}

typedef struct ord {
    int64_t at, id;
    int i;
} ord;

static int cmp_ord(const void *a, const void *b) {
    const ord *x = a, *y = b;
    if (x->at != y->at) return x->at < y->at ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}
static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static json_t *rt_json(int64_t *d, int n) {
    if (!n) return json_pack("{s:i, s:n, s:n, s:n}", "count", 0, "median_s", "mean_s", "max_s");
    qsort(d, (size_t)n, sizeof *d, cmp_i64);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)d[i];
    double med = n % 2 ? (double)d[n / 2] : ((double)d[n / 2 - 1] + (double)d[n / 2]) / 2;
    return json_pack("{s:i, s:f, s:f, s:f}", "count", n, "median_s", med / 1000.0, "mean_s", sum / n / 1000.0,
                     "max_s", (double)d[n - 1] / 1000.0);
}

/* Evidence text with personal data redacted (the analysis is what a
 * prompt or an export would be built from; the agent has the messages
 * themselves); null if the stored text is not valid UTF-8 (the API only
 * lets valid text in, but a store may hold anything). */
static json_t *text_or_null(const char *s, size_t n) {
    char out[512];
    size_t need = pii_redact(s, n, out, sizeof out);
    json_t *v = json_stringn(out, need < sizeof out ? need : strlen(out));
    return v ? v : json_null();
}

static const char *dir_name(int d) { return d == COACH_IN ? "inbound" : d == COACH_OUT ? "outbound" : "none"; }

static json_t *hits_json(const state *st, const hit *h, int count, const char *const *names, const char *key) {
    json_t *a = json_array();
    for (int i = 0; i < count; i++) {
        if (!h[i].found) continue;
        const coach_msg *m = &st->m[h[i].mi];
        json_array_append_new(a, json_pack("{s:s, s:I, s:o, s:i}", key, names[i], "message_id", (json_int_t)h[i].msg,
                                           "phrase", text_or_null(m->body + h[i].off, h[i].len), "count", h[i].count));
    }
    return a;
}

json_t *coach_analyze(const coach_ctx *c, const coach_msg *msgs, int n, const coach_facts *facts, int64_t now_ms) {
    if (!c || n < 0 || n > COACH_MAX_MESSAGES || (n && !msgs)) return NULL;
    for (int i = 0; i < n; i++)
        if (msgs[i].len > COACH_MAX_BODY || (msgs[i].len && !msgs[i].body)) return NULL;
    int maxtok = COACH_MAX_BODY / 2 + 2;
    state *st = eh_calloc(1, sizeof *st);
    ord *o = eh_malloc(sizeof *o * (size_t)(n + 1));
    int64_t *d_agent = eh_malloc(sizeof(int64_t) * (size_t)(n + 1)), *d_lead = eh_malloc(sizeof(int64_t) * (size_t)(n + 1));
    double *sent = eh_malloc(sizeof(double) * (size_t)(n + 1));
    if (st) st->toks = eh_malloc(sizeof(tok) * (size_t)maxtok);
    json_t *out = NULL;
    if (!st || !o || !d_agent || !d_lead || !sent || !st->toks) goto done;
    st->c = c;
    st->m = msgs;
    for (int i = 0; i < n; i++) o[i] = (ord){msgs[i].at_ms, msgs[i].id, i};
    qsort(o, (size_t)n, sizeof *o, cmp_ord);

    json_t *per = json_array();
    int nin = 0, nout = 0, na = 0, nl = 0, nsent = 0;
    int64_t pend_in = 0, pend_out = 0, pend_in_id = 0, last_in_id = 0;
    const char *tz = facts ? facts->timezone : NULL;
    json_t *quiet = json_array();
    for (int k = 0; k < n; k++) {
        int i = o[k].i;
        const coach_msg *m = &msgs[i];
        analyze_msg(st, i, maxtok);
        double s = compound(st->sent_sum, st->bang);
        json_array_append_new(per, json_pack("{s:I, s:s, s:f}", "message_id", (json_int_t)m->id, "direction",
                                             dir_name(m->dir), "score", round(s * 1000) / 1000));
        if (m->dir == COACH_IN) {
            nin++;
            last_in_id = m->id;
            sent[nsent++] = s;
            if (m->at_ms && !pend_in) pend_in = m->at_ms, pend_in_id = m->id;
            if (m->at_ms && pend_out) d_lead[nl++] = m->at_ms - pend_out, pend_out = 0;
        } else if (m->dir == COACH_OUT) {
            nout++;
            if (m->at_ms && pend_in) d_agent[na++] = m->at_ms - pend_in, pend_in = 0;
            if (m->at_ms && !pend_out) pend_out = m->at_ms;
            int h = m->at_ms ? coach_local_hour(tz, m->at_ms) : -1;
            if (h >= 0 && (h >= 21 || h < 8))
                json_array_append_new(quiet, json_pack("{s:I, s:i}", "message_id", (json_int_t)m->id, "local_hour", h));
        }
    }
    /* sentiment trend over the lead's messages */
    json_t *senti;
    if (nsent) {
        double mean = 0, sx = 0, sy = 0, sxy = 0, sxx = 0;
        for (int i = 0; i < nsent; i++) mean += sent[i], sx += i, sy += sent[i], sxy += i * sent[i], sxx += (double)i * i;
        mean /= nsent;
        double slope = nsent > 1 ? (nsent * sxy - sx * sy) / (nsent * sxx - sx * sx) : 0;
        int dropping = 0;
        if (nsent >= 3) {
            double recent = (sent[nsent - 1] + sent[nsent - 2]) / 2, earlier = 0;
            int ne = 0;
            for (int i = nsent - 3; i >= 0 && ne < 4; i--, ne++) earlier += sent[i];
            earlier /= ne;
            dropping = recent - earlier <= -0.3 && sent[nsent - 1] <= 0;
        }
        senti = json_pack("{s:o, s:f, s:f, s:f, s:b, s:I}", "per_message", per, "average", round(mean * 1000) / 1000,
                          "last", round(sent[nsent - 1] * 1000) / 1000, "trend", round(slope * 1000) / 1000, "dropping",
                          dropping, "message_id", (json_int_t)last_in_id);
    } else {
        senti = json_pack("{s:o, s:n, s:n, s:n, s:b, s:n}", "per_message", per, "average", "last", "trend", "dropping", 0,
                          "message_id");
    }
    /* qualification: messages first, then what the lead record says */
    json_t *qual = json_object(), *missing = json_array();
    for (int q = 0; q < N_QUAL; q++) {
        const hit *h = &st->qual[q];
        json_t *it = NULL;
        if (h->found) {
            const coach_msg *m = &msgs[h->mi];
            it = json_pack("{s:b, s:s, s:I, s:o}", "known", 1, "source", "message", "message_id", (json_int_t)h->msg,
                           "evidence", text_or_null(m->body + h->off, h->len));
        } else if (facts) {
            char v[64] = "";
            if (q == 0 && facts->has_budget) snprintf(v, sizeof v, "budget_max %.0f", facts->budget_max);
            else if (q == 1 && facts->timeline && *facts->timeline) snprintf(v, sizeof v, "timeline %.40s", facts->timeline);
            else if (q == 2 && facts->preapproved >= 0) snprintf(v, sizeof v, "preapproved %s", facts->preapproved ? "yes" : "no");
            else if (q == 3 && facts->areas > 0) snprintf(v, sizeof v, "%d area(s)", facts->areas);
            else if (q == 4 && facts->property_type && *facts->property_type)
                snprintf(v, sizeof v, "property_type %.40s", facts->property_type);
            if (*v) it = json_pack("{s:b, s:s, s:n, s:s}", "known", 1, "source", "lead", "message_id", "evidence", v);
        }
        if (!it) {
            it = json_pack("{s:b}", "known", 0);
            json_array_append_new(missing, json_string(coach_qual_names[q]));
        }
        json_object_set_new(qual, coach_qual_names[q], it);
    }
    json_t *waiting = json_null(), *waiting_id = json_null();
    if (pend_in && now_ms > pend_in) {
        waiting = json_real((double)(now_ms - pend_in) / 1000.0);
        waiting_id = json_integer(pend_in_id);
    }
    json_t *rts = json_pack("{s:o, s:o, s:o, s:o}", "agent", rt_json(d_agent, na), "lead", rt_json(d_lead, nl),
                            "waiting_s", waiting, "waiting_message_id", waiting_id);
    json_t *talk = json_null();
    if (st->labelled && st->words[0] + st->words[1] > 0) {
        double tot = (double)(st->words[0] + st->words[1]);
        talk = json_pack("{s:f, s:f, s:I, s:I}", "agent", round(st->words[0] / tot * 1000) / 1000, "lead",
                         round(st->words[1] / tot * 1000) / 1000, "agent_words", (json_int_t)st->words[0], "lead_words",
                         (json_int_t)st->words[1]);
    }
    int hint = coach_local_hour(tz, 0) >= 0;
    out = json_pack("{s:i, s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "messages", n, "inbound", nin,
                    "outbound", nout, "sentiment", senti, "intents",
                    hits_json(st, st->intent, N_INTENTS, coach_intent_names, "intent"), "objections",
                    hits_json(st, st->objection, N_OBJECTIONS, coach_objection_names, "objection"), "qualification",
                    qual, "missing", missing, "response_times", rts, "talk_ratio", talk, "quiet_hours", quiet,
                    "timezone", hint ? json_string(tz) : json_null());
done:
    if (st) eh_free(st->toks);
    eh_free(st);
    eh_free(o);
    eh_free(d_agent);
    eh_free(d_lead);
    eh_free(sent);
    return out;
}
