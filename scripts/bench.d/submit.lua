package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local auth = common.auth("BENCH_REQUESTER_TOKEN")
local threads = 0
thread_id = 0
local counter = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
request = function()
  counter = counter + 1
  return wrk.format("POST", "/booking", { ["Authorization"] = auth, ["Content-Type"] = "application/json" },
    common.booking_body(thread_id, counter))
end
