import { afterEach, describe, expect, it, vi } from 'vitest'
import { CallDeadlines } from '../../src/limits/call-deadlines.js'

describe('CallDeadlines', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('rejects each unanswered call at its own deadline and leaves answered ones alone', () => {
    vi.useFakeTimers()
    const deadlines = new CallDeadlines(100, () => new Error('late'))
    const timedOut: string[] = []
    const a = deadlines.watch(() => timedOut.push('a'))
    vi.advanceTimersByTime(30)
    const b = deadlines.watch(() => timedOut.push('b'))
    vi.advanceTimersByTime(30)
    const c = deadlines.watch(() => timedOut.push('c'))
    expect(b.settle()).toBe(true)
    vi.advanceTimersByTime(39)
    expect(timedOut).toEqual([])
    vi.advanceTimersByTime(1)
    expect(timedOut).toEqual(['a'])
    expect(a.settle()).toBe(false)
    vi.advanceTimersByTime(59)
    expect(timedOut).toEqual(['a'])
    vi.advanceTimersByTime(1)
    expect(timedOut).toEqual(['a', 'c'])
    expect(c.settle()).toBe(false)
    expect(deadlines.queued).toBe(0)
    deadlines.close()
  })

  it('keeps a call started from inside a timeout and times it out at its own deadline', () => {
    // A timed-out request answered by the fallback can lead straight to another store call.
    vi.useFakeTimers()
    const deadlines = new CallDeadlines(100, () => new Error('late'))
    const timedOut: string[] = []
    deadlines.watch(() => {
      timedOut.push('first')
      deadlines.watch(() => timedOut.push('second'))
    })
    deadlines.watch(() => timedOut.push('beside'))
    vi.advanceTimersByTime(100)
    expect(timedOut).toEqual(['first', 'beside'])
    expect(deadlines.queued).toBe(1)
    vi.advanceTimersByTime(99)
    expect(timedOut).toEqual(['first', 'beside'])
    vi.advanceTimersByTime(1)
    expect(timedOut).toEqual(['first', 'beside', 'second'])
    expect(vi.getTimerCount()).toBe(0)
    deadlines.close()
  })

  it('passes the error it makes to the call that timed out', () => {
    vi.useFakeTimers()
    const deadlines = new CallDeadlines(10, () => new Error('Redis did not answer within 10 ms'))
    const errors: Error[] = []
    deadlines.watch((error) => errors.push(error))
    vi.advanceTimersByTime(10)
    expect(errors.map((e) => e.message)).toEqual(['Redis did not answer within 10 ms'])
    deadlines.close()
  })

  it('holds about the calls in flight, not every call made, while replies come back in order', () => {
    vi.useFakeTimers()
    const deadlines = new CallDeadlines(500, () => new Error('late'))
    for (let i = 0; i < 100_000; i++) deadlines.watch(() => {}).settle()
    expect(deadlines.queued).toBeLessThanOrEqual(1)
    const waiting = Array.from({ length: 3 }, () => deadlines.watch(() => {}))
    expect(deadlines.queued).toBeLessThanOrEqual(4)
    for (const call of waiting) call.settle()
    deadlines.close()
  })

  it('keeps one timer for many calls', () => {
    vi.useFakeTimers()
    const deadlines = new CallDeadlines(500, () => new Error('late'))
    for (let i = 0; i < 1000; i++) deadlines.watch(() => {})
    expect(vi.getTimerCount()).toBe(1)
    deadlines.close()
    expect(vi.getTimerCount()).toBe(0)
  })
})
