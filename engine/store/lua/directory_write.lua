-- Writes phones' directory hashes (after common.lua), each with its TTL renewed: intake's loads
-- and the last contacts of attempts that reached the wire, a batch in one call on a single Redis
-- (a pipeline of an HSET and an EXPIRE per phone cost the dispatcher more than the rest of a
-- finished attempt's bookkeeping).
-- ARGV[1]: TTL s. ARGV[2]: JSON array of [key, field, value, field, value, ...]. Returns how many.
-- The TTL stays a string: a Lua number given to redis.call is printed with snprintf each time.
local ttl = ARGV[1]
local items = cjson.decode(ARGV[2])
for _, item in ipairs(items) do
  local key = item[1]
  redis.call('HSET', key, unpack(item, 2))
  redis.call('EXPIRE', key, ttl)
end
return #items
