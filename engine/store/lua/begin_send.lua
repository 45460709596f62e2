-- The point of no return is right after this script says 1 for an attempt.
-- ARGV: 4 owner, 5 lease expiry ms, 6 JSON array of [id, attempt, generation, target].
-- Returns {wave state, flag per attempt}; nothing is marked unless the wave runs.
local state = redis.call('HGET', KEYS[K.meta], META.STATE)
if state ~= WS.RUNNING then return {state or 'missing'} end
local items = cjson.decode(ARGV[6])
local ids = {}
for i, item in ipairs(items) do ids[i] = item[1] end
local states = redis.call('HMGET', KEYS[K.state], unpack(ids))
local out = {WS.RUNNING}
local leases, updates = {}, {}
for i, item in ipairs(items) do
  local id = item[1]
  local st = states[i] and cjson.decode(states[i])
  if st and st[SF.phase] == PH.claimed and st[SF.owner] == ARGV[4] and st[SF.attempt] == tonumber(item[2])
      and st[SF.generation] == tonumber(item[3]) then
    st[SF.phase] = PH.sending; st[SF.sent_at] = NOW; st[SF.target] = item[4]
    updates[#updates + 1] = id; updates[#updates + 1] = cjson.encode(st)
    leases[#leases + 1] = ARGV[5]; leases[#leases + 1] = id
    emit(record(KIND.DISPATCHED, id, st, nil, false, nil))
    count(CNT_CHANNEL_SENT(st[SF.channel]), 1)
    count(CNT.SENT, 1)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if #updates > 0 then
  chunked('HSET', KEYS[K.state], updates, 2000)
  chunked('ZADD', KEYS[K.leases], leases, 2000)
end
flush_counts()
return out
