import { describe, expect, it } from 'vitest'
import { addedCpu, compare, type RoundResult, roundOrder } from './lib/rounds.js'

const round = (cpuMicrosPerRequest: number, requestsPerSecond = 1000): RoundResult => ({
  requestsPerSecond,
  cpuMicrosPerRequest,
  extraCpuMicrosPerRequest: Number.NaN,
  p50Ms: 1,
  p99Ms: 2,
  requests: requestsPerSecond,
  failures: 0,
})

describe('roundOrder', () => {
  it('runs every variant once per round', () => {
    for (let r = 0; r < 6; r++) expect([...roundOrder(5, r)].sort()).toEqual([0, 1, 2, 3, 4])
  })

  it('lets each of two variants go first half the time', () => {
    const firsts = [0, 1, 2, 3].map((r) => roundOrder(2, r)[0])
    expect(firsts.filter((f) => f === 0)).toHaveLength(2)
  })

  it('puts each of several variants first in some round', () => {
    const firsts = new Set(Array.from({ length: 10 }, (_, r) => roundOrder(5, r)[0]))
    expect(firsts.size).toBe(5)
  })
})

describe('compare', () => {
  it('takes the median of per-round ratios, and the ratio of the median added CPU', () => {
    const bare = [round(30), round(60), round(30)]
    const a = [round(40), round(80), round(45)]
    const b = [round(50), round(100), round(50)]
    const cmp = compare(a, b, bare)
    expect(cmp.cpuRatio).toBeCloseTo(0.8, 10)
    // added: a 10, 20, 15 (median 15); b 20, 40, 20 (median 20)
    expect(cmp.addedCpuRatio).toBeCloseTo(0.75, 10)
    expect(cmp.throughputRatio).toBe(1)
    expect(addedCpu(a, bare)).toBe(15)
  })

  it('is not thrown by a round where the peer added nothing, and brackets the figure', () => {
    const bare = [30, 30, 30, 30, 30, 30].map(round)
    const a = [33, 33, 34, 33, 32, 33].map(round)
    // One round where the peer's cost vanished in the noise: a per-round ratio would be infinite.
    const b = [34, 30, 34, 35, 34, 34].map(round)
    const cmp = compare(a, b, bare)
    expect(cmp.addedCpuRatio).toBeCloseTo(0.75, 10)
    const [lo, hi] = cmp.addedCpuInterval
    expect(lo).toBeLessThanOrEqual(cmp.addedCpuRatio)
    expect(hi).toBeGreaterThanOrEqual(cmp.addedCpuRatio)
    expect(compare(a, b, bare).addedCpuInterval).toEqual([lo, hi])
  })
})
