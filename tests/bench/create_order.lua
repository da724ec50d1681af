-- wrk script for tests/bench: every request places an order for a user never seen before,
-- so no two requests share a stream (pure durable-append throughput), and every 202 is
-- written down for the audit that follows the run.
--
-- Usage: wrk -t2 -c32 -d10s -s create_order.lua http://127.0.0.1:PORT/ -- NONCE ACKS
--   NONCE  new for every run: it is in every user id, so runs never collide.
--   ACKS   path prefix: thread N writes ACKS.N, one line per 202: "aggregate_id version"
--          taken from the response body, or "- -" when the body names neither.
-- User ids: u-RRRRRRRR-NONCE-THREAD-N, where R is random hex that spreads new streams over
-- the whole aggregate_id index (as real users do) instead of appending at one end of it.
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
  nonce = args[1]
  acks_path = args[2] .. "." .. tid
  sent = 0
  acked = {}
  statuses = {}
  math.randomseed(os.time() * 1000 + tid)
end

function request()
  sent = sent + 1
  local spread = string.format("%04x%04x", math.random(0, 65535), math.random(0, 65535))
  local user = string.format("u-%s-%s-%d-%d", spread, nonce, tid, sent)
  local body = '{"user_id":"' .. user .. '","product_id":"prod_456","quantity":2,"total_price":150.0}'
  return wrk.format("POST", "/api/commands/order/create", headers, body)
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
