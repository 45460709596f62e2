-- Adds data from a non-final event (DTMF, step reached) to a leased attempt.
-- ARGV: 3 id, 4 attempt, 5 data JSON. Returns 1 when stored.
local st = getst(ARGV[3])
if not st or st.s ~= 'l' or st.a ~= tonumber(ARGV[4]) then return 0 end
local cur = redis.call('HGET', KEYS[7], ARGV[3])
local merged = cur and cjson.decode(cur) or {}
for k, v in pairs(cjson.decode(ARGV[5])) do merged[k] = v end
redis.call('HSET', KEYS[7], ARGV[3], cjson.encode(merged))
return 1
