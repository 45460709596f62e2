-- Reserves the caps of a batch of attempts (after common.lua). ARGV[1]: JSON array of
-- [key, field, counters, limits, conversation] with conversation = null or
-- [field, counters, limits]: the conversation hold an IVR call takes when it could offer an
-- operator. A field already held (a repeated call for the same claim) is granted again without
-- counting twice; a field already settled belongs to a claim that is over, and is refused.
-- On a Redis Cluster each call carries one debtor, whose keys share its hash tag.
-- Returns per item {granted 0/1, conversation hold 0/1}.
local function take(key, field, counters, limits)
  local raw = redis.call('HGET', key, field)
  if raw then return reservation_held(cjson.decode(raw)) and 1 or 0 end
  local used = redis.call('MGET', counters[1], counters[2], counters[3])
  for j = 1, 3 do
    if tonumber(used[j] or '0') >= limits[j] then return 0 end
  end
  for j = 1, 3 do
    if redis.call('INCR', counters[j]) == 1 then redis.call('EXPIRE', counters[j], CAP_TTL[j]) end
  end
  redis.call('HSET', key, field, cjson.encode({[RES.counters] = counters, [RES.held] = true}))
  redis.call('EXPIRE', key, RES_TTL)
  return 1
end

local out = {}
for _, item in ipairs(cjson.decode(ARGV[1])) do
  local granted = take(item[1], item[2], item[3], item[4])
  local conv = 0
  if granted == 1 and type(item[5]) == 'table' then
    conv = take(item[1], item[5][1], item[5][2], item[5][3])
  end
  out[#out + 1] = {granted, conv}
end
return out
