/* arena — a bump allocator for per-request memory.
 *
 * Everything a request needs (parsed headers, path parameters, scratch
 * strings) comes from its arena, and the whole arena is freed when the
 * response is done: one owner, no per-object frees. Allocations are 16-byte
 * aligned. arena_alloc returns NULL when out of memory or past the arena's
 * cap. Not thread-safe. */
#ifndef EH_ARENA_H
#define EH_ARENA_H

#include <stddef.h>

typedef struct arena arena;

/* block: size of each block (first one allocated lazily); cap: total bytes
 * the arena may hold (0 = no cap). Returns NULL on OOM. */
arena *arena_new(size_t block, size_t cap);
void *arena_alloc(arena *a, size_t n);
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_strdup(arena *a, const char *s);
/* Frees every block but the first, which is kept for reuse. */
void arena_reset(arena *a);
size_t arena_used(const arena *a);
void arena_free(arena *a);

#endif
