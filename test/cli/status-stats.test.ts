import { describe, expect, it } from 'vitest'
import { RateSeries } from '../../packages/cli/src/status/rate-series.js'
import { RecentSamples } from '../../packages/cli/src/status/recent-samples.js'
import { StatusStats } from '../../packages/cli/src/status/status-stats.js'

describe('the status page data', () => {
  it('counts per slot over a fixed span, forgetting what fell out of it', () => {
    const series = new RateSeries(1000, 4)
    series.add(0)
    series.add(500, 2)
    series.add(1500)
    series.add(3200, 4)
    expect(series.values(3500)).toEqual([3, 1, 0, 4])
    expect(series.sum(3500, 2)).toBe(4)
    // 4 at 3.2 s over 1 whole slot plus 0.5 s of the current one: 4 / 1.5 s.
    expect(series.perSecond(3500, 2)).toBeCloseTo(4 / 1.5)
    // Slot 0 is reused for slot 4: its old count is gone, not added to.
    series.add(4100)
    expect(series.values(4100)).toEqual([1, 0, 4, 1])
    expect(series.values(60_000)).toEqual([0, 0, 0, 0])
  })

  it('gives nearest-rank percentiles of the recent samples only, in fixed memory', () => {
    const samples = new RecentSamples(4)
    expect(samples.quantiles(0, [0.5])).toBeNull()
    for (const [at, value] of [
      [0, 1000],
      [10, 10],
      [20, 20],
      [30, 30],
      [40, 40],
    ] as const)
      samples.add(at, value)
    // The first sample was overwritten (four kept); only those since t=15 count.
    expect(samples.quantiles(0, [0.5, 0.9])).toEqual({ values: [20, 40], samples: 4 })
    expect(samples.quantiles(15, [0.5, 0.9])).toEqual({ values: [30, 40], samples: 3 })
  })

  it('tracks a bounded number of backends and only the configured routes', () => {
    const stats = new StatusStats(() => 0)
    for (let i = 0; i < 2000; i++) stats.backend(`b${i}`)
    expect(stats.backend('b1023')).toBeDefined()
    expect(stats.backend('b1024')).toBeUndefined()
    stats.keepBackends(new Set(['b1']))
    expect(stats.backend('b2')).toBeDefined()
    stats.setRoutes(['POST /a'])
    stats.answered('POST /a')
    stats.answered('GET /unknown')
    expect(stats.route('POST /a')?.totalRequests).toBe(1)
    expect(stats.route('GET /unknown')).toBeUndefined()
    // A reload that keeps the route keeps its counts.
    stats.setRoutes(['POST /a', 'GET /b'])
    expect(stats.route('POST /a')?.totalRequests).toBe(1)
  })
})
