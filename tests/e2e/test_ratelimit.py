"""Request rate limits shared by the nodes of a cluster through Redis
(--bus redis://): two servers on one PostgreSQL store and one Redis, a limit
of N per hour, requests spread over both nodes -> exactly N pass in total;
and with Redis unreachable each node falls back to its own buckets and says
so in /metrics. Standard library only."""
import concurrent.futures
import re

from tenants import Tenant


def _cluster_ok(t):
    if not (t.redis and t.backend == "postgres"):
        print("     (shared rate limits need --redis and a postgres --store; run with scripts/services.sh)")
        return False
    return True


def _metric(srv, name):
    st, _, body = srv.request("GET", "/metrics")
    m = re.search(r"^%s(?:\{[^}]*\})? ([0-9.e+-]+)$" % re.escape(name), body.decode(), re.M)
    return float(m.group(1)) if m else None


def _hammer(nodes, key, n):
    """n GETs spread round-robin over nodes, 8 at a time; statuses in order."""
    def one(i):
        srv = nodes[i % len(nodes)]
        st, hd, _ = srv.request("GET", "/v1/leads?limit=1", headers={"Authorization": "Bearer " + key})
        return st, hd
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        return list(ex.map(one, range(n)))


def test_ratelimit_shared_across_two_nodes(t):
    if not _cluster_ok(t):
        return
    limit = 25
    extra = ["--bus", t.redis, "--rate-limit-principal", "%d/h" % limit, "--rate-limit-tenant", "1000/h"]
    a = t.new_server(extra=extra, name="rl-node-a")
    b = t.new_server(extra=extra, name="rl-node-b")
    tn = Tenant(t, srv=a, prefix="rl")
    res = _hammer([a, b], tn.key, 80)
    ok = [r for r in res if r[0] == 200]
    limited = [r for r in res if r[0] == 429]
    assert len(ok) == limit and len(limited) == 80 - limit, [r[0] for r in res]
    # both nodes served and both refused: the bucket is one, not one per node
    per_node = [sum(1 for i, r in enumerate(res) if r[0] == 200 and i % 2 == k) for k in (0, 1)]
    assert all(per_node), per_node
    hd = limited[0][1]
    assert hd["ratelimit-limit"] == str(limit) and hd["ratelimit-remaining"] == "0" and int(hd["retry-after"]) >= 1, hd
    # the tenant bucket is shared too: a second key of the tenant starts from 1000 - 25
    st, hd, _ = b.request("GET", "/v1/leads?limit=1", headers={"Authorization": "Bearer " + tn.make_key("viewer")})
    assert st == 200 and hd["ratelimit-limit"] == str(limit), hd
    assert _metric(a, "ehub_rate_limit_shared") == 1 and not _metric(a, "ehub_rate_limit_fallbacks_total")


def test_ratelimit_redis_down_falls_back_to_each_node(t):
    if not _cluster_ok(t):
        return
    limit = 10
    # nothing listens on port 1: every node is on its own
    extra = ["--bus", "redis://127.0.0.1:1", "--rate-limit-principal", "%d/h" % limit]
    a = t.new_server(extra=extra, name="rl-down-a")
    b = t.new_server(extra=extra, name="rl-down-b")
    tn = Tenant(t, srv=a, prefix="rld")
    res = _hammer([a, b], tn.key, 40)
    ok = sum(1 for r in res if r[0] == 200)
    assert ok == 2 * limit, [r[0] for r in res]  # N per node: degraded, never unlimited, never refusing all
    assert _metric(a, "ehub_rate_limit_fallbacks_total") >= 20 and _metric(a, "ehub_rate_limit_shared") == 0
    assert any("Redis unreachable" in line for line in a.lines), "the fallback was not logged"
