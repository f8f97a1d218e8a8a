-- wrk script: spread requests over the seeded share codes, as a browser in a chat app would.
local codes = {}
for line in io.lines(os.getenv("XIAOPU_BENCH_CODES")) do
  codes[#codes + 1] = line
end
local counter = 0
request = function()
  counter = counter + 1
  local code = codes[(counter % #codes) + 1]
  return wrk.format("GET", "/s/" .. code, {
    ["User-Agent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 MicroMessenger/8.0",
  })
end
