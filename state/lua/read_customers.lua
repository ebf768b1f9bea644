-- Read many customers' profiles in one call.
--
-- Why a script: one EVALSHA for a thousand customers costs the client one command to encode
-- instead of a thousand HGETs, and only scripts know the packed profile format.
-- KEYS: 1 segment-codes hash, 2.. each customer's profile bucket; ARGV: the customer ids.
-- Returns ten fields per customer (false where it does not exist), in the order of
-- reads.py's PROFILE_FIELDS.
local codes_key = KEYS[1]
local out = {}
for i, cid in ipairs(ARGV) do
  reply_profile(out, unpack_profile(redis.call('HGET', KEYS[i + 1], cid)), codes_key)
end
return out
