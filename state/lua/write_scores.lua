-- Write freshly computed scores and segments, and queue segment changes, atomically.
--
-- Scores are computed in Python from state read earlier; each entry carries the version it
-- was computed from and is written only if the customer has not changed since
-- (compare-and-set), so an order applied meanwhile or a concurrent rescoring pass can never be
-- overwritten by a stale result. The segment-change event goes into the outbox in the same
-- step as the segment itself, so a crash cannot keep one without the other.
--
-- All or nothing, entry by entry: each entry is computed under pcall and joins the writes
-- only if that raised no error; the writes are made at the end, to keys already read or
-- type-checked (as rescore_in_redis.lua).
--
-- KEYS: 1 segments hash, 2 dirty set, 3 due-hours zset, 4 segment-codes hash, 5 outboxes set
-- ARGV[1]: outbox key prefix, ARGV[2]: due list key head
-- ARGV[3..]: per customer two slots: entry JSON and the change record ("" if no change;
--   state/change_events.py: the relay renders the event)
--   entry: [profiles_key, bucket, customer_id, expected_version, scores, segment, due_ms,
--           as_of_ms]
--   scores is "r,f,m,recency_days,as_of_ms" or "" when the customer has no order left;
--   segment is "" for no segment; due_ms is -1 when the R score can no longer drop;
--   as_of_ms is when a segment change happens (the profile's segment since).
-- Returns one integer per entry: 1 written, 0 skipped because the customer changed meanwhile,
-- -1 not written because its state could not be read (a profile in no known format).

local segments_key, dirty_key, hours_key, codes_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local outboxes_key = KEYS[5]
local outbox_prefix, due_head = ARGV[1], ARGV[2]
redis.call('HLEN', segments_key)
redis.call('SCARD', dirty_key)
redis.call('ZCARD', hours_key)
redis.call('SCARD', outboxes_key)
local results = {}
local writes, counts, changes, outboxes, clean = {}, {}, {}, {}, {}
local planned = {}  -- a customer entered twice: the second entry was computed from stale state

local function count(name, by)
  if name ~= '' then counts[name] = (counts[name] or 0) + by end
end

-- The entry's new profile and change; writes nothing (code_of may register a segment code).
local function plan(e, change)
  local pkey, cid, expected, scores, segment, due_ms = e[1], e[3], e[4], e[5], e[6], e[7]
  local as_of = e[8]
  local t = unpack_profile(redis.call('HGET', pkey, cid))
  if not t or t.version ~= expected then return nil end
  local previous = name_of(codes_key, t.seg)
  set_scores(t, scores)
  if segment ~= previous then enter_segment(t, code_of(codes_key, segment), as_of) end
  -- A change event comes with every segment change, and with an explicit re-announcement
  -- of an unchanged segment (after Redis lost writes); either way it is the next in sequence.
  if change ~= '' then t.seq = t.seq + 1 end
  local old_due = t.due
  if due_ms < 0 then t.due = nil else t.due = due_ms end
  t.version = t.version + 1
  return t, previous, segment, old_due
end

defer_due_lists()
for i = 3, #ARGV, 2 do
  local e = cjson.decode(ARGV[i])
  local change = ARGV[i + 1]
  local ok, t, previous, segment, old_due = pcall(plan, e, change)
  if ok and t and planned[e[3]] then t = nil end
  if not ok then
    results[#results + 1] = -1
  elseif not t then
    results[#results + 1] = 0
  else
    local pkey, bucket, cid = e[1], e[2], e[3]
    if segment ~= previous then
      count(previous, -1)
      count(segment, 1)
    end
    if change ~= '' then
      local box = outbox_prefix .. string.format('%d', t.partition)
      if not outboxes[box] then
        redis.call('XLEN', box)
        outboxes[box] = t.partition
      end
      changes[#changes + 1] = { box, cid, change }
    end
    list_due(old_due, t.due, bucket, cid, due_head, hours_key)
    planned[cid] = true
    writes[#writes + 1] = { pkey, cid, pack_profile(t) }
    clean[#clean + 1] = cid
    results[#results + 1] = 1
  end
end

for _, w in ipairs(writes) do redis.call('HSET', w[1], w[2], w[3]) end
for _, c in ipairs(changes) do redis.call('XADD', c[1], '*', 't', 'chg', 'k', c[2], 'v', c[3]) end
for _, partition in pairs(outboxes) do redis.call('SADD', outboxes_key, partition) end
push_due_lists(due_head, hours_key)
for i = 1, #clean, 500 do
  redis.call('SREM', dirty_key, unpack(clean, i, math.min(i + 499, #clean)))
end
for name, by in pairs(counts) do redis.call('HINCRBY', segments_key, name, by) end
return results
