-- The population quintile scoring cuts its boundaries from: over the buckets of KEYS, how
-- many scorable customers (first purchase known, orders left) have each recency in days,
-- each order count and each spend, as Rescorer._recompute_quintiles once read them.
--
-- Why counts from Redis: reading every profile back into Python took ~13 s of a 16 s full
-- pass in quintile mode at 1,000,000 customers; here each distinct value crosses once,
-- with its count (state/population.py merges the calls, state/scoring.py cuts from them).
-- Orders and spend are the window's (state/lua/window.lua), folded from each bucket's order
-- records: a pass recomputes the boundaries from exact values, whatever is stored.
-- KEYS: profile buckets
-- ARGV: 1 as_of ms (decimal text), 2 window days (0: every order), 3 order bucket key head
-- Returns {recency days, orders, spend}: each a flat list value, count, value, count, ...
local as_of, window_days, orders_head = tonumber(ARGV[1]), tonumber(ARGV[2] or '0'), ARGV[3]
local DAY = 86400000
local HEAD = '^([^,]*),([^,]*),([^,]*),([^,]*),'
local by_days, by_orders, by_spend = {}, {}, {}

for k = 1, #KEYS do
  local all = redis.call('HGETALL', KEYS[k])
  local windows  -- the bucket's order records folded, read only if a customer needs them
  local function window_of(cid)
    if not windows then
      local bucket = string.match(KEYS[k], '{(%d+)}$')
      windows = fold_orders(redis.call('HGETALL', orders_head .. bucket .. '}'), nil, as_of,
        window_days, 0, nil)
    end
    return windows[cid]
  end
  for i = 1, #all, 2 do
    local f, l, n, sp = string.match(all[i + 1], HEAD)
    local orders = dec(n)
    if f ~= '' and orders and orders > 0 then
      -- changes.score_state: recency_days(last, as_of), never negative
      local days = math.floor((as_of - dec(f) - dec(l)) / DAY)
      if days < 0 then days = 0 end
      local spend = dec(sp) or 0
      -- The window: the lifetime's while the first purchase is in it (every live order
      -- is), else folded from the order records.
      if window_days > 0 and as_of - dec(f) >= window_days * DAY then
        local w = window_of(all[i])
        orders, spend = w and w.n or 0, w and w.spend or 0
      end
      by_days[days] = (by_days[days] or 0) + 1
      by_orders[orders] = (by_orders[orders] or 0) + 1
      by_spend[spend] = (by_spend[spend] or 0) + 1
    end
  end
end

local function flat(counts)
  local out = {}
  for value, count in pairs(counts) do
    out[#out + 1] = value
    out[#out + 1] = count
  end
  return out
end
return { flat(by_days), flat(by_orders), flat(by_spend) }
