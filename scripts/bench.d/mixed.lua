-- 80 % reads (list and get), 15 % submits, 5 % decisions.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local admin = common.auth("BENCH_ADMIN_TOKEN")
local requester = common.auth("BENCH_REQUESTER_TOKEN")
local first = tonumber(os.getenv("BENCH_FIRST_ID"))
local count = tonumber(os.getenv("BENCH_ID_COUNT"))
local pending_first = tonumber(os.getenv("BENCH_MIXED_PENDING_FIRST"))
thread_id = 0
stride = 0
local counter = 0
local decided = 0
setup = common.setup
request = function()
  counter = counter + 1
  local roll = math.random(1, 100)
  if roll <= 40 then
    return wrk.format("GET", "/booking?limit=50", { ["Authorization"] = admin })
  elseif roll <= 80 then
    return wrk.format("GET", "/booking/" .. (first + math.random(0, count - 1)), { ["Authorization"] = admin })
  elseif roll <= 95 then
    return wrk.format("POST", "/booking", { ["Authorization"] = requester, ["Content-Type"] = "application/json" },
      common.booking_body(100 + thread_id, counter))
  else
    local id = pending_first + thread_id + decided * stride
    decided = decided + 1
    return wrk.format("POST", "/booking/reject", { ["Authorization"] = admin, ["Content-Type"] = "application/json" },
      '{"id":' .. id .. '}')
  end
end
