package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local auth = common.auth("BENCH_ADMIN_TOKEN")
local first = tonumber(os.getenv("BENCH_FIRST_ID"))
local count = tonumber(os.getenv("BENCH_ID_COUNT"))
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/booking/" .. (first + math.random(0, count - 1)), { ["Authorization"] = auth })
end
