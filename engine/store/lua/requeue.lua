-- Puts leased attempts back in their queue, same attempt (nothing reached the wire, or the
-- channel resends unconfirmed attempts). ARGV[3]: JSON array of [id, attempt, score, guard].
local out = {}
for _, item in ipairs(cjson.decode(ARGV[3])) do
  local id, attempt, guard = item[1], tonumber(item[2]), item[4]
  local st = getst(id)
  local ok = st and st.s == 'l' and st.a == attempt
  if ok and guard == 'expired' then
    local exp = redis.call('ZSCORE', KEYS[5], id)
    ok = exp ~= false and tonumber(exp) <= NOW
  end
  if ok then
    redis.call('ZREM', KEYS[5], id)
    redis.call('ZADD', Q[st.c], string.format('%.0f', item[3]), id)
    setst(id, {s = 'q', a = attempt, c = st.c, p = st.p, d = st.d, pa = st.pa, po = st.po})
    count('leased', -1)
    count('queued', 1)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
flush_counts()
return out
