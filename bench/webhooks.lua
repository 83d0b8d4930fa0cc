-- wrk script for bench/webhooks.sh: each request is the next pre-signed webhook of the file named by
-- WEBHOOKS_FILE (bench/webhooks_gen.mjs), split between wrk's threads so no MessageSid is sent
-- twice; a thread that runs out stops.  There is no response() callback: its mere presence makes wrk
-- parse every answer's headers and body into Lua, and the load generator shares the machine's cores
-- with the server and the database (wrk counts answers other than 2xx/3xx itself, in
-- summary.errors.status).
local file = os.getenv("WEBHOOKS_FILE")
local threads = tonumber(os.getenv("WEBHOOKS_THREADS") or "2")
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  lines = {}
  local n = 0
  for line in io.lines(file) do
    if n % threads == id then
      lines[#lines + 1] = line
    end
    n = n + 1
  end
  -- wrk calls request() once on its first thread to check the script, and discards that request:
  -- that thread repeats its first line so that no message is left unsent.
  if id == 0 and #lines > 0 then
    table.insert(lines, 1, lines[1])
  end
  pos = 0
end

function request()
  pos = pos + 1
  local line = lines[pos]
  if line == nil then
    wrk.thread:stop()
    line = lines[#lines]
  end
  local tab = line:find("\t", 1, true)
  local sig, body = line:sub(1, tab - 1), line:sub(tab + 1)
  return wrk.format("POST", "/webhooks/twilio/messaging",
    { ["Content-Type"] = "application/x-www-form-urlencoded", ["X-Twilio-Signature"] = sig }, body)
end

-- CPU ticks (user + system) in a /proc stat line: fields 14 and 15, after the command's ")".
local function ticks(path)
  local f = io.open(path)
  if f == nil then return nil end
  local line = f:read("*l")
  f:close()
  local rest = line:match("%) (.*)")
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  return tonumber(fields[12]) + tonumber(fields[13]), line:match("^(%d+)")
end

function done(summary, latency, requests)
  -- done() runs on wrk's main thread once the worker threads have ended: the process's ticks include
  -- theirs, the main thread's own are the set-up (reading and splitting the file for each thread).
  local all, pid = ticks("/proc/self/stat")
  local main = pid and ticks("/proc/self/task/" .. pid .. "/stat")
  -- The same keys as bench_webhook_load's (bench/webhook_load.c): wrk counts answers >= 400 in
  -- errors.status, and its connect/read/write/timeout errors apart.
  local e = summary.errors
  io.write(string.format("wrk requests=%d duration_s=%.2f errors_status=%d errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d mean_ms=%.2f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f workers_cpu_ticks=%d\n",
    summary.requests, summary.duration / 1e6, e.status, e.connect, e.read, e.write, e.timeout, latency.mean / 1000,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    (all and main) and (all - main) or -1))
end
