-- wrk script for bench/scale.py: prints p50, p95, p99 (µs), requests and errors on one line.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SCALE %d %d %d %d %d\n", latency:percentile(50),
    latency:percentile(95), latency:percentile(99), summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout))
end
