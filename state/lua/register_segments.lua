-- Give every segment name of the rules its code, in the order given (sorted by the caller),
-- before anything is scored: codes then do not depend on which customer happened to reach
-- a segment first, so two stores fed the same events hold the same bytes.
-- KEYS: 1 segment-codes hash, 2 layout marker, 3 offsets hash; ARGV: segment names.
-- Returns the number of names known.
check_layout(KEYS[2], KEYS[3])
for _, name in ipairs(ARGV) do code_of(KEYS[1], name) end
local n = 0
for _ in pairs(codes or {}) do n = n + 1 end
return n
