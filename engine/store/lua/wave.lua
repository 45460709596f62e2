-- Shared by the scripts of one wave (after common.lua). KEYS is WaveKeys.script_keys (K names
-- their positions); ARGV[1] is the results stream MAXLEN, ARGV[2] the engine time (epoch ms),
-- ARGV[3] how reservations are settled: 'inline' (a single Redis: at once, in this script) or
-- 'outbox' (a Redis Cluster: the debtor's keys live elsewhere, so the settlement is written to
-- the wave's outbox and returned; engine.dispatch.lifecycle applies it in the debtor's slot).
local Q = {}
for i, ch in ipairs(CHANNELS) do Q[ch] = KEYS[K.queues + i - 1] end
local MAXLEN = ARGV[1]
local NOW = tonumber(ARGV[2])
local SETTLE_INLINE = ARGV[3] == SETTLE.INLINE

-- A task state is its stored JSON, read and written by its stored names (st[SF.phase]).

local function getst(id)
  local raw = redis.call('HGET', KEYS[K.state], id)
  if not raw then return nil end
  return cjson.decode(raw)
end

local function setst(id, st)
  redis.call('HSET', KEYS[K.state], id, cjson.encode(st))
end

local function leased(st)
  return st[SF.phase] == PH.claimed or st[SF.phase] == PH.sending or st[SF.phase] == PH.accepted
end

local function emit(rec)
  redis.call('XADD', KEYS[K.results], 'MAXLEN', '~', MAXLEN, '*', RECORD_FIELD, cjson.encode(rec))
end

-- Counters are summed here and written once per script call (flush_counts).
local COUNTS = {}
local function count(field, by)
  COUNTS[field] = (COUNTS[field] or 0) + by
end
local function flush_counts()
  for field, by in pairs(COUNTS) do
    if by ~= 0 then redis.call('HINCRBY', KEYS[K.counts], field, by) end
  end
  COUNTS = {}
end

local META_CACHE = nil
local function meta()
  if not META_CACHE then META_CACHE = redis.call('HMGET', KEYS[K.meta], META.WAVE_ID, META.CAMPAIGN_ID) end
  return META_CACHE
end

-- The task's debtor: from its state, else (a state written before it carried one) its task JSON.
local function state_debtor(id, st)
  return st[SF.debtor] or cjson.decode(redis.call('HGET', KEYS[K.tasks], id)).debtor_id
end

-- A results-stream record (engine.domain.models.Result). Debtor and channel come from the state,
-- wave and campaign from the meta hash: no task JSON is decoded on the hot path. ``attempt`` and
-- ``channel`` override the state's (a late event belongs to its own attempt, not the current one).
-- One table constructor: it sizes the table once, where set field by field it grew five times
-- (two records per attempt).
local function record(kind, id, st, outcome, final, payload, attempt, channel)
  local debtor = state_debtor(id, st)
  local m = meta()
  local own = not attempt
  local data = nil
  if kind == KIND.DISPATCHED then data = {target = st[SF.target]} elseif payload then data = payload.data end
  return {
    [RF.kind] = kind, [RF.task_id] = id, [RF.attempt] = attempt or st[SF.attempt],
    [RF.wave_id] = m[1], [RF.campaign_id] = m[2], [RF.debtor_id] = debtor,
    [RF.channel] = channel or st[SF.channel], [RF.final] = final,
    [RF.claimed_at] = own and st[SF.claimed_at] or nil, [RF.sent_at] = own and st[SF.sent_at] or nil,
    [RF.accepted_at] = own and st[SF.accepted_at] or nil,
    [RF.outcome] = (outcome and outcome ~= '') and outcome or nil,
    [RF.provider_code] = payload and payload.provider_code or nil,
    [RF.provider_text] = payload and payload.provider_text or nil,
    [RF.finished_at] = payload and payload.finished_at or nil,
    [RF.data] = data,
  }
end

-- Settles a transition's reservations: each item is [key, field, counters, verdict]
-- (engine.store.schema.Reservation.wire). Returns the outbox entries written (outbox mode).
local OUTBOX = {}
local function settle(items)
  if type(items) ~= 'table' then return end
  for _, r in ipairs(items) do
    if SETTLE_INLINE then
      settle_reservation(r[1], r[2], r[3], r[4], nil)
    else
      local seq = redis.call('HINCRBY', KEYS[K.outbox], OUTBOX_SEQ, 1)
      local entry = {r[1], r[2], r[3], r[4], seq}
      redis.call('HSET', KEYS[K.outbox], r[2], cjson.encode(entry))
      OUTBOX[#OUTBOX + 1] = entry
    end
  end
end

-- A script's answer: its own list, then the outbox entries it wrote (JSON), as one array.
local function answer(out)
  out[#out + 1] = cjson.encode(OUTBOX)
  return out
end
