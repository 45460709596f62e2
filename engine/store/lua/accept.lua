-- ARGV[3]: JSON array of [id, attempt, correlation id, lease expiry ms, holds slot 0/1, data].
-- The data (parts of a long SMS, the trunk of a call) is kept for the final result.
-- A final event may already have ended the attempt (a fast receipt): then this is a no-op.
local out = {}
for _, item in ipairs(cjson.decode(ARGV[3])) do
  local id = item[1]
  local st = getst(id)
  if st and st.s == 'l' and st.a == tonumber(item[2]) and st.ph == 'sending' then
    st.ph = 'accepted'; st.cid = item[3]; st.aa = NOW; st.hs = tonumber(item[5])
    setst(id, st)
    redis.call('ZADD', KEYS[5], item[4], id)
    if type(item[6]) == 'table' and next(item[6]) ~= nil then
      local cur = redis.call('HGET', KEYS[7], id)
      local merged = cur and cjson.decode(cur) or {}
      for k, v in pairs(item[6]) do merged[k] = v end
      redis.call('HSET', KEYS[7], id, cjson.encode(merged))
    end
    count('c:' .. st.c .. ':accepted', 1)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
flush_counts()
return out
