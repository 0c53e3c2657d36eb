/**
 * Lua scripts of the distributed limits (layout in docs/redis-schema.md). Each is one round trip
 * and atomic on the server.
 */

/**
 * Leased slots (Redis in Action §6.3, "fair semaphore" without the counter): one sorted set per
 * route, member = lease id, score = lease expiry (ms). Expired leases are dropped first, so a
 * crashed instance's slots come back by themselves when their lease runs out.
 * KEYS: slot sets of candidate routes, in preference order. ARGV: now ms, ttl ms, cap, lease id.
 * Returns the 1-based index of the route that gave a slot, or 0 when every one is full.
 */
export const ACQUIRE_SLOT_LUA = `
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) < cap then
    redis.call('ZADD', key, now + ttl, ARGV[4])
    redis.call('PEXPIRE', key, ttl * 2)
    return i
  end
end
return 0
`;

/**
 * GCRA (the redis-cell / throttled design) over several limiters at once: all are checked before
 * any is charged, so a request refused by one limit costs nothing on the others.
 * KEYS: one per limiter (value = theoretical arrival time, ms). ARGV: now ms, then per limiter
 * emission interval ms (period / limit), burst window ms (the period), cost.
 * Returns {allowed (1|0), then per limiter: µs until the cost would fit (0 when it fits now), µs
 * of the window in use after this request} (µs: Redis turns Lua numbers into integers).
 */
export const GCRA_LUA = `
local now = tonumber(ARGV[1])
local n = #KEYS
local tats = {}
local out = {1}
local allowed = 1
for i = 1, n do
  local interval = tonumber(ARGV[2 + (i - 1) * 3])
  local window = tonumber(ARGV[3 + (i - 1) * 3])
  local cost = tonumber(ARGV[4 + (i - 1) * 3])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local wait = new_tat - now - window
  if cost == 0 then wait = tat - now - window + interval end
  if wait > 0 then
    allowed = 0
    out[2 + (i - 1) * 2] = math.ceil(wait * 1000)
  else
    out[2 + (i - 1) * 2] = 0
  end
  tats[i] = new_tat
  out[3 + (i - 1) * 2] = math.ceil((new_tat - now) * 1000)
end
out[1] = allowed
if allowed == 1 then
  for i = 1, n do
    local window = tonumber(ARGV[3 + (i - 1) * 3])
    redis.call('SET', KEYS[i], tostring(tats[i]), 'PX', math.ceil(tats[i] - now + window))
  end
end
return out
`;

/**
 * Settles a token reservation with the metered usage: moves the limiter's arrival time by
 * `delta` units (negative refunds), never below now.
 * KEYS: limiter. ARGV: now ms, emission interval ms, window ms, delta.
 */
export const GCRA_SETTLE_LUA = `
local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + tonumber(ARGV[4]) * tonumber(ARGV[2])
if tat <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now + tonumber(ARGV[3])))
return 1
`;
