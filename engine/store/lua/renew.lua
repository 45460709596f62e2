-- Extends the leases this owner still holds. ARGV: 3 owner, 4 expiry ms, then ids.
local n = 0
for i = 5, #ARGV do
  local st = getst(ARGV[i])
  if st and st.s == 'l' and st.o == ARGV[3] and st.ph ~= 'accepted' then
    redis.call('ZADD', KEYS[5], 'XX', ARGV[4], ARGV[i])
    n = n + 1
  end
end
return n
