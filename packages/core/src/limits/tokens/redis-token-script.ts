import { createHash } from 'node:crypto'

/**
 * What both scripts share: a window that went over its amount keeps its overrun in a second key
 * (`<counter>:over` = "<used>:<window end>", kept until the overrun is paid off), which the next
 * window starts from, less the amount of every whole window that passed untouched in between
 * (`carriedOver` in token-store.ts). KEYS: the counters, then their `:over` keys.
 */
const CARRY = `
local function owe(over, used, amount, ttl, window, now)
  if used > amount then
    local keep = ttl + math.ceil((used - amount) / amount) * window
    redis.call('SET', over, used .. ':' .. (now + ttl), 'PX', keep)
  else
    redis.call('DEL', over)
  end
end
local function carried(over, amount, window, now)
  local v = redis.call('GET', over)
  if not v then return 0 end
  local sep = string.find(v, ':', 1, true)
  local used = tonumber(string.sub(v, 1, sep - 1))
  local ended = tonumber(string.sub(v, sep + 1))
  local passed = 1 + math.floor((now - ended) / window)
  local left = used - passed * amount
  if left < 0 then left = 0 end
  return left
end
`

/**
 * Reserves tokens in every window or none, in one round trip. ARGV: tokens wanted, deadline (ms
 * on the server's clock), then amount and window length (ms) per window. Every window must have
 * room for the estimate, or be unused when the estimate is more than its amount (the reservation
 * is then capped at it); else the request is refused. Returns { allowed (1|0),
 * reserved, used_1, ttl_1, …, server time }, or { -1, server time } untouched past the deadline
 * (the caller has answered from its fallback by then).
 */
export const RESERVE_SCRIPT = `${CARRY}
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if now > tonumber(ARGV[2]) then return {-1, now} end
local want = tonumber(ARGV[1])
local n = #KEYS / 2
local out = {1, 0}
local room = want
local fresh = {}
for i = 1, n do
  local amount = tonumber(ARGV[2 * i + 1])
  local window = tonumber(ARGV[2 * i + 2])
  local ttl = redis.call('PTTL', KEYS[i])
  local used = 0
  if ttl < 0 then
    used = carried(KEYS[n + i], amount, window, now)
    fresh[i] = used
    ttl = window
  else
    used = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  if amount - used < room then room = amount - used end
  if amount - used < math.min(want, amount) then out[1] = 0 end
  out[2 * i + 1] = used
  out[2 * i + 2] = ttl
end
-- No room left anywhere refuses, even for 0 wanted.
for i = 1, n do
  if tonumber(ARGV[2 * i + 1]) - out[2 * i + 1] <= 0 then out[1] = 0 end
end
local take = 0
if out[1] == 1 then
  out[2] = room
  take = room
end
for i = 1, n do
  local window = tonumber(ARGV[2 * i + 2])
  if fresh[i] then
    -- A window that starts over with an overrun starts even when this request is refused.
    if take > 0 or fresh[i] > 0 then
      redis.call('SET', KEYS[i], fresh[i] + take, 'PX', window)
      out[2 * i + 1] = fresh[i] + take
      owe(KEYS[n + i], fresh[i] + take, tonumber(ARGV[2 * i + 1]), window, window, now)
    end
  elseif take > 0 then
    out[2 * i + 1] = redis.call('INCRBY', KEYS[i], take)
  end
end
out[2 * n + 3] = now
return out
`

/**
 * Adds a difference to every window that still runs (a refund never creates a counter, nor takes
 * one below 0); a window that went over records what it owes. ARGV: delta, then amount and window
 * length per window.
 */
export const SETTLE_SCRIPT = `${CARRY}
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local delta = tonumber(ARGV[1])
local n = #KEYS / 2
for i = 1, n do
  local amount = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl < 0 then
    local used = carried(KEYS[n + i], amount, window, now)
    if delta > 0 then used = used + delta end
    if used > 0 then
      redis.call('SET', KEYS[i], used, 'PX', window)
      owe(KEYS[n + i], used, amount, window, window, now)
    end
  else
    local used = redis.call('INCRBY', KEYS[i], delta)
    if used < 0 then
      used = 0
      redis.call('SET', KEYS[i], 0, 'PX', ttl)
    end
    if used > amount or delta < 0 then owe(KEYS[n + i], used, amount, ttl, window, now) end
  end
end
return 1
`

export const RESERVE_SCRIPT_SHA = createHash('sha1').update(RESERVE_SCRIPT).digest('hex')
export const SETTLE_SCRIPT_SHA = createHash('sha1').update(SETTLE_SCRIPT).digest('hex')
