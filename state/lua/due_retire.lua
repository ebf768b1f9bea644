-- Drop the due lists a due pass has finished with.
--
-- A list of a past hour is dropped only if it is as long as when due_take.lua read it:
-- an entry appended since (a customer whose due time moved into that hour) keeps it for the
-- next pass. Customers the pass could not write (changed meanwhile, compare-and-set) are
-- first listed again under their current due hour: the write that beat the pass may have
-- kept their due time, and with it their only entry, in a list about to be dropped.
-- The list of as_of's own hour is never dropped: it can hold customers not due yet.
-- KEYS: 1 due-hours zset
-- ARGV: 1 as_of ms, 2 due list key head, 3 profile key head, 4 number of hours n,
--       5 .. 4+2n: hour, length read; then bucket, customer id of each unwritten customer
local hours_key = KEYS[1]
local as_of, due_head, profiles_head = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local n = tonumber(ARGV[4])
for i = 5 + 2 * n, #ARGV, 2 do
  local bucket, cid = ARGV[i], ARGV[i + 1]
  local t = unpack_profile(redis.call('HGET', profiles_head .. bucket .. '}', cid))
  if t and t.due then
    local hour = math.floor(t.due / HOUR)
    redis.call('RPUSH', due_head .. string.format('%d', hour), bucket .. ':' .. cid)
    redis.call('ZADD', hours_key, hour, hour)
  end
end
local current = math.floor(as_of / HOUR)
local dropped = 0
for i = 5, 4 + 2 * n, 2 do
  local hour, length = ARGV[i], tonumber(ARGV[i + 1])
  local key = due_head .. hour
  if tonumber(hour) < current and redis.call('LLEN', key) == length then
    redis.call('DEL', key)
    redis.call('ZREM', hours_key, hour)
    dropped = dropped + 1
  end
end
return dropped
