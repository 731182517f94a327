import { afterEach, describe, expect, it, vi } from 'vitest'
import { MemoryStore, type WindowSpec } from '../../src/index.js'
import { sizesWhileSweeping } from './sweep-helpers.js'

const SECOND = 1_000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

const stores: MemoryStore[] = []

/** A store on a hand-driven clock, so windows can end without waiting for them. */
function storeAt(start = 1_000_000, sweepIntervalMs?: number) {
  const clock = { now: start }
  const store = new MemoryStore({ now: () => clock.now, ...(sweepIntervalMs ? { sweepIntervalMs } : {}) })
  stores.push(store)
  return { store, clock }
}

const win = (id: string, amount: number, windowMs: number): WindowSpec => ({ id, amount, windowMs })

afterEach(() => {
  for (const store of stores.splice(0)) store.close()
})

describe('MemoryStore: one window', () => {
  it('starts the window at the first hit and keeps its end fixed on later hits', () => {
    const { store, clock } = storeAt()
    const minute = [win('k', 3, MINUTE)]

    expect(store.hit('c', minute, 1)).toEqual({ allowed: true, used: [1], resetMs: [MINUTE] })
    clock.now += 20 * SECOND
    expect(store.hit('c', minute, 1)).toEqual({ allowed: true, used: [2], resetMs: [40 * SECOND] })
    clock.now += 20 * SECOND
    expect(store.hit('c', minute, 1)).toEqual({ allowed: true, used: [3], resetMs: [20 * SECOND] })
    clock.now += 10 * SECOND
    // A rejection reports the count before it and does not move the window either.
    expect(store.hit('c', minute, 1)).toEqual({ allowed: false, used: [3], resetMs: [10 * SECOND] })
  })

  it('starts over once the window has ended, and not a millisecond before', () => {
    const { store, clock } = storeAt()
    const minute = [win('k', 2, MINUTE)]
    store.hit('c', minute, 1)
    store.hit('c', minute, 1)

    clock.now += MINUTE - 1
    expect(store.hit('c', minute, 1)).toEqual({ allowed: false, used: [2], resetMs: [1] })
    clock.now += 1
    expect(store.hit('c', minute, 1)).toEqual({ allowed: true, used: [1], resetMs: [MINUTE] })
    expect(store.hit('c', minute, 1).used).toEqual([2])
    expect(store.hit('c', minute, 1).allowed).toBe(false)
  })

  it('keeps separate counters per window id', () => {
    const { store } = storeAt()
    expect(store.hit('c', [win('a', 1, MINUTE)], 1).allowed).toBe(true)
    expect(store.hit('c', [win('a', 1, MINUTE)], 1).allowed).toBe(false)
    expect(store.hit('c', [win('b', 1, MINUTE)], 1).allowed).toBe(true)
  })

  it('keeps separate counters per client key in the same window id', () => {
    const { store, clock } = storeAt()
    const minute = [win('GET /a:2-per-minute', 2, MINUTE)]
    expect(store.hit('alice', minute, 1)).toEqual({ allowed: true, used: [1], resetMs: [MINUTE] })
    expect(store.hit('alice', minute, 1)).toMatchObject({ allowed: true, used: [2] })
    expect(store.hit('alice', minute, 1)).toMatchObject({ allowed: false, used: [2] })
    clock.now += 10 * SECOND
    // Bob's window starts at his own first hit, not at Alice's.
    expect(store.hit('bob', minute, 1)).toEqual({ allowed: true, used: [1], resetMs: [MINUTE] })
    expect(store.hit('alice', minute, 1)).toMatchObject({ allowed: false, used: [2], resetMs: [50 * SECOND] })
    expect(store.hit('bob', minute, 1)).toMatchObject({ allowed: true, used: [2] })
  })

  it('charges a cost above 1 whole, and rejects a cost that does not fit without charging it', () => {
    const { store } = storeAt()
    const five = [win('k', 5, MINUTE)]
    expect(store.hit('c', five, 3)).toMatchObject({ allowed: true, used: [3] })
    expect(store.hit('c', five, 3)).toMatchObject({ allowed: false, used: [3] })
    expect(store.hit('c', five, 2)).toMatchObject({ allowed: true, used: [5] })
    expect(store.hit('c', five, 1)).toMatchObject({ allowed: false, used: [5] })
  })

  it('never lets through a cost larger than the whole limit', () => {
    const { store } = storeAt()
    expect(store.hit('c', [win('k', 5, MINUTE)], 6)).toMatchObject({ allowed: false, used: [0] })
    expect(store.hit('c', [win('k', 5, MINUTE)], 5)).toMatchObject({ allowed: true, used: [5] })
  })

  it('lets a cost of 0 through even when the window is full, without counting it', () => {
    const { store } = storeAt()
    const one = [win('k', 1, MINUTE)]
    expect(store.hit('c', one, 0)).toMatchObject({ allowed: true, used: [0] })
    expect(store.hit('c', one, 1)).toMatchObject({ allowed: true, used: [1] })
    expect(store.hit('c', one, 0)).toMatchObject({ allowed: true, used: [1] })
    expect(store.hit('c', one, 1)).toMatchObject({ allowed: false, used: [1] })
  })
})

describe('MemoryStore: several windows are all-or-nothing', () => {
  it('does not charge the daily window for requests the hourly one rejects', () => {
    const { store, clock } = storeAt()
    const windows = [win('hour', 2, HOUR), win('day', 5, DAY)]

    expect(store.hit('c', windows, 1)).toMatchObject({ allowed: true, used: [1, 1] })
    expect(store.hit('c', windows, 1)).toMatchObject({ allowed: true, used: [2, 2] })
    for (let i = 0; i < 10; i++) {
      expect(store.hit('c', windows, 1)).toMatchObject({ allowed: false, used: [2, 2] })
    }

    clock.now += HOUR
    // Had the rejections been charged, the day (5) would already be spent.
    expect(store.hit('c', windows, 1)).toMatchObject({ allowed: true, used: [1, 3] })
    expect(store.hit('c', windows, 1)).toMatchObject({ allowed: true, used: [2, 4] })
    clock.now += HOUR
    expect(store.hit('c', windows, 1)).toMatchObject({ allowed: true, used: [1, 5] })
    expect(store.hit('c', windows, 1)).toMatchObject({ allowed: false, used: [1, 5] })
  })

  it('does not charge the hourly window when only the daily one is full', () => {
    const { store, clock } = storeAt()
    const windows = [win('hour', 2, HOUR), win('day', 3, DAY)]
    store.hit('c', windows, 1)
    store.hit('c', windows, 1)
    clock.now += HOUR
    expect(store.hit('c', windows, 1)).toMatchObject({ allowed: true, used: [1, 3] })
    expect(store.hit('c', windows, 1)).toMatchObject({ allowed: false, used: [1, 3] })
    expect(store.hit('c', [win('hour', 2, HOUR)], 1)).toMatchObject({ allowed: true, used: [2] })
  })

  it('reports each window its own time to reset', () => {
    const { store, clock } = storeAt()
    store.hit('c', [win('day', 5, DAY)], 1)
    clock.now += 10 * MINUTE
    expect(store.hit('c', [win('hour', 2, HOUR), win('day', 5, DAY)], 1)).toEqual({
      allowed: true,
      used: [1, 2],
      resetMs: [HOUR, DAY - 10 * MINUTE],
    })
  })
})

describe('MemoryStore: memory stays bounded', () => {
  it('sweep deletes the counters whose window ended and keeps the live ones counting', () => {
    const { store, clock } = storeAt()
    store.hit('c', [win('short', 5, SECOND)], 1)
    store.hit('c', [win('long', 5, MINUTE)], 1)
    store.hit('c', [win('long', 5, MINUTE)], 1)
    expect(store.size).toBe(2)

    clock.now += SECOND
    store.sweep()
    expect(store.size).toBe(1)
    expect(store.hit('c', [win('long', 5, MINUTE)], 1)).toMatchObject({
      used: [3],
      resetMs: [MINUTE - SECOND],
    })
    expect(store.hit('c', [win('short', 5, SECOND)], 1)).toMatchObject({ used: [1], resetMs: [SECOND] })
    expect(store.size).toBe(2)
  })

  it('size counts distinct keys, one per window', () => {
    const { store } = storeAt()
    expect(store.size).toBe(0)
    store.hit('a', [win('hour', 5, HOUR), win('day', 5, DAY)], 1)
    store.hit('a', [win('hour', 5, HOUR), win('day', 5, DAY)], 1)
    expect(store.size).toBe(2)
    store.hit('b', [win('hour', 5, HOUR)], 1)
    expect(store.size).toBe(3)
  })

  it('size counts the counters of every window id, and sweep drops them from each', () => {
    const { store, clock } = storeAt()
    for (const client of ['a', 'b', 'c']) store.hit(client, [win('GET /x:5-per-second', 5, SECOND)], 1)
    for (const client of ['a', 'b']) store.hit(client, [win('GET /y:5-per-minute', 5, MINUTE)], 1)
    store.hit('a', [win('*application:5-per-hour', 5, HOUR)], 1)
    expect(store.size).toBe(6)

    clock.now += SECOND
    store.sweep()
    expect(store.size).toBe(3)
    clock.now += HOUR
    store.sweep()
    expect(store.size).toBe(0)
  })

  it('a request rejected on a fresh key stores nothing', () => {
    const { store } = storeAt()
    store.hit('c', [win('full', 1, HOUR)], 1)
    store.hit('c', [win('fresh', 5, HOUR), win('full', 1, HOUR)], 1)
    expect(store.size).toBe(1)
    // Nor one rejected for a client the window id has not seen yet.
    store.hit('new', [win('full', 1, HOUR)], 2)
    expect(store.size).toBe(1)
  })

  it('returns to size 0 after 100 000 distinct keys expire', () => {
    const { store, clock } = storeAt()
    const spec = [win('w', 10, MINUTE)]
    for (let i = 0; i < 100_000; i++) {
      store.hit(`client-${i}`, spec, 1)
    }
    expect(store.size).toBe(100_000)
    clock.now += MINUTE
    store.sweep()
    expect(store.size).toBe(0)
  })

  it('a flood of new keys does not reset a live counter', () => {
    const { store } = storeAt()
    const hour = [win('w', 3, HOUR)]
    store.hit('victim', hour, 1)
    store.hit('victim', hour, 1)
    store.hit('victim', hour, 1)
    for (let i = 0; i < 100_000; i++) store.hit(`flood-${i}`, hour, 1)
    // New window ids must not reset it either.
    for (let i = 0; i < 1_000; i++) store.hit('victim', [win(`flood-${i}`, 3, HOUR)], 1)
    store.sweep()
    expect(store.size).toBe(101_001)
    expect(store.hit('victim', hour, 1)).toMatchObject({ allowed: false, used: [3] })
  })

  it('sweeps on its own every sweepIntervalMs', async () => {
    const { store, clock } = storeAt(1_000_000, 10)
    store.hit('c', [win('k', 1, SECOND)], 1)
    clock.now += SECOND
    await vi.waitFor(() => expect(store.size).toBe(0), { timeout: 2_000, interval: 5 })
  })

  it('sweeps in bounded steps: other callbacks run between them, and every expired counter goes', async () => {
    const clock = { now: 1_000_000 }
    const store = new MemoryStore({ now: () => clock.now, sweepIntervalMs: 10, sweepBatchSize: 1_000 })
    try {
      const total = 20_000
      for (let i = 0; i < total; i++) store.hit(`c${i}`, [win('k', 1, SECOND)], 1)
      store.hit('live', [win('k', 1, HOUR)], 1)
      clock.now += 2 * SECOND
      const seen = await sizesWhileSweeping(store, 1)
      // One synchronous pass would jump from every counter to none; steps show sizes in between.
      expect(seen.some((size) => size > 1 && size < total + 1)).toBe(true)
    } finally {
      store.close()
    }
  })

  it('sweepStep looks at no more counters than asked, and says when a sweep is through', () => {
    const { store, clock } = storeAt()
    for (let i = 0; i < 10; i++) store.hit(`c${i}`, [win('a', 1, SECOND), win('b', 1, SECOND)], 1)
    clock.now += SECOND
    expect(store.sweepStep(7)).toBe(false)
    expect(store.size).toBe(13)
    expect(store.sweepStep(7)).toBe(false)
    expect(store.size).toBe(6)
    expect(store.sweepStep(7)).toBe(true)
    expect(store.size).toBe(0)
  })

  it('close() drops every counter', () => {
    const { store } = storeAt()
    store.hit('c', [win('k', 1, SECOND)], 1)
    store.close()
    expect(store.size).toBe(0)
  })
})
