-- Claims up to a limit of eligible queued attempts, only while the wave runs (a paused or
-- stopped wave hands out nothing, atomically). Each claim counts one more generation of the
-- task: the reservation the claimant takes belongs to that claim alone.
-- ARGV: 4 channel, 5 max score, 6 limit, 7 lease expiry ms, 8 owner.
-- Returns {wave state, next score or '', id, task JSON, attempt, generation, ...}.
local state = redis.call('HGET', KEYS[K.meta], META.STATE)
if state ~= WS.RUNNING then return {state or 'missing', ''} end
local q = Q[ARGV[4]]
local ids = redis.call('ZRANGEBYSCORE', q, '-inf', ARGV[5], 'LIMIT', 0, tonumber(ARGV[6]))
local out = {WS.RUNNING, ''}
if #ids == 0 then
  local first = redis.call('ZRANGE', q, 0, 0, 'WITHSCORES')
  if first[2] then out[2] = first[2] end
  return out
end
chunked('ZREM', q, ids, 1000)
local states = redis.call('HMGET', KEYS[K.state], unpack(ids))
local tasks = redis.call('HMGET', KEYS[K.tasks], unpack(ids))
local leases, updates = {}, {}
for i, id in ipairs(ids) do
  local st = cjson.decode(states[i])
  st[SF.phase] = PH.claimed; st[SF.owner] = ARGV[8]; st[SF.claimed_at] = NOW
  st[SF.generation] = (st[SF.generation] or 0) + 1
  leases[#leases + 1] = ARGV[7]; leases[#leases + 1] = id
  updates[#updates + 1] = id; updates[#updates + 1] = cjson.encode(st)
  out[#out + 1] = id
  out[#out + 1] = tasks[i]
  out[#out + 1] = st[SF.attempt]
  out[#out + 1] = st[SF.generation]
end
chunked('ZADD', KEYS[K.leases], leases, 2000)
chunked('HSET', KEYS[K.state], updates, 2000)
count(CNT.QUEUED, -#ids)
count(CNT.LEASED, #ids)
flush_counts()
return out
