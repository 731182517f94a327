import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { LimitEngine, MemoryStore } from '@tollgate/core/internal'
import { afterEach, describe, expect, it } from 'vitest'

// 100 000 distinct clients through the memory store: what they cost, how they leave, and that
// they cannot push a real client's counters out.

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function heapUsed(): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

const KEYS = 100_000
/** IPv4-shaped keys, as the default key generator produces them. */
const keyOf = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`

const engines: LimitEngine<unknown>[] = []
afterEach(async () => {
  for (const engine of engines.splice(0)) await engine.close()
})

/** A route limited by `limits`, counting in `store`, as the adapters drive it. */
function route(limits: string, store: MemoryStore): (ip: string) => { allowed: boolean } {
  const engine = new LimitEngine<unknown>({ store }, console)
  engines.push(engine)
  const limit = engine.route('POST /v1/chat/completions', limits, 'test')!
  return (ip) => limit.check({}, ip) as { allowed: boolean }
}

describe('memory store under a key flood', () => {
  it('costs a bounded amount per key and window, and every key leaves when its window ends', () => {
    let clock = 1_700_000_000_000
    const now = () => clock
    const perKeyAndWindow: number[] = []
    for (const limits of ['1000 per hour', '1000 per hour, 10000 per day']) {
      const store = new MemoryStore({ now })
      const hit = route(limits, store)
      const windows = limits.split(',').length
      const before = heapUsed()
      for (let i = 0; i < KEYS; i++) hit(keyOf(i))
      const after = heapUsed()
      expect(store.size).toBe(KEYS * windows)
      perKeyAndWindow.push((after - before) / (KEYS * windows))

      // Nothing leaves while its window runs; everything leaves once it has ended.
      clock += 3_600_000 - 1
      store.sweep()
      expect(store.size).toBe(KEYS * windows)
      clock += 86_400_000
      store.sweep()
      expect(store.size).toBe(0)
      expect(heapUsed() - before).toBeLessThan(2 * 1024 * 1024)
    }
    console.info(
      `memory store: ${perKeyAndWindow.map((b) => `${Math.round(b)} B`).join(' / ')} per key and window (1 / 2 windows)`,
    )
    // The README's "Memory store" section quotes this measurement (about 125 B with one window,
    // 110 B per window with two, on Node 20); the bound here leaves room for other runtimes.
    for (const bytes of perKeyAndWindow) expect(bytes).toBeLessThan(300)
  })

  it('a flood of new keys cannot reset a live client', () => {
    const check = route('5 per hour', new MemoryStore())
    const victim = '203.0.113.50'
    for (let i = 0; i < 5; i++) expect(check(victim).allowed).toBe(true)
    expect(check(victim).allowed).toBe(false)

    // The attacker spends a fresh budget on each of 100 000 addresses.
    for (let i = 0; i < KEYS; i++) check(keyOf(i))

    // The live client is still over its limit: nothing was evicted to make room.
    expect(check(victim).allowed).toBe(false)
    // And IPv6 addresses inside one /64 are one client, however many are used.
    const v6 = (i: number) =>
      `2001:db8:77:1:${(i & 0xffff).toString(16)}:${((i * 31) & 0xffff).toString(16)}::${i.toString(16)}`
    const verdicts = Array.from({ length: 1_000 }, (_, i) => check(v6(i)).allowed)
    expect(verdicts.filter(Boolean)).toHaveLength(5)
  })
})
