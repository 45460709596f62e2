-- The point of no return is right after this script says 1 for a task.
-- ARGV: 3 owner, 4 lease expiry ms, 5 JSON array of [id, attempt, target].
-- Returns {wave state, flag per task}; nothing is marked unless the wave runs.
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' then return {state or 'missing'} end
local items = cjson.decode(ARGV[5])
local ids = {}
for i, item in ipairs(items) do ids[i] = item[1] end
local states = redis.call('HMGET', KEYS[3], unpack(ids))
local out = {'running'}
local leases, updates = {}, {}
for i, item in ipairs(items) do
  local id = item[1]
  local st = states[i] and cjson.decode(states[i])
  if st and st.s == 'l' and st.o == ARGV[3] and st.a == tonumber(item[2]) and st.ph == 'claimed' then
    st.ph = 'sending'; st.sa = NOW; st.tg = item[3]
    updates[#updates + 1] = id; updates[#updates + 1] = cjson.encode(st)
    leases[#leases + 1] = ARGV[4]; leases[#leases + 1] = id
    emit(record('dispatched', id, st, nil, false, nil))
    count('c:' .. st.c .. ':sent', 1)
    count('sent', 1)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if #updates > 0 then
  chunked('HSET', KEYS[3], updates, 2000)
  chunked('ZADD', KEYS[5], leases, 2000)
end
flush_counts()
return out
