-- wrk script for every HTTP variant: POST /sum {"a":1,"b":2}, expected answer 200 {"v":3}.
-- No response() hook on purpose: it would make wrk hand every body to Lua and slow the load
-- generator down. The harness checks the answer once before loading (see http.mjs) and wrk counts
-- non-2xx/3xx statuses itself.
wrk.method = "POST"
wrk.path = "/sum"
wrk.body = '{"a":1,"b":2}'
wrk.headers["Content-Type"] = "application/json"
