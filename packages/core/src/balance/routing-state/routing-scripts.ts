import { createHash } from 'node:crypto'
import { REPLY_LUA } from '../../limits/redis-reply.js'

/**
 * The Lua scripts behind `RedisRoutingState`, one round trip each. KEYS[1] is the base of every
 * key (`<prefix>{routing}:`): its hash tag puts the whole routing state in one Redis Cluster slot,
 * so the scripts may derive the keys they touch from it.
 *
 * Keys: `replicas` (ZSET replica → expiry, ms on the server's clock: a replica is alive while its
 * entry has not expired), `b:<backend>` (HASH of `i:<replica>` → requests that replica has in
 * flight there, `s:<replica>` → requests it has sent there), `p:<backend>` (ZSET prefix block →
 * score, see PREFIX_LUA). Fields of a dead replica are deleted by the first script that reads them.
 *
 * Every answer is one string of integers (`REPLY_LUA`); per backend it holds what the other live
 * replicas have in flight there and have sent there: the caller counts its own requests itself.
 */
const COMMON_LUA = `${REPLY_LUA}
local base = KEYS[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local alive = {}
local function isAlive(replica)
  local known = alive[replica]
  if known == nil then
    local expiry = redis.call('ZSCORE', base .. 'replicas', replica)
    known = expiry ~= false and expiry ~= nil and tonumber(expiry) > now
    alive[replica] = known
  end
  return known
end
-- Others' requests in flight at a backend and sent there, and this replica's own count there.
local function counts(id, me)
  local key = base .. 'b:' .. id
  local all = redis.call('HGETALL', key)
  local inflight, sent, own = 0, 0, 0
  for i = 1, #all, 2 do
    local field = all[i]
    local replica = string.sub(field, 3)
    if replica == me then
      if string.sub(field, 1, 1) == 'i' then own = tonumber(all[i + 1]) end
    elseif isAlive(replica) then
      if string.sub(field, 1, 1) == 'i' then inflight = inflight + tonumber(all[i + 1])
      else sent = sent + tonumber(all[i + 1]) end
    else
      redis.call('HDEL', key, field)
    end
  end
  return inflight, sent, own
end
local function keepAlive(me, ttl)
  redis.call('ZADD', base .. 'replicas', string.format('%d', now + ttl), me)
  redis.call('PEXPIRE', base .. 'replicas', 10 * ttl)
end
`

/**
 * Prefix blocks in a backend's ZSET, scored \`((ms × 256) + order) × 2 + home\`: ms is when the block
 * was last sent there, order ranks a prompt's earlier blocks above its later ones (so trimming the
 * least recent drops a chain's tail before its head, as the engines' LRU caches do), home is 1
 * when the backend holds the block as the prefix's home, 0 as a guest. A block older than the
 * expiry counts as gone; the set keeps at most \`cap\` blocks.
 */
const PREFIX_LUA = `
local function split(text)
  local out = {}
  for v in string.gmatch(text, '%S+') do out[#out + 1] = v end
  return out
end
local function matchOf(id, members, count, ttl)
  if count == 0 then return 0, 0 end
  local scores = redis.call('ZMSCORE', base .. 'p:' .. id, unpack(members))
  local oldest = (now - ttl) * 512
  local match, home = count, count
  for i = 1, count do
    local s = scores[i]
    local score = s and tonumber(s)
    if not score or score < oldest then
      match = i - 1
      break
    end
    if home == count and score % 2 ~= 1 then home = i - 1 end
  end
  if home > match then home = match end
  return match, home
end
local function record(id, members, count, isHome, cap, ttl)
  local key = base .. 'p:' .. id
  local stamp = now * 256
  local oldest = (now - ttl) * 512
  local held = false
  if isHome == 0 then held = redis.call('ZMSCORE', key, unpack(members)) end
  local args = {}
  for i = 1, count do
    local order = count - i
    if order > 255 then order = 255 end
    local h = isHome
    if held then
      local old = held[i] and tonumber(held[i])
      if old and old >= oldest and old % 2 == 1 then h = 1 end
    end
    args[2 * i - 1] = string.format('%d', (stamp + order) * 2 + h)
    args[2 * i] = members[i]
  end
  redis.call('ZADD', key, unpack(args))
  local size = redis.call('ZCARD', key)
  if size > cap then redis.call('ZREMRANGEBYRANK', key, 0, size - cap - 1) end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%d', oldest))
  redis.call('PEXPIRE', key, ttl)
end
`

/**
 * Before a prefix pick: per candidate, others' in flight and sent, and how many leading blocks it
 * holds (as home or guest, then as home). ARGV: me, prefix ttl, n, n backend ids, count, the blocks
 * in one string (one argument instead of one per block: each costs the client an encoding).
 * Answers `inflight sent match home` per candidate.
 */
export const VIEW_SCRIPT = `${COMMON_LUA}${PREFIX_LUA}
local me = ARGV[1]
local ttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local count = tonumber(ARGV[4 + n])
local members = count > 0 and split(ARGV[5 + n]) or {}
local out = {}
for c = 1, n do
  local id = ARGV[3 + c]
  local inflight, sent = counts(id, me)
  local match, home = matchOf(id, members, count, ttl)
  out[#out + 1] = inflight
  out[#out + 1] = sent
  out[#out + 1] = match
  out[#out + 1] = home
end
return reply(out)
`

/**
 * Takes one request's place at a backend: refused (0) when every live replica's requests there
 * already reach \`max\` (-1: no limit, the call only counts); granted (1) it counts the request in
 * flight and sent, keeps this replica alive, and records the prompt's blocks there.
 * ARGV: me, lease ttl, backend, max, n, n candidate ids, count, home (1|0), cap, prefix ttl, blocks
 * (one string, as for VIEW_SCRIPT).
 * Answers `granted` then `inflight sent` of the others per candidate.
 */
export const CLAIM_SCRIPT = `${COMMON_LUA}${PREFIX_LUA}
local me = ARGV[1]
local leaseTtl = tonumber(ARGV[2])
local id = ARGV[3]
local max = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
keepAlive(me, leaseTtl)
local granted = 1
if max >= 0 then
  local inflight, _, own = counts(id, me)
  if inflight + own >= max then granted = 0 end
end
if granted == 1 then
  local key = base .. 'b:' .. id
  redis.call('HINCRBY', key, 'i:' .. me, 1)
  redis.call('HINCRBY', key, 's:' .. me, 1)
  redis.call('PEXPIRE', key, 10 * leaseTtl)
  local at = 6 + n
  local count = tonumber(ARGV[at])
  if count and count > 0 then
    record(id, split(ARGV[at + 4]), count, tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]))
  end
end
local out = {granted}
for c = 1, n do
  local inflight, sent = counts(ARGV[5 + c], me)
  out[#out + 1] = inflight
  out[#out + 1] = sent
end
return reply(out)
`

/** Ends one request at a backend. ARGV: me, backend. Answers `inflight sent` of the others there. */
export const RELEASE_SCRIPT = `${COMMON_LUA}
local me = ARGV[1]
local key = base .. 'b:' .. ARGV[2]
local left = redis.call('HINCRBY', key, 'i:' .. me, -1)
if left <= 0 then redis.call('HDEL', key, 'i:' .. me) end
local inflight, sent = counts(ARGV[2], me)
return reply({inflight, sent})
`

/**
 * Keeps this replica alive and states its own in-flight count per backend (which heals any drift
 * a lost or late call left); forgets replicas whose entry expired. ARGV: me, lease ttl, n, then n
 * pairs (backend, own in flight). Answers `inflight sent` of the others per backend.
 */
export const HEARTBEAT_SCRIPT = `${COMMON_LUA}
local me = ARGV[1]
local leaseTtl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
keepAlive(me, leaseTtl)
redis.call('ZREMRANGEBYSCORE', base .. 'replicas', '-inf', string.format('%d', now))
local out = {}
for c = 1, n do
  local id = ARGV[2 + 2 * c]
  local own = tonumber(ARGV[3 + 2 * c])
  local key = base .. 'b:' .. id
  if own > 0 then
    redis.call('HSET', key, 'i:' .. me, own)
    redis.call('PEXPIRE', key, 10 * leaseTtl)
  else
    redis.call('HDEL', key, 'i:' .. me)
  end
  local inflight, sent = counts(id, me)
  out[#out + 1] = inflight
  out[#out + 1] = sent
end
return reply(out)
`

/** Leaves: deletes this replica's entry and counts. ARGV: me, n, n backend ids. */
export const LEAVE_SCRIPT = `${COMMON_LUA}
local me = ARGV[1]
redis.call('ZREM', base .. 'replicas', me)
for c = 1, tonumber(ARGV[2]) do
  redis.call('HDEL', base .. 'b:' .. ARGV[2 + c], 'i:' .. me, 's:' .. me)
end
return reply({0})
`

function sha(script: string): string {
  return createHash('sha1').update(script).digest('hex')
}

export const SCRIPTS = {
  view: { script: VIEW_SCRIPT, sha: sha(VIEW_SCRIPT) },
  claim: { script: CLAIM_SCRIPT, sha: sha(CLAIM_SCRIPT) },
  release: { script: RELEASE_SCRIPT, sha: sha(RELEASE_SCRIPT) },
  heartbeat: { script: HEARTBEAT_SCRIPT, sha: sha(HEARTBEAT_SCRIPT) },
  leave: { script: LEAVE_SCRIPT, sha: sha(LEAVE_SCRIPT) },
} as const

export type RoutingScript = (typeof SCRIPTS)[keyof typeof SCRIPTS]
