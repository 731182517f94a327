import { describe, expect, it } from 'vitest'
import { parseRetryAfter } from '../../src/forward/retry-after.js'
import { RetryBudget } from '../../src/forward/retry-budget.js'

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-01-01T00:00:00Z')

  it.each<[string | string[] | undefined, number | undefined]>([
    ['5', 5000],
    [' 0 ', 0],
    [['3', '9'], 3000],
    ['Wed, 01 Jan 2025 00:00:30 GMT', 30_000],
    ['Tue, 31 Dec 2024 23:59:00 GMT', 0],
    ['-1', undefined],
    ['1.5', undefined],
    ['soon', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('%j → %s', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected)
  })
})

describe('RetryBudget', () => {
  it('allows the reserve plus the ratio of requests in the window', () => {
    let now = 0
    const budget = new RetryBudget({ ratio: 0.2, minRetriesPerSecond: 1, windowSeconds: 2 }, () => now)
    for (let i = 0; i < 10; i++) budget.recordRequest()
    // reserve 1 × 2 s = 2, plus 20 % of 10 = 2
    expect([1, 2, 3, 4, 5].map(() => budget.tryRetry())).toEqual([true, true, true, true, false])

    now = 1000
    expect(budget.tryRetry()).toBe(false)
    now = 2000
    // The second holding the requests and retries has left the window.
    expect(budget.tryRetry()).toBe(true)
    expect(budget.tryRetry()).toBe(true)
    expect(budget.tryRetry()).toBe(false)
  })

  it('forgets everything after a long pause', () => {
    let now = 0
    const budget = new RetryBudget({ ratio: 0, minRetriesPerSecond: 1, windowSeconds: 3 }, () => now)
    expect([1, 2, 3, 4].map(() => budget.tryRetry())).toEqual([true, true, true, false])
    now = 60_000
    expect([1, 2, 3, 4].map(() => budget.tryRetry())).toEqual([true, true, true, false])
  })

  it('rejects bad options, quoting them', () => {
    expect(() => new RetryBudget({ ratio: -1 })).toThrow(/-1/)
    expect(() => new RetryBudget({ minRetriesPerSecond: Number.NaN })).toThrow(/NaN/)
    expect(() => new RetryBudget({ windowSeconds: 0.5 })).toThrow(/0\.5/)
  })
})
