-- Applies settlements in a debtor's slot (after common.lua): a wave's outbox entries on a Redis
-- Cluster, or a reservation its claimant gives back because its claim is over.
-- ARGV[1]: JSON array of [key, field, counters, verdict, seq or null]. Returns how many applied.
local n = 0
for _, item in ipairs(cjson.decode(ARGV[1])) do
  local seq = item[5]
  if type(seq) ~= 'number' then seq = nil end
  n = n + settle_reservation(item[1], item[2], item[3], item[4], seq)
end
return n
