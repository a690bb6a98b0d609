/* Shared between the coach module's files only. */
#ifndef EH_COACH_INTERNAL_H
#define EH_COACH_INTERNAL_H

#include "coach.h"

enum { CUE_INTENT = 0, CUE_OBJECTION = 1, CUE_QUAL = 2 };
enum { N_INTENTS = 6, N_OBJECTIONS = 6, N_QUAL = 7 };

extern const char *const coach_intent_names[N_INTENTS];
extern const char *const coach_objection_names[N_OBJECTIONS];
extern const char *const coach_qual_names[N_QUAL];
extern const char *const coach_warning_names[3];

/* A lexicon word (or a word used by a cue): open-addressed table entry. */
typedef struct centry {
    const char *w;  /* NULL = empty slot */
    uint16_t len;
    uint8_t flags;  /* F_SENT, F_NEG, F_INT, F_BUT */
    float sent;
    float mult;
    int32_t first_cue; /* cues whose first word this is (-1 none), linked by cue.next */
} centry;

#define CUE_MAX_TOK 8
typedef struct cue {
    uint8_t group, label, ntok;
    int32_t tok[CUE_MAX_TOK]; /* entry indices */
    int32_t next;
} cue;

struct coach_ctx {
    centry *tab;
    uint32_t cap;      /* power of two */
    char *words;       /* the words' bytes */
    cue *cues;
    int ncues;
    int32_t tok_num, tok_money; /* entries standing for any number / money amount */
    json_t *playbook;  /* the default, immutable */
};

/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t coach_days_from_civil(int y, int m, int d);

/* Index of a word in the table, -1 if absent. */
int32_t coach_lookup(const coach_ctx *c, const char *w, size_t len);

#endif
