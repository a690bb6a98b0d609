/* llm: both providers' request bodies, whole answers and error bodies, the
 * SSE readers fed in pieces of every size (CRLF too), cut and failing
 * streams, the API key file's permission check, the circuit breaker against
 * a closed port, calls built with llm_call_new and driven on a libuv loop by
 * curlloop against a loopback server (a stream in small pieces while the
 * loop keeps ticking, an answer past 256 KB, a 529, a provider that never
 * answers), a built call cancelled while half-open, and the draft prompt's
 * redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "coach/coach.h"
#include "http/curlloop.h"
#include "llm/llm.h"

static void test_request_bodies(void **st) {
    (void)st;
    char *s = llm_request_json(LLM_ANTHROPIC, "m1", "sys", "hello \"you\"", 300, 1);
    json_t *o = json_loads(s, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "model")), "m1");
    assert_int_equal(json_integer_value(json_object_get(o, "max_tokens")), 300);
    assert_string_equal(json_string_value(json_object_get(o, "system")), "sys");
    json_t *m = json_array_get(json_object_get(o, "messages"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "role")), "user");
    json_t *b = json_array_get(json_object_get(m, "content"), 0);
    assert_string_equal(json_string_value(json_object_get(b, "type")), "text");
    assert_string_equal(json_string_value(json_object_get(b, "text")), "hello \"you\"");
    assert_true(json_is_true(json_object_get(o, "stream")));
    json_decref(o);
    free(s);
    s = llm_request_json(LLM_OPENAI, "m2", "sys", "hi", 50, 0);
    o = json_loads(s, 0, NULL);
    json_t *ms = json_object_get(o, "messages");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ms, 0), "role")), "system");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ms, 1), "content")), "hi");
    assert_true(json_is_false(json_object_get(o, "stream")));
    json_decref(o);
    free(s);
}

static llm_status body(llm_provider p, const char *s, char *text, size_t cap, char *et) {
    buf b;
    buf_init(&b, 1 << 16);
    llm_status r = llm_parse_body(p, s, strlen(s), &b, et, 64);
    snprintf(text, cap, "%s", b.p ? b.p : "");
    buf_free(&b);
    return r;
}

static void test_whole_answers_and_errors(void **st) {
    (void)st;
    char t[256], et[64];
    assert_int_equal(body(LLM_ANTHROPIC, "{\"content\":[{\"type\":\"text\",\"text\":\"Hi \"},{\"type\":\"tool_use\"},"
                                         "{\"type\":\"text\",\"text\":\"there\"}]}", t, sizeof t, et), LLM_OK);
    assert_string_equal(t, "Hi there");
    assert_int_equal(body(LLM_OPENAI, "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Yo\"}}]}", t,
                          sizeof t, et), LLM_OK);
    assert_string_equal(t, "Yo");
    assert_int_equal(body(LLM_ANTHROPIC, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}",
                          t, sizeof t, et), LLM_E_OVERLOADED);
    assert_string_equal(et, "overloaded_error");
    assert_int_equal(body(LLM_OPENAI, "{\"error\":{\"code\":\"rate_limit_exceeded\"}}", t, sizeof t, et),
                     LLM_E_RATE_LIMITED);
    assert_int_equal(body(LLM_OPENAI, "{\"choices\":[]}", t, sizeof t, et), LLM_E_MALFORMED);
    assert_int_equal(body(LLM_ANTHROPIC, "{\"content\":[{\"type\":\"text\",\"text\":\"cut", t, sizeof t, et), LLM_E_MALFORMED);
    assert_int_equal(body(LLM_ANTHROPIC, "[1]", t, sizeof t, et), LLM_E_MALFORMED);
    assert_int_equal(body(LLM_ANTHROPIC, "{\"content\":[{\"type\":\"text\",\"text\":\"\"}]}", t, sizeof t, et),
                     LLM_E_MALFORMED);
    const char *eb = "{\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}";
    llm_parse_error(LLM_ANTHROPIC, eb, strlen(eb), et, sizeof et);
    assert_string_equal(et, "api_error");
    llm_parse_error(LLM_OPENAI, "<html>", 6, et, sizeof et);
    assert_string_equal(et, "");
}

static const char ANTHROPIC_SSE[] =
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[]}}\n\n"
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    ": keep-alive comment\n\n"
    "event: ping\ndata: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello \\u00e9\"}}\n\n"
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" world\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

static const char OPENAI_SSE[] =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello \\u00e9\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: [DONE]\n\n";

/* Feeds s in pieces of `piece` bytes; CRLF line ends if crlf. */
static llm_status feed(llm_provider p, const char *s, size_t piece, int crlf, char *text, size_t cap) {
    char tmp[8192];
    size_t n = 0;
    for (const char *c = s; *c && n + 2 < sizeof tmp; c++) {
        if (crlf && *c == '\n') tmp[n++] = '\r';
        tmp[n++] = *c;
    }
    llm_stream *st = llm_stream_new(p);
    llm_status r = LLM_OK;
    for (size_t i = 0; i < n && r == LLM_OK; i += piece)
        r = llm_stream_feed(st, tmp + i, n - i < piece ? n - i : piece);
    if (r == LLM_OK) r = llm_stream_finish(st);
    snprintf(text, cap, "%s", llm_stream_text(st));
    llm_stream_free(st);
    return r;
}

static void test_streams_in_pieces(void **st) {
    (void)st;
    char t[256];
    for (size_t piece = 1; piece < 300; piece += piece < 20 ? 1 : 37)
        for (int crlf = 0; crlf < 2; crlf++) {
            assert_int_equal(feed(LLM_ANTHROPIC, ANTHROPIC_SSE, piece, crlf, t, sizeof t), LLM_OK);
            assert_string_equal(t, "Hello \xc3\xa9 world");
            assert_int_equal(feed(LLM_OPENAI, OPENAI_SSE, piece, crlf, t, sizeof t), LLM_OK);
            assert_string_equal(t, "Hello \xc3\xa9 world");
        }
}

static void test_streams_cut_or_failing(void **st) {
    (void)st;
    char t[256], cut[sizeof ANTHROPIC_SSE];
    /* no message_stop / no [DONE]: cut short */
    snprintf(cut, sizeof cut, "%.*s", (int)(strstr(ANTHROPIC_SSE, "event: message_stop") - ANTHROPIC_SSE), ANTHROPIC_SSE);
    assert_int_equal(feed(LLM_ANTHROPIC, cut, 7, 0, t, sizeof t), LLM_E_MALFORMED);
    snprintf(cut, sizeof cut, "%.*s", (int)(strstr(OPENAI_SSE, "data: [DONE]") - OPENAI_SSE), OPENAI_SSE);
    assert_int_equal(feed(LLM_OPENAI, cut, 7, 0, t, sizeof t), LLM_E_MALFORMED);
    /* an error event in the middle */
    assert_int_equal(feed(LLM_ANTHROPIC,
                          "event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
                          "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
                          5, 0, t, sizeof t),
                     LLM_E_OVERLOADED);
    /* not JSON */
    assert_int_equal(feed(LLM_OPENAI, "data: {\"choices\": [\n\ndata: [DONE]\n\n", 3, 0, t, sizeof t), LLM_E_MALFORMED);
    /* a text delta that is not a string */
    assert_int_equal(feed(LLM_ANTHROPIC, "data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":5}}\n\n",
                          100, 0, t, sizeof t),
                     LLM_E_MALFORMED);
    /* a line without end, past the line cap */
    llm_stream *s = llm_stream_new(LLM_OPENAI);
    char *big = malloc(70000);
    memset(big, 'a', 70000);
    assert_int_equal(llm_stream_feed(s, big, 70000), LLM_E_MALFORMED);
    free(big);
    llm_stream_free(s);
    /* done but nothing said */
    assert_int_equal(feed(LLM_OPENAI, "data: [DONE]\n\n", 4, 0, t, sizeof t), LLM_E_MALFORMED);
}

static void test_key_file(void **st) {
    (void)st;
    char path[] = "/tmp/ehub-llm-keyXXXXXX", key[128], why[200];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "sk-abc123\n", 10), 10);
    close(fd);
    chmod(path, 0644);
    assert_int_equal(llm_key_load(path, NULL, key, sizeof key, why, sizeof why), -1);
    assert_non_null(strstr(why, "chmod 600"));
    chmod(path, 0600);
    assert_int_equal(llm_key_load(path, "ignored", key, sizeof key, why, sizeof why), 0);
    assert_string_equal(key, "sk-abc123");
    unlink(path);
    assert_int_equal(llm_key_load(path, NULL, key, sizeof key, why, sizeof why), -1);
    assert_int_equal(llm_key_load("", "sk-env", key, sizeof key, why, sizeof why), 0);
    assert_string_equal(key, "sk-env");
    assert_int_equal(llm_key_load(NULL, "sk\r\nX-Evil: 1", key, sizeof key, why, sizeof why), -1);
    assert_int_equal(llm_key_load(NULL, NULL, key, sizeof key, why, sizeof why), 0);
    assert_string_equal(key, "");
}

/* A loopback URL where nobody listens: a port bound, read and let go. */
static void closed_port_url(char *url, size_t n) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    snprintf(url, n, "http://127.0.0.1:%d", ntohs(a.sin_port));
}

static void test_breaker_against_a_closed_port(void **st) {
    (void)st;
    char url[64], why[200];
    closed_port_url(url, sizeof url);
    llm_opts o = {.provider = LLM_OPENAI, .url = url, .key = "k", .timeout_ms = 500, .breaker_failures = 3,
                  .breaker_cooldown_ms = 150};
    llm *l = llm_new(&o, why, sizeof why);
    assert_non_null(l);
    assert_string_equal(llm_model(l), LLM_OPENAI_MODEL);
    llm_result r;
    for (int i = 0; i < 3; i++) {
        assert_string_equal(llm_breaker_state(l), "closed");
        assert_int_equal(llm_complete(l, "s", "u", &r), LLM_E_CONNECT);
        llm_result_free(&r);
    }
    assert_string_equal(llm_breaker_state(l), "open");
    assert_true(llm_breaker_is_open(l));
    assert_int_equal(llm_complete(l, "s", "u", &r), LLM_E_BREAKER);
    assert_true(r.ms < 50);
    usleep(200 * 1000);
    assert_string_equal(llm_breaker_state(l), "half_open");
    assert_false(llm_breaker_is_open(l));
    assert_int_equal(llm_complete(l, "s", "u", &r), LLM_E_CONNECT); /* the trial fails: open again */
    assert_string_equal(llm_breaker_state(l), "open");
    llm_free(l);
    o.timeout_ms = 50;
    assert_null(llm_new(&o, why, sizeof why));
    o.timeout_ms = 500;
    o.url = "ftp://x";
    assert_null(llm_new(&o, why, sizeof why));
    assert_int_equal(llm_provider_parse("anthropic"), LLM_ANTHROPIC);
    assert_int_equal(llm_provider_parse("openai"), LLM_OPENAI);
    assert_int_equal(llm_provider_parse("off"), LLM_OFF);
    assert_int_equal(llm_provider_parse("gemini"), -1);
}

static void test_draft_prompt_redacts(void **st) {
    (void)st;
    json_t *c = json_pack(
        "{s:{s:{s:f, s:f, s:b}, s:[{s:s, s:s}], s:[{s:s, s:s}], s:{s:{s:b}, s:{s:b}}, s:[s, s]}, "
        "s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}]}",
        "analysis", "sentiment", "average", 0.2, "last", -0.4, "dropping", 1, "intents", "intent", "wants_showing",
        "phrase", "see 12 Oak Street", "objections", "objection", "price_too_high", "phrase",
        "too expensive, mail bob@example.com", "qualification", "budget", "known", 1, "timeline", "known", 0,
        "missing", "timeline", "preapproval", "suggestions", "type", "objection", "item", "price_too_high", "text",
        "Call me at (415) 555-0101 to talk numbers", "type", "question", "item", "timeline", "text",
        "When would you like to move?");
    char *p = coach_draft_prompt(c);
    assert_non_null(p);
    assert_null(strstr(p, "bob@example.com"));
    assert_null(strstr(p, "555-0101"));
    assert_null(strstr(p, "12 Oak Street"));
    assert_non_null(strstr(p, "[EMAIL]"));
    assert_non_null(strstr(p, "[PHONE]"));
    assert_non_null(strstr(p, "[ADDRESS]"));
    assert_non_null(strstr(p, "price_too_high"));
    assert_non_null(strstr(p, "wants_showing"));
    assert_non_null(strstr(p, "Still unknown: timeline, preapproval."));
    assert_non_null(strstr(p, "Known about the lead: budget."));
    assert_non_null(strstr(p, "dropping"));
    assert_non_null(strstr(p, "When would you like to move?"));
    eh_free(p);
    json_decref(c);
    assert_int_equal(coach_draft_mode(NULL), COACH_DRAFT_WAIT);
    assert_int_equal(coach_draft_mode("async"), COACH_DRAFT_ASYNC);
    assert_int_equal(coach_draft_mode("off"), COACH_DRAFT_OFF);
    assert_int_equal(coach_draft_mode("x"), -1);
}

/* ---- calls driven on a loop (as the server does) against a loopback server ---- */

typedef struct step {
    const char *head;  /* status line and headers, without the blank line */
    const char *body;  /* sent in pieces of `piece` bytes, `gap_ms` apart (0: at once) */
    size_t body_len, piece;
    int gap_ms;
    int hang_ms;       /* > 0: answer nothing, close after this long */
} step;

typedef struct fake {
    int fd, port;
    const step *steps;
    int nsteps;
    pthread_t th;
} fake;

static void *fake_run(void *arg) {
    fake *f = arg;
    for (int i = 0; i < f->nsteps; i++) {
        int c = accept(f->fd, NULL, NULL);
        if (c < 0) return NULL;
        /* the request: headers, then Content-Length bytes */
        char in[8192];
        size_t n = 0, need = 0;
        char *end = NULL;
        while (n < sizeof in - 1) {
            ssize_t r = read(c, in + n, sizeof in - 1 - n);
            if (r <= 0) break;
            n += (size_t)r;
            in[n] = 0;
            if (!end && (end = strstr(in, "\r\n\r\n"))) {
                const char *cl = strcasestr(in, "content-length:");
                need = (size_t)(end + 4 - in) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
            }
            if (end && n >= need) break;
        }
        const step *s = &f->steps[i];
        if (s->hang_ms) {
            usleep((useconds_t)s->hang_ms * 1000);
        } else {
            char head[512];
            int hl = snprintf(head, sizeof head, "%s\r\n\r\n", s->head);
            ssize_t w = send(c, head, (size_t)hl, MSG_NOSIGNAL);
            for (size_t off = 0; w >= 0 && off < s->body_len; off += s->piece) {
                size_t k = s->body_len - off < s->piece ? s->body_len - off : s->piece;
                w = send(c, s->body + off, k, MSG_NOSIGNAL);
                if (s->gap_ms) usleep((useconds_t)s->gap_ms * 1000);
            }
        }
        close(c);
    }
    return NULL;
}

static void fake_start(fake *f, const step *steps, int n) {
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->fd, 8), 0);
    getsockname(f->fd, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    f->steps = steps;
    f->nsteps = n;
    pthread_create(&f->th, NULL, fake_run, f);
}

typedef struct on_loop {
    llm_call *c;
    llm_result r;
    int done;
    int ticks;         /* the loop's timer kept firing during the call */
    uv_timer_t ticker;
} on_loop;

static void on_tick(uv_timer_t *t) { ((on_loop *)t->data)->ticks++; }

static void on_call_done(CURL *h, CURLcode cc, void *ud) {
    on_loop *o = ud;
    (void)h;
    llm_call_end(o->c, cc, &o->r);
    o->done = 1;
    uv_timer_stop(&o->ticker);
}

/* One call of l on a fresh loop's curlloop; fills *o. */
static void call_on_loop(llm *l, on_loop *o) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    curlloop *cl = curlloop_new(&loop, 4, 0);
    assert_non_null(cl);
    memset(o, 0, sizeof *o);
    assert_int_equal(llm_call_new(l, "sys", "draft it", &o->c), LLM_OK);
    uv_timer_init(&loop, &o->ticker);
    o->ticker.data = o;
    uv_timer_start(&o->ticker, on_tick, 5, 5);
    assert_int_equal(curlloop_add(cl, llm_call_handle(o->c), on_call_done, o), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(o->done);
    uv_close((uv_handle_t *)&o->ticker, NULL);
    curlloop_close(cl, 0, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_calls_on_the_loop(void **st) {
    (void)st;
    static const char sse[] =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\n"
        "event: ping\ndata: {\"type\": \"ping\"}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"Happy to \"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"help!\"}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    static const char over[] = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}";
    /* a whole answer past LLM_MAX_RESPONSE: {"content":[{"type":"text","text":"xxxx..."}]} */
    size_t big_len = LLM_MAX_RESPONSE + 4096;
    char *big = malloc(big_len);
    memset(big, 'x', big_len);
    static const char big_start[] = "{\"content\":[{\"type\":\"text\",\"text\":\"";
    memcpy(big, big_start, sizeof big_start - 1);
    memcpy(big + big_len - 4, "\"}]}", 4);
    char big_head[128];
    snprintf(big_head, sizeof big_head, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu",
             big_len);
    const step steps[] = {
        {"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close", sse, sizeof sse - 1, 23, 15, 0},
        {big_head, big, big_len, 16384, 0, 0},
        {"HTTP/1.1 529 Overloaded\r\nContent-Type: application/json\r\nContent-Length: 52", over, sizeof over - 1,
         sizeof over, 0, 0},
        {NULL, NULL, 0, 0, 0, 2000},
    };
    assert_int_equal(sizeof over - 1, 52);
    fake f;
    fake_start(&f, steps, 4);
    char url[64], why[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", f.port);
    llm_opts o = {.provider = LLM_ANTHROPIC, .url = url, .key = "k", .timeout_ms = 400, .stream = 1,
                  .breaker_failures = 10};
    llm *l = llm_new(&o, why, sizeof why);
    assert_non_null(l);
    on_loop r;
    /* a stream in 23-byte pieces 15 ms apart, read as it comes while the loop goes on */
    call_on_loop(l, &r);
    assert_int_equal(r.r.status, LLM_OK);
    assert_true(r.r.streamed);
    assert_string_equal(r.r.text, "Happy to help!");
    assert_int_equal(r.r.http_status, 200);
    assert_true(r.ticks >= 3);
    llm_result_free(&r.r);
    /* the answer is read up to 256 KB, no further */
    call_on_loop(l, &r);
    assert_int_equal(r.r.status, LLM_E_MALFORMED);
    assert_null(r.r.text);
    /* 529 with an overloaded_error body */
    call_on_loop(l, &r);
    assert_int_equal(r.r.status, LLM_E_OVERLOADED);
    assert_int_equal(r.r.http_status, 529);
    assert_string_equal(r.r.error_type, "overloaded_error");
    /* no answer: the call's own timeout ends it, and the loop kept running meanwhile */
    call_on_loop(l, &r);
    assert_int_equal(r.r.status, LLM_E_TIMEOUT);
    assert_true(r.r.ms >= 390 && r.r.ms < 1900); /* before the server hangs up */
    assert_true(r.ticks >= 20);
    pthread_join(f.th, NULL);
    close(f.fd);
    llm_free(l);
    free(big);
}

static void test_cancelled_call_leaves_the_breaker_half_open(void **st) {
    (void)st;
    char url[64], why[200];
    closed_port_url(url, sizeof url);
    llm_opts o = {.provider = LLM_OPENAI, .url = url, .timeout_ms = 500, .breaker_failures = 1,
                  .breaker_cooldown_ms = 50};
    llm *l = llm_new(&o, why, sizeof why);
    llm_result r;
    assert_int_equal(llm_complete(l, "s", "u", &r), LLM_E_CONNECT);
    assert_string_equal(llm_breaker_state(l), "open");
    llm_call *c = NULL;
    assert_int_equal(llm_call_new(l, "s", "u", &c), LLM_E_BREAKER);
    assert_null(c);
    usleep(80 * 1000);
    assert_string_equal(llm_breaker_state(l), "half_open");
    assert_int_equal(llm_call_new(l, "s", "u", &c), LLM_OK); /* the trial */
    assert_non_null(c);
    assert_string_equal(llm_breaker_state(l), "open");       /* nobody else meanwhile */
    llm_call *c2 = NULL;
    assert_int_equal(llm_call_new(l, "s", "u", &c2), LLM_E_BREAKER);
    llm_call_cancel(c);                                        /* never sent */
    assert_string_equal(llm_breaker_state(l), "half_open");   /* the next call is the trial */
    assert_int_equal(llm_complete(l, "s", "u", &r), LLM_E_CONNECT);
    assert_string_equal(llm_breaker_state(l), "open");
    llm_call_cancel(NULL);
    llm_free(l);
}

/* Calls built while the breaker was closed may end, or be dropped unsent,
 * while a half-open trial is out: only the trial's own end settles the
 * trial, or a second trial would go out beside it. */
static void test_only_the_trial_settles_the_trial(void **st) {
    (void)st;
    char url[64], why[200];
    closed_port_url(url, sizeof url);
    llm_opts o = {.provider = LLM_OPENAI, .url = url, .timeout_ms = 500, .breaker_failures = 1,
                  .breaker_cooldown_ms = 50};
    llm *l = llm_new(&o, why, sizeof why);
    llm_call *old1 = NULL, *old2 = NULL, *trial = NULL, *c = NULL;
    assert_int_equal(llm_call_new(l, "s", "u", &old1), LLM_OK); /* closed: not trials */
    assert_int_equal(llm_call_new(l, "s", "u", &old2), LLM_OK);
    llm_result r;
    assert_int_equal(llm_complete(l, "s", "u", &r), LLM_E_CONNECT);
    assert_string_equal(llm_breaker_state(l), "open");
    usleep(80 * 1000);
    assert_int_equal(llm_call_new(l, "s", "u", &trial), LLM_OK); /* the trial */
    llm_call_cancel(old1); /* an older call dropped unsent */
    assert_string_equal(llm_breaker_state(l), "open");
    assert_int_equal(llm_call_new(l, "s", "u", &c), LLM_E_BREAKER);
    /* an older call failing opens it again, the trial still out */
    assert_int_equal(llm_call_end(old2, CURLE_COULDNT_CONNECT, &r), LLM_E_CONNECT);
    usleep(80 * 1000);
    assert_string_equal(llm_breaker_state(l), "open");
    assert_int_equal(llm_call_new(l, "s", "u", &c), LLM_E_BREAKER);
    assert_null(c);
    /* the trial fails: open, and after the cooldown the next call is the trial */
    assert_int_equal(llm_call_end(trial, CURLE_COULDNT_CONNECT, &r), LLM_E_CONNECT);
    assert_string_equal(llm_breaker_state(l), "open");
    usleep(80 * 1000);
    assert_string_equal(llm_breaker_state(l), "half_open");
    assert_int_equal(llm_call_new(l, "s", "u", &c), LLM_OK);
    llm_call_cancel(c);
    assert_string_equal(llm_breaker_state(l), "half_open");
    llm_free(l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_bodies),
        cmocka_unit_test(test_whole_answers_and_errors),
        cmocka_unit_test(test_streams_in_pieces),
        cmocka_unit_test(test_streams_cut_or_failing),
        cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_breaker_against_a_closed_port),
        cmocka_unit_test(test_draft_prompt_redacts),
        cmocka_unit_test(test_calls_on_the_loop),
        cmocka_unit_test(test_cancelled_call_leaves_the_breaker_half_open),
        cmocka_unit_test(test_only_the_trial_settles_the_trial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
