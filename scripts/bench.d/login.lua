-- POST /token, rotating over BENCH_LOGIN_USERS users so that no username has more than a
-- couple of logins in flight (the throttle checks at most 5 at once per username).
local prefix = os.getenv("BENCH_LOGIN_PREFIX")
local users = tonumber(os.getenv("BENCH_LOGIN_USERS"))
local password = os.getenv("BENCH_LOGIN_PASSWORD")
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local counter = 0

request = function()
  counter = counter + 1
  local body = "username=" .. prefix .. ((counter % users) + 1) .. "&password=" .. password
  return wrk.format("POST", "/token", headers, body)
end
