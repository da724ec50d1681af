-- wrk script for tests/bench --queries: GET requests of the query API, each thread going
-- round the paths tests/bench/queries.py wrote for it; every answer should be a 200.
--
-- Usage: wrk -t2 -c32 -d10s -s query_paths.lua http://127.0.0.1:PORT/ -- NONCE ACKS PATHS
--   NONCE    unused; there for load.py's argument order.
--   ACKS     path prefix: thread N writes ACKS.N, empty (a query acknowledges nothing).
--   PATHS    path prefix: thread N reads PATHS.N, one path per line.
-- It prints RESULT, THREAD and STATUS lines for tests/bench/load.py.

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  acks_path = args[2] .. "." .. tid
  paths = {}
  for line in io.lines(args[3] .. "." .. tid) do
    paths[#paths + 1] = line
  end
  assert(#paths > 0, "no paths for thread " .. tid)
  sent = 0
  statuses = {}
end

function request()
  sent = sent + 1
  return wrk.format("GET", paths[(sent - 1) % #paths + 1])
end

function response(status, headers, body)
  if status ~= 200 then
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local file = assert(io.open(thread:get("acks_path"), "w"))
    file:close()
    io.write(string.format("THREAD tid=%d sent=%d acked=0\n", thread:get("tid"), thread:get("sent")))
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("STATUS code=%d count=%d\n", status, count))
    end
  end
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d "
      .. "connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, errors.connect,
    errors.read, errors.write, errors.timeout))
end
