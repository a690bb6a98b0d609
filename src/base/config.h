/* config — ehub's settings: command-line flags over EHUB_* environment
 * variables over an optional config file (`--config FILE`, `EHUB_CONFIG`),
 * over built-in defaults.
 *
 * Every option is one row of a table in config.c; the same row yields the
 * flag, the environment variable, the config-file key, the default and the
 * --help line, so they cannot drift apart. The config file is `key = value`
 * lines (keys are the flag names without dashes, `#` starts a comment). */
#ifndef EH_CONFIG_H
#define EH_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef struct ehub_config {
    char host[256];
    int port;
    char data_dir[1024];
    char store[1024];       /* "" = sqlite:<data_dir>/ehub.db */
    char bus[1024];         /* "inproc" or redis://host:port */
    int demo;
    int log_level;          /* log_level from log.h */
    int no_migrate;
    char cors_origins[1024]; /* comma-separated origins, or "*"; "" = no CORS */
    size_t max_body;
    size_t max_import;
    size_t max_header;
    size_t max_url;
    size_t max_connections;
    unsigned header_timeout_ms;
    unsigned body_timeout_ms;
    unsigned idle_timeout_ms;
    unsigned shutdown_timeout_ms;
    size_t ws_max_message;
    size_t ws_max_queue;
    unsigned ws_ping_ms;
    int ws_writers;          /* fan-out helper threads (http_config.ws_writers) */
    size_t ws_parallel_min;  /* fewest connections an uncork shares with them */
    size_t replay_window;    /* realtime: how far back (events) a client may resume */
    size_t threads;          /* thread-pool size for blocking work */
    int sqlite_sync_full;
    size_t pool_size;        /* storage connections */
    int test_routes;         /* POST /debug/echo and /debug/ws-echo, for tests and benchmarks */
    char web_dir[1024];      /* the dashboard's files, served at / ("": the copy built in) */
    char config_file[1024];
    char tenant[65];         /* CLI commands that act on one tenant */
    char twilio_url[512];    /* Twilio REST API base (tests point it at a local server) */
    char sendgrid_url[512];  /* SendGrid v3 API base */
    char public_url[512];    /* how providers reach us: status callbacks, Twilio signatures */
    char ghl_url[512];       /* GoHighLevel API base (conversations/messages) */
    char apollo_url[512];    /* Apollo API base (people/match) */
    unsigned ghl_window_ms;  /* GHL's rate window: ghl_limit requests per window per tenant */
    int ghl_limit;           /* GHL requests per window (100); 0 is taken as 100 */
    char apollo_limit[32];   /* Apollo requests per tenant: "N/s", "N/m", "N/h" */
    unsigned cold_every_ms;  /* how often the "gone cold" trigger looks at leads */
    /* users, tokens, rate limits (src/auth) */
    char jwt_key_file[1024];  /* Ed25519 signing key(s); "" = DATA_DIR/jwt.keys, generated */
    char jwt_hs256_secret_file[1024]; /* "" = HS256 refused */
    char jwt_issuer[64];
    unsigned jwt_ttl_ms;
    unsigned jwt_leeway_ms;
    unsigned refresh_ttl_ms;
    char login_limit_account[32]; /* rates: "N/s", "N/m", "N/h", or "off" */
    char login_limit_ip[32];
    char trusted_proxies[1024]; /* CIDR ranges whose X-Forwarded-For is believed; "" = none */
    char rate_limit_principal[32];
    char rate_limit_tenant[32];
    /* coaching drafts by an LLM (src/llm, src/coach/draft.c) */
    char llm_provider[16];    /* off, anthropic, openai */
    char llm_url[512];        /* "" = the provider's */
    char llm_model[128];      /* "" = the provider's default */
    char llm_key_file[1024];  /* "" = EHUB_LLM_API_KEY */
    unsigned llm_timeout_ms;  /* hard limit of one call */
    unsigned llm_budget_ms;   /* how long a coaching answer waits for the draft */
    int llm_stream;
    unsigned llm_cooldown_ms; /* breaker: open this long after 5 failures in a row */
    unsigned retention_every_ms; /* privacy: retention policies' schedule (0 = off) */
    size_t erase_rewrite_max;    /* privacy: largest PostgreSQL table an erasure rewrites (0 = never) */
    unsigned audit_checkpoint_ms; /* auth: webhook inbox checkpoints' schedule (0 = off) */
} ehub_config;

/* Fills cfg with defaults, then applies the config file, the environment and
 * argv (flags only; positional arguments are left for the caller and their
 * indexes returned in rest and nrest, which may be NULL). On a bad value or an
 * unknown flag returns -1 with a message in err. `--help` is not handled
 * here. */
int config_load(ehub_config *cfg, int argc, char **argv, int *rest, int *nrest, char *err,
                size_t errlen);

/* Prints every option: flag, environment variable, default, meaning. */
void config_print_help(FILE *out);

/* The effective store URL (cfg->store or the default in data_dir). */
void config_store_url(const ehub_config *cfg, char *out, size_t outlen);

#endif
