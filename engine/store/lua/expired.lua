-- Leases past their expiry. ARGV: 4 limit. Returns {id, state JSON, task JSON, ...}.
local ids = redis.call('ZRANGEBYSCORE', KEYS[K.leases], '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[K.state], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[K.tasks], id) or ''
end
return out
