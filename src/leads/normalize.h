/* normalize — canonical forms of a lead's contact fields.
 *
 * The same person arrives from a GoHighLevel webhook, a Twilio SMS and a
 * spreadsheet import with their phone written "(916) 555-0123", "+1 916 555
 * 0123" and "916.555.0123". Deduplication, SMS sending and matching inbound
 * messages to leads all compare these fields byte for byte, so every input
 * path stores them in one form: E.164 phones, lowercased emails and 5-digit
 * ZIP codes. Anything that cannot be put in that form is rejected rather
 * than stored half-cleaned.
 *
 * Pure functions: no allocation, no global state, no locale (only ASCII is
 * recognised; a non-ASCII byte makes the input invalid). Each writes a
 * NUL-terminated result into the caller's out[outlen] and returns:
 *   NORM_OK       out holds the normalised value
 *   NORM_INVALID  the input is not a valid value; out is set to ""
 *   NORM_NOSPACE  outlen is too small for the result; out is set to "" when
 *                 outlen > 0 (phones need 17 bytes, emails 255, ZIPs 6)
 *   NORM_BADARG   NULL input or out, or an unknown default country */
#ifndef EH_NORMALIZE_H
#define EH_NORMALIZE_H

#include <stddef.h>

enum { NORM_OK = 0, NORM_INVALID = -1, NORM_NOSPACE = -2, NORM_BADARG = -3 };

/* Sizes that always suffice for out. */
#define NORM_PHONE_MAX 17 /* '+', up to 15 digits, NUL */
#define NORM_EMAIL_MAX 255
#define NORM_ZIP_MAX 6

/* Phone number to E.164 ("+19165550123").
 *
 * Accepted: digits with the separators space - . / ( ); a leading '+', or the
 * international prefix "00" (or the default country's own: "011" in the
 * NANP, "0011" in Australia) for numbers with a country code; a "tel:" URI
 * (its ";params" dropped); the UK habit "+44 (0)20 ..."; an extension after
 * "x", "ext", "ext.", "extension" or "#" is dropped. Letters (vanity numbers)
 * are rejected.
 *
 * Numbers without a country code belong to default_country (ISO 3166 alpha-2,
 * case-insensitive; NULL means "US"), one of: US CA (NANP), GB IE DE FR NL BE
 * CH AT AU NZ IN (national trunk prefix 0 dropped), ES IT MX (no trunk
 * prefix: Italian numbers keep their leading 0, Mexico dropped its prefixes
 * in 2019). Validation: country code 1 needs exactly 10 national digits whose
 * area code and exchange do not start with 0 or 1; other country codes need
 * 8..15 digits in total (E.164's maximum is 15). */
int norm_phone_e164(const char *in, const char *default_country, char *out, size_t outlen);

/* Email address: surrounding whitespace trimmed, then the whole address
 * lowercased. Lowercasing the local part is not RFC-correct in theory, but
 * GoHighLevel (and every provider we deliver through) treats addresses
 * case-insensitively, so two spellings must dedupe to one lead.
 *
 * A pragmatic RFC 5321 subset: at most 254 characters; local part 1-64 of
 * letters, digits, ! # $ % & ' * + - / = ? ^ _ ` { | } ~ and dots, no leading,
 * trailing or double dot (quoted local parts are rejected); one '@'; domain
 * 1-253 characters of at least two dot-separated labels, each 1-63 of
 * letters, digits and hyphens, not starting or ending with a hyphen; the last
 * label is at least two letters or punycode ("xn--..."). IP-literal domains
 * and non-ASCII (SMTPUTF8) addresses are rejected. */
int norm_email(const char *in, char *out, size_t outlen);

/* US ZIP code: "95814", "95814-1234", "95814 1234" or "958141234" (ZIP+4)
 * become "95814". Surrounding whitespace is trimmed. "00000", a common
 * placeholder that is no real ZIP, is rejected, as are 4-digit values
 * (a spreadsheet that dropped a leading zero: we do not guess). */
int norm_zip_us(const char *in, char *out, size_t outlen);

#endif
