/* The LLM providers' wire formats, the blocking call and the breaker. */
#include "llm.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"

struct llm {
    llm_provider provider;
    char *url;     /* the full endpoint */
    char *model;
    char *key;
    unsigned timeout_ms;
    int stream;
    int max_tokens;
    int fail_max;
    unsigned cooldown_ms;
    pthread_mutex_t mu;   /* the breaker below */
    int failures;         /* in a row */
    uint64_t open_until;  /* monotonic ns; 0 = closed */
    int probing;          /* a half-open trial call is running */
};

int llm_provider_parse(const char *s) {
    if (!s || !*s || !strcmp(s, "off")) return LLM_OFF;
    if (!strcmp(s, "anthropic")) return LLM_ANTHROPIC;
    if (!strcmp(s, "openai")) return LLM_OPENAI;
    return -1;
}

const char *llm_provider_name(llm_provider p) {
    return p == LLM_ANTHROPIC ? "anthropic" : p == LLM_OPENAI ? "openai" : "off";
}

const char *llm_status_name(llm_status s) {
    static const char *const n[] = {"ok", "breaker_open", "timeout", "connect_failed", "rate_limited",
                                    "overloaded", "http_error", "malformed", "out_of_memory"};
    return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "unknown";
}

int llm_key_load(const char *file, const char *env_value, char *out, size_t cap, char *why, size_t whylen) {
    out[0] = '\0';
    if (file && *file) {
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            snprintf(why, whylen, "cannot read the LLM key file %s: %s", file, strerror(errno));
            if (fd >= 0) close(fd);
            return -1;
        }
        if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IRWXG | S_IRWXO))) {
            close(fd);
            snprintf(why, whylen, "the LLM key file %s must be a regular file readable by its owner only (chmod 600)",
                     file);
            return -1;
        }
        ssize_t n = read(fd, out, cap - 1);
        close(fd);
        if (n < 0 || (size_t)n == cap - 1) {
            snprintf(why, whylen, "the LLM key file %s is unreadable or too long", file);
            out[0] = '\0';
            return -1;
        }
        out[n] = '\0';
    } else if (env_value) {
        if (strlen(env_value) >= cap) {
            snprintf(why, whylen, "EHUB_LLM_API_KEY is too long");
            return -1;
        }
        memcpy(out, env_value, strlen(env_value) + 1);
    }
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ' || out[n - 1] == '\t')) out[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x21 || (unsigned char)out[i] > 0x7e) {
            /* it goes into a header: no spaces, controls or CR/LF */
            snprintf(why, whylen, "the LLM API key has a character that cannot go in a header");
            out[0] = '\0';
            return -1;
        }
    return 0;
}

llm *llm_new(const llm_opts *o, char *why, size_t whylen) {
    if (o->provider != LLM_ANTHROPIC && o->provider != LLM_OPENAI) {
        snprintf(why, whylen, "unknown LLM provider");
        return NULL;
    }
    const char *base = o->url && *o->url ? o->url : o->provider == LLM_ANTHROPIC ? LLM_ANTHROPIC_URL : LLM_OPENAI_URL;
    if (strncmp(base, "http://", 7) && strncmp(base, "https://", 8)) {
        snprintf(why, whylen, "--llm-url must start with http:// or https://");
        return NULL;
    }
    if (o->timeout_ms < 100 || o->timeout_ms > 600000) {
        snprintf(why, whylen, "--llm-timeout must be between 100ms and 10m");
        return NULL;
    }
    llm *l = eh_calloc(1, sizeof *l);
    if (!l) goto oom;
    l->provider = o->provider;
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    const char *path = o->provider == LLM_ANTHROPIC ? "/v1/messages" : "/v1/chat/completions";
    /* an OpenAI-compatible base often ends in /v1 already */
    if (bl >= 3 && !memcmp(base + bl - 3, "/v1", 3)) path += 3;
    l->url = eh_malloc(bl + strlen(path) + 1);
    if (!l->url) goto oom;
    memcpy(l->url, base, bl);
    memcpy(l->url + bl, path, strlen(path) + 1);
    l->model = eh_strdup(o->model && *o->model ? o->model
                                               : o->provider == LLM_ANTHROPIC ? LLM_ANTHROPIC_MODEL : LLM_OPENAI_MODEL);
    l->key = eh_strdup(o->key ? o->key : "");
    if (!l->model || !l->key) goto oom;
    l->timeout_ms = o->timeout_ms;
    l->stream = o->stream;
    l->max_tokens = o->max_tokens > 0 ? o->max_tokens : 400;
    l->fail_max = o->breaker_failures > 0 ? o->breaker_failures : 5;
    l->cooldown_ms = o->breaker_cooldown_ms ? o->breaker_cooldown_ms : 30000;
    pthread_mutex_init(&l->mu, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any pool thread uses libcurl */
    return l;
oom:
    snprintf(why, whylen, "out of memory");
    if (l) {
        eh_free(l->url);
        eh_free(l->model);
        eh_free(l->key);
        eh_free(l);
    }
    return NULL;
}

void llm_free(llm *l) {
    if (!l) return;
    pthread_mutex_destroy(&l->mu);
    if (l->key) memset(l->key, 0, strlen(l->key));
    eh_free(l->url);
    eh_free(l->model);
    eh_free(l->key);
    eh_free(l);
}

llm_provider llm_get_provider(const llm *l) { return l ? l->provider : LLM_OFF; }
const char *llm_model(const llm *l) { return l ? l->model : ""; }

/* ---- breaker ---- */

/* 1 if the call may go ahead; *trial when it is the half-open trial. */
static int breaker_enter(llm *l, int *trial) {
    uint64_t now = clock_mono_ns();
    int ok = 1;
    *trial = 0;
    pthread_mutex_lock(&l->mu);
    if (l->open_until) {
        if (now < l->open_until || l->probing) ok = 0;
        else l->probing = *trial = 1;
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

/* Only the trial's own end settles the trial: a call let in while the
 * breaker was closed may end during it, and clearing `probing` then would
 * let a second trial out beside the first. */
static void breaker_leave(llm *l, int success, int trial) {
    pthread_mutex_lock(&l->mu);
    if (success) {
        l->failures = 0;
        l->open_until = 0;
    } else if (++l->failures >= l->fail_max || trial) {
        l->open_until = clock_mono_ns() + (uint64_t)l->cooldown_ms * 1000000ULL;
    }
    if (trial) l->probing = 0;
    pthread_mutex_unlock(&l->mu);
}

/* A call built but never sent: it neither succeeded nor failed, but a
 * half-open trial must let the next one try. */
static void breaker_cancel(llm *l, int trial) {
    if (!trial) return;
    pthread_mutex_lock(&l->mu);
    l->probing = 0;
    pthread_mutex_unlock(&l->mu);
}

int llm_breaker_is_open(llm *l) {
    pthread_mutex_lock(&l->mu);
    int open = l->open_until && (clock_mono_ns() < l->open_until || l->probing);
    pthread_mutex_unlock(&l->mu);
    return open;
}

const char *llm_breaker_state(llm *l) {
    pthread_mutex_lock(&l->mu);
    const char *s = !l->open_until ? "closed" : clock_mono_ns() < l->open_until || l->probing ? "open" : "half_open";
    pthread_mutex_unlock(&l->mu);
    return s;
}

/* ---- wire formats ---- */

char *llm_request_json(llm_provider p, const char *model, const char *system, const char *user, int max_tokens,
                       int stream) {
    json_t *o;
    if (p == LLM_ANTHROPIC)
        o = json_pack("{s:s, s:i, s:s, s:[{s:s, s:[{s:s, s:s}]}], s:b}", "model", model, "max_tokens", max_tokens,
                      "system", system, "messages", "role", "user", "content", "type", "text", "text", user,
                      "stream", stream);
    else
        o = json_pack("{s:s, s:i, s:[{s:s, s:s}, {s:s, s:s}], s:b}", "model", model, "max_tokens", max_tokens,
                      "messages", "role", "system", "content", system, "role", "user", "content", user, "stream",
                      stream);
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static void set_etype(char *etype, size_t etlen, const char *v) {
    if (etype && etlen) snprintf(etype, etlen, "%s", v ? v : "");
}

/* {"type":"error","error":{"type":...}} or {"error":{"type"|"code":...}} */
static llm_status error_of(json_t *o, char *etype, size_t etlen) {
    json_t *e = json_object_get(o, "error");
    if (!e) return LLM_OK;
    const char *t = json_string_value(json_object_get(e, "type"));
    if (!t) t = json_string_value(json_object_get(e, "code"));
    if (!t && json_is_string(e)) t = json_string_value(e);
    set_etype(etype, etlen, t ? t : "error");
    if (t && (!strcmp(t, "overloaded_error") || !strcmp(t, "overloaded"))) return LLM_E_OVERLOADED;
    if (t && (!strcmp(t, "rate_limit_error") || !strcmp(t, "rate_limit_exceeded"))) return LLM_E_RATE_LIMITED;
    return LLM_E_HTTP;
}

void llm_parse_error(llm_provider p, const char *body, size_t n, char *etype, size_t etlen) {
    (void)p;
    set_etype(etype, etlen, "");
    json_t *o = json_loadb(body, n, 0, NULL);
    if (o) error_of(o, etype, etlen);
    json_decref(o);
}

llm_status llm_parse_body(llm_provider p, const char *body, size_t n, buf *out, char *etype, size_t etlen) {
    json_t *o = json_loadb(body, n, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return LLM_E_MALFORMED;
    }
    llm_status st = error_of(o, etype, etlen);
    if (st != LLM_OK) {
        json_decref(o);
        return st;
    }
    int got = 0;
    if (p == LLM_ANTHROPIC) {
        json_t *c = json_object_get(o, "content"), *b;
        size_t i;
        json_array_foreach(c, i, b) {
            const char *t = json_string_value(json_object_get(b, "type"));
            json_t *tx = json_object_get(b, "text");
            if (t && !strcmp(t, "text") && json_is_string(tx)) {
                if (buf_append(out, json_string_value(tx), json_string_length(tx))) st = LLM_E_MALFORMED;
                got = 1;
            }
        }
    } else {
        json_t *m = json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message");
        json_t *c = json_object_get(m, "content");
        if (json_is_string(c)) {
            if (buf_append(out, json_string_value(c), json_string_length(c))) st = LLM_E_MALFORMED;
            got = 1;
        }
    }
    json_decref(o);
    if (st == LLM_OK && (!got || out->len == 0)) st = LLM_E_MALFORMED;
    return st;
}

/* ---- streams (Server-Sent Events) ---- */

struct llm_stream {
    llm_provider p;
    buf line;      /* the line being read */
    buf data;      /* the event's data lines, joined by \n */
    char event[48];
    buf text;
    int done;      /* message_stop / [DONE] seen */
    llm_status err;
    char etype[64];
};

llm_stream *llm_stream_new(llm_provider p) {
    llm_stream *s = eh_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = p;
    buf_init(&s->line, 64 * 1024);
    buf_init(&s->data, LLM_MAX_RESPONSE);
    buf_init(&s->text, LLM_MAX_RESPONSE);
    return s;
}

void llm_stream_free(llm_stream *s) {
    if (!s) return;
    buf_free(&s->line);
    buf_free(&s->data);
    buf_free(&s->text);
    eh_free(s);
}

const char *llm_stream_text(const llm_stream *s) { return s->text.p ? s->text.p : ""; }
const char *llm_stream_error_type(const llm_stream *s) { return s->etype; }

/* One complete event: s->event (may be empty) and s->data. */
static llm_status dispatch(llm_stream *s) {
    const char *d = s->data.p ? s->data.p : "";
    if (s->p == LLM_OPENAI && !strcmp(d, "[DONE]")) {
        s->done = 1;
        return LLM_OK;
    }
    json_t *o = json_loadb(d, s->data.len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return LLM_E_MALFORMED;
    }
    llm_status st = error_of(o, s->etype, sizeof s->etype);
    if (st != LLM_OK) {
        json_decref(o);
        return st;
    }
    const char *type = json_string_value(json_object_get(o, "type"));
    if (s->p == LLM_ANTHROPIC) {
        /* the data's "type" names the event as "event:" does */
        if (!type) type = s->event;
        if (!strcmp(type, "content_block_delta")) {
            json_t *dl = json_object_get(o, "delta");
            const char *dt = json_string_value(json_object_get(dl, "type"));
            json_t *tx = json_object_get(dl, "text");
            if (dt && !strcmp(dt, "text_delta")) {
                if (!json_is_string(tx)) st = LLM_E_MALFORMED;
                else if (buf_append(&s->text, json_string_value(tx), json_string_length(tx))) st = LLM_E_MALFORMED;
            }
        } else if (!strcmp(type, "message_stop")) {
            s->done = 1;
        }
        /* message_start, content_block_start/stop, message_delta, ping: nothing to take */
    } else {
        json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
        json_t *c = json_object_get(json_object_get(ch, "delta"), "content");
        if (json_is_string(c) && buf_append(&s->text, json_string_value(c), json_string_length(c))) st = LLM_E_MALFORMED;
    }
    json_decref(o);
    return st;
}

/* One line (without its end of line). */
static llm_status on_line(llm_stream *s, const char *l, size_t n) {
    if (n == 0) {
        llm_status st = LLM_OK;
        if (s->data.len || s->event[0]) st = dispatch(s);
        buf_reset(&s->data);
        s->event[0] = '\0';
        return st;
    }
    if (l[0] == ':') return LLM_OK; /* a comment (keep-alive) */
    const char *colon = memchr(l, ':', n);
    size_t fl = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vl = colon ? n - fl - 1 : 0;
    if (vl && *v == ' ') v++, vl--;
    if (fl == 4 && !memcmp(l, "data", 4)) {
        if ((s->data.len && buf_putc(&s->data, '\n')) || buf_append(&s->data, v, vl)) return LLM_E_MALFORMED;
    } else if (fl == 5 && !memcmp(l, "event", 5)) {
        snprintf(s->event, sizeof s->event, "%.*s", (int)(vl < 47 ? vl : 47), v);
    }
    return LLM_OK;
}

llm_status llm_stream_feed(llm_stream *s, const char *data, size_t n) {
    if (s->err != LLM_OK) return s->err;
    for (size_t i = 0; i < n; i++) {
        char c = data[i];
        if (c == '\n') {
            size_t ll = s->line.len;
            if (ll && s->line.p[ll - 1] == '\r') ll--;
            llm_status st = on_line(s, s->line.p ? s->line.p : "", ll);
            buf_reset(&s->line);
            if (st != LLM_OK) return s->err = st;
        } else if (buf_putc(&s->line, c)) {
            return s->err = LLM_E_MALFORMED;
        }
    }
    return LLM_OK;
}

llm_status llm_stream_finish(llm_stream *s) {
    if (s->err != LLM_OK) return s->err;
    if (s->line.len) { /* a last line without its newline */
        llm_status st = on_line(s, s->line.p, s->line.len);
        buf_reset(&s->line);
        if (st != LLM_OK) return s->err = st;
    }
    if (s->data.len) {
        llm_status st = on_line(s, "", 0);
        if (st != LLM_OK) return s->err = st;
    }
    if (!s->done || s->text.len == 0) return s->err = LLM_E_MALFORMED;
    return LLM_OK;
}

/* ---- the call ----
 * Built (llm_call_new) and ended (llm_call_end) here; the transfer between
 * the two is driven by whoever holds the handle: curl_easy_perform for
 * llm_complete, the loop's curl multi for coaching drafts. The write and
 * header callbacks run wherever the transfer does; they are cheap (the SSE
 * reader takes bytes as they come, a plain body is only appended). */

struct llm_call {
    llm *l;
    CURL *h;
    struct curl_slist *hd;
    char *req;        /* the request body: curl reads it during the transfer */
    buf body;         /* a non-streamed body, or an error body */
    llm_stream *st;   /* streamed 2xx answers */
    long status;      /* from the status line, once headers are in */
    int is_sse;
    int trial;        /* the breaker's half-open trial */
    uint64_t t0;
};

static size_t on_header(char *d, size_t sz, size_t n, void *ud) {
    llm_call *c = ud;
    size_t len = sz * n;
    if (len > 9 && !memcmp(d, "HTTP/", 5)) {
        const char *sp = memchr(d, ' ', len);
        if (sp) c->status = strtol(sp + 1, NULL, 10);
        c->is_sse = 0;
    } else if (len > 13 && !strncasecmp(d, "content-type:", 13)) {
        c->is_sse = memmem(d, len, "text/event-stream", 17) != NULL;
    }
    return len;
}

static size_t on_body(char *d, size_t sz, size_t n, void *ud) {
    llm_call *c = ud;
    size_t len = sz * n;
    if (c->st && c->status >= 200 && c->status < 300 && c->is_sse) {
        if (llm_stream_feed(c->st, d, len) != LLM_OK) return 0; /* stop reading: the answer is an error */
        return len;
    }
    return buf_append(&c->body, d, len) ? 0 : len;
}

static void call_free(llm_call *c) {
    if (c->h) curl_easy_cleanup(c->h);
    curl_slist_free_all(c->hd);
    free(c->req);
    buf_free(&c->body);
    llm_stream_free(c->st);
    eh_free(c);
}

llm_status llm_call_new(llm *l, const char *system, const char *user, llm_call **out) {
    *out = NULL;
    uint64_t t0 = clock_mono_ns();
    int trial;
    if (!breaker_enter(l, &trial)) return LLM_E_BREAKER;
    llm_call *c = eh_calloc(1, sizeof *c);
    if (!c) {
        breaker_leave(l, 0, trial);
        return LLM_E_NOMEM;
    }
    c->l = l;
    c->trial = trial;
    c->t0 = t0;
    buf_init(&c->body, LLM_MAX_RESPONSE);
    if ((l->stream && !(c->st = llm_stream_new(l->provider))) ||
        !(c->req = llm_request_json(l->provider, l->model, system, user, l->max_tokens, l->stream)) ||
        !(c->h = curl_easy_init()))
        goto oom;
    /* curl_slist_append returns NULL on OOM and leaves the list as it was */
    const char *fixed[] = {l->provider == LLM_ANTHROPIC ? "anthropic-version: " LLM_ANTHROPIC_VERSION : NULL,
                           "Content-Type: application/json",
                           l->stream ? "Accept: text/event-stream" : "Accept: application/json", "Expect:"};
    char hdr[600] = "";
    if (l->provider == LLM_ANTHROPIC) snprintf(hdr, sizeof hdr, "x-api-key: %s", l->key);
    else if (l->key[0]) snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", l->key);
    int ok = !hdr[0] || (c->hd = curl_slist_append(NULL, hdr)) != NULL;
    memset(hdr, 0, sizeof hdr); /* the key leaves no copy on the stack */
    for (size_t i = 0; ok && i < sizeof fixed / sizeof fixed[0]; i++) {
        if (!fixed[i]) continue;
        struct curl_slist *t = curl_slist_append(c->hd, fixed[i]);
        if (t) c->hd = t;
        else ok = 0;
    }
    if (!ok) goto oom;
    CURL *h = c->h;
    curl_easy_setopt(h, CURLOPT_URL, l->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->req);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)l->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(l->timeout_ms < 3000 ? l->timeout_ms : 3000));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    *out = c;
    return LLM_OK;
oom:
    breaker_leave(l, 0, trial);
    call_free(c);
    return LLM_E_NOMEM;
}

CURL *llm_call_handle(llm_call *c) { return c->h; }

void llm_call_cancel(llm_call *c) {
    if (!c) return;
    breaker_cancel(c->l, c->trial);
    call_free(c);
}

llm_status llm_call_end(llm_call *c, CURLcode cc, llm_result *r) {
    memset(r, 0, sizeof *r);
    llm *l = c->l;
    llm_status st;
    long status = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    r->http_status = status;
    /* ABORTED: a shutdown ended it, and it waits longer than the timeout */
    if (cc == CURLE_OPERATION_TIMEDOUT || cc == CURLE_ABORTED_BY_CALLBACK) st = LLM_E_TIMEOUT;
    else if (cc == CURLE_WRITE_ERROR && c->st && llm_stream_feed(c->st, "", 0) != LLM_OK) st = llm_stream_finish(c->st);
    else if (cc == CURLE_WRITE_ERROR) st = LLM_E_MALFORMED; /* past LLM_MAX_RESPONSE */
    else if (cc == CURLE_OUT_OF_MEMORY) st = LLM_E_NOMEM;
    else if (cc != CURLE_OK) st = LLM_E_CONNECT;
    else if (status < 200 || status >= 300) {
        llm_parse_error(l->provider, c->body.p ? c->body.p : "", c->body.len, r->error_type, sizeof r->error_type);
        st = status == 429 ? LLM_E_RATE_LIMITED
             : status == 529 || status == 503 || !strcmp(r->error_type, "overloaded_error") ? LLM_E_OVERLOADED
                                                                                             : LLM_E_HTTP;
    } else if (c->st && c->is_sse) {
        r->streamed = 1;
        st = llm_stream_finish(c->st);
    } else {
        buf text;
        buf_init(&text, LLM_MAX_RESPONSE);
        st = llm_parse_body(l->provider, c->body.p ? c->body.p : "", c->body.len, &text, r->error_type,
                            sizeof r->error_type);
        if (st == LLM_OK) r->text = buf_detach(&text, NULL);
        buf_free(&text);
    }
    if (st == LLM_OK && r->streamed) r->text = eh_strdup(llm_stream_text(c->st));
    if (c->st && st != LLM_OK && !r->error_type[0])
        set_etype(r->error_type, sizeof r->error_type, llm_stream_error_type(c->st));
    if (st == LLM_OK && !r->text) st = LLM_E_NOMEM;
    breaker_leave(l, st == LLM_OK, c->trial);
    r->ms = (int64_t)((clock_mono_ns() - c->t0) / 1000000);
    call_free(c);
    return r->status = st;
}

llm_status llm_complete(llm *l, const char *system, const char *user, llm_result *r) {
    llm_call *c;
    llm_status st = llm_call_new(l, system, user, &c);
    if (st != LLM_OK) {
        memset(r, 0, sizeof *r);
        return r->status = st;
    }
    return llm_call_end(c, curl_easy_perform(c->h), r);
}

void llm_result_free(llm_result *r) {
    eh_free(r->text);
    r->text = NULL;
}
