import { describe, expect, it } from 'vitest'
import type { BackendState } from '../../src/balance/backend-state.js'
import { BalancerError } from '../../src/balance/errors.js'
import { peakEwmaLoad } from '../../src/balance/load.js'
import {
  createPicker,
  LeastConnectionsPicker,
  LeastLatencyPicker,
  type Picker,
  PowerOfTwoPicker,
  RandomPicker,
  RoundRobinPicker,
} from '../../src/balance/pickers/index.js'
import { UserCallbacks } from '../../src/user-callback.js'
import { countPicks, manualClock, registryOf, seededRandom } from './helpers.js'

function picks(picker: Picker, candidates: readonly BackendState[], n: number): (BackendState | undefined)[] {
  const members = { version: 0, list: () => candidates }
  return Array.from({ length: n }, () => picker.pick(candidates, {}, members))
}

const ids = (list: (BackendState | undefined)[]) => list.map((b) => b?.id).join('')

describe('smooth weighted round robin', () => {
  it('interleaves 5:1 as AABAAA, cycle after cycle', () => {
    const { backends } = registryOf([5, 1])
    expect(ids(picks(new RoundRobinPicker(), backends, 18))).toBe('AABAAA'.repeat(3))
  })

  it("gives nginx's sequence for 5:1:1", () => {
    const { backends } = registryOf([5, 1, 1])
    expect(ids(picks(new RoundRobinPicker(), backends, 14))).toBe('AABACAA'.repeat(2))
  })

  it('rotates equal weights', () => {
    const { backends } = registryOf([1, 1, 1])
    expect(ids(picks(new RoundRobinPicker(), backends, 9))).toBe('ABCABCABC')
  })

  it('gives 3:2:1 exact shares over whole cycles', () => {
    const { backends } = registryOf([3, 2, 1])
    expect(countPicks(picks(new RoundRobinPicker(), backends, 6000))).toEqual({ A: 3000, B: 2000, C: 1000 })
  })

  it('keeps going over the remaining candidates when one drops out', () => {
    const { backends } = registryOf([1, 1, 1])
    const picker = new RoundRobinPicker()
    const without = backends.filter((b) => b.id !== 'B')
    expect(countPicks(picks(picker, without, 10))).toEqual({ A: 5, C: 5 })
    expect(picker.pick([])).toBeUndefined()
  })
})

describe('weighted random', () => {
  it('matches weights within tolerance over 10 000 picks', () => {
    const { backends } = registryOf([6, 3, 1])
    const counts = countPicks(picks(new RandomPicker(seededRandom(7)), backends, 10_000))
    expect(counts.A! / 10_000).toBeCloseTo(0.6, 1)
    expect(counts.B! / 10_000).toBeCloseTo(0.3, 1)
    expect(counts.C! / 10_000).toBeCloseTo(0.1, 1)
    expect(Math.abs(counts.C! - 1000)).toBeLessThan(150)
  })
})

describe('least connections', () => {
  it('moves load off a busy backend', () => {
    const { backends } = registryOf([1, 1, 1])
    const [a, b, c] = backends as [BackendState, BackendState, BackendState]
    a.inFlight = 5
    b.inFlight = 1
    c.inFlight = 0
    const picker = new LeastConnectionsPicker()
    expect(picker.pick(backends)).toBe(c)
    c.inFlight = 2
    expect(picker.pick(backends)).toBe(b)
  })

  it('weighs in-flight counts by weight, or by maxConcurrency when given', () => {
    const { backends } = registryOf([4, 1])
    const [a, b] = backends as [BackendState, BackendState]
    a.inFlight = 2 // (2 + 1) / 4 per unit of weight
    expect(new LeastConnectionsPicker().pick(backends)).toBe(a)
    a.inFlight = 4 // (4 + 1) / 4 > (0 + 1) / 1
    expect(new LeastConnectionsPicker().pick(backends)).toBe(b)

    const limited = registryOf([1, 1]).registry
    const big = limited.add({ url: 'http://127.0.0.1:9100', id: 'big', maxConcurrency: 10 })
    const small = limited.add({ url: 'http://127.0.0.1:9101', id: 'small', maxConcurrency: 2 })
    big.inFlight = 4 // 5/10
    small.inFlight = 0 // 1/2
    expect(new LeastConnectionsPicker().pick([big, small])).toBe(big)
    big.inFlight = 5 // 6/10 > 1/2
    expect(new LeastConnectionsPicker().pick([big, small])).toBe(small)
  })

  it('spreads ties instead of always taking the first', () => {
    const { backends } = registryOf([1, 1, 1])
    const counts = countPicks(picks(new LeastConnectionsPicker(), backends, 30))
    expect(counts).toEqual({ A: 10, B: 10, C: 10 })
  })

  it('balances a stream of long requests evenly', () => {
    const { backends } = registryOf([2, 1])
    const picker = new LeastConnectionsPicker()
    for (let i = 0; i < 30; i++) picker.pick(backends)!.inFlight++
    expect(backends.map((b) => b.inFlight)).toEqual([20, 10])
  })
})

describe('power of two choices', () => {
  it('sends to the less loaded of two', () => {
    const { backends } = registryOf([1, 1])
    const [a, b] = backends as [BackendState, BackendState]
    a.inFlight = 10
    const counts = countPicks(picks(new PowerOfTwoPicker(seededRandom(1)), backends, 100))
    expect(counts).toEqual({ B: 100 })
    b.inFlight = 20
    expect(countPicks(picks(new PowerOfTwoPicker(seededRandom(1)), backends, 100))).toEqual({ A: 100 })
  })

  it('never picks the most loaded of three', () => {
    const { backends } = registryOf([1, 1, 1])
    ;(backends[1] as BackendState).inFlight = 50
    const counts = countPicks(picks(new PowerOfTwoPicker(seededRandom(3)), backends, 1000))
    expect(counts.B).toBeUndefined()
    expect(counts.A! + counts.C!).toBe(1000)
  })
})

describe('loads and pickers compose', () => {
  it('runs least connections on the peak-EWMA load, and on a load of its own', () => {
    const clock = manualClock()
    const { backends } = registryOf([1, 1, 1], clock.now)
    const [a, b, c] = backends as [BackendState, BackendState, BackendState]
    a.latency.observe(300, clock.now())
    b.latency.observe(20, clock.now())
    c.latency.observe(100, clock.now())
    const byLatency = new LeastConnectionsPicker(peakEwmaLoad)
    for (let i = 0; i < 5; i++) expect(byLatency.pick(backends)).toBe(b)
    // A new signal is one more Load: here, prefer the backend whose id sorts last.
    const byId = new LeastConnectionsPicker({ compare: (x, y) => (x.id < y.id ? 1 : x.id > y.id ? -1 : 0) })
    for (let i = 0; i < 5; i++) expect(byId.pick(backends)).toBe(c)
  })
})

describe('least latency', () => {
  it('avoids a backend with high recorded latency', () => {
    const clock = manualClock()
    const { backends } = registryOf([1, 1, 1], clock.now)
    const [a, b, c] = backends as [BackendState, BackendState, BackendState]
    a.latency.observe(50, clock.now())
    b.latency.observe(2000, clock.now())
    c.latency.observe(60, clock.now())
    const counts = countPicks(picks(new LeastLatencyPicker(seededRandom(5)), backends, 1000))
    expect(counts.B).toBeUndefined()
    expect(counts.A).toBeGreaterThan(0)
    expect(counts.C).toBeGreaterThan(0)
  })

  it('multiplies latency by in-flight requests', () => {
    const clock = manualClock()
    const { backends } = registryOf([1, 1], clock.now)
    const [a, b] = backends as [BackendState, BackendState]
    a.latency.observe(100, clock.now())
    b.latency.observe(300, clock.now())
    a.inFlight = 5 // 100 × 6 = 600 > 300 × 1
    expect(new LeastLatencyPicker(seededRandom(1)).pick(backends)).toBe(b)
  })

  it('probes a backend that has no measurement yet, without flooding it', () => {
    const clock = manualClock()
    const { backends } = registryOf([1, 1], clock.now)
    const [a, b] = backends as [BackendState, BackendState]
    a.latency.observe(500, clock.now())
    const picker = new LeastLatencyPicker(seededRandom(9))
    expect(picker.pick(backends)).toBe(b)
    // With requests in flight and still no answer, it stops winning every comparison.
    b.inFlight = 3
    expect(picker.pick(backends)).toBe(a)
  })
})

describe('createPicker', () => {
  it('creates each named strategy', () => {
    for (const name of [
      'round-robin',
      'random',
      'least-connections',
      'power-of-two',
      'least-latency',
      'consistent-hash',
    ] as const) {
      expect(createPicker(name).name).toBe(name)
    }
  })

  it('rejects an unknown name, quoting it and listing the valid ones', () => {
    expect(() => createPicker('fastest' as never)).toThrow(
      'tollgate: option "strategy" must be one of "round-robin", "random", "least-connections", "power-of-two", "least-latency", "consistent-hash", "least-load", "prefix-affinity", "precise-prefix" or a picker function; got "fastest"',
    )
  })

  it('adapts a custom function returning a backend or an id, and refuses foreign choices', () => {
    const { registry, backends } = registryOf([1, 1, 1])
    const warnings: string[] = []
    const callbacks = new UserCallbacks({ warn: (message: string) => warnings.push(message) })
    const byId = createPicker((candidates) => candidates.at(-1)?.id, { callbacks })
    expect(byId.pick(backends, {}, registry)?.id).toBe('C')
    const byObject = createPicker((candidates, ctx) => candidates.find((c) => c.id === ctx.hashKey), {
      callbacks,
    })
    expect(byObject.pick(backends, { hashKey: 'B' }, registry)?.id).toBe('B')
    expect(byObject.pick(backends, { hashKey: 'Z' }, registry)).toBeUndefined()
    const rogue = createPicker(() => 'http://evil.example', { callbacks })
    expect(() => rogue.pick(backends, {}, registry)).toThrow(BalancerError)
    expect(warnings).toEqual([
      expect.stringContaining('"http://evil.example", which is not one of the candidates'),
    ])
  })

  it('answers 503 for a custom function that throws or returns a promise, logging it once', async () => {
    const { registry, backends } = registryOf([1, 1])
    const warnings: string[] = []
    const callbacks = new UserCallbacks({ warn: (message: string) => warnings.push(message) })
    const throwing = createPicker(
      () => {
        throw new Error('picker bug')
      },
      { callbacks },
    )
    for (let i = 0; i < 3; i++) {
      expect(() => throwing.pick(backends, {}, registry)).toThrow(
        expect.objectContaining({ status: 503, code: 'no_backend_available' }),
      )
    }
    expect(warnings).toEqual([expect.stringContaining('picker bug')])
    // A rejected promise must not become an unhandled rejection.
    const asyncPicker = createPicker(
      (async () => {
        throw new Error('async picker bug')
      }) as never,
      { callbacks: new UserCallbacks({ warn: () => {} }) },
    )
    expect(() => asyncPicker.pick(backends, {}, registry)).toThrow(BalancerError)
    await new Promise((resolve) => setImmediate(resolve))
  })
})
