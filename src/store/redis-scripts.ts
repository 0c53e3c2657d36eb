/**
 * Lua scripts of RedisStore. Each runs atomically on the server, so a write and its event can
 * never be separated by a crash of the gateway that sent it.
 *
 * The stored JSON is never re-encoded in Lua: cjson turns an empty array into `{}` and would
 * corrupt `routes: []`. cjson is used only to read `version`.
 */

/**
 * Compare-and-set of one route table.
 * KEYS: endpoint key, endpoints set, controller lease key. ARGV: base version, table JSON, name,
 * channel, event JSON, fence (the lease value the writer holds, or '' for an unfenced write).
 * Returns 1 when written, 0 when the stored version is no longer `base`, -1 when the writer's
 * fence no longer matches the lease (a controller that lost leadership).
 */
export const UPDATE_ENDPOINT_LUA = `
if ARGV[6] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[6] then return -1 end
local cur = redis.call('GET', KEYS[1])
local v = 0
if cur then
  local ok, obj = pcall(cjson.decode, cur)
  if ok and type(obj) == 'table' and type(obj.version) == 'number' then v = obj.version else v = -1 end
end
if v ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
`;

/**
 * Deletes a route table with its token metadata.
 * KEYS: endpoint key, endpoints set, endpoint-tokens set. ARGV: token key prefix, name, channel,
 * event JSON. Token keys are derived inside the script (single-instance Redis only, as the
 * rest of the layout). Returns 1 when anything existed.
 */
export const DELETE_ENDPOINT_LUA = `
local existed = redis.call('DEL', KEYS[1])
local member = redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('TYPE', KEYS[3]).ok == 'set' then
  local jtis = redis.call('SMEMBERS', KEYS[3])
  for _, jti in ipairs(jtis) do redis.call('DEL', ARGV[1] .. jti) end
end
redis.call('DEL', KEYS[3])
if existed == 1 or member == 1 then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
return 0
`;

/**
 * Controller lease (leadership.ts). The value is "<fencing number>:<holder id>"; the fencing
 * number comes from INCR of a counter that never goes back, so every new term has a larger one.
 * KEYS: lease key, fence counter key. ARGV: holder id, ttl ms.
 * Returns the lease value when held by ARGV[1] after the call (taken or renewed), else false.
 */
export const ACQUIRE_LEASE_LUA = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local holder = string.match(cur, '^%d+:(.*)$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return cur
  end
  return false
end
local n = redis.call('INCR', KEYS[2])
local value = n .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2], 'NX')
return value
`;

/** KEYS: lease key. ARGV: lease value, ttl ms. Returns 1 when renewed, 0 when lost. */
export const RENEW_LEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

/** KEYS: lease key. ARGV: lease value. Deletes the lease only if still ours. */
export const RELEASE_LEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * The leader's published observed state of a service, fenced like route tables.
 * KEYS: status key, lease key, service record key. ARGV: status JSON, fence.
 * Returns 1 when written, -1 when fenced out, 0 when the service record is gone.
 */
export const PUT_SERVICE_STATUS_LUA = `
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[2] then return -1 end
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
`;
