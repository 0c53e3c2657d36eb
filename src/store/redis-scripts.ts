/**
 * Lua scripts of RedisStore. Each runs atomically on the server, so a write and its event can
 * never be separated by a crash of the gateway that sent it.
 *
 * The stored JSON is never re-encoded in Lua: cjson turns an empty array into `{}` and would
 * corrupt `routes: []`. cjson is used only to read `version`.
 */

/**
 * Compare-and-set of one route table.
 * KEYS: endpoint key, endpoints set. ARGV: base version, table JSON, name, channel, event JSON.
 * Returns 1 when written, 0 when the stored version is no longer `base`.
 */
export const UPDATE_ENDPOINT_LUA = `
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
