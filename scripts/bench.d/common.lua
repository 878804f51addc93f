-- Shared by the wrk scripts: tokens come from the environment that scripts/bench sets.
local M = {}

function M.auth(token)
  return "Bearer " .. os.getenv(token)
end

-- A future event time unique per (thread, counter): one minute slots, a year or more ahead.
function M.event_time(slot)
  local base = os.time() + 400 * 86400
  return os.date("!%Y-%m-%dT%H:%M:%SZ", base + slot * 60)
end

function M.booking_body(thread_id, counter)
  return string.format(
    '{"topic":"Bench %d-%d","event_time":"%s","duration_minutes":30,' ..
    '"address":{"street":"1 Bench Road","city":"Loadtown","state":null,"country":"Japan"},' ..
    '"requested_by":"bench@example.com"}',
    thread_id, counter, M.event_time(thread_id * 10000000 + counter))
end

-- wrk `setup`: numbers the threads from 0 and gives each the stride (thread count), so
-- scripts that walk id ranges take disjoint shares.
local threads = 0
function M.setup(thread)
  thread:set("thread_id", threads)
  thread:set("stride", tonumber(os.getenv("BENCH_THREADS")))
  threads = threads + 1
end

return M
