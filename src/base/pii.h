/* pii — finds and redacts personal data in free text (message bodies, call
 * notes) before it reaches a log line, an analytics export or a prompt.
 *
 * Kinds: e-mail addresses; phone numbers (E.164 "+44 20 7946 0958", "00"
 * international prefix, US/NANP "(415) 555-0101", "415.555.0101",
 * "1-415-555-0101", bare 10 digits with valid NANP area/exchange, national
 * numbers with a trunk 0 and separators, 7-digit "555-0101"); US SSNs
 * ("123-45-6789" / "123 45 6789" with valid area/group/serial, or 9 bare
 * digits right after "SSN"/"social security"); payment cards (13-19 digits,
 * spaces or dashes allowed, first digit 2-6, Luhn-checked); US street
 * addresses (house number, up to four name words, a street suffix such as
 * St/Ave/Road, optional "Apt/Unit/Suite/# X"); dates of birth (see
 * below); IBANs (country letters, check digits, 11-30 alphanumerics,
 * optionally grouped by spaces, mod-97 checked).
 *
 * Date-of-birth rule: any date (m/d/yyyy, m-d-yyyy, d.m.yyyy, yyyy-mm-dd,
 * "March 3, 1985", "3 March 1985") within 40 bytes after "dob", "d.o.b",
 * "date of birth", "birth date", "birthdate", "born" or "birthday" (then a
 * 2-digit year is allowed too); elsewhere only full numeric dates with a
 * year from 1920 to 2008 (old enough to be a birth year of an adult lead,
 * too old to be an appointment or closing date).
 *
 * Detection works on ASCII bytes only: a byte >= 0x80 (part of a UTF-8
 * sequence) counts as a word boundary and is never inside a span, so spans
 * always start and end on character boundaries. Nothing allocates; cost is
 * linear in the input apart from bounded look-aheads. All functions are
 * pure and thread-safe. */
#ifndef EH_PII_H
#define EH_PII_H

#include <stddef.h>

typedef enum {
    PII_EMAIL = 0,
    PII_PHONE,
    PII_SSN,
    PII_CARD,
    PII_ADDRESS,
    PII_DOB,
    PII_IBAN,
    PII_NKINDS
} pii_kind;

typedef struct pii_span {
    size_t start, len;  /* byte offsets into the text */
    pii_kind kind;
} pii_span;

/* "email", "phone", ...; NULL for an unknown kind. */
const char *pii_kind_name(pii_kind k);
/* "[EMAIL]", "[PHONE]", ... */
const char *pii_placeholder(pii_kind k);

/* The first span starting at or after `from` in s[0..n). Returns 1 and
 * fills *sp, or 0 if there is none. Spans found by successive calls (from =
 * previous start + len) never overlap. */
int pii_next(const char *s, size_t n, size_t from, pii_span *sp);

/* Up to max spans in order; returns how many there are in total (which may
 * exceed max: only the first max are stored). */
size_t pii_find(const char *s, size_t n, pii_span *out, size_t max);

/* Writes s with every span replaced by its placeholder into out (cap bytes,
 * always NUL-terminated when cap > 0). Returns the length the whole result
 * needs (without the NUL), like snprintf: the output was cut if the return
 * is >= cap, and then ends on a UTF-8 character boundary. */
size_t pii_redact(const char *s, size_t n, char *out, size_t cap);

/* Luhn check over the digits of s[0..n) (other bytes ignored). */
int pii_luhn_ok(const char *s, size_t n);
/* IBAN mod-97 check over s[0..n) (spaces ignored); 1 if valid. */
int pii_iban_ok(const char *s, size_t n);

#endif
