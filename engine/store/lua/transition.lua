-- A wave's state change (engine.domain.wave.TRANSITIONS). KEYS: 1 meta.
-- ARGV: 1 new state, 2 now ms, 3.. the states it may come from. Returns {'ok', old} or
-- {'refused', current} or {'missing'}.
local cur = redis.call('HGET', KEYS[1], META.STATE)
if not cur then return {'missing'} end
for i = 3, #ARGV do
  if ARGV[i] == cur then
    redis.call('HSET', KEYS[1], META.STATE, ARGV[1], ARGV[1] .. '_at', ARGV[2],
               ARGV[1] .. '_by', redis.call('HGET', KEYS[1], META.PENDING_BY) or '')
    return {'ok', cur}
  end
end
return {'refused', cur}
