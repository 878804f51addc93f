-- A calendar program polling a feed: no bearer token, the secret URL is the credential. Every
-- fourth poll revalidates with If-None-Match, as subscribed calendars do (304, no body).
local url = os.getenv("BENCH_FEED_URL")
local etag = os.getenv("BENCH_FEED_ETAG")
local counter = 0
request = function()
  counter = counter + 1
  if counter % 4 == 0 then
    return wrk.format("GET", url, { ["If-None-Match"] = etag })
  end
  return wrk.format("GET", url)
end
