-- Token buckets charged all-or-nothing: the arithmetic of gateway/ratelimit/bucket.py.
--
-- KEYS    one hash {tokens, ts (ms)} per bucket
-- ARGV[1] now in milliseconds, or "" to use the server's TIME
-- ARGV[2] TTL in milliseconds set on every key
-- ARGV[3..] per key: rate (tokens per second), burst, cost
--
-- Returns per key {allowed 0/1, remaining, retry_after_ms, reset_after_ms}. remaining is a
-- string because Redis would truncate a Lua number to an integer reply.

local function clock_ms()
  if ARGV[1] ~= '' then
    return tonumber(ARGV[1])
  end
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
end

local function ceil_ms(seconds)
  if seconds <= 0 then
    return 0
  end
  return math.max(1, math.ceil(seconds * 1000 - 1e-6))
end

local function exact(number)
  return string.format('%.17g', number)
end

local now = clock_ms()
local ttl = tonumber(ARGV[2])
local buckets = {}
local allowed = true

for i, key in ipairs(KEYS) do
  local base = 3 * i
  local b = {
    rate = tonumber(ARGV[base]),
    burst = tonumber(ARGV[base + 1]),
    cost = tonumber(ARGV[base + 2]),
  }
  local stored = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(stored[1]), tonumber(stored[2])
  if tokens == nil or ts == nil then
    tokens, ts = b.burst, now
  end
  local elapsed = math.max(0, now - ts) / 1000
  b.tokens = math.min(b.burst, tokens + elapsed * b.rate)
  b.ts = math.max(now, ts)
  if b.cost > b.tokens then
    allowed = false
  end
  buckets[i] = b
end

local result = {}
for i, key in ipairs(KEYS) do
  local b = buckets[i]
  local missing = 0
  if allowed then
    b.tokens = b.tokens - b.cost
  else
    missing = math.max(0, math.min(b.cost, b.burst) - b.tokens)
  end
  redis.call('HSET', key, 'tokens', exact(b.tokens), 'ts', exact(b.ts))
  redis.call('PEXPIRE', key, ttl)
  result[i] = {
    allowed and 1 or 0,
    exact(b.tokens),
    ceil_ms(missing / b.rate),
    ceil_ms((b.burst - b.tokens) / b.rate),
  }
end
return result
