-- Shared by every script (after the generated header of engine/store/schema.py).

-- Multi-key commands in chunks (Lua's unpack has a limited stack).
local function chunked(cmd, key, list, step)
  for i = 1, #list, step do
    local last = math.min(i + step - 1, #list)
    redis.call(cmd, key, unpack(list, i, last))
  end
end

-- A reservation's record (RES) says held with true (1 before 2026-12-05: still read). Its seq,
-- left out when 0, orders a Redis Cluster's outbox settlements. A boolean and no seq of 0: every
-- number cjson writes goes through snprintf, on the path of every attempt.
local function reservation_held(cur)
  local h = cur[RES.held]
  return h == true or h == 1
end

-- Settles one reservation of a debtor's caps (engine.domain.attempt.Verdict):
-- HOLD keeps it, and takes it when it is not held (the contact happened: over the cap if need
-- be); RELEASE gives it back. Either way the field remembers the verdict, so a reservation
-- asked for a claim that was already settled is refused (its claim is dead). ``seq`` orders
-- the settlements that reach a Redis Cluster through a wave's outbox; nil applies at once.
local function settle_reservation(key, field, counters, verdict, seq)
  if verdict == VERDICT.KEEP then return 0 end
  local raw = redis.call('HGET', key, field)
  local cur = nil
  if raw then cur = cjson.decode(raw) end
  if cur and seq and tonumber(cur[RES.seq] or 0) >= seq then return 0 end
  local held = cur ~= nil and reservation_held(cur)
  -- Kept as it is (the common end of a contact that counts): nothing to write.
  if held and verdict == VERDICT.HOLD and not seq then return 0 end
  local stored = counters
  if cur then stored = cur[RES.counters] end
  if verdict == VERDICT.HOLD then
    if not held then
      for j = 1, 3 do
        if redis.call('INCR', stored[j]) == 1 then redis.call('EXPIRE', stored[j], CAP_TTL[j]) end
      end
    end
  elseif held then
    for j = 1, 3 do
      if tonumber(redis.call('GET', stored[j]) or '0') > 0 then redis.call('DECR', stored[j]) end
    end
  end
  redis.call('HSET', key, field, cjson.encode({[RES.counters] = stored, [RES.held] = verdict == VERDICT.HOLD,
                                                [RES.seq] = seq}))
  redis.call('EXPIRE', key, RES_TTL)
  return 1
end
