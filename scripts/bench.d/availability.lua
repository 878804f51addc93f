-- GET /availability over one week, starting on a random day among the seeded bookings' (30 to
-- 90 days ahead, where scripts/bench accepted one booking an hour), as a requester.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local auth = common.auth("BENCH_REQUESTER_TOKEN")
math.randomseed(os.time())
request = function()
  local from = os.time() + (30 + math.random(0, 60)) * 86400
  local path = string.format("/availability?from=%s&to=%s",
    os.date("!%Y-%m-%dT%H:%M:%SZ", from), os.date("!%Y-%m-%dT%H:%M:%SZ", from + 7 * 86400))
  return wrk.format("GET", path, { ["Authorization"] = auth })
end
