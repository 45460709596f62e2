-- ARGV: groups of (id, attempt, correlation id, lease expiry ms, holds slot 0/1).
-- A final event may already have ended the attempt (a fast receipt): then this is a no-op.
local out = {}
for i = 3, #ARGV, 5 do
  local id = ARGV[i]
  local st = getst(id)
  if st and st.s == 'l' and st.a == tonumber(ARGV[i + 1]) and st.ph == 'sending' then
    st.ph = 'accepted'; st.cid = ARGV[i + 2]; st.aa = NOW; st.hs = tonumber(ARGV[i + 4])
    setst(id, st)
    redis.call('ZADD', KEYS[5], ARGV[i + 3], id)
    count('c:' .. st.c .. ':accepted', 1)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
