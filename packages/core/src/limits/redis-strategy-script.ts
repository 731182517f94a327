import { createHash } from 'node:crypto'
import { REPLY_LUA } from './redis-reply.js'

/** How the strategy script names a window's strategy in ARGV. */
export const STRATEGY_CODE = {
  'fixed-window': 'f',
  'moving-window': 'm',
  'sliding-window-counter': 's',
} as const

/**
 * `HIT_SCRIPT` for windows of every strategy, in one round trip: checks every window, then charges
 * all of them or none, then works out how long until each window frees room.
 * KEYS: one per window. ARGV: cost, deadline (ms), the time to count by ('' = the server's TIME,
 * anything else is for tests), then amount, window length (ms) and strategy code per key.
 * Answers `allowed (1|0) used_1 reset_1 ... used_n reset_n time-ms`, or `-1 time-ms` uncounted
 * after the deadline, as one status string (see HIT_SCRIPT).
 *
 * - fixed window `f`: a counter with a TTL, as in HIT_SCRIPT;
 * - moving window `m`: a list of hit times, newest first, one entry per unit of cost, trimmed to
 *   the hits still in the window; its count is found by binary search (entries are sorted);
 * - sliding window counter `s`: a hash { b = bucket index, p = previous, c = current }.
 *
 * The reset time is until `need` units are free (see unitsToFree in window-counting.ts); the
 * sliding window counter's arithmetic is msUntilAtMost in sliding-window-counter.ts.
 */
export const STRATEGY_SCRIPT = `${REPLY_LUA}
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
end
if now > tonumber(ARGV[2]) then return reply({-1, now}) end
local cost = tonumber(ARGV[1])
local n = #KEYS
local out = {1}
local fresh = {}
local prev = {}
local cur = {}
local elapsed = {}
local bucket = {}
for i = 1, n do
  local key = KEYS[i]
  local amount = tonumber(ARGV[3 * i + 1])
  local window = tonumber(ARGV[3 * i + 2])
  local kind = ARGV[3 * i + 3]
  local used = 0
  if kind == 'f' then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      fresh[i] = true
      ttl = window
    else
      used = tonumber(redis.call('GET', key) or '0')
    end
    out[2 * i + 1] = ttl
  elseif kind == 'm' then
    local lo = 0
    local hi = redis.call('LLEN', key)
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if tonumber(redis.call('LINDEX', key, mid)) + window > now then lo = mid + 1 else hi = mid end
    end
    used = lo
  else
    local b = math.floor(now / window)
    local v = redis.call('HMGET', key, 'b', 'p', 'c')
    local stored = tonumber(v[1])
    local p, c = 0, 0
    if stored == b then
      p = tonumber(v[2]) or 0
      c = tonumber(v[3]) or 0
    elseif stored == b - 1 then
      p = tonumber(v[3]) or 0
    end
    prev[i], cur[i], bucket[i], elapsed[i] = p, c, b, now - b * window
    used = math.floor(p * (window - elapsed[i]) / window) + c
  end
  if used + cost > amount then out[1] = 0 end
  out[2 * i] = used
end
local allowed = out[1] == 1
for i = 1, n do
  local key = KEYS[i]
  local amount = tonumber(ARGV[3 * i + 1])
  local window = tonumber(ARGV[3 * i + 2])
  local kind = ARGV[3 * i + 3]
  local used = out[2 * i]
  if allowed then
    if kind == 'f' then
      if fresh[i] then
        redis.call('SET', key, cost, 'PX', window)
        used = cost
      else
        used = redis.call('INCRBY', key, cost)
      end
    elseif kind == 'm' then
      if cost > 0 then
        local left = cost
        while left > 0 do
          local chunk = math.min(left, 1000)
          local times = {}
          for j = 1, chunk do times[j] = now end
          redis.call('LPUSH', key, unpack(times))
          left = left - chunk
        end
        redis.call('PEXPIRE', key, window)
      end
      used = used + cost
      redis.call('LTRIM', key, 0, used - 1)
    else
      cur[i] = cur[i] + cost
      redis.call('HSET', key, 'b', bucket[i], 'p', prev[i], 'c', cur[i])
      redis.call('PEXPIRE', key, (bucket[i] + 2) * window - now)
      used = used + cost
    end
    out[2 * i] = used
  end
  if kind ~= 'f' then
    local left = amount - used
    local need = left + 1
    if left < cost then need = cost end
    local keep = amount - need
    local wait = 0
    if keep >= 0 then
      if kind == 'm' then
        if used > keep then
          wait = tonumber(redis.call('LINDEX', key, keep)) + window - now
        end
      else
        local p, c, e = prev[i], cur[i], elapsed[i]
        if c <= keep then
          local room = keep + 1 - c
          if p * (window - e) >= room * window then
            local first = math.floor(window * (p - room) / p) + 1
            wait = math.min(first, window) - e
          end
        else
          wait = window - e + math.floor(window * (c - (keep + 1)) / c) + 1
        end
      end
    end
    out[2 * i + 1] = wait
  end
end
out[2 * n + 2] = now
return reply(out)
`

export const STRATEGY_SCRIPT_SHA = createHash('sha1').update(STRATEGY_SCRIPT).digest('hex')
