-- Write freshly computed scores and segments, and queue segment changes, atomically.
--
-- Scores are computed in Python from state read earlier; each entry carries the version it
-- was computed from and is written only if the customer has not changed since
-- (compare-and-set), so an order applied meanwhile or a concurrent rescoring pass can never be
-- overwritten by a stale result. The segment-change event goes into the outbox in the same
-- step as the segment itself, so a crash cannot keep one without the other.
--
-- KEYS: 1 segments hash, 2 dirty set, 3 due-hours zset, 4 segment-codes hash
-- ARGV[1]: outbox key prefix, ARGV[2]: due list key head
-- ARGV[3..]: per customer two slots: entry JSON and the change record ("" if no change;
--   state/change_events.py: the relay renders the event)
--   entry: [profiles_key, bucket, customer_id, expected_version, scores, segment, due_ms]
--   scores is "r,f,m,recency_days,as_of_ms" or "" when the customer has no order left;
--   segment is "" for no segment; due_ms is -1 when the R score can no longer drop.
-- Returns one integer per entry: 1 written, 0 skipped because the customer changed meanwhile.

local segments_key, dirty_key, hours_key, codes_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local outbox_prefix, due_head = ARGV[1], ARGV[2]
local results = {}

for i = 3, #ARGV, 2 do
  local e = cjson.decode(ARGV[i])
  local change = ARGV[i + 1]
  local pkey, bucket, cid, expected, scores, segment, due_ms = e[1], e[2], e[3], e[4], e[5], e[6], e[7]
  local t = unpack_profile(redis.call('HGET', pkey, cid))
  if not t or t.version ~= expected then
    results[#results + 1] = 0
  else
    local previous = name_of(codes_key, t.seg)
    set_scores(t, scores)
    if segment ~= previous then
      if previous ~= '' then redis.call('HINCRBY', segments_key, previous, -1) end
      if segment ~= '' then redis.call('HINCRBY', segments_key, segment, 1) end
      t.seg = code_of(codes_key, segment)
    end
    -- A change event comes with every segment change, and with an explicit re-announcement
    -- of an unchanged segment (after Redis lost writes); either way it is the next in sequence.
    if change ~= '' then
      t.seq = t.seq + 1
      redis.call('XADD', outbox_prefix .. string.format('%d', t.partition), '*',
        't', 'chg', 'k', cid, 'v', change)
    end
    set_due(t, due_ms, bucket, cid, due_head, hours_key)
    t.version = t.version + 1
    redis.call('HSET', pkey, cid, pack_profile(t))
    redis.call('SREM', dirty_key, cid)
    results[#results + 1] = 1
  end
end
return results
