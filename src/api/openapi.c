/* /openapi.json, generated from the router so it cannot miss a route. */
#include <string.h>

#include "app/app.h"
#include "base/alloc.h"

typedef struct ctx {
    json_t *paths;
    int failed;
} ctx;

static void lower(const char *in, char *out, size_t n) {
    size_t i = 0;
    for (; in[i] && i + 1 < n; i++) out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
    out[i] = '\0';
}

static void add_route(const http_route_info *ri, void *ud) {
    ctx *c = ud;
    if (ri->flags & HTTP_ROUTE_HIDDEN) return;
    json_t *item = json_object_get(c->paths, ri->pattern);
    if (!item) {
        item = json_object();
        if (json_object_set_new(c->paths, ri->pattern, item)) { c->failed = 1; return; }
    }
    json_t *op = json_object();
    const http_route_doc *d = ri->doc;
    json_object_set_new(op, "summary", json_string(d && d->summary ? d->summary : ri->pattern));
    if (d && d->tag) json_object_set_new(op, "tags", json_pack("[s]", d->tag));
    json_t *params = json_array();
    /* Path parameters, from the {name} segments of the pattern. */
    for (const char *p = strchr(ri->pattern, '{'); p; p = strchr(p + 1, '{')) {
        const char *e = strchr(p, '}');
        if (!e) break;
        json_array_append_new(params, json_pack("{s:s%, s:s, s:b, s:{s:s}}", "name", p + 1,
                                                (size_t)(e - p - 1), "in", "path", "required", 1,
                                                "schema", "type", "string"));
    }
    if (json_array_size(params)) json_object_set_new(op, "parameters", params);
    else json_decref(params);
    if (d && d->request)
        json_object_set_new(op, "requestBody",
                            json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", d->request, "content",
                                      "application/json", "schema", "type", "object"));
    json_t *resp = json_object();
    const char *ok = (ri->flags & HTTP_ROUTE_WS) ? "101" : "200";
    json_object_set_new(resp, ok, json_pack("{s:s}", "description", d && d->response ? d->response : "OK"));
    json_object_set_new(resp, "default", json_pack("{s:s}", "description",
                                                    "error: {\"error\":{\"code\",\"message\",\"request_id\"}}"));
    json_object_set_new(op, "responses", resp);
    if (ri->flags & HTTP_ROUTE_PUBLIC) json_object_set_new(op, "security", json_array());
    if (ri->flags & HTTP_ROUTE_WS) json_object_set_new(op, "x-websocket", json_true());
    char m[16];
    lower(ri->method, m, sizeof m);
    if (json_object_set_new(item, m, op)) c->failed = 1;
}

int api_openapi_build(app *a) {
    ctx c = {json_object(), 0};
    if (!c.paths) return -1;
    http_router_each(a->router, add_route, &c);
    json_t *doc = json_pack("{s:s, s:{s:s, s:s, s:s}, s:o}", "openapi", "3.0.3", "info", "title",
                            "EnterpriseHub (ehub) API", "version", EHUB_VERSION, "description",
                            "Lead intelligence server for real-estate teams. Errors are "
                            "{\"error\":{\"code\",\"message\",\"request_id\"}}.",
                            "paths", c.paths);
    if (!doc || c.failed) {
        json_decref(doc);
        return -1;
    }
    char *s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!s) return -1;
    eh_free(a->openapi);
    a->openapi = eh_strdup(s);
    free(s);
    if (!a->openapi) return -1;
    a->openapi_len = strlen(a->openapi);
    return 0;
}
