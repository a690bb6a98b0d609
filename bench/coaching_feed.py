#!/usr/bin/env python3
"""Coaching on the feed, measured: an agent's WebSocket client subscribed
to coaching:{agent_id}; inbound messages by REST, signed GoHighLevel
InboundMessage webhooks and signed Twilio inbound SMS in turn, one at a
time on a keep-alive connection; for each, the milliseconds from writing
the request to reading its `coaching.updated` event off the socket (the
same measurement as tests/e2e/test_coach_feed.py, which asserts p99 < 50
ms over 42 messages). Prints p50/p90/p99/max per path and in all.

  bench/coaching_feed.py [--binary build/ehub] [--messages 300] [--store URL]

Each round starts a fresh server (SQLite in a temporary directory unless
--store) with --log-level info; --rounds repeats it, to see the spread on
a shared machine."""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))

from lib import Server  # noqa: E402
import test_coach_feed as cf  # noqa: E402


class Ctx:
    def __init__(self, binary, store):
        self.binary = binary
        self.store = store
        self.slow = 1.0
        self.backend = "postgres" if store and store.startswith("postgres") else "sqlite"
        self.srv = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="build/ehub")
    ap.add_argument("--store")
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=1)
    o = ap.parse_args()
    for r in range(o.rounds):
        t = Ctx(o.binary, o.store)
        t.srv = Server(o.binary, store=o.store, extra=["--log-level", "info"], name="coaching_feed").start()
        try:
            s = cf.Setup(t, leads=10)
            out = cf.measure(s, rounds=max(1, o.messages // 3), warm=5)
            s.close()
        finally:
            t.srv.stop()
        print("== round %d (%s, %d messages; target p99 < %.0f ms)" % (
            r + 1, t.backend, sum(len(v) for v in out.values()), cf.BUDGET_MS))
        print(cf.report(out))


if __name__ == "__main__":
    main()
