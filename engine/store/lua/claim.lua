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
chunked('ZREM', q, ids, 1000)
local states = redis.call('HMGET', KEYS[3], unpack(ids))
local tasks = redis.call('HMGET', KEYS[2], unpack(ids))
local leases, updates = {}, {}
for i, id in ipairs(ids) do
  local st = cjson.decode(states[i])
  st.s = 'l'; st.ph = 'claimed'; st.o = ARGV[7]; st.ca = NOW
  leases[#leases + 1] = ARGV[6]; leases[#leases + 1] = id
  updates[#updates + 1] = id; updates[#updates + 1] = cjson.encode(st)
  out[#out + 1] = id
  out[#out + 1] = tasks[i]
  out[#out + 1] = st.a
end
chunked('ZADD', KEYS[5], leases, 2000)
chunked('HSET', KEYS[3], updates, 2000)
count('queued', -#ids)
count('leased', #ids)
flush_counts()
return out
