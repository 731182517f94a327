/**
 * What it costs to keep the precise-prefix index of one engine, the two ways replicas could share
 * it: every replica subscribes and indexes for itself (memory and CPU per replica), or the events
 * update one index in Redis (Redis time per event batch written, and per request looked up).
 *
 * A recorded stream in vLLM's array encoding (64-bit engine hashes, blocks of 16 tokens):
 * 10,000 BlockStored events of 8 blocks, 4 events a batch (one scheduler step), conversations of
 * 4 events chained by parent hash; an engine cache of 20,000 blocks, so once full every stored
 * block evicts one (a BlockRemoved in the same batch), as a busy engine publishes.
 *
 *   node bench/kv-index-cost.js [--events 10000] [--no-redis]
 *
 * Needs `npm run build` (reads packages/core/dist) and, for the Redis half, `redis-server` on PATH
 * (a private one on a free port is started and stopped).
 */
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { Packr, Unpackr } from 'msgpackr'
import { chainKey, ROOT_KEY } from '../packages/core/dist/balance/kv-events/block-keys.js'
import { eventsOfBatch } from '../packages/core/dist/balance/kv-events/event-decoder.js'
import { KvBlockIndex } from '../packages/core/dist/balance/kv-events/kv-block-index.js'

const { values } = parseArgs({
  options: { events: { type: 'string', default: '10000' }, 'no-redis': { type: 'boolean', default: false } },
})
const EVENTS = Number(values.events)
const BLOCK = 16
const PER_EVENT = 8
const PER_BATCH = 4
const CHAIN = 4 // events a conversation: a batch is one conversation's 32 blocks
const CACHE_BLOCKS = 20_000

// The stream: batches of [ts, events], and per stored block its engine hash and our key (for Redis).
let seed = 12345
const random = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
  return seed
}
const packr = new Packr({ useRecords: false })
const batches = []
const plain = []
const live = []
let pending = []
let pendingPlain = []
let parent = null
let parentKey = ROOT_KEY
let stored = 0
for (let e = 0; e < EVENTS; e++) {
  if (e % CHAIN === 0) {
    parent = null
    parentKey = ROOT_KEY
  }
  const tokens = Array.from({ length: PER_EVENT * BLOCK }, () => random() % 128_000)
  const hashes = Array.from({ length: PER_EVENT }, () => (BigInt(random()) << 32n) | BigInt(random()))
  pending.push(['BlockStored', hashes, parent, tokens, BLOCK, null, 'GPU'])
  const keys = []
  for (let i = 0; i < PER_EVENT; i++) {
    parentKey = chainKey(parentKey, tokens, i * BLOCK, (i + 1) * BLOCK)
    keys.push(parentKey)
  }
  pendingPlain.push({ stored: hashes.map((h, i) => [String(h), keys[i]]), removed: [] })
  live.push(...hashes)
  stored += PER_EVENT
  const evicted = live.length > CACHE_BLOCKS ? live.splice(0, live.length - CACHE_BLOCKS) : []
  if (evicted.length > 0) {
    pending.push(['BlockRemoved', evicted, 'GPU'])
    pendingPlain.at(-1).removed = evicted.map(String)
  }
  parent = hashes.at(-1)
  if ((e + 1) % PER_BATCH === 0 || e === EVENTS - 1) {
    batches.push(packr.pack([Date.now() / 1000, pending]))
    plain.push(pendingPlain)
    pending = []
    pendingPlain = []
  }
}
const bytes = batches.reduce((sum, b) => sum + b.length, 0)
console.log(
  `stream: ${EVENTS} BlockStored events (${stored} blocks), ${batches.length} batches, ${(bytes / 1024).toFixed(0)} KiB`,
)

// 1. Every replica subscribes: decode + apply, as KvEventSubscriber does per batch.
const unpackr = new Unpackr({ useRecords: false, int64AsType: 'bigint', mapsAsObjects: true })
function applyAll() {
  const index = new KvBlockIndex(262_144)
  const start = performance.now()
  for (const payload of batches)
    for (const event of eventsOfBatch(unpackr.unpack(payload))) index.apply(event)
  return { ms: performance.now() - start, index }
}
applyAll()
const runs = [applyAll(), applyAll(), applyAll(), applyAll(), applyAll()]
  .map((r) => r.ms)
  .sort((a, b) => a - b)
const median = runs[2]
console.log(
  `apply (decode + index), median of 5: ${median.toFixed(1)} ms for the stream; ${((median * 1000) / batches.length).toFixed(1)} µs a batch, ${((median * 1000) / EVENTS).toFixed(2)} µs a BlockStored event, ${((median * 1000) / stored).toFixed(2)} µs a stored block`,
)

// Memory per indexed block: an index of 200,000 blocks against none, after a full GC.
function heap() {
  globalThis.gc?.()
  globalThis.gc?.()
  return process.memoryUsage().heapUsed
}
if (globalThis.gc === undefined) console.log('memory: run with node --expose-gc for the per-block figure')
else {
  const before = heap()
  const index = new KvBlockIndex(1_000_000)
  const tokens = Array.from({ length: PER_EVENT * BLOCK }, () => random() % 128_000)
  for (let e = 0; e < 25_000; e++) {
    const hashes = Array.from({ length: PER_EVENT }, () => (BigInt(random()) << 32n) | BigInt(random()))
    tokens[0] = e
    index.apply({
      type: 'BlockStored',
      blockHashes: hashes,
      parent: null,
      tokenIds: tokens,
      blockSize: BLOCK,
      keyedBeyondTokens: false,
      medium: 'GPU',
    })
  }
  const after = heap()
  console.log(`memory: ${((after - before) / index.size).toFixed(0)} bytes a block (${index.size} blocks)`)
}

// 2. One index in Redis: the same stream written as one script call a batch, and a request's lookup.
if (!values['no-redis']) await redisCosts()

async function redisCosts() {
  const port = await new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
  const child = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  })
  const r = new Redis({ port, lazyConnect: true, retryStrategy: () => 50 })
  r.on('error', () => {})
  for (let i = 0; i < 100 && r.status !== 'ready'; i++) {
    await r.connect().catch(() => new Promise((resolve) => setTimeout(resolve, 50)))
  }
  try {
    // Per backend: a hash engine hash → key (to apply removals) and a hash key → count (to match).
    const APPLY = `
      local byHash, keys = KEYS[1], KEYS[2]
      local n, i = tonumber(ARGV[1]), 2
      for _ = 1, n do
        redis.call('HSET', byHash, ARGV[i], ARGV[i + 1])
        redis.call('HINCRBY', keys, ARGV[i + 1], 1)
        i = i + 2
      end
      while ARGV[i] do
        local key = redis.call('HGET', byHash, ARGV[i])
        if key then
          redis.call('HDEL', byHash, ARGV[i])
          if redis.call('HINCRBY', keys, key, -1) <= 0 then redis.call('HDEL', keys, key) end
        end
        i = i + 1
      end
      return n`
    const LOOKUP = `
      local out, count = {}, tonumber(ARGV[1])
      for b = 1, #KEYS do
        local held = 0
        for i = 1, count do
          if redis.call('HEXISTS', KEYS[b], ARGV[i + 1]) == 0 then break end
          held = i
        end
        out[b] = held
      end
      return out`
    const apply = await r.script('LOAD', APPLY)
    const lookup = await r.script('LOAD', LOOKUP)
    await r.config('RESETSTAT')
    let start = performance.now()
    for (const batch of plain) {
      const args = []
      let n = 0
      const removed = []
      for (const event of batch) {
        for (const [hash, key] of event.stored) args.push(hash, String(key))
        n += event.stored.length
        removed.push(...event.removed)
      }
      await r.evalsha(apply, 2, 'kv:{e1}:h', 'kv:{e1}:k', n, ...args, ...removed)
    }
    const writeMs = performance.now() - start
    const stats = await commandStats(r)
    console.log(
      `Redis apply, one script a batch: ${stats.usecPerCall.toFixed(1)} µs of Redis time a batch (${(stats.usecPerCall / (stored / batches.length)).toFixed(2)} µs a stored block), round trip ${((writeMs * 1000) / batches.length).toFixed(0)} µs`,
    )
    console.log(
      `Redis memory of the index: ${(await memoryOf(r, ['kv:{e1}:h', 'kv:{e1}:k'])) / (await r.hlen('kv:{e1}:h'))} bytes a block`,
    )
    // A prompt of 512 tokens every engine holds whole (the last conversation's 32 blocks), 3 backends:
    // every block is read on every backend, the lookup's worst case per block.
    const prompt = plain.at(-1).flatMap((event) => event.stored.map(([, key]) => String(key)))
    await r.config('RESETSTAT')
    const lookups = 2_000
    start = performance.now()
    for (let i = 0; i < lookups; i++)
      await r.evalsha(lookup, 3, 'kv:{e1}:k', 'kv:{e1}:k', 'kv:{e1}:k', prompt.length, ...prompt)
    const lookupMs = performance.now() - start
    const read = await commandStats(r)
    console.log(
      `Redis lookup, 3 backends × ${prompt.length}-block prompt held whole: ${read.usecPerCall.toFixed(1)} µs of Redis time (${(read.usecPerCall / (3 * prompt.length)).toFixed(2)} µs a block read), round trip ${((lookupMs * 1000) / lookups).toFixed(0)} µs`,
    )
  } finally {
    r.disconnect()
    child.kill()
  }
}

async function commandStats(r) {
  const info = await r.info('commandstats')
  const line = info.split('\n').find((l) => l.startsWith('cmdstat_evalsha:'))
  const calls = Number(/calls=(\d+)/.exec(line)[1])
  const usec = Number(/usec=(\d+)/.exec(line)[1])
  return { calls, usecPerCall: usec / calls }
}

async function memoryOf(r, keys) {
  let total = 0
  for (const key of keys) total += Number(await r.memory('USAGE', key, 'SAMPLES', 0))
  return total
}
