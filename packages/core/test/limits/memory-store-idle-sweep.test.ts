import { setTimeout as sleep } from 'node:timers/promises'
import { expect, it } from 'vitest'
import { MemoryStore, type WindowSpec } from '../../src/index.js'

it('finishes a sweep on an idle event loop, not one step per wake-up', async () => {
  const clock = { now: 1_000_000 }
  const store = new MemoryStore({ now: () => clock.now, sweepIntervalMs: 500 })
  try {
    const second: WindowSpec[] = [{ id: 'k', amount: 1, windowMs: 1_000 }]
    for (let i = 0; i < 60_000; i++) store.hit(`c${i}`, second, 1)
    clock.now += 2_000
    // One wait and nothing else scheduled: the loop idles from the sweep's start (at 500 ms) on.
    // 60 000 counters are 12 steps of 5 000, a few ms of work; the wait leaves a second for it.
    await sleep(1_500)
    expect(store.size).toBe(0)
  } finally {
    store.close()
  }
})
