wrk.method = "POST"
wrk.path = "/token"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "username=" .. os.getenv("BENCH_LOGIN_USER") .. "&password=" .. os.getenv("BENCH_LOGIN_PASSWORD")
