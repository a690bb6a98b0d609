"""The LLM path under load, for bench/coaching.sh: with the stand-in
provider (bench/llm_fake.py) holding every answer, starts N drafts at once
(POST /get-coaching?draft=async, each answered "pending" or "unavailable"
busy as soon as its suggestions are stored; timed too), then times M storage requests while they are held
(GET /v1/leads and POST /v1/leads in turn, a new connection each, as a
browser or integrator without keep-alive would), and prints one line.
Loopback only; standard library only.

  python3 bench/llm_load.py PORT KEY BODIES.jsonl N M"""
import http.client
import json
import sys
import time


def call(port, key, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Authorization": "Bearer " + key}
    if body is not None:
        h["Content-Type"] = "application/json"
    t0 = time.perf_counter()
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    dt = time.perf_counter() - t0
    c.close()
    return r.status, data, dt


def main():
    port, key, bodies, n, m = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    lines = open(bodies).read().splitlines()
    drafts, starts = {}, []
    t0 = time.perf_counter()
    for i in range(n):
        st, data, dt = call(port, key, "POST", "/get-coaching?draft=async", lines[i % len(lines)].encode())
        starts.append(dt * 1000)
        d = json.loads(data)["draft"] if st == 200 else {"status": "http_%d" % st}
        k = d["status"] + ("/" + d["reason"] if "reason" in d else "")
        drafts[k] = drafts.get(k, 0) + 1
    started = time.perf_counter() - t0
    starts.sort()
    t0 = time.perf_counter()
    lat, bad = [], 0
    for i in range(m):
        if i % 2:
            st, _, dt = call(port, key, "POST", "/v1/leads",
                             json.dumps({"first_name": "Bench", "email": "bench%d.%d@example.com" % (i, time.time_ns())}).encode())
            bad += st != 201
        else:
            st, _, dt = call(port, key, "GET", "/v1/leads?limit=20")
            bad += st != 200
        lat.append(dt * 1000)
    wall = time.perf_counter() - t0
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(len(lat) * q + 0.999) - 1)]
    print("%d answers with drafts in %.2f s (answer p50 %.1f ms, max %.1f ms; drafts %s); then %d storage requests "
          "in %.2f s: p50 %.1f ms, p99 %.1f ms, max %.1f ms, errors %d"
          % (n, started, starts[len(starts) // 2], starts[-1], json.dumps(drafts, sort_keys=True), m, wall, p(0.5),
             p(0.99), lat[-1], bad))


main()
