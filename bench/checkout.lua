-- wrk script: guest checkouts of one line each, spread over the seeded variants, each with its
-- own Idempotency-Key (a retry would replay instead of ordering again).
local lines = {}
for line in io.lines(os.getenv("XIAOPU_BENCH_CHECKOUT")) do
  lines[#lines + 1] = line
end
local slug = table.remove(lines, 1)
local counter = 0
local prefix = tostring({}):sub(8) .. "-" .. tostring(os.time())

request = function()
  counter = counter + 1
  local variant = lines[(counter % #lines) + 1]
  local body = '{"shop_slug":"' .. slug .. '","items":[{"variant_id":"' .. variant ..
    '","quantity":1}],"address":{"recipient":"王小明","phone":"13800138000",' ..
    '"province":"云南省","city":"昆明市","line1":"青年路 88 号"}}'
  return wrk.format("POST", "/v1/orders", {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. "-" .. counter,
  }, body)
end
