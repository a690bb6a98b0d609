#!/usr/bin/env python3
"""Request latencies as the network saw them, from a tcpdump capture on lo.

  wire_latency.py PCAP PORT     prints one JSON line: n, p50_ms, p90_ms, p99_ms, p999_ms, max_ms

For each client connection to PORT, a request's time is from the first
packet carrying its bytes (the client's write reaching the kernel) to the
first packet of the answer (the server's write). A load generator adds its
own delays on top (wrk runs bench/ingest.lua for every response, on the same
2 cores); these are the server's, as any client reading promptly sees them.
One request at a time per connection (no pipelining), as wrk sends them.
Standard library only; classic pcap, Ethernet (DLT_EN10MB, what tcpdump
writes for lo) or Linux cooked (DLT_LINUX_SLL), IPv4."""
import json
import struct
import sys


def packets(path):
    """(time, src port, dst port, payload length) of each TCP segment."""
    with open(path, "rb") as f:
        gh = f.read(24)
        if len(gh) < 24:
            return
        magic = struct.unpack("<I", gh[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            end = "<"
        elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
            end = ">"
        else:
            raise SystemExit("wire_latency: %s is not a pcap file" % path)
        nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
        link = struct.unpack(end + "I", gh[20:24])[0]
        l2 = {1: 14, 113: 16}.get(link)
        if l2 is None:
            raise SystemExit("wire_latency: link type %d not handled" % link)
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, incl, _ = struct.unpack(end + "IIII", h)
            d = f.read(incl)
            if len(d) < l2 + 20 or d[l2 - 2:l2] != b"\x08\x00" or d[l2 + 9] != 6:
                continue  # not IPv4 TCP
            ip = d[l2:]
            ihl = (ip[0] & 15) * 4
            tot = struct.unpack(">H", ip[2:4])[0]
            tcp = ip[ihl:]
            if len(tcp) < 14:
                continue
            sp, dp = struct.unpack(">HH", tcp[:4])
            pay = tot - ihl - (tcp[12] >> 4) * 4
            if pay > 0:
                yield sec + frac / (1e9 if nano else 1e6), sp, dp, pay


def latencies(path, port):
    pending, out = {}, []
    for t, sp, dp, _ in packets(path):
        if dp == port:
            pending.setdefault(sp, t)  # a request's later segments keep its first time
        elif sp == port and dp in pending:
            out.append(t - pending.pop(dp))
    return out


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    lat = sorted(latencies(sys.argv[1], int(sys.argv[2])))
    n = len(lat)
    q = lambda f: round(lat[min(n - 1, int(n * f))] * 1e3, 2) if n else None  # noqa: E731
    print(json.dumps({"n": n, "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "p999_ms": q(0.999),
                      "max_ms": round(lat[-1] * 1e3, 2) if n else None}))


if __name__ == "__main__":
    main()
