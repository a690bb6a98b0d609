/* libFuzzer target: the LLM providers' answers — whole bodies, error
 * bodies and SSE streams of both wire formats, the stream fed in pieces
 * whose size the input picks. Checks the readers never crash, stay within
 * their caps, and that an accepted stream has text. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/buf.h"
#include "llm/llm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    llm_provider p = data[0] & 1 ? LLM_OPENAI : LLM_ANTHROPIC;
    size_t piece = (size_t)(data[1] % 64) + 1;
    const char *s = (const char *)data + 2;
    size_t n = size - 2;
    if (data[0] & 2) {
        buf out;
        buf_init(&out, LLM_MAX_RESPONSE);
        char et[64];
        llm_status st = llm_parse_body(p, s, n, &out, et, sizeof et);
        if (st == LLM_OK && out.len == 0) __builtin_trap();
        buf_free(&out);
        llm_parse_error(p, s, n, et, sizeof et);
        return 0;
    }
    llm_stream *st = llm_stream_new(p);
    if (!st) return 0;
    llm_status r = LLM_OK;
    for (size_t i = 0; i < n && r == LLM_OK; i += piece) r = llm_stream_feed(st, s + i, n - i < piece ? n - i : piece);
    if (r == LLM_OK) r = llm_stream_finish(st);
    if (r == LLM_OK && llm_stream_text(st)[0] == '\0') __builtin_trap();
    if (strlen(llm_stream_text(st)) > LLM_MAX_RESPONSE) __builtin_trap();
    llm_stream_free(st);
    return 0;
}
