-- Erase one customer (the right to erasure): profile, order records and refund marks, the
-- dirty mark and its place in the segment counters, in one atomic step that also queues the
-- customer's last segment change (segment '' , cause 'erased') in its partition's outbox.
--
-- Why the change goes through the outbox: consumers hold the customer's segment from the
-- earlier events; the erased event, published after them in the same partition's order, is
-- what tells them to drop it. Why the seq floor: the event_id of a change is derived from
-- the customer id and its change number (state/change_events.py); a customer id that comes
-- back after erasure starts a new profile, whose numbers must not repeat those of the erased
-- one, or consumers deduplicating on event_id would drop its events. Nothing that names the
-- customer can stay behind to remember them, so the floor is one number for everybody: every
-- customer created later numbers its changes after it.
--
-- Due lists can hold entries of the customer in several hours (an entry stays where a later
-- purchase moved its due time away); they are swept by the caller, list by list, after this
-- script (state/erasure.py): an entry whose profile is gone is skipped by every reader.
--
-- All or nothing: reads and type checks first, writes at the end.
-- KEYS: 1 profile bucket, 2 order-record bucket, 3 dirty set, 4 segment-codes hash,
--       5 segments hash, 6 outboxes set, 7 seq floor, 8 erasures counter
-- ARGV: 1 customer id, 2 as_of ms (decimal), 3 outbox key prefix, 4 currency, 5 exponent,
--       6 window days
-- Returns {found (0|1), previous segment or '', change number of the erased event,
--          partition, order records deleted}.
local profiles_key, orders_key, dirty_key, codes_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local segments_key, outboxes_key, seq_floor_key, erasures_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local cid, as_of, outbox_prefix = ARGV[1], ARGV[2], ARGV[3]
local currency, exponent, window_days = ARGV[4], ARGV[5], ARGV[6]

local t = unpack_profile(redis.call('HGET', profiles_key, cid))
-- Order records ("<id>\31<order>"), refund marks ("<id>\31<order>\31<refund>") and the
-- window ("<id>": state/lua/window.lua).
local head = cid .. '\31'
local fields, records = {}, 0
for _, field in ipairs(redis.call('HKEYS', orders_key)) do
  if string.sub(field, 1, #head) == head then
    fields[#fields + 1] = field
    records = records + 1
  elseif field == cid then
    fields[#fields + 1] = field
  end
end
if not t and #fields == 0 then return { 0, '', 0, 0, 0 } end

-- Type checks of what is written below, before anything is.
redis.call('SCARD', dirty_key)
redis.call('HLEN', segments_key)
redis.call('SCARD', outboxes_key)
redis.call('GET', erasures_key)  -- WRONGTYPE now, not at the end
local floor = tonumber(redis.call('GET', seq_floor_key) or '0')

local previous, seq, partition = '', 0, 0
if t then
  previous = name_of(codes_key, t.seg)
  seq, partition = t.seq + 1, t.partition
end
local box = outbox_prefix .. string.format('%d', partition)
if t then redis.call('XLEN', box) end

-- Everything is known: write it.
if t then
  -- The record of change_events.change_record: no segment, no scores, nothing held.
  local record = enc(seq) .. ',' .. previous .. ',,,0,0,' .. exponent .. ',' .. currency ..
    ',' .. as_of .. ',erased,0,0,' .. window_days .. ',,,,'
  redis.call('XADD', box, '*', 't', 'chg', 'k', cid, 'v', record)
  redis.call('SADD', outboxes_key, string.format('%d', partition))
  redis.call('HDEL', profiles_key, cid)
  if previous ~= '' then redis.call('HINCRBY', segments_key, previous, -1) end
  if seq > floor then redis.call('SET', seq_floor_key, string.format('%d', seq)) end
end
for i = 1, #fields, 500 do
  redis.call('HDEL', orders_key, unpack(fields, i, math.min(i + 499, #fields)))
end
redis.call('SREM', dirty_key, cid)
redis.call('INCR', erasures_key)
return { 1, previous, seq, partition, records }
