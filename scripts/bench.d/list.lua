-- BENCH_TOKEN_VAR names the variable holding the token (admin or requester).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")
wrk.method = "GET"
wrk.path = "/booking?limit=50"
wrk.headers["Authorization"] = common.auth(os.getenv("BENCH_TOKEN_VAR"))
