-- Write freshly computed scores and segments, and queue segment changes, atomically.
--
-- Scores are computed in Python from state read earlier; each entry carries the version it
-- was computed from and is written only if the customer has not changed since
-- (compare-and-set), so an order applied meanwhile or a concurrent rescoring pass can never be
-- overwritten by a stale result. The segment-change event goes into the outbox in the same
-- step as the segment itself, so a crash cannot keep one without the other.
--
-- KEYS: 1 segments hash, 2 due zset, 3 dirty set
-- ARGV[1]: outbox key prefix
-- ARGV[2..]: per customer two slots: entry JSON and the change event bytes ("" if no change)
--   entry: [customer_key, customer_id, expected_version, scores, segment, due_ms, partition]
--   scores is "r,f,m,recency_days,as_of_ms" or "" when the customer has no order left;
--   segment is "" for no segment; due_ms is -1 when the R score can no longer drop.
-- Returns one integer per entry: 1 written, 0 skipped because the customer changed meanwhile.

local segments_key, due_key, dirty_key = KEYS[1], KEYS[2], KEYS[3]
local outbox_prefix = ARGV[1]
local results = {}

for i = 2, #ARGV, 2 do
  local e = cjson.decode(ARGV[i])
  local change = ARGV[i + 1]
  local ckey, cid, expected, scores, segment, due_ms, partition =
    e[1], e[2], e[3], e[4], e[5], e[6], e[7]
  local current = redis.call('HMGET', ckey, 'v', 'g', 'q')
  if tonumber(current[1] or '0') ~= expected then
    results[#results + 1] = 0
  else
    local previous = current[2] or ''
    if scores == '' then redis.call('HDEL', ckey, 's') else redis.call('HSET', ckey, 's', scores) end
    if segment ~= previous then
      if previous ~= '' then redis.call('HINCRBY', segments_key, previous, -1) end
      if segment ~= '' then
        redis.call('HINCRBY', segments_key, segment, 1)
        redis.call('HSET', ckey, 'g', segment)
      else
        redis.call('HDEL', ckey, 'g')
      end
    end
    -- A change event comes with every segment change, and with an explicit re-announcement
    -- of an unchanged segment (after Redis lost writes); either way it is the next in sequence.
    if change ~= '' then
      redis.call('HINCRBY', ckey, 'q', 1)
      redis.call('XADD', outbox_prefix .. string.format('%d', partition), '*',
        't', 'seg', 'k', cid, 'v', change, 'h', '')
    end
    if due_ms >= 0 then
      redis.call('ZADD', due_key, due_ms, cid)
    else
      redis.call('ZREM', due_key, cid)
    end
    redis.call('HINCRBY', ckey, 'v', 1)
    redis.call('SREM', dirty_key, cid)
    results[#results + 1] = 1
  end
end
return results
