-- Apply one batch of order events atomically.
--
-- Why one script per batch: Redis spends ~12 us of CPU per EVALSHA, so a call per event
-- caps throughput; and doing offsets, dedupe, state, counters and dead letters in one
-- atomic step means a crash anywhere leaves either all of a batch applied or none of it.
--
-- KEYS: 1 offsets hash, 2 stats hash, 3 clock string, 4 dirty set
-- ARGV[1]: JSON {"topic": str, "outbox": outbox key prefix,
--   "firsts": {partition: first offset of this batch in it},
--   "floors": {partition: offset below which everything is known to be handled}}
-- ARGV[2..]: per event three slots: descriptor JSON, original value bytes, original key bytes.
--   descriptor for a valid event:
--     [partition, offset, kind, customer_key, customer_id, order_id, amount, occurred_ms, refund_id]
--   (amount and occurred_ms as decimal strings; kind is purchase|refund|cancel)
--   descriptor for an event rejected before the state was read: [partition, offset, "reject", reason, message]
-- Before applying anything, each partition's first offset is checked against the offset after
-- the last one applied (or its floor): a batch that starts later is a gap (events committed to
-- Kafka but not in Redis, e.g. after Redis lost its last second of writes) and nothing is
-- applied: the reply is {"gap", partition, next_expected_offset} and the caller fills it first.
-- Returns {outcomes, touched_ids, clock, states}: outcomes[i] is "applied", "duplicate", "dlq:<reason>"
-- or "redelivered" (an offset an earlier batch already applied: the same event seen again, so
-- it is counted apart and not as a new input event);
-- touched_ids are the customers whose state changed (also added to the dirty set).

local offsets_key, stats_key, clock_key, dirty_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local meta = cjson.decode(ARGV[1])
local topic, outbox_prefix = meta.topic, meta.outbox

local applied_upto = {}   -- partition -> last applied offset (as stored before this batch)
local new_upto = {}
local counts = {}
local outcomes = {}
local touched, touched_list = {}, {}
local clock = tonumber(redis.call('GET', clock_key) or '0')

for partition, first in pairs(meta.firsts or {}) do
  local stored = redis.call('HGET', offsets_key, topic .. ':' .. partition)
  local expected = stored and (tonumber(stored) + 1) or 0
  local floor = (meta.floors or {})[partition]
  if floor and floor > expected then expected = floor end
  if first > expected then
    return { 'gap', tonumber(partition), string.format('%d', expected) }
  end
end

local function count(name) counts[name] = (counts[name] or 0) + 1 end

local function dead_letter(partition, offset, reason, message, value, key)
  local headers = cjson.encode({
    ['rfm.dlq.reason'] = reason, ['rfm.dlq.message'] = message,
    ['rfm.dlq.source'] = topic .. ':' .. partition .. ':' .. string.format('%d', offset) })
  redis.call('XADD', outbox_prefix .. partition, '*', 't', 'dlq', 'k', key, 'v', value, 'h', headers)
  count('dlq:' .. reason)
  return 'dlq:' .. reason
end

local function touch(ckey, cid, partition)
  redis.call('HINCRBY', ckey, 'v', 1)
  redis.call('HSET', ckey, 'p', partition)
  if not touched[cid] then
    touched[cid] = ckey
    touched_list[#touched_list + 1] = cid
  end
end

-- Recompute first/last purchase from the orders still counting, after a cancel.
local function recompute_span(ckey)
  local all = redis.call('HGETALL', ckey)
  local first, last
  for i = 1, #all, 2 do
    local field = all[i]
    if string.sub(field, 1, 2) == 'o:' then
      local ts, _, _, status = string.match(all[i + 1], '^(%d+),(%d+),(%d+),(%a)$')
      if status == 'A' then
        ts = tonumber(ts)
        if not first or ts < first then first = ts end
        if not last or ts > last then last = ts end
      end
    end
  end
  if first then
    redis.call('HSET', ckey, 'f', string.format('%d', first), 'l', string.format('%d', last))
  else
    redis.call('HDEL', ckey, 'f', 'l')
  end
end

local function purchase(d, partition)
  local ckey, cid, order_id, amount, ts = d[4], d[5], d[6], d[7], d[8]
  local ofield = 'o:' .. order_id
  if redis.call('HSETNX', ckey, ofield, ts .. ',' .. amount .. ',0,A') == 0 then
    return 'duplicate'
  end
  redis.call('HINCRBY', ckey, 'n', 1)
  redis.call('HINCRBY', ckey, '$', amount)
  local span = redis.call('HMGET', ckey, 'f', 'l')
  local t = tonumber(ts)
  if not span[1] or t < tonumber(span[1]) then redis.call('HSET', ckey, 'f', ts) end
  if not span[2] or t > tonumber(span[2]) then redis.call('HSET', ckey, 'l', ts) end
  touch(ckey, cid, partition)
  return 'applied'
end

local function parse_order(ckey, ofield)
  local rec = redis.call('HGET', ckey, ofield)
  if not rec then return nil end
  local ts, amt, refunded, status = string.match(rec, '^(%d+),(%d+),(%d+),(%a)$')
  return { ts = ts, amount = tonumber(amt), refunded = tonumber(refunded), status = status }
end

local function refund(d, partition, offset, value, key)
  local ckey, cid, order_id, amount, ts, refund_id = d[4], d[5], d[6], tonumber(d[7]), d[8], d[9]
  local ofield = 'o:' .. order_id
  local o = parse_order(ckey, ofield)
  if not o then
    return dead_letter(partition, offset, 'unknown_order',
      'refund of order ' .. order_id .. ' which this customer never purchased', value, key)
  end
  if o.status == 'C' then
    return dead_letter(partition, offset, 'order_cancelled',
      'refund of order ' .. order_id .. ' which was cancelled', value, key)
  end
  if refund_id == '' then refund_id = ts .. ':' .. d[7] end
  if redis.call('HSETNX', ckey, 'r:' .. order_id .. '\31' .. refund_id, '1') == 0 then
    return 'duplicate'
  end
  local effective = math.min(amount, o.amount - o.refunded)
  redis.call('HSET', ckey, ofield, string.format('%s,%d,%d,A', o.ts, o.amount, o.refunded + effective))
  redis.call('HINCRBY', ckey, '$', string.format('%d', -effective))
  touch(ckey, cid, partition)
  return 'applied'
end

local function cancel(d, partition, offset, value, key)
  local ckey, cid, order_id = d[4], d[5], d[6]
  local ofield = 'o:' .. order_id
  local o = parse_order(ckey, ofield)
  if not o then
    return dead_letter(partition, offset, 'unknown_order',
      'cancel of order ' .. order_id .. ' which this customer never purchased', value, key)
  end
  if o.status == 'C' then return 'duplicate' end
  redis.call('HSET', ckey, ofield, string.format('%s,%d,%d,C', o.ts, o.amount, o.refunded))
  redis.call('HINCRBY', ckey, 'n', -1)
  redis.call('HINCRBY', ckey, '$', string.format('%d', -(o.amount - o.refunded)))
  local span = redis.call('HMGET', ckey, 'f', 'l')
  if span[1] == o.ts or span[2] == o.ts then recompute_span(ckey) end
  touch(ckey, cid, partition)
  return 'applied'
end

for i = 2, #ARGV, 3 do
  local d = cjson.decode(ARGV[i])
  local value, key = ARGV[i + 1], ARGV[i + 2]
  local partition, offset = d[1], d[2]
  local pfield = topic .. ':' .. partition
  if applied_upto[partition] == nil then
    applied_upto[partition] = tonumber(redis.call('HGET', offsets_key, pfield) or '-1')
  end
  local outcome
  if offset <= applied_upto[partition] then
    outcome = 'redelivered'  -- this offset was applied by an earlier batch: not a new event
  elseif d[3] == 'reject' then
    outcome = dead_letter(partition, offset, d[4], d[5], value, key)
  elseif d[3] == 'purchase' then
    outcome = purchase(d, partition)
  elseif d[3] == 'refund' then
    outcome = refund(d, partition, offset, value, key)
  elseif d[3] == 'cancel' then
    outcome = cancel(d, partition, offset, value, key)
  else
    outcome = dead_letter(partition, offset, 'internal_error', 'unknown kind ' .. tostring(d[3]), value, key)
  end
  if outcome == 'applied' then
    local t = tonumber(d[8])
    if t > clock then clock = t end
  end
  if outcome == 'applied' or outcome == 'duplicate' or outcome == 'redelivered' then
    count(outcome)
  end
  outcomes[#outcomes + 1] = outcome
  if new_upto[partition] == nil or offset > new_upto[partition] then new_upto[partition] = offset end
end

for partition, offset in pairs(new_upto) do
  if offset > applied_upto[partition] then
    redis.call('HSET', offsets_key, topic .. ':' .. partition, string.format('%d', offset))
  end
end
for name, n in pairs(counts) do redis.call('HINCRBY', stats_key, name, n) end
if #touched_list > 0 then
  for i = 1, #touched_list, 500 do
    redis.call('SADD', dirty_key, unpack(touched_list, i, math.min(i + 499, #touched_list)))
  end
  redis.call('SET', clock_key, string.format('%d', clock))
end
-- The touched customers' profiles as they are now, so the caller scores them without
-- reading them back: nine fields each, in the order of reads.py's PROFILE_FIELDS.
local states = {}
for _, cid in ipairs(touched_list) do
  local values = redis.call('HMGET', touched[cid], 'f', 'l', 'n', '$', 'v', 'p', 'g', 'q', 's')
  for i = 1, 9 do states[#states + 1] = values[i] end
end
return { outcomes, touched_list, string.format('%d', clock), states }
