/* The pure parts of the newer providers, kept apart so the unit tests can
 * reach them: the MIME message SMTP sends, the HTML-to-text fallback of
 * its text part, the per-tenant window limiter (GoHighLevel's 100 requests
 * in 10 s, Apollo's per-minute budget), rates written "N/m", and the next
 * time a local time window opens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/sig.h"
#include "base/alloc.h"
#include "nurture_int.h"

int nurture_rate_parse(const char *s, int *n, int64_t *window_ms) {
    char unit, extra;
    int v;
    if (!s || sscanf(s, "%d/%c%c", &v, &unit, &extra) != 2 || v < 1 || v > 100000) return -1;
    *n = v;
    *window_ms = unit == 's' ? 1000 : unit == 'm' ? 60000 : unit == 'h' ? 3600000 : 0;
    return *window_ms ? 0 : -1;
}

/* ---- the window limiter ----
 * For each tenant, the times of its last `limit` requests. A request may
 * start when the oldest of them is a full window old. A slot is held as
 * "in flight" (INT64_MAX) while its request runs and then stamped with the
 * time it ended: the provider saw the request somewhere between its start
 * and its end, so counting from the end keeps any window *as the provider
 * sees it* within the limit, however long the requests take. */
#define WIN_TENANTS 1024 /* tenants sending at once per node; past it, the idlest is forgotten */
#define PENDING INT64_MAX
#define UNUSED (INT64_MIN / 2) /* a slot never used: free at any time (and + window cannot overflow) */
typedef struct win_tenant {
    int64_t tenant;
    int64_t blocked_until; /* a 429's Retry-After */
    int64_t last_used;
    int64_t *stamps;       /* limit of them */
} win_tenant;

struct nurture_window {
    int limit;
    int64_t window_ms;
    win_tenant t[WIN_TENANTS];
    int n;
};

nurture_window *nurture_window_new(int limit, int64_t window_ms) {
    nurture_window *w = eh_calloc(1, sizeof *w);
    if (!w) return NULL;
    w->limit = limit;
    w->window_ms = window_ms;
    return w;
}

void nurture_window_free(nurture_window *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) eh_free(w->t[i].stamps);
    eh_free(w);
}

static win_tenant *win_get(nurture_window *w, int64_t tenant, int64_t now) {
    for (int i = 0; i < w->n; i++)
        if (w->t[i].tenant == tenant) return &w->t[i];
    win_tenant *t = NULL;
    if (w->n < WIN_TENANTS) {
        t = &w->t[w->n];
        if (!(t->stamps = eh_calloc((size_t)w->limit, sizeof *t->stamps))) return NULL;
        w->n++;
        for (int k = 0; k < w->limit; k++) t->stamps[k] = UNUSED;
    } else { /* full: reuse the tenant idle longest, if nothing of it is in flight or recent */
        for (int i = 0; i < w->n; i++)
            if ((!t || w->t[i].last_used < t->last_used)) t = &w->t[i];
        for (int k = 0; t && k < w->limit; k++)
            if (t->stamps[k] > now - w->window_ms) return NULL;
        if (!t) return NULL;
        for (int k = 0; k < w->limit; k++) t->stamps[k] = UNUSED;
    }
    t->tenant = tenant;
    t->blocked_until = 0;
    t->last_used = now;
    return t;
}

int64_t nurture_window_take(nurture_window *w, int64_t tenant, int64_t now, int *slot) {
    win_tenant *t = win_get(w, tenant, now);
    if (!t) return now + w->window_ms / 10 + 1; /* no room to track it: try again shortly */
    if (t->blocked_until > now) return t->blocked_until;
    int64_t soonest = PENDING;
    for (int k = 0; k < w->limit; k++) {
        if (t->stamps[k] != PENDING && t->stamps[k] + w->window_ms <= now) {
            t->stamps[k] = PENDING;
            t->last_used = now;
            *slot = k;
            return 0;
        }
        if (t->stamps[k] != PENDING && t->stamps[k] + w->window_ms < soonest) soonest = t->stamps[k] + w->window_ms;
    }
    /* every slot in flight: their ends are unknown, look again a little later */
    return soonest == PENDING ? now + w->window_ms / 10 + 1 : soonest;
}

void nurture_window_done(nurture_window *w, int64_t tenant, int slot, int64_t end, int64_t retry_after_until) {
    for (int i = 0; i < w->n; i++)
        if (w->t[i].tenant == tenant) {
            if (slot >= 0 && slot < w->limit) w->t[i].stamps[slot] = end;
            if (retry_after_until > w->t[i].blocked_until) w->t[i].blocked_until = retry_after_until;
            return;
        }
}

void nurture_window_release(nurture_window *w, int64_t tenant, int slot) {
    /* the slot was free (its stamp a window old or never used) when taken */
    for (int i = 0; i < w->n; i++)
        if (w->t[i].tenant == tenant) {
            if (slot >= 0 && slot < w->limit && w->t[i].stamps[slot] == PENDING) w->t[i].stamps[slot] = UNUSED;
            return;
        }
}

/* ---- local time windows ---- */

int64_t nurture_window_opens(const char *tz, int start, int end, int64_t t) {
    if (start == end) return t;
    /* outside [start, end) is "quiet" [end, start): when that ends, the window opens */
    int64_t wake = nurture_quiet_until(tz, end, start, t);
    return wake ? wake : t;
}

/* ---- MIME ---- */

int nurture_html_to_text(const char *html, buf *out) {
    int rc = 0, space = 0;
    for (const char *s = html; s && *s && !rc;) {
        if (*s == '<') {
            /* block ends become line breaks; every tag goes */
            const char *e = strchr(s, '>');
            if (!e) break;
            size_t n = (size_t)(e - s);
            if ((n >= 3 && (!strncasecmp(s, "<br", 3) || !strncasecmp(s, "</p", 3) || !strncasecmp(s, "</div", 5) ||
                            !strncasecmp(s, "</li", 4) || !strncasecmp(s, "</h", 3) || !strncasecmp(s, "</tr", 4))))
                rc = buf_putc(out, '\n'), space = 1;
            s = e + 1;
            continue;
        }
        if (*s == '&') {
            static const struct {
                const char *ent, *ch;
            } ents[] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&nbsp;", " "}};
            size_t i;
            for (i = 0; i < sizeof ents / sizeof ents[0]; i++)
                if (!strncmp(s, ents[i].ent, strlen(ents[i].ent))) break;
            if (i < sizeof ents / sizeof ents[0]) {
                rc = buf_puts(out, ents[i].ch);
                s += strlen(ents[i].ent);
                space = 0;
                continue;
            }
        }
        if (*s == '\r' || *s == '\n' || *s == '\t' || *s == ' ') {
            if (!space) rc = buf_putc(out, ' ');
            space = 1;
            s++;
            continue;
        }
        rc = buf_putc(out, *s++);
        space = 0;
    }
    return rc;
}

/* base64 in 76-character lines (RFC 2045) */
static int put_b64(buf *out, const char *s, size_t n) {
    for (size_t off = 0; off < n; off += 57) {
        size_t k = n - off < 57 ? n - off : 57;
        char line[80];
        if (sig_b64_encode(s + off, k, line, sizeof line) != SIG_OK) return -1;
        if (buf_puts(out, line) || buf_puts(out, "\r\n")) return -1;
    }
    return 0;
}

/* A header value: as is when it is printable ASCII, else RFC 2047 UTF-8 B. */
static int put_header_text(buf *out, const char *s) {
    int ascii = 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p > 0x7e) ascii = 0;
    if (ascii) return buf_puts(out, s);
    size_t n = strlen(s);
    /* encoded words are at most 75 characters: 45 bytes of text each */
    for (size_t off = 0; off < n;) {
        size_t k = n - off < 45 ? n - off : 45;
        while (off + k < n && k > 1 && ((unsigned char)s[off + k] & 0xc0) == 0x80) k--; /* whole characters */
        char enc[80];
        if (sig_b64_encode(s + off, k, enc, sizeof enc) != SIG_OK) return -1;
        if (buf_printf(out, "%s=?UTF-8?B?%s?=", off ? "\r\n " : "", enc)) return -1;
        off += k;
    }
    return 0;
}

int nurture_mime(buf *out, const char *from, const char *to, const char *subject, const char *html,
                 const char *message_id, int64_t date_ms) {
    char date[64];
    time_t t = (time_t)(date_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    /* the boundary comes from the Message-ID: never inside base64 text (no '=' runs like it) */
    char boundary[160];
    snprintf(boundary, sizeof boundary, "=_ehub_%.100s", message_id);
    for (char *p = boundary; *p; p++)
        if (*p == '<' || *p == '>' || *p == '@' || *p == ':') *p = '_';
    buf text;
    buf_init(&text, NURTURE_MAX_BODY * 2);
    int rc = nurture_html_to_text(html, &text);
    rc = rc || buf_printf(out, "From: <%s>\r\nTo: <%s>\r\nSubject: ", from, to);
    rc = rc || put_header_text(out, subject);
    rc = rc || buf_printf(out,
                          "\r\nDate: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n"
                          "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n"
                          "--%s\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                          date, message_id, boundary, boundary);
    rc = rc || put_b64(out, text.p ? text.p : "", text.len);
    rc = rc || buf_printf(out,
                          "--%s\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                          boundary);
    rc = rc || put_b64(out, html ? html : "", html ? strlen(html) : 0);
    rc = rc || buf_printf(out, "--%s--\r\n", boundary);
    buf_free(&text);
    return rc ? -1 : 0;
}

/* Which environment variables and files a tenant's setting may name: only
 * EHUB_SMTP_* variables and plain names in DATA_DIR/secrets, which the
 * operator puts there for it. Anything wider would let a tenant admin
 * send the server's own secrets (its database URL, its signing keys) to
 * an SMTP server of their choosing as a "password". */
int nurture_secret_ref_ok(const char *ref) {
    const char *name;
    size_t max;
    if (!strncmp(ref, "env:", 4)) {
        name = ref + 4;
        if (strncmp(name, "EHUB_SMTP_", 10) || !name[10]) return -1;
        for (const char *c = name; *c; c++)
            if (!(('A' <= *c && *c <= 'Z') || ('0' <= *c && *c <= '9') || *c == '_')) return -1;
        max = 100;
    } else if (!strncmp(ref, "file:", 5)) {
        name = ref + 5;
        if (!*name || *name == '.') return -1;
        for (const char *c = name; *c; c++)
            if (!(('A' <= *c && *c <= 'Z') || ('a' <= *c && *c <= 'z') || ('0' <= *c && *c <= '9') || *c == '_' ||
                  *c == '-' || *c == '.'))
                return -1;
        max = 100;
    } else {
        return -1;
    }
    return strlen(name) <= max ? 0 : -1;
}

int nurture_secret_read(const char *ref, const char *secrets_dir, char *out, size_t cap, char *err, size_t errlen) {
    out[0] = 0;
    if (!ref || !*ref) return 0;
    if (nurture_secret_ref_ok(ref)) { /* checked when set; checked again, it is a path */
        snprintf(err, errlen, "smtp_password_from is env:EHUB_SMTP_... or file:NAME");
        return -1;
    }
    if (!strncmp(ref, "env:", 4)) {
        const char *v = getenv(ref + 4);
        if (!v) {
            snprintf(err, errlen, "environment variable %.100s is not set", ref + 4);
            return -1;
        }
        if (strlen(v) >= cap) {
            snprintf(err, errlen, "the SMTP password is too long");
            return -1;
        }
        snprintf(out, cap, "%s", v);
        return 0;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", secrets_dir, ref + 5);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %.100s in the secrets directory", ref + 5);
        return -1;
    }
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = 0;
    out[strcspn(out, "\r\n")] = 0;
    return 0;
}
