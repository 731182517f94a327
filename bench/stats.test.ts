import { describe, expect, it } from 'vitest'
import {
  median,
  medianRatio,
  pairedRatios,
  percentile,
  percentileOfSorted,
  ratio,
  summarize,
} from './lib/stats.js'

describe('percentile (nearest rank)', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1)

  it('picks the sample at rank ceil(p/100 × n)', () => {
    expect(percentile(hundred, 50)).toBe(50)
    expect(percentile(hundred, 99)).toBe(99)
    expect(percentile(hundred, 100)).toBe(100)
    expect(percentile(hundred, 0)).toBe(1)
    expect(percentile([10, 20, 30, 40], 50)).toBe(20)
    expect(percentile([10, 20, 30, 40], 51)).toBe(30)
  })

  it('always returns an observed value, and the maximum for p99 of fewer than 100 samples', () => {
    const values = [5, 1, 9, 3, 7]
    expect(values).toContain(percentile(values, 37))
    expect(percentile(values, 99)).toBe(9)
  })

  it('does not reorder its input and ignores NaN', () => {
    const values = [3, Number.NaN, 1, 2]
    expect(percentile(values, 50)).toBe(2)
    expect(values[0]).toBe(3)
  })

  it('is NaN for no samples and rejects a p outside [0, 100]', () => {
    expect(percentile([], 50)).toBeNaN()
    expect(() => percentileOfSorted([1], 101)).toThrow(RangeError)
    expect(() => percentileOfSorted([1], -1)).toThrow(RangeError)
  })
})

describe('median', () => {
  it('is the middle value, or the mean of the two middle values', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 3, 2])).toBe(2.5)
    expect(median([7])).toBe(7)
    expect(median([])).toBeNaN()
  })
})

describe('ratios', () => {
  it('divides, and gives NaN rather than Infinity for a missing or zero denominator', () => {
    expect(ratio(3, 2)).toBe(1.5)
    expect(ratio(1, 0)).toBeNaN()
    expect(ratio(Number.NaN, 1)).toBeNaN()
  })

  it('divides within each round, then takes the median', () => {
    // The machine got twice as slow in round 2: per-round ratios are unaffected.
    const a = [10, 20, 11]
    const b = [20, 40, 20]
    expect(pairedRatios(a, b)).toEqual([0.5, 0.5, 0.55])
    expect(medianRatio(a, b)).toBe(0.5)
    expect(() => pairedRatios([1], [1, 2])).toThrow(RangeError)
  })
})

describe('summarize', () => {
  it('reports count, extremes, percentiles and mean', () => {
    const s = summarize([4, 2, 8, 6])
    expect(s).toEqual({ n: 4, min: 2, p50: 4, p90: 8, p99: 8, max: 8, mean: 5 })
    expect(summarize([]).n).toBe(0)
  })
})
