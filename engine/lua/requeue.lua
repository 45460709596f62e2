-- Puts leased attempts back in their queue, same attempt (nothing reached the wire, or the
-- channel resends unconfirmed attempts). ARGV: groups of (id, attempt, score, guard).
local out = {}
for i = 3, #ARGV, 4 do
  local id, attempt, guard = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 3]
  local st = getst(id)
  local ok = st and st.s == 'l' and st.a == attempt
  if ok and guard == 'expired' then
    local exp = redis.call('ZSCORE', KEYS[5], id)
    ok = exp ~= false and tonumber(exp) <= NOW
  end
  if ok then
    redis.call('ZREM', KEYS[5], id)
    redis.call('ZADD', Q[st.c], ARGV[i + 2], id)
    setst(id, {s = 'q', a = attempt, c = st.c, p = st.p})
    count('leased', -1)
    count('queued', 1)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
