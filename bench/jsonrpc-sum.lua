-- wrk script for the JSON-RPC variants: POST / {"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1},
-- expected answer 200 {"jsonrpc":"2.0","result":{"v":3},"id":1}. As sum.lua, no response() hook: the
-- harness checks the answer before and after the load (a JSON-RPC error is HTTP 200 too).
wrk.method = "POST"
wrk.path = "/"
wrk.body = '{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}'
wrk.headers["Content-Type"] = "application/json"
