-- Each thread walks its own share of the pending bookings, accepting even ids and rejecting
-- odd ones. Seeded bookings never overlap, so every decision of a pending booking is a 200.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local auth = common.auth("BENCH_ADMIN_TOKEN")
local first = tonumber(os.getenv("BENCH_PENDING_FIRST"))
stride = 0
thread_id = 0
local next_id = nil
setup = common.setup
request = function()
  if next_id == nil then next_id = first + thread_id end
  local id = next_id
  next_id = next_id + stride
  local action = (id % 2 == 0) and "/booking/accept" or "/booking/reject"
  return wrk.format("POST", action, { ["Authorization"] = auth, ["Content-Type"] = "application/json" },
    '{"id":' .. id .. ',"note":"bench"}')
end
