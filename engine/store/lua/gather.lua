-- Adds data from a non-final event (DTMF, step reached) to a leased attempt.
-- ARGV: 4 id, 5 attempt, 6 data JSON. Returns 1 when stored.
local st = getst(ARGV[4])
if not st or not leased(st) or st[SF.attempt] ~= tonumber(ARGV[5]) then return 0 end
local cur = redis.call('HGET', KEYS[K.data], ARGV[4])
local merged = cur and cjson.decode(cur) or {}
for k, v in pairs(cjson.decode(ARGV[6])) do merged[k] = v end
redis.call('HSET', KEYS[K.data], ARGV[4], cjson.encode(merged))
return 1
