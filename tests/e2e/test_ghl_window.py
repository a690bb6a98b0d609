"""GoHighLevel's "100 requests per 10 s per location" held across the nodes
of a cluster (--bus redis://): the window is shared through Redis, so two
nodes sending for one tenant together stay under it; with Redis stopped a
node still sends, paced by its own window, says so once, and shares again
when Redis is back.

The fake GHL answers POST /conversations/messages as the real one does and
records, per location (its bearer token), when each request arrived. The
limit is made small for speed (--ghl-limit 10 --ghl-window 2s), and every
test sends enough to take several windows. Standard library only."""
import itertools
import json
import re
import shutil
import time

from lib import FakeProvider, start_fake, wait_for
from tenants import Client, Tenant, unique
from test_realtime import Redis

LIMIT, WINDOW = 10, 2.0
_phones = itertools.count(1)


class Fake(FakeProvider):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        at = time.time()
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        if self.path != "/conversations/messages":
            return self._reply(404, {"message": "not found"})
        if not auth.startswith("Bearer ") or self.headers.get("Version") != "2021-04-15":
            return self._reply(401, {"statusCode": 401, "message": "Invalid JWT"})
        m = json.loads(raw)
        if m.get("type") not in ("SMS", "Email") or not m.get("contactId"):
            return self._reply(422, {"statusCode": 422, "message": ["type must be a valid enum value"]})
        with st["lock"]:
            loc = st["loc"].setdefault(auth[7:], [])
            if st["r429"].get(auth[7:]):  # GHL pacing us: counted by GHL all the same
                st["r429"][auth[7:]] -= 1
                loc.append({"at": at, "contactId": m["contactId"], "throttled": True})
                return self._reply(429, {"statusCode": 429, "message": "Too many requests"}, {"Retry-After": "1"})
            mid = "msg_%d" % (sum(len(v) for v in st["loc"].values()) + 1)
            loc.append({"at": at, "contactId": m["contactId"], "messageId": mid})
        self._reply(201, {"conversationId": "conv_" + m["contactId"], "messageId": mid,
                          "msg": "Message queued successfully."})


def _start():
    srv = start_fake(Fake, {"loc": {}, "r429": {}}, backlog=256)
    return srv


_fake = _start()
_URL = "http://127.0.0.1:%d" % _fake.server_address[1]
NODE_ARGS = ["--ghl-url", _URL, "--ghl-limit", str(LIMIT), "--ghl-window", "%ds" % WINDOW]


def _requests(key):
    """Every request of the location, 429s included."""
    with _fake.state["lock"]:
        return list(_fake.state["loc"].get(key, []))


def _received(key):
    """The messages GHL accepted."""
    return [r for r in _requests(key) if not r.get("throttled")]


def _worst_window(recs):
    """The most requests GHL saw in any WINDOW seconds."""
    at = sorted(r["at"] for r in recs)
    return max((sum(1 for b in at[i:] if b - a < WINDOW) for i, a in enumerate(at)), default=0)


def _metric(srv, name, labels=""):
    body = srv.request("GET", "/metrics")[2].decode()
    m = re.search(r"^%s%s ([0-9.e+-]+)$" % (re.escape(name), re.escape(labels)), body, re.M)
    return float(m.group(1)) if m else 0.0


def _ghl_tenant(t, srv, prefix):
    """A tenant sending SMS through GHL with its own token (its 'location'),
    and a new-lead sequence of one SMS."""
    key = "pit-" + unique(prefix)
    tn = Tenant(t, srv=srv, prefix=prefix)
    tn.ok("PATCH", "/v1/nurture/settings", {"quiet_start": "00:00", "quiet_end": "00:00", "daily_cap": 100,
                                            "sms_via": "ghl", "ghl_api_key": key})
    tn.ok("POST", "/v1/templates", {"name": "g", "channel": "sms", "body": "Hi {{first_name}}. Reply STOP to opt out"})
    tn.ok("POST", "/v1/sequences", {"name": "ghl", "start_on": "new_lead",
                                    "steps": [{"type": "sms", "template": "g"}]})
    return tn, key


def _leads(clients, n, tag):
    """n new leads (each enrolled at once), created round-robin over the
    clients (one per node)."""
    ids = []
    for i in range(n):
        st, j = clients[i % len(clients)].api("POST", "/v1/leads", {
            "first_name": "W%d" % i, "phone": "+1415557%04d" % next(_phones), "consent_sms": True,
            "ghl_contact_id": "ct_%s_%d" % (tag, i)})
        assert st == 201, (st, j)
        ids.append(j["id"])
    return ids


def _stop_module_server(t):
    # it shares the store: its dispatcher would claim steps and send them
    # with a window of its own
    if t.srv.proc and t.srv.proc.poll() is None:
        t.srv.stop()


def test_ghl_window_shared_by_two_nodes(t):
    if not (t.redis and t.backend == "postgres"):
        print("     (the shared GHL window needs --redis and a postgres --store; run with scripts/services.sh)")
        return
    _stop_module_server(t)
    extra = ["--bus", t.redis] + NODE_ARGS
    a = t.new_server(extra=extra, name="ghlw-node-a")
    b = t.new_server(extra=extra, name="ghlw-node-b")
    tn, key = _ghl_tenant(t, a, "ghlw")
    n = 6 * LIMIT
    with _fake.state["lock"]:
        _fake.state["r429"][key] = 2  # a Retry-After holds both nodes; the steps go out later, once
    t0 = time.time()
    ids = _leads([tn, Client(b, tn.key)], n, tn.slug)
    got = wait_for(lambda: len(_received(key)) >= n and _received(key), 40 * t.slow)
    # every send arrives exactly once
    contacts = sorted(r["contactId"] for r in got)
    assert contacts == sorted("ct_%s_%d" % (tn.slug, i) for i in range(n)), (len(got), len(set(contacts)))
    time.sleep(0.5)
    assert len(_received(key)) == n
    # never more than LIMIT in any WINDOW (429s count too), across both nodes
    assert sum(1 for r in _requests(key) if r.get("throttled")) == 2
    worst = _worst_window(_requests(key))
    assert worst <= LIMIT, worst
    span = max(r["at"] for r in got) - min(r["at"] for r in got)
    assert span >= (n // LIMIT - 1) * WINDOW * 0.9, span  # paced, not merely slow
    # both nodes sent, both were held back by the shared window, Redis never failed
    sent = [_metric(s, "ehub_nurture_sent_total", '{channel="sms"}') for s in (a, b)]
    assert all(sent) and sum(sent) == n, sent
    paced = [_metric(s, "ehub_nurture_ghl_paced_total", '{window="shared"}') for s in (a, b)]
    assert sum(paced) > 0, paced
    for s in (a, b):
        assert _metric(s, "ehub_nurture_ghl_window_shared") == 1
        assert _metric(s, "ehub_nurture_ghl_window_fallbacks_total") == 0
    # recorded once: one outbound SMS activity per lead, with the id GHL gave it
    mids = {r["messageId"] for r in got}
    for lid in ids:
        acts = wait_for(lambda: [x for x in tn.ok("GET", "/v1/leads/%d/activities" % lid)["items"]
                              if x["channel"] == "sms"], 10)
        assert len(acts) == 1 and acts[0]["provider_message_id"] in mids, acts
    print("     %d sends over 2 nodes in %.1fs (since first lead %.1fs), worst %.1fs window: %d, per node %s, "
          "paced (shared) %s" % (n, span, time.time() - t0, WINDOW, worst, sent, paced))
    a.stop()
    b.stop()


def test_ghl_window_redis_down_falls_back_to_the_node(t):
    if not shutil.which("redis-server"):
        print("     (needs redis-server)")
        return
    _stop_module_server(t)
    r = Redis().start()
    try:
        url = "redis://127.0.0.1:%d" % r.port
        node = t.new_server(extra=["--bus", url] + NODE_ARGS, name="ghlw-down")
        tn, key = _ghl_tenant(t, node, "ghld")

        def phase(n, tag):
            before = len(_received(key))
            _leads([tn], n, tn.slug + tag)
            got = wait_for(lambda: len(_received(key)) >= before + n and _received(key), 30 * t.slow)
            assert len(got) == before + n, (tag, len(got), before + n)
            return got[before:]

        shared = phase(2 * LIMIT, "s")
        assert _metric(node, "ehub_nurture_ghl_window_shared") == 1
        assert _metric(node, "ehub_nurture_ghl_window_fallbacks_total") == 0
        r.kill()  # Redis gone
        local_paced = _metric(node, "ehub_nurture_ghl_paced_total", '{window="local"}')
        t1 = time.time()
        local = phase(3 * LIMIT, "l")
        assert _worst_window(local) <= LIMIT, _worst_window(local)
        assert max(x["at"] for x in local) - t1 >= 2 * WINDOW * 0.9  # still paced: by the node's window
        assert _metric(node, "ehub_nurture_ghl_window_shared") == 0
        fallbacks = _metric(node, "ehub_nurture_ghl_window_fallbacks_total")
        assert fallbacks >= 3 * LIMIT, fallbacks  # every send of the outage
        assert _metric(node, "ehub_nurture_ghl_paced_total", '{window="local"}') > local_paced
        down = [l for l in node.lines if "GoHighLevel sends use this node's window" in l]
        assert len(down) == 1, down  # once per outage
        r.start()  # back, on the same port
        again = phase(2 * LIMIT, "a")
        assert _metric(node, "ehub_nurture_ghl_window_shared") == 1
        assert any("GoHighLevel window shared through Redis again" in l for l in node.lines)
        # the last sends went through Redis again (a fallback is only counted while it is away)
        assert _metric(node, "ehub_nurture_ghl_window_fallbacks_total") < fallbacks + 2 * LIMIT
        # across the whole run: each lead once, no window over the limit
        allr = _received(key)
        assert len(allr) == len({x["contactId"] for x in allr}) == 7 * LIMIT
        assert _worst_window(shared + local + again) <= LIMIT
        node.stop()
    finally:
        r.cleanup()
