-- Records one part's final receipt of a multipart message.
-- ARGV: 3 id, 4 attempt, 5 part id, 6 outcome, 7 parts expected, 8 policy (all | first).
-- Returns {done 0/1, outcome to record}: the worst part decides ("delivered" only if all were).
local st = getst(ARGV[3])
if not st or st.s ~= 'l' or st.a ~= tonumber(ARGV[4]) then return {0, ''} end
local raw = redis.call('HGET', KEYS[12], ARGV[3])
local parts = raw and cjson.decode(raw) or {}
parts[ARGV[5]] = ARGV[6]
redis.call('HSET', KEYS[12], ARGV[3], cjson.encode(parts))
local n, worst = 0, 'delivered'
for _, o in pairs(parts) do
  n = n + 1
  if o ~= 'delivered' then worst = o end
end
if ARGV[8] == 'first' or n >= tonumber(ARGV[7]) then return {1, worst} end
return {0, ''}
