-- Records final receipts of parts of multipart messages, a batch at a time.
-- ARGV[4]: JSON array of [id, attempt, part id, outcome, parts expected, policy (all | first)].
-- Returns {done 0/1, outcome to record} per item, in order: the worst part decides
-- ("delivered" only if all were). Two parts of one message in one batch are applied in turn.
local out = {}
for _, item in ipairs(cjson.decode(ARGV[4])) do
  local id = item[1]
  local st = getst(id)
  if not st or not leased(st) or st[SF.attempt] ~= tonumber(item[2]) then
    out[#out + 1] = 0; out[#out + 1] = ''
  else
    local raw = redis.call('HGET', KEYS[K.parts], id)
    local parts = raw and cjson.decode(raw) or {}
    parts[item[3]] = item[4]
    redis.call('HSET', KEYS[K.parts], id, cjson.encode(parts))
    local n, worst = 0, DELIVERED
    for _, o in pairs(parts) do
      n = n + 1
      if o ~= DELIVERED then worst = o end
    end
    if item[6] == POLICY.FIRST or n >= tonumber(item[5]) then
      out[#out + 1] = 1; out[#out + 1] = worst
    else
      out[#out + 1] = 0; out[#out + 1] = ''
    end
  end
end
return out
