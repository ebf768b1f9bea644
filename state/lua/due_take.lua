-- The customers whose R score can have dropped by as_of, from the hourly due lists
-- (read_due in profile.lua says which entries count).
--
-- Nothing is deleted here: due_retire.lua drops a list once its customers are rescored, so
-- a crash in between loses nothing. This is the Python route's reader; rescore_in_redis.lua
-- reads the lists itself.
-- KEYS: 1 due-hours zset
-- ARGV: 1 as_of ms, 2 due list key head, 3 profile key head ("P:b:{"),
--       4 read lists of hours after this one ("-inf" at first), 5 stop after this many customers
-- Returns {hours, lengths, candidates}: the hours read, each list's length when read, and
-- per candidate two values: bucket number and customer id.
local candidates, seen = {}, {}
local hours, lengths = read_due(KEYS[1], ARGV[2], ARGV[3], tonumber(ARGV[1]), ARGV[4],
  tonumber(ARGV[5]), function(_, bucket, cid)
    if not seen[cid] then
      seen[cid] = true
      candidates[#candidates + 1] = bucket
      candidates[#candidates + 1] = cid
    end
  end)
return { hours, lengths, candidates }
