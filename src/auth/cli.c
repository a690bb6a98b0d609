/* ehub user add, ehub audit verify / checkpoint, ehub jwt rotate. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "auth.h"
#include "base/clock.h"

const char auth_cli_user_help[] =
    "Usage: ehub user add --tenant SLUG --email E --role ROLE [--agent-id N] [--password-file F]\n"
    "\n"
    "Creates a user who can log in with POST /v1/auth/login. ROLE is admin, manager, analyst,\n"
    "agent or viewer; --agent-id links the user to one of the tenant's agents. The password is\n"
    "read from --password-file (which group and others must not be able to read), else from\n"
    "the EHUB_USER_PASSWORD environment variable, else from standard input (one line) — never\n"
    "from the command line. 8-1024 bytes. Stored as an Argon2id hash.\n\n";
const char auth_cli_audit_help[] =
    "Usage: ehub audit verify [--tenant SLUG]\n"
    "       ehub audit checkpoint [--tenant SLUG]\n"
    "\n"
    "Checks every tenant's audit trail (or one): entries gap-free from 1, each chained to the\n"
    "previous by its hash, none edited, none missing at the end. Prints one JSON line per tenant\n"
    "({\"tenant\",\"entries\",\"ok\",\"head\"}, or \"bad_seq\" and \"reason\") and exits 1 if any\n"
    "trail is broken. Keep the printed head hash elsewhere to detect a rewritten chain later.\n"
    "Provider webhooks: each webhooks.checkpoint entry is recomputed from the webhook_inbox rows\n"
    "it covers (\"checkpoints\", \"inbox_rows\"); a row edited, deleted or inserted in a covered\n"
    "range fails with \"bad_seq\" (the checkpoint) and \"bad_inbox_row\". Bodies emptied by an\n"
    "erasure or a retention run are accepted (their audit entries say which). Rows newer than\n"
    "the last checkpoint are not covered yet: \"inbox_covered_to\" is the last id covered and\n"
    "\"inbox_uncovered\" how many rows come after it (reported, not a failure; a note on stderr).\n"
    "\n"
    "checkpoint covers those rows now: one pass of the --audit-checkpoint job over every tenant\n"
    "(or one), without its time margin (see README \"Audit trail\"), safe while servers run.\n"
    "Prints {\"tenant\",\"entries\",\"rows\",\"covered_to\"} per tenant with rows to cover.\n\n";
const char auth_cli_jwt_help[] =
    "Usage: ehub jwt rotate [--keep N]\n"
    "\n"
    "Puts a new Ed25519 signing key in front of the JWT key file (--jwt-key-file, default\n"
    "DATA_DIR/jwt.keys), keeping the newest N keys in all (default 3): the new key signs, the\n"
    "previous ones still verify the tokens they signed. Servers read the file at start: restart\n"
    "them (one by one) after rotating. Prints {\"kid\",\"keys\",\"file\"}.\n\n";

int auth_cli_parse(int argc, char **argv, auth_cli *c, int *rest, int *nrest, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    c->keep = 3;
    *nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        static const char *const names[] = {"email", "role", "password-file", "name", "agent-id", "keep"};
        int which = -1;
        const char *v = NULL;
        if (!strcmp(a, "--password") || !strncmp(a, "--password=", 11)) {
            snprintf(err, errlen, "passwords are not taken on the command line: use --password-file, "
                                  "EHUB_USER_PASSWORD or standard input");
            return -1;
        }
        for (int k = 0; k < 6 && which < 0; k++) {
            size_t n = strlen(names[k]);
            if (!strncmp(a, "--", 2) && !strncmp(a + 2, names[k], n) && (a[2 + n] == 0 || a[2 + n] == '=')) {
                which = k;
                v = a[2 + n] == '=' ? a + 3 + n : NULL;
            }
        }
        if (which < 0) {
            rest[(*nrest)++] = i;
            continue;
        }
        if (!v) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option --%s needs a value", names[which]);
                return -1;
            }
            v = argv[++i];
        }
        char *end;
        switch (which) {
        case 0: c->email = v; break;
        case 1: c->role = v; break;
        case 2: c->password_file = v; break;
        case 3: c->name = v; break;
        case 4:
            c->agent_id = strtoll(v, &end, 10);
            if (*end || c->agent_id <= 0) {
                snprintf(err, errlen, "--agent-id: a positive agent id");
                return -1;
            }
            break;
        case 5:
            c->keep = (int)strtol(v, &end, 10);
            if (*end || c->keep < 1 || c->keep > 10) {
                snprintf(err, errlen, "--keep: 1-10");
                return -1;
            }
            break;
        }
    }
    return 0;
}

static store *open_store(const ehub_config *cfg, logger *log, const char *cmd) {
    char url[1100];
    config_store_url(cfg, url, sizeof url);
    if (!strncmp(url, "sqlite:", 7) && mkdir(cfg->data_dir, 0700) && errno != EEXIST) {
        fprintf(stderr, "ehub %s: cannot create %s: %s\n", cmd, cfg->data_dir, strerror(errno));
        return NULL;
    }
    store_opts so = {.log = log, .no_migrate = cfg->no_migrate};
    store_err err = {0};
    store *st = store_open(url, &so, &err);
    if (!st) fprintf(stderr, "ehub %s: cannot open storage: %s\n", cmd, err.msg);
    return st;
}

/* Reads the password as the help text says; 0 or -1 after saying why. */
static int read_password(const auth_cli *c, char *out, size_t cap, size_t *len) {
    *len = 0;
    if (c->password_file) {
        char *text, err[512];
        size_t n;
        if (auth_secret_read(c->password_file, AUTH_PASSWORD_MAX + 2, &text, &n, err, sizeof err)) {
            fprintf(stderr, "ehub user: %s\n", err);
            return -1;
        }
        while (n && (text[n - 1] == '\n' || text[n - 1] == '\r')) n--;
        if (n >= cap) n = cap - 1;
        memcpy(out, text, n);
        out[n] = 0;
        *len = n;
        auth_secret_free(text, n);
        return 0;
    }
    const char *env = getenv("EHUB_USER_PASSWORD");
    if (env) {
        snprintf(out, cap, "%s", env);
        *len = strlen(out);
        return 0;
    }
    int tty = isatty(0);
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "password: ");
        tcgetattr(0, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(0, TCSANOW, &quiet);
    }
    char *got = fgets(out, (int)cap, stdin);
    if (tty) {
        tcsetattr(0, TCSANOW, &old);
        fprintf(stderr, "\n");
    }
    if (!got) {
        fprintf(stderr, "ehub user: no password (use --password-file, EHUB_USER_PASSWORD or standard input)\n");
        return -1;
    }
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r')) out[--n] = 0;
    *len = n;
    return 0;
}

typedef struct user_args {
    const char *slug, *email;
    int role;
    int64_t agent_id, tenant, id;
    char pwhash[AUTH_PWHASH_LEN];
} user_args;

static int user_add_tx(store_tx *tx, void *arg, store_err *err) {
    user_args *u = arg;
    int rc = auth_user_create(tx, u->email, u->role, u->pwhash, u->agent_id, clock_wall_ms(), &u->id, err);
    if (rc) return rc;
    char target[32];
    snprintf(target, sizeof target, "user:%lld", (long long)u->id);
    auth_actor who = {"cli", NULL};
    json_t *d = json_pack("{s:s, s:s}", "email", u->email, "role", auth_role_name(u->role));
    rc = auth_audit(tx, u->tenant, &who, "user.create", target, d, clock_wall_ms(), err);
    json_decref(d);
    return rc;
}

static int find_tenant_tx(store_tx *tx, void *arg, store_err *err) {
    user_args *u = arg;
    return store_tenant_find(tx, u->slug, &u->tenant, err);
}

int auth_cli_user(const ehub_config *cfg, logger *log, const auth_cli *c, int npos, char **pos) {
    char email[AUTH_EMAIL_MAX + 1];
    user_args u = {0};
    if (npos != 1 || strcmp(pos[0], "add") || !cfg->tenant[0] || !c->email || !c->role) {
        fprintf(stderr, "usage: ehub user add --tenant SLUG --email E --role ROLE [--agent-id N] [--password-file F]\n");
        return 2;
    }
    if (auth_email_normalize(c->email, email)) {
        fprintf(stderr, "ehub user: --email: not an e-mail address\n");
        return 2;
    }
    if ((u.role = auth_role_parse(c->role)) < 0) {
        fprintf(stderr, "ehub user: --role: admin, manager, analyst, agent or viewer\n");
        return 2;
    }
    char pw[AUTH_PASSWORD_MAX + 2];
    size_t pwlen;
    if (read_password(c, pw, sizeof pw, &pwlen)) return 1;
    const char *why = auth_password_problem(pw, pwlen);
    if (why) {
        sodium_memzero(pw, sizeof pw);
        fprintf(stderr, "ehub user: password: %s\n", why);
        return 2;
    }
    int hrc = auth_password_hash(pw, pwlen, u.pwhash);
    sodium_memzero(pw, sizeof pw);
    if (hrc) {
        fprintf(stderr, "ehub user: cannot hash the password (out of memory?)\n");
        return 1;
    }
    store *st = open_store(cfg, log, "user");
    if (!st) return 1;
    store_err err = {0};
    u.slug = cfg->tenant;
    u.email = email;
    u.agent_id = c->agent_id;
    int rc = store_read(st, 0, find_tenant_tx, &u, &err);
    if (rc) {
        fprintf(stderr, "ehub user: no tenant \"%s\"\n", cfg->tenant);
        store_close(st);
        return 1;
    }
    rc = store_write(st, u.tenant, user_add_tx, &u, &err);
    if (rc == STORE_OK)
        printf("{\"id\":%lld,\"tenant\":\"%s\",\"email\":\"%s\",\"role\":\"%s\"}\n", (long long)u.id, cfg->tenant,
               email, auth_role_name(u.role));
    else if (rc == STORE_CONFLICT) fprintf(stderr, "ehub user: %s already exists in %s\n", email, cfg->tenant);
    else fprintf(stderr, "ehub user: %s\n", err.msg);
    store_close(st);
    return rc == STORE_OK ? 0 : 1;
}

typedef struct verify_args {
    int64_t entries, bad;
    char why[200], head[65];
    auth_inbox_report inbox;
} verify_args;

/* The chain first; the webhook checkpoints only on a whole chain (their
 * entries are what the inbox rows are checked against). */
static int verify_tx(store_tx *tx, void *arg, store_err *err) {
    verify_args *v = arg;
    int rc = auth_audit_verify(tx, &v->entries, &v->bad, v->why, sizeof v->why, v->head, err);
    if (rc || v->bad) return rc;
    return auth_inbox_verify(tx, &v->inbox, err);
}

typedef struct checkpoint_args {
    int entries;
    int64_t rows, covered_to;
} checkpoint_args;

/* margin 0: this transaction holds the tenant's row lock (every store
 * write does, on PostgreSQL from its first statement), and every webhook's
 * transaction took it before drawing its inbox id, so no lower id of this
 * tenant is still uncommitted; see auth_inbox_checkpoint. */
static int checkpoint_tx(store_tx *tx, void *arg, store_err *err) {
    checkpoint_args *c = arg;
    c->entries = 0;
    c->rows = 0;
    int rc = auth_inbox_checkpoint(tx, 0, clock_wall_ms(), &c->entries, &c->rows, err);
    store_rows *r = NULL;
    store_val v[] = {SV_I(store_tx_tenant(tx))};
    if (!rc) rc = store_query(tx, "SELECT inbox_checkpoint_id FROM tenants WHERE id = $1", v, 1, &r, err);
    if (!rc) c->covered_to = store_rows_count(r) ? store_rows_int(r, 0, 0) : 0;
    store_rows_free(r);
    return rc;
}

typedef struct tenant_list {
    store_rows *r;
} tenant_list;

static int tenants_tx(store_tx *tx, void *arg, store_err *err) {
    tenant_list *t = arg;
    return store_query(tx, "SELECT id, slug FROM tenants ORDER BY id", NULL, 0, &t->r, err);
}

int auth_cli_audit(const ehub_config *cfg, logger *log, int npos, char **pos) {
    if (npos != 1 || (strcmp(pos[0], "verify") && strcmp(pos[0], "checkpoint"))) {
        fprintf(stderr, "usage: ehub audit verify|checkpoint [--tenant SLUG]\n");
        return 2;
    }
    int checkpoint = !strcmp(pos[0], "checkpoint");
    store *st = open_store(cfg, log, "audit");
    if (!st) return 1;
    store_err err = {0};
    tenant_list tl = {0};
    if (store_read(st, 0, tenants_tx, &tl, &err)) {
        fprintf(stderr, "ehub audit: %s\n", err.msg);
        store_close(st);
        return 1;
    }
    int broken = 0, seen = 0, failed = 0;
    for (int i = 0; i < store_rows_count(tl.r); i++) {
        const char *slug = store_rows_text(tl.r, i, 1);
        if (cfg->tenant[0] && strcmp(cfg->tenant, slug)) continue;
        seen++;
        if (checkpoint) {
            /* a transaction writes one entry: go on until one covers nothing */
            checkpoint_args c = {0}, total = {0};
            do {
                if (store_write(st, store_rows_int(tl.r, i, 0), checkpoint_tx, &c, &err)) break;
                total.entries += c.entries;
                total.rows += c.rows;
                total.covered_to = c.covered_to;
            } while (c.entries);
            if (err.code) {
                fprintf(stderr, "ehub audit: %s: %s\n", slug, err.msg);
                failed = 1;
            } else if (total.entries || cfg->tenant[0]) {
                printf("{\"tenant\":\"%s\",\"entries\":%d,\"rows\":%lld,\"covered_to\":%lld}\n", slug,
                       total.entries, (long long)total.rows, (long long)total.covered_to);
            }
            continue;
        }
        verify_args v = {0};
        if (store_read(st, store_rows_int(tl.r, i, 0), verify_tx, &v, &err)) {
            fprintf(stderr, "ehub audit: %s: %s\n", slug, err.msg);
            failed = 1;
            continue;
        }
        if (v.bad) {
            broken = 1;
            printf("{\"tenant\":\"%s\",\"ok\":false,\"entries\":%lld,\"bad_seq\":%lld,\"reason\":\"%s\"}\n", slug,
                   (long long)v.entries, (long long)v.bad, v.why);
        } else if (v.inbox.bad_seq) {
            broken = 1;
            printf("{\"tenant\":\"%s\",\"ok\":false,\"entries\":%lld,\"bad_seq\":%lld,\"bad_inbox_row\":%lld,"
                   "\"reason\":\"%s\"}\n",
                   slug, (long long)v.entries, (long long)v.inbox.bad_seq, (long long)v.inbox.bad_row, v.inbox.why);
        } else {
            printf("{\"tenant\":\"%s\",\"ok\":true,\"entries\":%lld,\"head\":\"%s\",\"checkpoints\":%lld,"
                   "\"inbox_rows\":%lld,\"inbox_covered_to\":%lld,\"inbox_uncovered\":%lld}\n",
                   slug, (long long)v.entries, v.head, (long long)v.inbox.checkpoints, (long long)v.inbox.rows,
                   (long long)v.inbox.covered_to, (long long)v.inbox.uncovered);
            if (v.inbox.uncovered)
                fprintf(stderr,
                        "ehub audit: %s: %lld webhook inbox row(s) after id %lld not yet covered by a checkpoint "
                        "(the next pass, or `ehub audit checkpoint`, covers them)\n",
                        slug, (long long)v.inbox.uncovered, (long long)v.inbox.covered_to);
        }
    }
    store_rows_free(tl.r);
    store_close(st);
    if (cfg->tenant[0] && !seen) {
        fprintf(stderr, "ehub audit: no tenant \"%s\"\n", cfg->tenant);
        return 1;
    }
    if (broken) fprintf(stderr, "ehub audit: the audit trail was tampered with (see bad_seq)\n");
    return broken || failed ? 1 : 0;
}

int auth_cli_jwt(const ehub_config *cfg, const auth_cli *c, int npos, char **pos) {
    if (npos != 1 || strcmp(pos[0], "rotate")) {
        fprintf(stderr, "usage: ehub jwt rotate [--keep N]\n");
        return 2;
    }
    char kid[JWT_KID_LEN], err[512];
    int n = 0;
    if (auth_jwt_rotate(cfg, c->keep, kid, &n, err, sizeof err)) {
        fprintf(stderr, "ehub jwt: %s\n", err);
        return 1;
    }
    char path[1100];
    if (cfg->jwt_key_file[0]) snprintf(path, sizeof path, "%s", cfg->jwt_key_file);
    else snprintf(path, sizeof path, "%s/jwt.keys", cfg->data_dir);
    printf("{\"kid\":\"%s\",\"keys\":%d,\"file\":\"%s\"}\n", kid, n, path);
    return 0;
}
