/* ws_fanout — WebSocket fan-out load tool: opens N subscribers to a
 * broadcast endpoint, then measures how long a broadcast takes to reach
 * the last of them, and how many events per second get delivered.
 *
 *   ws_fanout --port P --path /ws/realtime?token=ehk_... --subscribe '{"type":"subscribe","topics":["system"]}'
 *             --post /v1/broadcast --auth ehk_... --body '{"topic":"system","type":"bench","data":{}}'
 *             -n 1000 [--rounds 30] [--burst 50] [--pid SERVER_PID] [--threads T]
 *
 * Epoll, non-blocking sockets, one read per readiness into a shared buffer
 * (no per-message allocation). Set-up runs on one thread; then --threads
 * reader threads (default 1) each own a slice of the subscribers, so a
 * tool allowed several CPUs is not the bottleneck of what it measures. A broadcast is one HTTP POST on
 * its own connection; every text frame a subscriber receives after set-up
 * counts as one delivery (for ehub: the "authenticated" and "subscribed"
 * control messages are awaited during set-up and not counted).
 * Prints one JSON line: subscribers, latency to the last subscriber
 * (p50/p99 over rounds), per-delivery p50/p99, burst events/s, and the
 * server's RSS growth per connection (from /proc/PID/status). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

typedef struct sub {
    int fd;
    int state;        /* 0 handshake, 1 open */
    int setup_left;   /* control messages still expected before counting */
    atomic_long got;  /* deliveries counted (written by the thread reading it) */
    char *rest;       /* bytes of an incomplete frame (or handshake) kept from the last read */
    size_t rest_len, rest_cap;
} sub;

/* Every read lands in one shared buffer and frames are counted in place:
 * a subscriber costs ~40 bytes and no allocation per message; only the
 * tail of a frame split across reads is kept aside (sub.rest). */
#define RBUF (256 * 1024)
static char g_rbuf[RBUF]; /* set-up's; each reader thread has its own */
#define MAX_FRAME (64 * 1024) /* larger frames end the run: this is a fan-out of small events */

static int g_port = 0, g_n = 100, g_rounds = 30, g_burst = 50, g_setup = 0;
static const char *g_path = "/ws/realtime", *g_subscribe = NULL, *g_post = "/broadcast", *g_auth = NULL,
                  *g_body = "{\"msg\":\"bench\"}";
static long g_pid = 0;
static int g_threads = 1; /* reader threads after set-up */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long rss_kb(long pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* CPU time (ms) of a process: ours, or the server's through its CPU clock
 * (clock_getcpuclockid), so a round's cost can be split between the two. */
static double cpu_ms(clockid_t id) {
    struct timespec ts;
    if (clock_gettime(id, &ts)) return -1;
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A masked client text frame (mask 0: the payload is unchanged). */
static int send_text(int fd, const char *s) {
    size_t n = strlen(s);
    unsigned char h[8];
    size_t hl = 0;
    h[hl++] = 0x81;
    if (n < 126) h[hl++] = (unsigned char)(0x80 | n);
    else {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(n >> 8);
        h[hl++] = (unsigned char)n;
    }
    memset(h + hl, 0, 4);
    hl += 4;
    return write_all(fd, h, hl) || write_all(fd, s, n) ? -1 : 0;
}

static void keep(sub *s, const char *p, size_t n) {
    if (n > MAX_FRAME + 16) {
        fprintf(stderr, "handshake or frame too large\n");
        exit(1);
    }
    if (n > s->rest_cap) {
        size_t cap = s->rest_cap ? s->rest_cap : 256;
        while (cap < n) cap *= 2;
        char *r = realloc(s->rest, cap);
        if (!r) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        s->rest = r;
        s->rest_cap = cap;
    }
    memmove(s->rest, p, n);
    s->rest_len = n;
}

/* Counts the whole frames in p[0..len); returns the bytes consumed (a
 * trailing incomplete frame is left). Answers pings. */
static size_t frames(sub *s, const char *buf, size_t len) {
    size_t off = 0;
    for (;;) {
        if (len - off < 2) break;
        const unsigned char *p = (const unsigned char *)buf + off;
        int op = p[0] & 0x0F;
        uint64_t n = p[1] & 0x7F;
        size_t hl = 2;
        if (n == 126) {
            if (len - off < 4) break;
            n = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (n == 127) {
            if (len - off < 10) break;
            n = 0;
            for (int i = 0; i < 8; i++) n = n << 8 | p[2 + i];
            hl = 10;
        }
        if (n > MAX_FRAME) {
            fprintf(stderr, "frame too large\n");
            exit(1);
        }
        if (len - off < hl + n) break; /* not all here yet: not received */
        if (op == 1) {
            if (s->setup_left > 0) s->setup_left--;
            else atomic_fetch_add_explicit(&s->got, 1, memory_order_relaxed);
        } else if (op == 9 && n <= 125) {
            /* The pong carries the ping's data (RFC 6455 5.5.3): a server
             * matching pongs to pings (Uvicorn's websockets) otherwise
             * closes the connection after its ping timeout. Mask 0. */
            unsigned char pong[6 + 125] = {0x8A, (unsigned char)(0x80 | n), 0, 0, 0, 0};
            memcpy(pong + 6, p + hl, (size_t)n);
            write_all(s->fd, pong, 6 + (size_t)n);
        } else if (op == 8) {
            fprintf(stderr, "subscriber closed by server\n");
            exit(1);
        }
        off += hl + n;
    }
    return off;
}

/* Handles whatever is in buf[0..len) (kept bytes first, then this read's);
 * returns the bytes used, the rest is kept. */
static size_t consume(sub *s, const char *buf, size_t len) {
    size_t used = 0;
    if (s->state == 0) {
        const char *e = memmem(buf, len, "\r\n\r\n", 4);
        if (!e) return 0;
        if (strncmp(buf, "HTTP/1.1 101", 12) != 0) {
            fprintf(stderr, "handshake refused: %.80s\n", buf);
            exit(1);
        }
        used = (size_t)(e + 4 - buf);
        s->state = 1;
        if (g_subscribe) send_text(s->fd, g_subscribe);
    }
    return used + frames(s, buf + used, len - used);
}

/* One read per readiness (the socket is level-triggered: more data means
 * another event), into the shared buffer behind any kept bytes. */
static void on_readable(sub *s, char *rbuf) {
    size_t have = s->rest_len;
    if (have) memcpy(rbuf, s->rest, have); /* a split frame: rare and small */
    ssize_t r;
    do r = read(s->fd, rbuf + have, RBUF - have);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (r <= 0) {
        fprintf(stderr, "subscriber connection lost\n");
        exit(1);
    }
    size_t len = have + (size_t)r;
    size_t used = consume(s, rbuf, len);
    if (used < len) keep(s, rbuf + used, len - used);
    else s->rest_len = 0;
}

/* Sends one broadcast on its own connection; returns the fd to read the
 * answer from (post_check), or -1. */
static int post_send(void) {
    int fd = dial();
    if (fd < 0) return -1;
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s%s%s"
                     "Connection: close\r\n\r\n%s",
                     g_post, strlen(g_body), g_auth ? "Authorization: Bearer " : "", g_auth ? g_auth : "",
                     g_auth ? "\r\n" : "", g_body);
    if (write_all(fd, req, (size_t)n)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int post_check(int fd) {
    char resp[512];
    ssize_t r = read(fd, resp, sizeof resp - 1);
    close(fd);
    if (r < 12 || (strncmp(resp + 9, "200", 3) && strncmp(resp + 9, "202", 3))) {
        fprintf(stderr, "broadcast failed: %.60s\n", r > 0 ? resp : "");
        return -1;
    }
    return 0;
}

static int post(void) {
    int fd = post_send();
    return fd < 0 ? -1 : post_check(fd);
}

/* Reader threads (--threads): after set-up each owns a slice of the
 * subscribers, with its own epoll and read buffer, so a client on several
 * CPUs reads as fast as they allow rather than one core's worth. A round's
 * deliveries are counted when a subscriber's count reaches the target the
 * main thread set before posting. */
typedef struct reader {
    pthread_t th;
    int ep;
    char *rbuf;
    double *each; /* this thread's delivery times, ms after the round's t0 */
    size_t neach;
} reader;

static atomic_long g_target;   /* deliveries each subscriber must reach */
static atomic_int g_have;      /* subscribers that reached it */
static atomic_int g_stop;
static _Atomic double g_t0;    /* the round's start (now_ms) */
/* the main thread sleeps here until the last delivery (no polling: its
 * wake-ups would take turns with the readers and the server) */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

static void *reader_main(void *arg) {
    reader *rd = arg;
    struct epoll_event evs[1024];
    while (!atomic_load(&g_stop)) {
        int k = epoll_wait(rd->ep, evs, 1024, 50);
        if (k <= 0) continue;
        for (int j = 0; j < k; j++) {
            sub *s = evs[j].data.ptr;
            long before = atomic_load_explicit(&s->got, memory_order_relaxed);
            on_readable(s, rd->rbuf);
            /* the target read after the read: a round that began while
             * this batch waited is counted against its own target */
            long target = atomic_load(&g_target);
            if (before < target && atomic_load_explicit(&s->got, memory_order_relaxed) >= target) {
                rd->each[rd->neach++] = now_ms() - atomic_load(&g_t0);
                if (atomic_fetch_add(&g_have, 1) + 1 == g_n) { /* the last one: wake the main thread */
                    pthread_mutex_lock(&g_mu);
                    pthread_cond_signal(&g_cv);
                    pthread_mutex_unlock(&g_mu);
                }
            }
        }
    }
    return NULL;
}

/* Sets the target, runs f (the post(s)), and waits until every subscriber
 * has reached it; returns the ms from just before f, or -1. */
static double deliver(long target, int n, int (*f)(void *), void *ud, double timeout_ms) {
    atomic_store(&g_have, 0);
    atomic_store(&g_target, target);
    double t0 = now_ms();
    atomic_store(&g_t0, t0);
    if (f(ud)) return -1;
    pthread_mutex_lock(&g_mu);
    while (atomic_load(&g_have) < n) {
        double left = timeout_ms - (now_ms() - t0);
        if (left <= 0) {
            pthread_mutex_unlock(&g_mu);
            fprintf(stderr, "target %ld: %d of %d delivered\n", target, atomic_load(&g_have), n);
            return -1;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long long ns = (long long)until.tv_nsec + (long long)(left < 100 ? left * 1e6 : 1e8);
        until.tv_sec += (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&g_cv, &g_mu, &until);
    }
    pthread_mutex_unlock(&g_mu);
    /* the last reader stamped its own time; this wake-up adds its latency */
    return now_ms() - t0;
}

static int post_one(void *ud) {
    (void)ud;
    return post();
}

typedef struct burst { int n, *fd; } burst;

static int post_burst(void *ud) {
    burst *b = ud;
    for (int i = 0; i < b->n; i++)
        if ((b->fd[i] = post_send()) < 0) return -1;
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p) {
    if (!n) return 0;
    qsort(v, n, sizeof *v, cmp_d);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--port")) g_port = atoi(v);
        else if (!strcmp(k, "-n")) g_n = atoi(v);
        else if (!strcmp(k, "--path")) g_path = v;
        else if (!strcmp(k, "--subscribe")) g_subscribe = v;
        else if (!strcmp(k, "--setup")) g_setup = atoi(v);
        else if (!strcmp(k, "--post")) g_post = v;
        else if (!strcmp(k, "--auth")) g_auth = v;
        else if (!strcmp(k, "--body")) g_body = v;
        else if (!strcmp(k, "--rounds")) g_rounds = atoi(v);
        else if (!strcmp(k, "--burst")) g_burst = atoi(v);
        else if (!strcmp(k, "--pid")) g_pid = atol(v);
        else if (!strcmp(k, "--threads")) g_threads = atoi(v);
        else {
            fprintf(stderr, "unknown option %s\n", k);
            return 2;
        }
    }
    if (!g_port || g_n < 1) {
        fprintf(stderr, "usage: ws_fanout --port P -n N [--path P] [--subscribe JSON --setup K] [--post PATH --auth KEY --body JSON] [--pid PID] [--threads T]\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    long rss0 = g_pid ? rss_kb(g_pid) : -1;
    sub *subs = calloc((size_t)g_n, sizeof *subs);
    int ep = epoll_create1(0);
    if (!subs || ep < 0) return 1;
    for (int i = 0; i < g_n; i++) {
        sub *s = &subs[i];
        s->setup_left = g_setup;
        if ((s->fd = dial()) < 0) {
            fprintf(stderr, "cannot connect subscriber %d: %s\n", i, strerror(errno));
            return 1;
        }
        char req[2048];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                         g_path);
        if (write_all(s->fd, req, (size_t)n)) return 1;
        fcntl(s->fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
        epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
    }
    struct epoll_event evs[4096];
    /* set-up: every subscriber upgraded and past its control messages */
    double t_setup = now_ms();
    for (;;) {
        int ready = 0;
        for (int i = 0; i < g_n; i++) ready += subs[i].state == 1 && subs[i].setup_left == 0;
        if (ready == g_n) break;
        if (now_ms() - t_setup > 120000) {
            fprintf(stderr, "set-up timed out: %d of %d ready\n", ready, g_n);
            return 1;
        }
        int k = epoll_wait(ep, evs, 4096, 100);
        for (int j = 0; j < k; j++) on_readable(evs[j].data.ptr, g_rbuf);
    }
    long rss1 = g_pid ? rss_kb(g_pid) : -1;

    /* hand the subscribers to the reader threads, a slice each */
    if (g_threads < 1) g_threads = 1;
    if (g_threads > 16) g_threads = 16;
    reader *rds = calloc((size_t)g_threads, sizeof *rds);
    if (!rds) return 1;
    for (int t = 0; t < g_threads; t++) {
        reader *rd = &rds[t];
        rd->ep = epoll_create1(0);
        rd->rbuf = malloc(RBUF);
        rd->each = calloc((size_t)(g_rounds + 1) * (size_t)g_n, sizeof *rd->each);
        if (rd->ep < 0 || !rd->rbuf || !rd->each) return 1;
    }
    for (int i = 0; i < g_n; i++) {
        epoll_ctl(ep, EPOLL_CTL_DEL, subs[i].fd, NULL);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &subs[i]};
        epoll_ctl(rds[i % g_threads].ep, EPOLL_CTL_ADD, subs[i].fd, &ev);
    }
    for (int t = 0; t < g_threads; t++)
        if (pthread_create(&rds[t].th, NULL, reader_main, &rds[t])) return 1;

    /* latency: one broadcast at a time, until everyone has it */
    double *last = calloc((size_t)g_rounds, sizeof *last);
    clockid_t srv_clock;
    int have_srv = g_pid && clock_getcpuclockid((pid_t)g_pid, &srv_clock) == 0;
    double *scpu = calloc((size_t)g_rounds, sizeof *scpu), *ccpu = calloc((size_t)g_rounds, sizeof *ccpu);
    for (int r = 0; r < g_rounds; r++) {
        double s0 = have_srv ? cpu_ms(srv_clock) : 0, c0 = cpu_ms(CLOCK_PROCESS_CPUTIME_ID);
        if ((last[r] = deliver(r + 1, g_n, post_one, NULL, 10000)) < 0) return 1;
        scpu[r] = have_srv ? cpu_ms(srv_clock) - s0 : -1;
        ccpu[r] = cpu_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    size_t neach = 0;
    double *each = calloc((size_t)g_rounds * (size_t)g_n + 1, sizeof *each);
    for (int t = 0; t < g_threads; t++) {
        memcpy(each + neach, rds[t].each, rds[t].neach * sizeof *each);
        neach += rds[t].neach;
        rds[t].neach = 0;
    }
    /* throughput: a burst of broadcasts sent at once, each on its own
     * connection as independent producers would, then wait for every
     * delivery; the answers are checked after. A slow server may spend a
     * long while scheduling a burst before its first send: give up only
     * after a minute. */
    burst b = {g_burst, calloc((size_t)g_burst, sizeof(int))};
    double burst_ms = deliver((long)g_rounds + g_burst, g_n, post_burst, &b, 60000);
    if (burst_ms < 0) return 1;
    double burst_s = burst_ms / 1000.0;
    atomic_store(&g_stop, 1);
    for (int t = 0; t < g_threads; t++) pthread_join(rds[t].th, NULL);
    for (int i = 0; i < g_burst; i++)
        if (post_check(b.fd[i])) return 1;
    free(b.fd);
    double eps = (double)g_n * g_burst / burst_s;
    printf("{\"subscribers\":%d,\"rounds\":%d,\"last_p50_ms\":%.2f,\"last_p99_ms\":%.2f,"
           "\"each_p50_ms\":%.2f,\"each_p99_ms\":%.2f,\"burst\":%d,\"events_per_s\":%.0f,"
           "\"rss_per_conn_kb\":%.1f,\"server_cpu_ms_p50\":%.2f,\"client_cpu_ms_p50\":%.2f,\"reader_threads\":%d}\n",
           g_n, g_rounds, pct(last, (size_t)g_rounds, 0.5), pct(last, (size_t)g_rounds, 0.99),
           pct(each, neach, 0.5), pct(each, neach, 0.99), g_burst, eps,
           rss0 > 0 && rss1 > 0 ? (double)(rss1 - rss0) / g_n : -1.0, pct(scpu, (size_t)g_rounds, 0.5),
           pct(ccpu, (size_t)g_rounds, 0.5), g_threads);
    for (int i = 0; i < g_n; i++) {
        close(subs[i].fd);
        free(subs[i].rest);
    }
    return 0;
}
