-- Ends attempts: records each result once, settles its reservations, and either ends the task
-- or queues its next attempt. ARGV[4]: JSON array of
-- [id, attempt, outcome, payload, next, guard, channel, settlement, late hold, generation, unsent,
-- contact]:
--   next  = null (the task is final) or [channel, attempt, score] (retry or cascade);
--   guard = ''        the attempt is leased (its owner's send, or a late event);
--           'expired' the attempt is leased and its lease has expired (recovery);
--           'queued'  the attempt is waiting in a queue (stop, sweeps);
--           'open'    the attempt is queued or claimed but not yet sent (a stop reaching a claim);
--           'claim'   the caller's own claim (its generation), not yet sent (a gate ended it):
--                     anything else means the claim is over, and nothing is recorded;
--   channel           the attempt's own channel (a late event's, not the task's current one);
--   settlement        what ending the attempt does with its reservations; null on a single Redis
--                     when it keeps them all as they are (nothing to write);
--   late hold = true  news of an attempt that already ended counts (a delivery after the
--                     acceptance timed out): its reservation (the settlement's first) is held again,
--                     or with no settlement the caller is asked to (LATE_HOLD_ASKED);
--   unsent = true     it ends after its begin-send without reaching the wire (the window closed
--                     or the wave stopped while it waited): the send counted is taken back;
--   contact           null, or [directory key, TTL s]: the attempt reached the wire, and once
--                     applied this is the phone's last contact (engine.store.directory).
-- Returns per item: flag (1 applied, 0 duplicate/late, LATE_HOLD_ASKED late and its hold left to
-- the caller), pacing target to release or '', 1 when that target slot was held until now; then
-- the outbox entries written.
local items = cjson.decode(ARGV[4])
local ids = {}
for i, item in ipairs(items) do ids[i] = item[1] end
local states = redis.call('HMGET', KEYS[K.state], unpack(ids))
local gathered = redis.call('HMGET', KEYS[K.data], unpack(ids))
local out = {}
local updates, unleased, gathered_done = {}, {}, {}
local seen = {}
for i, item in ipairs(items) do
  local id, attempt, outcome = item[1], tonumber(item[2]), item[3]
  local payload = item[4]
  -- Its end time is this call's (the caller's clock), not sent with each item.
  payload.finished_at = NOW
  local nxt, guard, channel = item[5], item[6], item[7]
  -- The same task twice in one batch: the second sees the first's result.
  local st = seen[id] or (states[i] and cjson.decode(states[i]))
  local ok, hold_asked = false, false
  if st and st[SF.phase] ~= PH.ended and st[SF.attempt] == attempt then
    if guard == GUARD.LEASED then
      -- A result belongs to the claim that sent it: another claim of the same attempt (a resend) is not it.
      ok = leased(st) and (tonumber(item[10]) == 0 or st[SF.generation] == tonumber(item[10]))
    elseif guard == GUARD.EXPIRED then
      local exp = redis.call('ZSCORE', KEYS[K.leases], id)
      ok = leased(st) and exp ~= false and tonumber(exp) <= NOW
    elseif guard == GUARD.QUEUED then ok = st[SF.phase] == PH.queued
    elseif guard == GUARD.OPEN then ok = st[SF.phase] == PH.queued or st[SF.phase] == PH.claimed
    elseif guard == GUARD.CLAIM then ok = st[SF.phase] == PH.claimed and st[SF.generation] == tonumber(item[10])
    end
  end
  if not ok then
    if st and guard == GUARD.LEASED and outcome ~= '' then
      if (st[SF.phase] == PH.ended and st[SF.attempt] == attempt and st[SF.outcome] == outcome)
          or (st[SF.prev_attempt] == attempt and st[SF.prev_outcome] == outcome) then
        -- The same outcome again (several processes see one Asterisk's events, a provider
        -- resends a webhook): recorded once already.
        count(CNT.DUPLICATE, 1)
      else
        -- News about an attempt already ended or superseded (a read after delivered, a
        -- delivery after the SMS fallback went out): recorded for its own attempt and channel;
        -- it changes the task no more, but a contact that counts holds its reservation.
        emit(record(KIND.LATE, id, st, outcome, false, payload, attempt, channel))
        if item[9] == true then
          if type(item[8]) == 'table' and item[8][1] then
            local main = item[8][1]
            settle({{main[1], main[2], main[3], VERDICT.HOLD}})
          else
            hold_asked = true
          end
        end
        count(CNT.LATE, 1)
      end
    end
    out[#out + 1] = hold_asked and LATE_HOLD_ASKED or 0; out[#out + 1] = ''; out[#out + 1] = 0
  else
    if st[SF.phase] == PH.queued then
      redis.call('ZREM', Q[st[SF.channel]], id)
      count(CNT.QUEUED, -1)
    else
      unleased[#unleased + 1] = id
      count(CNT.LEASED, -1)
    end
    if gathered[i] then
      local extra = cjson.decode(gathered[i])
      if type(payload.data) ~= 'table' then payload.data = {} end
      for k, v in pairs(extra) do
        if payload.data[k] == nil then payload.data[k] = v end
      end
      gathered_done[#gathered_done + 1] = id
    end
    if item[11] == true and st[SF.phase] == PH.sending then
      count(CNT.SENT, -1)
      count(CNT_CHANNEL_SENT(st[SF.channel]), -1)
    end
    local contact = item[12]
    if type(contact) == 'table' then
      local m = meta()
      redis.call('HSET', contact[1], DIR.debtor, state_debtor(id, st),
                 DIR.last, DIRECTORY_LAST(m[1], m[2], ARGV[2], channel))
      redis.call('EXPIRE', contact[1], contact[2])
    end
    local release, held = st[SF.target] or '', st[SF.holds_slot] or 0
    local final = type(nxt) ~= 'table'
    emit(record(KIND.RESULT, id, st, outcome, final, payload))
    settle(item[8])
    count(CNT_CHANNEL_OUTCOME(st[SF.channel], outcome), 1)
    local new
    if final then
      new = {[SF.phase] = PH.ended, [SF.attempt] = attempt, [SF.channel] = st[SF.channel], [SF.outcome] = outcome,
             [SF.debtor] = st[SF.debtor], [SF.generation] = st[SF.generation]}
      count(CNT.FINAL, 1)
      count(CNT_OUTCOME(outcome), 1)
      count(CNT_MINUTE(math.floor(NOW / 60000)), 1)
    else
      local ch, natt, score = nxt[1], nxt[2], nxt[3]
      redis.call('ZADD', Q[ch], string.format('%.0f', score), id)
      new = {[SF.phase] = PH.queued, [SF.attempt] = tonumber(natt), [SF.channel] = ch, [SF.priority] = st[SF.priority],
             [SF.debtor] = st[SF.debtor], [SF.generation] = st[SF.generation], [SF.prev_attempt] = attempt,
             [SF.prev_outcome] = outcome}
      count(CNT.QUEUED, 1)
    end
    seen[id] = new
    updates[#updates + 1] = id; updates[#updates + 1] = cjson.encode(new)
    out[#out + 1] = 1; out[#out + 1] = release; out[#out + 1] = held
  end
end
if #updates > 0 then chunked('HSET', KEYS[K.state], updates, 2000) end
if #unleased > 0 then
  chunked('ZREM', KEYS[K.leases], unleased, 1000)
  chunked('HDEL', KEYS[K.parts], unleased, 1000)
end
if #gathered_done > 0 then chunked('HDEL', KEYS[K.data], gathered_done, 1000) end
flush_counts()
return answer(out)
