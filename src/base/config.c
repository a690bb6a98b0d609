#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef enum { T_STR, T_INT, T_BOOL, T_SIZE, T_MS, T_LEVEL } opt_type;

typedef struct opt {
    const char *name;  /* flag without "--"; env is EHUB_ + upper(name with - → _) */
    opt_type type;
    size_t off;
    size_t len;        /* T_STR: capacity */
    const char *def;
    const char *help;
} opt;

#define O(field) offsetof(ehub_config, field), sizeof(((ehub_config *)0)->field)

static const opt opts[] = {
    {"host", T_STR, O(host), "127.0.0.1", "address to listen on (0.0.0.0 for all interfaces)"},
    {"port", T_INT, O(port), "8080", "TCP port for HTTP and WebSocket"},
    {"data-dir", T_STR, O(data_dir), "./data", "directory for the SQLite database and local state"},
    {"store", T_STR, O(store), "", "storage: sqlite:PATH or postgres://... (default sqlite:DATA_DIR/ehub.db)"},
    {"bus", T_STR, O(bus), "inproc", "event bus: inproc (one node) or redis://HOST:PORT[/CHANNEL] (nodes sharing a store)"},
    {"demo", T_BOOL, O(demo), "false", "create a demo tenant with sample data at start-up"},
    {"log-level", T_LEVEL, O(log_level), "info", "debug, info, warn, error or off"},
    {"no-migrate", T_BOOL, O(no_migrate), "false", "do not apply pending migrations at start-up"},
    {"cors-origins", T_STR, O(cors_origins), "", "origins allowed by CORS, comma-separated, or *"},
    {"max-body", T_SIZE, O(max_body), "1M", "largest request body (bytes; K/M suffix)"},
    {"max-import", T_SIZE, O(max_import), "256M", "largest CSV upload to POST /v1/leads/import (streamed)"},
    {"max-header", T_SIZE, O(max_header), "16K", "largest request head: request line + headers"},
    {"max-url", T_SIZE, O(max_url), "8K", "longest request URL"},
    {"max-connections", T_SIZE, O(max_connections), "20000", "concurrent connections; more are refused"},
    {"header-timeout", T_MS, O(header_timeout_ms), "10s", "time allowed to send a request's head"},
    {"body-timeout", T_MS, O(body_timeout_ms), "30s", "time allowed to send a request's body"},
    {"idle-timeout", T_MS, O(idle_timeout_ms), "60s", "keep-alive connection idle time"},
    {"shutdown-timeout", T_MS, O(shutdown_timeout_ms), "10s", "time in-flight requests get on SIGTERM"},
    {"ws-max-message", T_SIZE, O(ws_max_message), "64K", "largest incoming WebSocket message"},
    {"ws-max-queue", T_SIZE, O(ws_max_queue), "1M", "outgoing WebSocket backlog before a slow client is dropped"},
    {"ws-ping", T_MS, O(ws_ping_ms), "30s", "WebSocket ping interval (a client silent for 2 intervals is closed)"},
    {"ws-writers", T_INT, O(ws_writers), "1", "threads that write a large WebSocket fan-out alongside the event loop (0 = the loop alone; at most 8; none when the process may use one CPU only)"},
    {"ws-parallel-min", T_SIZE, O(ws_parallel_min), "256", "fewest subscribers one fan-out write pass shares with the --ws-writers threads"},
    {"replay-window", T_SIZE, O(replay_window), "100000", "events a realtime client may resume across; older asks for a resync"},
    {"threads", T_SIZE, O(threads), "16", "thread-pool size for storage and other blocking work"},
    {"sqlite-sync-full", T_BOOL, O(sqlite_sync_full), "false", "SQLite synchronous=FULL (default NORMAL)"},
    {"pool-size", T_SIZE, O(pool_size), "8", "storage connections (readers on SQLite)"},
    {"test-routes", T_BOOL, O(test_routes), "false", "enable POST /debug/echo and GET /debug/ws-echo"},
    {"web-dir", T_STR, O(web_dir), "", "serve the dashboard from this directory (default: the copy of web/dist built into the binary)"},
    {"config", T_STR, O(config_file), "", "config file of key = value lines"},
    {"tenant", T_STR, O(tenant), "", "tenant slug, for the commands that act on one (key, user, import, audit, train --builtin)"},
    {"twilio-url", T_STR, O(twilio_url), "https://api.twilio.com", "Twilio REST API base URL"},
    {"sendgrid-url", T_STR, O(sendgrid_url), "https://api.sendgrid.com", "SendGrid API base URL"},
    {"ghl-url", T_STR, O(ghl_url), "https://services.leadconnectorhq.com", "GoHighLevel API base URL (sending through GHL)"},
    {"ghl-window", T_MS, O(ghl_window_ms), "10s", "GoHighLevel rate window: at most --ghl-limit sends per tenant in it (GHL's limit); shared by the nodes with --bus redis://"},
    {"ghl-limit", T_INT, O(ghl_limit), "100", "GoHighLevel sends per tenant per --ghl-window (GHL allows 100 per 10 s; 0 = 100)"},
    {"apollo-url", T_STR, O(apollo_url), "https://api.apollo.io", "Apollo API base URL (lead enrichment)"},
    {"apollo-limit", T_STR, O(apollo_limit), "50/m", "Apollo people/match requests per tenant (N/s, N/m or N/h); shared by the nodes with --bus redis://"},
    {"cold-every", T_MS, O(cold_every_ms), "5m", "how often the nurture \"gone cold\" trigger scans leads"},
    {"public-url", T_STR, O(public_url), "", "this server's URL as providers see it (default http://HOST:PORT)"},
    {"jwt-key-file", T_STR, O(jwt_key_file), "", "Ed25519 key(s) signing access tokens, first signs (default DATA_DIR/jwt.keys, made at first start)"},
    {"jwt-hs256-secret-file", T_STR, O(jwt_hs256_secret_file), "", "also accept HS256 tokens signed with this secret (>= 32 bytes)"},
    {"jwt-issuer", T_STR, O(jwt_issuer), "ehub", "iss claim of access tokens"},
    {"jwt-ttl", T_MS, O(jwt_ttl_ms), "15m", "access token lifetime"},
    {"jwt-leeway", T_MS, O(jwt_leeway_ms), "30s", "clock skew allowed when checking exp/nbf/iat"},
    {"refresh-ttl", T_MS, O(refresh_ttl_ms), "30d", "refresh token lifetime (each refresh starts a new one)"},
    {"login-limit-account", T_STR, O(login_limit_account), "5/m", "login attempts per account (N/s, N/m, N/h or off)"},
    {"login-limit-ip", T_STR, O(login_limit_ip), "30/m", "login attempts per client address"},
    {"trusted-proxies", T_STR, O(trusted_proxies), "", "reverse proxies (CIDR,...) whose X-Forwarded-For gives the client address (default none)"},
    {"rate-limit-principal", T_STR, O(rate_limit_principal), "off", "requests per API key or user (N/s, N/m, N/h or off)"},
    {"rate-limit-tenant", T_STR, O(rate_limit_tenant), "off", "requests per tenant, all its keys and users (N/s, N/m, N/h or off)"},
    {"llm-provider", T_STR, O(llm_provider), "off", "coaching reply drafts by an LLM: off, anthropic (Messages API) or openai (chat completions)"},
    {"llm-url", T_STR, O(llm_url), "", "LLM API base URL (default https://api.anthropic.com or https://api.openai.com)"},
    {"llm-model", T_STR, O(llm_model), "", "LLM model (default claude-3-5-haiku-latest or gpt-4o-mini)"},
    {"llm-key-file", T_STR, O(llm_key_file), "", "file holding the LLM API key, mode 0600 (else the key in EHUB_LLM_API_KEY)"},
    {"llm-timeout", T_MS, O(llm_timeout_ms), "10s", "hard time limit of one LLM call"},
    {"llm-budget", T_MS, O(llm_budget_ms), "1500ms", "how long a coaching answer waits for the LLM draft (later: a coaching.updated event)"},
    {"llm-stream", T_BOOL, O(llm_stream), "false", "ask the LLM for a streamed (SSE) answer"},
    {"llm-cooldown", T_MS, O(llm_cooldown_ms), "30s", "LLM circuit breaker: open this long after 5 failed calls in a row"},
    {"retention-every", T_MS, O(retention_every_ms), "1h", "how often each tenant's retention policy runs (0 = never; one node per run)"},
    {"erase-rewrite-max", T_SIZE, O(erase_rewrite_max), "64M", "PostgreSQL: after an erasure, rewrite (VACUUM FULL) each table it changed up to this size so the old row versions leave the files; larger ones only get VACUUM (0 = never rewrite)"},
    {"audit-checkpoint", T_MS, O(audit_checkpoint_ms), "10s", "how often provider webhooks are covered by the audit chain (webhooks.checkpoint entries; one last pass at graceful shutdown; 0 = never)"},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static void env_name(const opt *o, char *out, size_t n) {
    size_t j = 0;
    const char *pre = "EHUB_";
    while (*pre && j + 1 < n) out[j++] = *pre++;
    for (const char *p = o->name; *p && j + 1 < n; p++) out[j++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[j] = '\0';
}

static const opt *find(const char *name, size_t len) {
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0) return &opts[i];
    return NULL;
}

/* Parses "123", "64K", "1M", "2G". */
static int parse_size(const char *s, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-') return -1;
    unsigned long long mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024, end++;
    else if (*end == 'M' || *end == 'm') mul = 1024 * 1024, end++;
    else if (*end == 'G' || *end == 'g') mul = 1024ULL * 1024 * 1024, end++;
    if (*end) return -1;
    if (v > SIZE_MAX / mul) return -1;
    *out = (size_t)(v * mul);
    return 0;
}

/* Parses "250ms", "10s", "2m", "1h", "30d", or a bare number of milliseconds. */
static int parse_ms(const char *s, unsigned *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-') return -1;
    unsigned long long mul = 1;
    if (strcmp(end, "ms") == 0 || *end == '\0') mul = 1;
    else if (strcmp(end, "s") == 0) mul = 1000;
    else if (strcmp(end, "m") == 0) mul = 60000;
    else if (strcmp(end, "h") == 0) mul = 3600000;
    else if (strcmp(end, "d") == 0) mul = 86400000;
    else return -1;
    if (v > 0xFFFFFFFFULL / mul) return -1;
    *out = (unsigned)(v * mul);
    return 0;
}

static int set(ehub_config *cfg, const opt *o, const char *val, const char *from, char *err,
               size_t errlen) {
    char *field = (char *)cfg + o->off;
    switch (o->type) {
    case T_STR:
        if (strlen(val) >= o->len) goto bad;
        memcpy(field, val, strlen(val) + 1);
        return 0;
    case T_INT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < 0 || v > 65535) goto bad;
        *(int *)field = (int)v;
        return 0;
    }
    case T_BOOL:
        if (!strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "yes") || !strcmp(val, "on")) *(int *)field = 1;
        else if (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "no") || !strcmp(val, "off")) *(int *)field = 0;
        else goto bad;
        return 0;
    case T_SIZE:
        if (parse_size(val, (size_t *)field)) goto bad;
        return 0;
    case T_MS:
        if (parse_ms(val, (unsigned *)field)) goto bad;
        return 0;
    case T_LEVEL: {
        int l = log_level_parse(val);
        if (l < 0) goto bad;
        *(int *)field = l;
        return 0;
    }
    }
bad:
    snprintf(err, errlen, "invalid value for %s (from %s): \"%.64s\"", o->name, from, val);
    return -1;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

static int load_file(ehub_config *cfg, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[2048];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            rc = -1;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = trim(line);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected key = value", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        const opt *o = find(key, strlen(key));
        if (!o || !strcmp(o->name, "config")) {
            snprintf(err, errlen, "%s:%d: unknown key \"%.64s\"", path, lineno, key);
            rc = -1;
            break;
        }
        char from[1100];
        snprintf(from, sizeof from, "%.1000s:%d", path, lineno);
        if ((rc = set(cfg, o, val, from, err, errlen))) break;
    }
    fclose(f);
    return rc;
}

/* Splits "--name=value" / "--name value"; returns the option or NULL. */
static const opt *flag_opt(char **argv, int argc, int *i, const char **val, char *err, size_t errlen) {
    const char *a = argv[*i] + 2;
    const char *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    const opt *o = find(a, len);
    if (!o) {
        snprintf(err, errlen, "unknown option --%.*s (see --help)", (int)(len > 64 ? 64 : len), a);
        return NULL;
    }
    if (eq) *val = eq + 1;
    else if (o->type == T_BOOL) *val = "true";
    else if (*i + 1 < argc) *val = argv[++*i];
    else {
        snprintf(err, errlen, "option --%s needs a value", o->name);
        return NULL;
    }
    return o;
}

int config_load(ehub_config *cfg, int argc, char **argv, int *rest, int *nrest, char *err,
                size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NOPTS; i++)
        if (set(cfg, &opts[i], opts[i].def, "default", err, errlen)) return -1;

    /* The config file comes first in precedence order, so find its name
     * before applying anything else: flag, then environment. */
    const char *file = getenv("EHUB_CONFIG");
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strncmp(argv[i], "--config=", 9)) file = argv[i] + 9;
        else if (!strcmp(argv[i], "--config") && i + 1 < argc) file = argv[i + 1];
    }
    if (file && *file) {
        if (load_file(cfg, file, err, errlen)) return -1;
        snprintf(cfg->config_file, sizeof cfg->config_file, "%s", file);
    }

    for (size_t i = 0; i < NOPTS; i++) {
        char name[64];
        env_name(&opts[i], name, sizeof name);
        const char *v = getenv(name);
        if (v && set(cfg, &opts[i], v, name, err, errlen)) return -1;
    }

    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            for (i++; i < argc; i++) if (rest) rest[n++] = i;
            break;
        }
        if (strncmp(argv[i], "--", 2) != 0 || argv[i][2] == '\0') {
            if (rest) rest[n++] = i;
            continue;
        }
        const char *val;
        const opt *o = flag_opt(argv, argc, &i, &val, err, errlen);
        if (!o) return -1;
        if (set(cfg, o, val, "command line", err, errlen)) return -1;
    }
    if (nrest) *nrest = n;
    return 0;
}

void config_print_help(FILE *out) {
    fprintf(out, "Options (flag / environment variable, default):\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const opt *o = &opts[i];
        char env[64], flag[80];
        env_name(o, env, sizeof env);
        snprintf(flag, sizeof flag, "--%s%s", o->name, o->type == T_BOOL ? "" : " V");
        fprintf(out, "  %-22s %s\n  %-22s %s (default: %s)\n", flag, o->help, "", env,
                *o->def ? o->def : "\"\"");
    }
}

void config_store_url(const ehub_config *cfg, char *out, size_t outlen) {
    if (cfg->store[0]) snprintf(out, outlen, "%s", cfg->store);
    else snprintf(out, outlen, "sqlite:%s/ehub.db", cfg->data_dir);
}
