import { createHash } from 'node:crypto'

/**
 * Reserves tokens in every window or none, in one round trip. KEYS: one counter per window.
 * ARGV: tokens wanted, deadline (ms on the server's clock), then amount and window length (ms)
 * per key. The reservation is capped at the smallest room left; no room in some window refuses.
 * Returns { allowed (1|0), reserved, used_1, ttl_1, …, server time }, or { -1, server time }
 * untouched past the deadline (the caller has answered from its fallback by then).
 */
export const RESERVE_SCRIPT = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if now > tonumber(ARGV[2]) then return {-1, now} end
local want = tonumber(ARGV[1])
local n = #KEYS
local out = {1, 0}
local room = want
local fresh = {}
for i = 1, n do
  local amount = tonumber(ARGV[2 * i + 1])
  local ttl = redis.call('PTTL', KEYS[i])
  local used = 0
  if ttl < 0 then
    fresh[i] = true
    ttl = tonumber(ARGV[2 * i + 2])
  else
    used = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  if amount - used < room then room = amount - used end
  out[2 * i + 1] = used
  out[2 * i + 2] = ttl
end
-- room is min(want, smallest room left): no room left anywhere refuses, even for 0 wanted.
for i = 1, n do
  if tonumber(ARGV[2 * i + 1]) - out[2 * i + 1] <= 0 then out[1] = 0 end
end
if out[1] == 1 then
  out[2] = room
  for i = 1, n do
    if fresh[i] then
      redis.call('SET', KEYS[i], room, 'PX', tonumber(ARGV[2 * i + 2]))
      out[2 * i + 1] = room
    else
      out[2 * i + 1] = redis.call('INCRBY', KEYS[i], room)
    end
  end
end
out[2 * n + 3] = now
return out
`

/**
 * Adds a difference to every window that still runs (a refund never creates a counter, nor
 * takes one below 0). KEYS: one counter per window. ARGV: delta, then window length per key.
 */
export const SETTLE_SCRIPT = `
local delta = tonumber(ARGV[1])
for i = 1, #KEYS do
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl < 0 then
    if delta > 0 then redis.call('SET', KEYS[i], delta, 'PX', tonumber(ARGV[i + 1])) end
  else
    local used = redis.call('INCRBY', KEYS[i], delta)
    if used < 0 then redis.call('SET', KEYS[i], 0, 'PX', ttl) end
  end
end
return 1
`

export const RESERVE_SCRIPT_SHA = createHash('sha1').update(RESERVE_SCRIPT).digest('hex')
export const SETTLE_SCRIPT_SHA = createHash('sha1').update(SETTLE_SCRIPT).digest('hex')
