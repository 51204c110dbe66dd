-- Budget spend, reserved all-or-nothing: the arithmetic of gateway/budgets/__init__.py.
--
-- KEYS    one integer counter per account: units (1e-12 USD) used in the account's period
-- ARGV[1] "reserve" (add the cost only if it fits every account) or "adjust" (always add)
-- ARGV[2] the cost (or the signed adjustment), an integer as text
-- ARGV[3..] per key: its limit (integer text), then the Unix second it expires at
--
-- Returns {granted 0/1, used per key as text}. Sums are done by INCRBY (exact 64-bit integers)
-- and compared as decimal text, because a Lua number is a double: exact only to 2^53.

local function greater(a, b)
  local a_negative, b_negative = a:sub(1, 1) == '-', b:sub(1, 1) == '-'
  if a_negative ~= b_negative then
    return b_negative
  end
  if a_negative then
    return greater(b:sub(2), a:sub(2))
  end
  if #a ~= #b then
    return #a > #b
  end
  return a > b
end

local mode, cost = ARGV[1], ARGV[2]

local function used_all()
  local used = {}
  for i, key in ipairs(KEYS) do
    used[i] = redis.call('GET', key) or '0'
  end
  return used
end

-- Add first (exact), then compare the stored text with each limit; refuse by taking it back.
-- The script runs atomically, so no client ever sees the sum of a refused reservation.
local reserving = mode == 'reserve' and greater(cost, '0')
if mode == 'reserve' and not reserving then
  return {1, unpack(used_all())}
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, cost)
  redis.call('EXPIREAT', key, ARGV[2 + 2 * i])
end
local used = used_all()
if reserving then
  for i, _ in ipairs(KEYS) do
    if greater(used[i], ARGV[1 + 2 * i]) then
      for _, key in ipairs(KEYS) do
        redis.call('DECRBY', key, cost)
      end
      return {0, unpack(used_all())}
    end
  end
end
return {1, unpack(used)}
