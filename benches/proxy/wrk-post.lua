-- wrk script for benches/proxy/run.sh: POSTs a JSON chat completions request and prints
-- exact results as `metric value` lines.
--
-- Usage: WRK_BODY=requests/chat.json WRK_API_KEY=sk-bench wrk -s wrk-post.lua URL
-- (`done` reports latency percentiles in microseconds, throughput over the whole run, and
-- every kind of error wrk counts: connect, read, write, timeout and non-2xx/3xx status.)

local path = os.getenv("WRK_BODY") or error("set WRK_BODY to the request body file")
local file = assert(io.open(path, "rb"))
local body = file:read("*a")
file:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("WRK_API_KEY") or "sk-bench")

-- Every `{{n}}` in the body becomes a value unique to each request (WRK_RUN, which run.sh sets
-- anew for every wrk run, then the thread id and a per-thread counter), so no request repeats
-- another's user message, not even one of an earlier run against the same gateway: a gateway
-- that caches the scans of texts it has seen is measured scanning each new message, as in
-- production, while the system prompt (no placeholder) repeats, as in production too.
local head, tail = body:match("^(.-){{n}}(.*)$")
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local counter = 0
run_id = os.getenv("WRK_RUN") or tostring(os.time())
if head then
  function request()
    counter = counter + 1
    local n = run_id .. "-" .. tostring(tid or 0) .. "-" .. tostring(counter)
    return wrk.format(nil, nil, nil, head .. n .. tail:gsub("{{n}}", n))
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format("wrk_requests %d\n", summary.requests))
  io.write(string.format("wrk_rps %.0f\n", summary.requests / seconds))
  io.write(string.format("wrk_p50_us %d\n", latency:percentile(50)))
  io.write(string.format("wrk_p99_us %d\n", latency:percentile(99)))
  io.write(string.format("wrk_errors %d\n", e.connect + e.read + e.write + e.status + e.timeout))
end
