/* llm — an optional large-language-model provider for coaching drafts.
 *
 * Two wire formats: Anthropic's Messages API (POST /v1/messages, x-api-key,
 * anthropic-version, content blocks; streamed as SSE events message_start /
 * content_block_delta / message_stop) and OpenAI-compatible chat completions
 * (POST /v1/chat/completions, Bearer key, choices[0].message.content;
 * streamed as `data: {...}` chunks ending with `data: [DONE]`).
 *
 * A call is built (llm_call_new), its libcurl handle transferred by the
 * caller, and ended (llm_call_end), so that the server drives it on the
 * loop with its curl multi (src/http/curlloop.h) and no thread waits on the
 * provider; llm_complete is the same call done blocking (libcurl easy with
 * a hard timeout), for tools and tests. It sends the prompt it is given as
 * it is: callers redact personal data first (coach_draft_prompt does). A circuit breaker
 * shared by all callers stops calling a provider that keeps failing: after
 * `breaker_failures` failures in a row it opens for `breaker_cooldown_ms`;
 * then one trial call is let through (half-open), whose success closes it
 * and whose failure opens it again. The API key is kept in the context only
 * (and in a call's request headers), never logged nor returned. An llm is
 * safe to share between threads; a call is used by one thread at a time. */
#ifndef EH_LLM_H
#define EH_LLM_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "base/buf.h"

typedef enum { LLM_OFF = 0, LLM_ANTHROPIC = 1, LLM_OPENAI = 2 } llm_provider;

typedef struct llm_opts {
    llm_provider provider;
    const char *url;         /* base URL (the API path is appended); NULL/"" = the provider's */
    const char *model;       /* NULL/"" = the provider default below */
    const char *key;         /* API key; may be empty for a local OpenAI-compatible server */
    unsigned timeout_ms;     /* whole call, connect included */
    int stream;              /* ask for a streamed answer */
    int max_tokens;          /* 0 = 400 */
    int breaker_failures;    /* 0 = 5 */
    unsigned breaker_cooldown_ms; /* 0 = 30 s */
} llm_opts;

#define LLM_ANTHROPIC_URL "https://api.anthropic.com"
#define LLM_OPENAI_URL "https://api.openai.com"
#define LLM_ANTHROPIC_MODEL "claude-3-5-haiku-latest"
#define LLM_OPENAI_MODEL "gpt-4o-mini"
#define LLM_ANTHROPIC_VERSION "2023-06-01"
#define LLM_MAX_RESPONSE (256 * 1024) /* bytes of answer read at most */

typedef struct llm llm;

/* "off", "anthropic", "openai" -> provider; -1 if unknown. */
int llm_provider_parse(const char *s);
const char *llm_provider_name(llm_provider p);

/* Reads an API key: from file (when file is non-empty; refused if group or
 * others may read it, or if it is not a regular file) else from env_value
 * (may be NULL). Trailing whitespace is dropped. 0, or -1 with why. */
int llm_key_load(const char *file, const char *env_value, char *out, size_t cap, char *why, size_t whylen);

/* A provider context (copies everything in o). NULL with why on a bad
 * option or out of memory. llm_free(NULL) is a no-op. */
llm *llm_new(const llm_opts *o, char *why, size_t whylen);
void llm_free(llm *l);
llm_provider llm_get_provider(const llm *l);
const char *llm_model(const llm *l);

typedef enum {
    LLM_OK = 0,
    LLM_E_BREAKER,      /* the circuit is open: not called */
    LLM_E_TIMEOUT,      /* no full answer within timeout_ms */
    LLM_E_CONNECT,      /* refused, unreachable, TLS... */
    LLM_E_RATE_LIMITED, /* 429 */
    LLM_E_OVERLOADED,   /* 529, 503, or an overloaded_error (also mid-stream) */
    LLM_E_HTTP,         /* another non-2xx status, or an error event */
    LLM_E_MALFORMED,    /* not the wire format, no text, stream cut short, too big */
    LLM_E_NOMEM
} llm_status;
const char *llm_status_name(llm_status s); /* "ok", "breaker_open", "timeout", ... */

typedef struct llm_result {
    llm_status status;
    char *text;            /* the answer (eh_malloc'd; NULL unless LLM_OK) */
    long http_status;      /* 0 if none */
    char error_type[64];   /* the provider's error type if it sent one */
    int64_t ms;            /* time spent */
    int streamed;
} llm_result;

/* A call whose transfer someone else drives. llm_call_new asks the breaker
 * (LLM_E_BREAKER: nothing built, nothing to end; when half-open, this call
 * is the trial), builds the request and an easy handle with timeout_ms set,
 * and gives *out (LLM_OK), or LLM_E_NOMEM (counted as a failure). Any
 * thread. llm_call_handle: the handle to transfer (curl_easy_perform, or a
 * multi); its callbacks read the answer as it comes (SSE incrementally, a
 * plain body up to LLM_MAX_RESPONSE) and stay cheap, so they may run on the
 * loop. Once the transfer has ended with cc and the handle is out of any
 * multi, llm_call_end reads the result into *r (llm_result_free after),
 * feeds the breaker, frees the call with its handle and returns r->status
 * (CURLE_ABORTED_BY_CALLBACK, a shutdown's end of a transfer past its
 * timeout, is LLM_E_TIMEOUT). A call that was built but never sent goes to
 * llm_call_cancel instead: freed, the breaker neither fed nor left
 * half-open. */
typedef struct llm_call llm_call;
llm_status llm_call_new(llm *l, const char *system, const char *user, llm_call **out);
CURL *llm_call_handle(llm_call *c);
llm_status llm_call_end(llm_call *c, CURLcode cc, llm_result *r);
void llm_call_cancel(llm_call *c);

/* Blocking: the same call, sent and waited for (at most timeout_ms) on
 * this thread. Fills *r (call llm_result_free after) and returns
 * r->status. */
llm_status llm_complete(llm *l, const char *system, const char *user, llm_result *r);
void llm_result_free(llm_result *r);

/* Whether a call now would be refused by the breaker (open and not yet
 * ready for a trial). Cheap; for the loop thread. */
int llm_breaker_is_open(llm *l);
/* "closed", "open" or "half_open". */
const char *llm_breaker_state(llm *l);

/* ---- the wire formats, exposed for tests ---- */

/* The request body (JSON text, caller frees with free()). NULL on OOM. */
char *llm_request_json(llm_provider p, const char *model, const char *system, const char *user, int max_tokens,
                       int stream);
/* A whole (not streamed) 2xx body -> text appended to out. Returns LLM_OK,
 * LLM_E_MALFORMED, or an error the body reports (overloaded...), with the
 * provider's error type in etype. */
llm_status llm_parse_body(llm_provider p, const char *body, size_t n, buf *out, char *etype, size_t etlen);
/* An error body of a non-2xx answer: the provider's error type into etype
 * (empty if none can be read). */
void llm_parse_error(llm_provider p, const char *body, size_t n, char *etype, size_t etlen);

/* Incremental SSE reader: feed bytes as they come, in pieces of any size. */
typedef struct llm_stream llm_stream;
llm_stream *llm_stream_new(llm_provider p);
void llm_stream_free(llm_stream *s);
/* LLM_OK to go on; an error (malformed, overloaded, http) ends the stream. */
llm_status llm_stream_feed(llm_stream *s, const char *data, size_t n);
/* After the last byte: LLM_OK if the stream ended properly (message_stop /
 * [DONE]) with text; else the error seen or LLM_E_MALFORMED. */
llm_status llm_stream_finish(llm_stream *s);
const char *llm_stream_text(const llm_stream *s);
const char *llm_stream_error_type(const llm_stream *s);

#endif
