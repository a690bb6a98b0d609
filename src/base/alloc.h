/* alloc — the one allocation wrapper every module uses.
 *
 * Routing every allocation through here lets a test make the N-th allocation
 * fail (eh_alloc_fail_after) and check that callers return an error instead
 * of crashing, as SQLite and curl do. Functions return NULL on failure and
 * never abort. Memory from eh_malloc/eh_calloc/eh_realloc/eh_strdup is freed
 * with eh_free. */
#ifndef EH_ALLOC_H
#define EH_ALLOC_H

#include <stddef.h>

void *eh_malloc(size_t n);
void *eh_calloc(size_t count, size_t size);
void *eh_realloc(void *p, size_t n);
char *eh_strdup(const char *s);
char *eh_strndup(const char *s, size_t n);
void eh_free(void *p);

/* Test hook: after `n` more successful allocations, every allocation fails
 * until called again with n < 0 (the default, never fail). Process-wide, for
 * single-threaded unit tests only. */
void eh_alloc_fail_after(long n);

#endif
