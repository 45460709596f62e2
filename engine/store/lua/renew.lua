-- Extends the leases this owner still holds before the send's answer (an accepted attempt's
-- lease is its acceptance timeout). ARGV: 4 owner, 5 expiry ms, then ids.
local n = 0
for i = 6, #ARGV do
  local st = getst(ARGV[i])
  if st and (st[SF.phase] == PH.claimed or st[SF.phase] == PH.sending) and st[SF.owner] == ARGV[4] then
    redis.call('ZADD', KEYS[K.leases], 'XX', ARGV[5], ARGV[i])
    n = n + 1
  end
end
return n
