-- The floor peer's workload: TechEmpower's "single database query" test, GET /db (no auth).
wrk.method = "GET"
wrk.path = "/db"
