-- wrk script for bench/predict.sh: POSTs JSON bodies read from a file (one
-- document a line), each request the next body in turn, and prints exact
-- latency percentiles (wrk keeps one bucket per microsecond) on one line.
--
--   wrk -t1 -c64 -d10s -s bench/predict.lua URL -- BODIES.jsonl [API_KEY]
--
-- The requests are formatted once in init(), so request() only hands back a
-- prepared string: the client costs the same for every server measured.

local reqs, n, i = {}, 0, 0
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  local path, key = args[1], args[2]
  if not path then error("predict.lua: pass the bodies file after --") end
  local headers = { ["Content-Type"] = "application/json" }
  if key and key ~= "" then headers["Authorization"] = "Bearer " .. key end
  headers["Host"] = wrk.headers["Host"]
  for line in io.lines(path) do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("POST", wrk.path, headers, line)
    end
  end
  if n == 0 then error("predict.lua: no bodies in " .. path) end
  i = ((id or 0) * 7919) % n -- threads (if more than one) start at different bodies
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f mean_us=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d " ..
    "status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6), latency.mean,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
