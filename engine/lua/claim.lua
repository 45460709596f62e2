-- ARGV: 3 channel, 4 max score, 5 limit, 6 lease expiry ms, 7 owner.
-- Claims only while the wave runs: a paused or stopped wave hands out nothing, atomically.
-- Returns {wave state, next score or '', id, task JSON, attempt, ...}.
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' then return {state or 'missing', ''} end
local q = Q[ARGV[3]]
local ids = redis.call('ZRANGEBYSCORE', q, '-inf', ARGV[4], 'LIMIT', 0, tonumber(ARGV[5]))
local out = {'running', ''}
if #ids == 0 then
  local first = redis.call('ZRANGE', q, 0, 0, 'WITHSCORES')
  if first[2] then out[2] = first[2] end
  return out
end
for _, id in ipairs(ids) do
  redis.call('ZREM', q, id)
  redis.call('ZADD', KEYS[5], ARGV[6], id)
  local st = getst(id)
  st.s = 'l'; st.ph = 'claimed'; st.o = ARGV[7]; st.ca = NOW
  setst(id, st)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id)
  out[#out + 1] = st.a
end
count('queued', -#ids)
count('leased', #ids)
return out
