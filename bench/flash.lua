-- wrk script for checkout.py --mode flash: guest checkouts of one unit each over the variants
-- listed in XIAOPU_BENCH_CHECKOUT (line 1: the shop's slug; then variants: one for a flash
-- round, many for a spread-out one), each with its own Idempotency-Key. It tallies the answers
-- by status (printed by done() as "status <code> <count>") and appends the id of every order
-- answered 201 to XIAOPU_BENCH_IDS, so the run can check each one is stored.
local lines = {}
for line in io.lines(os.getenv("XIAOPU_BENCH_CHECKOUT")) do
  lines[#lines + 1] = line
end
local slug = table.remove(lines, 1)
local threads = {}
local counter = 0
local prefix
local ids
statuses = {} -- a global: done() reads each thread's with thread:get

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  -- A key unique across the run's rounds and threads: this state's address, the time and a
  -- random number.
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  prefix = string.format("%s-%d-%08x", tostring({}):sub(8), os.time(), math.random(0, 0x7fffffff))
  ids = io.open(os.getenv("XIAOPU_BENCH_IDS"), "a")
  ids:setvbuf("line")
end

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

response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 201 then
    ids:write((body:match('"id":"([%x%-]+)"') or "?"), "\n")
  end
end

done = function(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  for status, count in pairs(total) do
    io.write(string.format("status %d %d\n", status, count))
  end
end
