import { afterEach, describe, expect, it, vi } from 'vitest'
import { MAX_PRIORITY_ROWS } from '../../src/admission/priority-counts.js'
import type { BalancerError } from '../../src/balance/errors.js'
import { closeHarnesses, harness } from './harness.js'

afterEach(async () => {
  vi.useRealTimers()
  await closeHarnesses()
})

const priority = ((request: { p: string | number }) => request.p) as never
const rows = (h: ReturnType<typeof harness>) =>
  h.b
    .queueSnapshot()
    .priorities.map((r) => [r.name ?? r.priority, r.waiting, r.served, r.shed, r.timedOut, r.full])

describe('the fair queue per priority in the snapshot', () => {
  it('lists the named levels from the start, highest first', () => {
    const h = harness({ priority })
    expect(h.b.queueSnapshot().priorities).toEqual([
      { priority: 1, name: 'critical', waiting: 0, served: 0, shed: 0, timedOut: 0, full: 0 },
      { priority: 0, name: 'standard', waiting: 0, served: 0, shed: 0, timedOut: 0, full: 0 },
      { priority: -1, name: 'sheddable', waiting: 0, served: 0, shed: 0, timedOut: 0, full: 0 },
    ])
  })

  it('counts who waits now and who was served, per level, numbers included', async () => {
    const h = harness({ priority })
    void h.ask('a', {}, { p: 'critical' })
    void h.ask('b', {}, { p: 'standard' })
    void h.ask('c', {}, { p: 'standard' })
    void h.ask('d', {}, { p: 5 })
    void h.ask('e', {}, { p: 'sheddable' })
    expect(rows(h)).toEqual([
      [5, 1, 0, 0, 0, 0],
      ['critical', 1, 0, 0, 0, 0],
      ['standard', 2, 0, 0, 0, 0],
      ['sheddable', 1, 0, 0, 0, 0],
    ])
    expect(await h.serve(3)).toEqual(['d', 'a', 'b'])
    expect(rows(h)).toEqual([
      [5, 0, 1, 0, 0, 0],
      ['critical', 0, 1, 0, 0, 0],
      ['standard', 1, 1, 0, 0, 0],
      ['sheddable', 1, 0, 0, 0, 0],
    ])
  })

  it('counts the shed, the timed out and those a full queue turned away or pushed out', async () => {
    vi.useFakeTimers()
    const h = harness({ priority }, { queue: { timeoutMs: 1_000, size: 2 } })
    const shed = h.ask('batch', {}, { p: 'sheddable' }).catch((e: BalancerError) => e.code)
    const late = h.ask('user', {}, { p: 'standard' }).catch((e: BalancerError) => e.code)
    // The queue is full: a critical request pushes out the sheddable one.
    void h.ask('vip', {}, { p: 'critical' })
    expect(await shed).toMatch(/queue_full/)
    await expect(h.ask('more', {}, { p: 'sheddable' })).rejects.toMatchObject({
      code: expect.stringMatching(/queue_full/),
    })
    await expect(h.ask('now', { 'x-request-deadline-ms': '0' }, { p: 'standard' })).rejects.toMatchObject({
      code: 'queue_timeout',
    })
    expect(await h.serve(1)).toEqual(['vip'])
    // The standard request has waited half its time: sheddable ones are turned away on arrival.
    await vi.advanceTimersByTimeAsync(500)
    await expect(h.ask('batch', {}, { p: 'sheddable' })).rejects.toMatchObject({ code: 'shed' })
    await vi.advanceTimersByTimeAsync(500)
    expect(await late).toBe('queue_timeout')
    expect(rows(h)).toEqual([
      ['critical', 0, 1, 0, 0, 0],
      ['standard', 0, 0, 0, 2, 0],
      ['sheddable', 0, 0, 1, 0, 2],
    ])
  })

  it('keeps at most 16 levels apart, whatever numbers the priority function returns', async () => {
    const h = harness({ priority }, { queue: { size: 100 } })
    for (let p = 10; p < 40; p++) void h.ask(`t${p}`, {}, { p })
    const snapshot = h.b.queueSnapshot().priorities
    expect(snapshot).toHaveLength(MAX_PRIORITY_ROWS + 1)
    const other = snapshot.at(-1)
    // The three named levels and the first 13 numbers have rows; the 17 numbers after add up in one.
    expect(other).toMatchObject({ priority: null, waiting: 40 - 10 - (MAX_PRIORITY_ROWS - 3) })
    expect(snapshot.reduce((sum, r) => sum + r.waiting, 0)).toBe(30)
    expect(await h.serve(30)).toHaveLength(30)
    const after = h.b.queueSnapshot().priorities
    expect(after).toHaveLength(MAX_PRIORITY_ROWS + 1)
    expect(after.at(-1)).toMatchObject({ priority: null, waiting: 0, served: 17 })
    expect(after.reduce((sum, r) => sum + r.served, 0)).toBe(30)
  })
})
