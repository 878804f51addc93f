package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local auth = common.auth("BENCH_REQUESTER_TOKEN")
thread_id = 0
local counter = 0
setup = common.setup
request = function()
  counter = counter + 1
  return wrk.format("POST", "/booking", { ["Authorization"] = auth, ["Content-Type"] = "application/json" },
    common.booking_body(thread_id, counter))
end
