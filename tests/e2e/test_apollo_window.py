"""Provider limits held by the whole cluster (--bus redis://), not by each
node: Apollo's per-tenant enrichment window shared by two nodes, and a 429
with Retry-After answered to one node holding every node back, for Apollo
and for GoHighLevel; and with Redis gone, Apollo paced by the node's own
window, said once, and shared again when Redis is back.

One fake serves both providers under a path per node (each node is given
--ghl-url / --apollo-url ending in /node-a or /node-b), so every request it
records says which node made it and when it arrived. The limits are made
small for speed. The two-node tests need PostgreSQL + Redis
(scripts/services.sh) and skip otherwise; the Redis-down one starts its own
redis-server. Standard library only."""
import itertools
import shutil
import json
import time

from lib import FakeProvider, start_fake, wait_for
from tenants import Client, Tenant, unique
from test_ghl_window import _metric, _stop_module_server, _worst_window
from test_realtime import Redis

A_LIMIT, A_WINDOW = 5, 1.0      # --apollo-limit 5/s
G_LIMIT, G_WINDOW = 10, 2.0     # --ghl-limit 10 --ghl-window 2s
RETRY_AFTER = 3                 # seconds, in the fake's 429s
_phones = itertools.count(1)


class Fake(FakeProvider):
    """POST /<node>/api/v1/people/match (Apollo) and
    /<node>/conversations/messages (GHL), checked as the real ones check
    them; each request recorded under its key as {at, node, what, throttled}."""
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        at = time.time()
        st = self.server.state
        node, _, path = self.path.lstrip("/").partition("/")
        path = "/" + path
        if path == "/api/v1/people/match":
            key = self.headers.get("X-Api-Key", "")
            if not key.startswith("apollo-"):
                return self._reply(401, {"error": "Invalid access credentials."})
            m = json.loads(raw)
            what = m.get("email", "")
        elif path == "/conversations/messages":
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or self.headers.get("Version") != "2021-04-15":
                return self._reply(401, {"statusCode": 401, "message": "Invalid JWT"})
            key, m = auth[7:], json.loads(raw)
            if m.get("type") not in ("SMS", "Email") or not m.get("contactId"):
                return self._reply(422, {"statusCode": 422, "message": ["type must be a valid enum value"]})
            what = m["contactId"]
        else:
            return self._reply(404, {"message": "not found"})
        with st["lock"]:
            recs = st["reqs"].setdefault(key, [])
            rec = {"at": at, "node": node, "what": what}
            recs.append(rec)
            if st["r429"].get(key):  # pacing us: counted by the provider all the same
                st["r429"][key] -= 1
                rec["throttled"] = True
                body = {"error": "rate limit"} if path.startswith("/api") else \
                    {"statusCode": 429, "message": "Too many requests"}
                return self._reply(429, body, {"Retry-After": str(RETRY_AFTER)})
            n = len(recs)
        if path.startswith("/api"):
            return self._reply(200, {"person": {
                "id": "p_%d" % n, "first_name": m.get("first_name"), "last_name": m.get("last_name"),
                "title": "Broker", "linkedin_url": "http://www.linkedin.com/in/p%d" % n,
                "organization": {"id": "o1", "name": "Shared Window Realty"}}})
        self._reply(201, {"conversationId": "conv_" + what, "messageId": "msg_%d" % n,
                          "msg": "Message queued successfully."})


def _start():
    srv = start_fake(Fake, {"reqs": {}, "r429": {}}, backlog=256)
    return srv


_fake = _start()
_URL = "http://127.0.0.1:%d" % _fake.server_address[1]


def _requests(key):
    with _fake.state["lock"]:
        return list(_fake.state["reqs"].get(key, []))


def _nodes(t, tag):
    """Two nodes on one store and one Redis, each calling the fake under
    its own path."""
    _stop_module_server(t)
    out = []
    for n in ("node-a", "node-b"):
        url = "%s/%s" % (_URL, n)
        out.append(t.new_server(extra=["--bus", t.redis, "--apollo-url", url, "--apollo-limit", "%d/s" % A_LIMIT,
                                       "--ghl-url", url, "--ghl-limit", str(G_LIMIT),
                                       "--ghl-window", "%ds" % G_WINDOW], name="%s-%s" % (tag, n)))
    return out


def _worst_window_of(recs, window):
    at = sorted(r["at"] for r in recs)
    return max((sum(1 for x in at[i:] if x - s < window) for i, s in enumerate(at)), default=0)


def _skip(t):
    if not (t.redis and t.backend == "postgres"):
        print("     (shared provider windows need --redis and a postgres --store; run with scripts/services.sh)")
        return True
    return False


def _held_by_the_other(t, nodes, key, lead, n, metric, done):
    """A 429 with Retry-After answered to one node (whichever makes the
    first request) holds the other back: that node is stopped once it has
    the answer, the other is given n leads during the wait, and nothing
    reaches the provider from either until the wait is over; then every
    request goes out exactly once. lead(node, i) makes the i-th lead
    through node; done() lists what the provider accepted, sorted."""
    with _fake.state["lock"]:
        _fake.state["r429"][key] = 1
    before = {r["what"] for r in _requests(key)}
    lead(nodes[0], 0)
    thr = wait_for(lambda: [r for r in _requests(key) if r.get("throttled")], 10 * t.slow)
    assert len(thr) == 1, thr
    r429 = thr[0]
    got, other = (nodes[0], nodes[1]) if r429["node"] == "node-a" else (nodes[1], nodes[0])
    time.sleep(0.3)  # it has recorded the 429 (and told Redis) by now
    got.stop()       # from here on only the other node can make requests
    paced = _metric(other, metric, '{window="shared"}')
    for i in range(1, n):
        lead(other, i)
    t_made = time.time()
    wait_for(lambda: len(set(done()) - before) >= n, 40 * t.slow)
    time.sleep(0.5)
    recs = sorted((r for r in _requests(key) if r["what"] not in before), key=lambda r: r["at"])
    after = [r for r in recs if r["at"] > r429["at"]]
    assert len(after) == n and all(r["node"] != r429["node"] for r in after), after  # each once, the 429'd too
    # Retry-After runs from when the node had the answer, a little after the fake sent it
    early = [(round(r["at"] - r429["at"], 3), r["node"], r["what"]) for r in after
             if r["at"] < r429["at"] + RETRY_AFTER - 0.05]
    assert not early, (r429, early)
    assert t_made < r429["at"] + RETRY_AFTER - 0.5, "the leads came too late to prove anything"
    # the other node had the work and was held back by the shared window (the block)
    assert _metric(other, metric, '{window="shared"}') > paced
    return r429, after[0]["at"] - r429["at"]


def test_apollo_window_shared_and_429_blocks_both_nodes(t):
    if _skip(t):
        return
    a, b = _nodes(t, "apw")
    key = "apollo-" + unique("apw")
    tn = Tenant(t, srv=a, prefix="apw")
    tn.ok("PATCH", "/v1/nurture/settings", {"apollo_api_key": key})
    clients = {a: tn, b: Client(b, tn.key)}
    ids = {}

    def lead(node, i):
        st, j = clients[node].api("POST", "/v1/leads", {"first_name": "W%d" % i, "last_name": "W",
                                                         "email": "w%d@%s.example" % (i, tn.slug)})
        assert st == 201, (st, j)
        ids[i] = j["id"]

    done = lambda: sorted(r["what"] for r in _requests(key) if not r.get("throttled"))  # noqa: E731
    # leads keep coming (10/s through both nodes) faster than Apollo's 5/s: both nodes enrich
    n = 8 * A_LIMIT
    for i in range(n):
        lead((a, b)[i % 2], i)
        time.sleep(0.1)
    wait_for(lambda: len(done()) >= n, 40 * t.slow)
    time.sleep(1.0)
    emails = sorted("w%d@%s.example" % (i, tn.slug) for i in range(n))
    assert done() == emails, (len(done()), len(set(done())))  # every lead enriched exactly once
    for i in range(n):
        got = wait_for(lambda: tn.get_lead(ids[i]).get("company"), 10)
        assert got == "Shared Window Realty", (i, got)
    recs = _requests(key)
    worst = _worst_window_of(recs, A_WINDOW)  # across both nodes
    assert worst <= A_LIMIT, worst
    span = max(r["at"] for r in recs) - min(r["at"] for r in recs)
    assert span >= (n // A_LIMIT - 1) * A_WINDOW * 0.9, span  # paced, not merely slow
    per_node = {x: sum(1 for r in recs if r["node"] == x) for x in ("node-a", "node-b")}
    assert all(per_node.values()), per_node
    paced = [_metric(s, "ehub_nurture_apollo_paced_total", '{window="shared"}') for s in (a, b)]
    assert sum(paced) > 0, paced
    for s in (a, b):
        assert _metric(s, "ehub_nurture_apollo_window_shared") == 1
        assert _metric(s, "ehub_nurture_apollo_window_fallbacks_total") == 0
    print("     %d enrichments over 2 nodes %s in %.1fs, worst %.1fs window: %d (limit %d); paced (shared) %s"
          % (n, per_node, span, A_WINDOW, worst, A_LIMIT, paced))
    # a 429 to one node holds the other back
    m = 4 * A_LIMIT
    base = n

    def lead2(node, i):
        lead(node, base + i)

    r429, first = _held_by_the_other(t, [a, b], key, lead2, m, "ehub_nurture_apollo_paced_total", done)
    assert done() == sorted("w%d@%s.example" % (i, tn.slug) for i in range(n + m))
    print("     429 (Retry-After %ds) to %s: the other node's first request %.2fs after it, %d leads each "
          "enriched once" % (RETRY_AFTER, r429["node"], first, m))
    a.stop()
    b.stop()


def test_ghl_429_holds_both_nodes(t):
    if _skip(t):
        return
    a, b = _nodes(t, "g429")
    key = "pit-" + unique("g429")
    tn = Tenant(t, srv=a, prefix="g429")
    tn.ok("PATCH", "/v1/nurture/settings", {"quiet_start": "00:00", "quiet_end": "00:00", "daily_cap": 100,
                                            "sms_via": "ghl", "ghl_api_key": key})
    tn.ok("POST", "/v1/templates", {"name": "g", "channel": "sms", "body": "Hi {{first_name}}. Reply STOP to opt out"})
    tn.ok("POST", "/v1/sequences", {"name": "ghl", "start_on": "new_lead", "steps": [{"type": "sms", "template": "g"}]})
    clients = {a: tn, b: Client(b, tn.key)}

    def lead(node, i):
        st, j = clients[node].api("POST", "/v1/leads", {
            "first_name": "G%d" % i, "phone": "+1415558%04d" % next(_phones), "consent_sms": True,
            "ghl_contact_id": "ct_%s_%d" % (tn.slug, i)})
        assert st == 201, (st, j)

    n = 3 * G_LIMIT
    done = lambda: sorted(r["what"] for r in _requests(key) if not r.get("throttled"))  # noqa: E731
    r429, first = _held_by_the_other(t, [a, b], key, lead, n, "ehub_nurture_ghl_paced_total", done)
    assert done() == sorted("ct_%s_%d" % (tn.slug, i) for i in range(n))  # each step sent once
    recs = _requests(key)
    assert _worst_window(recs) <= G_LIMIT, _worst_window(recs)
    print("     429 (Retry-After %ds) to %s: the other node's first send %.2fs after it; %d sends, each once"
          % (RETRY_AFTER, r429["node"], first, n))
    b.stop() if r429["node"] == "node-a" else a.stop()


def test_apollo_window_redis_down_falls_back_to_the_node(t):
    if not shutil.which("redis-server"):
        print("     (needs redis-server)")
        return
    _stop_module_server(t)
    r = Redis().start()
    try:
        url = "%s/node-a" % _URL
        node = t.new_server(extra=["--bus", "redis://127.0.0.1:%d" % r.port, "--apollo-url", url,
                                   "--apollo-limit", "%d/s" % A_LIMIT], name="apw-down")
        key = "apollo-" + unique("apd")
        tn = Tenant(t, srv=node, prefix="apd")
        tn.ok("PATCH", "/v1/nurture/settings", {"apollo_api_key": key})
        done = lambda: [x for x in _requests(key) if not x.get("throttled")]  # noqa: E731

        def phase(n, tag):
            before = len(done())
            for i in range(n):
                tn.create_lead(first_name="D%d" % i, email="%s%d@%s.example" % (tag, i, tn.slug))
            wait_for(lambda: len(done()) >= before + n, 30 * t.slow)
            got = done()
            assert len(got) == before + n, (tag, len(got), before + n)
            return got[before:]

        phase(A_LIMIT, "s")
        assert _metric(node, "ehub_nurture_apollo_window_shared") == 1
        assert _metric(node, "ehub_nurture_apollo_window_fallbacks_total") == 0
        r.kill()  # Redis gone: the node's own window still holds Apollo's limit
        local = phase(4 * A_LIMIT, "l")
        assert _worst_window_of(local, A_WINDOW) <= A_LIMIT, _worst_window_of(local, A_WINDOW)
        assert max(x["at"] for x in local) - min(x["at"] for x in local) >= 2 * A_WINDOW * 0.9
        assert _metric(node, "ehub_nurture_apollo_window_shared") == 0
        assert _metric(node, "ehub_nurture_apollo_window_fallbacks_total") >= 4 * A_LIMIT
        down = [x for x in node.lines if "Apollo enrichments use this node's window" in x]
        assert len(down) == 1, down  # once per outage
        r.start()
        phase(A_LIMIT, "a")
        assert _metric(node, "ehub_nurture_apollo_window_shared") == 1
        assert any("Apollo window shared through Redis again" in x for x in node.lines)
        allr = done()
        assert len(allr) == len({x["what"] for x in allr}) == 6 * A_LIMIT  # each lead once
        node.stop()
    finally:
        r.cleanup()
