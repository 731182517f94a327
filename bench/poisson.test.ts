import { describe, expect, it } from 'vitest'
import { poissonSchedule, seededRandom } from './lib/poisson.js'

describe('seededRandom', () => {
  it('repeats the same sequence for the same seed, within [0, 1)', () => {
    const a = seededRandom(42)
    const b = seededRandom(42)
    const c = seededRandom(43)
    const xs = Array.from({ length: 1000 }, () => a())
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs)
    expect(c()).not.toBe(xs[0])
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0)
    expect(Math.max(...xs)).toBeLessThan(1)
  })
})

describe('poissonSchedule', () => {
  it('is deterministic for a seed', () => {
    const options = { ratePerSecond: 50, durationMs: 10_000, seed: 7 }
    expect(poissonSchedule(options)).toEqual(poissonSchedule(options))
    expect(poissonSchedule({ ...options, seed: 8 })).not.toEqual(poissonSchedule(options))
  })

  it('arrives at the requested mean rate', () => {
    // 100 000 expected arrivals: the count's standard deviation is ~0.3%, so 2% is a wide margin.
    const arrivals = poissonSchedule({ ratePerSecond: 1000, durationMs: 100_000, seed: 1 })
    expect(arrivals.length).toBeGreaterThan(98_000)
    expect(arrivals.length).toBeLessThan(102_000)
  })

  it('has exponential gaps: mean equal to standard deviation, ~37% longer than the mean', () => {
    const arrivals = poissonSchedule({ ratePerSecond: 100, durationMs: 500_000, seed: 3 })
    const gaps = arrivals.slice(1).map((t, i) => t - (arrivals[i] ?? 0))
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length
    const sd = Math.sqrt(gaps.reduce((a, g) => a + (g - mean) ** 2, 0) / gaps.length)
    expect(mean).toBeCloseTo(10, 0)
    expect(sd / mean).toBeGreaterThan(0.97)
    expect(sd / mean).toBeLessThan(1.03)
    const longer = gaps.filter((g) => g > mean).length / gaps.length
    expect(longer).toBeGreaterThan(Math.exp(-1) - 0.01)
    expect(longer).toBeLessThan(Math.exp(-1) + 0.01)
  })

  it('stays within the window, ascending', () => {
    const arrivals = poissonSchedule({ ratePerSecond: 200, durationMs: 2_000, seed: 5 })
    expect(arrivals.every((t, i) => t >= 0 && t < 2_000 && (i === 0 || t >= (arrivals[i - 1] ?? 0)))).toBe(
      true,
    )
  })

  it('rejects a rate or duration that would never end or means nothing', () => {
    expect(() => poissonSchedule({ ratePerSecond: 0, durationMs: 1000, seed: 1 })).toThrow(RangeError)
    expect(() =>
      poissonSchedule({ ratePerSecond: 10, durationMs: Number.POSITIVE_INFINITY, seed: 1 }),
    ).toThrow(RangeError)
  })
})
