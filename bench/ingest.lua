-- wrk script for bench/ingest.sh: posts pre-signed GoHighLevel webhooks
-- round-robin, one distinct webhook per request, and accounts for every answer.
--
-- Environment:
--   INGEST_BODIES  file of "<base64 Ed25519 signature>\t<JSON body>" lines (bench/ingest_sign.py sign)
--   INGEST_ACKED   where done() writes the index of every webhook answered 200 "accepted"
--   INGEST_RESULT  where done() writes "key value" lines (figures for the shell script)
--   INGEST_RATE    if set and not empty: send this many requests/s in all (see "Paced" below)
--   INGEST_ARRIVALS  paced: "poisson" (default) or "even" spacing of the requests
--
-- The bodies are read and each request is built with wrk.format in init()
-- (before wrk starts its clock), so request() builds nothing (paced, it
-- notes when the request's time starts); response() counts statuses and
-- records which webhook each 200 acknowledged (the answer echoes its webhook_id, and the id
-- carries the index). If the run outlasts the bodies the list starts over:
-- those repeats answer 200 "duplicate", are counted as such and are not
-- acknowledgements, and the script warns (give it more bodies).

local CHUNK = 1024
local reqs, n, idx = {}, 0, 0
local hdr = { ["Content-Type"] = "application/json" }

-- per-thread results, fetched by done() through thread:get()
statuses = {}
acked = {}
nacked = 0
dups = 0
wraps = 0
samples = {}

local threads = {}

function setup(thread)
   threads[#threads + 1] = thread
end

function init(args)
   local path = assert(os.getenv("INGEST_BODIES"), "INGEST_BODIES is not set")
   local f = assert(io.open(path, "rb"))
   for line in f:lines() do
      local tab = line:find("\t", 1, true)
      if tab then
         n = n + 1
         hdr["x-ghl-signature"] = line:sub(1, tab - 1)
         local c = math.floor((n - 1) / CHUNK) + 1
         reqs[c] = reqs[c] or {}
         reqs[c][(n - 1) % CHUNK + 1] = wrk.format("POST", nil, hdr, line:sub(tab + 1))
      end
   end
   f:close()
   assert(n > 0, "no webhooks in " .. path)
   -- The collector runs (each response leaves ~1 KB of garbage). Stopped,
   -- as it used to be, the responses' strings piled up in LuaJIT's string
   -- table and wrk stalled for 70-100 ms, which it reported as ehub's
   -- latency (p99.9 57-106 ms while the same requests' times on the wire,
   -- tcpdump on lo, stayed under 35 ms). To keep the collector's steps
   -- short, the requests are held in tables of CHUNK (LuaJIT marks a table's
   -- entries in one step: 200,000 strings, a cache miss each) and their
   -- bodies hash apart (see _b62 in ingest_sign.py).
   -- wrk's p99.9 still shows stalls of 40-60 ms more than the wire's (its
   -- own pauses, and the samples its stats_correct adds for slow answers):
   -- ingest.sh reports both.
   collectgarbage("collect")
end

-- Paced (INGEST_RATE set): the requests follow a schedule of INGEST_RATE
-- slots a second from the first, whatever the answers do, instead of each
-- connection sending again as soon as it is answered. INGEST_ARRIVALS says
-- how slots are spaced: "poisson" (default: random gaps, exponentially
-- distributed, so deliveries bunch now and then as independent senders'
-- do; a fixed seed, so every run gets the same schedule) or "even" (one
-- every 1/RATE s, the gentlest load there is).
--
-- wrk calls delay() when a connection may send again (before its first
-- request too) and waits the ms it returns (its timers have 1 ms steps);
-- delay() aims at the next slot not yet aimed at. request() then takes the
-- next slot not yet taken, and the request is timed from that slot if it
-- goes out late, or from when it goes out if it is on time or early. A
-- connection still waiting for a slow answer cannot send on time: its next
-- request goes out late, and its latency counts from its slot, not from
-- when it went out (the correction for "coordinated omission" that wrk2
-- makes). Numbering slots in request() keeps wrk's timers firing out of
-- order from mixing them up. A reconnect after a socket error (wrk then
-- sends without asking delay()) moves every later request one slot later
-- for good (~0.17 ms at 6,000/s), which hides that much lateness; such a
-- run fails on its errors anyway. Slots never answered -- in flight, or not
-- yet sent, when wrk stopped, or lost to a socket error -- count too, as
-- answered at the stop (done(), below: a lower bound of their latency), so
-- a stall at the end of a run does not vanish. One wrk thread only (-t1):
-- the schedule is the thread's.
local RATE = tonumber(os.getenv("INGEST_RATE") or "")
local POISSON = (os.getenv("INGEST_ARRIVALS") or "poisson") ~= "even"
local slot_us, kd, kr, sched, due_of = nil, 0, 0, {}, {}
-- t0: the schedule's start (CLOCK_MONOTONIC, us), global so done() can read
-- it from the thread (nil until the first delay())
t0 = nil
local slot -- slot(k): the time of slot k (Paced, below)
local SEED = 12345
-- the time from one slot to the next
local function next_gap()
   return POISSON and -math.log(1 - math.random()) * slot_us or slot_us
end
co = {}
nco = 0
local now_us
if RATE then
   assert(RATE > 0, "INGEST_RATE must be a positive number")
   local ffi = require("ffi")
   ffi.cdef [[
      typedef struct { long tv_sec; long tv_nsec; } ingest_timespec;
      int clock_gettime(int clk, ingest_timespec *ts);
   ]]
   local ts = ffi.new("ingest_timespec")
   now_us = function()
      ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
      return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
   end
   slot_us = 1e6 / RATE
   math.randomseed(SEED)
   local last_k, last_due = -1, 0

   -- the time of slot k (k = 0, 1, ...), generated in order and kept only
   -- while delay() or request() may still ask for it
   slot = function(k)
      while last_k < k do
         last_k = last_k + 1
         last_due = last_k == 0 and t0 or last_due + next_gap()
         sched[last_k] = last_due
      end
      local d = sched[k]
      local low = math.min(kd, kr)
      while sched[low - 1] do -- drop what both have passed
         sched[low - 1] = nil
         low = low - 1
      end
      return d
   end

   function delay()
      local now = now_us()
      t0 = t0 or now
      local due = slot(kd)
      kd = kd + 1
      return due > now and math.ceil((due - now) / 1000) or 0
   end

end

function request()
   idx = idx + 1
   if idx > n then
      idx = 1
      wraps = wraps + 1
   end
   -- wrk calls request() once before the run to check it: no slot for that
   if RATE and t0 then
      local now, due = now_us(), slot(kr)
      kr = kr + 1
      due_of[idx] = math.min(now, due)
   end
   return reqs[math.floor((idx - 1) / CHUNK) + 1][(idx - 1) % CHUNK + 1]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status == 200 and body:find('"status":%s*"accepted"') then
      local i = body:match('"webhook_id":%s*"wh%-%w+%-(%d+)"')
      if i then
         nacked = nacked + 1
         i = tonumber(i)
         acked[nacked] = i
         -- the body's index is its line in the file, 0-based: request()'s idx - 1
         local due = RATE and due_of[i + 1]
         if due then
            nco = nco + 1
            co[nco] = now_us() - due
            due_of[i + 1] = nil
         end
         return
      end
   end
   if status == 200 and body:find('"status":%s*"duplicate"') then
      dups = dups + 1
   elseif #samples < 5 then
      samples[#samples + 1] = status .. " " .. body:sub(1, 300)
   end
end

function done(summary, latency, requests)
   assert(not RATE or #threads == 1, "paced (INGEST_RATE) needs one wrk thread: -t1")
   local st, total_acked, total_dups, total_wraps, out_samples, all_co = {}, 0, 0, 0, {}, {}
   local t0_all
   local af = assert(io.open(assert(os.getenv("INGEST_ACKED"), "INGEST_ACKED is not set"), "w"))
   for _, t in ipairs(threads) do
      for code, c in pairs(t:get("statuses")) do st[code] = (st[code] or 0) + c end
      local a = t:get("acked")
      local k = t:get("nacked")
      for j = 1, k do af:write(a[j], "\n") end
      total_acked = total_acked + k
      total_dups = total_dups + t:get("dups")
      total_wraps = total_wraps + t:get("wraps")
      for _, s in ipairs(t:get("samples")) do out_samples[#out_samples + 1] = s end
      local c = t:get("co")
      for j = 1, t:get("nco") do all_co[#all_co + 1] = c[j] end
      t0_all = t:get("t0")
   end
   af:close()

   local r = assert(io.open(assert(os.getenv("INGEST_RESULT"), "INGEST_RESULT is not set"), "w"))
   local function put(k, v) r:write(k, " ", tostring(v), "\n") end
   put("duration_us", summary.duration)
   put("responses", summary.requests)
   put("bytes", summary.bytes)
   put("acked", total_acked)
   put("duplicates", total_dups)
   put("wraps", total_wraps)
   local non2xx = 0
   local codes = {}
   for code, c in pairs(st) do
      codes[#codes + 1] = code .. ":" .. c
      if code < 200 or code > 299 then non2xx = non2xx + c end
   end
   table.sort(codes)
   put("statuses", #codes > 0 and table.concat(codes, ",") or "none")
   put("non2xx", non2xx)
   put("err_connect", summary.errors.connect)
   put("err_read", summary.errors.read)
   put("err_write", summary.errors.write)
   put("err_timeout", summary.errors.timeout)
   put("err_status", summary.errors.status)
   put("lat_min_us", latency.min)
   put("lat_mean_us", string.format("%.1f", latency.mean))
   put("lat_stdev_us", string.format("%.1f", latency.stdev))
   for _, p in ipairs({ 50, 90, 99, 99.9 }) do
      put("lat_p" .. tostring(p):gsub("%.", "_") .. "_us", latency:percentile(p))
   end
   put("lat_max_us", latency.max)
   if RATE and t0_all then
      -- Every slot up to wrk's stop that got no answer (in flight, or never
      -- sent) counts as answered at the stop: a lower bound of its latency.
      -- The stop is the schedule's start plus wrk's run time, a little late
      -- (the run time also covers connecting), which adds only a few slots
      -- whose bound is ~0. Which slots those are is known only roughly (the
      -- answered ones are not always the earliest), so the latest ones are
      -- taken: the bounds come out low, never high.
      local t_end = t0_all + summary.duration
      local dues, x = {}, t0_all
      math.randomseed(SEED) -- the thread's schedule again, as slot() made it
      while x <= t_end do
         dues[#dues + 1] = x
         x = x + next_gap()
      end
      local k = #dues
      -- A request lost to a socket error has no answer, but the send after
      -- the reconnect took a slot of its own without delay(): count the
      -- errors as unanswered too.
      local answered = summary.requests - summary.errors.read - summary.errors.write
      put("co_slots", k)
      put("co_unanswered", math.max(0, k - answered))
      for j = math.max(answered, 0) + 1, k do all_co[#all_co + 1] = t_end - dues[j] end
   end
   if #all_co > 0 then
      -- acknowledged requests timed from their slots (Paced, above), and
      -- the slots never answered
      table.sort(all_co)
      put("co_n", #all_co)
      put("co_rate", os.getenv("INGEST_RATE"))
      put("co_arrivals", POISSON and "poisson" or "even")
      for _, p in ipairs({ 50, 90, 99, 99.9 }) do
         local k = math.max(1, math.ceil(#all_co * p / 100))
         put("co_p" .. tostring(p):gsub("%.", "_") .. "_us", string.format("%.0f", all_co[k]))
      end
      put("co_max_us", string.format("%.0f", all_co[#all_co]))
   end
   for _, s in ipairs(out_samples) do put("sample", (s:gsub("\n", " "))) end
   r:close()
end
