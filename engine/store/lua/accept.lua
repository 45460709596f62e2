-- The peer took the attempt: it waits for its final event until the lease (the acceptance
-- timeout) expires. A final event may already have ended it (a fast receipt): then a no-op.
-- ARGV[4]: JSON array of [id, attempt, correlation id, lease expiry ms, holds slot 0/1, data];
-- the data (parts of a long SMS, the trunk of a call) is kept for the final result.
local out = {}
for _, item in ipairs(cjson.decode(ARGV[4])) do
  local id = item[1]
  local st = getst(id)
  if st and st[SF.phase] == PH.sending and st[SF.attempt] == tonumber(item[2]) then
    st[SF.phase] = PH.accepted; st[SF.correlation] = item[3]; st[SF.accepted_at] = NOW
    st[SF.holds_slot] = tonumber(item[5])
    setst(id, st)
    redis.call('ZADD', KEYS[K.leases], item[4], id)
    if type(item[6]) == 'table' and next(item[6]) ~= nil then
      local cur = redis.call('HGET', KEYS[K.data], id)
      local merged = cur and cjson.decode(cur) or {}
      for k, v in pairs(item[6]) do merged[k] = v end
      redis.call('HSET', KEYS[K.data], id, cjson.encode(merged))
    end
    count(CNT_CHANNEL_ACCEPTED(st[SF.channel]), 1)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
flush_counts()
return out
