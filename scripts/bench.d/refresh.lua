-- Refresh grant: every request exchanges a refresh token for the next one (POST /token,
-- grant_type=refresh_token). scripts/bench logs in beforehand and writes one independent refresh
-- token per line to BENCH_REFRESH_TOKENS_FILE. Each thread takes its own disjoint share of the
-- lines (line i goes to thread i % stride), keeps them in a queue, pops one per request and
-- pushes back the new token from each answer. A token is sent at most once: if the queue is
-- empty (tokens lost to failed answers), the thread asks GET /healthz instead and counts it as a
-- fallback rather than reuse a token, which would revoke its session.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")
thread_id = 0
stride = 0
-- Per-thread counters, read by done() through thread:get.
tokens = 0      -- refresh tokens this thread started with
refreshed = 0   -- 200 answers carrying a new refresh token
fallbacks = 0   -- GET /healthz sent because the queue was empty
lost = 0        -- answers to a refresh without a new token (a refused or failed refresh)
local queue, head, tail = {}, 1, 0
-- wrk calls request() once in the first thread after init, only to check the request parses,
-- and never sends it (script_verify_request in wrk.c): that call must not take a token.
local verifying = false

local function push(token)
  tail = tail + 1
  queue[tail] = token
end

local function pop()
  if head > tail then return nil end
  local token = queue[head]
  queue[head] = nil
  head = head + 1
  return token
end

local all_threads = {}
setup = function(thread)
  common.setup(thread)
  table.insert(all_threads, thread)
end

init = function(args)
  local i = 0
  for line in io.lines(os.getenv("BENCH_REFRESH_TOKENS_FILE")) do
    if line ~= "" then
      if i % stride == thread_id then push(line) end
      i = i + 1
    end
  end
  tokens = tail
  verifying = thread_id == 0
end

local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
request = function()
  if verifying then
    verifying = false
    return wrk.format("GET", "/healthz")
  end
  local token = pop()
  if token == nil then
    fallbacks = fallbacks + 1
    return wrk.format("GET", "/healthz")
  end
  -- Tokens are base64url: nothing to escape in a form body.
  return wrk.format("POST", "/token", headers, "grant_type=refresh_token&refresh_token=" .. token)
end

response = function(status, _, body)
  local token = status == 200 and body and body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token then
    refreshed = refreshed + 1
    push(token)
  elseif not (status == 200 and body and body:match('^%s*{%s*"status"%s*:%s*"ok"%s*}%s*$')) then
    -- Not a /healthz fallback either: a refresh that gave no token back.
    lost = lost + 1
  end
end

-- Extra fields for report.lua's BENCH line (runs in the main state, after every thread ended).
report_fields = function()
  local t = { tokens = 0, refreshed = 0, fallbacks = 0, lost = 0 }
  for _, thread in ipairs(all_threads) do
    for k in pairs(t) do t[k] = t[k] + (thread:get(k) or 0) end
  end
  return string.format(" tokens=%d refreshed=%d fallbacks=%d lost=%d", t.tokens, t.refreshed, t.fallbacks, t.lost)
end
