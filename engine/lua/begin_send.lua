-- The point of no return is right after this script says 1 for a task.
-- ARGV: 3 owner, 4 lease expiry ms, then groups of (id, attempt, target).
-- Returns {wave state, flag per task}; nothing is marked unless the wave runs.
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' then return {state or 'missing'} end
local out = {'running'}
local sent = 0
for i = 5, #ARGV, 3 do
  local id = ARGV[i]
  local st = getst(id)
  if st and st.s == 'l' and st.o == ARGV[3] and st.a == tonumber(ARGV[i + 1]) and st.ph == 'claimed' then
    st.ph = 'sending'; st.sa = NOW; st.tg = ARGV[i + 2]
    setst(id, st)
    redis.call('ZADD', KEYS[5], ARGV[4], id)
    emit(record('dispatched', id, st, nil, false, nil))
    count('c:' .. st.c .. ':sent', 1)
    sent = sent + 1
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if sent > 0 then count('sent', sent) end
return out
