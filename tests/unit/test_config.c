/* Configuration precedence (flag > env > file > default), value parsing,
 * errors, and --help listing every option. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"

static void clear_env(void) {
    unsetenv("EHUB_PORT");
    unsetenv("EHUB_CONFIG");
    unsetenv("EHUB_LOG_LEVEL");
    unsetenv("EHUB_MAX_BODY");
}

static void test_defaults(void **st) {
    clear_env();
    ehub_config c;
    char err[256];
    char *argv[] = {NULL};
    assert_int_equal(config_load(&c, 0, argv, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(c.port, 8080);
    assert_string_equal(c.data_dir, "./data");
    assert_string_equal(c.bus, "inproc");
    assert_int_equal(c.max_body, 1024 * 1024);
    assert_int_equal(c.header_timeout_ms, 10000);
    assert_int_equal(c.log_level, LOG_INFO);
    char url[1100];
    config_store_url(&c, url, sizeof url);
    assert_string_equal(url, "sqlite:./data/ehub.db");
    /* security defaults */
    assert_int_equal(c.jwt_ttl_ms, 15 * 60 * 1000);
    assert_int_equal(c.refresh_ttl_ms, 30u * 86400 * 1000);
    assert_string_equal(c.jwt_issuer, "ehub");
    assert_string_equal(c.login_limit_account, "5/m");
    assert_string_equal(c.rate_limit_principal, "off");
    /* h and d suffixes; 50 days does not fit in 32-bit milliseconds */
    char *a1[] = {"--jwt-ttl", "2h", "--refresh-ttl=7d"};
    assert_int_equal(config_load(&c, 3, a1, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(c.jwt_ttl_ms, 2 * 3600 * 1000);
    assert_int_equal(c.refresh_ttl_ms, 7u * 86400 * 1000);
    char *a2[] = {"--refresh-ttl", "50d"};
    assert_int_equal(config_load(&c, 2, a2, NULL, NULL, err, sizeof err), -1);
    /* fan-out writers: one helper by default, shared passes from 256 subscribers */
    assert_int_equal(config_load(&c, 0, argv, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(c.ws_writers, 1);
    assert_int_equal(c.ws_parallel_min, 256);
    char *a3[] = {"--ws-writers", "0", "--ws-parallel-min", "2"};
    assert_int_equal(config_load(&c, 4, a3, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(c.ws_writers, 0);
    assert_int_equal(c.ws_parallel_min, 2);
    char *a4[] = {"--ws-writers", "-1"};
    assert_int_equal(config_load(&c, 2, a4, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "ws-writers"));
}

static void test_precedence(void **st) {
    clear_env();
    char path[] = "/tmp/ehub-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# comment\nport = 7000\nlog-level = debug\nmax-body = 2M  # inline\nhost=0.0.0.0\n");
    fclose(f);
    setenv("EHUB_CONFIG", path, 1);
    setenv("EHUB_PORT", "7001", 1);
    ehub_config c;
    char err[256];
    char *argv[] = {"--port", "7002", "--demo", "extra", "--idle-timeout=5s"};
    int rest[8], nrest;
    assert_int_equal(config_load(&c, 5, argv, rest, &nrest, err, sizeof err), 0);
    assert_int_equal(c.port, 7002);        /* flag beats env */
    assert_int_equal(c.log_level, LOG_DEBUG); /* file */
    assert_int_equal(c.max_body, 2 * 1024 * 1024);
    assert_string_equal(c.host, "0.0.0.0");
    assert_int_equal(c.demo, 1);
    assert_int_equal(c.idle_timeout_ms, 5000);
    assert_int_equal(nrest, 1);
    assert_int_equal(rest[0], 3);
    char *argv2[] = {NULL};
    assert_int_equal(config_load(&c, 0, argv2, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(c.port, 7001);        /* env beats file */
    unlink(path);
    clear_env();
}

static void test_errors(void **st) {
    clear_env();
    ehub_config c;
    char err[256];
    char *a1[] = {"--port", "99999"};
    assert_int_equal(config_load(&c, 2, a1, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "port"));
    char *a2[] = {"--nope"};
    assert_int_equal(config_load(&c, 1, a2, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown option"));
    char *a3[] = {"--port"};
    assert_int_equal(config_load(&c, 1, a3, NULL, NULL, err, sizeof err), -1);
    char *a4[] = {"--max-body", "12Q"};
    assert_int_equal(config_load(&c, 2, a4, NULL, NULL, err, sizeof err), -1);
    char *a5[] = {"--log-level", "loud"};
    assert_int_equal(config_load(&c, 2, a5, NULL, NULL, err, sizeof err), -1);
    char *a6[] = {"--header-timeout", "-1s"};
    assert_int_equal(config_load(&c, 2, a6, NULL, NULL, err, sizeof err), -1);
    setenv("EHUB_PORT", "abc", 1);
    char *a7[] = {NULL};
    assert_int_equal(config_load(&c, 0, a7, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "EHUB_PORT"));
    clear_env();
    setenv("EHUB_CONFIG", "/nonexistent/ehub.conf", 1);
    assert_int_equal(config_load(&c, 0, a7, NULL, NULL, err, sizeof err), -1);
    clear_env();
}

static void test_help_lists_everything(void **st) {
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    config_print_help(f);
    fclose(f);
    const char *must[] = {"--host", "--port", "--data-dir", "--store", "--bus", "--demo",
                          "--log-level", "EHUB_PORT", "EHUB_STORE", "8080", "--max-body", "--config"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) assert_non_null(strstr(out, must[i]));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_help_lists_everything),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
