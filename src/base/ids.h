/* ids — identifiers: request ids and random tokens. */
#ifndef EH_IDS_H
#define EH_IDS_H

#include <stddef.h>

/* Writes 2*nbytes lowercase hex characters of cryptographic randomness plus
 * a NUL into out (outlen >= 2*nbytes+1). Returns 0, or -1 if the system
 * random source failed. Thread-safe. */
int ids_random_hex(char *out, size_t outlen, size_t nbytes);

/* A request id is accepted from a client only if it is 1-128 characters of
 * [A-Za-z0-9._:-]; otherwise we generate one. Returns 1 if acceptable. */
int ids_request_id_valid(const char *s, size_t n);

#endif
