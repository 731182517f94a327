import { describe, expect, it } from 'vitest'
import type { WindowSpec } from '../../../src/limits/store.js'
import { MemoryTokenStore } from '../../../src/limits/tokens/token-store.js'
import { sizesWhileSweeping } from '../sweep-helpers.js'

const SECOND = 1_000
const HOUR = 3_600_000

function win(id: string, amount: number, windowMs: number): WindowSpec {
  return { id, amount, windowMs }
}

describe('MemoryTokenStore: ended windows are swept in steps', () => {
  it('sweepStep looks at no more counters than asked, and says when a sweep is through', () => {
    const clock = { now: 1_000_000 }
    const store = new MemoryTokenStore({ now: () => clock.now })
    try {
      for (let i = 0; i < 10; i++) store.reserve(`c${i}`, [win('a', 100, SECOND), win('b', 100, SECOND)], 5)
      store.reserve('live', [win('a', 100, HOUR)], 5)
      expect(store.size).toBe(21)
      clock.now += SECOND
      expect(store.sweepStep(7)).toBe(false)
      expect(store.size).toBe(14)
      expect(store.sweepStep(7)).toBe(false)
      expect(store.sweepStep(7)).toBe(false)
      expect(store.sweepStep(7)).toBe(true)
      expect(store.size).toBe(1)
    } finally {
      store.close()
    }
  })

  it('shares the event loop while it sweeps, and every ended counter goes; live ones keep counting', async () => {
    const clock = { now: 1_000_000 }
    const store = new MemoryTokenStore({ now: () => clock.now, sweepIntervalMs: 10, sweepBatchSize: 1_000 })
    try {
      const total = 20_000
      for (let i = 0; i < total; i++) store.reserve(`c${i}`, [win('k', 100, SECOND)], 5)
      store.reserve('live', [win('long', 100, HOUR)], 30)
      clock.now += 2 * SECOND
      const seen = await sizesWhileSweeping(store, 1)
      // One synchronous pass would jump from every counter to none; steps show sizes in between.
      expect(seen.some((size) => size > 1 && size < total + 1)).toBe(true)
      expect(store.reserve('live', [win('long', 100, HOUR)], 10)).toMatchObject({ allowed: true, used: [40] })
    } finally {
      store.close()
    }
  })
})
