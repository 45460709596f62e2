-- Removes outbox entries once their settlement was applied in the debtor's slot, unless a newer
-- settlement of the same reservation replaced them meanwhile. ARGV[4]: JSON array of [field, seq].
local n = 0
for _, item in ipairs(cjson.decode(ARGV[4])) do
  local raw = redis.call('HGET', KEYS[K.outbox], item[1])
  if raw and cjson.decode(raw)[5] == tonumber(item[2]) then
    redis.call('HDEL', KEYS[K.outbox], item[1])
    n = n + 1
  end
end
return n
