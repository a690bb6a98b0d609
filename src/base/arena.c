#include "arena.h"

#include <stdint.h>
#include <string.h>

#include "alloc.h"

typedef struct block {
    struct block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
} block;

struct arena {
    block *head;
    size_t block_size, cap, total;
};

arena *arena_new(size_t block_size, size_t cap) {
    arena *a = eh_calloc(1, sizeof *a);
    if (!a) return NULL;
    a->block_size = block_size ? block_size : 4096;
    a->cap = cap;
    return a;
}

void *arena_alloc(arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    block *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = n > a->block_size ? n : a->block_size;
        if (a->cap && a->total + size > a->cap) return NULL;
        b = eh_malloc(sizeof *b + size);
        if (!b) return NULL;
        b->size = size;
        b->used = 0;
        b->next = a->head;
        a->head = b;
        a->total += size;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n) {
    char *d = arena_alloc(a, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *arena_strdup(arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

void arena_reset(arena *a) {
    block *b = a->head;
    if (!b) return;
    /* Keep the oldest block (the last in the list): it is the typical size. */
    while (b->next) {
        block *next = b->next;
        a->total -= b->size;
        eh_free(b);
        b = next;
    }
    b->used = 0;
    a->head = b;
}

size_t arena_used(const arena *a) {
    size_t n = 0;
    for (const block *b = a->head; b; b = b->next) n += b->used;
    return n;
}

void arena_free(arena *a) {
    if (!a) return;
    block *b = a->head;
    while (b) {
        block *next = b->next;
        eh_free(b);
        b = next;
    }
    eh_free(a);
}
