/* The shared limiters' Redis connections (src/auth/rlredis.c) when Redis is
 * away: over loopback TCP, against a Redis that cannot be reached (its
 * listen backlog full, so a connect hangs as on a lost network) and a small
 * fake that answers the window script's reply, then drops every connection
 * as a Redis restart does. What is measured is what a pool thread pays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/clock.h"

static int listen_on(int backlog, int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int64_t take_ms(auth_redis_limiter *l, int *rc) {
    uint64_t t0 = clock_mono_ns();
    int64_t wait = -1;
    *rc = auth_redis_window_take(l, "ghl:w:1", 10, 1000, 60000, "m.1", &wait);
    return (int64_t)((clock_mono_ns() - t0) / 1000000);
}

/* A Redis whose connects hang: after the first one times out (250 ms),
 * the next calls within the second skip Redis instead of each waiting out
 * a connect of its own. */
static void test_unreachable_redis_costs_one_connect_timeout(void **st) {
    (void)st;
    int port;
    int lfd = listen_on(0, &port);
    /* never accepted: these fill the accept queue, and SYNs past it are dropped */
    int fill[3];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    for (int i = 0; i < 3; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM, 0);
        fcntl(fill[i], F_SETFL, O_NONBLOCK);
        connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    usleep(50000);
    char url[64], err[200] = "";
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    auth_redis_limiter *l = auth_redis_limiter_new(url, "t:", err, sizeof err);
    assert_non_null(l);
    int rc;
    int64_t first = take_ms(l, &rc);
    assert_int_equal(rc, -1);
    assert_true(first >= 200); /* the connect really hung: the test stands for a lost network */
    int64_t rest = 0;
    for (int i = 0; i < 4; i++) {
        rest += take_ms(l, &rc);
        assert_int_equal(rc, -1);
    }
    /* 4 more connects would be 4 x 250 ms */
    assert_true(rest < 100);
    auth_redis_limiter_free(l);
    for (int i = 0; i < 3; i++) close(fill[i]);
    close(lfd);
}

/* ---- a fake Redis: every command gets the window script's {1, 0} after delay_ms ---- */

typedef struct fake {
    int lfd, port, delay_ms;
    pthread_mutex_t mu;
    int fds[64], nfd;
    pthread_t th;
} fake;

typedef struct fconn {
    fake *f;
    int fd;
} fconn;

static void *fconn_main(void *arg) {
    fconn *c = arg;
    char b[4096];
    for (;;) {
        ssize_t n = recv(c->fd, b, sizeof b, 0);
        if (n <= 0) break;
        usleep((useconds_t)c->f->delay_ms * 1000);
        static const char reply[] = "*2\r\n:1\r\n:0\r\n";
        if (send(c->fd, reply, sizeof reply - 1, MSG_NOSIGNAL) < 0) break;
    }
    free(c);
    return NULL;
}

static void *fake_main(void *arg) {
    fake *f = arg;
    for (;;) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0) break;
        fconn *c = malloc(sizeof *c);
        c->f = f;
        c->fd = fd;
        pthread_mutex_lock(&f->mu);
        if (f->nfd < 64) f->fds[f->nfd++] = fd;
        pthread_mutex_unlock(&f->mu);
        pthread_t t;
        pthread_create(&t, NULL, fconn_main, c);
        pthread_detach(t);
    }
    return NULL;
}

/* Every connection dropped, the port still listening: a restart. */
static void fake_restart(fake *f) {
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->nfd; i++) shutdown(f->fds[i], SHUT_RDWR);
    pthread_mutex_unlock(&f->mu);
    usleep(50000);
}

static void *taker(void *arg) {
    int rc;
    take_ms(arg, &rc);
    return (void *)(intptr_t)rc;
}

/* After a restart every pooled connection is dead: the first failure
 * drops them all, so the call after the one-second pause reconnects and
 * is counted in the shared window again (not another dead connection,
 * one more second of every node sending on its own window, per
 * connection the pool held). */
static void test_restart_drops_every_pooled_connection(void **st) {
    (void)st;
    fake f = {.delay_ms = 100};
    pthread_mutex_init(&f.mu, NULL);
    f.lfd = listen_on(16, &f.port);
    pthread_create(&f.th, NULL, fake_main, &f);
    char url[64], err[200] = "";
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", f.port);
    auth_redis_limiter *l = auth_redis_limiter_new(url, "t:", err, sizeof err);
    assert_non_null(l);
    /* three at once: three connections, pooled after */
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, taker, l);
    for (int i = 0; i < 3; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_int_equal((int)(intptr_t)rc, 0);
    }
    pthread_mutex_lock(&f.mu);
    assert_int_equal(f.nfd, 3);
    pthread_mutex_unlock(&f.mu);
    fake_restart(&f);
    int rc;
    take_ms(l, &rc);
    assert_int_equal(rc, -1); /* a dead connection: Redis is skipped for a second */
    take_ms(l, &rc);
    assert_int_equal(rc, -1);
    usleep(1100 * 1000);
    take_ms(l, &rc);
    assert_int_equal(rc, 0);
    auth_redis_limiter_free(l);
    shutdown(f.lfd, SHUT_RDWR);
    close(f.lfd);
    pthread_join(f.th, NULL);
    pthread_mutex_lock(&f.mu);
    for (int i = 0; i < f.nfd; i++) shutdown(f.fds[i], SHUT_RDWR);
    pthread_mutex_unlock(&f.mu);
    usleep(50000); /* the connection threads see the end and return */
    for (int i = 0; i < f.nfd; i++) close(f.fds[i]);
    pthread_mutex_destroy(&f.mu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unreachable_redis_costs_one_connect_timeout),
        cmocka_unit_test(test_restart_drops_every_pooled_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
