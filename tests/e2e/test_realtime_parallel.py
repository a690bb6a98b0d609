"""Parallel fan-out writes (--ws-writers): with --ws-parallel-min 2 every
fan-out pass of the realtime feed is shared between the event loop and a
helper thread, so these tests run the parallel path with a few hundred
subscribers. The guarantees are those of the single-threaded path: every
subscriber gets every event once, in seq order, frames intact, with the
session's own frames (pongs, pings, lagging, close) in between; a slow
consumer is told it lags and cut off with 1013 and a resume point while
the others get everything; shutdown closes every feed with 1001. Each test
also checks, from /metrics, that the helper thread did write."""
import re
import signal
import socket
import threading
import time

from tenants import Tenant
from test_realtime import expect_cut_off, feed, producer_bursts, slow_client

PARALLEL = ["--ws-writers", "1", "--ws-parallel-min", "2"]
SERVER_ARGS = ["--ws-ping", "1s"] + PARALLEL


def fanout_writes(srv):
    """{"helper": n, "loop": n} from ehub_ws_fanout_writes_total."""
    body = srv.request("GET", "/metrics")[2].decode()
    out = {"helper": 0, "loop": 0}
    for th, n in re.findall(r'^ehub_ws_fanout_writes_total\{thread="(\w+)"\} (\d+)', body, re.M):
        out[th] = int(n)
    return out


def test_parallel_fanout_producers_and_pings_keep_order(t):
    # 150 subscribers, 6 producers posting at once (bursts of several events
    # per loop iteration, so a pass writes more than one frame per socket),
    # frames of 7-bit and 16-bit lengths; the clients ping the server and the
    # server pings them every second meanwhile, so pongs and pings go out
    # between shared frames on the same connections.
    tn = Tenant(t, prefix="par")
    before = fanout_writes(t.srv)
    subs = [feed(t, tn, ("system",)) for _ in range(150)]
    producers, per = 6, 8
    sizes = [0, 40, 300, 5000]

    def pings():
        for k, f in enumerate(subs):
            f.send(9, b"ping %d" % k)

    first = producer_bursts(tn, subs, "pburst", producers, per, sizes, pings)
    # one more broadcast after the server's pings had time to interleave
    time.sleep(1.2)
    tn.ok("POST", "/v1/broadcast", {"topic": "system", "type": "pafter", "data": {}}, want=202)
    for f in subs:
        m = f.events(1, timeout=10)[0]
        assert m["type"] == "pafter" and m["seq"] > first[-1], m
    after = fanout_writes(t.srv)
    assert after["helper"] > before["helper"], (before, after)
    assert after["loop"] > before["loop"], (before, after)
    for f in subs:
        f.close()


def test_parallel_fanout_slow_consumer_cut_off_others_continue(t):
    # A client that stops reading fills its socket during parallel passes:
    # its partial writes are finished by libuv's queue on the loop, later
    # passes leave it to the loop, and past the bounds it is told it lags
    # and closed with 1013 and where to resume. 80 others, each read by its
    # own thread, get every event in order meanwhile.
    srv = t.new_server(extra=["--ws-max-queue", "256K", "--ws-ping", "30s", "--max-body", "2M"] + PARALLEL,
                       name="par-slow")
    tn = Tenant(t, srv=srv, prefix="par")
    slow = slow_client(srv, tn.key)
    fast = [feed(t, tn, ("system",), srv=srv) for _ in range(80)]
    time.sleep(0.3)
    blob = "z" * (32 * 1024)
    n = 150  # 4.9 MB: more than the kernel buffers between the server and the slow client
    results = [None] * len(fast)

    def reader(k):
        try:
            results[k] = fast[k].events(n, timeout=120)
        except Exception as e:  # noqa
            results[k] = e

    ths = [threading.Thread(target=reader, args=(k,)) for k in range(len(fast))]
    for th in ths:
        th.start()
    for i in range(n):
        tn.ok("POST", "/v1/broadcast", {"topic": "system", "type": "pbulk", "data": {"i": i, "blob": blob}}, want=202)
    for th in ths:
        th.join(180)
    for got in results:
        assert isinstance(got, list), got
        assert [m["data"]["i"] for m in got] == list(range(n))
        assert all(len(m["data"]["blob"]) == len(blob) for m in got)
    resume = expect_cut_off(slow)
    assert 0 < resume < results[0][-1]["seq"], (resume, results[0][-1]["seq"])
    w = fanout_writes(srv)
    assert w["helper"] > 0 and w["loop"] > 0, w
    slow.s.close()
    for f in fast:
        f.close()
    srv.stop()


def test_parallel_fanout_peers_leaving_mid_stream(t):
    # Subscribers that reset their connections while events stream: a send
    # on a reset socket fails in whichever thread makes it, and the
    # connection is closed on the loop once the pass is settled; the others
    # get everything, and the server stays up.
    tn = Tenant(t, prefix="par")
    stay = [feed(t, tn, ("system",)) for _ in range(60)]
    leave = [feed(t, tn, ("system",)) for _ in range(60)]
    n = 30
    done = []

    def send():
        for i in range(n):
            tn.ok("POST", "/v1/broadcast", {"topic": "system", "type": "pleave", "data": {"i": i, "pad": "y" * 2000}},
                  want=202)
        done.append(1)

    th = threading.Thread(target=send)
    th.start()
    time.sleep(0.05)
    for f in leave:
        f.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        f.s.close()  # RST
    th.join(60)
    assert done
    for f in stay:
        got = f.events(n, timeout=30, types=("pleave",))
        assert [m["data"]["i"] for m in got] == list(range(n))
    assert t.srv.request("GET", "/health")[0] == 200
    for f in stay:
        f.close()


def test_parallel_fanout_shutdown_closes_every_feed_1001(t):
    srv = t.new_server(extra=["--ws-ping", "30s"] + PARALLEL, name="par-shutdown")
    tn = Tenant(t, srv=srv, prefix="par")
    subs = [feed(t, tn, ("system",), srv=srv) for _ in range(100)]
    for i in range(5):
        tn.ok("POST", "/v1/broadcast", {"topic": "system", "type": "pdown", "data": {"i": i}}, want=202)
    for f in subs:
        assert [m["data"]["i"] for m in f.events(5, timeout=20)] == list(range(5))
    assert fanout_writes(srv)["helper"] > 0
    srv.proc.send_signal(signal.SIGTERM)
    for f in subs:
        assert f.wait_closed(15) == 1001
    assert srv.proc.wait(20 * t.slow) == 0, srv.proc.returncode
    srv.stop()
