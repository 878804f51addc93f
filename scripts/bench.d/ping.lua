wrk.method = "GET"
wrk.path = "/ping"
