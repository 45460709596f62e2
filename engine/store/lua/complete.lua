-- A running wave with nothing queued or in flight is completed. KEYS: 1 meta, 2 counts.
-- ARGV: 1 now ms. Returns 1 when it completed now.
if redis.call('HGET', KEYS[1], META.STATE) ~= WS.RUNNING then return 0 end
local c = redis.call('HMGET', KEYS[2], CNT.TOTAL, CNT.QUEUED, CNT.LEASED)
local total, queued, leased = tonumber(c[1] or 0), tonumber(c[2] or 0), tonumber(c[3] or 0)
if total > 0 and queued <= 0 and leased <= 0 then
  redis.call('HSET', KEYS[1], META.STATE, WS.COMPLETED, WS.COMPLETED .. '_at', ARGV[1])
  return 1
end
return 0
