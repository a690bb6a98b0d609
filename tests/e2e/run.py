#!/usr/bin/env python3
"""Runs ehub's end-to-end tests: every test_* function in tests/e2e/test_*.py.

Each module gets one shared server (t.srv), started with the store given on
the command line; tests that need their own server call t.new_server().
Prints one line per test and ends with "<label>: N passed, N failed"."""
import argparse
import importlib.util
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import Server  # noqa: E402


class Ctx:
    def __init__(self, opts):
        self.opts = opts
        self.binary = opts.binary
        self.store = opts.store
        self.redis = opts.redis
        self.slow = opts.slow
        self.backend = "postgres" if opts.store and opts.store.startswith("postgres") else "sqlite"
        self.srv = None
        self.extra_servers = []

    def new_server(self, extra=(), env=None, store="default", start=True, name="extra", cwd=None):
        s = Server(self.binary, store=self.store if store == "default" else store, extra=extra,
                   env=env, slow=self.slow, logs_dir=self.opts.logs, name=name, cwd=cwd)
        self.extra_servers.append(s)
        if start:
            s.start()
        return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--store")
    ap.add_argument("--redis")
    ap.add_argument("--label", default="e2e")
    ap.add_argument("--logs", default="build/test-logs")
    ap.add_argument("--slow", type=float, default=1.0, help="timeout multiplier (sanitizer builds)")
    ap.add_argument("-k", help="run only tests whose module.name contains this")
    opts = ap.parse_args()
    os.makedirs(opts.logs, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    passed = failed = 0
    for fn in sorted(os.listdir(here)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        spec = importlib.util.spec_from_file_location(fn[:-3], os.path.join(here, fn))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        tests = [(n, getattr(mod, n)) for n in dir(mod) if n.startswith("test_") and callable(getattr(mod, n))]
        tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
        if opts.k:
            tests = [t for t in tests if opts.k in fn[:-3] + "." + t[0]]
        if not tests:
            continue
        t = Ctx(opts)
        try:
            t.srv = Server(opts.binary, store=opts.store, extra=getattr(mod, "SERVER_ARGS", ()),
                           slow=opts.slow, logs_dir=opts.logs, name=fn[:-3]).start()
        except Exception as e:  # the whole module fails
            for name, _ in tests:
                print("FAIL %s.%s: server did not start: %s" % (fn[:-3], name, e))
                failed += 1
            continue
        for name, f in tests:
            t0 = time.time()
            started = len(t.extra_servers)
            try:
                f(t)
                print("ok   %s.%s (%.2fs)" % (fn[:-3], name, time.time() - t0))
                passed += 1
            except Exception as e:
                print("FAIL %s.%s: %s" % (fn[:-3], name, e))
                traceback.print_exc(limit=3, file=sys.stdout)
                failed += 1
                # a failed test's servers would go on taking work from the
                # store the next tests share, and fail them too
                for s in t.extra_servers[started:]:
                    if s.proc and s.proc.poll() is None:
                        s.stop()
            sys.stdout.flush()
        servers = [t.srv] + t.extra_servers
        for s in servers:
            if s.proc and s.proc.poll() is None:
                s.stop()
        # A sanitizer report anywhere in a module's servers is a failure of its own.
        errs = [e for s in servers for e in s.sanitizer_errors()]
        if errs:
            print("FAIL %s.sanitizers: %s" % (fn[:-3], errs[0]))
            failed += 1
        else:
            passed += 1
            print("ok   %s.sanitizers_clean" % fn[:-3])
    print("%s: %d passed, %d failed" % (opts.label, passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
