-- Prelude, after profile.lua: order records and each customer's window (F and M over the
-- orders of the last RFM_WINDOW_DAYS).
--
-- An order record, field "<customer>\31<order>" of the customer's order bucket: "ts,amount"
-- while it counts in full, else "ts,amount,refunded,status" (numbers in base 36, status A
-- counts, C cancelled). Refunds are marked under "<customer>\31<order>\31<refund>".
--
-- The window, field "<customer>" of the same bucket (no \31 in it: ids hold no control
-- characters): "days,orders,spend,at,due,pruned" in base 36 = the window length it was
-- computed for, the live purchases with at - ts < days and their amounts net of refunds,
-- the time it was computed for, the earliest time it can change by time alone: an order
-- leaves it (ts + window) or the oldest order record reaches the retention (ts + retention),
-- and the latest time of a live purchase whose record was deleted past the retention (so a
-- cancel of the latest purchase still finds the one before it: apply_orders.lua).
-- Why stored, not derived from the records each time: the records of a customer are mixed
-- with those of the other customers of its bucket, and reading a whole bucket for every
-- event cost more than the rest of the event. Events update it relative to `at`
-- (window_add etc.); a script that scores at a time the stored values do not answer for
-- (`at` later than it, a due time passed, another window length, or none stored: state
-- from before windows) folds the records again (fold_orders): exact either way.

local DAY_MS = 86400000
local WINDOW = '^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*)$'

local function decode_order(rec)
  local ts, amt, rest = string.match(rec, '^([^,]*),([^,]*)(.*)$')
  local refunded, status = 0, 'A'
  if rest ~= '' then
    local r, st = string.match(rest, '^,([^,]*),(%a)$')
    refunded, status = dec(r), st
  end
  if not dec(ts) or not dec(amt) or not refunded or (status ~= 'A' and status ~= 'C') then
    error('order record in no known format: ' .. rec)
  end
  return { ts = dec(ts), amount = dec(amt), refunded = refunded, status = status }
end

local function order_record(ts, amount, refunded, status)
  if refunded == 0 and status == 'A' then return enc(ts) .. ',' .. enc(amount) end
  return enc(ts) .. ',' .. enc(amount) .. ',' .. enc(refunded) .. ',' .. status
end

local function decode_window(text)  -- nil for none
  if not text then return nil end
  local d, n, sp, at, due, pruned = string.match(text, WINDOW)
  if not d then error('window in no known format: ' .. text) end
  return { days = dec(d), n = dec(n), spend = dec(sp), at = dec(at), due = dec(due),
    pruned = dec(pruned) }
end

local function window_text(w)
  return enc(w.days) .. ',' .. enc(w.n) .. ',' .. enc(w.spend) .. ',' .. enc(w.at) .. ',' ..
    enc(w.due) .. ',' .. enc(w.pruned)
end

local function later(a, b)
  if a == nil then return b end
  if b == nil or a > b then return a end
  return b
end

-- The watermark of RFM_CLOCK=event: the least of the input partitions' latest event times
-- (nil before any). The order retention is measured by it, not by the event clock (the
-- latest time of all): partitions are applied independently, and one that runs ahead must
-- not make the events another one has yet to deliver too old, nor delete the records they
-- refer to. Order records are deleted and events found too old by the same watermark.
local function watermark(key)
  local least
  for _, v in ipairs(redis.call('HVALS', key)) do
    local t = tonumber(v)
    if not least or t < least then least = t end
  end
  return least
end

local function earlier(a, b)
  if a == nil then return b end
  if b == nil or a < b then return a end
  return b
end

-- Does the stored window answer for `as_of` with this window length?
local function window_holds(w, days, as_of)
  return w ~= nil and w.days == days and w.at <= as_of and (w.due == nil or as_of < w.due)
end

-- Event updates, relative to the window's own `at` (a record in it at `at` counts).
local function in_window(w, ts) return w.at - ts < w.days * DAY_MS end

local function window_add(w, ts, amount, retention_ms)
  if in_window(w, ts) then
    w.n, w.spend = w.n + 1, w.spend + amount
    w.due = earlier(w.due, ts + w.days * DAY_MS)
  end
  if retention_ms > 0 then w.due = earlier(w.due, ts + retention_ms) end
end

local function window_refund(w, ts, effective)
  if in_window(w, ts) then w.spend = w.spend - effective end
end

-- The cancelled order may be the one whose leaving is the window's due time: the window
-- is counted right, but its next scoring folds the records again for the exact due time
-- (else a due pass would examine the customer for nothing).
local function window_cancel(w, ts, net)
  if in_window(w, ts) then w.n, w.spend = w.n - 1, w.spend - net end
  w.due = w.at
end

-- Fold the order records of one bucket (an HGETALL reply) into windows at `as_of`, for the
-- customer `only` or (nil) every customer: cid -> {n, spend, due, drop, pruned}. A record
-- with ts <= prune_before (nil: none) is past the retention: it and its refund marks are
-- listed in `drop` to be deleted and count no more (it is older than any window); `pruned`
-- is the latest time of a live purchase among them. `stored` gets the window texts found,
-- cid -> text. A record's deletion is due `lag` after it reaches the retention: how far
-- the clock of the retention (the watermark) is behind as_of, by which the due index is
-- read; else the customer would be due at every pass until the watermark caught up.
local function fold_orders(all, only, as_of, days, retention_ms, prune_before, stored, lag)
  local window_ms = days * DAY_MS
  local out, dropped = {}, {}
  local function of(cid)
    local c = out[cid]
    if not c then
      c = { n = 0, spend = 0, drop = {} }
      out[cid] = c
    end
    return c
  end
  for i = 1, #all, 2 do
    local field = all[i]
    local sep = string.find(field, '\31', 1, true)
    if not sep then
      if stored and (not only or field == only) then stored[field] = all[i + 1] end
    else
      local cid = string.sub(field, 1, sep - 1)
      if (not only or cid == only) and not string.find(field, '\31', sep + 1, true) then
        local o, c = decode_order(all[i + 1]), of(cid)
        if prune_before and o.ts <= prune_before then
          c.drop[#c.drop + 1] = field
          dropped[field] = c
          if o.status == 'A' then c.pruned = later(c.pruned, o.ts) end
        else
          if retention_ms > 0 then c.due = earlier(c.due, o.ts + retention_ms + (lag or 0)) end
          if o.status == 'A' and as_of - o.ts < window_ms then
            c.n, c.spend = c.n + 1, c.spend + o.amount - o.refunded
            c.due = earlier(c.due, o.ts + window_ms)
          end
        end
      end
    end
  end
  if next(dropped) then
    for i = 1, #all, 2 do
      local field = all[i]
      local sep = string.find(field, '\31', 1, true)
      local sep2 = sep and string.find(field, '\31', sep + 1, true)
      local c = sep2 and dropped[string.sub(field, 1, sep2 - 1)]
      if c then c.drop[#c.drop + 1] = field end
    end
  end
  return out
end

-- The window fold_orders found (c: nil for no record), keeping what `old` knew of
-- deleted records.
local function folded_window(c, days, as_of, old)
  return { days = days, n = c and c.n or 0, spend = c and c.spend or 0, at = as_of,
    due = c and c.due, pruned = later(old and old.pruned, c and c.pruned) }
end
