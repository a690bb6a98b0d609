"""What the callgrind benchmarks (ingest_callgrind.py, nurture_callgrind.py)
share: a fresh store set up by the CLI, `ehub serve` under
`valgrind --tool=callgrind` waited for until /ready, and the run's total
instruction count read back from the callgrind output."""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cli(binary, data, *args):
    """Runs `BINARY ARGS --data-dir DATA` (the default SQLite store there);
    its last line of output, as JSON."""
    r = subprocess.run([binary] + list(args) + ["--data-dir", data], capture_output=True, text=True, timeout=120)
    if r.returncode:
        sys.exit("cli %s: %s" % (args, r.stderr))
    return json.loads(r.stdout.strip().splitlines()[-1])


def tenant_with_key(binary, data, slug="cg"):
    """A tenant and an admin API key for it, on a fresh store."""
    cli(binary, data, "tenant", "add", slug, "callgrind")
    return cli(binary, data, "key", "create", "admin", slug, "--tenant", slug)["key"]


def serve(binary, data, out, extra=()):
    """`ehub serve` on a free port under callgrind (writing OUT), once it
    answers /ready: (process, port)."""
    port = free_port()
    srv = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, binary, "serve",
                            "--host", "127.0.0.1", "--port", str(port), "--data-dir", data, "--log-level", "warn"]
                           + list(extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.time() + 120
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("GET", "/ready")
            if c.getresponse().status == 200:
                return srv, port
        except OSError:
            pass
        if time.time() > end or srv.poll() is not None:
            srv.kill()
            sys.exit("server did not start")
        time.sleep(0.5)


def total(out):
    """The run's total instructions (all threads) from a callgrind output."""
    n = None
    with open(out) as f:
        for line in f:
            m = re.match(r"(summary|totals): (\d+)", line)
            if m:
                n = int(m.group(2))
    return n
