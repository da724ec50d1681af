-- wrk script for tests/bench --cancel: every request cancels a different open order, taken
-- in turn from the (user, order) pairs tests/bench/cancel.py prepared for this thread, so
-- every request should be a 202 (a second cancel of one order would be a 409).
--
-- Usage: wrk -t2 -c32 -d10s -s cancel_order.lua http://127.0.0.1:PORT/ -- NONCE ACKS TARGETS
--   NONCE    unused (the pairs are new for every run); there for load.py's argument order.
--   ACKS     path prefix: thread N writes ACKS.N, one line per 202: "aggregate_id version"
--            taken from the response body.
--   TARGETS  path prefix: thread N reads TARGETS.N, one "user_id order_id" line per request,
--            in the order to send them. Past the last line it starts again (those requests
--            are 409s, and the run fails its audit): the preparation sizes the file so that
--            this does not happen.
-- It prints RESULT, THREAD and STATUS lines for tests/bench/load.py.

local threads = {}
local thread_count = 0
local headers = { ["Content-Type"] = "application/json" }

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  acks_path = args[2] .. "." .. tid
  targets = {}
  for line in io.lines(args[3] .. "." .. tid) do
    local user, order = string.match(line, "^(%S+) (%S+)$")
    targets[#targets + 1] = '{"user_id":"' .. user .. '","order_id":"' .. order
      .. '","reason":"benchmark"}'
  end
  assert(#targets > 0, "no targets for thread " .. tid)
  sent = 0
  acked = {}
  statuses = {}
end

function request()
  sent = sent + 1
  local body = targets[(sent - 1) % #targets + 1]
  return wrk.format("POST", "/api/commands/order/cancel", headers, body)
end

function response(status, headers, body)
  if status == 202 then
    local aggregate = string.match(body, '"aggregate_id":"([^"]*)"') or "-"
    local version = string.match(body, '"version":(%d+)') or "-"
    acked[#acked + 1] = aggregate .. " " .. version
  else
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local lines = thread:get("acked")
    local file = assert(io.open(thread:get("acks_path"), "w"))
    file:write(table.concat(lines, "\n"))
    if #lines > 0 then file:write("\n") end
    file:close()
    io.write(string.format("THREAD tid=%d sent=%d acked=%d\n",
      thread:get("tid"), thread:get("sent"), #lines))
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
