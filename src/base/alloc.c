#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The only process-wide mutable state in base/: a test-only failure
 * countdown. Negative means "never fail"; atomics keep it race-free. */
static atomic_long fail_countdown = -1;

void eh_alloc_fail_after(long n) { atomic_store(&fail_countdown, n); }

static int should_fail(void) {
    long v = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (v < 0) return 0;
    if (v == 0) return 1;
    atomic_fetch_sub(&fail_countdown, 1);
    return 0;
}

void *eh_malloc(size_t n) {
    if (should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *eh_calloc(size_t count, size_t size) {
    if (should_fail()) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *eh_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

char *eh_strndup(const char *s, size_t n) {
    char *d = eh_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *eh_strdup(const char *s) { return s ? eh_strndup(s, strlen(s)) : NULL; }

void eh_free(void *p) { free(p); }
