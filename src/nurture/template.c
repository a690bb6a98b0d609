/* Templates: variables, rendering, SMS encoding and segments, opt-out
 * keywords, and the template resource (validated on every write). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "nurture.h"
#include "nurture_int.h"

static const char *const known_vars[] = {"first_name",    "last_name",   "email",           "phone",
                                         "agent.name",    "agent.phone", "agent.email",     "listing.address",
                                         "listing.price", "tenant.name", NULL};

static int known(const char *name) {
    for (const char *const *k = known_vars; *k; k++)
        if (!strcmp(*k, name)) return 1;
    return 0;
}

/* Calls fn for each {{...}}: text between is appended as is. Returns 0 or
 * the first non-zero fn result; -2 for an unclosed "{{". */
typedef int (*var_fn)(void *ud, const char *name, const char *def, size_t dn);

static int walk(const char *t, buf *out, var_fn fn, void *ud) {
    while (*t) {
        const char *open = strstr(t, "{{");
        if (!open) {
            if (out && buf_puts(out, t)) return -3;
            return 0;
        }
        if (out && buf_append(out, t, (size_t)(open - t))) return -3;
        const char *close = strstr(open + 2, "}}");
        if (!close) return -2;
        size_t n = (size_t)(close - open - 2);
        if (n > 100) return -2;
        char name[128];
        const char *def;
        size_t dn;
        const char *s = open + 2;
        /* split on the first '|' inside [s, s+n) */
        const char *bar = memchr(s, '|', n);
        const char *ne = bar ? bar : s + n;
        while (s < ne && *s == ' ') s++;
        while (ne > s && ne[-1] == ' ') ne--;
        snprintf(name, sizeof name, "%.*s", (int)(ne - s), s);
        def = NULL;
        dn = 0;
        if (bar) {
            const char *d = bar + 1, *de = open + 2 + n;
            while (d < de && *d == ' ') d++;
            while (de > d && de[-1] == ' ') de--;
            def = d;
            dn = (size_t)(de - d);
        }
        int rc = fn(ud, name, def, dn);
        if (rc) return rc;
        t = close + 2;
    }
    return 0;
}

typedef struct check_ud {
    char *err;
    size_t errlen;
} check_ud;

static int check_one(void *ud, const char *name, const char *def, size_t dn) {
    check_ud *c = ud;
    if (known(name)) return 0;
    snprintf(c->err, c->errlen, "unknown variable {{%s}} (known: first_name, last_name, email, phone, agent.name, "
                                "agent.phone, agent.email, listing.address, listing.price, tenant.name)",
             name);
    return -1;
}

int nurture_check_vars(const char *tmpl, char *err, size_t errlen) {
    check_ud c = {err, errlen};
    int rc = walk(tmpl ? tmpl : "", NULL, check_one, &c);
    if (rc == -2) snprintf(err, errlen, "a {{ without its }} (or a variable over 100 bytes)");
    return rc ? -1 : 0;
}

typedef struct render_ud {
    const json_t *vars;
    int html;
    buf *out;
    char *err;
    size_t errlen;
} render_ud;

static int put_escaped(buf *b, const char *s, size_t n, int html) {
    if (!html) return buf_append(b, s, n);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        switch (s[i]) {
        case '<': rc = buf_puts(b, "&lt;"); break;
        case '>': rc = buf_puts(b, "&gt;"); break;
        case '&': rc = buf_puts(b, "&amp;"); break;
        case '"': rc = buf_puts(b, "&quot;"); break;
        case '\'': rc = buf_puts(b, "&#39;"); break;
        default: rc = buf_putc(b, s[i]);
        }
    }
    return rc;
}

int nurture_text_to_html(const char *text, buf *out) {
    int rc = 0;
    for (const char *s = text; *s && !rc; s++) {
        if (*s == '\r') continue;
        rc = *s == '\n' ? buf_puts(out, "<br>\n") : put_escaped(out, s, 1, 1);
    }
    return rc;
}

static int render_one(void *ud, const char *name, const char *def, size_t dn) {
    render_ud *r = ud;
    if (!known(name)) {
        snprintf(r->err, r->errlen, "unknown variable {{%s}}", name);
        return -1;
    }
    const char *dot = strchr(name, '.');
    const json_t *v = r->vars;
    if (dot) {
        char head[32];
        snprintf(head, sizeof head, "%.*s", (int)(dot - name), name);
        v = json_object_get(v, head);
        name = dot + 1;
    }
    v = json_object_get(v, name);
    char num[64];
    const char *s = NULL;
    size_t n = 0;
    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);
    } else if (json_is_integer(v)) {
        n = (size_t)snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        s = num;
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* prices read best without decimals when they have none */
        n = (size_t)(d == (double)(long long)d ? snprintf(num, sizeof num, "%lld", (long long)d)
                                               : snprintf(num, sizeof num, "%.2f", d));
        s = num;
    }
    if (!n && def) {
        s = def;
        n = dn;
    }
    if (n && put_escaped(r->out, s, n, r->html)) return -3;
    return 0;
}

int nurture_render(const char *tmpl, const json_t *vars, int html, buf *out, char *err, size_t errlen) {
    render_ud r = {vars, html, out, err, errlen};
    size_t start = out->len;
    int rc = walk(tmpl ? tmpl : "", out, render_one, &r);
    if (rc == -2) snprintf(err, errlen, "a {{ without its }}");
    if (rc == -3 || (!rc && out->len - start > NURTURE_MAX_BODY)) {
        snprintf(err, errlen, "the message is over %d bytes", NURTURE_MAX_BODY);
        rc = -1;
    }
    return rc ? -1 : 0;
}

/* ---- SMS ---- */

/* GSM 03.38 basic character set, as Unicode code points. */
static const unsigned short gsm_basic[] = {
    '@', 0xA3, '$', 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7, '\n', 0xD8, 0xF8, '\r', 0xC5, 0xE5, 0x394, '_', 0x3A6,
    0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, 0xC6, 0xE6, 0xDF, 0xC9, ' ', '!', '"', '#', 0xA4, '%', '&',
    '\'', '(', ')', '*', '+', ',', '-', '.', '/', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<',
    '=', '>', '?', 0xA1, 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', 'P', 'Q', 'R',
    'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 0xC4, 0xD6, 0xD1, 0xDC, 0xA7, 0xBF, 'a', 'b', 'c', 'd', 'e', 'f', 'g',
    'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 0xE4, 0xF6, 0xF1,
    0xFC, 0xE0};
/* The extension table: an escape septet plus one. */
static const unsigned short gsm_ext[] = {'\f', '^', '{', '}', '\\', '[', '~', ']', '|', 0x20AC};

static unsigned next_cp(const unsigned char **p) {
    const unsigned char *s = *p;
    unsigned c = *s++;
    int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    if (extra) c &= (unsigned)(0x3F >> extra);
    while (extra-- && (*s & 0xC0) == 0x80) c = (c << 6) | (*s++ & 0x3F);
    *p = s;
    return c;
}

void nurture_sms_segments(const char *utf8, nurture_sms_info *out) {
    int septets = 0, units = 0, gsm = 1;
    for (const unsigned char *p = (const unsigned char *)(utf8 ? utf8 : ""); *p;) {
        unsigned c = next_cp(&p);
        units += c > 0xFFFF ? 2 : 1;
        int in = 0;
        for (size_t i = 0; i < sizeof gsm_basic / sizeof gsm_basic[0] && !in; i++) in = gsm_basic[i] == c;
        if (in) {
            septets++;
            continue;
        }
        for (size_t i = 0; i < sizeof gsm_ext / sizeof gsm_ext[0] && !in; i++) in = gsm_ext[i] == c;
        if (in) septets += 2;
        else gsm = 0;
    }
    out->gsm7 = gsm;
    out->units = gsm ? septets : units;
    int single = gsm ? 160 : 70, part = gsm ? 153 : 67;
    out->segments = out->units == 0 ? 0 : out->units <= single ? 1 : (out->units + part - 1) / part;
}

int nurture_has_opt_out(const char *body) {
    for (const char *p = body ? body : ""; (p = strstr(p, "STOP")); p += 4) {
        int before = p == body || !isalpha((unsigned char)p[-1]);
        int after = !isalpha((unsigned char)p[4]);
        if (before && after) return 1;
    }
    return 0;
}

int nurture_keyword(const char *body) {
    static const char *const stop[] = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT",
                                       "REVOKE", NULL};
    static const char *const start[] = {"START", "YES", "UNSTOP", NULL};
    char w[32];
    const char *s = body ? body : "";
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && (isspace((unsigned char)s[n - 1]) || s[n - 1] == '.' || s[n - 1] == '!')) n--;
    if (n == 0 || n >= sizeof w) return 0;
    memcpy(w, s, n);
    w[n] = 0;
    for (const char *const *k = stop; *k; k++)
        if (!strcasecmp(w, *k)) return 1;
    for (const char *const *k = start; *k; k++)
        if (!strcasecmp(w, *k)) return 2;
    return 0;
}

/* ---- the resource ---- */

static const char *const channels[] = {"sms", "email", NULL};
static const field template_fields[] = {
    {"name", F_TEXT, 100, FF_REQUIRED | FF_FILTER, NULL},
    {"channel", F_ENUM, 8, FF_REQUIRED | FF_FILTER, channels},
    {"subject", F_TEXT, 200, 0, NULL},
    {"body", F_TEXT, NURTURE_MAX_BODY, FF_REQUIRED, NULL},
    {"marketing", F_BOOL, 0, 0, NULL},
};

static void template_check(const ent_vals *v, json_t *in, int creating, json_t **errors) {
    char err[300];
    const char *body = json_string_value(json_object_get(in, "body"));
    const char *subject = json_string_value(json_object_get(in, "subject"));
    const char *channel = json_string_value(json_object_get(in, "channel"));
    json_t *mk = json_object_get(in, "marketing");
    if (body && nurture_check_vars(body, err, sizeof err)) ent_error(errors, "body", err);
    if (subject && nurture_check_vars(subject, err, sizeof err)) ent_error(errors, "subject", err);
    /* Marketing texts must say how to stop them (CTIA); checked when both
     * are known in this write (a PATCH of one field is checked at send). */
    if (channel && !strcmp(channel, "sms") && body && !json_is_false(mk) && !nurture_has_opt_out(body))
        ent_error(errors, "body", "a marketing SMS must tell how to opt out (e.g. \"Reply STOP to opt out\")");
    if (creating && channel && !strcmp(channel, "email") && !subject)
        ent_error(errors, "subject", "an email needs a subject");
}

const entity entity_template = {"nurture_templates", "template", template_fields,
                                (int)(sizeof template_fields / sizeof template_fields[0]), 1, template_check};
